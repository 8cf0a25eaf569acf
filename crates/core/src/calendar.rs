//! Market calendars: when a market is expected to trade, so that a weekend is not a "gap" for FX
//! and equities while it is one for crypto.

use crate::time::{civil_from_days, day_of, days_from_civil, format_date, iso_weekday, MS_PER_DAY};
use crate::timeframe::Timeframe;
use crate::CoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketCalendar {
    /// Trades every minute of every day.
    Crypto,
    /// Closed at the weekend and on 25–26 December and 1 January, in the data's own clock (brokers
    /// export FX in server time, so the close is found by the day it spans, not by an hour in UTC).
    Fx,
    /// NYSE trading days: weekdays less the exchange's holidays and special closures.
    Equity,
}

/// What a run of absent bar slots between two consecutive bars means on a calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absence {
    /// The market was closed: not a data problem.
    Closure,
    /// The market was open and this many bars are missing.
    Missing(u64),
}

impl MarketCalendar {
    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        match raw.to_ascii_lowercase().as_str() {
            "crypto" | "24/7" => Ok(Self::Crypto),
            "fx" | "forex" => Ok(Self::Fx),
            "equity" | "equities" | "stock" | "stocks" | "nyse" => Ok(Self::Equity),
            _ => Err(CoreError::UnknownCalendar(raw.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Crypto => "crypto",
            Self::Fx => "fx",
            Self::Equity => "equity",
        }
    }

    /// Classifies the absent slots strictly between bars at `prev` and `next` (`next - prev > tf`).
    pub fn classify_absence(self, prev: i64, next: i64, tf: Timeframe) -> Absence {
        let step = tf.millis();
        let absent_slots = ((next - prev) / step - 1).max(0) as u64;
        if absent_slots == 0 {
            return Absence::Missing(0);
        }
        match self {
            Self::Crypto => Absence::Missing(absent_slots),
            Self::Fx => {
                let (first, last) = (day_of(prev + step), day_of(next - 1));
                if (first..=last).any(is_fx_closed_day) {
                    Absence::Closure
                } else {
                    Absence::Missing(absent_slots)
                }
            }
            Self::Equity if tf.millis() >= MS_PER_DAY => {
                // Count the trading days strictly between the two bars' days.
                let missing = (day_of(prev) + 1..day_of(next)).filter(|&d| is_nyse_trading_day(d)).count() as u64;
                if missing == 0 {
                    Absence::Closure
                } else {
                    Absence::Missing(missing)
                }
            }
            Self::Equity => {
                // Intraday: an absence that crosses a day boundary is the overnight (or weekend,
                // holiday) close; within one day it is missing bars.
                if day_of(prev) != day_of(next) {
                    Absence::Closure
                } else {
                    Absence::Missing(absent_slots)
                }
            }
        }
    }
}

fn is_fx_closed_day(day: i64) -> bool {
    let (_, m, d) = civil_from_days(day);
    iso_weekday(day) == 6 || (m == 12 && (d == 25 || d == 26)) || (m == 1 && d == 1)
}

/// True when NYSE is open on this day (weekday, not a holiday or special closure).
pub fn is_nyse_trading_day(day: i64) -> bool {
    iso_weekday(day) <= 5 && !is_nyse_holiday(day)
}

/// NYSE full-day closures: the rule-based holidays (with weekend observance) and the special
/// closures of this century.
pub fn is_nyse_holiday(day: i64) -> bool {
    let (year, _, _) = civil_from_days(day);
    nyse_holidays(year).contains(&day)
}

const NYSE_SPECIAL_CLOSURES: &[(i64, u32, u32)] = &[
    (2001, 9, 11),
    (2001, 9, 12),
    (2001, 9, 13),
    (2001, 9, 14),
    (2004, 6, 11),
    (2007, 1, 2),
    (2012, 10, 29),
    (2012, 10, 30),
    (2018, 12, 5),
    (2025, 1, 9),
];

pub fn nyse_holidays(year: i64) -> Vec<i64> {
    let date = |m, d| days_from_civil(year, m, d);
    // Saturday holidays move to Friday, Sunday ones to Monday.
    let observed = |day: i64| match iso_weekday(day) {
        6 => day - 1,
        7 => day + 1,
        _ => day,
    };
    let nth_weekday = |month: u32, weekday: u32, n: i64| {
        let first = date(month, 1);
        let offset = (weekday as i64 - iso_weekday(first) as i64).rem_euclid(7);
        first + offset + 7 * (n - 1)
    };
    let last_monday_of_may = {
        let last = date(5, 31);
        last - (iso_weekday(last) as i64 - 1)
    };
    let mut days = Vec::with_capacity(12);
    // New Year's Day on a Saturday is not observed on the Friday before (that is the old year).
    let new_year = date(1, 1);
    if iso_weekday(new_year) != 6 {
        days.push(observed(new_year));
    }
    if year >= 1998 {
        days.push(nth_weekday(1, 1, 3)); // Martin Luther King Jr. Day
    }
    days.push(nth_weekday(2, 1, 3)); // Washington's Birthday
    days.push(easter_sunday(year) - 2); // Good Friday
    days.push(last_monday_of_may); // Memorial Day
    if year >= 2022 {
        days.push(observed(date(6, 19))); // Juneteenth
    }
    days.push(observed(date(7, 4)));
    days.push(nth_weekday(9, 1, 1)); // Labor Day
    days.push(nth_weekday(11, 4, 4)); // Thanksgiving
    days.push(observed(date(12, 25)));
    days.extend(NYSE_SPECIAL_CLOSURES.iter().filter(|(y, _, _)| *y == year).map(|&(y, m, d)| days_from_civil(y, m, d)));
    days
}

/// Day number of Easter Sunday (anonymous Gregorian algorithm).
fn easter_sunday(year: i64) -> i64 {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    days_from_civil(year, month as u32, day as u32)
}

/// Human-readable list of a year's NYSE closures (for docs and debugging).
pub fn describe_nyse_holidays(year: i64) -> Vec<String> {
    nyse_holidays(year).into_iter().map(format_date).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nyse_2019_holidays_match_the_exchange_calendar() {
        // Published NYSE closures for 2019.
        let expected = [
            "2019-01-01",
            "2019-01-21",
            "2019-02-18",
            "2019-04-19",
            "2019-05-27",
            "2019-07-04",
            "2019-09-02",
            "2019-11-28",
            "2019-12-25",
        ];
        assert_eq!(describe_nyse_holidays(2019), expected);
        // 2022: New Year on Saturday not observed; Juneteenth on Sunday observed Monday 20th;
        // Christmas on Sunday observed Monday 26th.
        let y2022 = describe_nyse_holidays(2022);
        assert!(!y2022.contains(&"2021-12-31".to_string()));
        assert!(y2022.contains(&"2022-06-20".to_string()));
        assert!(y2022.contains(&"2022-12-26".to_string()));
        assert!(describe_nyse_holidays(2018).contains(&"2018-12-05".to_string()));
    }

    #[test]
    fn weekend_is_a_closure_for_fx_and_equity_but_missing_for_crypto() {
        let h = Timeframe::HOUR;
        let fri_23 = days_from_civil(2019, 3, 1) * MS_PER_DAY + 23 * 3_600_000;
        let mon_00 = days_from_civil(2019, 3, 4) * MS_PER_DAY;
        assert_eq!(MarketCalendar::Fx.classify_absence(fri_23, mon_00, h), Absence::Closure);
        assert_eq!(MarketCalendar::Crypto.classify_absence(fri_23, mon_00, h), Absence::Missing(48));
        let thu_16 = days_from_civil(2021, 1, 21) * MS_PER_DAY + 16 * 3_600_000;
        assert_eq!(MarketCalendar::Fx.classify_absence(thu_16, thu_16 + 2 * 3_600_000, h), Absence::Missing(1));

        let d = Timeframe::DAY;
        let fri = days_from_civil(2019, 3, 1) * MS_PER_DAY;
        let mon = days_from_civil(2019, 3, 4) * MS_PER_DAY;
        assert_eq!(MarketCalendar::Equity.classify_absence(fri, mon, d), Absence::Closure);
        let wed = days_from_civil(2019, 3, 6) * MS_PER_DAY;
        assert_eq!(MarketCalendar::Equity.classify_absence(fri, wed, d), Absence::Missing(2));
        // Good Friday 2019-04-19: Thursday → Monday is not a gap.
        let thu = days_from_civil(2019, 4, 18) * MS_PER_DAY;
        let mon2 = days_from_civil(2019, 4, 22) * MS_PER_DAY;
        assert_eq!(MarketCalendar::Equity.classify_absence(thu, mon2, d), Absence::Closure);
    }
}
