//! Domain types shared by every quantpipe crate: UTC millisecond timestamps, timeframes, symbols,
//! columnar bars and market calendars. No I/O and no async live here.

pub mod bars;
pub mod calendar;
pub mod parallel;
pub mod preprocess;
pub mod scope;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod timeframe;

pub use bars::{Aggregation, Bars, ExtraColumn};
pub use calendar::MarketCalendar;
pub use scope::Scope;
pub use time::Timestamp;
pub use timeframe::Timeframe;

/// Errors raised when raw text cannot become a domain value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoreError {
    #[error(
        "invalid timeframe {0:?}: expected a number and a unit, e.g. 1m, 5m, 1h, 4h, 1d, 1w (units: s, m, h, d, w)"
    )]
    InvalidTimeframe(String),
    #[error("invalid symbol {0:?}: use letters, digits and . _ - / : (1 to 64 characters)")]
    InvalidSymbol(String),
    #[error("unknown market calendar {0:?}: expected crypto, fx or equity")]
    UnknownCalendar(String),
    #[error(
        "invalid scope {0:?}: expected platform, TENANT or TENANT/USER (letters, digits, _ - .; 1 to 64 characters)"
    )]
    InvalidScope(String),
}

/// A market symbol, e.g. `FILUSDT` or `AAPL`. Validated so it is safe as a directory name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Symbol(String);

impl Symbol {
    pub fn new(raw: &str) -> Result<Self, CoreError> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw != "."
            && !raw.contains("..")
            && raw.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':'));
        if ok {
            Ok(Symbol(raw.to_string()))
        } else {
            Err(CoreError::InvalidSymbol(raw.to_string()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// A form safe as one path component: `/` and `:` (as in `BTC/USD`) become `_`.
    pub fn path_component(&self) -> String {
        self.0.replace(['/', ':'], "_")
    }
}

impl TryFrom<String> for Symbol {
    type Error = CoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Symbol::new(&value)
    }
}
impl From<Symbol> for String {
    fn from(s: Symbol) -> String {
        s.0
    }
}
impl std::fmt::Display for Symbol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_validated() {
        assert_eq!(Symbol::new("BTC/USD").unwrap().path_component(), "BTC_USD");
        assert!(Symbol::new("").is_err());
        assert!(Symbol::new("..").is_err());
        assert!(Symbol::new("A B").is_err());
        assert!(Symbol::new("../etc").is_err());
    }
}
