//! `quantpipe labels list|compute`, `quantpipe validate splits` and `quantpipe backtest`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use quantpipe_core::{MarketCalendar, Timeframe};
use quantpipe_eval::backtest::{simulate, Costs, Performance, PositionRule};
use quantpipe_eval::overfit::{probability_of_backtest_overfitting, sharpe_statistics, Pbo, SharpeStatistics};
use quantpipe_eval::periods_per_year;
use quantpipe_eval::split::{cpcv, LabelTimes, Scheme, Split};
use quantpipe_labels::{uniqueness_weights, Horizon, LabelSpec, Labels, CATALOGUE};
use serde::Serialize;

use crate::features_cmd::{load_bars, write_frame, Loaded};
use crate::render::{right, table};

/// Where the bars come from: a stored series or a file.
#[derive(Args)]
pub struct BarsArgs {
    /// A stored symbol (see `quantpipe data list`).
    pub symbol: Option<String>,
    #[arg(long)]
    pub timeframe: Option<String>,
    /// Read bars from this file instead of the store (any format `quantpipe ingest` reads).
    #[arg(long, conflicts_with = "symbol")]
    pub input: Option<PathBuf>,
}

/// Which label: a TOML file, or a kind with its defaults and overrides.
#[derive(Args)]
pub struct LabelArgs {
    /// A label file: `kind = "horizon"` and its parameters (see docs/labels.md).
    #[arg(long, conflicts_with = "kind", value_name = "FILE")]
    label: Option<PathBuf>,
    /// A label kind (see `quantpipe labels list`), with its default parameters.
    #[arg(long)]
    kind: Option<String>,
    /// A parameter as a TOML value, repeatable: --param 'horizons=["1h","4h","1d"]' --param dead_zone=0.5
    #[arg(long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
}

impl LabelArgs {
    /// Whether any label option was given.
    pub fn is_given(&self) -> bool {
        self.label.is_some() || self.kind.is_some() || !self.params.is_empty()
    }

    pub fn spec(&self) -> Result<LabelSpec> {
        let (mut text, source) = match (&self.label, &self.kind) {
            (Some(path), None) => (
                std::fs::read_to_string(path).with_context(|| format!("reading label file {}", path.display()))?,
                path.display().to_string(),
            ),
            (None, Some(kind)) => (format!("kind = {kind:?}\n"), "--kind/--param".to_string()),
            _ => bail!("choose a label: --label FILE.toml or --kind KIND (`quantpipe labels list` shows the kinds)"),
        };
        for p in &self.params {
            if !p.contains('=') {
                bail!("--param {p:?}: expected KEY=VALUE with a TOML value, e.g. --param k=2.0");
            }
            text.push_str(p);
            text.push('\n');
        }
        Ok(LabelSpec::from_toml(&text, &source)?)
    }
}

#[derive(Subcommand)]
pub enum LabelsCommand {
    /// The label kinds: what each predicts, its target column and its parameters' defaults.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Label stored bars (SYMBOL) or a bar file (--input) and write the labels with their windows.
    #[command(after_help = "Examples:\n  \
quantpipe labels compute FILUSDT --timeframe 1m --kind horizon --param 'horizons=[\"1h\",\"4h\",\"1d\"]' -o fil_labels.parquet\n  \
quantpipe labels compute FILUSDT --timeframe 1m --kind sigma_reversion --param k=2.0 -o reversion.csv\n  \
quantpipe labels compute FILUSDT --timeframe 1m --label triple_barrier.toml --weights -o tb.parquet\n\n\
Every label declares its look-ahead; rows whose future window is incomplete (end of data, or a gap\n\
where the bar exactly one duration later is missing) are dropped, never filled. The output has one\n\
row per labelled bar: ts, end_ts (the bar the label was settled on) and the label's columns.")]
    Compute {
        #[command(flatten)]
        bars: BarsArgs,
        #[command(flatten)]
        label: LabelArgs,
        /// Also write sample weights from label uniqueness (overlapping windows count less).
        #[arg(long)]
        weights: bool,
        /// Output file: .parquet or .csv.
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum ValidateCommand {
    /// Show the train/test splits a scheme makes over labelled bars, with the rows purged because
    /// their label windows reach into a test window and the rows embargoed after it.
    #[command(after_help = "Examples:\n  \
quantpipe validate splits FILUSDT --timeframe 1m --kind horizon --param 'horizons=[\"1h\"]' --scheme purged-kfold --folds 5\n  \
quantpipe validate splits FILUSDT --timeframe 1m --kind horizon --param 'horizons=[\"1h\"]' --scheme walk-forward --train-window 7d --test-window 12h\n  \
quantpipe validate splits FILUSDT --timeframe 1m --kind triple_barrier --param 'horizon=\"2h\"' --scheme cpcv --groups 6 --test-groups 2\n\n\
Purging is automatic: it uses each row's own label window (start bar to the bar it settled on).\n\
The embargo and the holdout gap default to the label's declared look-ahead.")]
    Splits {
        #[command(flatten)]
        bars: BarsArgs,
        #[command(flatten)]
        label: LabelArgs,
        #[command(flatten)]
        scheme: SchemeArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SchemeKind {
    PurgedKfold,
    Cpcv,
    WalkForward,
    Holdout,
}

#[derive(Args)]
pub struct SchemeArgs {
    #[arg(long, value_enum, default_value = "purged-kfold")]
    scheme: SchemeKind,
    /// purged-kfold: number of folds.
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// cpcv: number of groups and of test groups per split.
    #[arg(long, default_value_t = 6)]
    groups: usize,
    #[arg(long, default_value_t = 2)]
    test_groups: usize,
    /// Time left out after each test window (purged-kfold, cpcv), as a duration ("1h") or bars ("60").
    /// Default: the label's look-ahead.
    #[arg(long)]
    embargo: Option<String>,
    /// walk-forward: training window ("7d"; "expanding" for all the past) and test window ("12h").
    #[arg(long, default_value = "7d")]
    train_window: String,
    #[arg(long, default_value = "12h")]
    test_window: String,
    /// walk-forward: skip test windows with fewer training rows than this.
    #[arg(long, default_value_t = 1000)]
    min_train_rows: usize,
    /// holdout: the share of the time range tested, and the gap before it (default: the look-ahead).
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    #[arg(long)]
    gap: Option<String>,
}

/// `"1h"` or `"60"` (bars) in milliseconds on a timeframe.
fn duration_ms(raw: &str, tf: Timeframe, what: &str) -> Result<i64> {
    let h = Horizon::parse(raw).with_context(|| format!("--{what} {raw:?}"))?;
    Ok(h.max_millis(tf))
}

impl SchemeArgs {
    fn scheme(&self, lookahead_ms: i64, tf: Timeframe) -> Result<Scheme> {
        let embargo_ms = match &self.embargo {
            Some(e) => duration_ms(e, tf, "embargo")?,
            None => lookahead_ms,
        };
        Ok(match self.scheme {
            SchemeKind::PurgedKfold => Scheme::PurgedKfold { folds: self.folds, embargo_ms },
            SchemeKind::Cpcv => Scheme::Cpcv { groups: self.groups, test_groups: self.test_groups, embargo_ms },
            SchemeKind::WalkForward => Scheme::WalkForward {
                train_ms: if self.train_window == "expanding" {
                    None
                } else {
                    Some(duration_ms(&self.train_window, tf, "train-window")?)
                },
                test_ms: duration_ms(&self.test_window, tf, "test-window")?,
                min_train_rows: self.min_train_rows,
            },
            SchemeKind::Holdout => Scheme::Holdout {
                test_fraction: self.test_fraction,
                gap_ms: match &self.gap {
                    Some(g) => duration_ms(g, tf, "gap")?,
                    None => lookahead_ms,
                },
            },
        })
    }
}

pub fn labels(home: &Path, cmd: LabelsCommand) -> Result<ExitCode> {
    match cmd {
        LabelsCommand::List { json } => {
            if json {
                let rows: Vec<serde_json::Value> = CATALOGUE
                    .iter()
                    .map(|(kind, what, target)| serde_json::json!({ "kind": kind, "predicts": what, "target": target }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                let mut t = table(&["kind", "predicts", "target"]);
                for (kind, what, target) in CATALOGUE {
                    t.add_row(vec![*kind, *what, *target]);
                }
                println!("{t}");
                println!("Parameters and the exact rules: docs/labels.md. Every label declares its look-ahead.");
            }
        }
        LabelsCommand::Compute { bars, label, weights, output, json } => {
            let spec = label.spec()?;
            let loaded = load_bars(home, bars.symbol, bars.timeframe, bars.input)?;
            let started = std::time::Instant::now();
            let labels = spec.compute(&loaded.bars, None)?;
            let elapsed = started.elapsed();
            if labels.is_empty() {
                bail!("{}: no bar could be labelled ({:?})", loaded.name, labels.dropped);
            }
            let mut columns: Vec<(String, Vec<f64>)> =
                vec![("end_ts".to_string(), labels.end_ts.iter().map(|&t| t as f64).collect())];
            columns.extend(labels.columns.iter().cloned());
            if weights {
                columns.push(("weight".to_string(), uniqueness_weights(&labels, loaded.bars.len())));
            }
            write_frame(&output, labels.ts.clone(), columns)?;
            let summary = LabelSummary::new(&spec, &labels, loaded.bars.len(), elapsed.as_secs_f64(), &output);
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print_label_summary(&loaded.name, &summary);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct LabelSummary {
    kind: &'static str,
    lookahead: String,
    target: String,
    bars: usize,
    rows: usize,
    dropped: quantpipe_labels::Dropped,
    /// For a class target: (class, rows).
    classes: Vec<(f64, usize)>,
    /// For a value target: mean and standard deviation.
    mean: Option<f64>,
    std: Option<f64>,
    seconds: f64,
    output: String,
}

impl LabelSummary {
    fn new(spec: &LabelSpec, labels: &Labels, bars: usize, seconds: f64, output: &Path) -> LabelSummary {
        let target = labels.target_values();
        let mut classes: Vec<(f64, usize)> = Vec::new();
        let (mut mean, mut std) = (None, None);
        if spec.is_classification() {
            for &v in target {
                match classes.iter_mut().find(|(c, _)| *c == v) {
                    Some(entry) => entry.1 += 1,
                    None => classes.push((v, 1)),
                }
            }
            classes.sort_by(|a, b| a.0.total_cmp(&b.0));
        } else {
            let finite: Vec<f64> = target.iter().copied().filter(|v| v.is_finite()).collect();
            let m = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
            let var = finite.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (finite.len().max(2) - 1) as f64;
            (mean, std) = (Some(m), Some(var.sqrt()));
        }
        LabelSummary {
            kind: labels.kind,
            lookahead: labels.lookahead.name(),
            target: labels.target.clone(),
            bars,
            rows: labels.len(),
            dropped: labels.dropped.clone(),
            classes,
            mean,
            std,
            seconds,
            output: output.display().to_string(),
        }
    }
}

fn print_label_summary(name: &str, s: &LabelSummary) {
    println!(
        "{name}: {} label, look-ahead {}, target {} — {} of {} bars labelled in {:.2} s → {}",
        s.kind, s.lookahead, s.target, s.rows, s.bars, s.seconds, s.output
    );
    let d = &s.dropped;
    println!(
        "dropped: {} incomplete future window, {} warm-up, {} dead zone, {} no event",
        d.incomplete_window, d.warm_up, d.dead_zone, d.no_event
    );
    if !s.classes.is_empty() {
        let mut t = table(&["class", "rows", "share"]);
        for (class, rows) in &s.classes {
            t.add_row(vec![
                class.to_string(),
                rows.to_string(),
                format!("{:.1} %", 100.0 * *rows as f64 / s.rows as f64),
            ]);
        }
        right(&mut t, &[0, 1, 2]);
        println!("{t}");
    } else if let (Some(m), Some(sd)) = (s.mean, s.std) {
        println!("target mean {m:.6}, standard deviation {sd:.6}");
    }
}

#[derive(Serialize)]
struct SplitRow {
    split: usize,
    train_rows: usize,
    train_from: String,
    train_to: String,
    test_rows: usize,
    test_from: String,
    test_to: String,
    purged: usize,
    embargoed: usize,
}

pub fn validate(home: &Path, cmd: ValidateCommand) -> Result<ExitCode> {
    let ValidateCommand::Splits { bars, label, scheme, json } = cmd;
    let spec = label.spec()?;
    let loaded: Loaded = load_bars(home, bars.symbol, bars.timeframe, bars.input)?;
    let labels = spec.compute(&loaded.bars, None)?;
    let lookahead_ms = labels.lookahead.max_millis(loaded.timeframe);
    let scheme = scheme.scheme(lookahead_ms, loaded.timeframe)?;
    let times = LabelTimes::new(&labels.ts, &labels.end_ts)?;
    let started = std::time::Instant::now();
    let (splits, paths) = match scheme {
        Scheme::Cpcv { groups, test_groups, embargo_ms } => {
            let (s, p) = cpcv(times, groups, test_groups, embargo_ms)?;
            (s, Some(p))
        }
        _ => (scheme.splits(times)?, None),
    };
    let elapsed = started.elapsed();
    let iso = |row: usize| quantpipe_core::time::format_iso(labels.ts[row]);
    let span = |ranges: &[std::ops::Range<usize>]| match (ranges.first(), ranges.last()) {
        (Some(a), Some(b)) => (iso(a.start), iso(b.end - 1)),
        _ => ("-".into(), "-".into()),
    };
    let rows: Vec<SplitRow> = splits
        .iter()
        .enumerate()
        .map(|(k, s): (usize, &Split)| {
            let (train_from, train_to) = span(&s.train);
            let (test_from, test_to) = span(&s.test);
            SplitRow {
                split: k + 1,
                train_rows: s.train_len(),
                train_from,
                train_to,
                test_rows: s.test_len(),
                test_from,
                test_to,
                purged: s.purged,
                embargoed: s.embargoed,
            }
        })
        .collect();
    if json {
        let out = serde_json::json!({
            "label": labels.kind, "lookahead": labels.lookahead.name(), "rows": labels.len(),
            "scheme": scheme, "splits": rows, "paths": paths, "seconds": elapsed.as_secs_f64(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: {} rows labelled by {} (look-ahead {}); {:?}: {} splits in {:.3} s",
        loaded.name,
        labels.len(),
        labels.kind,
        labels.lookahead.name(),
        scheme,
        splits.len(),
        elapsed.as_secs_f64()
    );
    let mut t =
        table(&["split", "train rows", "train from → to", "test rows", "test from → to", "purged", "embargoed"]);
    let shown: Vec<&SplitRow> = if rows.len() > 24 {
        rows.iter().take(20).chain(rows.iter().skip(rows.len() - 3)).collect()
    } else {
        rows.iter().collect()
    };
    for r in &shown {
        t.add_row(vec![
            r.split.to_string(),
            r.train_rows.to_string(),
            format!("{} → {}", r.train_from, r.train_to),
            r.test_rows.to_string(),
            format!("{} → {}", r.test_from, r.test_to),
            r.purged.to_string(),
            r.embargoed.to_string(),
        ]);
    }
    right(&mut t, &[0, 1, 3, 5, 6]);
    println!("{t}");
    if shown.len() < rows.len() {
        println!("({} splits not shown; --json lists them all)", rows.len() - shown.len());
    }
    if let Some(p) = paths {
        println!("{} backtest paths (each covers every block once out of sample)", p.len());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct BacktestArgs {
    /// A CSV of out-of-sample predictions, one row per bar in time order, with a close column and one
    /// or more probability columns.
    #[arg(long)]
    input: PathBuf,
    /// Probability-of-up column; repeat it to give every variant that was tried: the best by Sharpe is
    /// selected, and its deflated Sharpe ratio and the PBO account for all of them.
    #[arg(long = "prob", default_value = "probability")]
    prob: Vec<String>,
    #[arg(long, default_value = "close")]
    close: String,
    /// A primary signal's side column (+1/−1/0): the model gates it instead of choosing the side.
    #[arg(long)]
    side: Option<String>,
    #[arg(long, default_value_t = 0.5)]
    long_above: f64,
    /// Go short below this probability (default: long/flat only).
    #[arg(long)]
    short_below: Option<f64>,
    /// Size positions by |2p − 1| instead of whole units.
    #[arg(long)]
    size_by_confidence: bool,
    #[arg(long, default_value_t = 0.0)]
    fee_bps: f64,
    #[arg(long, default_value_t = 0.0)]
    slippage_bps: f64,
    /// Bar timeframe, for annualising (e.g. 1m, 1h, 1d).
    #[arg(long)]
    timeframe: String,
    /// Market calendar: crypto (365 × 24 h), fx (260 × 24 h) or equity (252 × 6.5 h).
    #[arg(long, default_value = "crypto")]
    calendar: String,
    /// Write the per-bar position, return and equity of the selected strategy and of buy-and-hold here (.csv).
    #[arg(long)]
    equity_out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct BacktestReport {
    selected: String,
    strategy: Performance,
    buy_and_hold: Performance,
    sharpe_statistics: SharpeStatistics,
    /// Per variant tried: (column, annualised Sharpe).
    trials: Vec<(String, f64)>,
    pbo: Option<Pbo>,
    periods_per_year: f64,
}

struct PredictionFile {
    close: Vec<f64>,
    probabilities: Vec<Vec<f64>>,
    side: Option<Vec<f64>>,
    ts: Option<Vec<String>>,
}

fn read_predictions(args: &BacktestArgs) -> Result<PredictionFile> {
    let path = &args.input;
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let header: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| anyhow::anyhow!("{}: no column {name:?} (columns: {})", path.display(), header.join(", ")))
    };
    let close_at = find(&args.close)?;
    let prob_at: Vec<usize> = args.prob.iter().map(|p| find(p)).collect::<Result<_>>()?;
    let side_at = args.side.as_deref().map(find).transpose()?;
    let ts_at = header.iter().position(|h| h == "ts" || h == "timestamp");
    let mut out = PredictionFile {
        close: Vec::new(),
        probabilities: vec![Vec::new(); prob_at.len()],
        side: side_at.map(|_| Vec::new()),
        ts: ts_at.map(|_| Vec::new()),
    };
    for (k, record) in reader.records().enumerate() {
        let line = k + 2;
        let record = record.with_context(|| format!("{}: line {line}", path.display()))?;
        let number = |at: usize, allow_empty: bool| -> Result<f64> {
            let raw = record.get(at).unwrap_or("").trim();
            if raw.is_empty() && allow_empty {
                return Ok(f64::NAN);
            }
            raw.parse::<f64>().map_err(|_| {
                anyhow::anyhow!("{}: line {line}, column {:?}: {raw:?} is not a number", path.display(), header[at])
            })
        };
        let close = number(close_at, false)?;
        if !(close.is_finite() && close > 0.0) {
            bail!("{}: line {line}, column {:?}: price {close} must be positive", path.display(), header[close_at]);
        }
        out.close.push(close);
        for (column, &at) in out.probabilities.iter_mut().zip(&prob_at) {
            let p = number(at, true)?;
            if !p.is_nan() && !(0.0..=1.0).contains(&p) {
                bail!("{}: line {line}, column {:?}: probability {p} is outside 0…1", path.display(), header[at]);
            }
            column.push(p);
        }
        if let (Some(side), Some(at)) = (out.side.as_mut(), side_at) {
            side.push(number(at, true)?);
        }
        if let (Some(ts), Some(at)) = (out.ts.as_mut(), ts_at) {
            ts.push(record.get(at).unwrap_or("").to_string());
        }
    }
    if out.close.len() < 3 {
        bail!("{}: {} rows; a backtest needs at least 3", path.display(), out.close.len());
    }
    Ok(out)
}

pub fn backtest(args: BacktestArgs) -> Result<ExitCode> {
    let tf = Timeframe::parse(&args.timeframe)?;
    let calendar = MarketCalendar::parse(&args.calendar)?;
    let ppy = periods_per_year(tf, calendar);
    let rule = PositionRule {
        long_above: args.long_above,
        short_below: args.short_below,
        size_by_confidence: args.size_by_confidence,
    };
    rule.validate()?;
    let costs = Costs { fee_bps: args.fee_bps, slippage_bps: args.slippage_bps };
    let file = read_predictions(&args)?;
    let mut runs = Vec::new();
    for probabilities in &file.probabilities {
        let (target, approval) = rule.positions(probabilities, file.side.as_deref())?;
        let bt = simulate(&file.close, &target, costs)?;
        let mut perf = bt.performance(ppy);
        perf.approval_rate = approval.is_finite().then_some(approval);
        runs.push((target, bt, perf));
    }
    let best = (0..runs.len()).max_by(|&a, &b| runs[a].2.sharpe.total_cmp(&runs[b].2.sharpe)).unwrap_or(0);
    let per_bar_sharpe = |r: &[f64]| quantpipe_eval::stats::mean(r) / quantpipe_eval::stats::std_dev(r);
    let trial_sharpes: Vec<f64> = runs.iter().map(|r| per_bar_sharpe(&r.1.returns)).collect();
    let stats = sharpe_statistics(&runs[best].1.returns, &trial_sharpes)?;
    let pbo = if runs.len() >= 2 {
        let returns: Vec<Vec<f64>> = runs.iter().map(|r| r.1.returns.clone()).collect();
        Some(probability_of_backtest_overfitting(&returns, 10)?)
    } else {
        None
    };
    let hold = simulate(&file.close, &vec![1.0; file.close.len()], costs)?;
    let report = BacktestReport {
        selected: args.prob[best].clone(),
        strategy: runs[best].2.clone(),
        buy_and_hold: hold.performance(ppy),
        sharpe_statistics: stats,
        trials: args.prob.iter().cloned().zip(runs.iter().map(|r| r.2.sharpe)).collect(),
        pbo,
        periods_per_year: ppy,
    };
    if let Some(path) = &args.equity_out {
        let mut w = csv::Writer::from_path(path).with_context(|| format!("creating {}", path.display()))?;
        w.write_record(["row", "ts", "close", "position", "return", "equity", "buy_and_hold_equity"])?;
        let (target, bt, _) = &runs[best];
        for i in 0..file.close.len() {
            let ts = file.ts.as_ref().map(|t| t[i].as_str()).unwrap_or("");
            w.write_record([
                i.to_string(),
                ts.to_string(),
                file.close[i].to_string(),
                target[i].to_string(),
                bt.returns[i].to_string(),
                bt.equity[i].to_string(),
                hold.equity[i].to_string(),
            ])?;
        }
        w.flush()?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_backtest(&args, &report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_backtest(args: &BacktestArgs, r: &BacktestReport) {
    println!(
        "{}: {} bars, {} per year; costs {} bp fee + {} bp slippage per trade; selected {:?} of {} tried",
        args.input.display(),
        r.strategy.bars,
        r.periods_per_year,
        args.fee_bps,
        args.slippage_bps,
        r.selected,
        r.trials.len()
    );
    let pct = |v: f64| if v.is_finite() { format!("{:.2} %", 100.0 * v) } else { "-".into() };
    let num = |v: f64| if v.is_finite() { format!("{v:.3}") } else { "-".into() };
    let mut t = table(&["", "strategy", "buy & hold"]);
    let (s, h) = (&r.strategy, &r.buy_and_hold);
    let rows: Vec<(&str, String, String)> = vec![
        ("total return", pct(s.total_return), pct(h.total_return)),
        ("annualised return", pct(s.annualized_return), pct(h.annualized_return)),
        ("annualised volatility", pct(s.annualized_volatility), pct(h.annualized_volatility)),
        ("Sharpe (annualised)", num(s.sharpe), num(h.sharpe)),
        ("Sortino", num(s.sortino), num(h.sortino)),
        ("maximum drawdown", pct(s.max_drawdown), pct(h.max_drawdown)),
        ("Calmar", num(s.calmar), num(h.calmar)),
        ("trades", s.trades.to_string(), h.trades.to_string()),
        ("win rate", pct(s.win_rate), pct(h.win_rate)),
        ("profit factor", num(s.profit_factor), num(h.profit_factor)),
        ("turnover per year", num(s.turnover_per_year), num(h.turnover_per_year)),
        ("exposure", pct(s.exposure), pct(h.exposure)),
        ("fees paid (of starting equity)", pct(s.fees_paid), pct(h.fees_paid)),
    ];
    for (name, a, b) in rows {
        t.add_row(vec![name.to_string(), a, b]);
    }
    if let Some(rate) = s.approval_rate {
        t.add_row(vec!["approval rate".to_string(), pct(rate), "-".into()]);
    }
    right(&mut t, &[1, 2]);
    println!("{t}");
    let st = &r.sharpe_statistics;
    println!(
        "probabilistic Sharpe ratio (P[true Sharpe > 0]): {:.3}; deflated Sharpe ratio over {} trial(s): {:.3} \
         (luck benchmark: annualised Sharpe {:.3})",
        st.probabilistic_sharpe,
        st.trials,
        st.deflated_sharpe,
        st.expected_max_sharpe * r.periods_per_year.sqrt()
    );
    if let Some(p) = &r.pbo {
        println!("probability of backtest overfitting (CSCV, {} splits): {:.3}", p.splits, p.pbo);
    }
}
