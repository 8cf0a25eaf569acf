//! Honest validation: time-ordered splitters that purge and embargo around label windows, metrics
//! with scikit-learn's definitions, backtests with costs, and the statistics that discount a backtest
//! for the selection that produced it.

pub mod backtest;
pub mod leak;
pub mod metrics;
pub mod overfit;
pub mod split;
pub mod stats;

use quantpipe_core::{MarketCalendar, Timeframe};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EvalError {
    #[error("{what}: lengths differ ({left} and {right})")]
    LengthMismatch { what: String, left: usize, right: usize },
    #[error("{0}: no rows")]
    Empty(String),
    #[error("{0}")]
    InvalidInput(String),
}

/// Bars per year for annualising, from the bar timeframe and the market's calendar: crypto trades
/// 365 days of 24 h, FX 260 days of 24 h (Sunday evening to Friday evening), equities 252 sessions of
/// 6.5 h (one bar per session for daily bars and longer).
pub fn periods_per_year(timeframe: Timeframe, calendar: MarketCalendar) -> f64 {
    let day_ms = 86_400_000.0;
    let tf = timeframe.millis() as f64;
    let (days, hours_per_day) = match calendar {
        MarketCalendar::Crypto => (365.0, 24.0),
        MarketCalendar::Fx => (260.0, 24.0),
        MarketCalendar::Equity => (252.0, 6.5),
    };
    if tf >= day_ms {
        days * day_ms / tf
    } else {
        days * (hours_per_day * 3_600_000.0 / tf).max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annualisation_follows_the_calendar() {
        let tf = |s| Timeframe::parse(s).unwrap();
        assert_eq!(periods_per_year(tf("1m"), MarketCalendar::Crypto), 525_600.0);
        assert_eq!(periods_per_year(tf("1d"), MarketCalendar::Equity), 252.0);
        assert_eq!(periods_per_year(tf("1h"), MarketCalendar::Fx), 260.0 * 24.0);
        assert_eq!(periods_per_year(tf("30m"), MarketCalendar::Equity), 252.0 * 13.0);
        assert_eq!(periods_per_year(tf("1w"), MarketCalendar::Crypto), 365.0 / 7.0);
    }
}
