//! UTC timestamps in milliseconds and the civil-calendar arithmetic the rest of quantpipe needs.
//! Written here (not chrono) because parsing is on the ingest hot path and the rules are few.

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type Timestamp = i64;

pub const MS_PER_SECOND: i64 = 1_000;
pub const MS_PER_MINUTE: i64 = 60_000;
pub const MS_PER_HOUR: i64 = 3_600_000;
pub const MS_PER_DAY: i64 = 86_400_000;

/// The current time (0 if the clock is before 1970).
pub fn now_ms() -> Timestamp {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

pub fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        _ => 28,
    }
}

/// Day number (since 1970-01-01) of a timestamp.
pub fn day_of(ts: Timestamp) -> i64 {
    ts.div_euclid(MS_PER_DAY)
}

/// ISO weekday of a day number: Monday = 1 … Sunday = 7.
pub fn iso_weekday(day: i64) -> u32 {
    // 1970-01-01 was a Thursday (4).
    ((day + 3).rem_euclid(7) + 1) as u32
}

/// `YYYY-MM-DDTHH:MM:SSZ`, with `.mmm` when the milliseconds are not zero.
pub fn format_iso(ts: Timestamp) -> String {
    let (y, mo, d) = civil_from_days(day_of(ts));
    let ms_of_day = ts.rem_euclid(MS_PER_DAY);
    let (h, mi, s, ms) = (
        ms_of_day / MS_PER_HOUR,
        ms_of_day % MS_PER_HOUR / MS_PER_MINUTE,
        ms_of_day % MS_PER_MINUTE / MS_PER_SECOND,
        ms_of_day % MS_PER_SECOND,
    );
    if ms == 0 {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
    }
}

/// `YYYY-MM-DD` of a day number.
pub fn format_date(day: i64) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_over_four_centuries() {
        for day in -200_000..200_000 {
            let (y, m, d) = civil_from_days(day);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        // 1675209600000 ms is the first FILUSDT bar: 2023-02-01T00:00:00Z, a Wednesday.
        assert_eq!(days_from_civil(2023, 2, 1) * MS_PER_DAY, 1_675_209_600_000);
        assert_eq!(iso_weekday(days_from_civil(2023, 2, 1)), 3);
        assert_eq!(iso_weekday(days_from_civil(2024, 2, 29)), 4);
        assert_eq!(format_iso(1_675_209_659_999), "2023-02-01T00:00:59.999Z");
        assert_eq!(format_iso(-1), "1969-12-31T23:59:59.999Z");
    }
}
