//! Detection of the column layout of a bar file from its header (or, without a header, from its
//! width), with explicit overrides. Every decision is recorded in `notes` so the user is told what
//! was detected.

use quantpipe_core::Aggregation;

/// Where a bar's timestamp comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampColumns {
    Single(usize),
    /// Separate date and time-of-day columns (MetaTrader's `<DATE>`, `<TIME>`).
    DateAndTime {
        date: usize,
        time: usize,
    },
}

/// The column roles of a bar file, by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `binance-kline`, `metatrader` or `generic-ohlcv`.
    pub name: String,
    pub has_header: bool,
    pub width: usize,
    pub header: Vec<String>,
    pub ts: TimestampColumns,
    pub open: usize,
    pub high: usize,
    pub low: usize,
    pub close: usize,
    pub volume: usize,
    pub symbol: Option<usize>,
    /// (position, stored name, aggregation) of the extra numeric columns kept.
    pub extras: Vec<(usize, String, Aggregation)>,
    pub notes: Vec<String>,
}

impl Layout {
    pub fn extra_layout(&self) -> Vec<(String, Aggregation)> {
        self.extras.iter().map(|(_, n, a)| (n.clone(), *a)).collect()
    }

    pub fn describe(&self) -> String {
        let col = |i: usize| self.header.get(i).cloned().unwrap_or_else(|| format!("#{}", i + 1));
        let ts = match &self.ts {
            TimestampColumns::Single(i) => col(*i),
            TimestampColumns::DateAndTime { date, time } => format!("{} + {}", col(*date), col(*time)),
        };
        let mut s = format!(
            "{} ({}): time={}, open={}, high={}, low={}, close={}, volume={}",
            self.name,
            if self.has_header { "header" } else { "no header" },
            ts,
            col(self.open),
            col(self.high),
            col(self.low),
            col(self.close),
            col(self.volume)
        );
        if let Some(i) = self.symbol {
            s.push_str(&format!(", symbol={}", col(i)));
        }
        s
    }
}

/// An explicit column mapping: `ts=open_time,close=c` (names, any case) or `close=5` (1-based).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnOverrides {
    pub entries: Vec<(String, String)>,
}

pub const OVERRIDE_KEYS: &[&str] = &["ts", "date", "time", "open", "high", "low", "close", "volume", "symbol"];

impl ColumnOverrides {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("--columns: {part:?} is not KEY=COLUMN (keys: {})", OVERRIDE_KEYS.join(", ")))?;
            let key = key.trim().to_ascii_lowercase();
            if !OVERRIDE_KEYS.contains(&key.as_str()) {
                return Err(format!("--columns: unknown key {key:?} (keys: {})", OVERRIDE_KEYS.join(", ")));
            }
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(format!("--columns: key {key:?} given twice"));
            }
            entries.push((key, value.trim().to_string()));
        }
        Ok(ColumnOverrides { entries })
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Lower case, without `<>` and quotes, spaces and dashes as underscores: `<TICKVOL>` → `tickvol`,
/// `Adj Close` → `adj_close`.
pub fn normalize(name: &str) -> String {
    name.trim()
        .trim_start_matches('\u{feff}')
        .trim_matches('"')
        .chars()
        .filter(|c| !matches!(c, '<' | '>'))
        .map(|c| if c == ' ' || c == '-' { '_' } else { c.to_ascii_lowercase() })
        .collect()
}

const BINANCE_COLUMNS: [&str; 12] = [
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
];

const TS_NAMES: &[&str] = &[
    "timestamp",
    "datetime",
    "date_time",
    "time",
    "date",
    "ts",
    "t",
    "unix",
    "unix_time",
    "time_stamp",
    "gmt_time",
    "local_time",
    "open_timestamp",
];
const OPEN: &[&str] = &["open", "o", "open_price", "openprice"];
const HIGH: &[&str] = &["high", "h", "high_price", "highprice"];
const LOW: &[&str] = &["low", "l", "low_price", "lowprice"];
const CLOSE: &[&str] = &["close", "c", "close_price", "closeprice", "last"];
const ADJ_CLOSE: &[&str] = &["adj_close", "adjclose", "adj._close", "adjusted_close"];
const VOLUME: &[&str] =
    &["volume", "vol", "v", "volumefrom", "volume_from", "base_volume", "volume_base", "tickvol", "tick_volume"];
const SYMBOL: &[&str] = &["symbol", "name", "ticker", "instrument", "pair", "sym"];

fn extra_for(name: &str) -> Option<(&'static str, Aggregation)> {
    Some(match name {
        "quote_volume" | "quote_asset_volume" | "volumeto" | "volume_to" => ("quote_volume", Aggregation::Sum),
        "count" | "trades" | "number_of_trades" | "trade_count" => ("trades", Aggregation::Sum),
        "taker_buy_volume" | "taker_buy_base_asset_volume" => ("taker_buy_volume", Aggregation::Sum),
        "taker_buy_quote_volume" | "taker_buy_quote_asset_volume" => ("taker_buy_quote_volume", Aggregation::Sum),
        "adj_close" | "adjclose" | "adjusted_close" => ("adj_close", Aggregation::Last),
        "spread" => ("spread", Aggregation::Max),
        "vwap" => ("vwap", Aggregation::Last),
        _ => return None,
    })
}

/// Decides whether the first record is a header: a header has no numeric or date-like first field.
pub fn first_record_is_header(first: &[String]) -> bool {
    let Some(f0) = first.first() else { return true };
    let f0 = f0.trim();
    let numericish = |s: &str| crate::timestamp::looks_numeric(s.trim()) || crate::timestamp::parse_datetime(s).is_ok();
    let numeric_fields = first.iter().filter(|f| numericish(f)).count();
    !(numericish(f0) && numeric_fields * 2 > first.len())
}

/// Detects the layout. `first` is the first record of the file; `overrides` come from `--columns`.
pub fn detect(first: &[String], overrides: &ColumnOverrides) -> Result<Layout, String> {
    let has_header = first_record_is_header(first);
    let mut notes = Vec::new();
    let header: Vec<String> = if has_header {
        first.iter().map(|h| h.trim().trim_start_matches('\u{feff}').to_string()).collect()
    } else if first.len() == 12 && overrides.entries.is_empty() {
        notes.push("no header; 12 columns read as Binance kline columns".to_string());
        BINANCE_COLUMNS.iter().map(|s| s.to_string()).collect()
    } else if first.len() == 6 && overrides.entries.is_empty() {
        notes.push("no header; 6 columns read as time, open, high, low, close, volume".to_string());
        ["time", "open", "high", "low", "close", "volume"].iter().map(|s| s.to_string()).collect()
    } else {
        if overrides.entries.is_empty() {
            return Err(format!(
                "the file has no header and {} columns, which matches no known layout (Binance klines have 12, plain OHLCV 6)",
                first.len()
            ));
        }
        (1..=first.len()).map(|i| format!("#{i}")).collect()
    };
    let norm: Vec<String> = header.iter().map(|h| normalize(h)).collect();
    for (i, n) in norm.iter().enumerate() {
        if !n.is_empty() && norm[..i].contains(n) {
            return Err(format!("column name {:?} appears twice", header[i]));
        }
    }
    if norm.first().is_some_and(|n| n.is_empty() || n == "unnamed:_0") {
        notes.push("leading unnamed index column ignored".to_string());
    }
    let is_metatrader = header.iter().any(|h| h.starts_with('<') && h.ends_with('>'));
    let is_binance = norm.iter().any(|n| n == "open_time") && norm.iter().any(|n| n == "taker_buy_volume");
    let name = if is_binance {
        "binance-kline"
    } else if is_metatrader {
        "metatrader"
    } else {
        "generic-ohlcv"
    };

    let resolve_override = |key: &str| -> Result<Option<usize>, String> {
        let Some(value) = overrides.get(key) else { return Ok(None) };
        if let Ok(pos) = value.parse::<usize>() {
            if pos == 0 || pos > header.len() {
                return Err(format!("--columns {key}={value}: the file has columns 1 to {}", header.len()));
            }
            return Ok(Some(pos - 1));
        }
        let want = normalize(value);
        norm.iter().position(|n| *n == want).map(Some).ok_or_else(|| format!("--columns {key}={value}: no such column"))
    };
    let find = |aliases: &[&str]| aliases.iter().find_map(|a| norm.iter().position(|n| n == a));

    // The timestamp.
    let ts = if let Some(i) = resolve_override("ts")? {
        TimestampColumns::Single(i)
    } else if let (Some(d), Some(t)) = (resolve_override("date")?, resolve_override("time")?) {
        TimestampColumns::DateAndTime { date: d, time: t }
    } else if let Some(i) = norm.iter().position(|n| n == "open_time") {
        TimestampColumns::Single(i)
    } else if let (Some(d), Some(t)) = (norm.iter().position(|n| n == "date"), norm.iter().position(|n| n == "time")) {
        TimestampColumns::DateAndTime { date: d, time: t }
    } else {
        let candidates: Vec<usize> = (0..norm.len()).filter(|&i| TS_NAMES.contains(&norm[i].as_str())).collect();
        match candidates.as_slice() {
            [i] => TimestampColumns::Single(*i),
            [] => {
                return Err(
                    "no timestamp column found (looked for open_time, timestamp, datetime, date, time, …)".into()
                )
            }
            many => {
                let names: Vec<&str> = many.iter().map(|&i| header[i].as_str()).collect();
                return Err(format!("several columns could be the timestamp: {}", names.join(", ")));
            }
        }
    };

    let role = |key: &str, aliases: &[&str]| -> Result<Option<usize>, String> {
        Ok(resolve_override(key)?.or_else(|| find(aliases)))
    };
    let missing = |what: &str| format!("missing required column {what:?}");
    let open = role("open", OPEN)?.ok_or_else(|| missing("open"))?;
    let high = role("high", HIGH)?.ok_or_else(|| missing("high"))?;
    let low = role("low", LOW)?.ok_or_else(|| missing("low"))?;
    let close = match role("close", CLOSE)? {
        Some(i) => i,
        None => {
            let i = find(ADJ_CLOSE).ok_or_else(|| missing("close"))?;
            notes.push(format!("no close column: close read from {:?}", header[i]));
            i
        }
    };
    let volume_aliases: &[&str] = if is_metatrader { &["tickvol", "tick_volume", "volume", "vol"] } else { VOLUME };
    let volume = match role("volume", volume_aliases)? {
        Some(i) => i,
        None => {
            let i = norm.iter().position(|n| n.starts_with("volume_")).ok_or_else(|| missing("volume"))?;
            notes.push(format!("volume read from {:?}", header[i]));
            i
        }
    };
    if is_metatrader && norm[volume] == "tickvol" {
        notes.push("volume is MetaTrader's tick volume <TICKVOL>; <VOL> is kept as real_volume".into());
    }
    let symbol = role("symbol", SYMBOL)?;

    let mut used: Vec<usize> = vec![open, high, low, close, volume];
    match &ts {
        TimestampColumns::Single(i) => used.push(*i),
        TimestampColumns::DateAndTime { date, time } => used.extend([*date, *time]),
    }
    used.extend(symbol);
    let mut extras = Vec::new();
    let mut ignored = Vec::new();
    for (i, n) in norm.iter().enumerate() {
        if used.contains(&i) || (i == 0 && n.is_empty()) {
            continue;
        }
        let extra = if is_metatrader && n == "vol" { Some(("real_volume", Aggregation::Sum)) } else { extra_for(n) };
        match extra {
            Some((stored, agg)) if !extras.iter().any(|(_, s, _): &(usize, String, Aggregation)| s == stored) => {
                extras.push((i, stored.to_string(), agg))
            }
            _ => ignored.push(header[i].clone()),
        }
    }
    if !ignored.is_empty() {
        notes.push(format!("columns not used: {}", ignored.join(", ")));
    }
    Ok(Layout {
        name: name.to_string(),
        has_header,
        width: first.len(),
        header,
        ts,
        open,
        high,
        low,
        close,
        volume,
        symbol,
        extras,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &str) -> Vec<String> {
        s.split(',').map(String::from).collect()
    }

    #[test]
    fn binance_with_and_without_header() {
        let with = detect(&strings(&BINANCE_COLUMNS.join(",")), &Default::default()).unwrap();
        assert_eq!(with.name, "binance-kline");
        assert_eq!((with.ts.clone(), with.close, with.volume), (TimestampColumns::Single(0), 4, 5));
        assert_eq!(with.extras.len(), 4);
        let row = strings(
            "1675209600000,5.233,5.238,5.229,5.233,35462.8,1675209659999,185580.3531,403,21211.2,111005.4733,0",
        );
        let without = detect(&row, &Default::default()).unwrap();
        assert!(!without.has_header);
        assert_eq!(without.name, "binance-kline");
    }

    #[test]
    fn sp500_order_and_case() {
        let l = detect(&strings("Date,High,Low,Open,Close,Volume,Adj Close,Name"), &Default::default()).unwrap();
        assert_eq!((l.open, l.high, l.low, l.close, l.volume, l.symbol), (3, 1, 2, 4, 5, Some(7)));
        assert_eq!(l.extras, vec![(6, "adj_close".to_string(), Aggregation::Last)]);
    }

    #[test]
    fn metatrader_with_adj_close_as_close() {
        let l = detect(
            &strings("<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,Adj Close,<TICKVOL>,<VOL>,<SPREAD>"),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(l.name, "metatrader");
        assert_eq!(l.ts, TimestampColumns::DateAndTime { date: 0, time: 1 });
        assert_eq!((l.close, l.volume), (5, 6));
        assert!(l.notes.iter().any(|n| n.contains("close read from")));
    }

    #[test]
    fn ambiguity_and_overrides() {
        let header = strings("timestamp,datetime,o,h,l,c,v");
        let err = detect(&header, &Default::default()).unwrap_err();
        assert!(err.contains("several columns could be the timestamp"), "{err}");
        let fixed = detect(&header, &ColumnOverrides::parse("ts=datetime").unwrap()).unwrap();
        assert_eq!(fixed.ts, TimestampColumns::Single(1));
        let pos = detect(&header, &ColumnOverrides::parse("ts=1").unwrap()).unwrap();
        assert_eq!(pos.ts, TimestampColumns::Single(0));
        assert!(ColumnOverrides::parse("stamp=1").unwrap_err().contains("unknown key"));
        assert!(detect(&strings(",Date,Open,High,Low,Close,Volume"), &Default::default())
            .unwrap()
            .notes
            .iter()
            .any(|n| n.contains("index column")));
        assert!(detect(&strings("Date,Open,High,Low,Volume"), &Default::default()).unwrap_err().contains("\"close\""));
    }
}
