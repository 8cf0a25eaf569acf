//! Trades and order-book series (the formats of `shared/data/orderbook_ticks/`), their storage, and
//! aggregation of trades into time, volume and dollar bars.
//!
//! Formats detected: trade tables (`timestamp, price, quantity|amount|size, side|buyer_maker`,
//! Tardis and Binance), quote tables (`bid, ask[, bid_size, ask_size]`: a depth-1 book), Tardis
//! `book_snapshot_N` (`asks[i].price` …), Binance depth snapshot / diff files
//! (`side, update_type, price, qty`), and Bybit order-book JSONL (`snapshot` then `delta` messages).
//! Diff formats are replayed into a book and a top-N snapshot is recorded after each message.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use quantpipe_core::time::format_iso;
use quantpipe_core::{Aggregation, Bars, Symbol, Timeframe};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::layout::normalize;
use crate::timestamp::{looks_numeric, parse_datetime, parse_epoch, EpochUnit};

/// Trades: `side` is +1 when the buyer took liquidity (an uptick-side aggressor), −1 for the seller, 0 unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trades {
    pub ts: Vec<i64>,
    pub price: Vec<f64>,
    pub qty: Vec<f64>,
    pub side: Vec<f64>,
}

/// Top-N book snapshots, row-major: level `k` of snapshot `i` is at `i * depth + k`; absent levels are NaN.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BookSnapshots {
    pub depth: usize,
    pub ts: Vec<i64>,
    pub bid_px: Vec<f64>,
    pub bid_sz: Vec<f64>,
    pub ask_px: Vec<f64>,
    pub ask_sz: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TickData {
    Trades(Trades),
    Book(BookSnapshots),
}

impl TickData {
    pub fn kind(&self) -> &'static str {
        match self {
            TickData::Trades(_) => "trades",
            TickData::Book(_) => "book",
        }
    }
    pub fn len(&self) -> usize {
        match self {
            TickData::Trades(t) => t.ts.len(),
            TickData::Book(b) => b.ts.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TickReport {
    pub file: String,
    pub format: String,
    pub symbol: Symbol,
    pub kind: String,
    pub rows: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    /// Rows that came before the row above them in time (sorted, stably).
    pub unsorted: u64,
    /// Snapshots whose best bid is above the best ask (a locked book, bid = ask, is not counted).
    pub crossed: u64,
    /// Trades: share of quantity bought by aggressive buyers.
    pub buy_share: Option<f64>,
    pub notes: Vec<String>,
}

/// The tick formats recognised from a file's first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickFormat {
    Trades,
    Quotes,
    TardisBook,
    BinanceDepth,
    BybitBook,
}

impl TickFormat {
    pub fn name(self) -> &'static str {
        match self {
            TickFormat::Trades => "trades",
            TickFormat::Quotes => "quotes (top of book)",
            TickFormat::TardisBook => "Tardis book snapshots",
            TickFormat::BinanceDepth => "Binance depth snapshot/updates",
            TickFormat::BybitBook => "Bybit order-book messages",
        }
    }
}

/// A table of text cells: column names and the rows (tick files are read whole). Every cell's text
/// sits in one buffer, row after row: tick files hold millions of short fields, and a `String` per
/// field took four times the file's size in memory.
struct Table {
    header: Vec<String>,
    text: String,
    /// Where each cell ends in `text`, row by row, `header.len()` cells per row.
    ends: Vec<usize>,
    /// Source line (CSV) or row (Parquet) of each row.
    lines: Vec<u64>,
}

impl Table {
    fn new(header: Vec<String>) -> Table {
        Table { header, text: String::new(), ends: Vec::new(), lines: Vec::new() }
    }

    fn col(&self, names: &[&str]) -> Option<usize> {
        names.iter().find_map(|n| self.header.iter().position(|h| h == n))
    }

    fn len(&self) -> usize {
        self.lines.len()
    }

    /// The text of row `row`, column `col`.
    fn cell(&self, row: usize, col: usize) -> &str {
        let k = row * self.header.len() + col;
        let start = if k == 0 { 0 } else { self.ends[k - 1] };
        &self.text[start..self.ends[k]]
    }

    /// Appends a row of `header.len()` cells read from source line (or row) `line`.
    fn push_row<'a>(&mut self, cells: impl IntoIterator<Item = &'a str>, line: u64) {
        for cell in cells {
            self.text.push_str(cell);
            self.ends.push(self.text.len());
        }
        self.lines.push(line);
    }
}

fn open_text(path: &Path) -> Result<Box<dyn BufRead>> {
    let f = File::open(path).map_err(|e| DataError::io(path, e))?;
    Ok(if is_gzip(path) {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(f)))
    } else {
        Box::new(BufReader::new(f))
    })
}

fn is_gzip(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == [0x1f, 0x8b]
}

fn is_parquet(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"PAR1"
}

fn read_table(path: &Path) -> Result<Table> {
    let mut magic = [0u8; 4];
    let got = File::open(path).and_then(|mut f| f.read(&mut magic)).map_err(|e| DataError::io(path, e))?;
    crate::read::refuse_misnamed_parquet(path, &magic[..got])?;
    if &magic[..got] == b"PAR1" {
        let (header, columns) = crate::parquet_io::read_parquet_text(path)?;
        let n = columns.first().map_or(0, |c| c.len());
        let mut table = Table::new(header.iter().map(|h| normalize(h)).collect());
        for r in 0..n {
            table.push_row(columns.iter().map(|c| c[r].as_deref().unwrap_or("")), r as u64 + 1);
        }
        return Ok(table);
    }
    let mut csv = crate::read::NumberedCsv::new(b',', open_text(path)?, 0);
    let malformed = |line: u64, message: String| DataError::Malformed { path: path.into(), line, message };
    let text = |record: &csv::ByteRecord, line: u64| -> Result<()> {
        match record.iter().all(|f| std::str::from_utf8(f).is_ok()) {
            true => Ok(()),
            false => Err(malformed(line, "not valid UTF-8 text".into())),
        }
    };
    // Fields trimmed of surrounding whitespace; `text` checked each is UTF-8 first.
    fn trimmed(field: &[u8]) -> &str {
        std::str::from_utf8(field).map(str::trim).unwrap_or("")
    }
    let mut record = csv::ByteRecord::new();
    let header: Vec<String> = match csv.next(&mut record).map_err(|e| malformed(1, e.to_string()))? {
        Some(line) => {
            text(&record, line)?;
            record.iter().map(|h| normalize(trimmed(h))).collect()
        }
        None => Vec::new(),
    };
    let mut table = Table::new(header);
    // Sized once from the file (gzip'd text is typically 3–5× smaller than its text; a cell takes
    // at least a byte and its delimiter, typically 8 or more): growing by doubling would copy the
    // buffers and hold old and new at once. Capacity never written costs no memory; a reservation
    // the system refuses (a huge file) is left to growth instead of aborting.
    let on_disk = std::fs::metadata(path).map_or(0, |m| m.len() as usize);
    let text_bytes = if is_gzip(path) { on_disk.saturating_mul(4) } else { on_disk };
    let _ = table.text.try_reserve(text_bytes);
    let _ = table.ends.try_reserve(text_bytes / 8);
    loop {
        let after = table.lines.last().map_or(1, |l| l + 1);
        let Some(line) = csv.next(&mut record).map_err(|e| malformed(after, e.to_string()))? else { break };
        if record.len() != table.header.len() {
            return Err(malformed(line, format!("{} fields, but the header has {}", record.len(), table.header.len())));
        }
        text(&record, line)?;
        table.push_row(record.iter().map(trimmed), line);
    }
    Ok(table)
}

/// Recognises a tick file from its header (or first JSON message); `None` means "not ticks" (bars).
pub fn sniff(path: &Path) -> Option<TickFormat> {
    let header: Vec<String> = if is_parquet(path) {
        crate::parquet_io::parquet_column_names(path).ok()?.iter().map(|h| normalize(h)).collect()
    } else {
        let mut first = String::new();
        open_text(path).ok()?.read_line(&mut first).ok()?;
        let first = first.trim_start_matches('\u{feff}').trim();
        if first.starts_with('{') {
            let v: serde_json::Value = serde_json::from_str(first).ok()?;
            let topic = v.get("topic")?.as_str()?;
            return topic.starts_with("orderbook").then_some(TickFormat::BybitBook);
        }
        first.split(',').map(normalize).collect()
    };
    let has = |n: &str| header.iter().any(|h| h == n);
    if has("open") {
        None
    } else if has("asks[0].price") {
        Some(TickFormat::TardisBook)
    } else if has("update_type") && has("side") && has("price") {
        Some(TickFormat::BinanceDepth)
    } else if has("bid") && has("ask") {
        Some(TickFormat::Quotes)
    } else if has("price") && ["qty", "quantity", "amount", "size"].iter().any(|n| has(n)) {
        Some(TickFormat::Trades)
    } else {
        None
    }
}

struct TsParser {
    unit: Option<EpochUnit>,
}

impl TsParser {
    fn parse(&mut self, s: &str) -> std::result::Result<i64, String> {
        if looks_numeric(s) {
            let unit = *self.unit.get_or_insert_with(|| EpochUnit::from_magnitude(s.parse::<f64>().unwrap_or(0.0)));
            parse_epoch(s, unit)
        } else {
            parse_datetime(s).map(|(ms, _)| ms)
        }
    }
}

fn num(path: &Path, line: u64, col: &str, s: &str) -> Result<f64> {
    let v: f64 = s.parse().map_err(|_| DataError::Malformed {
        path: path.into(),
        line,
        message: format!("column {col}: {s:?} is not a number"),
    })?;
    if !v.is_finite() || v < 0.0 {
        return Err(DataError::Malformed {
            path: path.into(),
            line,
            message: format!("column {col}: {v} is not a finite, non-negative value"),
        });
    }
    Ok(v)
}

fn symbol_from(table: &Table, given: Option<&Symbol>, path: &Path) -> Result<Symbol> {
    if let Some(s) = given {
        return Ok(s.clone());
    }
    if let Some(i) = table.col(&["symbol"]) {
        if table.len() > 0 {
            return Ok(Symbol::new(&table.cell(0, i).replace('/', ""))?);
        }
    }
    Err(DataError::Invalid(format!("{}: the file has no symbol column; name it with --symbol", path.display())))
}

/// Reads a tick file of any recognised format. `depth` caps the stored book levels.
pub fn read_ticks(
    path: &Path,
    format: TickFormat,
    symbol: Option<&Symbol>,
    depth: usize,
) -> Result<(Symbol, TickData, Vec<String>)> {
    let mut notes = Vec::new();
    let mut ts = TsParser { unit: None };
    let bad_ts =
        |line: u64, e: String| DataError::Malformed { path: path.into(), line, message: format!("timestamp: {e}") };
    match format {
        TickFormat::BybitBook => {
            let (sym, book) = read_bybit(path, depth)?;
            Ok((symbol.cloned().unwrap_or(sym), TickData::Book(book), notes))
        }
        TickFormat::Trades => {
            let t = read_table(path)?;
            let sym = symbol_from(&t, symbol, path)?;
            let tc = t.col(&["timestamp", "time", "ts", "datetime"]).ok_or_else(|| missing(path, "timestamp", &t))?;
            let pc = t.col(&["price", "px"]).ok_or_else(|| missing(path, "price", &t))?;
            let qc = t.col(&["qty", "quantity", "amount", "size"]).ok_or_else(|| missing(path, "quantity", &t))?;
            let side_col = t.col(&["side", "taker_side", "aggressor_side"]);
            let maker_col = t.col(&["buyer_maker", "is_buyer_maker"]);
            if side_col.is_none() && maker_col.is_none() {
                notes.push("no aggressor side column: side recorded as unknown (0)".into());
            }
            let mut out = Trades::default();
            for r in 0..t.len() {
                let (line, cell) = (t.lines[r], |c| t.cell(r, c));
                out.ts.push(ts.parse(cell(tc)).map_err(|e| bad_ts(line, e))?);
                out.price.push(num(path, line, "price", cell(pc))?);
                out.qty.push(num(path, line, "quantity", cell(qc))?);
                let side = if let Some(c) = side_col {
                    match cell(c).to_ascii_lowercase().as_str() {
                        "buy" | "b" | "bid" => 1.0,
                        "sell" | "s" | "ask" => -1.0,
                        _ => 0.0,
                    }
                } else if let Some(c) = maker_col {
                    // The buyer was the maker, so the seller was the aggressor.
                    match cell(c).to_ascii_lowercase().as_str() {
                        "true" | "1" => -1.0,
                        "false" | "0" => 1.0,
                        _ => 0.0,
                    }
                } else {
                    0.0
                };
                out.side.push(side);
            }
            Ok((sym, TickData::Trades(out), notes))
        }
        TickFormat::Quotes => {
            let t = read_table(path)?;
            let sym = symbol_from(&t, symbol, path)?;
            let tc = t.col(&["timestamp", "time", "ts", "datetime"]).ok_or_else(|| missing(path, "timestamp", &t))?;
            let (bc, ac) = (t.col(&["bid"]).unwrap_or(0), t.col(&["ask"]).unwrap_or(0));
            let (bs, asz) = (t.col(&["bid_size", "bid_qty"]), t.col(&["ask_size", "ask_qty"]));
            let mut b = BookSnapshots { depth: 1, ..Default::default() };
            for r in 0..t.len() {
                let (line, cell) = (t.lines[r], |c| t.cell(r, c));
                b.ts.push(ts.parse(cell(tc)).map_err(|e| bad_ts(line, e))?);
                b.bid_px.push(num(path, line, "bid", cell(bc))?);
                b.ask_px.push(num(path, line, "ask", cell(ac))?);
                b.bid_sz.push(bs.map(|c| num(path, line, "bid_size", cell(c))).transpose()?.unwrap_or(f64::NAN));
                b.ask_sz.push(asz.map(|c| num(path, line, "ask_size", cell(c))).transpose()?.unwrap_or(f64::NAN));
            }
            Ok((sym, TickData::Book(b), notes))
        }
        TickFormat::TardisBook => {
            let t = read_table(path)?;
            let sym = symbol_from(&t, symbol, path)?;
            let tc = t.col(&["timestamp"]).ok_or_else(|| missing(path, "timestamp", &t))?;
            let levels = (0..).take_while(|i| t.col(&[&format!("asks[{i}].price")]).is_some()).count();
            let depth = depth.min(levels);
            let mut b = BookSnapshots { depth, ..Default::default() };
            for r in 0..t.len() {
                let (line, cell) = (t.lines[r], |c| t.cell(r, c));
                b.ts.push(ts.parse(cell(tc)).map_err(|e| bad_ts(line, e))?);
                for k in 0..depth {
                    for (side, px, sz) in
                        [("bids", &mut b.bid_px, &mut b.bid_sz), ("asks", &mut b.ask_px, &mut b.ask_sz)]
                    {
                        let p = t.col(&[&format!("{side}[{k}].price")]).map(cell).unwrap_or("");
                        let a = t.col(&[&format!("{side}[{k}].amount")]).map(cell).unwrap_or("");
                        let col = format!("{side}[{k}]");
                        px.push(if p.is_empty() { f64::NAN } else { num(path, line, &col, p)? });
                        sz.push(if a.is_empty() { f64::NAN } else { num(path, line, &col, a)? });
                    }
                }
            }
            Ok((sym, TickData::Book(b), notes))
        }
        TickFormat::BinanceDepth => {
            let t = read_table(path)?;
            let sym = symbol_from(&t, symbol, path)?;
            let col = |n: &str| t.col(&[n]).ok_or_else(|| missing(path, n, &t));
            let (tc, sc, uc, pc, qc) =
                (col("timestamp")?, col("side")?, col("update_type")?, col("price")?, col("qty")?);
            let luc = t.col(&["last_update_id"]);
            if !(0..t.len()).any(|r| t.cell(r, uc) == "snap") {
                notes.push("no snapshot rows: the book is built from updates alone and may miss levels".into());
            }
            let mut book = Book::default();
            let mut out = BookSnapshots { depth, ..Default::default() };
            let mut i = 0;
            while i < t.len() {
                // One message: rows sharing timestamp and last update id.
                let key = |r: usize| (t.cell(r, tc), luc.map(|c| t.cell(r, c)));
                let k0 = key(i);
                let start = i;
                while i < t.len() && key(i) == k0 {
                    i += 1;
                }
                if t.cell(start, uc) == "snap" {
                    book = Book::default();
                }
                for r in start..i {
                    let (line, cell) = (t.lines[r], |c| t.cell(r, c));
                    let px = num(path, line, "price", cell(pc))?;
                    let qty = num(path, line, "qty", cell(qc))?;
                    book.set(cell(sc) == "b" || cell(sc) == "bid", px, qty);
                }
                let stamp = ts.parse(t.cell(start, tc)).map_err(|e| bad_ts(t.lines[start], e))?;
                book.snapshot_into(stamp, &mut out);
            }
            Ok((sym, TickData::Book(out), notes))
        }
    }
}

fn missing(path: &Path, what: &str, t: &Table) -> DataError {
    DataError::Layout {
        path: path.into(),
        message: format!("missing required column {what:?}"),
        header: t.header.join(","),
    }
}

/// A price-level book keyed by price in integer ticks of 1e-9 (exact for the quoted decimals).
#[derive(Default)]
struct Book {
    bids: BTreeMap<i64, (f64, f64)>,
    asks: BTreeMap<i64, (f64, f64)>,
}

impl Book {
    fn set(&mut self, bid: bool, px: f64, qty: f64) {
        let key = (px * 1e9).round() as i64;
        let side = if bid { &mut self.bids } else { &mut self.asks };
        if qty == 0.0 {
            side.remove(&key);
        } else {
            side.insert(key, (px, qty));
        }
    }
    fn snapshot_into(&self, ts: i64, out: &mut BookSnapshots) {
        out.ts.push(ts);
        let mut bids = self.bids.values().rev();
        let mut asks = self.asks.values();
        for _ in 0..out.depth {
            let (bp, bs) = bids.next().copied().unwrap_or((f64::NAN, f64::NAN));
            let (ap, az) = asks.next().copied().unwrap_or((f64::NAN, f64::NAN));
            out.bid_px.push(bp);
            out.bid_sz.push(bs);
            out.ask_px.push(ap);
            out.ask_sz.push(az);
        }
    }
}

fn read_bybit(path: &Path, depth: usize) -> Result<(Symbol, BookSnapshots)> {
    let mut book = Book::default();
    let mut out = BookSnapshots { depth, ..Default::default() };
    let mut symbol = None;
    for (n, line) in open_text(path)?.lines().enumerate() {
        let line_no = n as u64 + 1;
        let malformed = |message: String| DataError::Malformed { path: path.into(), line: line_no, message };
        let line = line.map_err(|e| malformed(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| malformed(format!("bad JSON: {e}")))?;
        let kind = v["type"].as_str().ok_or_else(|| malformed("missing field \"type\"".into()))?;
        let ts = v["ts"].as_i64().ok_or_else(|| malformed("missing or non-integer field \"ts\"".into()))?;
        let data = &v["data"];
        if symbol.is_none() {
            symbol = data["s"].as_str().map(Symbol::new).transpose()?;
        }
        if kind == "snapshot" {
            book = Book::default();
        } else if kind != "delta" {
            return Err(malformed(format!("unknown message type {kind:?}")));
        }
        for (field, bid) in [("b", true), ("a", false)] {
            let levels = data[field].as_array().ok_or_else(|| malformed(format!("missing array data.{field}")))?;
            for level in levels {
                let pair = |i: usize| -> Result<f64> {
                    let s = level[i]
                        .as_str()
                        .ok_or_else(|| malformed(format!("data.{field}: level {level} is not [price, size]")))?;
                    num(path, line_no, &format!("data.{field}"), s)
                };
                book.set(bid, pair(0)?, pair(1)?);
            }
        }
        book.snapshot_into(ts, &mut out);
    }
    let symbol = symbol.ok_or_else(|| DataError::Invalid(format!("{}: no symbol in data.s", path.display())))?;
    Ok((symbol, out))
}

/// Sorts by time (stably) and computes the report's figures.
pub fn finish(file: &Path, format: TickFormat, symbol: Symbol, data: &mut TickData, notes: Vec<String>) -> TickReport {
    let ts = match data {
        TickData::Trades(t) => &t.ts,
        TickData::Book(b) => &b.ts,
    };
    let unsorted = ts.windows(2).filter(|w| w[1] < w[0]).count() as u64;
    if unsorted > 0 {
        let mut order: Vec<usize> = (0..ts.len()).collect();
        order.sort_by_key(|&i| ts[i]);
        match data {
            TickData::Trades(t) => {
                let pick = |v: &Vec<f64>| order.iter().map(|&i| v[i]).collect::<Vec<_>>();
                *t = Trades {
                    ts: order.iter().map(|&i| t.ts[i]).collect(),
                    price: pick(&t.price),
                    qty: pick(&t.qty),
                    side: pick(&t.side),
                };
            }
            TickData::Book(b) => {
                let d = b.depth;
                let pick =
                    |v: &Vec<f64>| order.iter().flat_map(|&i| v[i * d..(i + 1) * d].to_vec()).collect::<Vec<_>>();
                *b = BookSnapshots {
                    depth: d,
                    ts: order.iter().map(|&i| b.ts[i]).collect(),
                    bid_px: pick(&b.bid_px),
                    bid_sz: pick(&b.bid_sz),
                    ask_px: pick(&b.ask_px),
                    ask_sz: pick(&b.ask_sz),
                };
            }
        }
    }
    let (kind, rows) = (data.kind().to_string(), data.len() as u64);
    let (first, last, crossed, buy_share) = match &*data {
        TickData::Trades(t) => {
            let total: f64 = t.qty.iter().sum();
            let bought: f64 = t.qty.iter().zip(&t.side).filter(|(_, &s)| s > 0.0).map(|(q, _)| q).sum();
            (t.ts.first(), t.ts.last(), 0, (total > 0.0).then(|| bought / total + 0.0))
        }
        TickData::Book(b) => {
            let crossed = (0..b.ts.len()).filter(|&i| b.bid_px[i * b.depth] > b.ask_px[i * b.depth]).count() as u64;
            (b.ts.first(), b.ts.last(), crossed, None)
        }
    };
    TickReport {
        file: file.display().to_string(),
        format: format.name().to_string(),
        symbol,
        kind,
        rows,
        first: first.map(|&t| format_iso(t)),
        last: last.map(|&t| format_iso(t)),
        unsorted,
        crossed,
        buy_share,
        notes,
    }
}

/// How trades become bars.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TradeBarRule {
    /// UTC-aligned time bars; empty intervals produce no bar.
    Time(Timeframe),
    /// A bar closes when its traded quantity reaches the threshold.
    Volume(f64),
    /// A bar closes when its traded notional (price × quantity) reaches the threshold.
    Dollar(f64),
}

/// OHLCV bars from trades, with extra columns `trades` (count) and `buy_volume` (aggressive buys).
/// A bar's time is its interval start (time bars) or its first trade (volume and dollar bars).
pub fn bars_from_trades(t: &Trades, rule: TradeBarRule) -> Bars {
    let mut out =
        Bars::with_capacity(0, &[("trades".into(), Aggregation::Sum), ("buy_volume".into(), Aggregation::Sum)]);
    let mut i = 0;
    while i < t.ts.len() {
        let start = i;
        let bar_ts = match rule {
            TradeBarRule::Time(tf) => tf.floor(t.ts[i]),
            _ => t.ts[i],
        };
        let mut filled = 0.0;
        loop {
            let amount = match rule {
                TradeBarRule::Time(tf) => {
                    if tf.floor(t.ts[i]) != bar_ts {
                        break;
                    }
                    0.0
                }
                TradeBarRule::Volume(_) => t.qty[i],
                TradeBarRule::Dollar(_) => t.qty[i] * t.price[i],
            };
            filled += amount;
            i += 1;
            let full = match rule {
                TradeBarRule::Volume(v) | TradeBarRule::Dollar(v) => filled >= v,
                TradeBarRule::Time(_) => false,
            };
            if full || i == t.ts.len() {
                break;
            }
        }
        let r = start..i;
        out.ts.push(bar_ts);
        out.open.push(t.price[start]);
        out.high.push(t.price[r.clone()].iter().copied().fold(f64::NEG_INFINITY, f64::max));
        out.low.push(t.price[r.clone()].iter().copied().fold(f64::INFINITY, f64::min));
        out.close.push(t.price[i - 1]);
        out.volume.push(t.qty[r.clone()].iter().sum());
        out.extras[0].values.push((i - start) as f64);
        out.extras[1].values.push(r.filter(|&k| t.side[k] > 0.0).map(|k| t.qty[k]).sum());
    }
    out
}

/// Where a symbol's tick series of one kind is stored: `ticks/<symbol>/<kind>/`.
pub fn tick_dir(home: &Path, symbol: &Symbol, kind: &str) -> PathBuf {
    home.join("ticks").join(symbol.path_component()).join(kind)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TickMeta {
    pub symbol: Symbol,
    pub kind: String,
    pub rows: u64,
    pub depth: usize,
    pub content_hash: String,
    pub data_file: String,
    pub report: TickReport,
    pub updated_at: String,
}

fn to_columns(data: &TickData) -> crate::parquet_io::TimedColumns {
    match data {
        TickData::Trades(t) => (
            t.ts.clone(),
            vec![("price".into(), t.price.clone()), ("qty".into(), t.qty.clone()), ("side".into(), t.side.clone())],
        ),
        TickData::Book(b) => {
            let mut cols = Vec::new();
            for (name, v) in
                [("bid_px", &b.bid_px), ("bid_sz", &b.bid_sz), ("ask_px", &b.ask_px), ("ask_sz", &b.ask_sz)]
            {
                for k in 0..b.depth {
                    cols.push((format!("{name}_{k}"), (0..b.ts.len()).map(|i| v[i * b.depth + k]).collect()));
                }
            }
            (b.ts.clone(), cols)
        }
    }
}

/// Stores a tick series. The same content again is a no-op; different content for a stored
/// series is refused (tick rows have no key to merge on safely).
pub fn store_ticks(home: &Path, data: &TickData, report: &TickReport) -> Result<(TickMeta, bool)> {
    let dir = tick_dir(home, &report.symbol, data.kind());
    std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    let _lock = crate::store::lock_series_dir(&dir)?;
    let (ts, cols) = to_columns(data);
    let named: Vec<(&str, &[f64])> = cols.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    let hash = crate::store::hash_columns(&ts, &named);
    let meta_path = dir.join("meta.json");
    if let Ok(bytes) = std::fs::read(&meta_path) {
        let old: TickMeta =
            serde_json::from_slice(&bytes).map_err(|e| DataError::Store(format!("{}: {e}", meta_path.display())))?;
        if old.content_hash == hash {
            return Ok((old, false));
        }
        return Err(DataError::Store(format!(
            "{} {} is already stored with different content ({} rows from {}); nothing was stored. Remove {} to replace it",
            report.symbol,
            data.kind(),
            old.rows,
            old.report.file,
            dir.display()
        )));
    }
    let data_file = format!("{}-{}.parquet", data.kind(), &hash[..16]);
    let tmp = dir.join(format!(".{data_file}.tmp-{}", std::process::id()));
    crate::parquet_io::write_columns(&tmp, ts, cols)?;
    std::fs::rename(&tmp, dir.join(&data_file)).map_err(|e| DataError::io(&dir, e))?;
    let depth = match data {
        TickData::Book(b) => b.depth,
        TickData::Trades(_) => 0,
    };
    let meta = TickMeta {
        symbol: report.symbol.clone(),
        kind: data.kind().into(),
        rows: data.len() as u64,
        depth,
        content_hash: hash,
        data_file,
        report: report.clone(),
        updated_at: crate::store::now_iso(),
    };
    let tmp_meta = dir.join(format!(".meta.json.tmp-{}", std::process::id()));
    let bytes = serde_json::to_vec_pretty(&meta).map_err(|e| DataError::Store(e.to_string()))?;
    std::fs::write(&tmp_meta, bytes).map_err(|e| DataError::io(&tmp_meta, e))?;
    std::fs::rename(&tmp_meta, &meta_path).map_err(|e| DataError::io(&meta_path, e))?;
    Ok((meta, true))
}

/// The metadata of a stored tick series (`kind` is "trades" or "book").
pub fn tick_meta(home: &Path, symbol: &Symbol, kind: &str) -> Result<TickMeta> {
    let meta_path = tick_dir(home, symbol, kind).join("meta.json");
    let bytes = std::fs::read(&meta_path).map_err(|_| {
        DataError::Invalid(format!(
            "no stored {kind} for {symbol}; ingest a {kind} file first (`quantpipe ingest FILE`)"
        ))
    })?;
    serde_json::from_slice(&bytes).map_err(|e| DataError::Store(format!("{}: {e}", meta_path.display())))
}

/// Reads, checks and (unless `dry_run`) stores a tick file: the service behind `quantpipe ingest`
/// for trades, quotes and books.
pub fn ingest_ticks(
    home: &Path,
    file: &Path,
    format: TickFormat,
    symbol: Option<&Symbol>,
    depth: usize,
    dry_run: bool,
) -> Result<TickReport> {
    let (symbol, mut data, notes) = read_ticks(file, format, symbol, depth)?;
    if data.is_empty() {
        return Err(DataError::HeaderOnly { path: file.into() });
    }
    let report = finish(file, format, symbol, &mut data, notes);
    if !dry_run {
        store_ticks(home, &data, &report)?;
    }
    Ok(report)
}

/// Loads a stored trade series.
pub fn load_trades(home: &Path, symbol: &Symbol) -> Result<Trades> {
    let meta = tick_meta(home, symbol, "trades")?;
    let (ts, mut cols) = crate::parquet_io::read_columns(&tick_dir(home, symbol, "trades").join(&meta.data_file))?;
    let mut take =
        |name: &str| cols.iter_mut().find(|(n, _)| n == name).map(|(_, v)| std::mem::take(v)).unwrap_or_default();
    Ok(Trades { ts, price: take("price"), qty: take("qty"), side: take("side") })
}

/// Every stored tick series.
pub fn list_ticks(home: &Path) -> Vec<TickMeta> {
    let mut out = Vec::new();
    let Ok(symbols) = std::fs::read_dir(home.join("ticks")) else { return out };
    for sym in symbols.flatten() {
        let Ok(kinds) = std::fs::read_dir(sym.path()) else { continue };
        for kind in kinds.flatten() {
            if let Ok(bytes) = std::fs::read(kind.path().join("meta.json")) {
                if let Ok(meta) = serde_json::from_slice::<TickMeta>(&bytes) {
                    out.push(meta);
                }
            }
        }
    }
    out.sort_by(|a, b| (&a.symbol, &a.kind).cmp(&(&b.symbol, &b.kind)));
    out
}

/// Loads a stored book series: (depth, ts, bid_px, bid_sz, ask_px, ask_sz) row-major.
pub fn load_book(home: &Path, symbol: &Symbol) -> Result<BookSnapshots> {
    let meta = tick_meta(home, symbol, "book")?;
    let dir = tick_dir(home, symbol, "book");
    let (ts, cols) = crate::parquet_io::read_columns(&dir.join(&meta.data_file))?;
    let d = meta.depth;
    let n = ts.len();
    let interleave = |name: &str| -> Vec<f64> {
        let mut out = vec![f64::NAN; n * d];
        for k in 0..d {
            if let Some((_, v)) = cols.iter().find(|(c, _)| *c == format!("{name}_{k}")) {
                for i in 0..n {
                    out[i * d + k] = v[i];
                }
            }
        }
        out
    };
    Ok(BookSnapshots {
        depth: d,
        bid_px: interleave("bid_px"),
        bid_sz: interleave("bid_sz"),
        ask_px: interleave("ask_px"),
        ask_sz: interleave("ask_sz"),
        ts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trades() -> Trades {
        // Six trades over 2.5 seconds.
        Trades {
            ts: vec![1_000, 1_400, 1_900, 2_100, 2_800, 3_500],
            price: vec![10.0, 11.0, 9.0, 10.0, 12.0, 11.0],
            qty: vec![1.0, 2.0, 1.0, 3.0, 1.0, 2.0],
            side: vec![1.0, 1.0, -1.0, -1.0, 1.0, 0.0],
        }
    }

    #[test]
    fn time_bars_align_to_the_second() {
        let b = bars_from_trades(&trades(), TradeBarRule::Time(Timeframe::parse("1s").unwrap()));
        assert_eq!(b.ts, vec![1_000, 2_000, 3_000]);
        assert_eq!(
            (b.open.clone(), b.high.clone(), b.low.clone(), b.close.clone()),
            (vec![10.0, 10.0, 11.0], vec![11.0, 12.0, 11.0], vec![9.0, 10.0, 11.0], vec![9.0, 12.0, 11.0])
        );
        assert_eq!(b.volume, vec![4.0, 4.0, 2.0]);
        assert_eq!(b.extras[0].values, vec![3.0, 2.0, 1.0]);
        assert_eq!(b.extras[1].values, vec![3.0, 1.0, 0.0]);
    }

    #[test]
    fn volume_and_dollar_bars_close_at_the_threshold() {
        let v = bars_from_trades(&trades(), TradeBarRule::Volume(3.0));
        // 1+2 = 3 closes bar 1; 1+3 = 4 closes bar 2; 1+2 = 3 closes bar 3.
        assert_eq!(v.volume, vec![3.0, 4.0, 3.0]);
        assert_eq!(v.ts, vec![1_000, 1_900, 2_800]);
        let d = bars_from_trades(&trades(), TradeBarRule::Dollar(30.0));
        // notional 10, 22 (=32 ≥ 30) | 9, 30 (=39) | 12, 22 (=34).
        assert_eq!(d.extras[0].values, vec![2.0, 2.0, 2.0]);
        assert_eq!(d.close, vec![11.0, 10.0, 11.0]);
    }

    #[test]
    fn book_replay_removes_zero_levels_and_orders_sides() {
        let mut book = Book::default();
        book.set(true, 100.0, 1.0);
        book.set(true, 101.0, 2.0);
        book.set(false, 102.0, 3.0);
        book.set(false, 103.0, 4.0);
        book.set(true, 101.0, 0.0);
        let mut out = BookSnapshots { depth: 2, ..Default::default() };
        book.snapshot_into(5, &mut out);
        assert_eq!(out.bid_px[0], 100.0);
        assert!(out.bid_px[1].is_nan());
        assert_eq!((out.ask_px.clone(), out.ask_sz.clone()), (vec![102.0, 103.0], vec![3.0, 4.0]));
    }
}
