//! `quantpipe ingest` and `quantpipe data …`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use quantpipe_core::time::format_iso;
use quantpipe_core::{MarketCalendar, Symbol, Timeframe};
use quantpipe_data::layout::ColumnOverrides;
use quantpipe_data::quality::{Action, ConflictRule, Policy};
use quantpipe_data::resample::resample;
use quantpipe_data::store::Derivation;
use quantpipe_data::{ingest_file, ticks, BarStore, IngestOptions, IngestReport};

use crate::render::{self, right, table, BarProgress};

pub const INGEST_EXAMPLES: &str = "Examples:
  quantpipe ingest data/sample/bitfinex_btcusd_1h.csv.gz
  quantpipe ingest ../shared/data/filusdt_perp_1m_2023.csv.gz --symbol FILUSDT
  quantpipe ingest ../shared/data/sp500_daily_5yr.csv.gz --repair --on-conflict keep-first
  quantpipe ingest bars.csv --symbol EURUSD --columns ts=Gmt_time,volume=Volume --calendar fx

Formats: CSV (plain or gzip; , ; tab or | delimited), JSONL, Parquet. Layouts detected: Binance klines
(with or without header), Date/Open/High/Low/Close/Volume in any order and case (with Adj Close),
MetaTrader exports (<DATE>,<TIME>,...), a leading unnamed index column. Timestamps: ISO-8601 with or
without zone (naive = UTC), YYYY.MM.DD, epoch s/ms/us/ns.

Fatal (nothing stored): unreadable file, missing columns, unparseable or NaN/inf values, conflicting
duplicate timestamps. Flagged (stored, reported): OHLC inconsistencies, non-positive prices, gaps,
zero volume, extreme returns, stale runs. Exact duplicates are dropped and unsorted rows sorted, each
reported. Exit code 0 when stored, 1 when refused.";

#[derive(Args)]
pub struct IngestArgs {
    /// Files to ingest (each is stored or refused as a whole).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Symbol of a single-symbol file; with a symbol column, ingest only this symbol.
    #[arg(long)]
    symbol: Option<String>,
    /// Bar timeframe (1m, 5m, 1h, 1d, …); inferred from the spacing of the bars when omitted.
    #[arg(long)]
    timeframe: Option<String>,
    /// Market calendar for gap detection: crypto (24/7), fx (closed weekends, 25-26 Dec, 1 Jan),
    /// equity (NYSE trading days). Inferred when omitted.
    #[arg(long)]
    calendar: Option<String>,
    /// Explicit column mapping, e.g. `ts=open_time,close=c` (names or 1-based positions).
    #[arg(long, value_name = "KEY=COLUMN,...")]
    columns: Option<String>,
    /// Make every problem fatal, even those normally stored and flagged.
    #[arg(long, conflicts_with = "repair")]
    strict: bool,
    /// Resolve what a stated rule can: drop unreadable rows; with --on-conflict, resolve duplicates.
    #[arg(long)]
    repair: bool,
    /// How --repair resolves duplicate timestamps with different values.
    #[arg(long, requires = "repair", value_parser = ["keep-first", "keep-last", "drop"])]
    on_conflict: Option<String>,
    /// Robust z-score above which a log return is flagged as extreme.
    #[arg(long, default_value_t = 30.0)]
    extreme_z: f64,
    /// Consecutive flat bars (O=H=L=C=previous close) that make a stale run.
    #[arg(long, default_value_t = 10)]
    stale_min: usize,
    /// Order-book levels kept per side for book files (snapshots and replayed diffs).
    #[arg(long, default_value_t = 10)]
    depth: usize,
    /// Validate and report without storing anything.
    #[arg(long)]
    dry_run: bool,
    /// Print the reports as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Stored series: symbol, timeframe, range, rows, quality score.
    List {
        #[arg(long)]
        json: bool,
    },
    /// The first and last bars of a stored series.
    Show {
        symbol: String,
        #[arg(long)]
        timeframe: Option<String>,
        /// Bars to show from each end.
        #[arg(long, default_value_t = 5)]
        rows: usize,
        #[arg(long)]
        json: bool,
    },
    /// The full quality report of a stored series and the history of its ingests.
    Quality {
        symbol: String,
        #[arg(long)]
        timeframe: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Aggregate a stored series into a longer timeframe (aligned to UTC) and store it.
    #[command(
        after_help = "Example:\n  quantpipe data resample FILUSDT --from 1m --to 1h\n  quantpipe data resample FILUSDT --from 1m --to 1d -o fil_1d.csv"
    )]
    Resample {
        symbol: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Also write the result to a file (.csv or .parquet).
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Aggregate stored trades into time, volume or dollar bars.
    #[command(
        after_help = "Examples:\n  quantpipe data bars-from-trades BTCUSDT --every 1s        # stored as BTCUSDT 1s bars\n  quantpipe data bars-from-trades BTCUSDT --volume 0.5 -o vbars.csv\n  quantpipe data bars-from-trades BTCUSDT --dollar 100000 -o dbars.parquet"
    )]
    BarsFromTrades {
        symbol: String,
        /// Time bars of this length (UTC-aligned), stored in the bar store.
        #[arg(long, group = "rule")]
        every: Option<String>,
        /// A bar per this much traded quantity.
        #[arg(long, group = "rule")]
        volume: Option<f64>,
        /// A bar per this much traded notional (price × quantity).
        #[arg(long, group = "rule")]
        dollar: Option<f64>,
        /// Write the bars to a file (.csv or .parquet).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Delete a stored series.
    Remove {
        symbol: String,
        #[arg(long)]
        timeframe: String,
    },
}

fn parse_symbol(s: &str) -> Result<Symbol> {
    Symbol::new(s).context("--symbol")
}

pub fn ingest(home: &Path, args: IngestArgs) -> Result<ExitCode> {
    let store = BarStore::open(home)?;
    let opts = IngestOptions {
        symbol: args.symbol.as_deref().map(parse_symbol).transpose()?,
        columns: match &args.columns {
            Some(spec) => ColumnOverrides::parse(spec).map_err(anyhow::Error::msg)?,
            None => ColumnOverrides::default(),
        },
        timeframe: args.timeframe.as_deref().map(Timeframe::parse).transpose()?,
        calendar: args.calendar.as_deref().map(MarketCalendar::parse).transpose()?,
        policy: Policy {
            strict: args.strict,
            repair: args.repair,
            on_conflict: args.on_conflict.as_deref().and_then(ConflictRule::parse),
            extreme_return_z: args.extreme_z,
            stale_run_min: args.stale_min.max(2),
            ..Policy::default()
        },
        dry_run: args.dry_run,
    };
    let mut reports = Vec::new();
    let mut failed = 0;
    let mut tick_reports = Vec::new();
    for file in &args.files {
        if let Some(format) = ticks::sniff(file) {
            match ticks::ingest_ticks(home, file, format, opts.symbol.as_ref(), args.depth.max(1), args.dry_run) {
                Ok(report) => {
                    if !args.json {
                        print_tick_report(&report, args.dry_run);
                    }
                    tick_reports.push(report);
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("error: {e}");
                }
            }
            continue;
        }
        let progress = BarProgress::new();
        let started = std::time::Instant::now();
        match ingest_file(&store, file, &opts, &progress) {
            Ok(report) => {
                if !args.json {
                    print_ingest(&report, started.elapsed(), args.dry_run);
                }
                reports.push(report);
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if args.json {
        if tick_reports.is_empty() {
            println!("{}", serde_json::to_string_pretty(&reports)?);
        } else {
            println!("{}", serde_json::to_string_pretty(&serde_json::json!({"bars": reports, "ticks": tick_reports}))?);
        }
    }
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn print_tick_report(r: &ticks::TickReport, dry_run: bool) {
    println!("{}: {} {} rows of {} ({})", r.file, r.rows, r.kind, r.symbol, r.format);
    println!("  {} → {}", r.first.as_deref().unwrap_or("-"), r.last.as_deref().unwrap_or("-"));
    if r.unsorted > 0 {
        println!("  repaired: {} rows out of time order, sorted", r.unsorted);
    }
    if r.kind == "book" {
        println!("  crossed books (best bid > best ask): {}", r.crossed);
    }
    if let Some(share) = r.buy_share {
        println!("  aggressive-buy share of quantity: {:.3}", share);
    }
    for n in &r.notes {
        println!("  note: {n}");
    }
    println!(
        "{}",
        if dry_run {
            "dry run: nothing stored".to_string()
        } else {
            format!("stored as ticks/{}/{}", r.symbol, r.kind)
        }
    );
}

fn print_ingest(r: &IngestReport, elapsed: std::time::Duration, dry_run: bool) {
    println!("{}: {} rows, {}", r.file, r.rows, r.format);
    println!("  layout {}", r.layout);
    for note in &r.notes {
        println!("  note: {note}");
    }
    if r.rows_of_other_symbols > 0 {
        println!("  skipped {} rows of other symbols", r.rows_of_other_symbols);
    }
    if r.series.len() == 1 {
        let s = &r.series[0];
        println!();
        print!("{}", render::quality_report(&s.report));
    } else {
        print_multi_series(r);
    }
    let added: u64 = r.series.iter().filter_map(|s| s.stored.as_ref()).map(|o| o.rows_added).sum();
    let unchanged = r.series.iter().filter(|s| s.stored.as_ref().is_some_and(|o| o.unchanged)).count();
    if dry_run {
        println!("dry run: nothing stored ({:.2} s)", elapsed.as_secs_f64());
    } else {
        println!(
            "stored {} series, {} new rows{} ({:.2} s)",
            r.series.len(),
            added,
            if unchanged > 0 { format!(", {unchanged} already stored unchanged") } else { String::new() },
            elapsed.as_secs_f64()
        );
    }
}

fn print_multi_series(r: &IngestReport) {
    use quantpipe_data::quality::CheckKind;
    // Totals per check over all series, then the series with the lowest scores.
    let mut totals: Vec<(CheckKind, u64, String)> = Vec::new();
    for s in &r.series {
        for c in &s.report.checks {
            match totals.iter_mut().find(|t| t.0 == c.kind) {
                Some(t) => t.1 += c.count,
                None => totals.push((c.kind, c.count, String::new())),
            }
            if c.count > 0 {
                let t = totals.iter_mut().find(|t| t.0 == c.kind).expect("inserted above");
                if t.2.matches(',').count() < 4 {
                    let sep = if t.2.is_empty() { "" } else { ", " };
                    let actioned = match &c.action {
                        Action::Repaired { .. } => " (repaired)",
                        _ => "",
                    };
                    t.2.push_str(&format!("{sep}{} {}{actioned}", s.report.symbol, c.count));
                }
            }
        }
    }
    println!("\n{} series", r.series.len());
    let mut t = table(&["check", "total", "series (first)"]);
    for (kind, total, where_) in totals {
        t.add_row(vec![kind.label().to_string(), total.to_string(), where_]);
    }
    right(&mut t, &[1]);
    println!("{t}");
    let mut worst: Vec<_> = r.series.iter().collect();
    worst.sort_by(|a, b| a.report.score.total_cmp(&b.report.score));
    let mut t = table(&["symbol", "tf", "rows", "first", "last", "score"]);
    for s in worst.iter().take(10) {
        t.add_row(vec![
            s.report.symbol.to_string(),
            s.report.timeframe.clone(),
            s.report.rows_kept.to_string(),
            s.report.first.clone().unwrap_or_default(),
            s.report.last.clone().unwrap_or_default(),
            format!("{:.1}", s.report.score),
        ]);
    }
    right(&mut t, &[2, 5]);
    println!("lowest quality scores (`quantpipe data quality SYMBOL` for a full report):\n{t}");
}

/// The timeframe given, or the only one stored for the symbol.
fn pick_timeframe(store: &BarStore, symbol: &Symbol, given: Option<&str>) -> Result<Timeframe> {
    if let Some(tf) = given {
        return Ok(Timeframe::parse(tf)?);
    }
    let stored: Vec<String> = store.list()?.into_iter().filter(|m| &m.symbol == symbol).map(|m| m.timeframe).collect();
    match stored.as_slice() {
        [one] => Ok(Timeframe::parse(one)?),
        [] => bail!("no stored series for {symbol}; `quantpipe data list` shows what is stored"),
        many => bail!("{symbol} is stored in several timeframes ({}): pass --timeframe", many.join(", ")),
    }
}

pub fn data(home: &Path, cmd: DataCommand) -> Result<ExitCode> {
    let store = BarStore::open(home)?;
    match cmd {
        DataCommand::List { json } => {
            let list = store.list()?;
            let tick_list = ticks::list_ticks(home);
            if json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({"bars": list, "ticks": tick_list}))?);
            } else if list.is_empty() && tick_list.is_empty() {
                println!("nothing stored under {} yet; try `quantpipe ingest FILE`", home.display());
            } else {
                let mut t = table(&["symbol", "tf", "calendar", "first", "last", "rows", "quality", "source"]);
                for m in &list {
                    let source = match &m.derived_from {
                        Some(d) => format!("resampled from {}", d.from_timeframe),
                        None => m.sources.iter().map(|s| file_name(&s.file)).collect::<Vec<_>>().join(", "),
                    };
                    t.add_row(vec![
                        m.symbol.to_string(),
                        m.timeframe.clone(),
                        m.calendar.name().to_string(),
                        m.first.clone().unwrap_or_default(),
                        m.last.clone().unwrap_or_default(),
                        m.rows.to_string(),
                        format!("{:.1}", m.quality_score),
                        source,
                    ]);
                }
                right(&mut t, &[5, 6]);
                if !list.is_empty() {
                    println!("{t}");
                }
                if !tick_list.is_empty() {
                    let mut t = table(&["symbol", "ticks", "first", "last", "rows", "depth", "source"]);
                    for m in &tick_list {
                        t.add_row(vec![
                            m.symbol.to_string(),
                            m.kind.clone(),
                            m.report.first.clone().unwrap_or_default(),
                            m.report.last.clone().unwrap_or_default(),
                            m.rows.to_string(),
                            if m.depth > 0 { m.depth.to_string() } else { String::new() },
                            file_name(&m.report.file),
                        ]);
                    }
                    right(&mut t, &[4, 5]);
                    println!("{t}");
                }
            }
        }
        DataCommand::Show { symbol, timeframe, rows, json } => {
            let symbol = parse_symbol(&symbol)?;
            let tf = pick_timeframe(&store, &symbol, timeframe.as_deref())?;
            let (meta, bars) = store.load(&symbol, tf)?;
            let n = bars.len();
            let idx: Vec<usize> = if n <= 2 * rows { (0..n).collect() } else { (0..rows).chain(n - rows..n).collect() };
            if json {
                let out: Vec<serde_json::Value> = idx
                    .iter()
                    .map(|&i| {
                        let mut row = serde_json::json!({
                            "ts": format_iso(bars.ts[i]), "open": bars.open[i], "high": bars.high[i],
                            "low": bars.low[i], "close": bars.close[i], "volume": bars.volume[i],
                        });
                        for c in &bars.extras {
                            row[&c.name] = serde_json::json!(c.values[i]);
                        }
                        row
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({"meta": meta, "bars": out}))?);
            } else {
                println!(
                    "{symbol} {tf}: {} rows, {} → {}, content hash {}",
                    meta.rows,
                    meta.first.as_deref().unwrap_or("-"),
                    meta.last.as_deref().unwrap_or("-"),
                    &meta.content_hash[..16]
                );
                let mut header = vec!["ts", "open", "high", "low", "close", "volume"];
                header.extend(bars.extras.iter().map(|c| c.name.as_str()));
                let mut t = table(&header);
                for (k, &i) in idx.iter().enumerate() {
                    if k == rows && n > 2 * rows {
                        t.add_row(vec!["…".to_string()]);
                    }
                    let mut row = vec![format_iso(bars.ts[i])];
                    for col in [&bars.open, &bars.high, &bars.low, &bars.close, &bars.volume] {
                        row.push(col[i].to_string());
                    }
                    row.extend(bars.extras.iter().map(|c| c.values[i].to_string()));
                    t.add_row(row);
                }
                println!("{t}");
            }
        }
        DataCommand::Quality { symbol, timeframe, json } => {
            let symbol = parse_symbol(&symbol)?;
            let tf = pick_timeframe(&store, &symbol, timeframe.as_deref())?;
            let q = store.quality(&symbol, tf)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&q)?);
            } else {
                print!("{}", render::quality_report(&q.series));
                if !q.ingests.is_empty() {
                    println!("\ningests:");
                    for i in &q.ingests {
                        let changes: Vec<String> = i
                            .report
                            .checks
                            .iter()
                            .filter_map(|c| match &c.action {
                                Action::Repaired { rule } => Some(format!("{} {}: {rule}", c.count, c.kind.label())),
                                _ => None,
                            })
                            .collect();
                        println!(
                            "  {}  {}  {} rows read, {} kept{}",
                            i.ingested_at,
                            i.file,
                            i.report.rows_read,
                            i.report.rows_kept,
                            if changes.is_empty() { String::new() } else { format!("; {}", changes.join("; ")) }
                        );
                    }
                }
            }
        }
        DataCommand::Resample { symbol, from, to, output, json } => {
            let symbol = parse_symbol(&symbol)?;
            let (from, to) = (Timeframe::parse(&from)?, Timeframe::parse(&to)?);
            let (meta, bars) = store.load(&symbol, from)?;
            let r = resample(&bars, from, to)?;
            let report = quantpipe_data::quality::assess(&symbol, &r.bars, to, meta.calendar, &Policy::default())
                .map_err(anyhow::Error::msg)?;
            let derivation = Derivation {
                from_timeframe: from.to_string(),
                from_content_hash: meta.content_hash.clone(),
                method: "ohlcv: first/max/min/last/sum, UTC-aligned".into(),
            };
            let outcome =
                store.store_derived(&symbol, to, r.bars.clone(), report, derivation, r.last_bar_incomplete)?;
            if let Some(path) = &output {
                write_output(path, &r.bars)?;
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "symbol": symbol, "from": from.to_string(), "to": to.to_string(),
                        "rows_in": bars.len(), "rows_out": r.bars.len(), "partial_bars": r.partial,
                        "last_bar_incomplete": r.last_bar_incomplete, "content_hash": outcome.content_hash,
                        "output": output.as_ref().map(|p| p.display().to_string()),
                    }))?
                );
            } else {
                println!(
                    "{symbol}: {} {from} bars → {} {to} bars ({} built from fewer {from} bars than a full {to}){}",
                    bars.len(),
                    r.bars.len(),
                    r.partial,
                    if r.last_bar_incomplete {
                        format!("; the last bar ({}) is incomplete", format_iso(*r.bars.ts.last().unwrap_or(&0)))
                    } else {
                        String::new()
                    }
                );
                println!(
                    "stored as {symbol} {to}{}",
                    output.map(|p| format!(" and written to {}", p.display())).unwrap_or_default()
                );
            }
        }
        DataCommand::BarsFromTrades { symbol, every, volume, dollar, output } => {
            let symbol = parse_symbol(&symbol)?;
            let rule = match (every, volume, dollar) {
                (Some(tf), None, None) => ticks::TradeBarRule::Time(Timeframe::parse(&tf)?),
                (None, Some(v), None) if v > 0.0 => ticks::TradeBarRule::Volume(v),
                (None, None, Some(d)) if d > 0.0 => ticks::TradeBarRule::Dollar(d),
                _ => bail!("give one positive rule: --every TF, --volume QTY or --dollar NOTIONAL"),
            };
            if !matches!(rule, ticks::TradeBarRule::Time(_)) && output.is_none() {
                bail!("volume and dollar bars are not on a time grid, so they are not stored: pass -o FILE");
            }
            let trades = ticks::load_trades(home, &symbol)?;
            let bars = ticks::bars_from_trades(&trades, rule);
            let described = match rule {
                ticks::TradeBarRule::Time(tf) => format!("{tf} time bars"),
                ticks::TradeBarRule::Volume(v) => format!("volume bars of {v}"),
                ticks::TradeBarRule::Dollar(d) => format!("dollar bars of {d}"),
            };
            println!("{symbol}: {} trades → {} {described}", trades.ts.len(), bars.len());
            if let Some(path) = &output {
                write_output(path, &bars)?;
                println!("written to {}", path.display());
            }
            if let ticks::TradeBarRule::Time(tf) = rule {
                let report =
                    quantpipe_data::quality::assess(&symbol, &bars, tf, MarketCalendar::Crypto, &Policy::default())
                        .map_err(anyhow::Error::msg)?;
                let derivation = Derivation {
                    from_timeframe: "trades".into(),
                    from_content_hash: ticks::tick_meta(home, &symbol, "trades")?.content_hash,
                    method: "trades → time bars: first/max/min/last price, summed quantity".into(),
                };
                store.store_derived(&symbol, tf, bars, report, derivation, false)?;
                println!("stored as {symbol} {tf}");
            }
        }
        DataCommand::Remove { symbol, timeframe } => {
            let symbol = parse_symbol(&symbol)?;
            let meta = store.remove(&symbol, Timeframe::parse(&timeframe)?)?;
            println!("removed {} {} ({} rows)", meta.symbol, meta.timeframe, meta.rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_output(path: &Path, bars: &quantpipe_core::Bars) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => quantpipe_data::parquet_io::write_bars(path, bars.clone())?,
        Some("csv") => quantpipe_data::parquet_io::write_bars_csv(path, bars)?,
        _ => bail!("{}: the output must end in .csv or .parquet", path.display()),
    }
    Ok(())
}

fn file_name(path: &str) -> String {
    Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.to_string())
}
