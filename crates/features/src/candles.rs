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

/// A running total of one candle measure, TA-Lib's "period total": the sum of `range` over the
/// `period` candles before candle i − k, for a pattern that first judges at candle `lookback`.
/// Patterns sharing (lookback, range, period, k) accumulate the very same sums in the same order,
/// so a pattern set keeps each such total once.
#[derive(Debug, Clone, PartialEq)]
struct RunningTotal {
    lookback: usize,
    range: RangeType,
    period: usize,
    k: usize,
    value: f64,
}

/// A pattern with the settings its conditions compare against: (setting, k, index of its running
/// total in the set, or None when the setting averages no period and reads candle i − k itself).
struct Judged {
    pattern: Pattern,
    lookback: usize,
    settings: Vec<(CandleSetting, usize, Option<usize>)>,
}

/// Candlestick patterns judged from one candle history (a fixed ring) and one set of distinct
/// running totals: the batch and streaming kernel of `Indicator::Candles`. Outputs, one per
/// pattern, are the values TA-Lib's function for that pattern gives on its own.
pub struct PatternSet {
    ring: [Slot; RING],
    /// Ring position of the newest candle.
    newest: usize,
    seen: usize,
    totals: Vec<RunningTotal>,
    /// Each total over its period at the current candle, divided once for every pattern reading it.
    means: Vec<f64>,
    patterns: Vec<Judged>,
}

impl PatternSet {
    pub fn new(patterns: &[Pattern]) -> PatternSet {
        let mut totals: Vec<RunningTotal> = Vec::new();
        let patterns = patterns
            .iter()
            .map(|&pattern| {
                let (lookback, wanted) = pattern.settings();
                assert!(lookback < RING, "a candle pattern looks back at most {} candles", RING - 1);
                let settings = wanted
                    .iter()
                    .map(|&(s, k)| {
                        if s.period == 0 {
                            return (s, k, None);
                        }
                        let key = RunningTotal { lookback, range: s.range, period: s.period, k, value: 0.0 };
                        let at = totals.iter().position(|t| *t == key).unwrap_or_else(|| {
                            totals.push(key);
                            totals.len() - 1
                        });
                        (s, k, Some(at))
                    })
                    .collect();
                Judged { pattern, lookback, settings }
            })
            .collect();
        let means = vec![f64::NAN; totals.len()];
        PatternSet { ring: [Slot::default(); RING], newest: RING - 1, seen: 0, totals, means, patterns }
    }

    fn slot(&self, j: usize) -> &Slot {
        &self.ring[self.newest.wrapping_sub(j) & (RING - 1)]
    }
}

impl Kernel for PatternSet {
    fn width(&self) -> usize {
        self.patterns.len()
    }

    #[inline(always)]
    fn update(&mut self, bar: &Bar, out: &mut [f64]) {
        let candle = Candle { o: bar.open, h: bar.high, l: bar.low, c: bar.close };
        self.newest = (self.newest + 1) & (RING - 1);
        let ranges = [candle.body(), candle.h - candle.l, candle.upper_shadow() + candle.lower_shadow()];
        self.ring[self.newest] = Slot { candle, ranges };
        let i = self.seen;
        self.seen += 1;
        // Before a pattern's first judgement, each total sums its window [L−k−p, L−k) in time order.
        for t in &mut self.totals {
            if i < t.lookback && i + t.k + t.period >= t.lookback && i + t.k < t.lookback {
                t.value += ranges[t.range as usize];
            }
        }
        for (mean, t) in self.means.iter_mut().zip(&self.totals) {
            *mean = t.value / t.period as f64;
        }
        for (judged, o) in self.patterns.iter().zip(out.iter_mut()) {
            *o = if i >= judged.lookback {
                judged.pattern.judge(&CandleState { set: self, settings: &judged.settings })
            } else {
                f64::NAN
            };
        }
        // After the judgement: add candle i−k's range and drop the trailing one, as TA-Lib does.
        for at in 0..self.totals.len() {
            let t = &self.totals[at];
            if i >= t.lookback {
                let (range, k, period) = (t.range as usize, t.k, t.period);
                let add = self.slot(k).ranges[range];
                let drop = self.slot(k + period).ranges[range];
                self.totals[at].value += add - drop;
            }
        }
    }
}

/// What one pattern's conditions read at the current candle.
pub struct CandleState<'a> {
    set: &'a PatternSet,
    settings: &'a [(CandleSetting, usize, Option<usize>)],
}

impl CandleState<'_> {
    /// Candle i − j (j = 0 is the current one).
    pub fn c(&self, j: usize) -> Candle {
        self.set.slot(j).candle
    }

    /// TA-Lib's `TA_CANDLEAVERAGE` of the t-th setting.
    pub fn avg(&self, t: usize) -> f64 {
        let (s, k, total) = self.settings[t];
        let base = match total {
            Some(at) => self.set.means[at],
            None => self.set.slot(k).ranges[s.range as usize],
        };
        // TA-Lib divides by 2 for shadows and by 1 otherwise; halving is exact and dividing by one
        // is the identity, so neither needs a division (same bits, a quarter of the latency).
        let average = s.factor * base;
        if s.range == RangeType::Shadows {
            average * 0.5
        } else {
            average
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

    /// TA-Lib's lookback of the pattern and the settings its conditions use, each with the
    /// offset k of the candle it belongs to.
    fn settings(self) -> (usize, &'static [(CandleSetting, usize)]) {
        match self {
            Pattern::Doji => (10, &[(BODY_DOJI, 0)]),
            Pattern::Hammer | Pattern::HangingMan => {
                (11, &[(BODY_SHORT, 0), (SHADOW_LONG, 0), (SHADOW_VERY_SHORT, 0), (NEAR, 1)])
            }
            Pattern::Engulfing => (2, &[]),
            Pattern::Harami => (11, &[(BODY_LONG, 1), (BODY_SHORT, 0)]),
            Pattern::ShootingStar | Pattern::InvertedHammer => {
                (11, &[(BODY_SHORT, 0), (SHADOW_LONG, 0), (SHADOW_VERY_SHORT, 0)])
            }
            Pattern::DragonflyDoji | Pattern::GravestoneDoji => (10, &[(BODY_DOJI, 0), (SHADOW_VERY_SHORT, 0)]),
            Pattern::Marubozu => (10, &[(BODY_LONG, 0), (SHADOW_VERY_SHORT, 0)]),
            Pattern::SpinningTop => (10, &[(BODY_SHORT, 0)]),
            Pattern::MorningStar | Pattern::EveningStar => (12, &[(BODY_LONG, 2), (BODY_SHORT, 1), (BODY_SHORT, 0)]),
        }
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
