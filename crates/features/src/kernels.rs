//! Streaming indicator kernels. Each holds its own state, takes one bar at a time in O(period) or
//! better, and never sees a later bar. Where TA-Lib defines the indicator, the kernel reproduces
//! TA-Lib's seeding and order of floating-point operations (TA-Lib's defaults, unstable period 0),
//! so values match it to rounding.

use std::collections::VecDeque;
use std::hint::select_unpredictable;

/// One bar as the kernels see it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub ts: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

impl Bar {
    /// Row `i` of a columnar series.
    #[inline(always)]
    pub fn at(bars: &quantpipe_core::Bars, i: usize) -> Bar {
        Bar {
            ts: bars.ts[i],
            open: bars.open[i],
            high: bars.high[i],
            low: bars.low[i],
            close: bars.close[i],
            volume: bars.volume[i],
        }
    }
}

/// The last `n` values of a stream: push one, and know whether the window is full. Each value is
/// written twice, at `p` and `p + n` of a buffer of 2n, so the window is always one contiguous
/// slice (oldest first) and window sums run as plain slice loops.
#[derive(Debug, Clone)]
pub struct Rolling<T> {
    n: usize,
    buf: Vec<T>,
    /// Where the next value goes, in 0..n.
    next: usize,
    len: usize,
}

impl<T: Copy + Default> Rolling<T> {
    pub fn new(n: usize) -> Rolling<T> {
        Rolling { n, buf: vec![T::default(); 2 * n], next: 0, len: 0 }
    }
    /// Pushes `v`, dropping the oldest beyond `n`; true when the window holds `n` values.
    #[inline]
    pub fn push(&mut self, v: T) -> bool {
        if self.n == 0 {
            return true;
        }
        self.buf[self.next] = v;
        self.buf[self.next + self.n] = v;
        self.next += 1;
        if self.next == self.n {
            self.next = 0;
        }
        if self.len < self.n {
            self.len += 1;
        }
        self.len == self.n
    }
    /// The window, oldest first.
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        let start = self.next + self.n - self.len;
        &self.buf[start..start + self.len]
    }
}

/// Σ term(k, values[k]) over eight interleaved partial sums (k mod 8), added pairwise at the end:
/// eight independent dependency chains instead of one, so a window sum costs an eighth of the
/// latency. The order is fixed by k alone, so streaming and batch give the same bits.
#[inline]
pub fn lane_sum<T: Copy>(values: &[T], term: impl Fn(usize, T) -> f64) -> f64 {
    const LANES: usize = 8;
    let mut lanes = [0.0; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for (c, chunk) in chunks.enumerate() {
        for (j, &v) in chunk.iter().enumerate() {
            lanes[j] += term(LANES * c + j, v);
        }
    }
    let base = values.len() - rest.len();
    for (j, &v) in rest.iter().enumerate() {
        lanes[j] += term(base + j, v);
    }
    ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
}

/// A streaming indicator: `update` consumes the next bar and writes this bar's outputs (NaN while
/// warming up) into `out`, which has `width()` slots.
pub trait Kernel: Send {
    fn width(&self) -> usize;
    fn update(&mut self, bar: &Bar, out: &mut [f64]);

    /// Feeds every bar of `bars` in order and returns one column per output: batch computation.
    /// This default is `update` bar by bar, compiled for each kernel type, so the batch path makes
    /// no dynamic call per bar and runs exactly the streaming code. Most kernels mark `update`
    /// `#[inline(always)]` so their state stays in registers across bars here; the few measured
    /// slower that way (Aroon, RSI/CMO) are only `#[inline]`.
    fn run(&mut self, bars: &quantpipe_core::Bars) -> Vec<Vec<f64>> {
        let n = bars.len();
        let width = self.width();
        let mut columns: Vec<Vec<f64>> = (0..width).map(|_| Vec::with_capacity(n)).collect();
        let mut out = vec![f64::NAN; width];
        for i in 0..n {
            self.update(&Bar::at(bars, i), &mut out);
            for (column, &v) in columns.iter_mut().zip(&out) {
                column.push(v);
            }
        }
        columns
    }
}

/// TA-Lib 0.6's `TA_EPSILON` (the C library inside Python ta-lib 0.8.2, the oracle).
const TA_EPSILON: f64 = 1e-14;

/// TA-Lib's `TA_IS_ZERO`.
fn is_zero(v: f64) -> bool {
    -TA_EPSILON < v && v < TA_EPSILON
}

/// TA-Lib's `TA_IS_ZERO_OR_NEG`.
fn is_zero_or_neg(v: f64) -> bool {
    v < TA_EPSILON
}

/// The value pushed `delay` pushes ago: a fixed ring, one store and one load per push.
#[derive(Debug, Clone)]
pub struct DelayLine {
    ring: Vec<f64>,
    pos: usize,
    pushed: usize,
}

impl DelayLine {
    pub fn new(delay: usize) -> DelayLine {
        DelayLine { ring: vec![0.0; delay], pos: 0, pushed: 0 }
    }
    /// Pushes `x`; returns the value pushed `delay` pushes before it, once there is one (`x` itself
    /// for a delay of 0).
    #[inline]
    pub fn push(&mut self, x: f64) -> Option<f64> {
        if self.ring.is_empty() {
            return Some(x);
        }
        let old = std::mem::replace(&mut self.ring[self.pos], x);
        self.pos += 1;
        if self.pos == self.ring.len() {
            self.pos = 0;
        }
        if self.pushed < self.ring.len() {
            self.pushed += 1;
            return None;
        }
        Some(old)
    }
}

/// Simple moving average with TA-Lib's running total (add the new value, divide, drop the oldest).
#[derive(Debug, Clone)]
pub struct Sma {
    n: usize,
    /// The value leaving the window: the one pushed n − 1 bars before the current one.
    leaving: DelayLine,
    total: f64,
}

impl Sma {
    pub fn new(n: usize) -> Sma {
        Sma { n, leaving: DelayLine::new(n.saturating_sub(1)), total: 0.0 }
    }
    #[inline]
    pub fn next(&mut self, x: f64) -> f64 {
        let leaving = self.leaving.push(x);
        self.total += x;
        match leaving {
            None => f64::NAN,
            Some(old) => {
                let out = self.total / self.n as f64;
                self.total -= old;
                out
            }
        }
    }
}

/// Exponential moving average seeded with the SMA of the first `n` values (TA-Lib's default).
#[derive(Debug, Clone)]
pub struct Ema {
    n: usize,
    k: f64,
    count: usize,
    sum: f64,
    value: f64,
}

impl Ema {
    pub fn new(n: usize) -> Ema {
        Ema::with_k(n, 2.0 / (n as f64 + 1.0))
    }
    pub fn with_k(n: usize, k: f64) -> Ema {
        Ema { n, k, count: 0, sum: 0.0, value: f64::NAN }
    }
    /// Feeds a value; NaN inputs (an upstream warm-up) are skipped.
    #[inline]
    pub fn next(&mut self, x: f64) -> f64 {
        if x.is_nan() {
            return f64::NAN;
        }
        if self.count < self.n {
            self.sum += x;
            self.count += 1;
            if self.count == self.n {
                self.value = self.sum / self.n as f64;
                return self.value;
            }
            return f64::NAN;
        }
        self.value = ((x - self.value) * self.k) + self.value;
        self.value
    }
}

/// Weighted moving average (weights 1..n, newest heaviest), summed directly over the window each
/// bar: O(n), and free of the drift a running weighted sum accumulates over long series (TA-Lib
/// 0.6 agrees with the direct sum to ~1e-15; the running form drifts to ~2e-9 over 347k bars).
#[derive(Debug, Clone)]
pub struct Wma {
    n: usize,
    window: Rolling<f64>,
    /// 1, 2, …, n: the weights, oldest first.
    weights: Vec<f64>,
}

impl Wma {
    pub fn new(n: usize) -> Wma {
        Wma { n, window: Rolling::new(n), weights: (1..=n).map(|k| k as f64).collect() }
    }
    #[inline]
    pub fn next(&mut self, x: f64) -> f64 {
        if !self.window.push(x) {
            return f64::NAN;
        }
        let window = self.window.as_slice();
        let weights = &self.weights[..window.len()];
        let sum = lane_sum(window, |k, v| v * weights[k]);
        sum / ((self.n * (self.n + 1)) as f64 / 2.0)
    }
}

/// Population variance over the last `n` values, two-pass over the window (mean, then squared
/// deviations): exact where the running sum-of-squares form cancels catastrophically on low-variance
/// windows; matches TA-Lib 0.6's STDDEV/BBANDS.
#[derive(Debug, Clone)]
pub struct Var {
    n: usize,
    window: Rolling<f64>,
}

impl Var {
    pub fn new(n: usize) -> Var {
        Var { n, window: Rolling::new(n) }
    }
    #[inline]
    pub fn next(&mut self, x: f64) -> f64 {
        if !self.window.push(x) {
            return f64::NAN;
        }
        let n = self.n as f64;
        let window = self.window.as_slice();
        let mean = lane_sum(window, |_, v| v) / n;
        lane_sum(window, |_, v| (v - mean) * (v - mean)) / n
    }
}

/// What a rolling-extremes window keeps of an extreme: its value alone, or its value and the
/// stream index where it occurred (for ages, as Aroon needs).
pub trait Extremum: Copy {
    fn at(value: f64, index: usize) -> Self;
    /// The higher of a later and an earlier extreme; the later one on ties.
    fn higher(later: Self, earlier: Self) -> Self;
    /// The lower of a later and an earlier extreme; the later one on ties.
    fn lower(later: Self, earlier: Self) -> Self;
}

impl Extremum for f64 {
    #[inline(always)]
    fn at(value: f64, _index: usize) -> f64 {
        value
    }
    #[inline(always)]
    fn higher(later: f64, earlier: f64) -> f64 {
        later.max(earlier)
    }
    #[inline(always)]
    fn lower(later: f64, earlier: f64) -> f64 {
        later.min(earlier)
    }
}

impl Extremum for (f64, usize) {
    #[inline(always)]
    fn at(value: f64, index: usize) -> (f64, usize) {
        (value, index)
    }
    // Selects, not branches: which bar holds the extreme is up to the market.
    #[inline(always)]
    fn higher(later: (f64, usize), earlier: (f64, usize)) -> (f64, usize) {
        select_unpredictable(later.0 >= earlier.0, later, earlier)
    }
    #[inline(always)]
    fn lower(later: (f64, usize), earlier: (f64, usize)) -> (f64, usize) {
        select_unpredictable(later.0 <= earlier.0, later, earlier)
    }
}

/// Highest and lowest of the last `n` values, O(1) amortised and without data-dependent loops or
/// branches (van Herk / Gil-Werman): the stream is cut into blocks of `n`; a window is the tail of
/// the previous block (whose suffix extremes are computed once, when that block completes) plus the
/// head of the current block (a running prefix extreme). Ties keep the most recent index, as
/// TA-Lib's scans do. Inputs must not be NaN (kernels feed validated prices or defined values).
#[derive(Debug, Clone)]
pub struct Extremes<E> {
    n: usize,
    i: usize,
    /// `i % n`, kept as a counter (a division per bar costs more than the rest of the update).
    offset: usize,
    block_high: Vec<f64>,
    block_low: Vec<f64>,
    /// Suffix extremes of the last completed block: `suffix_high[j]` is the highest of offsets j..n.
    suffix_high: Vec<E>,
    suffix_low: Vec<E>,
    /// Extremes of the current block so far.
    prefix_high: E,
    prefix_low: E,
}

/// Rolling extremes with their ages.
pub type MinMax = Extremes<(f64, usize)>;
/// Rolling extremes, values only, for the kernels that never read where an extreme was.
pub type RollingExtremes = Extremes<f64>;

impl<E: Extremum> Extremes<E> {
    pub fn new(n: usize) -> Extremes<E> {
        let n = n.max(1);
        let none = E::at(0.0, 0);
        Extremes {
            n,
            i: 0,
            offset: 0,
            block_high: vec![0.0; n],
            block_low: vec![0.0; n],
            suffix_high: vec![none; n],
            suffix_low: vec![none; n],
            prefix_high: none,
            prefix_low: none,
        }
    }

    /// Pushes the next high and low; the (highest, lowest) of the last `n` once `n` are seen.
    #[inline]
    fn push(&mut self, high: f64, low: f64) -> Option<(E, E)> {
        let (i, offset) = (self.i, self.offset);
        self.i += 1;
        self.offset = if offset + 1 == self.n { 0 } else { offset + 1 };
        self.block_high[offset] = high;
        self.block_low[offset] = low;
        if offset == 0 {
            self.prefix_high = E::at(high, i);
            self.prefix_low = E::at(low, i);
        } else {
            self.prefix_high = E::higher(E::at(high, i), self.prefix_high);
            self.prefix_low = E::lower(E::at(low, i), self.prefix_low);
        }
        if offset == self.n - 1 {
            self.complete_block(i + 1 - self.n);
            return Some((self.prefix_high, self.prefix_low));
        }
        if i + 1 < self.n {
            return None;
        }
        // The window starts at offset + 1 of the previous block; on ties the current (later) block wins.
        let (sh, sl) = (self.suffix_high[offset + 1], self.suffix_low[offset + 1]);
        Some((E::higher(self.prefix_high, sh), E::lower(self.prefix_low, sl)))
    }

    /// The block starting at stream index `base` is complete: its suffix extremes, right to left,
    /// keeping the later index on ties.
    fn complete_block(&mut self, base: usize) {
        let last = self.n - 1;
        self.suffix_high[last] = E::at(self.block_high[last], base + last);
        self.suffix_low[last] = E::at(self.block_low[last], base + last);
        for j in (0..last).rev() {
            let (h, l) = (E::at(self.block_high[j], base + j), E::at(self.block_low[j], base + j));
            self.suffix_high[j] = E::higher(self.suffix_high[j + 1], h);
            self.suffix_low[j] = E::lower(self.suffix_low[j + 1], l);
        }
    }
}

impl MinMax {
    /// Pushes the next high and low; returns ((highest, its age), (lowest, its age)) once `n` are seen.
    #[inline]
    pub fn next(&mut self, high: f64, low: f64) -> Option<((f64, usize), (f64, usize))> {
        let i = self.i;
        self.push(high, low).map(|((hv, hi), (lv, li))| ((hv, i - hi), (lv, i - li)))
    }
}

impl RollingExtremes {
    /// Pushes the next high and low; returns (highest, lowest) of the last `n` once `n` are seen.
    #[inline]
    pub fn next(&mut self, high: f64, low: f64) -> Option<(f64, f64)> {
        self.push(high, low)
    }
}

/// TA-Lib's true range; selects rather than branches (which term wins is up to the market).
#[inline]
fn true_range(high: f64, low: f64, prev_close: f64) -> f64 {
    let tr = high - low;
    let a = (high - prev_close).abs();
    let tr = select_unpredictable(a > tr, a, tr);
    let b = (low - prev_close).abs();
    select_unpredictable(b > tr, b, tr)
}

macro_rules! single_output_kernel {
    ($name:ident, $inner:ty, $field:ident) => {
        impl Kernel for $name {
            fn width(&self) -> usize {
                1
            }
            fn update(&mut self, bar: &Bar, out: &mut [f64]) {
                out[0] = self.$field.next(bar.close);
            }
        }
    };
}

/// SMA / EMA / WMA of the close.
pub struct SmaK {
    pub sma: Sma,
}
single_output_kernel!(SmaK, Sma, sma);
pub struct EmaK {
    pub ema: Ema,
}
single_output_kernel!(EmaK, Ema, ema);
pub struct WmaK {
    pub wma: Wma,
}
single_output_kernel!(WmaK, Wma, wma);

/// DEMA = 2·EMA − EMA(EMA); TEMA = 3·EMA − 3·EMA(EMA) + EMA(EMA(EMA)).
pub struct MultiEma {
    pub emas: Vec<Ema>,
}
impl Kernel for MultiEma {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        let e1 = self.emas[0].next(bar.close);
        let e2 = self.emas[1].next(e1);
        out[0] = if self.emas.len() == 2 {
            (2.0 * e1) - e2
        } else {
            let e3 = self.emas[2].next(e2);
            (3.0 * e1) - (3.0 * e2) + e3
        };
    }
}

/// TRIX: 1-bar rate of change (×100) of a triple EMA.
pub struct Trix {
    pub emas: [Ema; 3],
    pub prev: f64,
}
impl Kernel for Trix {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        let e1 = self.emas[0].next(bar.close);
        let e2 = self.emas[1].next(e1);
        let e = self.emas[2].next(e2);
        out[0] = if self.prev.is_nan() || e.is_nan() {
            f64::NAN
        } else if self.prev != 0.0 {
            ((e / self.prev) - 1.0) * 100.0
        } else {
            0.0
        };
        self.prev = e;
    }
}

/// Wilder-smoothed gains and losses: RSI (`cmo = false`) or CMO (`cmo = true`).
pub struct GainLoss {
    pub n: usize,
    pub cmo: bool,
    pub prev_close: f64,
    pub seen: usize,
    pub gain: f64,
    pub loss: f64,
}
impl GainLoss {
    pub fn new(n: usize, cmo: bool) -> GainLoss {
        GainLoss { n, cmo, prev_close: f64::NAN, seen: 0, gain: 0.0, loss: 0.0 }
    }
}
impl Kernel for GainLoss {
    fn width(&self) -> usize {
        1
    }
    #[inline]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        out[0] = f64::NAN;
        let n = self.n as f64;
        if self.prev_close.is_nan() {
            self.prev_close = bar.close;
            return;
        }
        let diff = bar.close - self.prev_close;
        self.prev_close = bar.close;
        self.seen += 1;
        if self.seen < self.n {
            if diff < 0.0 {
                self.loss -= diff;
            } else {
                self.gain += diff;
            }
            return;
        }
        if self.seen == self.n {
            if diff < 0.0 {
                self.loss -= diff;
            } else {
                self.gain += diff;
            }
            self.loss /= n;
            self.gain /= n;
        } else {
            self.loss *= n - 1.0;
            self.gain *= n - 1.0;
            // Both totals take a term, one of them +0.0 (which leaves a non-negative total's bits
            // unchanged): a select instead of a branch the direction of the market decides.
            let down = diff < 0.0;
            self.loss -= if down { diff } else { 0.0 };
            self.gain += if down { 0.0 } else { diff };
            self.loss /= n;
            self.gain /= n;
        }
        let total = self.gain + self.loss;
        out[0] = if is_zero(total) {
            0.0
        } else if self.cmo {
            100.0 * ((self.gain - self.loss) / total)
        } else {
            100.0 * (self.gain / total)
        };
    }
}

/// MACD with TA-Lib's alignment: the fast EMA is seeded on the `fast` values that end where the slow
/// EMA's seed ends, so both start together; the signal is an EMA of the MACD line.
/// Outputs: line, signal, histogram.
pub struct Macd {
    pub fast: usize,
    pub slow: usize,
    pub seeded: bool,
    pub seed: Vec<f64>,
    pub fast_ema: Ema,
    pub slow_ema: Ema,
    pub signal: Ema,
}
impl Macd {
    pub fn new(fast: usize, slow: usize, signal: usize) -> Macd {
        let (fast, slow) = if slow < fast { (slow, fast) } else { (fast, slow) };
        Macd {
            fast,
            slow,
            seeded: false,
            seed: Vec::with_capacity(slow),
            fast_ema: Ema::new(fast),
            slow_ema: Ema::new(slow),
            signal: Ema::new(signal),
        }
    }
}
impl Kernel for Macd {
    fn width(&self) -> usize {
        3
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        out.fill(f64::NAN);
        let x = bar.close;
        let s = self.slow_ema.next(x);
        let f = if self.seeded {
            self.fast_ema.next(x)
        } else {
            self.seed.push(x);
            if self.seed.len() < self.slow {
                return;
            }
            // Seed the fast EMA on the last `fast` values of the slow seed window.
            let mut f = f64::NAN;
            for &v in &self.seed[self.slow - self.fast..] {
                f = self.fast_ema.next(v);
            }
            self.seeded = true;
            self.seed = Vec::new();
            f
        };
        let line = f - s;
        let sig = self.signal.next(line);
        if !sig.is_nan() {
            out[0] = line;
            out[1] = sig;
            out[2] = line - sig;
        }
    }
}

/// APO / PPO with simple moving averages (TA-Lib's default MA type). Output: fast − slow, or
/// (fast − slow) / slow × 100.
pub struct PriceOsc {
    pub fast: Sma,
    pub slow: Sma,
    pub percent: bool,
}
impl Kernel for PriceOsc {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        let f = self.fast.next(bar.close);
        let s = self.slow.next(bar.close);
        out[0] = if s.is_nan() || f.is_nan() {
            f64::NAN
        } else if !self.percent {
            f - s
        } else if !is_zero(s) {
            ((f - s) / s) * 100.0
        } else {
            0.0
        };
    }
}

/// Bollinger bands (SMA middle, population σ from running sums). Outputs: upper, middle, lower,
/// %b, bandwidth.
pub struct Bbands {
    pub sma: Sma,
    pub var: Var,
    pub up: f64,
    pub down: f64,
}
impl Kernel for Bbands {
    fn width(&self) -> usize {
        5
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        let mid = self.sma.next(bar.close);
        let var = self.var.next(bar.close);
        if mid.is_nan() {
            out.fill(f64::NAN);
            return;
        }
        let sd = if is_zero_or_neg(var) { 0.0 } else { var.sqrt() };
        let upper = mid + sd * self.up;
        let lower = mid - sd * self.down;
        out[0] = upper;
        out[1] = mid;
        out[2] = lower;
        out[3] = if upper > lower { (bar.close - lower) / (upper - lower) } else { f64::NAN };
        out[4] = if mid != 0.0 { (upper - lower) / mid } else { f64::NAN };
    }
}

/// Population standard deviation × `nbdev`.
pub struct StdDev {
    pub var: Var,
    pub nbdev: f64,
}
impl Kernel for StdDev {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        let v = self.var.next(bar.close);
        out[0] = if v.is_nan() {
            f64::NAN
        } else if is_zero_or_neg(v) {
            0.0
        } else if self.nbdev != 1.0 {
            v.sqrt() * self.nbdev
        } else {
            v.sqrt()
        };
    }
}

/// True range, ATR (Wilder, seeded with the mean of the first n true ranges) and NATR.
/// `mode`: 0 = TRANGE, 1 = ATR, 2 = NATR.
pub struct Atr {
    pub n: usize,
    pub mode: u8,
    pub prev_close: f64,
    pub seen: usize,
    pub sum: f64,
    pub atr: f64,
}
impl Atr {
    pub fn new(n: usize, mode: u8) -> Atr {
        Atr { n, mode, prev_close: f64::NAN, seen: 0, sum: 0.0, atr: f64::NAN }
    }
}
impl Kernel for Atr {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        out[0] = f64::NAN;
        if self.prev_close.is_nan() {
            self.prev_close = bar.close;
            return;
        }
        let tr = true_range(bar.high, bar.low, self.prev_close);
        self.prev_close = bar.close;
        if self.mode == 0 {
            out[0] = tr;
            return;
        }
        let n = self.n as f64;
        self.seen += 1;
        if self.seen < self.n {
            self.sum += tr;
            return;
        }
        if self.seen == self.n {
            self.sum += tr;
            self.atr = self.sum / n;
        } else {
            self.atr *= n - 1.0;
            self.atr += tr;
            self.atr /= n;
        }
        out[0] = if self.mode == 1 {
            self.atr
        } else if bar.close != 0.0 {
            (self.atr / bar.close) * 100.0
        } else {
            0.0
        };
    }
}

/// +DI, −DI and ADX (Wilder), with TA-Lib's seeding: n−1 raw sums, then smoothing; ADX is the mean
/// of the first n DX values, then Wilder-smoothed. Outputs: +DI, −DI, ADX.
pub struct Dmi {
    pub n: usize,
    pub prev: Option<(f64, f64, f64)>,
    pub seen: usize,
    pub plus_dm: f64,
    pub minus_dm: f64,
    pub tr: f64,
    pub dx_seen: usize,
    pub dx_sum: f64,
    pub adx: f64,
}
impl Dmi {
    pub fn new(n: usize) -> Dmi {
        Dmi { n, prev: None, seen: 0, plus_dm: 0.0, minus_dm: 0.0, tr: 0.0, dx_seen: 0, dx_sum: 0.0, adx: f64::NAN }
    }
}
impl Kernel for Dmi {
    fn width(&self) -> usize {
        3
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        out.fill(f64::NAN);
        let Some((ph, pl, pc)) = self.prev else {
            self.prev = Some((bar.high, bar.low, bar.close));
            return;
        };
        self.prev = Some((bar.high, bar.low, bar.close));
        let diff_p = bar.high - ph;
        let diff_m = pl - bar.low;
        let pdm = select_unpredictable(diff_p > 0.0 && diff_p > diff_m, diff_p, 0.0);
        let mdm = select_unpredictable(diff_m > 0.0 && diff_m > diff_p, diff_m, 0.0);
        let tr = true_range(bar.high, bar.low, pc);
        let n = self.n as f64;
        self.seen += 1;
        if self.seen < self.n {
            self.plus_dm += pdm;
            self.minus_dm += mdm;
            self.tr += tr;
            return;
        }
        self.plus_dm = self.plus_dm - (self.plus_dm / n) + pdm;
        self.minus_dm = self.minus_dm - (self.minus_dm / n) + mdm;
        self.tr = self.tr - (self.tr / n) + tr;
        // TA-Lib leaves the DX sum and the ADX untouched when TR or the DI sum is zero.
        let dx = if is_zero(self.tr) {
            out[0] = 0.0;
            out[1] = 0.0;
            None
        } else {
            let (pdi, mdi) = (100.0 * (self.plus_dm / self.tr), 100.0 * (self.minus_dm / self.tr));
            out[0] = pdi;
            out[1] = mdi;
            let sum = mdi + pdi;
            (!is_zero(sum)).then(|| 100.0 * ((mdi - pdi).abs() / sum))
        };
        self.dx_seen += 1;
        if self.dx_seen <= self.n {
            if let Some(dx) = dx {
                self.dx_sum += dx;
            }
            if self.dx_seen == self.n {
                self.adx = self.dx_sum / n;
                out[2] = self.adx;
            }
        } else {
            if let Some(dx) = dx {
                self.adx = ((self.adx * (n - 1.0)) + dx) / n;
            }
            out[2] = self.adx;
        }
    }
}

/// Stochastic: fast %K over `k` bars, slow %K = SMA(slow_k) of it, %D = SMA(d) of slow %K.
/// Outputs: slow %K, slow %D.
pub struct Stoch {
    pub range: RollingExtremes,
    pub slow_k: Sma,
    pub slow_d: Sma,
}
impl Kernel for Stoch {
    fn width(&self) -> usize {
        2
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        out.fill(f64::NAN);
        let Some((hh, ll)) = self.range.next(bar.high, bar.low) else { return };
        let diff = (hh - ll) / 100.0;
        let fast_k = if diff != 0.0 { (bar.close - ll) / diff } else { 0.0 };
        let k = self.slow_k.next(fast_k);
        if k.is_nan() {
            return;
        }
        let d = self.slow_d.next(k);
        if !d.is_nan() {
            out[0] = k;
            out[1] = d;
        }
    }
}

/// Williams %R over `n` bars.
pub struct Willr {
    pub range: RollingExtremes,
}
impl Kernel for Willr {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        out[0] = match self.range.next(bar.high, bar.low) {
            None => f64::NAN,
            Some((hh, ll)) => {
                let diff = (hh - ll) / -100.0;
                if diff != 0.0 {
                    (hh - bar.close) / diff
                } else {
                    0.0
                }
            }
        };
    }
}

/// Aroon down and up over `n + 1` bars; ties go to the most recent bar. Outputs: down, up, oscillator.
pub struct Aroon {
    pub n: usize,
    pub range: MinMax,
}
impl Kernel for Aroon {
    fn width(&self) -> usize {
        3
    }
    #[inline]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        out.fill(f64::NAN);
        if let Some(((_, hi_age), (_, lo_age))) = self.range.next(bar.high, bar.low) {
            let factor = 100.0 / self.n as f64;
            let up = factor * (self.n - hi_age) as f64;
            let down = factor * (self.n - lo_age) as f64;
            out[0] = down;
            out[1] = up;
            out[2] = up - down;
        }
    }
}

/// Commodity channel index: (TP − SMA(TP)) / (0.015 · mean absolute deviation), O(n) per bar.
pub struct Cci {
    pub n: usize,
    /// TA-Lib's circular buffer, summed in physical (not time) order as TA-Lib does.
    pub buffer: Vec<f64>,
    pub next: usize,
    pub seen: usize,
}
impl Kernel for Cci {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        let tp = (bar.high + bar.low + bar.close) / 3.0;
        if self.buffer.len() < self.n {
            self.buffer.resize(self.n, 0.0);
        }
        self.buffer[self.next] = tp;
        self.next += 1;
        if self.next == self.n {
            self.next = 0;
        }
        self.seen += 1;
        if self.seen < self.n {
            out[0] = f64::NAN;
            return;
        }
        let n = self.n as f64;
        let mut sum = 0.0;
        for &v in &self.buffer {
            sum += v;
        }
        let avg = sum / n;
        let mut dev = 0.0;
        for &v in &self.buffer {
            dev += (v - avg).abs();
        }
        let num = tp - avg;
        // Zero tests as TA-Lib 0.6 makes them: a flat window gives 0, not a ratio of rounding residues.
        out[0] = if !is_zero(num) && !is_zero(dev) { num / (0.015 * (dev / n)) } else { 0.0 };
    }
}

/// Momentum (x − x[n]) or rate of change ((x / x[n]) − 1) × 100.
pub struct Change {
    pub earlier: DelayLine,
    pub percent: bool,
}
impl Kernel for Change {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        let Some(old) = self.earlier.push(bar.close) else {
            out[0] = f64::NAN;
            return;
        };
        out[0] = if !self.percent {
            bar.close - old
        } else if old != 0.0 {
            ((bar.close / old) - 1.0) * 100.0
        } else {
            0.0
        };
    }
}

/// On-balance volume, starting from the first bar's volume.
pub struct Obv {
    pub prev: Option<(f64, f64)>,
}
impl Kernel for Obv {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        let obv = match self.prev {
            None => bar.volume,
            // Both candidates computed, one selected: the close's direction is not predictable.
            Some((pc, obv)) => select_unpredictable(
                bar.close > pc,
                obv + bar.volume,
                select_unpredictable(bar.close < pc, obv - bar.volume, obv),
            ),
        };
        self.prev = Some((bar.close, obv));
        out[0] = obv;
    }
}

fn money_flow_multiplier(bar: &Bar) -> f64 {
    let range = bar.high - bar.low;
    if range > 0.0 {
        (((bar.close - bar.low) - (bar.high - bar.close)) / range) * bar.volume
    } else {
        0.0
    }
}

/// Chaikin accumulation/distribution line.
pub struct Ad {
    pub ad: f64,
}
impl Kernel for Ad {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        self.ad += money_flow_multiplier(bar);
        out[0] = self.ad;
    }
}

/// Chaikin oscillator: EMA(fast) − EMA(slow) of the A/D line, both seeded with the first A/D value
/// (TA-Lib's convention), output from bar `slow − 1`.
pub struct Adosc {
    pub ad: f64,
    pub k_fast: f64,
    pub k_slow: f64,
    pub fast: f64,
    pub slow: f64,
    pub seen: usize,
    pub lookback: usize,
}
impl Kernel for Adosc {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        self.ad += money_flow_multiplier(bar);
        if self.seen == 0 {
            self.fast = self.ad;
            self.slow = self.ad;
        } else {
            self.fast = (self.k_fast * self.ad) + ((1.0 - self.k_fast) * self.fast);
            self.slow = (self.k_slow * self.ad) + ((1.0 - self.k_slow) * self.slow);
        }
        self.seen += 1;
        out[0] = if self.seen > self.lookback { self.fast - self.slow } else { f64::NAN };
    }
}

/// Money flow index over `n` bars: 100 · positive flow / total flow, with TA-Lib 0.6's rules: a
/// typical-price change within a relative dead zone (1e-14 of the two prices' magnitude) carries no
/// flow; after `n` bars in a row without flow the sums are reset to exactly zero (dropping rounding
/// residue); an empty window gives 0; the ratio is clamped into [0, 100].
pub struct Mfi {
    pub n: usize,
    pub prev_tp: f64,
    pub flows: VecDeque<(f64, f64)>,
    pub pos: f64,
    pub neg: f64,
    pub null_run: usize,
}
impl Kernel for Mfi {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        out[0] = f64::NAN;
        let tp = (bar.high + bar.low + bar.close) / 3.0;
        if self.prev_tp.is_nan() {
            self.prev_tp = tp;
            return;
        }
        if self.flows.len() == self.n {
            if let Some((op, om)) = self.flows.pop_front() {
                self.pos -= op;
                self.neg -= om;
            }
        }
        let diff = tp - self.prev_tp;
        let scale = tp.abs() + self.prev_tp.abs();
        self.prev_tp = tp;
        let flow = if diff.abs() <= TA_EPSILON * scale { 0.0 } else { tp * bar.volume };
        let (p, m) = if diff < 0.0 { (0.0, flow) } else { (flow, 0.0) };
        self.flows.push_back((p, m));
        self.pos += p;
        self.neg += m;
        self.null_run = if flow == 0.0 { self.null_run + 1 } else { 0 };
        if self.null_run >= self.n {
            self.null_run = self.n;
            self.pos = 0.0;
            self.neg = 0.0;
        }
        if self.flows.len() == self.n {
            let total = self.pos + self.neg;
            let pos = self.pos.clamp(0.0, total.max(0.0));
            out[0] = if total <= 0.0 { 0.0 } else { 100.0 * (pos / total) };
        }
    }
}

/// Ultimate oscillator over three periods (buying pressure / true range, weighted 4:2:1).
pub struct Ultosc {
    pub periods: [usize; 3],
    pub prev_close: f64,
    pub window: VecDeque<(f64, f64)>,
    pub sums: [(f64, f64); 3],
}
impl Kernel for Ultosc {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        out[0] = f64::NAN;
        if self.prev_close.is_nan() {
            self.prev_close = bar.close;
            return;
        }
        let true_low = bar.low.min(self.prev_close);
        let bp = bar.close - true_low;
        let tr = true_range(bar.high, bar.low, self.prev_close);
        self.prev_close = bar.close;
        self.window.push_back((bp, tr));
        let len = self.window.len();
        for k in 0..3 {
            self.sums[k].0 += bp;
            self.sums[k].1 += tr;
        }
        let longest = self.periods[2];
        if len >= longest {
            let mut acc = 0.0;
            for (k, w) in [4.0, 2.0, 1.0].into_iter().enumerate() {
                if !is_zero(self.sums[k].1) {
                    acc += w * (self.sums[k].0 / self.sums[k].1);
                }
            }
            out[0] = 100.0 * (acc / 7.0);
        }
        // Keep each sum over its last (period − 1) terms for the next bar, as TA-Lib does.
        for (k, &p) in self.periods.iter().enumerate() {
            if len >= p {
                let (obp, otr) = self.window[len - p];
                self.sums[k].0 -= obp;
                self.sums[k].1 -= otr;
            }
        }
        if len >= longest {
            self.window.pop_front();
        }
    }
}

/// Log return of the close over `lag` bars.
pub struct LogReturn {
    pub earlier: DelayLine,
}
impl Kernel for LogReturn {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        let Some(old) = self.earlier.push(bar.close) else {
            out[0] = f64::NAN;
            return;
        };
        out[0] = if old > 0.0 && bar.close > 0.0 { (bar.close / old).ln() } else { f64::NAN };
    }
}

/// Rolling realised volatility: sample standard deviation of 1-bar log returns over `n` bars.
pub struct RealizedVol {
    pub n: usize,
    pub prev: f64,
    pub returns: Rolling<f64>,
}
impl Kernel for RealizedVol {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        out[0] = f64::NAN;
        let prev = std::mem::replace(&mut self.prev, bar.close);
        if prev.is_nan() {
            return;
        }
        let r = if prev > 0.0 && bar.close > 0.0 { (bar.close / prev).ln() } else { f64::NAN };
        if self.returns.push(r) {
            // Two-pass over the window: exact and O(n) per bar, n is small.
            let returns = self.returns.as_slice();
            let mean = lane_sum(returns, |_, x| x) / self.n as f64;
            let ss = lane_sum(returns, |_, x| (x - mean) * (x - mean));
            out[0] = (ss / (self.n as f64 - 1.0)).sqrt();
        }
    }
}

/// Kaufman adaptive moving average (TA-Lib's KAMA: efficiency ratio over `n` bars, fast 2 / slow 30
/// smoothing constants, seeded with the close before the first output).
pub struct Kama {
    pub n: usize,
    pub window: VecDeque<f64>,
    pub sum_roc: f64,
    pub kama: f64,
}
impl Kernel for Kama {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        out[0] = f64::NAN;
        let x = bar.close;
        let n = self.n;
        self.window.push_back(x);
        let len = self.window.len();
        if len <= n {
            if len >= 2 {
                self.sum_roc += (self.window[len - 2] - x).abs();
            }
            return;
        }
        let const_max = 2.0 / (30.0 + 1.0);
        let const_diff = 2.0 / (2.0 + 1.0) - const_max;
        let prev_x = self.window[len - 2];
        if len == n + 1 {
            // First output: the seed is the previous close.
            self.sum_roc += (prev_x - x).abs();
            self.kama = prev_x;
        } else {
            // Window is [x(t−n−1) … x(t)]: drop the oldest step, add the newest.
            let trailing = self.window[0];
            let trailing_next = self.window[1];
            self.sum_roc -= (trailing - trailing_next).abs();
            self.sum_roc += (x - prev_x).abs();
            self.window.pop_front();
        }
        let oldest = self.window[0];
        let period_roc = x - oldest;
        let er =
            if self.sum_roc <= period_roc || is_zero(self.sum_roc) { 1.0 } else { (period_roc / self.sum_roc).abs() };
        let mut sc = (er * const_diff) + const_max;
        sc *= sc;
        self.kama = ((x - self.kama) * sc) + self.kama;
        out[0] = self.kama;
    }
}

/// ADXR: (ADX now + ADX n−1 bars ago) / 2.
pub struct Adxr {
    pub dmi: Dmi,
    pub adx: VecDeque<f64>,
    pub n: usize,
}
impl Kernel for Adxr {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        let mut d = [f64::NAN; 3];
        self.dmi.update(bar, &mut d);
        out[0] = f64::NAN;
        if d[2].is_nan() {
            return;
        }
        self.adx.push_back(d[2]);
        if self.adx.len() > self.n {
            self.adx.pop_front();
        }
        if self.adx.len() == self.n {
            out[0] = (d[2] + self.adx[0]) / 2.0;
        }
    }
}

/// MIDPOINT (close) or MIDPRICE (high/low): (highest + lowest) / 2 over `n` bars.
pub struct Mid {
    pub range: RollingExtremes,
    pub use_close: bool,
}
impl Kernel for Mid {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        let (h, l) = if self.use_close { (bar.close, bar.close) } else { (bar.high, bar.low) };
        out[0] = match self.range.next(h, l) {
            Some((hh, ll)) => (hh + ll) / 2.0,
            None => f64::NAN,
        };
    }
}

/// Per-bar prices: balance of power, median, typical and weighted close price.
pub struct BarPrices;
impl Kernel for BarPrices {
    fn width(&self) -> usize {
        4
    }
    #[inline(always)]
    fn update(&mut self, b: &Bar, out: &mut [f64]) {
        let range = b.high - b.low;
        out[0] = if is_zero_or_neg(range) { 0.0 } else { (b.close - b.open) / range };
        out[1] = (b.high + b.low) / 2.0;
        out[2] = (b.high + b.low + b.close) / 3.0;
        out[3] = (b.high + b.low + (b.close * 2.0)) / 4.0;
    }
}

/// Keltner channel: EMA(n) of the close ± `mult` × ATR(n). Outputs: upper, middle, lower.
pub struct Keltner {
    pub ema: Ema,
    pub atr: Atr,
    pub mult: f64,
}
impl Kernel for Keltner {
    fn width(&self) -> usize {
        3
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        let mid = self.ema.next(bar.close);
        let mut atr = [f64::NAN];
        self.atr.update(bar, &mut atr);
        if mid.is_nan() || atr[0].is_nan() {
            out.fill(f64::NAN);
            return;
        }
        out[0] = mid + self.mult * atr[0];
        out[1] = mid;
        out[2] = mid - self.mult * atr[0];
    }
}

/// Donchian channel: highest high and lowest low of the last `n` bars. Outputs: upper, middle, lower.
pub struct Donchian {
    pub range: RollingExtremes,
}
impl Kernel for Donchian {
    fn width(&self) -> usize {
        3
    }
    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        match self.range.next(bar.high, bar.low) {
            Some((hh, ll)) => {
                out[0] = hh;
                out[1] = (hh + ll) / 2.0;
                out[2] = ll;
            }
            None => out.fill(f64::NAN),
        }
    }
}

/// Rolling VWAP of the typical price over `n` bars, and the close's distance from it in σ of the
/// close over the same window. Outputs: vwap, distance.
pub struct RollingVwap {
    pub n: usize,
    pub window: Rolling<(f64, f64, f64)>,
}
impl Kernel for RollingVwap {
    fn width(&self) -> usize {
        2
    }
    #[inline(always)]
    fn update(&mut self, b: &Bar, out: &mut [f64]) {
        let tp = (b.high + b.low + b.close) / 3.0;
        out.fill(f64::NAN);
        if !self.window.push((tp * b.volume, b.volume, b.close)) {
            return;
        }
        let window = self.window.as_slice();
        let (pv, v) = (lane_sum(window, |_, w| w.0), lane_sum(window, |_, w| w.1));
        if v <= 0.0 {
            return;
        }
        let vwap = pv / v;
        out[0] = vwap;
        let n = self.n as f64;
        let mean = lane_sum(window, |_, w| w.2) / n;
        let sd = (lane_sum(window, |_, w| (w.2 - mean) * (w.2 - mean)) / n).sqrt();
        out[1] = if sd > 0.0 { (b.close - vwap) / sd } else { 0.0 };
    }
}

/// VWAP anchored at 00:00 UTC each day (the session), from the session's first bar.
pub struct SessionVwap {
    pub day: i64,
    pub pv: f64,
    pub v: f64,
}
impl Kernel for SessionVwap {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, b: &Bar, out: &mut [f64]) {
        let day = b.ts.div_euclid(86_400_000);
        if day != self.day {
            self.day = day;
            self.pv = 0.0;
            self.v = 0.0;
        }
        let tp = (b.high + b.low + b.close) / 3.0;
        self.pv += tp * b.volume;
        self.v += b.volume;
        out[0] = if self.v > 0.0 { self.pv / self.v } else { f64::NAN };
    }
}

/// Which input a rolling z-score reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZInput {
    Close,
    Volume,
}

/// (x − mean) / population σ over the last `n` values of the close or the volume.
pub struct ZScore {
    pub n: usize,
    pub input: ZInput,
    pub window: Rolling<f64>,
}
impl Kernel for ZScore {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, b: &Bar, out: &mut [f64]) {
        let x = if self.input == ZInput::Close { b.close } else { b.volume };
        out[0] = f64::NAN;
        if self.window.push(x) {
            let n = self.n as f64;
            let window = self.window.as_slice();
            let mean = lane_sum(window, |_, v| v) / n;
            let sd = (lane_sum(window, |_, v| (v - mean) * (v - mean)) / n).sqrt();
            out[0] = if sd > 0.0 { (x - mean) / sd } else { 0.0 };
        }
    }
}

/// Range-based volatility over `n` bars: Parkinson sqrt(Σ ln(H/L)² / (4 ln 2 · n)) and
/// Garman–Klass sqrt(Σ [½ ln(H/L)² − (2 ln 2 − 1) ln(C/O)²] / n). Outputs: parkinson, garman_klass.
pub struct RangeVol {
    pub n: usize,
    pub window: Rolling<(f64, f64)>,
}
impl Kernel for RangeVol {
    fn width(&self) -> usize {
        2
    }
    #[inline(always)]
    fn update(&mut self, b: &Bar, out: &mut [f64]) {
        let valid = b.high > 0.0 && b.low > 0.0 && b.open > 0.0 && b.close > 0.0;
        let hl = if valid { (b.high / b.low).ln() } else { f64::NAN };
        let co = if valid { (b.close / b.open).ln() } else { f64::NAN };
        out.fill(f64::NAN);
        if self.window.push((hl, co)) {
            let n = self.n as f64;
            let ln2 = std::f64::consts::LN_2;
            let window = self.window.as_slice();
            let park = lane_sum(window, |_, w| w.0 * w.0) / (4.0 * ln2 * n);
            let gk = lane_sum(window, |_, w| 0.5 * w.0 * w.0 - (2.0 * ln2 - 1.0) * w.1 * w.1) / n;
            out[0] = park.sqrt();
            out[1] = if gk >= 0.0 { gk.sqrt() } else { 0.0 };
        }
    }
}

/// Sample skewness and excess kurtosis of 1-bar log returns over `n` bars. Outputs: skew, kurtosis.
pub struct ReturnMoments {
    pub n: usize,
    pub prev: f64,
    pub returns: Rolling<f64>,
}
impl Kernel for ReturnMoments {
    fn width(&self) -> usize {
        2
    }
    #[inline(always)]
    fn update(&mut self, b: &Bar, out: &mut [f64]) {
        out.fill(f64::NAN);
        let prev = std::mem::replace(&mut self.prev, b.close);
        if prev.is_nan() {
            return;
        }
        if !self.returns.push(if prev > 0.0 && b.close > 0.0 { (b.close / prev).ln() } else { f64::NAN }) {
            return;
        }
        let n = self.n as f64;
        let mean = lane_sum(self.returns.as_slice(), |_, r| r) / n;
        let returns = self.returns.as_slice();
        let m2 = lane_sum(returns, |_, r| (r - mean) * (r - mean)) / n;
        let m3 = lane_sum(returns, |_, r| (r - mean) * (r - mean) * (r - mean)) / n;
        let m4 = lane_sum(returns, |_, r| (r - mean) * (r - mean) * (r - mean) * (r - mean)) / n;
        if m2 > 0.0 {
            out[0] = m3 / m2.powf(1.5);
            out[1] = m4 / (m2 * m2) - 3.0;
        } else {
            out[0] = 0.0;
            out[1] = 0.0;
        }
    }
}

/// Hour of day and day of week (UTC) as points on the unit circle. Outputs: hour_sin, hour_cos,
/// dow_sin, dow_cos.
#[derive(Default)]
pub struct Calendar {
    /// The day (days since the epoch) whose weekday encoding `dow` holds: it changes once a day,
    /// so its sine and cosine are computed once a day.
    day: Option<i64>,
    dow: [f64; 2],
}
impl Kernel for Calendar {
    fn width(&self) -> usize {
        4
    }
    #[inline(always)]
    fn update(&mut self, b: &Bar, out: &mut [f64]) {
        let tau = std::f64::consts::TAU;
        let ms_of_day = b.ts.rem_euclid(86_400_000) as f64;
        let hour = ms_of_day / 3_600_000.0;
        let day = b.ts.div_euclid(86_400_000);
        if self.day != Some(day) {
            let dow = (day + 3).rem_euclid(7) as f64; // Monday = 0
            self.dow = [(tau * dow / 7.0).sin(), (tau * dow / 7.0).cos()];
            self.day = Some(day);
        }
        out[0] = (tau * hour / 24.0).sin();
        out[1] = (tau * hour / 24.0).cos();
        out[2] = self.dow[0];
        out[3] = self.dow[1];
    }
}

/// Ichimoku lines known at bar t: tenkan and kijun (midpoints of the last 9 and 26 bars), and the
/// senkou spans as plotted at t — computed `kijun` bars earlier, so they use no future bar. The
/// chikou span (the close plotted 26 bars back) would look forward and does not exist here.
/// Outputs: tenkan, kijun, senkou_a, senkou_b.
pub struct Ichimoku {
    pub tenkan: RollingExtremes,
    pub kijun: RollingExtremes,
    pub senkou: RollingExtremes,
    pub shift: usize,
    pub pending: VecDeque<(f64, f64)>,
}
impl Kernel for Ichimoku {
    fn width(&self) -> usize {
        4
    }
    #[inline(always)]
    fn update(&mut self, b: &Bar, out: &mut [f64]) {
        let mid = |r: Option<(f64, f64)>| r.map_or(f64::NAN, |(h, l)| (h + l) / 2.0);
        let t = mid(self.tenkan.next(b.high, b.low));
        let k = mid(self.kijun.next(b.high, b.low));
        let s = mid(self.senkou.next(b.high, b.low));
        out[0] = t;
        out[1] = k;
        // Spans computed now are plotted `shift` bars ahead: at t we show the ones computed at t − shift.
        self.pending.push_back(((t + k) / 2.0, s));
        if self.pending.len() > self.shift {
            let (a, bb) = self.pending.pop_front().unwrap_or((f64::NAN, f64::NAN));
            out[2] = a;
            out[3] = bb;
        } else {
            out[2] = f64::NAN;
            out[3] = f64::NAN;
        }
    }
}

/// Pivot levels from the previous completed UTC session (day), as the close's relative distance
/// from each level, (close − level) / close. Outputs: pivot, classic r1, s1, r2, s2, fibonacci r1,
/// s1, r2, s2, camarilla r3, s3.
pub struct Pivots {
    pub day: i64,
    pub current: Option<(f64, f64, f64)>,
    pub previous: Option<(f64, f64, f64)>,
}
impl Kernel for Pivots {
    fn width(&self) -> usize {
        11
    }
    #[inline(always)]
    fn update(&mut self, b: &Bar, out: &mut [f64]) {
        let day = b.ts.div_euclid(86_400_000);
        if day != self.day {
            if self.current.is_some() {
                self.previous = self.current.take();
            }
            self.day = day;
        }
        // The previous session's levels are fixed before this bar updates the current session.
        match self.previous {
            None => out.fill(f64::NAN),
            Some((h, l, c)) => {
                let p = (h + l + c) / 3.0;
                let r = h - l;
                let levels = [
                    p,
                    2.0 * p - l,
                    2.0 * p - h,
                    p + r,
                    p - r,
                    p + 0.382 * r,
                    p - 0.382 * r,
                    p + 0.618 * r,
                    p - 0.618 * r,
                    c + r * 1.1 / 4.0,
                    c - r * 1.1 / 4.0,
                ];
                for (o, level) in out.iter_mut().zip(levels) {
                    *o = if b.close != 0.0 { (b.close - level) / b.close } else { f64::NAN };
                }
            }
        }
        self.current = Some(match self.current {
            None => (b.high, b.low, b.close),
            Some((h, l, _)) => (h.max(b.high), l.min(b.low), b.close),
        });
    }
}

/// Swing highs and lows with `k` bars on each side, confirmed `k` bars after the swing (so known
/// only then), and the close's distance to the nearest confirmed resistance above and support below.
/// Outputs (relative to the close): last swing high, last swing low, nearest resistance, nearest
/// support — (level − close) / close, NaN when there is none.
pub struct Swings {
    pub k: usize,
    pub window: VecDeque<(f64, f64)>,
    pub highs: VecDeque<f64>,
    pub lows: VecDeque<f64>,
}
impl Kernel for Swings {
    fn width(&self) -> usize {
        4
    }
    #[inline(always)]
    fn update(&mut self, b: &Bar, out: &mut [f64]) {
        self.window.push_back((b.high, b.low));
        if self.window.len() > 2 * self.k + 1 {
            self.window.pop_front();
        }
        if self.window.len() == 2 * self.k + 1 {
            // The middle bar is a swing if it is strictly beyond every other bar of the window.
            let (mh, ml) = self.window[self.k];
            let others = self.window.iter().enumerate().filter(|(j, _)| *j != self.k);
            if others.clone().all(|(_, w)| w.0 < mh) {
                self.highs.push_back(mh);
            }
            if others.clone().all(|(_, w)| w.1 > ml) {
                self.lows.push_back(ml);
            }
            const KEEP: usize = 20;
            while self.highs.len() > KEEP {
                self.highs.pop_front();
            }
            while self.lows.len() > KEEP {
                self.lows.pop_front();
            }
        }
        let c = b.close;
        let rel = |level: Option<f64>| level.map_or(f64::NAN, |l| if c != 0.0 { (l - c) / c } else { f64::NAN });
        out[0] = rel(self.highs.back().copied());
        out[1] = rel(self.lows.back().copied());
        // The nearest level above and below the close (levels are finite prices): plain loops over
        // the two queues' slices, no iterator chain.
        let (mut above, mut below) = (f64::INFINITY, f64::NEG_INFINITY);
        let (h1, h2) = self.highs.as_slices();
        let (l1, l2) = self.lows.as_slices();
        for part in [h1, h2, l1, l2] {
            for &l in part {
                // Selects rather than branches: which level is nearest is unpredictable bar to bar.
                above = above.min(if l > c { l } else { f64::INFINITY });
                below = below.max(if l < c { l } else { f64::NEG_INFINITY });
            }
        }
        out[2] = rel(above.is_finite().then_some(above));
        out[3] = rel(below.is_finite().then_some(below));
    }
}

/// Features of a higher timeframe on lower-timeframe bars, joined as-of: base bars are aggregated
/// into UTC-aligned bars of `step_ms`; a higher-timeframe bar is fed to the inner kernels only once
/// it has closed, so at base bar t the outputs are those of the last higher-timeframe bar that had
/// closed by t's close. A bucket counts as closed when the base bar ending at its boundary arrives
/// (the base bar length is learned from the spacing seen so far), or when a bar of a later bucket
/// arrives (after a gap).
pub struct HigherTimeframe {
    pub step_ms: i64,
    pub inner: Vec<Box<dyn Kernel>>,
    pub width: usize,
    pub bucket: Option<(i64, Bar)>,
    pub base_step: Option<i64>,
    pub last_ts: Option<i64>,
    pub values: Vec<f64>,
}

impl HigherTimeframe {
    fn close_bucket(&mut self) {
        if let Some((start, bar)) = self.bucket.take() {
            let htf_bar = Bar { ts: start, ..bar };
            let mut at = 0;
            for k in &mut self.inner {
                let w = k.width();
                k.update(&htf_bar, &mut self.values[at..at + w]);
                at += w;
            }
        }
    }
}

impl Kernel for HigherTimeframe {
    fn width(&self) -> usize {
        self.width
    }
    #[inline(always)]
    fn update(&mut self, b: &Bar, out: &mut [f64]) {
        if let Some(prev) = self.last_ts {
            let d = b.ts - prev;
            if d > 0 {
                self.base_step = Some(self.base_step.map_or(d, |s| s.min(d)));
            }
        }
        self.last_ts = Some(b.ts);
        let start = b.ts - b.ts.rem_euclid(self.step_ms);
        if self.bucket.as_ref().is_some_and(|(s, _)| *s != start) {
            self.close_bucket();
        }
        match &mut self.bucket {
            Some((_, agg)) => {
                agg.high = agg.high.max(b.high);
                agg.low = agg.low.min(b.low);
                agg.close = b.close;
                agg.volume += b.volume;
            }
            None => self.bucket = Some((start, *b)),
        }
        if self.base_step.is_some_and(|s| b.ts + s >= start + self.step_ms) {
            self.close_bucket();
        }
        out.copy_from_slice(&self.values);
    }
}

/// Tillson's T3: six chained EMAs (each seeded with the mean of its first `n` inputs, updated as
/// k·x + (1 − k)·e like TA-Lib's T3) combined with the volume-factor coefficients.
pub struct T3 {
    pub n: usize,
    pub k: f64,
    pub v: f64,
    /// (count, running sum, value) per stage.
    pub stages: [(usize, f64, f64); 6],
}
impl Kernel for T3 {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, b: &Bar, out: &mut [f64]) {
        let mut x = b.close;
        out[0] = f64::NAN;
        for s in 0..6 {
            let (count, sum, value) = &mut self.stages[s];
            if *count < self.n {
                *sum += x;
                *count += 1;
                if *count < self.n {
                    return;
                }
                *value = *sum / self.n as f64;
            } else {
                *value = (self.k * x) + ((1.0 - self.k) * *value);
            }
            x = *value;
        }
        let v = self.v;
        let t = v * v;
        let c1 = -t * v;
        let c2 = 3.0 * (t - c1);
        let c3 = -6.0 * t - 3.0 * (v - c1);
        let c4 = 1.0 + 3.0 * v - c1 + 3.0 * t;
        let e = |i: usize| self.stages[i].2;
        out[0] = c1 * e(5) + c2 * e(4) + c3 * e(3) + c4 * e(2);
    }
}

/// Stochastic RSI: fast %K of the RSI over `fastk` RSI values, and its `fastd` SMA. Outputs: k, d.
pub struct StochRsi {
    pub rsi: GainLoss,
    pub range: RollingExtremes,
    pub fast_d: Sma,
}
impl Kernel for StochRsi {
    fn width(&self) -> usize {
        2
    }
    #[inline(always)]
    fn update(&mut self, b: &Bar, out: &mut [f64]) {
        out.fill(f64::NAN);
        let mut r = [f64::NAN];
        self.rsi.update(b, &mut r);
        if r[0].is_nan() {
            return;
        }
        let Some((hh, ll)) = self.range.next(r[0], r[0]) else { return };
        let diff = (hh - ll) / 100.0;
        let k = if !is_zero(diff) { (r[0] - ll) / diff } else { 0.0 };
        let d = self.fast_d.next(k);
        if !d.is_nan() {
            out[0] = k;
            out[1] = d;
        }
    }
}

/// Parabolic SAR with TA-Lib's bootstrap: the first bar is consumed; the direction at the second
/// bar is short when its −DM is positive, else long; the first bar's low (long) or high (short) is
/// the first SAR. The SAR is kept within the last two bars' range, as Wilder requires.
pub struct Sar {
    pub accel: f64,
    pub max: f64,
    pub first: Option<(f64, f64)>,
    pub started: bool,
    pub long: bool,
    pub sar: f64,
    pub ep: f64,
    pub af: f64,
    /// High and low of the previous bar.
    pub last: (f64, f64),
}
impl Kernel for Sar {
    fn width(&self) -> usize {
        1
    }
    #[inline(always)]
    fn update(&mut self, b: &Bar, out: &mut [f64]) {
        out[0] = f64::NAN;
        let accel = self.accel.min(self.max);
        if !self.started {
            let Some((h0, l0)) = self.first else {
                self.first = Some((b.high, b.low));
                return;
            };
            let diff_p = b.high - h0;
            let diff_m = l0 - b.low;
            let minus_dm = if diff_m > 0.0 && diff_p < diff_m { diff_m } else { 0.0 };
            self.long = minus_dm <= 0.0;
            if self.long {
                self.ep = b.high;
                self.sar = l0;
            } else {
                self.ep = b.low;
                self.sar = h0;
            }
            self.af = accel;
            self.started = true;
            // TA-Lib seeds "yesterday" with today's range for the first step.
            self.last = (b.high, b.low);
        }
        let (prev_high, prev_low) = self.last;
        let (new_high, new_low) = (b.high, b.low);
        self.last = (new_high, new_low);
        if self.long {
            if new_low <= self.sar {
                self.long = false;
                self.sar = self.ep.max(prev_high).max(new_high);
                out[0] = self.sar;
                self.af = accel;
                self.ep = new_low;
                self.sar += self.af * (self.ep - self.sar);
                self.sar = self.sar.max(prev_high).max(new_high);
            } else {
                out[0] = self.sar;
                if new_high > self.ep {
                    self.ep = new_high;
                    self.af = (self.af + accel).min(self.max);
                }
                self.sar += self.af * (self.ep - self.sar);
                self.sar = self.sar.min(prev_low).min(new_low);
            }
        } else if new_high >= self.sar {
            self.long = true;
            self.sar = self.ep.min(prev_low).min(new_low);
            out[0] = self.sar;
            self.af = accel;
            self.ep = new_high;
            self.sar += self.af * (self.ep - self.sar);
            self.sar = self.sar.min(prev_low).min(new_low);
        } else {
            out[0] = self.sar;
            if new_low < self.ep {
                self.ep = new_low;
                self.af = (self.af + accel).min(self.max);
            }
            self.sar += self.af * (self.ep - self.sar);
            self.sar = self.sar.max(prev_high).max(new_high);
        }
    }
}

#[cfg(test)]
mod textbook {
    //! Indicators TA-Lib lacks, checked on small series computed by hand.
    use super::*;

    /// The block algorithm against a plain scan of the window, on prices with many ties (values
    /// from a small set), for window lengths that do and do not divide the series.
    #[test]
    fn rolling_extremes_equal_a_scan_with_the_latest_tie() {
        let mut state = 12345u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) % 7) as f64
        };
        let highs: Vec<f64> = (0..500).map(|_| next()).collect();
        let lows: Vec<f64> = (0..500).map(|_| -next()).collect();
        for n in [1, 2, 3, 5, 14, 26] {
            let mut mm = MinMax::new(n);
            let mut values_only = RollingExtremes::new(n);
            for i in 0..highs.len() {
                let got = mm.next(highs[i], lows[i]);
                assert_eq!(values_only.next(highs[i], lows[i]), got.map(|((h, _), (l, _))| (h, l)));
                if i + 1 < n {
                    assert_eq!(got, None);
                    continue;
                }
                let window = i + 1 - n..=i;
                let hi = window.clone().max_by(|&a, &b| highs[a].total_cmp(&highs[b]).then(a.cmp(&b))).unwrap();
                let lo = window.min_by(|&a, &b| lows[a].total_cmp(&lows[b]).then(b.cmp(&a))).unwrap();
                assert_eq!(got, Some(((highs[hi], i - hi), (lows[lo], i - lo))), "n = {n}, bar {i}");
            }
        }
    }

    #[test]
    fn rolling_windows_are_contiguous_and_oldest_first() {
        let mut w = Rolling::new(3);
        assert!(!w.push(1.0));
        assert_eq!(w.as_slice(), &[1.0]);
        assert!(!w.push(2.0));
        assert!(w.push(3.0));
        assert!(w.push(4.0));
        assert_eq!(w.as_slice(), &[2.0, 3.0, 4.0]);
        for v in 5..=9 {
            w.push(v as f64);
        }
        assert_eq!(w.as_slice(), &[7.0, 8.0, 9.0]);
        // Four lanes (k mod 4) of 1..=9, then pairwise: exactly 45 either way for integers.
        let values: Vec<f64> = (1..=9).map(f64::from).collect();
        assert_eq!(lane_sum(&values, |_, v| v), 45.0);
        assert_eq!(lane_sum(&values, |k, v| v * (k + 1) as f64), (1..=9).map(|k| (k * k) as f64).sum::<f64>());
    }

    fn bar(ts: i64, o: f64, h: f64, l: f64, c: f64, v: f64) -> Bar {
        Bar { ts, open: o, high: h, low: l, close: c, volume: v }
    }

    fn run(k: &mut dyn Kernel, bars: &[Bar]) -> Vec<Vec<f64>> {
        bars.iter()
            .map(|b| {
                let mut out = vec![0.0; k.width()];
                k.update(b, &mut out);
                out
            })
            .collect()
    }

    fn bars() -> Vec<Bar> {
        // high, low, close, volume chosen so sums are exact in binary.
        [(10.0, 8.0, 9.0, 1.0), (12.0, 9.0, 11.0, 2.0), (11.0, 7.0, 8.0, 1.0), (13.0, 10.0, 12.0, 4.0)]
            .iter()
            .enumerate()
            .map(|(i, &(h, l, c, v))| bar(i as i64 * 3_600_000, c, h, l, c, v))
            .collect()
    }

    #[test]
    fn donchian_is_the_range_of_the_last_n_bars() {
        let out = run(&mut Donchian { range: RollingExtremes::new(3) }, &bars());
        assert!(out[1][0].is_nan());
        assert_eq!(out[2], vec![12.0, 9.5, 7.0]);
        assert_eq!(out[3], vec![13.0, 10.0, 7.0]);
    }

    #[test]
    fn rolling_and_session_vwap() {
        // Typical prices: 9, 32/3, 26/3, 35/3.
        let out = run(&mut RollingVwap { n: 2, window: Rolling::new(2) }, &bars());
        let expected = (32.0 / 3.0 * 2.0 + 26.0 / 3.0) / 3.0;
        assert!((out[2][0] - expected).abs() < 1e-12);
        // Distance: (8 − vwap) / σ(11, 8) with σ = 1.5.
        assert!((out[2][1] - (8.0 - expected) / 1.5).abs() < 1e-12);
        let mut day = bars();
        day[3].ts = 86_400_000; // the 4th bar opens a new UTC day
        let s = run(&mut SessionVwap { day: i64::MIN, pv: 0.0, v: 0.0 }, &day);
        assert!((s[2][0] - (9.0 + 64.0 / 3.0 + 26.0 / 3.0) / 4.0).abs() < 1e-12);
        assert!((s[3][0] - 35.0 / 3.0).abs() < 1e-12, "reset at the session start");
    }

    #[test]
    fn keltner_is_ema_plus_minus_atr() {
        let out = run(&mut Keltner { ema: Ema::new(2), atr: Atr::new(2, 1), mult: 2.0 }, &bars());
        // ATR(2) first at bar 2: TR1 = max(3, 3, 0) = 3, TR2 = max(4, 0, 4) = 4 → 3.5.
        // EMA(2) at bar 2: seed (9 + 11) / 2 = 10 at bar 1, then (8 − 10)·2/3 + 10 = 8.666….
        let ema = 10.0 + (8.0 - 10.0) * (2.0 / 3.0);
        assert!((out[2][1] - ema).abs() < 1e-12);
        assert!((out[2][0] - (ema + 7.0)).abs() < 1e-12 && (out[2][2] - (ema - 7.0)).abs() < 1e-12);
    }

    #[test]
    fn ichimoku_spans_come_from_earlier_bars_only() {
        let mut k = Ichimoku {
            tenkan: RollingExtremes::new(1),
            kijun: RollingExtremes::new(2),
            senkou: RollingExtremes::new(2),
            shift: 2,
            pending: VecDeque::new(),
        };
        let out = run(&mut k, &bars());
        // Tenkan(1) = bar midpoint; kijun(2) = midpoint of the last two bars.
        assert_eq!((out[1][0], out[1][1]), (10.5, 10.0));
        // Senkou A at bar 3 is (tenkan + kijun) / 2 computed at bar 1 = (10.5 + 10) / 2.
        assert!(out[2][2].is_nan() && out[2][3].is_nan());
        assert_eq!(out[3][2], 10.25);
        assert_eq!(out[3][3], 10.0);
    }

    #[test]
    fn pivots_use_only_the_previous_session() {
        let day = 86_400_000;
        // Day 0: high 12, low 8, close 10 → P = 10, classic R1 = 12, S1 = 8, Camarilla R3 = 10 + 4·1.1/4.
        let bars = [
            bar(0, 9.0, 12.0, 9.0, 11.0, 1.0),
            bar(3_600_000, 11.0, 11.0, 8.0, 10.0, 1.0),
            bar(day, 10.0, 10.0, 10.0, 10.0, 1.0),
        ];
        let out = run(&mut Pivots { day: i64::MIN, current: None, previous: None }, &bars);
        assert!(out[0][0].is_nan() && out[1][0].is_nan(), "no completed session yet");
        let o = &out[2];
        assert_eq!(o[0], 0.0); // close 10 on the pivot 10
        assert_eq!((o[1], o[2]), ((10.0 - 12.0) / 10.0, (10.0 - 8.0) / 10.0));
        assert!((o[9] - (10.0 - (10.0 + 4.0 * 1.1 / 4.0)) / 10.0).abs() < 1e-15);
    }

    #[test]
    fn swings_are_known_k_bars_late() {
        // Highs: 1 2 5 2 1 3 1; a swing high at index 2 (k = 2) is confirmed at index 4.
        let highs = [1.0, 2.0, 5.0, 2.0, 1.0, 3.0, 1.0];
        let bars: Vec<Bar> = highs.iter().enumerate().map(|(i, &h)| bar(i as i64, 1.0, h, 0.5, 2.0, 1.0)).collect();
        let out =
            run(&mut Swings { k: 2, window: VecDeque::new(), highs: VecDeque::new(), lows: VecDeque::new() }, &bars);
        assert!(out[3][0].is_nan(), "not yet confirmed at bar 3");
        assert_eq!(out[4][0], (5.0 - 2.0) / 2.0);
        assert_eq!(out[4][2], (5.0 - 2.0) / 2.0, "nearest resistance above the close of 2");
        assert!(out[4][3].is_nan(), "equal lows: no strict swing low, so no support");
    }

    #[test]
    fn zscore_range_vol_moments_and_calendar() {
        let z = run(&mut ZScore { n: 2, input: ZInput::Close, window: Rolling::new(2) }, &bars());
        assert_eq!(z[1][0], 1.0); // (11 − 10) / 1
        let park = run(&mut RangeVol { n: 1, window: Rolling::new(1) }, &bars()[..1]);
        let expected = ((10.0f64 / 8.0).ln().powi(2) / (4.0 * std::f64::consts::LN_2)).sqrt();
        assert!((park[0][0] - expected).abs() < 1e-15);
        // Symmetric returns: skew 0. Returns ln 2, −ln 2, ln 2, −ln 2.
        let sym: Vec<Bar> = [1.0, 2.0, 1.0, 2.0, 1.0].iter().map(|&c| bar(0, c, c, c, c, 1.0)).collect();
        let m = run(&mut ReturnMoments { n: 4, prev: f64::NAN, returns: Rolling::new(4) }, &sym);
        assert!(m[4][0].abs() < 1e-12);
        assert!((m[4][1] - (1.0 - 3.0)).abs() < 1e-12, "two-point distribution: kurtosis 1, excess −2");
        // Monday 1970-01-05 06:00 UTC: a quarter of the day, first day of the week.
        let c = run(&mut Calendar::default(), &[bar(4 * 86_400_000 + 6 * 3_600_000, 1.0, 1.0, 1.0, 1.0, 1.0)]);
        assert!((c[0][0] - 1.0).abs() < 1e-12 && c[0][1].abs() < 1e-12);
        assert!(c[0][2].abs() < 1e-12 && (c[0][3] - 1.0).abs() < 1e-12);
    }
}
