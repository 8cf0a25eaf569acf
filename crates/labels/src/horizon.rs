//! How far a label looks ahead: a number of bars, or a duration.

use quantpipe_core::{Bars, Timeframe};
use serde::{Deserialize, Serialize};

use crate::LabelError;

/// A look-ahead. In a label file it is written as an integer (bars: `horizon = 60`) or as a duration
/// string (`horizon = "1h"`, `"60s"`, `"1d"`).
///
/// A duration horizon ends at the bar that opens exactly `duration` after the labelled bar. Where that
/// bar does not exist (a gap in the data, a closed market) the row has no complete future window and is
/// dropped; session markets (equities) should count bars instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "HorizonRaw", into = "HorizonRaw")]
pub enum Horizon {
    Bars(usize),
    Duration(i64),
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum HorizonRaw {
    Bars(u64),
    Text(String),
}

impl TryFrom<HorizonRaw> for Horizon {
    type Error = LabelError;
    fn try_from(raw: HorizonRaw) -> Result<Self, LabelError> {
        match raw {
            HorizonRaw::Bars(n) => Horizon::bars(n as usize),
            HorizonRaw::Text(s) => Horizon::parse(&s),
        }
    }
}

impl From<Horizon> for HorizonRaw {
    fn from(h: Horizon) -> HorizonRaw {
        match h {
            Horizon::Bars(n) => HorizonRaw::Bars(n as u64),
            Horizon::Duration(_) => HorizonRaw::Text(h.name()),
        }
    }
}

impl Horizon {
    pub fn bars(n: usize) -> Result<Horizon, LabelError> {
        if n == 0 || n > 1_000_000 {
            return Err(LabelError::InvalidHorizon(format!("{n} bars (expected 1 to 1000000)")));
        }
        Ok(Horizon::Bars(n))
    }

    /// `"60"` or `"60b"` are bars; `"1h"`, `"90s"`, `"1d"` are durations.
    pub fn parse(raw: &str) -> Result<Horizon, LabelError> {
        let s = raw.trim();
        let digits = s.strip_suffix('b').unwrap_or(s);
        if let Ok(n) = digits.parse::<usize>() {
            return Horizon::bars(n);
        }
        Timeframe::parse(s).map(|tf| Horizon::Duration(tf.millis())).map_err(|_| {
            LabelError::InvalidHorizon(format!("{raw:?} (expected a bar count like 60 or a duration like 1h)"))
        })
    }

    /// A short name used in column names: `60b`, `1h`, `90s`, `1d`.
    pub fn name(self) -> String {
        match self {
            Horizon::Bars(n) => format!("{n}b"),
            Horizon::Duration(ms) => {
                let units = [(86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s")];
                units
                    .iter()
                    .find(|(unit, _)| ms % unit == 0)
                    .map(|(unit, suffix)| format!("{}{suffix}", ms / unit))
                    .unwrap_or_else(|| format!("{ms}ms"))
            }
        }
    }

    /// The longest time span this horizon can cover on bars of `timeframe`: the bound validation uses
    /// to purge and embargo when it has no per-row end times.
    pub fn max_millis(self, timeframe: Timeframe) -> i64 {
        match self {
            Horizon::Bars(n) => n as i64 * timeframe.millis(),
            Horizon::Duration(ms) => ms,
        }
    }

    /// For every bar, the index of the bar that closes its forward window, or `NO_END` where the data does
    /// not reach that far (or, for durations, where the bar exactly `duration` later is missing).
    pub fn window_ends(self, bars: &Bars) -> Vec<usize> {
        let n = bars.len();
        match self {
            Horizon::Bars(h) => (0..n).map(|i| if i + h < n { i + h } else { NO_END }).collect(),
            Horizon::Duration(ms) => {
                let mut ends = vec![NO_END; n];
                let mut j = 0;
                for (i, end) in ends.iter_mut().enumerate() {
                    let target = bars.ts[i] + ms;
                    j = j.max(i + 1);
                    while j < n && bars.ts[j] < target {
                        j += 1;
                    }
                    if j < n && bars.ts[j] == target {
                        *end = j;
                    }
                }
                ends
            }
        }
    }

    /// For every bar, the index of the bar `horizon` before it (the mirror of [`Horizon::window_ends`]),
    /// used by targets that compare the coming window with the one just past.
    pub fn window_starts(self, bars: &Bars) -> Vec<usize> {
        let n = bars.len();
        match self {
            Horizon::Bars(h) => (0..n).map(|i| if i >= h { i - h } else { NO_END }).collect(),
            Horizon::Duration(ms) => {
                let mut starts = vec![NO_END; n];
                let mut j = 0;
                for (i, start) in starts.iter_mut().enumerate() {
                    let target = bars.ts[i] - ms;
                    while j < i && bars.ts[j] < target {
                        j += 1;
                    }
                    if j < i && bars.ts[j] == target {
                        *start = j;
                    }
                }
                starts
            }
        }
    }
}

/// Marks a bar whose forward (or backward) window is incomplete.
pub const NO_END: usize = usize::MAX;

#[cfg(test)]
mod tests {
    use super::*;

    fn bars_at(ts: &[i64]) -> Bars {
        let mut bars = Bars::with_capacity(ts.len(), &[]);
        for &t in ts {
            bars.ts.push(t);
            for col in [&mut bars.open, &mut bars.high, &mut bars.low, &mut bars.close, &mut bars.volume] {
                col.push(1.0);
            }
        }
        bars
    }

    #[test]
    fn parses_bars_and_durations() {
        assert_eq!(Horizon::parse("60").unwrap(), Horizon::Bars(60));
        assert_eq!(Horizon::parse("5b").unwrap(), Horizon::Bars(5));
        assert_eq!(Horizon::parse("1h").unwrap(), Horizon::Duration(3_600_000));
        assert_eq!(Horizon::parse("60s").unwrap().name(), "1m");
        assert_eq!(Horizon::Duration(90_000).name(), "90s");
        assert!(Horizon::parse("0").is_err());
        assert!(Horizon::parse("soon").is_err());
    }

    #[test]
    fn duration_windows_need_the_exact_end_bar() {
        // 1-minute bars with a gap after 3 minutes.
        let m = 60_000;
        let bars = bars_at(&[0, m, 2 * m, 3 * m, 10 * m, 11 * m]);
        let ends = Horizon::Duration(m).window_ends(&bars);
        assert_eq!(ends, vec![1, 2, 3, NO_END, 5, NO_END]);
        let ends = Horizon::Duration(2 * m).window_ends(&bars);
        assert_eq!(ends, vec![2, 3, NO_END, NO_END, NO_END, NO_END]);
        let starts = Horizon::Duration(m).window_starts(&bars);
        assert_eq!(starts, vec![NO_END, 0, 1, 2, NO_END, 4]);
        assert_eq!(Horizon::Bars(2).window_ends(&bars), vec![2, 3, 4, 5, NO_END, NO_END]);
    }
}
