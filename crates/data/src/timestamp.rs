//! Parsing of the timestamp spellings found in market data files. Hand-written because it runs
//! once per row on the ingest hot path.

use quantpipe_core::time::{days_from_civil, days_in_month, MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE};

/// Whether a parsed timestamp carried a time zone. Files that mix the two are refused: a naive
/// time next to a zoned one is ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    Naive,
    Explicit,
}

/// The unit of integer epoch timestamps, decided from the magnitude of the first value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

impl EpochUnit {
    pub fn from_magnitude(v: f64) -> EpochUnit {
        let a = v.abs();
        if a < 1e11 {
            EpochUnit::Seconds
        } else if a < 1e14 {
            EpochUnit::Millis
        } else if a < 1e17 {
            EpochUnit::Micros
        } else {
            EpochUnit::Nanos
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            EpochUnit::Seconds => "epoch seconds",
            EpochUnit::Millis => "epoch milliseconds",
            EpochUnit::Micros => "epoch microseconds",
            EpochUnit::Nanos => "epoch nanoseconds",
        }
    }
    pub fn to_millis(self, v: i64) -> i64 {
        match self {
            EpochUnit::Seconds => v.saturating_mul(1000),
            EpochUnit::Millis => v,
            EpochUnit::Micros => v.div_euclid(1000),
            EpochUnit::Nanos => v.div_euclid(1_000_000),
        }
    }
}

/// True when the text is an integer or decimal number (an epoch timestamp, not a date).
pub fn looks_numeric(s: &str) -> bool {
    let s = s.strip_prefix('-').unwrap_or(s);
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') && s.bytes().filter(|&b| b == b'.').count() <= 1
}

/// Parses an epoch number in `unit` (fractions allowed for seconds, e.g. `1675209600.25`).
pub fn parse_epoch(s: &str, unit: EpochUnit) -> Result<i64, String> {
    if let Ok(v) = s.parse::<i64>() {
        if EpochUnit::from_magnitude(v as f64) != unit {
            return Err(format!("{s:?} is not in {} like the rows before it", unit.name()));
        }
        return Ok(unit.to_millis(v));
    }
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a timestamp"))?;
    if !v.is_finite() || EpochUnit::from_magnitude(v) != unit {
        return Err(format!("{s:?} is not in {} like the rows before it", unit.name()));
    }
    let ms = match unit {
        EpochUnit::Seconds => v * 1e3,
        EpochUnit::Millis => v,
        EpochUnit::Micros => v / 1e3,
        EpochUnit::Nanos => v / 1e6,
    };
    Ok(ms.floor() as i64)
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Option<i64> {
        let end = self.i + n;
        if end > self.b.len() {
            return None;
        }
        let mut v = 0i64;
        for &c in &self.b[self.i..end] {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as i64;
        }
        self.i = end;
        Some(v)
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn done(&self) -> bool {
        self.i == self.b.len()
    }
}

/// Parses a calendar date `YYYY-MM-DD`, `YYYY.MM.DD` or `YYYY/MM/DD`, optionally followed by a
/// time `HH:MM[:SS[.fff…]]` (after `T` or a space) and a zone (`Z`, `UTC`, `±HH:MM`, `±HHMM`, `±HH`).
/// Returns UTC milliseconds; a naive time is taken as UTC.
pub fn parse_datetime(s: &str) -> Result<(i64, Zone), String> {
    let bad = || {
        format!(
            "{s:?} is not a date or timestamp (expected e.g. 2023-02-01 00:00:00, 2015.03.09 or epoch milliseconds)"
        )
    };
    let mut c = Cursor { b: s.trim().as_bytes(), i: 0 };
    let year = c.digits(4).ok_or_else(bad)?;
    let sep = c.peek().ok_or_else(bad)?;
    if !matches!(sep, b'-' | b'.' | b'/') {
        return Err(bad());
    }
    c.i += 1;
    let month = c.digits(2).ok_or_else(bad)? as u32;
    if !c.eat(sep) {
        return Err(bad());
    }
    let day = c.digits(2).ok_or_else(bad)? as u32;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(format!("{s:?} is not a valid calendar date"));
    }
    let mut ms = days_from_civil(year, month, day) * MS_PER_DAY;
    if c.done() {
        return Ok((ms, Zone::Naive));
    }
    if !(c.eat(b'T') || c.eat(b' ')) {
        return Err(bad());
    }
    let (time_ms, consumed) = parse_time_prefix(&c.b[c.i..]).ok_or_else(bad)?;
    c.i += consumed;
    ms += time_ms;
    let rest = std::str::from_utf8(&c.b[c.i..]).map_err(|_| bad())?;
    match parse_zone(rest) {
        Some(None) => Ok((ms, Zone::Naive)),
        Some(Some(offset_ms)) => Ok((ms - offset_ms, Zone::Explicit)),
        None => Err(bad()),
    }
}

/// `HH:MM[:SS[.fff]]` at the start of `b`: milliseconds of day and bytes consumed.
fn parse_time_prefix(b: &[u8]) -> Option<(i64, usize)> {
    let mut c = Cursor { b, i: 0 };
    let h = c.digits(2)?;
    if !c.eat(b':') {
        return None;
    }
    let m = c.digits(2)?;
    let mut sec = 0;
    let mut frac_ms = 0;
    if c.eat(b':') {
        sec = c.digits(2)?;
        if c.eat(b'.') || c.eat(b',') {
            let start = c.i;
            let mut scale = 100;
            while let Some(d) = c.peek().filter(u8::is_ascii_digit) {
                frac_ms += (d - b'0') as i64 * scale;
                scale /= 10;
                c.i += 1;
            }
            if c.i == start {
                return None;
            }
        }
    }
    if h > 24 || m > 59 || sec > 60 || (h == 24 && (m > 0 || sec > 0)) {
        return None;
    }
    Some((h * MS_PER_HOUR + m * MS_PER_MINUTE + sec * 1000 + frac_ms, c.i))
}

/// A time of day alone (MetaTrader's `<TIME>` column): milliseconds since midnight.
pub fn parse_time_of_day(s: &str) -> Result<i64, String> {
    let t = s.trim();
    match parse_time_prefix(t.as_bytes()) {
        Some((ms, used)) if used == t.len() => Ok(ms),
        _ => Err(format!("{s:?} is not a time of day (expected HH:MM or HH:MM:SS)")),
    }
}

/// `Some(None)` for no zone, `Some(Some(offset))` for a zone, `None` for garbage.
fn parse_zone(rest: &str) -> Option<Option<i64>> {
    let z = rest.trim();
    if z.is_empty() {
        return Some(None);
    }
    if z == "Z" || z.eq_ignore_ascii_case("UTC") || z.eq_ignore_ascii_case("GMT") {
        return Some(Some(0));
    }
    let (sign, digits) = match z.as_bytes()[0] {
        b'+' => (1, &z[1..]),
        b'-' => (-1, &z[1..]),
        _ => return None,
    };
    let d: Vec<u8> = digits.bytes().filter(|&b| b != b':').collect();
    if !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |x: &[u8]| x.iter().fold(0i64, |a, &b| a * 10 + (b - b'0') as i64);
    let (h, m) = match d.len() {
        2 => (num(&d), 0),
        4 => (num(&d[..2]), num(&d[2..])),
        _ => return None,
    };
    if h > 14 || m > 59 {
        return None;
    }
    Some(Some(sign * (h * MS_PER_HOUR + m * MS_PER_MINUTE)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_spellings() {
        let base = 1_640_991_660_000; // 2021-12-31T23:01:00Z
        assert_eq!(parse_datetime("2021-12-31 23:01:00.000000").unwrap(), (base, Zone::Naive));
        assert_eq!(parse_datetime("2021-12-31T23:01:00Z").unwrap(), (base, Zone::Explicit));
        assert_eq!(parse_datetime("2022-01-01T01:01:00+02:00").unwrap(), (base, Zone::Explicit));
        assert_eq!(parse_datetime("2021-12-31 18:01:00-0500").unwrap(), (base, Zone::Explicit));
        assert_eq!(parse_datetime("2021-12-31 23:01").unwrap(), (base, Zone::Naive));
        assert_eq!(parse_datetime("2013-01-01 22:00:00.295000+00:00").unwrap().0, 1_357_077_600_295);
        assert_eq!(parse_datetime("2015.03.09").unwrap().0, 1_425_859_200_000);
        assert_eq!(parse_datetime("2015/03/09").unwrap().0, 1_425_859_200_000);
        for bad in
            ["2015-02-30", "2015-13-01", "15-03-09", "2015-03-09X", "2015-03-09 25:00", "abc", "2015-03-09 10:00+5"]
        {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn epoch_units_by_magnitude() {
        assert_eq!(EpochUnit::from_magnitude(1_675_209_600.0), EpochUnit::Seconds);
        assert_eq!(EpochUnit::from_magnitude(1_675_209_600_000.0), EpochUnit::Millis);
        assert_eq!(EpochUnit::from_magnitude(1_598_918_403_696_000.0), EpochUnit::Micros);
        assert_eq!(EpochUnit::from_magnitude(1_598_918_403_696_000_000.0), EpochUnit::Nanos);
        assert_eq!(parse_epoch("1598918403696000", EpochUnit::Micros).unwrap(), 1_598_918_403_696);
        assert_eq!(parse_epoch("1675209600.5", EpochUnit::Seconds).unwrap(), 1_675_209_600_500);
        assert!(parse_epoch("1675209600", EpochUnit::Millis).is_err());
        assert_eq!(parse_time_of_day("14:00:00").unwrap(), 14 * MS_PER_HOUR);
    }
}
