//! Bar timeframes (`1m`, `5m`, `1h`, `1d`, …) as fixed durations aligned to UTC.

use crate::time::{MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_SECOND};
use crate::CoreError;

/// A bar length in milliseconds. Bars of a timeframe start at multiples of it since the Unix epoch
/// (so daily bars start at 00:00 UTC), except weeks, which start on Monday 00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timeframe(i64);

const WEEK_MS: i64 = 7 * MS_PER_DAY;
/// 1970-01-05 was the first Monday after the epoch.
const FIRST_MONDAY_MS: i64 = 4 * MS_PER_DAY;

impl Timeframe {
    pub const MINUTE: Timeframe = Timeframe(MS_PER_MINUTE);
    pub const HOUR: Timeframe = Timeframe(MS_PER_HOUR);
    pub const DAY: Timeframe = Timeframe(MS_PER_DAY);

    pub fn from_millis(ms: i64) -> Option<Timeframe> {
        (ms > 0).then_some(Timeframe(ms))
    }

    pub fn parse(raw: &str) -> Result<Timeframe, CoreError> {
        let err = || CoreError::InvalidTimeframe(raw.to_string());
        let s = raw.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (num, unit) = s.split_at(split);
        let n: i64 = num.parse().map_err(|_| err())?;
        let unit_ms = match unit {
            "s" => MS_PER_SECOND,
            "m" | "min" => MS_PER_MINUTE,
            "h" | "H" => MS_PER_HOUR,
            "d" | "D" => MS_PER_DAY,
            "w" | "W" => WEEK_MS,
            _ => return Err(err()),
        };
        if n <= 0 || n > 10_000 {
            return Err(err());
        }
        Ok(Timeframe(n * unit_ms))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// Start of the bar of this timeframe that contains `ts`.
    pub fn floor(self, ts: i64) -> i64 {
        if self.0 % WEEK_MS == 0 {
            ts - (ts - FIRST_MONDAY_MS).rem_euclid(self.0)
        } else {
            ts - ts.rem_euclid(self.0)
        }
    }

    pub fn is_intraday(self) -> bool {
        self.0 < MS_PER_DAY
    }
}

impl std::fmt::Display for Timeframe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0;
        for (unit_ms, unit) in
            [(WEEK_MS, "w"), (MS_PER_DAY, "d"), (MS_PER_HOUR, "h"), (MS_PER_MINUTE, "m"), (MS_PER_SECOND, "s")]
        {
            if ms % unit_ms == 0 {
                return write!(f, "{}{}", ms / unit_ms, unit);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl std::str::FromStr for Timeframe {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timeframe::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for s in ["1s", "1m", "5m", "15m", "1h", "4h", "1d", "1w"] {
            assert_eq!(Timeframe::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Timeframe::parse("60m").unwrap().to_string(), "1h");
        for bad in ["", "m", "0m", "1x", "-1m", "1.5h"] {
            assert!(Timeframe::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn floor_aligns_to_utc_and_mondays() {
        let h = Timeframe::parse("1h").unwrap();
        assert_eq!(h.floor(1_675_209_660_000), 1_675_209_600_000);
        let w = Timeframe::parse("1w").unwrap();
        // 2023-02-01 (Wed) belongs to the week starting Monday 2023-01-30.
        let monday = crate::time::days_from_civil(2023, 1, 30) * MS_PER_DAY;
        assert_eq!(w.floor(1_675_209_600_000), monday);
    }
}
