//! The stages of a run, in order. [`prepare`] reads and checks everything a run needs without
//! training (it is all `--check` does); [`evaluate`] validates, trains, backtests and scores.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use quantpipe_core::parallel::{map_in_parallel, workers_for};
use quantpipe_core::time::format_iso;
use quantpipe_core::{Bars, MarketCalendar, Symbol, Timeframe};
use quantpipe_data::quality::{validate, Action, Policy};
use quantpipe_data::read::{read_bars, ReadOptions};
use quantpipe_data::store::content_hash;
use quantpipe_data::BarStore;
use quantpipe_eval::backtest::{simulate, Performance};
use quantpipe_eval::metrics::{
    binary_scores, calibration_table, confusion_matrix, ic_by_date, regression_scores, CalibrationBin, DatedIc,
};
use quantpipe_eval::overfit::{probability_of_backtest_overfitting, sharpe_statistics, Pbo, SharpeStatistics};
use quantpipe_eval::periods_per_year;
use quantpipe_eval::split::{LabelTimes, Split};
use quantpipe_eval::stats::{mean, std_dev};
use quantpipe_features::{compute, compute_many, FeatureSet};
use quantpipe_labels::Labels;
use quantpipe_models::neural::{gather_windows, sequence_names};
use quantpipe_models::search::{Candidate, SearchMethod, SearchSpec};
use quantpipe_models::{fit, Dataset, Importance, Model, ModelSpec, Task};
use serde::Serialize;

use crate::config::{LoadedConfig, ModelConfig, Relative};
use crate::panel::{concat_bars, concat_labels, load_panel, long_short, make_relative, scale_features, Panel, Scored};
use crate::PipelineError;

/// What one stage did, in the shape every stage reports.
#[derive(Debug, Clone, Serialize)]
pub struct StageRecord {
    pub stage: &'static str,
    pub rows_in: usize,
    pub rows_out: usize,
    pub seconds: f64,
    /// One line on what the stage did.
    pub note: String,
    pub warnings: Vec<String>,
}

/// Watches a run: the CLI draws progress bars and stage lines from these calls.
pub trait Observer: Sync {
    /// A stage begins; `steps` is how many [`Observer::step`] calls it will make (0: unknown).
    fn stage_started(&self, _stage: &'static str, _steps: u64) {}
    fn step(&self, _stage: &'static str, _message: &str) {}
    fn stage_finished(&self, _record: &StageRecord) {}
}

/// An observer that ignores everything (tests, `--json`).
pub struct Silent;
impl Observer for Silent {}

/// The data a run read, and what the quality checks found.
#[derive(Debug, Clone, Serialize)]
pub struct DataSummary {
    pub source: String,
    pub symbol: String,
    pub timeframe: String,
    pub calendar: String,
    pub rows: usize,
    pub first: String,
    pub last: String,
    /// 0–100, from the data layer's quality report.
    pub quality_score: f64,
    /// Checks that found something: "zero-volume bars: 12 (kept)".
    pub findings: Vec<String>,
    /// blake3 of the bars (equal data, equal hash).
    pub dataset_hash: String,
}

/// Everything computed before training: bars, features, labels, the aligned dataset and its splits.
pub struct Prepared {
    pub data: DataSummary,
    pub bars: Bars,
    pub timeframe: Timeframe,
    pub calendar: MarketCalendar,
    pub feature_set: FeatureSet,
    pub feature_names: Vec<String>,
    pub labels: Labels,
    /// Label indices of the dataset's rows (after warm-up and missing targets), in time order.
    pub rows: Vec<usize>,
    /// Row-major feature matrix of the dataset rows.
    pub x: Vec<f64>,
    /// The feature columns over every bar, kept when a model reads several rows per input (an LSTM's
    /// window): its inputs are gathered from them.
    pub columns: Option<Vec<Vec<f64>>>,
    /// Label start and end times of the dataset rows.
    pub start: Vec<i64>,
    pub end: Vec<i64>,
    pub splits: Vec<Split>,
    pub stages: Vec<StageRecord>,
    /// The symbols of a cross-sectional run (`data.symbols`); `None` for one series.
    pub panel: Option<Panel>,
}

impl Prepared {
    /// The symbol of dataset row `i`.
    pub fn symbol(&self, i: usize) -> &str {
        match &self.panel {
            Some(panel) => &panel.symbols[panel.symbol_of(self.bar(i))],
            None => &self.data.symbol,
        }
    }

    pub fn width(&self) -> usize {
        self.feature_names.len()
    }
    /// Bar index of dataset row `i`.
    pub fn bar(&self, i: usize) -> usize {
        self.labels.row[self.rows[i]]
    }

    /// The model inputs of dataset rows `rows`: their feature rows, or for a model reading `window`
    /// rows per input, each row's window (oldest first), row-major.
    pub fn inputs(&self, rows: &[usize], window: usize) -> Vec<f64> {
        match (&self.columns, window) {
            (Some(columns), w) if w > 1 => {
                let ends: Vec<usize> = rows.iter().map(|&i| self.bar(i)).collect();
                gather_windows(columns, &ends, w)
            }
            _ => {
                let d = self.width();
                rows.iter().flat_map(|&i| self.x[i * d..(i + 1) * d].iter().copied()).collect()
            }
        }
    }

    /// Names of the model inputs for a model reading `window` rows per input.
    pub fn input_names(&self, window: usize) -> Vec<String> {
        match window {
            1 => self.feature_names.clone(),
            w => sequence_names(&self.feature_names, w),
        }
    }
}

/// One fold of cross-validation, for one model.
#[derive(Debug, Clone, Serialize)]
pub struct FoldOutcome {
    pub fold: usize,
    pub train_rows: usize,
    pub test_rows: usize,
    pub purged: usize,
    pub embargoed: usize,
    pub test_first: String,
    pub test_last: String,
    /// The model's headline metric on this fold's test rows.
    pub score: f64,
}

/// A backtest of one model's out-of-sample positions over the bars they cover.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestOutcome {
    pub rule: String,
    pub strategy: Performance,
    pub buy_and_hold: Performance,
    #[serde(skip)]
    pub ts: Vec<i64>,
    #[serde(skip)]
    pub equity: Vec<f64>,
    #[serde(skip)]
    pub hold_equity: Vec<f64>,
    /// Position held from each bar's close (bar index `first_bar + i`).
    #[serde(skip)]
    pub positions: Vec<f64>,
    #[serde(skip)]
    pub returns: Vec<f64>,
    #[serde(skip)]
    pub first_bar: usize,
    /// Cross-sectional runs: per out-of-sample row, its symbol's weight (held since the last
    /// rebalance; 0 when not held) and the symbol's return over the next bar.
    #[serde(skip)]
    pub rows: Option<Vec<(f64, f64)>>,
}

/// Everything one model's part of the run produced.
#[derive(Serialize)]
pub struct ModelOutcome {
    pub name: String,
    pub family: String,
    /// Written as `binary`, `multiclass:3`, `regression`, `quantile:0.9`.
    #[serde(serialize_with = "task_text")]
    pub task: Task,
    pub target: String,
    /// Label values in class order, for classifiers (class k is the k-th value).
    pub classes: Option<Vec<f64>>,
    pub params: serde_json::Value,
    pub folds: Vec<FoldOutcome>,
    /// The headline metric's name (`roc_auc`, `accuracy`, `ic`).
    pub headline_metric: String,
    /// Scores over every out-of-sample row together.
    pub oos_scores: serde_json::Value,
    pub oos_rows: usize,
    pub calibration: Option<Vec<CalibrationBin>>,
    pub confusion: Option<Vec<Vec<usize>>>,
    /// Features by total gain (top 30), from the final model.
    pub importance: Vec<Importance>,
    /// Mean |SHAP| per feature (top 30) over the last out-of-sample rows, from the final model.
    pub shap: Vec<(String, f64)>,
    pub shap_rows: usize,
    pub backtest: Option<BacktestOutcome>,
    pub sharpe_statistics: Option<SharpeStatistics>,
    /// The parameter search that chose `params`, when the model table has one.
    pub search: Option<SearchOutcome>,
    /// The model's inputs, in order (the feature set's columns, or an LSTM's window of them).
    #[serde(skip)]
    pub inputs: Vec<String>,
    /// Cross-sectional runs: (date, IC, rank IC) of every scored date, against the raw target.
    #[serde(skip)]
    pub ic_by_date: Vec<(i64, f64, f64)>,
    /// Rows the final (registered) model was trained on.
    pub final_train_rows: usize,
    pub train_seconds: f64,
    pub artifact: PathBuf,
    /// Dataset rows predicted out of sample (indices into [`Prepared::rows`]) and their predictions
    /// (`outputs` values per row) and encoded labels.
    #[serde(skip)]
    pub oos_index: Vec<usize>,
    #[serde(skip)]
    pub oos_predictions: Vec<f64>,
    #[serde(skip)]
    pub oos_labels: Vec<f64>,
    #[serde(skip)]
    pub outputs: usize,
}

impl ModelOutcome {
    /// The headline out-of-sample score.
    pub fn headline(&self) -> f64 {
        self.oos_scores.get(&self.headline_metric).and_then(|v| v.as_f64()).unwrap_or(f64::NAN)
    }
    /// One number per out-of-sample row: P(class 1) for binary, the predicted class value for
    /// multiclass, the prediction for regressors.
    pub fn point_predictions(&self) -> Vec<f64> {
        match (&self.classes, self.outputs) {
            (Some(classes), k) if k > 1 => self
                .oos_predictions
                .chunks_exact(k)
                .map(|p| classes[(0..k).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0)])
                .collect(),
            _ => self.oos_predictions.clone(),
        }
    }
}

/// Statistics that discount the backtests for how many were tried.
#[derive(Debug, Clone, Serialize)]
pub struct Overfitting {
    /// Backtested strategies: each model, and each parameter set its search tried, is one trial.
    pub trials: usize,
    pub pbo: Option<Pbo>,
    /// Why PBO is absent, when it is.
    pub pbo_note: Option<String>,
}

pub struct Evaluated {
    pub models: Vec<ModelOutcome>,
    pub overfitting: Overfitting,
    pub stages: Vec<StageRecord>,
}

/// What the run needs from outside the config.
pub struct RunOptions {
    /// QUANTPIPE_HOME, for series in the bar store.
    pub home: PathBuf,
    /// The run's directory: models, report, predictions.
    pub out_dir: PathBuf,
    /// Recorded with every artifact (`quantpipe 0.1.0 (commit)`).
    pub code_version: String,
}

struct StageClock<'a> {
    stage: &'static str,
    started: Instant,
    observer: &'a dyn Observer,
}

impl<'a> StageClock<'a> {
    fn start(stage: &'static str, steps: u64, observer: &'a dyn Observer) -> StageClock<'a> {
        observer.stage_started(stage, steps);
        StageClock { stage, started: Instant::now(), observer }
    }
    fn finish(self, rows_in: usize, rows_out: usize, note: String, warnings: Vec<String>) -> StageRecord {
        let record = StageRecord {
            stage: self.stage,
            rows_in,
            rows_out,
            seconds: self.started.elapsed().as_secs_f64(),
            note,
            warnings,
        };
        self.observer.stage_finished(&record);
        record
    }
}

/// Data → features → labels → dataset → splits. Everything `--check` verifies.
pub fn prepare(
    loaded: &LoadedConfig,
    options: &RunOptions,
    observer: &dyn Observer,
) -> Result<Prepared, PipelineError> {
    let config = &loaded.config;
    let mut stages = Vec::new();

    let clock = StageClock::start("data", 0, observer);
    let window = |raw: &Option<String>| {
        raw.as_deref().map(crate::config::parse_utc).transpose().map_err(|e| PipelineError::stage("data", e))
    };
    let (from, until) = (window(&config.data.start)?, window(&config.data.end)?);
    if config.data.symbols.is_some() {
        let panel = load_panel(loaded, &options.home, from, until)?;
        let rows = panel.summary.rows;
        stages.push(clock.finish(
            rows,
            rows,
            format!(
                "{} {} bars of {} ({} to {}), quality {:.1}/100",
                rows,
                panel.timeframe,
                panel.summary.symbol,
                panel.summary.first,
                panel.summary.last,
                panel.summary.quality_score
            ),
            panel.warnings,
        ));
        return prepare_series(
            loaded,
            panel.series,
            (panel.timeframe, panel.calendar, panel.summary),
            stages,
            observer,
        );
    }
    let (bars, timeframe, calendar, mut data, warnings) = load_data(loaded, &options.home)?;
    let rows_read = bars.len();
    let bars = if from.is_some() || until.is_some() {
        let keep: Vec<usize> = (0..bars.len())
            .filter(|&i| from.is_none_or(|f| bars.ts[i] >= f) && until.is_none_or(|u| bars.ts[i] < u))
            .collect();
        if keep.is_empty() {
            return Err(PipelineError::stage(
                "data",
                format!(
                    "no bar of {} lies between data.start and data.end ({} to {})",
                    data.symbol, data.first, data.last
                ),
            ));
        }
        let selected = bars.select(&keep);
        data.rows = selected.len();
        data.first = format_iso(selected.ts[0]);
        data.last = format_iso(*selected.ts.last().expect("non-empty"));
        data.dataset_hash = content_hash(&selected);
        selected
    } else {
        bars
    };
    stages.push(clock.finish(
        rows_read,
        bars.len(),
        format!(
            "{} {} bars of {} ({} to {}), quality {:.1}/100",
            data.rows, timeframe, data.symbol, data.first, data.last, data.quality_score
        ),
        warnings,
    ));
    let symbol = data.symbol.clone();
    prepare_series(loaded, vec![(symbol, bars)], (timeframe, calendar, data), stages, observer)
}

/// Features, labels, dataset and splits of one series or, for a cross-sectional run, of several
/// (each symbol's features and labels computed on its own bars, then put side by side).
fn prepare_series(
    loaded: &LoadedConfig,
    series: Vec<(String, Bars)>,
    (timeframe, calendar, data): (Timeframe, MarketCalendar, DataSummary),
    mut stages: Vec<StageRecord>,
    observer: &dyn Observer,
) -> Result<Prepared, PipelineError> {
    let config = &loaded.config;
    let is_panel = config.data.symbols.is_some();
    let clock = StageClock::start("features", 0, observer);
    let feature_set = match config.features.set.as_str() {
        "standard" => FeatureSet::standard(),
        file => {
            let path = loaded.resolve(file)?;
            let text = std::fs::read_to_string(&path).map_err(|e| PipelineError::io(&path, e))?;
            FeatureSet::from_toml(&path.display().to_string(), &text)
                .map_err(|e| PipelineError::stage("features", e))?
        }
    };
    // One series: its indicators in parallel; several: a series per core.
    let frames = match &series[..] {
        [(_, bars)] => vec![compute(&feature_set, bars)],
        many => {
            let refs: Vec<&Bars> = many.iter().map(|(_, b)| b).collect();
            compute_many(&feature_set, &refs, workers_for(refs.len()))
        }
    };
    let d = feature_set.columns().len();
    let warms: Vec<usize> = frames
        .iter()
        .zip(&series)
        .map(|(frame, (_, bars))| {
            (0..bars.len()).find(|&r| frame.columns.iter().all(|c| c[r].is_finite())).unwrap_or(bars.len())
        })
        .collect();
    let bar_count: usize = series.iter().map(|(_, b)| b.len()).sum();
    let warm_count: usize = warms.iter().zip(&series).map(|(&w, (_, b))| w.min(b.len())).sum();
    if warm_count >= bar_count {
        return Err(PipelineError::stage(
            "features",
            format!(
                "no bar has every one of the {d} features of set {:?} defined: {} bars are fewer than its warm-up",
                feature_set.name,
                series.iter().map(|(_, b)| b.len()).max().unwrap_or(0)
            ),
        ));
    }
    let warm_note = match &warms[..] {
        [warm] => format!("the first {warm} bars are warm-up"),
        many => format!(
            "the first {} to {} bars of each symbol are warm-up",
            many.iter().min().expect("non-empty"),
            many.iter().max().expect("non-empty")
        ),
    };
    stages.push(clock.finish(
        bar_count,
        bar_count - warm_count,
        format!("{d} features of set {:?}; {warm_note}", feature_set.name),
        Vec::new(),
    ));

    let clock = StageClock::start("labels", 0, observer);
    let symbols: Vec<String> = series.iter().map(|(symbol, _)| symbol.clone()).collect();
    let (bars, offsets, mut labels) = match series.len() {
        1 => {
            let (_, bars) = series.into_iter().next().expect("one series");
            let labels = config.label.compute(&bars, None).map_err(|e| PipelineError::stage("labels", e))?;
            let offsets = vec![0, bars.len()];
            (bars, offsets, labels)
        }
        _ => {
            let computed = map_in_parallel(&series, workers_for(series.len()), |_, (symbol, bars)| {
                config.label.compute(bars, None).map_err(|e| PipelineError::stage("labels", format!("{symbol}: {e}")))
            });
            let parts = computed.into_iter().collect::<Result<Vec<Labels>, PipelineError>>()?;
            let (bars, offsets) = concat_bars(&series)?;
            let labels = concat_labels(parts, &offsets);
            (bars, offsets, labels)
        }
    };
    let mut warnings = Vec::new();
    if labels.dropped.dead_zone > 0 {
        warnings.push(format!("{} rows inside the dead zone have no direction", labels.dropped.dead_zone));
    }
    stages.push(clock.finish(
        bars.len(),
        labels.len(),
        format!("{} label, look-ahead {}, target {}", labels.kind, labels.lookahead.name(), labels.target),
        warnings,
    ));

    let clock = StageClock::start("dataset", 0, observer);
    let mut target_names: Vec<String> = Vec::new();
    for (i, m) in config.models.iter().enumerate() {
        let target = m.target.as_deref().unwrap_or(&labels.target);
        if labels.column(target).is_none() {
            let names: Vec<&str> = labels.columns.iter().map(|(n, _)| n.as_str()).collect();
            return Err(PipelineError::config(
                format!("models[{i}].target"),
                format!("{target:?} is not a column of the label (columns: {})", names.join(", ")),
            ));
        }
        if !target_names.iter().any(|t| t == target) {
            target_names.push(target.to_string());
        }
    }
    let targets: Vec<&[f64]> = target_names.iter().map(|t| labels.column(t).expect("checked")).collect();
    // A model reading several rows per input (an LSTM's window) needs that many defined rows before
    // each dataset row; every model gets the same rows, so that their scores compare.
    let window = config
        .models
        .iter()
        .flat_map(|m| {
            let searched = m.search.as_ref().and_then(|s| s.candidates(&m.spec).ok()).unwrap_or_default();
            std::iter::once(m.spec.window()).chain(searched.into_iter().map(|c| c.spec.window()))
        })
        .max()
        .unwrap_or(1);
    // Each symbol's first bar with every feature defined (and a whole window before it).
    let first_bar: Vec<usize> = (0..symbols.len()).map(|s| offsets[s] + warms[s] + window - 1).collect();
    let symbol_of = |bar: usize| offsets.partition_point(|&o| o <= bar) - 1;
    let mut rows: Vec<usize> = (0..labels.len())
        .filter(|&k| labels.row[k] >= first_bar[symbol_of(labels.row[k])] && targets.iter().all(|t| t[k].is_finite()))
        .collect();
    let mut panel = None;
    let mut panel_note = String::new();
    if is_panel {
        // A row per symbol and date, in time order (symbols in their order within a date).
        rows.sort_by_key(|&k| labels.ts[k]);
        let cross_section = config.cross_section.clone().unwrap_or_default();
        let mut per_date: BTreeMap<i64, usize> = BTreeMap::new();
        for &k in &rows {
            *per_date.entry(labels.ts[k]).or_default() += 1;
        }
        let thin = per_date.values().filter(|&&n| n < cross_section.min_symbols).count();
        rows.retain(|&k| per_date[&labels.ts[k]] >= cross_section.min_symbols);
        let dates: Vec<i64> = rows.iter().map(|&k| labels.ts[k]).collect();
        let mut raw_targets = BTreeMap::new();
        for target in &target_names {
            let column = labels.column(target).expect("checked");
            let raw: Vec<f64> = rows.iter().map(|&k| column[k]).collect();
            let mut relative = raw.clone();
            make_relative(&mut relative, &dates, cross_section.target);
            let column = &mut labels.columns.iter_mut().find(|(n, _)| n == target).expect("checked").1;
            for (&k, v) in rows.iter().zip(relative) {
                column[k] = v;
            }
            raw_targets.insert(target.clone(), raw);
        }
        let kept_dates = per_date.len() - thin;
        panel_note = format!(
            "; {} symbols over {kept_dates} dates{}, targets {}",
            symbols.len(),
            if thin > 0 {
                format!(" ({thin} dates with fewer than {} symbols left out)", cross_section.min_symbols)
            } else {
                String::new()
            },
            match cross_section.target {
                Relative::Rank => "ranked across the symbols of each date (0 to 1)",
                Relative::Demean => "minus the mean of each date",
                Relative::None => "as labelled",
            }
        );
        panel = Some(Panel { symbols, offsets: offsets.clone(), config: cross_section, raw_targets });
    }
    if rows.len() < 200 {
        return Err(PipelineError::stage(
            "dataset",
            format!("only {} labelled rows after the features' warm-up (need ≥ 200)", rows.len()),
        ));
    }
    let mut x = Vec::with_capacity(rows.len() * d);
    for &k in &rows {
        let bar = labels.row[k];
        let s = symbol_of(bar);
        x.extend(frames[s].columns.iter().map(|c| c[bar - offsets[s]]));
    }
    // Windows are gathered from one series' columns (sequence models are refused in panel runs).
    let columns = (window > 1 && frames.len() == 1).then(|| frames.into_iter().next().expect("one").columns);
    let mut feature_names = feature_set.columns();
    if let Some(panel) = &panel {
        let dates: Vec<i64> = rows.iter().map(|&k| labels.ts[k]).collect();
        scale_features(&mut x, d, &dates, panel.config.features, &mut feature_names);
    }
    let start: Vec<i64> = rows.iter().map(|&k| labels.ts[k]).collect();
    let end: Vec<i64> = rows.iter().map(|&k| labels.end_ts[k]).collect();
    let lookahead_ms = labels.lookahead.max_millis(timeframe);
    let span = end.last().copied().unwrap_or(0) - start.first().copied().unwrap_or(0);
    let scheme = config.validation.scheme(timeframe, lookahead_ms, span)?;
    let times = LabelTimes::new(&start, &end).map_err(|e| PipelineError::stage("dataset", e))?;
    let splits = scheme.splits(times).map_err(|e| PipelineError::stage("validation", e))?;
    let splits: Vec<Split> = splits.into_iter().filter(|s| s.train_len() > 0 && s.test_len() > 0).collect();
    if splits.is_empty() {
        return Err(PipelineError::stage(
            "validation",
            format!("the scheme {scheme:?} makes no split with both training and test rows"),
        ));
    }
    let tested: usize = splits.iter().map(|s| s.test_len()).sum();
    stages.push(clock.finish(
        labels.len(),
        rows.len(),
        format!(
            "{} rows × {d} features{}{panel_note}; {} splits ({}), {tested} rows tested out of sample",
            rows.len(),
            if window > 1 { format!(" (windows of {window} rows)") } else { String::new() },
            splits.len(),
            scheme_name(config.validation.scheme)
        ),
        Vec::new(),
    ));
    Ok(Prepared {
        data,
        bars,
        timeframe,
        calendar,
        feature_set,
        feature_names,
        labels,
        rows,
        x,
        columns,
        start,
        end,
        splits,
        stages,
        panel,
    })
}

fn scheme_name(kind: crate::config::SchemeKind) -> &'static str {
    match kind {
        crate::config::SchemeKind::WalkForward => "walk-forward",
        crate::config::SchemeKind::PurgedKfold => "purged k-fold",
        crate::config::SchemeKind::Holdout => "holdout",
    }
}

type LoadedData = (Bars, Timeframe, MarketCalendar, DataSummary, Vec<String>);

fn load_data(loaded: &LoadedConfig, home: &Path) -> Result<LoadedData, PipelineError> {
    let data = &loaded.config.data;
    let fail = |m: String| PipelineError::stage("data", m);
    let calendar = data.calendar.as_deref().map(MarketCalendar::parse).transpose().map_err(|e| fail(e.to_string()))?;
    let wanted_tf = data.timeframe.as_deref().map(Timeframe::parse).transpose().map_err(|e| fail(e.to_string()))?;
    let symbol = data.symbol.as_deref().map(Symbol::new).transpose().map_err(|e| fail(e.to_string()))?;
    match &data.file {
        Some(file) => {
            let path = loaded.resolve(file)?;
            let options = ReadOptions { symbol: symbol.clone(), ..Default::default() };
            let mut read = read_bars(&path, &options)
                .or_else(|first| match &symbol {
                    // A file without a symbol column: name its series after the file.
                    None => read_bars(
                        &path,
                        &ReadOptions { symbol: Some(Symbol::new("INPUT").expect("valid")), ..Default::default() },
                    ),
                    Some(_) => Err(first),
                })
                .map_err(|e| fail(e.to_string()))?;
            if read.series.len() != 1 {
                let names: Vec<String> = read.series.iter().map(|s| s.symbol.to_string()).collect();
                return Err(fail(format!(
                    "{}: holds {} symbols ({}); choose one with data.symbol",
                    path.display(),
                    names.len(),
                    names.join(", ")
                )));
            }
            let raw = read.series.remove(0);
            // The timeframe is inferred from the bars and then compared with the config's: forcing it
            // would turn hourly bars into minute bars with gaps.
            let policy = Policy { calendar, ..Policy::default() };
            let validated = validate(raw, &policy).map_err(|m| fail(format!("{}: {m}", path.display())))?;
            let report = &validated.report;
            let fatal: Vec<String> = report.fatal().map(|c| format!("{} {}", c.count, c.kind.label())).collect();
            if !fatal.is_empty() {
                return Err(fail(format!(
                    "{}: refused: {} (run `quantpipe ingest {}` for the full report, with --repair where a rule applies)",
                    path.display(),
                    fatal.join("; "),
                    path.display()
                )));
            }
            let tf = validated.timeframe;
            if let Some(want) = wanted_tf {
                if want != tf {
                    return Err(fail(format!("{}: the bars are {tf}, but data.timeframe is {want}", path.display())));
                }
            }
            let findings: Vec<String> = report
                .checks
                .iter()
                .filter(|c| c.count > 0)
                .map(|c| {
                    let action = match &c.action {
                        Action::None | Action::Flagged => "flagged".to_string(),
                        Action::Repaired { rule } => format!("repaired: {rule}"),
                        Action::Fatal { .. } => "fatal".to_string(),
                    };
                    format!("{}: {} ({action})", c.kind.label(), c.count)
                })
                .collect();
            let bars = validated.bars;
            let summary = DataSummary {
                source: path.display().to_string(),
                symbol: report.symbol.to_string(),
                timeframe: tf.to_string(),
                calendar: report.calendar.name().to_string(),
                rows: bars.len(),
                first: report.first.clone().unwrap_or_default(),
                last: report.last.clone().unwrap_or_default(),
                quality_score: report.score,
                findings: findings.clone(),
                dataset_hash: content_hash(&bars),
            };
            Ok((bars, tf, report.calendar, summary, findings))
        }
        None => {
            let symbol = symbol.ok_or_else(|| fail("give data.file or data.symbol".into()))?;
            let tf = wanted_tf.ok_or_else(|| fail("data.timeframe is needed for a stored series".into()))?;
            let store = BarStore::open(home).map_err(|e| fail(e.to_string()))?;
            let (meta, bars) = store.load(&symbol, tf).map_err(|e| fail(e.to_string()))?;
            let calendar = calendar.unwrap_or(meta.calendar);
            let summary = DataSummary {
                source: format!("bar store {} ({symbol} {tf})", home.display()),
                symbol: symbol.to_string(),
                timeframe: tf.to_string(),
                calendar: calendar.name().to_string(),
                rows: bars.len(),
                first: meta.first.clone().unwrap_or_default(),
                last: meta.last.clone().unwrap_or_default(),
                quality_score: meta.quality_score,
                findings: Vec::new(),
                dataset_hash: meta.content_hash.clone(),
            };
            Ok((bars, tf, calendar, summary, Vec::new()))
        }
    }
}

/// Cross-validates, trains the final model, backtests and scores every configured model.
pub fn evaluate(
    loaded: &LoadedConfig,
    prepared: &Prepared,
    options: &RunOptions,
    observer: &dyn Observer,
) -> Result<Evaluated, PipelineError> {
    let config = &loaded.config;
    let mut stages = Vec::new();
    let steps = config.models.iter().map(|m| planned_fits(m, prepared.splits.len())).sum();
    let clock = StageClock::start("train", steps, observer);
    // LightGBM models one at a time, each with every core: two boosters training side by side in one
    // process crashed once in CI without a message (LightGBM sets OpenMP's thread count
    // process-wide). The other families train on one thread each, so they share the cores.
    let train = |i: usize| train_one(loaded, prepared, options, i, &config.models[i], observer);
    let (boosted, others): (Vec<usize>, Vec<usize>) =
        (0..config.models.len()).partition(|&i| config.models[i].spec.uses_lightgbm());
    let mut trained: Vec<Option<TrainedModel>> = (0..config.models.len()).map(|_| None).collect();
    for &i in &boosted {
        trained[i] = Some(train(i));
    }
    for (&i, outcome) in others.iter().zip(map_in_parallel(&others, workers_for(others.len()), |_, &i| train(i))) {
        trained[i] = Some(outcome);
    }
    let mut models = Vec::new();
    let mut warnings = Vec::new();
    for outcome in trained {
        let (model, model_warnings) = outcome.expect("every model was trained")?;
        models.push(model);
        warnings.extend(model_warnings);
    }
    let tested = models.first().map_or(0, |m| m.oos_rows);
    let searched: usize = models.iter().filter_map(|m| m.search.as_ref()).map(|s| s.trials.len()).sum();
    let search_note = match searched {
        0 => String::new(),
        n => format!(" ({n} parameter sets tried by searches)"),
    };
    stages.push(clock.finish(
        prepared.rows.len(),
        tested,
        format!(
            "{} models × {} folds{search_note}, then each refitted for registration",
            models.len(),
            prepared.splits.len()
        ),
        warnings,
    ));

    let clock = StageClock::start("backtest", 0, observer);
    let mut warnings = Vec::new();
    let ppy = periods_per_year(prepared.timeframe, prepared.calendar);
    for model in &mut models {
        match backtest(config, prepared, model.task, &model.target, &model.oos_index, &model.oos_predictions, ppy) {
            Ok(Some(bt)) => model.backtest = Some(bt),
            Ok(None) => warnings.push(format!(
                "{}: no trading rule for a {} model of {} (backtests need a binary classifier or a ret_* regressor)",
                model.name,
                task_name(model.task),
                model.target
            )),
            Err(e) => return Err(PipelineError::stage("backtest", format!("{}: {e}", model.name))),
        }
    }
    let backtested = models.iter().filter(|m| m.backtest.is_some()).count();
    let bars = models.iter().find_map(|m| m.backtest.as_ref()).map_or(0, |b| b.returns.len());
    stages.push(clock.finish(
        tested,
        bars,
        format!(
            "{backtested} of {} models over {bars} bars, fee {} bp + slippage {} bp per side",
            models.len(),
            config.backtest.fee_bps,
            config.backtest.slippage_bps
        ),
        warnings,
    ));

    let clock = StageClock::start("overfitting", 0, observer);
    let overfitting = overfitting(&mut models)?;
    stages.push(clock.finish(
        backtested,
        backtested,
        match &overfitting.pbo {
            Some(p) => {
                format!("deflated Sharpe over {} trials; PBO {:.3} over {} splits", overfitting.trials, p.pbo, p.splits)
            }
            None => format!("deflated Sharpe over {} trials", overfitting.trials),
        },
        overfitting.pbo_note.iter().cloned().collect(),
    ));
    Ok(Evaluated { models, overfitting, stages })
}

fn task_text<S: serde::Serializer>(task: &Task, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&task_name(*task))
}

/// One model's outcome and the warnings its training raised.
type TrainedModel = Result<(ModelOutcome, Vec<String>), PipelineError>;

pub(crate) fn task_name(task: Task) -> String {
    match task {
        Task::Binary => "binary".into(),
        Task::Multiclass { classes } => format!("multiclass:{classes}"),
        Task::Regression => "regression".into(),
        Task::Quantile { alpha } => format!("quantile:{alpha}"),
    }
}

/// Scores of predictions against encoded labels, and the headline metric's name (`quantpipe train`
/// scores its held-out rows with it too).
pub fn score(task: Task, y: &[f64], predictions: &[f64]) -> Result<(serde_json::Value, &'static str), String> {
    let scores = match task {
        Task::Binary => {
            serde_json::to_value(binary_scores(y, predictions, 0.5).map_err(|e| e.to_string())?).expect("serialises")
        }
        Task::Multiclass { classes } => {
            let predicted: Vec<f64> = predictions
                .chunks_exact(classes)
                .map(|p| (0..classes).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0) as f64)
                .collect();
            let confusion = confusion_matrix(y, &predicted, classes).map_err(|e| e.to_string())?;
            let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
            serde_json::json!({ "rows": y.len(), "accuracy": correct as f64 / y.len() as f64, "confusion": confusion })
        }
        Task::Regression | Task::Quantile { .. } => {
            serde_json::to_value(regression_scores(y, predictions).map_err(|e| e.to_string())?).expect("serialises")
        }
    };
    Ok((scores, headline_metric(task)))
}

/// One parameter set's cross-validation: each test fold predicted by a model fitted on that fold's
/// training rows, the folds put together.
struct CrossValidated {
    ic_by_date: Vec<(i64, f64, f64)>,
    folds: Vec<FoldOutcome>,
    headline_metric: &'static str,
    oos_index: Vec<usize>,
    oos_predictions: Vec<f64>,
    oos_labels: Vec<f64>,
    oos_scores: serde_json::Value,
}

/// One model's dataset view (encoded labels, class values), shared by every parameter set tried on it.
struct Trainer<'a> {
    prepared: &'a Prepared,
    config: &'a ModelConfig,
    index: usize,
    task: Task,
    target: String,
    classes: Option<Vec<f64>>,
    /// Encoded labels per dataset row (class index for classifiers).
    y: Vec<f64>,
}

impl<'a> Trainer<'a> {
    fn new(prepared: &'a Prepared, config: &'a ModelConfig, index: usize) -> Result<Trainer<'a>, PipelineError> {
        let fail = |e: String| PipelineError::stage("train", format!("models[{index}] ({}): {e}", config.name));
        let task = config.spec.task().map_err(|e| fail(e.to_string()))?;
        let labels = &prepared.labels;
        let target = config.target.clone().unwrap_or_else(|| labels.target.clone());
        let y_all = labels.column(&target).expect("checked in the dataset stage");
        let raw: Vec<f64> = prepared.rows.iter().map(|&k| y_all[k]).collect();
        let classes: Option<Vec<f64>> = task.is_classification().then(|| {
            let mut v = raw.clone();
            v.sort_by(f64::total_cmp);
            v.dedup();
            v
        });
        if let Some(values) = &classes {
            if values.len() != task.outputs().max(2) {
                return Err(fail(format!(
                    "target {target} has {} distinct values ({values:?}) but the model expects {} classes",
                    values.len(),
                    task.outputs().max(2)
                )));
            }
        }
        let y: Vec<f64> = match &classes {
            Some(values) => {
                raw.iter().map(|v| values.iter().position(|c| c == v).expect("a seen value") as f64).collect()
            }
            None => raw,
        };
        Ok(Trainer { prepared, config, index, task, target, classes, y })
    }

    fn fail(&self, e: impl std::fmt::Display) -> PipelineError {
        PipelineError::stage("train", format!("models[{}] ({}): {e}", self.index, self.config.name))
    }

    fn fit_rows(&self, spec: &ModelSpec, rows: &[usize]) -> Result<Box<dyn Model>, PipelineError> {
        let p = self.prepared;
        let features = p.inputs(rows, spec.window());
        let names = p.input_names(spec.window());
        let labels: Vec<f64> = rows.iter().map(|&i| self.y[i]).collect();
        let start: Vec<i64> = rows.iter().map(|&i| p.start[i]).collect();
        let end: Vec<i64> = rows.iter().map(|&i| p.end[i]).collect();
        let data = Dataset {
            features: &features,
            feature_names: &names,
            labels: &labels,
            weights: None,
            label_windows: Some((&start, &end)),
        };
        fit(spec, self.config.preprocess.as_ref(), &data).map_err(|e| self.fail(e))
    }

    /// Fits `spec` on each split's training rows and predicts its test rows; `progress` hears of
    /// each fold before it starts.
    fn cross_validate(&self, spec: &ModelSpec, progress: &dyn Fn(usize)) -> Result<CrossValidated, PipelineError> {
        let p = self.prepared;
        let outputs = self.task.outputs();
        let mut oos: Vec<Option<Vec<f64>>> = vec![None; p.rows.len()];
        let mut folds = Vec::new();
        let mut headline_metric = "";
        for (f, split) in p.splits.iter().enumerate() {
            progress(f);
            let train: Vec<usize> = split.train_indices().collect();
            let test: Vec<usize> = split.test_indices().collect();
            let model = self.fit_rows(spec, &train)?;
            let predictions = model.predict(&p.inputs(&test, spec.window())).map_err(|e| self.fail(e))?;
            let y_test: Vec<f64> = test.iter().map(|&i| self.y[i]).collect();
            let (mut scores, metric) =
                score(self.task, &y_test, &predictions).map_err(|e| self.fail(format!("fold {f}: {e}")))?;
            headline_metric = metric;
            if let Some(dated) = self.dated(&test, &predictions)? {
                add_dated_scores(&mut scores, &dated);
                headline_metric = "date_rank_ic";
            }
            for (j, &i) in test.iter().enumerate() {
                if oos[i].is_some() {
                    return Err(self
                        .fail(format!("row {i} is tested by two folds; the run needs each row tested at most once")));
                }
                oos[i] = Some(predictions[j * outputs..(j + 1) * outputs].to_vec());
            }
            folds.push(FoldOutcome {
                fold: f,
                train_rows: train.len(),
                test_rows: test.len(),
                purged: split.purged,
                embargoed: split.embargoed,
                test_first: format_iso(p.start[test[0]]),
                test_last: format_iso(p.start[*test.last().expect("non-empty")]),
                score: scores.get(headline_metric).and_then(|v| v.as_f64()).unwrap_or(f64::NAN),
            });
        }
        let oos_index: Vec<usize> = (0..oos.len()).filter(|&i| oos[i].is_some()).collect();
        let oos_predictions: Vec<f64> = oos_index.iter().flat_map(|&i| oos[i].clone().expect("present")).collect();
        let oos_labels: Vec<f64> = oos_index.iter().map(|&i| self.y[i]).collect();
        let (mut oos_scores, _) =
            score(self.task, &oos_labels, &oos_predictions).map_err(|e| self.fail(format!("out of sample: {e}")))?;
        let ic_by_date = match self.dated(&oos_index, &oos_predictions)? {
            Some(dated) => {
                add_dated_scores(&mut oos_scores, &dated);
                dated.per_date
            }
            None => Vec::new(),
        };
        Ok(CrossValidated { ic_by_date, folds, headline_metric, oos_index, oos_predictions, oos_labels, oos_scores })
    }

    /// Cross-sectional runs, single-output models: the IC and rank IC of each date's predictions
    /// against the raw (not made relative) target of dataset rows `rows`.
    fn dated(&self, rows: &[usize], predictions: &[f64]) -> Result<Option<DatedIc>, PipelineError> {
        let Some(panel) = &self.prepared.panel else { return Ok(None) };
        if self.task.outputs() != 1 {
            return Ok(None);
        }
        let raw = &panel.raw_targets[&self.target];
        let dates: Vec<i64> = rows.iter().map(|&i| self.prepared.start[i]).collect();
        let y: Vec<f64> = rows.iter().map(|&i| raw[i]).collect();
        ic_by_date(&dates, &y, predictions, panel.config.min_symbols).map(Some).map_err(|e| self.fail(e))
    }
}

/// The per-date scores of a cross-sectional run, beside the pooled ones.
fn add_dated_scores(scores: &mut serde_json::Value, dated: &DatedIc) {
    if let Some(map) = scores.as_object_mut() {
        for (key, value) in [
            ("date_ic", dated.mean_ic),
            ("date_rank_ic", dated.mean_rank_ic),
            ("date_ic_ir", dated.ic_ir),
            ("date_rank_ic_ir", dated.rank_ic_ir),
        ] {
            map.insert(key.into(), serde_json::json!(value));
        }
        map.insert("dates".into(), serde_json::json!(dated.dates));
    }
}

/// The headline score of a task (what a search maximises unless told otherwise).
fn headline_metric(task: Task) -> &'static str {
    match task {
        Task::Binary => "roc_auc",
        Task::Multiclass { .. } => "accuracy",
        Task::Regression | Task::Quantile { .. } => "ic",
    }
}

/// Whether a larger `metric` is better for a model of `task`; the error lists the metrics there are.
pub fn selection_direction(task: Task, metric: &str) -> Result<bool, String> {
    let (higher, lower): (&[&str], &[&str]) = match task {
        Task::Binary => (
            &["roc_auc", "accuracy", "precision", "recall", "f1", "sharpe", "date_ic", "date_rank_ic"],
            &["log_loss", "brier"],
        ),
        Task::Multiclass { .. } => (&["accuracy"], &[]),
        Task::Regression | Task::Quantile { .. } => {
            (&["ic", "rank_ic", "r2", "sharpe", "date_ic", "date_rank_ic"], &["rmse", "mae"])
        }
    };
    if higher.contains(&metric) {
        Ok(true)
    } else if lower.contains(&metric) {
        Ok(false)
    } else {
        let known: Vec<&str> = higher.iter().chain(lower).copied().collect();
        Err(format!("{metric:?} is not a score of a {} model; expected one of {}", task_name(task), known.join(", ")))
    }
}

/// One parameter set a search tried, and how its cross-validation scored.
#[derive(Debug, Clone, Serialize)]
pub struct TrialOutcome {
    /// 1-based, in the order the search proposed it.
    pub trial: usize,
    /// The searched parameters' values (the rest are the model table's).
    pub params: BTreeMap<String, serde_json::Value>,
    /// The selection metric over every out-of-sample row.
    pub score: f64,
    /// The headline metric per fold.
    pub fold_scores: Vec<f64>,
    /// Annualised Sharpe of this trial's out-of-sample backtest, when the model has a trading rule.
    pub sharpe: Option<f64>,
    pub seconds: f64,
    /// Per-bar backtest returns, for the deflated Sharpe ratio and PBO.
    #[serde(skip)]
    pub returns: Option<Vec<f64>>,
}

/// A model's parameter search: every trial, and which one was kept.
#[derive(Debug, Clone, Serialize)]
pub struct SearchOutcome {
    pub method: SearchMethod,
    pub metric: String,
    pub higher_is_better: bool,
    /// The kept trial's number.
    pub chosen: usize,
    pub trials: Vec<TrialOutcome>,
}

/// How many fits training `m` takes: every trial on every split, then the final fit (also the
/// number of `Observer::step` calls it makes).
pub fn planned_fits(m: &ModelConfig, splits: usize) -> u64 {
    let trials = m.search.as_ref().and_then(|s| s.candidates(&m.spec).ok()).map_or(1, |c| c.len().max(1));
    (trials * splits + 1) as u64
}

fn train_one(
    loaded: &LoadedConfig,
    prepared: &Prepared,
    options: &RunOptions,
    index: usize,
    m: &ModelConfig,
    observer: &dyn Observer,
) -> TrainedModel {
    let mut warnings = Vec::new();
    let trainer = Trainer::new(prepared, m, index)?;
    let task = trainer.task;
    let d = prepared.width();
    let outputs = task.outputs();
    let splits = prepared.splits.len();
    let started = Instant::now();
    let (spec, cv, search) = match &m.search {
        None => {
            let progress = |f: usize| observer.step("train", &format!("{} fold {}/{splits}", m.name, f + 1));
            (m.spec.clone(), trainer.cross_validate(&m.spec, &progress)?, None)
        }
        Some(search) => {
            let (chosen, cv, outcome) = run_search(loaded, prepared, &trainer, search, observer)?;
            (chosen, cv, Some(outcome))
        }
    };
    let CrossValidated { ic_by_date, folds, headline_metric, oos_index, oos_predictions, oos_labels, oos_scores } = cv;
    let calibration = (task == Task::Binary)
        .then(|| calibration_table(&oos_labels, &oos_predictions, 10))
        .transpose()
        .map_err(|e| trainer.fail(e))?;
    let confusion = match task {
        Task::Binary => {
            let predicted: Vec<f64> = oos_predictions.iter().map(|&p| f64::from(u8::from(p > 0.5))).collect();
            Some(confusion_matrix(&oos_labels, &predicted, 2).map_err(|e| trainer.fail(e))?)
        }
        Task::Multiclass { .. } => serde_json::from_value(oos_scores["confusion"].clone()).ok(),
        _ => None,
    };

    // The model to register: trained on every dataset row (or the last training window of a rolling
    // walk-forward), so it has seen the most recent data.
    observer.step("train", &format!("{} final fit", m.name));
    let validation = &loaded.config.validation;
    let final_rows: Vec<usize> = match validation.scheme {
        crate::config::SchemeKind::WalkForward if validation.train_window != "expanding" => {
            let window = quantpipe_labels::Horizon::parse(&validation.train_window)
                .map_err(|e| trainer.fail(format!("validation.train_window: {e}")))?
                .max_millis(prepared.timeframe);
            let last = *prepared.start.last().expect("rows");
            (0..prepared.rows.len()).filter(|&i| prepared.start[i] > last - window).collect()
        }
        _ => (0..prepared.rows.len()).collect(),
    };
    let model = trainer.fit_rows(&spec, &final_rows)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let artifact = options.out_dir.join("models").join(&m.name);
    model.save(&artifact).map_err(|e| trainer.fail(e))?;

    let mut importance = model.feature_importance().unwrap_or_default();
    importance.sort_by(|a, b| b.gain.total_cmp(&a.gain));
    importance.truncate(30);
    let (shap, shap_rows) = match shap_summary(model.as_ref(), prepared, spec.window(), &oos_index, 300) {
        Ok(s) => s,
        Err(e) => {
            warnings.push(format!("{}: no SHAP summary: {e}", m.name));
            (Vec::new(), 0)
        }
    };
    let labels = &prepared.labels;
    let Trainer { target, classes, .. } = trainer;
    let train_json = serde_json::json!({
        "data": prepared.data.source,
        "feature_set": prepared.feature_set.name,
        "feature_set_hash": prepared.feature_set.hash(),
        "features": d,
        "window": spec.window(),
        "dataset_hash": prepared.data.dataset_hash,
        "label": serde_json::to_value(&loaded.config.label).expect("serialises"),
        "label_lookahead": labels.lookahead.name(),
        "target": target,
        "classes": classes,
        "train_rows": final_rows.len(),
        "test_rows": oos_index.len(),
        "test_scores": oos_scores,
        "validation": scheme_name(loaded.config.validation.scheme),
        "folds": folds.len(),
        "preprocess": m.preprocess,
        "search": search.as_ref().map(|s| serde_json::json!({
            "method": s.method, "metric": s.metric, "trials": s.trials.len(), "chosen": s.chosen,
        })),
        "pipeline": loaded.config.name,
        "pipeline_hash": loaded.hash,
        "code_version": options.code_version,
    });
    let path = artifact.join("train.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&train_json).expect("serialises"))
        .map_err(|e| PipelineError::io(&path, e))?;

    let outcome = ModelOutcome {
        name: m.name.clone(),
        family: model.family().to_string(),
        task,
        target,
        classes,
        params: serde_json::to_value(&spec).expect("serialises"),
        folds,
        headline_metric: headline_metric.to_string(),
        oos_scores,
        oos_rows: oos_index.len(),
        calibration,
        confusion,
        importance,
        shap,
        shap_rows,
        backtest: None,
        sharpe_statistics: None,
        search,
        inputs: model.feature_names().to_vec(),
        ic_by_date,
        final_train_rows: final_rows.len(),
        train_seconds,
        artifact,
        oos_index,
        oos_predictions,
        oos_labels,
        outputs,
    };
    Ok((outcome, warnings))
}

/// Cross-validates every candidate of `search` and keeps the best by its metric (ties go to the
/// earlier trial). LightGBM trials run one after another, each with every core (two boosters side
/// by side in one process share OpenMP's process-wide settings); other families, which train on one
/// thread, run a trial per core.
fn run_search(
    loaded: &LoadedConfig,
    prepared: &Prepared,
    trainer: &Trainer,
    search: &SearchSpec,
    observer: &dyn Observer,
) -> Result<(ModelSpec, CrossValidated, SearchOutcome), PipelineError> {
    let m = trainer.config;
    let candidates = search.candidates(&m.spec).map_err(|e| trainer.fail(e))?;
    let metric = search.metric.clone().unwrap_or_else(|| headline_metric(trainer.task).to_string());
    let higher_is_better = selection_direction(trainer.task, &metric).map_err(|e| trainer.fail(e))?;
    let ppy = periods_per_year(prepared.timeframe, prepared.calendar);
    let splits = prepared.splits.len();
    let total = candidates.len();

    let run_trial = |k: usize, candidate: &Candidate| -> Result<(TrialOutcome, CrossValidated), PipelineError> {
        let started = Instant::now();
        let progress =
            |f: usize| observer.step("train", &format!("{} trial {}/{total} fold {}/{splits}", m.name, k + 1, f + 1));
        let cv = trainer.cross_validate(&candidate.spec, &progress)?;
        let bt =
            backtest(&loaded.config, prepared, trainer.task, &trainer.target, &cv.oos_index, &cv.oos_predictions, ppy)
                .map_err(|e| trainer.fail(format!("trial {}: backtest: {e}", k + 1)))?;
        let sharpe = bt.as_ref().map(|b| b.strategy.sharpe);
        let score = if metric == "sharpe" {
            sharpe.ok_or_else(|| {
                trainer.fail(format!(
                    "search.metric = \"sharpe\" needs a backtest, and a {} model of {} has no trading rule",
                    task_name(trainer.task),
                    trainer.target
                ))
            })?
        } else {
            cv.oos_scores.get(&metric).and_then(|v| v.as_f64()).unwrap_or(f64::NAN)
        };
        let trial = TrialOutcome {
            trial: k + 1,
            params: candidate.params.clone(),
            score,
            fold_scores: cv.folds.iter().map(|f| f.score).collect(),
            sharpe,
            seconds: started.elapsed().as_secs_f64(),
            returns: bt.map(|b| b.returns),
        };
        Ok((trial, cv))
    };

    let workers = if m.spec.uses_lightgbm() { 1 } else { workers_for(total) };
    let results = map_in_parallel(&candidates, workers, |k, candidate| run_trial(k, candidate));

    let better = |a: f64, b: f64| !a.is_nan() && (b.is_nan() || if higher_is_better { a > b } else { a < b });
    let mut trials: Vec<TrialOutcome> = Vec::with_capacity(total);
    let mut best: Option<(usize, CrossValidated)> = None;
    for (k, result) in results.into_iter().enumerate() {
        let (trial, cv) = result?;
        if best.as_ref().is_none_or(|(b, _)| better(trial.score, trials[*b].score)) {
            best = Some((k, cv));
        }
        trials.push(trial);
    }
    let (chosen, cv) = best.expect("a search has at least one candidate");
    let spec = candidates.into_iter().nth(chosen).expect("chosen is a candidate").spec;
    Ok((spec, cv, SearchOutcome { method: search.method, metric, higher_is_better, chosen: chosen + 1, trials }))
}

/// Mean |contribution| per model input over the last `limit` out-of-sample rows (single-output models).
fn shap_summary(
    model: &dyn Model,
    prepared: &Prepared,
    window: usize,
    oos: &[usize],
    limit: usize,
) -> Result<(Vec<(String, f64)>, usize), String> {
    let d = model.feature_names().len();
    let rows = &oos[oos.len().saturating_sub(limit)..];
    let mut total = vec![0.0; d];
    for &i in rows {
        let contributions = model.explain(&prepared.inputs(&[i], window)).map_err(|e| e.to_string())?;
        if contributions.len() != d + 1 {
            return Err(format!(
                "{} contributions for {d} features (multi-output models are not summarised)",
                contributions.len()
            ));
        }
        for (t, c) in total.iter_mut().zip(&contributions) {
            *t += c.abs();
        }
    }
    let mut summary: Vec<(String, f64)> =
        model.feature_names().iter().cloned().zip(total.into_iter().map(|t| t / rows.len().max(1) as f64)).collect();
    summary.sort_by(|a, b| b.1.total_cmp(&a.1));
    summary.truncate(30);
    Ok((summary, rows.len()))
}

/// Positions from out-of-sample predictions, held from each predicted bar's close; bars between the
/// first and last prediction without one are flat.
fn backtest(
    config: &crate::config::PipelineConfig,
    prepared: &Prepared,
    task: Task,
    target: &str,
    oos_index: &[usize],
    predictions: &[f64],
    ppy: f64,
) -> Result<Option<BacktestOutcome>, String> {
    if let Some(panel) = &prepared.panel {
        return panel_backtest(config, prepared, panel, task, oos_index, predictions, ppy);
    }
    let rule = config.backtest.rule();
    let is_binary = task == Task::Binary;
    let is_return = !task.is_classification() && target.starts_with("ret_");
    // A label that proposes a trade side (sigma reversion, a primary model's meta-label): the model
    // is a gate that lets the proposed trade through or not.
    let sides = prepared.labels.column("side").filter(|_| is_binary && matches!(target, "reverts" | "meta"));
    if !(is_binary || is_return) || oos_index.is_empty() {
        return Ok(None);
    }
    let first_bar = prepared.bar(oos_index[0]);
    let last_bar = prepared.bar(*oos_index.last().expect("non-empty"));
    let mut positions = vec![0.0; last_bar - first_bar + 1];
    let (mut offered, mut approved) = (0usize, 0usize);
    for (j, &i) in oos_index.iter().enumerate() {
        let p = predictions[j];
        positions[prepared.bar(i) - first_bar] = match sides {
            Some(sides) => {
                let side = sides[prepared.rows[i]];
                if side.is_finite() && side != 0.0 {
                    offered += 1;
                    let take = rule.position(p) > 0.0;
                    approved += usize::from(take);
                    if take {
                        side.signum()
                    } else {
                        0.0
                    }
                } else {
                    0.0
                }
            }
            None if is_binary => rule.position(p),
            None if p > 0.0 => 1.0,
            None if p < 0.0 && rule.short_below.is_some() => -1.0,
            None => 0.0,
        };
    }
    let close = &prepared.bars.close[first_bar..=last_bar];
    let costs = config.backtest.costs();
    let run = simulate(close, &positions, costs).map_err(|e| e.to_string())?;
    let hold = simulate(close, &vec![1.0; close.len()], costs).map_err(|e| e.to_string())?;
    let rule_text = if sides.is_some() {
        format!("take the label's proposed side when P({target}) > {}, else flat", rule.long_above)
    } else if is_binary {
        match rule.short_below {
            Some(s) => format!("long when P(up) > {}, short when P(up) < {s}", rule.long_above),
            None => format!("long when P(up) > {}, else flat", rule.long_above),
        }
    } else if rule.short_below.is_some() {
        "long when the predicted return > 0, short when < 0".into()
    } else {
        "long when the predicted return > 0, else flat".into()
    };
    let mut strategy = run.performance(ppy);
    if sides.is_some() {
        strategy.approval_rate = (offered > 0).then(|| approved as f64 / offered as f64);
    }
    Ok(Some(BacktestOutcome {
        rule: rule_text,
        strategy,
        buy_and_hold: hold.performance(ppy),
        ts: prepared.bars.ts[first_bar..=last_bar].to_vec(),
        equity: run.equity,
        hold_equity: hold.equity,
        positions,
        returns: run.returns,
        first_bar,
        rows: None,
    }))
}

/// A cross-sectional run's backtest: each rebalance date's predictions ranked across the symbols,
/// long the top `cross_section.quantile`, short the bottom, against the equal-weight portfolio.
fn panel_backtest(
    config: &crate::config::PipelineConfig,
    prepared: &Prepared,
    panel: &Panel,
    task: Task,
    oos_index: &[usize],
    predictions: &[f64],
    ppy: f64,
) -> Result<Option<BacktestOutcome>, String> {
    if task.outputs() != 1 || oos_index.is_empty() {
        return Ok(None);
    }
    let scored: Vec<Scored> = oos_index
        .iter()
        .zip(predictions)
        .map(|(&i, &prediction)| Scored {
            symbol: panel.symbol_of(prepared.bar(i)),
            date: prepared.start[i],
            prediction,
        })
        .collect();
    let cs = &panel.config;
    let step = prepared.timeframe.millis().max(1);
    let rebalance = cs
        .rebalance
        .unwrap_or_else(|| (prepared.labels.lookahead.max_millis(prepared.timeframe) / step).max(1) as usize);
    let costs = config.backtest.costs();
    let ls = long_short(
        &prepared.bars,
        panel,
        &scored,
        cs.quantile,
        rebalance,
        cs.min_symbols,
        costs.fee_bps + costs.slippage_bps,
        ppy,
    )?;
    let share = cs.quantile * 100.0;
    Ok(Some(BacktestOutcome {
        rule: format!(
            "every {rebalance} bars ({} rebalances): long the top {share} %, short the bottom {share} % of the \
             date's predictions, equal weights (dollar-neutral, gross 2); benchmark: every predicted symbol, equal weights",
            ls.rebalances
        ),
        strategy: ls.strategy,
        buy_and_hold: ls.benchmark,
        ts: ls.dates,
        equity: ls.equity,
        hold_equity: ls.benchmark_equity,
        positions: ls.net_exposure,
        returns: ls.returns,
        first_bar: 0,
        rows: Some(ls.rows),
    }))
}

/// The deflated Sharpe ratio of every backtest and the probability of backtest overfitting, counting
/// as trials every backtested model and every parameter set a search backtested on the way.
fn overfitting(models: &mut [ModelOutcome]) -> Result<Overfitting, PipelineError> {
    let per_bar_sharpe = |r: &[f64]| {
        let sd = std_dev(r);
        if sd > 0.0 {
            mean(r) / sd
        } else {
            0.0
        }
    };
    // A searched model's own backtest is its chosen trial's: counted once, among the trials.
    let trial_returns: Vec<Vec<f64>> = models
        .iter()
        .flat_map(|m| match &m.search {
            Some(search) => search.trials.iter().filter_map(|t| t.returns.clone()).collect::<Vec<_>>(),
            None => m.backtest.iter().map(|b| b.returns.clone()).collect(),
        })
        .collect();
    let trial_sharpes: Vec<f64> = trial_returns.iter().map(|r| per_bar_sharpe(r)).collect();
    for m in models.iter_mut() {
        if let Some(b) = &m.backtest {
            if std_dev(&b.returns) > 0.0 {
                m.sharpe_statistics = Some(
                    sharpe_statistics(&b.returns, &trial_sharpes)
                        .map_err(|e| PipelineError::stage("overfitting", e))?,
                );
            }
        }
    }
    let (pbo, pbo_note) = if trial_returns.len() < 2 {
        (None, Some("PBO needs at least two backtested trials; this run has fewer".to_string()))
    } else {
        let bars = trial_returns[0].len();
        let blocks = (2..=10).rev().step_by(2).find(|&b| bars >= 2 * b).unwrap_or(2);
        match probability_of_backtest_overfitting(&trial_returns, blocks) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(format!("no PBO: {e}"))),
        }
    };
    Ok(Overfitting { trials: trial_sharpes.len(), pbo, pbo_note })
}
