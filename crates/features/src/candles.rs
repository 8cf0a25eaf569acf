//! Candlestick patterns with TA-Lib's definitions. Each condition compares a candle measure with
//! the average of a measure over the candles *before* the one being judged ("period totals"),
//! kept as running totals updated exactly as TA-Lib updates them (add the newest, drop the
//! trailing, after the decision), so outputs match TA-Lib bar for bar. Outputs are TA-Lib's
//! integers as floats: ±100 (±80 for the weaker engulfing/harami variants), 0 for no pattern.

use crate::kernels::{Bar, Kernel};

#[derive(Debug, Clone, Copy, PartialEq)]
enum RangeType {
    RealBody = 0,
    HighLow = 1,
    Shadows = 2,
}

/// TA-Lib's candle settings (`TA_SetCandleSettings` defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandleSetting {
    range: RangeType,
    period: usize,
    factor: f64,
}

const fn setting(range: RangeType, period: usize, factor: f64) -> CandleSetting {
    CandleSetting { range, period, factor }
}

pub const BODY_LONG: CandleSetting = setting(RangeType::RealBody, 10, 1.0);
pub const BODY_VERY_LONG: CandleSetting = setting(RangeType::RealBody, 10, 3.0);
pub const BODY_SHORT: CandleSetting = setting(RangeType::RealBody, 10, 1.0);
pub const BODY_DOJI: CandleSetting = setting(RangeType::HighLow, 10, 0.1);
pub const SHADOW_LONG: CandleSetting = setting(RangeType::RealBody, 0, 1.0);
pub const SHADOW_VERY_LONG: CandleSetting = setting(RangeType::RealBody, 0, 2.0);
pub const SHADOW_SHORT: CandleSetting = setting(RangeType::Shadows, 10, 1.0);
pub const SHADOW_VERY_SHORT: CandleSetting = setting(RangeType::HighLow, 10, 0.1);
pub const NEAR: CandleSetting = setting(RangeType::HighLow, 5, 0.2);
pub const FAR: CandleSetting = setting(RangeType::HighLow, 5, 0.6);
pub const EQUAL: CandleSetting = setting(RangeType::HighLow, 5, 0.05);

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Candle {
    pub o: f64,
    pub h: f64,
    pub l: f64,
    pub c: f64,
}

impl Candle {
    pub fn body(&self) -> f64 {
        (self.c - self.o).abs()
    }
    pub fn upper_shadow(&self) -> f64 {
        self.h - if self.c >= self.o { self.c } else { self.o }
    }
    pub fn lower_shadow(&self) -> f64 {
        (if self.c >= self.o { self.o } else { self.c }) - self.l
    }
    pub fn white(&self) -> bool {
        self.c >= self.o
    }
    pub fn color(&self) -> i32 {
        if self.white() {
            1
        } else {
            -1
        }
    }
    pub fn body_top(&self) -> f64 {
        self.c.max(self.o)
    }
    pub fn body_bottom(&self) -> f64 {
        self.c.min(self.o)
    }
}

/// Candles kept per pattern: more than the longest lookback (12) + 1, a power of two for masking.
const RING: usize = 16;

/// A candle with its three range measures, computed once when it arrives.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    candle: Candle,
    /// Indexed by `RangeType as usize`: real body, high − low, shadows.
    ranges: [f64; 3],
}

/// The last `lookback + 1` candles (in a fixed ring) and the running totals a pattern needs.
pub struct CandleState {
    lookback: usize,
    ring: [Slot; RING],
    /// Ring position of the newest candle.
    newest: usize,
    seen: usize,
    /// (setting, offset k: the total belongs to candle i−k, total).
    totals: Vec<(CandleSetting, usize, f64)>,
}

impl CandleState {
    pub fn new(lookback: usize, totals: &[(CandleSetting, usize)]) -> CandleState {
        assert!(lookback < RING, "a candle pattern looks back at most {} candles", RING - 1);
        CandleState {
            lookback,
            ring: [Slot::default(); RING],
            newest: RING - 1,
            seen: 0,
            totals: totals.iter().map(|&(s, k)| (s, k, 0.0)).collect(),
        }
    }

    /// Pushes a candle; true once a pattern can be judged at it.
    fn push(&mut self, candle: Candle) -> bool {
        self.newest = (self.newest + 1) & (RING - 1);
        let ranges = [candle.body(), candle.h - candle.l, candle.upper_shadow() + candle.lower_shadow()];
        self.ring[self.newest] = Slot { candle, ranges };
        let i = self.seen;
        self.seen += 1;
        if i >= self.lookback {
            return true;
        }
        // Before the first judgement, each total sums its window [L−k−p, L−k) in time order.
        let l = self.lookback;
        for (s, k, total) in &mut self.totals {
            if s.period > 0 && i + *k + s.period >= l && i + *k < l {
                *total += ranges[s.range as usize];
            }
        }
        false
    }

    fn slot(&self, j: usize) -> &Slot {
        &self.ring[self.newest.wrapping_sub(j) & (RING - 1)]
    }

    /// Candle i − j (j = 0 is the current one).
    pub fn c(&self, j: usize) -> Candle {
        self.slot(j).candle
    }

    /// TA-Lib's `TA_CANDLEAVERAGE` of the t-th total.
    pub fn avg(&self, t: usize) -> f64 {
        let (s, k, total) = self.totals[t];
        let base = if s.period != 0 { total / s.period as f64 } else { self.slot(k).ranges[s.range as usize] };
        // TA-Lib divides by 2 for shadows and by 1 otherwise; halving is exact and dividing by one
        // is the identity, so neither needs a division (same bits, a quarter of the latency).
        let average = s.factor * base;
        if s.range == RangeType::Shadows {
            average * 0.5
        } else {
            average
        }
    }

    /// After the judgement: add candle i−k's range and drop the trailing one, as TA-Lib does.
    fn roll(&mut self) {
        for t in 0..self.totals.len() {
            let (s, k, _) = self.totals[t];
            if s.period > 0 {
                let add = self.slot(k).ranges[s.range as usize];
                let drop = self.slot(k + s.period).ranges[s.range as usize];
                self.totals[t].2 += add - drop;
            }
        }
    }
}

/// The patterns implemented, with TA-Lib's function names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Doji,
    Hammer,
    Engulfing,
    Harami,
    HangingMan,
    ShootingStar,
    InvertedHammer,
    DragonflyDoji,
    GravestoneDoji,
    Marubozu,
    SpinningTop,
    /// Three-candle reversal; the third candle closes more than `penetration` (TA-Lib default 0.3)
    /// of the first body into it.
    MorningStar,
    EveningStar,
}

impl Pattern {
    pub const ALL: [Pattern; 13] = [
        Pattern::Doji,
        Pattern::Hammer,
        Pattern::Engulfing,
        Pattern::Harami,
        Pattern::HangingMan,
        Pattern::ShootingStar,
        Pattern::InvertedHammer,
        Pattern::DragonflyDoji,
        Pattern::GravestoneDoji,
        Pattern::Marubozu,
        Pattern::SpinningTop,
        Pattern::MorningStar,
        Pattern::EveningStar,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Pattern::Doji => "cdl_doji",
            Pattern::Hammer => "cdl_hammer",
            Pattern::Engulfing => "cdl_engulfing",
            Pattern::Harami => "cdl_harami",
            Pattern::HangingMan => "cdl_hanging_man",
            Pattern::ShootingStar => "cdl_shooting_star",
            Pattern::InvertedHammer => "cdl_inverted_hammer",
            Pattern::DragonflyDoji => "cdl_dragonfly_doji",
            Pattern::GravestoneDoji => "cdl_gravestone_doji",
            Pattern::Marubozu => "cdl_marubozu",
            Pattern::SpinningTop => "cdl_spinning_top",
            Pattern::MorningStar => "cdl_morning_star",
            Pattern::EveningStar => "cdl_evening_star",
        }
    }

    pub fn talib(self) -> &'static str {
        match self {
            Pattern::Doji => "CDLDOJI",
            Pattern::Hammer => "CDLHAMMER",
            Pattern::Engulfing => "CDLENGULFING",
            Pattern::Harami => "CDLHARAMI",
            Pattern::HangingMan => "CDLHANGINGMAN",
            Pattern::ShootingStar => "CDLSHOOTINGSTAR",
            Pattern::InvertedHammer => "CDLINVERTEDHAMMER",
            Pattern::DragonflyDoji => "CDLDRAGONFLYDOJI",
            Pattern::GravestoneDoji => "CDLGRAVESTONEDOJI",
            Pattern::Marubozu => "CDLMARUBOZU",
            Pattern::SpinningTop => "CDLSPINNINGTOP",
            Pattern::MorningStar => "CDLMORNINGSTAR",
            Pattern::EveningStar => "CDLEVENINGSTAR",
        }
    }

    pub fn kernel(self) -> PatternKernel {
        let state = match self {
            Pattern::Doji => CandleState::new(10, &[(BODY_DOJI, 0)]),
            Pattern::Hammer => {
                CandleState::new(11, &[(BODY_SHORT, 0), (SHADOW_LONG, 0), (SHADOW_VERY_SHORT, 0), (NEAR, 1)])
            }
            Pattern::Engulfing => CandleState::new(2, &[]),
            Pattern::Harami => CandleState::new(11, &[(BODY_LONG, 1), (BODY_SHORT, 0)]),
            Pattern::HangingMan => {
                CandleState::new(11, &[(BODY_SHORT, 0), (SHADOW_LONG, 0), (SHADOW_VERY_SHORT, 0), (NEAR, 1)])
            }
            Pattern::ShootingStar | Pattern::InvertedHammer => {
                CandleState::new(11, &[(BODY_SHORT, 0), (SHADOW_LONG, 0), (SHADOW_VERY_SHORT, 0)])
            }
            Pattern::DragonflyDoji | Pattern::GravestoneDoji => {
                CandleState::new(10, &[(BODY_DOJI, 0), (SHADOW_VERY_SHORT, 0)])
            }
            Pattern::Marubozu => CandleState::new(10, &[(BODY_LONG, 0), (SHADOW_VERY_SHORT, 0)]),
            Pattern::SpinningTop => CandleState::new(10, &[(BODY_SHORT, 0)]),
            Pattern::MorningStar | Pattern::EveningStar => {
                CandleState::new(12, &[(BODY_LONG, 2), (BODY_SHORT, 1), (BODY_SHORT, 0)])
            }
        };
        PatternKernel { pattern: self, state }
    }

    fn judge(self, s: &CandleState) -> f64 {
        let c0 = s.c(0);
        match self {
            Pattern::Doji => {
                if c0.body() <= s.avg(0) {
                    100.0
                } else {
                    0.0
                }
            }
            Pattern::Hammer => {
                let c1 = s.c(1);
                let hit = c0.body() < s.avg(0)
                    && c0.lower_shadow() > s.avg(1)
                    && c0.upper_shadow() < s.avg(2)
                    && c0.c.min(c0.o) <= c1.l + s.avg(3);
                if hit {
                    100.0
                } else {
                    0.0
                }
            }
            Pattern::Engulfing => {
                let c1 = s.c(1);
                let bullish = c0.color() == 1
                    && c1.color() == -1
                    && ((c0.c >= c1.o && c0.o < c1.c) || (c0.c > c1.o && c0.o <= c1.c));
                let bearish = c0.color() == -1
                    && c1.color() == 1
                    && ((c0.o >= c1.c && c0.c < c1.o) || (c0.o > c1.c && c0.c <= c1.o));
                if bullish || bearish {
                    let strength = if c0.o != c1.c && c0.c != c1.o { 100.0 } else { 80.0 };
                    c0.color() as f64 * strength
                } else {
                    0.0
                }
            }
            Pattern::HangingMan => {
                let c1 = s.c(1);
                let hit = c0.body() < s.avg(0)
                    && c0.lower_shadow() > s.avg(1)
                    && c0.upper_shadow() < s.avg(2)
                    && c0.c.min(c0.o) >= c1.h - s.avg(3);
                if hit {
                    -100.0
                } else {
                    0.0
                }
            }
            Pattern::ShootingStar | Pattern::InvertedHammer => {
                let c1 = s.c(1);
                let gap = if self == Pattern::ShootingStar {
                    c0.o.min(c0.c) > c1.o.max(c1.c)
                } else {
                    c0.o.max(c0.c) < c1.o.min(c1.c)
                };
                let hit = gap && c0.body() < s.avg(0) && c0.upper_shadow() > s.avg(1) && c0.lower_shadow() < s.avg(2);
                match (hit, self) {
                    (false, _) => 0.0,
                    (true, Pattern::ShootingStar) => -100.0,
                    (true, _) => 100.0,
                }
            }
            Pattern::DragonflyDoji | Pattern::GravestoneDoji => {
                let (short, long) = if self == Pattern::DragonflyDoji {
                    (c0.upper_shadow(), c0.lower_shadow())
                } else {
                    (c0.lower_shadow(), c0.upper_shadow())
                };
                if c0.body() <= s.avg(0) && short < s.avg(1) && long > s.avg(1) {
                    100.0
                } else {
                    0.0
                }
            }
            Pattern::Marubozu => {
                if c0.body() > s.avg(0) && c0.upper_shadow() < s.avg(1) && c0.lower_shadow() < s.avg(1) {
                    c0.color() as f64 * 100.0
                } else {
                    0.0
                }
            }
            Pattern::SpinningTop => {
                if c0.body() < s.avg(0) && c0.upper_shadow() > c0.body() && c0.lower_shadow() > c0.body() {
                    c0.color() as f64 * 100.0
                } else {
                    0.0
                }
            }
            Pattern::MorningStar | Pattern::EveningStar => {
                let (c1, c2) = (s.c(1), s.c(2));
                let penetration = 0.3;
                let shape = c2.body() > s.avg(0) && c1.body() <= s.avg(1) && c0.body() > s.avg(2);
                let morning = self == Pattern::MorningStar
                    && c2.color() == -1
                    && c0.color() == 1
                    && c1.o.max(c1.c) < c2.o.min(c2.c)
                    // TA-Lib's compiled library evaluates `close + body * penetration` as a fused
                    // multiply-add; so must we, or ties on the boundary go the other way.
                    && c0.c > c2.body().mul_add(penetration, c2.c);
                let evening = self == Pattern::EveningStar
                    && c2.color() == 1
                    && c0.color() == -1
                    && c1.o.min(c1.c) > c2.o.max(c2.c)
                    && c0.c < (-c2.body()).mul_add(penetration, c2.c);
                match (shape, morning, evening) {
                    (true, true, _) => 100.0,
                    (true, _, true) => -100.0,
                    _ => 0.0,
                }
            }
            Pattern::Harami => {
                let c1 = s.c(1);
                if c1.body() > s.avg(0) && c0.body() <= s.avg(1) {
                    if c0.body_top() < c1.body_top() && c0.body_bottom() > c1.body_bottom() {
                        -c1.color() as f64 * 100.0
                    } else if c0.body_top() <= c1.body_top() && c0.body_bottom() >= c1.body_bottom() {
                        -c1.color() as f64 * 80.0
                    } else {
                        0.0
                    }
                } else {
                    0.0
                }
            }
        }
    }
}

pub struct PatternKernel {
    pattern: Pattern,
    state: CandleState,
}

impl Kernel for PatternKernel {
    fn width(&self) -> usize {
        1
    }
    #[inline]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        let ready = self.state.push(Candle { o: bar.open, h: bar.high, l: bar.low, c: bar.close });
        out[0] = if ready {
            let v = self.pattern.judge(&self.state);
            self.state.roll();
            v
        } else {
            f64::NAN
        };
    }
}
