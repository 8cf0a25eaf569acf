//! `quantpipe features list|compute`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use quantpipe_core::{Symbol, Timeframe};
use quantpipe_data::quality::{validate, Policy};
use quantpipe_data::read::{read_bars, ReadOptions};
use quantpipe_data::BarStore;
use quantpipe_features::{compute, FeatureSet, CATALOGUE};

use crate::render::table;

#[derive(Subcommand)]
pub enum FeaturesCommand {
    /// The indicator catalogue: name, family, parameters, outputs and TA-Lib equivalent.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Compute a feature set over stored bars (SYMBOL) or a bar file (--input) and write it out.
    #[command(
        after_help = "Examples:\n  quantpipe features compute FILUSDT --timeframe 1m --set standard -o fil_features.parquet\n  quantpipe features compute --input bars.csv --set my_features.toml -o out.csv\n\nA feature-set file:\n  name = \"my_features\"\n  [[feature]]\n  indicator = \"rsi\"\n  period = 14\n  [[feature]]\n  indicator = \"macd\"\n  fast = 12\n  slow = 26\n  signal = 9\n\nWarm-up rows are empty (NaN in Parquet, empty in CSV); nothing is filled from later bars."
    )]
    Compute {
        /// A stored symbol (see `quantpipe data list`).
        symbol: Option<String>,
        #[arg(long)]
        timeframe: Option<String>,
        /// Read bars from this file instead of the store (any format `quantpipe ingest` reads).
        #[arg(long, conflicts_with = "symbol")]
        input: Option<PathBuf>,
        /// `standard` or a feature-set TOML file.
        #[arg(long, default_value = "standard")]
        set: String,
        /// Output file: .parquet or .csv.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Per-date rank (0–1) and z-score of one feature across all stored symbols of a timeframe
    /// (e.g. the S&P 500 after `quantpipe ingest sp500_daily_5yr.csv.gz --repair --on-conflict keep-first`).
    /// Writes a long file: ts, symbol, value, rank, zscore.
    #[command(
        after_help = "Example:\n  quantpipe features cross-section --timeframe 1d --feature roc_20 -o sp500_roc20_ranks.parquet\n  quantpipe features cross-section --timeframe 1d --feature rsi_14 --set my.toml --symbols AAPL,MSFT,GOOGL -o ranks.csv"
    )]
    CrossSection {
        #[arg(long)]
        timeframe: String,
        /// An output column of the feature set, e.g. roc_20 or rsi_14.
        #[arg(long)]
        feature: String,
        /// `standard` or a feature-set TOML file.
        #[arg(long, default_value = "standard")]
        set: String,
        /// Comma-separated symbols (default: every symbol stored at this timeframe).
        #[arg(long, value_delimiter = ',')]
        symbols: Vec<String>,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Tick features per trade of a stored trade series: tick ratio, distance from VWAP and from
    /// the order-book mid (when a book or quotes are stored for the symbol) in σ, buy share; and,
    /// with --book-output, the depth ratio per book snapshot.
    #[command(
        after_help = "Example:\n  quantpipe ingest ../shared/data/orderbook_ticks/binance_btcusdt_trades.parquet --symbol BTCUSDT\n  quantpipe ingest ../shared/data/orderbook_ticks/binance_btcusdt_quotes.parquet\n  quantpipe features ticks BTCUSDT --window 100 -o btc_ticks.csv --book-output btc_depth.csv"
    )]
    Ticks {
        symbol: String,
        /// Trades (and quotes, for the mid's σ) in each rolling window.
        #[arg(long, default_value_t = 100)]
        window: usize,
        /// Book levels in the depth ratio.
        #[arg(long, default_value_t = 5)]
        levels: usize,
        #[arg(short, long)]
        output: PathBuf,
        /// Also write the depth ratio per book snapshot here.
        #[arg(long)]
        book_output: Option<PathBuf>,
    },
}

pub fn run(home: &Path, cmd: FeaturesCommand) -> Result<ExitCode> {
    match cmd {
        FeaturesCommand::List { json } => {
            if json {
                println!("{}", serde_json::to_string_pretty(CATALOGUE)?);
            } else {
                let mut t = table(&["indicator", "family", "params", "outputs", "TA-Lib"]);
                for e in CATALOGUE {
                    t.add_row(vec![e.indicator, e.family, e.params, e.outputs, e.talib]);
                }
                println!("{t}");
                let standard = FeatureSet::standard();
                println!(
                    "{} indicators; the standard set has {} columns (hash {})",
                    CATALOGUE.len(),
                    standard.columns().len(),
                    standard.hash()
                );
            }
        }
        FeaturesCommand::CrossSection { timeframe, feature, set, symbols, output } => {
            cross_section(home, &timeframe, &feature, &set, &symbols, &output)?;
        }
        FeaturesCommand::Ticks { symbol, window, levels, output, book_output } => {
            ticks(home, &symbol, window, levels, &output, book_output.as_deref())?;
        }
        FeaturesCommand::Compute { symbol, timeframe, input, set, output } => {
            let set = load_set(&set)?;
            let Loaded { name: label, bars, .. } = load_bars(home, symbol, timeframe, input)?;
            let started = std::time::Instant::now();
            let frame = compute(&set, &bars);
            let elapsed = started.elapsed();
            let columns: Vec<(String, Vec<f64>)> = frame.names.iter().cloned().zip(frame.columns).collect();
            match output.extension().and_then(|e| e.to_str()) {
                Some("parquet") => quantpipe_data::parquet_io::write_columns(&output, frame.ts, columns)?,
                Some("csv") => write_csv(&output, &frame.ts, &columns)?,
                _ => bail!("{}: the output must end in .csv or .parquet", output.display()),
            }
            println!(
                "{label}: {} bars × {} features (set {} {}) computed in {:.3} s → {}",
                bars.len(),
                set.columns().len(),
                set.name,
                set.hash(),
                elapsed.as_secs_f64(),
                output.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Bars loaded for a command, with what annualising and messages need.
pub struct Loaded {
    /// "FILUSDT 1m" or the file's path.
    pub name: String,
    pub bars: quantpipe_core::Bars,
    pub timeframe: Timeframe,
}

/// Bars from the store (SYMBOL and --timeframe) or straight from a file (--input), validated.
pub fn load_bars(
    home: &Path,
    symbol: Option<String>,
    timeframe: Option<String>,
    input: Option<PathBuf>,
) -> Result<Loaded> {
    match (symbol, input) {
        (Some(symbol), None) => {
            let symbol = Symbol::new(&symbol)?;
            let store = BarStore::open(home)?;
            let tf = match timeframe {
                Some(tf) => Timeframe::parse(&tf)?,
                None => bail!("pass --timeframe (e.g. 1m); `quantpipe data list` shows what is stored"),
            };
            let (_, bars) = store.load(&symbol, tf)?;
            Ok(Loaded { name: format!("{symbol} {tf}"), bars, timeframe: tf })
        }
        (None, Some(path)) => {
            let mut read = read_bars(&path, &ReadOptions::default()).or_else(|_| {
                read_bars(&path, &ReadOptions { symbol: Some(Symbol::new("INPUT")?), ..Default::default() })
            })?;
            if read.series.len() != 1 {
                bail!("{}: holds {} symbols; ingest it and compute per symbol", path.display(), read.series.len());
            }
            let raw = read.series.remove(0);
            let v = validate(raw, &Policy::default()).map_err(anyhow::Error::msg)?;
            if let Some(check) = v.report.fatal().next() {
                bail!("{}: {} {} (ingest it to see the full report)", path.display(), check.count, check.kind.label());
            }
            let timeframe = Timeframe::parse(&v.report.timeframe)?;
            Ok(Loaded { name: path.display().to_string(), bars: v.bars, timeframe })
        }
        _ => bail!("give a stored SYMBOL or --input FILE"),
    }
}

pub fn load_set(set: &str) -> Result<FeatureSet> {
    if set == "standard" {
        return Ok(FeatureSet::standard());
    }
    let text = match std::fs::read_to_string(set) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("--set {set}: no such file, and not a built-in set (the built-in one is `standard`; a set file is TOML, see `quantpipe features list`)")
        }
        Err(e) => return Err(e).with_context(|| format!("reading feature set {set}")),
    };
    Ok(FeatureSet::from_toml(set, &text)?)
}

fn cross_section(
    home: &Path,
    timeframe: &str,
    feature: &str,
    set: &str,
    symbols: &[String],
    output: &Path,
) -> Result<()> {
    let tf = Timeframe::parse(timeframe)?;
    let full = load_set(set)?;
    // Compute only the indicator that produces the requested column.
    let indicator = full.features.iter().find(|f| f.outputs().iter().any(|o| o == feature)).ok_or_else(|| {
        anyhow::anyhow!("feature {feature:?} is not an output of set {set}; `quantpipe features list` shows the names")
    })?;
    let one = FeatureSet { name: format!("{}:{feature}", full.name), features: vec![indicator.clone()] };
    let store = BarStore::open(home)?;
    let wanted: Vec<Symbol> = if symbols.is_empty() {
        store.list()?.into_iter().filter(|m| m.timeframe == tf.to_string()).map(|m| m.symbol).collect()
    } else {
        symbols.iter().map(|s| Symbol::new(s)).collect::<Result<_, _>>()?
    };
    if wanted.len() < 2 {
        bail!("a cross-section needs at least two symbols stored at {tf}; found {}", wanted.len());
    }
    let bars: Vec<quantpipe_core::Bars> =
        wanted.iter().map(|s| store.load(s, tf).map(|(_, b)| b)).collect::<Result<_, _>>()?;
    let refs: Vec<&quantpipe_core::Bars> = bars.iter().collect();
    let started = std::time::Instant::now();
    let frames = quantpipe_features::compute_many(&one, &refs, 0);
    let cs = quantpipe_features::cross::cross_section(&frames, feature).map_err(anyhow::Error::msg)?;
    let elapsed = started.elapsed();
    // Long format, sorted by time then symbol.
    let mut rows: Vec<(i64, usize, usize)> = Vec::new();
    for (f, frame) in frames.iter().enumerate() {
        rows.extend((0..frame.ts.len()).map(|r| (frame.ts[r], f, r)));
    }
    rows.sort_unstable();
    let k = frames[0].names.iter().position(|n| n == feature).unwrap_or(0);
    let ts: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let columns: Vec<(String, Vec<f64>)> = vec![
        ("symbol_index".to_string(), rows.iter().map(|r| r.1 as f64).collect()),
        ("value".to_string(), rows.iter().map(|r| frames[r.1].columns[k][r.2]).collect()),
        ("rank".to_string(), rows.iter().map(|r| cs[r.1].rank[r.2]).collect()),
        ("zscore".to_string(), rows.iter().map(|r| cs[r.1].zscore[r.2]).collect()),
    ];
    match output.extension().and_then(|e| e.to_str()) {
        Some("csv") => {
            let mut w = csv::Writer::from_path(output).with_context(|| format!("creating {}", output.display()))?;
            w.write_record(["ts", "symbol", "value", "rank", "zscore"])?;
            let cell = |v: f64| if v.is_nan() { String::new() } else { v.to_string() };
            for (i, r) in rows.iter().enumerate() {
                w.write_record([
                    quantpipe_core::time::format_iso(ts[i]),
                    wanted[r.1].to_string(),
                    cell(columns[1].1[i]),
                    cell(columns[2].1[i]),
                    cell(columns[3].1[i]),
                ])?;
            }
            w.flush()?;
        }
        Some("parquet") => {
            // Parquet keeps numeric columns; the symbol of `symbol_index` i is listed in the sidecar JSON.
            quantpipe_data::parquet_io::write_columns(output, ts, columns)?;
            let names: Vec<String> = wanted.iter().map(|s| s.to_string()).collect();
            std::fs::write(output.with_extension("symbols.json"), serde_json::to_vec_pretty(&names)?)?;
        }
        _ => bail!("{}: the output must end in .csv or .parquet", output.display()),
    }
    println!(
        "{} symbols × {tf}: {feature} ranked per date in {:.2} s → {}",
        wanted.len(),
        elapsed.as_secs_f64(),
        output.display()
    );
    Ok(())
}

pub fn write_frame(path: &Path, ts: Vec<i64>, columns: Vec<(String, Vec<f64>)>) -> Result<()> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => quantpipe_data::parquet_io::write_columns(path, ts, columns)?,
        Some("csv") => write_csv(path, &ts, &columns)?,
        _ => bail!("{}: the output must end in .csv or .parquet", path.display()),
    }
    Ok(())
}

pub fn ticks(
    home: &Path,
    symbol: &str,
    window: usize,
    levels: usize,
    output: &Path,
    book_output: Option<&Path>,
) -> Result<()> {
    if window < 2 {
        bail!("--window must be at least 2");
    }
    let symbol = Symbol::new(symbol)?;
    let trades = quantpipe_data::ticks::load_trades(home, &symbol)?;
    let frame = quantpipe_features::ticks::trade_features(&trades.ts, &trades.price, &trades.qty, &trades.side, window);
    let mut columns: Vec<(String, Vec<f64>)> = frame.names.iter().cloned().zip(frame.columns).collect();
    let book = quantpipe_data::ticks::load_book(home, &symbol).ok();
    if let Some(b) = &book {
        let d = b.depth;
        let best = |v: &[f64]| (0..b.ts.len()).map(|i| v[i * d]).collect::<Vec<f64>>();
        let mid = quantpipe_features::ticks::mid_distance(
            &trades.ts,
            &trades.price,
            &b.ts,
            &best(&b.bid_px),
            &best(&b.ask_px),
            window,
        );
        columns.push((format!("mid_dist_{window}"), mid));
    }
    let n = trades.ts.len();
    write_frame(output, trades.ts, columns)?;
    println!(
        "{symbol}: {n} trades → tick features (window {window}){} → {}",
        if book.is_some() { " incl. distance from the book's mid" } else { "" },
        output.display()
    );
    if let Some(path) = book_output {
        let b = book.ok_or_else(|| anyhow::anyhow!("no stored order book for {symbol}: --book-output needs one"))?;
        let ratio = quantpipe_features::ticks::depth_ratio(&b.bid_sz, &b.ask_sz, b.depth, levels);
        let rows = b.ts.len();
        write_frame(path, b.ts, vec![(format!("depth_ratio_{}", levels.min(b.depth)), ratio)])?;
        println!(
            "{symbol}: {rows} book snapshots → depth ratio over {} levels → {}",
            levels.min(b.depth),
            path.display()
        );
    }
    Ok(())
}

fn write_csv(path: &Path, ts: &[i64], columns: &[(String, Vec<f64>)]) -> Result<()> {
    let mut w = csv::Writer::from_path(path).with_context(|| format!("creating {}", path.display()))?;
    let mut header = vec!["ts".to_string()];
    header.extend(columns.iter().map(|(n, _)| n.clone()));
    w.write_record(&header)?;
    let mut row = Vec::with_capacity(header.len());
    for (i, &t) in ts.iter().enumerate() {
        row.clear();
        row.push(quantpipe_core::time::format_iso(t));
        row.extend(columns.iter().map(|(name, c)| {
            if c[i].is_nan() {
                String::new()
            } else if name.ends_with("_ts") {
                // Timestamps carried as columns (a label's end, a barrier's touch) read as times in CSV.
                quantpipe_core::time::format_iso(c[i] as i64)
            } else {
                c[i].to_string()
            }
        }));
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}
