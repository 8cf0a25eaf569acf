//! The pipeline file: one TOML document that says where the data is, which features and label to
//! compute, which models to train, how to validate and backtest them, and where the result goes in the
//! registry. Every table refuses unknown keys; errors name the key path and the line.

use std::path::{Path, PathBuf};

use quantpipe_core::{MarketCalendar, Timeframe};
use quantpipe_data::quality::ConflictRule;
use quantpipe_eval::backtest::{Costs, PositionRule};
use quantpipe_eval::split::Scheme;
use quantpipe_labels::{Horizon, LabelSpec};
use quantpipe_models::search::SearchSpec;
use quantpipe_models::{ModelError, ModelSpec};
use quantpipe_registry::{Gate, Stage};
use serde::{Deserialize, Serialize};

use quantpipe_core::preprocess::PreprocessSpec;

use crate::PipelineError;

/// A whole pipeline, as written in `pipeline.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Name of the pipeline: the run directory and the recorded run carry it.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub data: DataConfig,
    #[serde(default)]
    pub features: FeaturesConfig,
    /// The label (`kind = "horizon"`, …) as in `quantpipe labels`.
    pub label: LabelSpec,
    #[serde(default)]
    pub validation: ValidationConfig,
    /// One `[[models]]` table per model; each is trained, validated and registered under its name.
    pub models: Vec<ModelConfig>,
    #[serde(default)]
    pub backtest: BacktestConfig,
    /// `[cross_section]`: how a run over several symbols (`data.symbols`) makes its targets relative
    /// across symbols and trades its predictions (a long-short portfolio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_section: Option<CrossSectionConfig>,
    #[serde(default)]
    pub registry: RegistryConfig,
}

/// Where the bars come from: a file (read and validated on every run) or a series in the bar store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// CSV (plain or gzip), JSONL or Parquet bars. Relative paths are relative to the pipeline file;
    /// `${VAR}` and `${VAR:-default}` are replaced from the environment.
    pub file: Option<String>,
    /// With `file`: the symbol to keep from a multi-symbol file. Without: the stored series to use.
    pub symbol: Option<String>,
    /// A cross-sectional run over several symbols: `"all"` (every symbol of the file, or every stored
    /// series of `timeframe`) or a list. Each symbol gets the same features and label; the dataset
    /// holds a row per symbol and date.
    pub symbols: Option<Universe>,
    /// With `symbols`: symbols with fewer bars than this (after `start`/`end`) are left out, with a
    /// warning (default 250).
    pub min_bars: Option<usize>,
    /// Repair what the data layer's rules can repair, as `quantpipe ingest --repair` does: sort rows,
    /// drop exact duplicates and, with `on_conflict`, resolve conflicting ones.
    #[serde(default)]
    pub repair: bool,
    /// With `repair`: `keep-first`, `keep-last` or `drop` for rows sharing a timestamp with
    /// different values.
    pub on_conflict: Option<ConflictRule>,
    /// The bar timeframe (`1m`, `1h`, …): required for a stored series, checked against a file's.
    pub timeframe: Option<String>,
    /// `crypto`, `fx` or `equity`: the trading calendar for gaps and annualisation (default: inferred).
    pub calendar: Option<String>,
    /// Use only bars opening at or after this UTC time (`2023-10-01` or `2023-10-01T12:00`).
    pub start: Option<String>,
    /// Use only bars opening before this UTC time.
    pub end: Option<String>,
}

/// `data.symbols`: every symbol there is, or the listed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Universe {
    All,
    List(Vec<String>),
}

impl Serialize for Universe {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Universe::All => serializer.serialize_str("all"),
            Universe::List(symbols) => symbols.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Universe {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Universe;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"all\" or a list of symbols such as [\"AAPL\", \"MSFT\"]")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Universe, E> {
                match v {
                    "all" => Ok(Universe::All),
                    other => Err(E::custom(format!(
                        "{other:?}: expected \"all\" or a list of symbols such as [\"AAPL\", \"MSFT\"]"
                    ))),
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Universe, A::Error> {
                let mut symbols = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    symbols.push(s);
                }
                Ok(Universe::List(symbols))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// `[cross_section]`: targets relative across symbols, and the long-short backtest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossSectionConfig {
    /// How each date's targets are made relative across the symbols before training: `rank` (0 for
    /// the lowest to 1 for the highest, the default), `demean` (minus the date's mean) or `none`.
    #[serde(default = "default_relative")]
    pub target: Relative,
    /// The backtest goes long the top `quantile` of each rebalance date's predictions and short the
    /// bottom `quantile`, equally weighted (default 0.1: deciles).
    #[serde(default = "default_quantile")]
    pub quantile: f64,
    /// Bars between rebalances (default: the label's look-ahead in bars).
    pub rebalance: Option<usize>,
    /// Dates with fewer symbols than this are neither traded nor scored (default 20).
    #[serde(default = "default_min_symbols")]
    pub min_symbols: usize,
    /// What the models see: each symbol's own features (`raw`, the default), or every feature
    /// replaced by its rank (0 to 1) or z-score across the symbols of the date (`rank`, `zscore`:
    /// inputs named `cs_rank(rsi_14)`, comparable across symbols whatever their price level).
    #[serde(default = "default_scaling")]
    pub features: FeatureScaling,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureScaling {
    Raw,
    Rank,
    Zscore,
}

fn default_scaling() -> FeatureScaling {
    FeatureScaling::Raw
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relative {
    Rank,
    Demean,
    None,
}

fn default_relative() -> Relative {
    Relative::Rank
}
fn default_quantile() -> f64 {
    0.1
}
fn default_min_symbols() -> usize {
    20
}

impl Default for CrossSectionConfig {
    fn default() -> Self {
        CrossSectionConfig {
            target: default_relative(),
            quantile: default_quantile(),
            rebalance: None,
            min_symbols: default_min_symbols(),
            features: default_scaling(),
        }
    }
}

/// Bars a cross-sectional run needs of a symbol unless `data.min_bars` says otherwise.
pub const DEFAULT_MIN_BARS: usize = 250;

/// `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM[:SS]`, as UTC milliseconds.
pub fn parse_utc(raw: &str) -> Result<i64, String> {
    let bad = || format!("{raw:?}: expected a UTC time such as 2023-10-01 or 2023-10-01T12:30");
    let (date, time) = match raw.trim().split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (raw.trim(), None),
    };
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts[..] else { return Err(bad()) };
    let (y, m, d): (i64, u32, u32) =
        (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    if !(1..=12).contains(&m) || d == 0 || d > quantpipe_core::time::days_in_month(y, m) {
        return Err(bad());
    }
    let mut ms = quantpipe_core::time::days_from_civil(y, m, d) * 86_400_000;
    if let Some(t) = time {
        let fields: Vec<u32> =
            t.trim_end_matches('Z').split(':').map(|f| f.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
        let (h, mi, s) = match fields[..] {
            [h, mi] => (h, mi, 0),
            [h, mi, s] => (h, mi, s),
            _ => return Err(bad()),
        };
        if h > 23 || mi > 59 || s > 59 {
            return Err(bad());
        }
        ms += (h as i64 * 3600 + mi as i64 * 60 + s as i64) * 1000;
    }
    Ok(ms)
}

/// A table cell's time, for ordering rows: an epoch number (in any unit, returned as written) or an
/// ISO-8601 UTC time as UTC milliseconds (fractions of a second and a trailing `Z` allowed).
pub fn parse_time_cell(text: &str) -> Option<i64> {
    if let Ok(v) = text.parse::<i64>() {
        return Some(v);
    }
    let whole = text.trim_end_matches('Z');
    let (whole, fraction) = whole.split_once('.').unwrap_or((whole, ""));
    let ms = parse_utc(whole).ok()?;
    let fraction: i64 = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    Some(ms + fraction)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeaturesConfig {
    /// `standard` or a feature-set TOML file (relative to the pipeline file).
    #[serde(default = "standard")]
    pub set: String,
}

impl Default for FeaturesConfig {
    fn default() -> Self {
        FeaturesConfig { set: standard() }
    }
}

fn standard() -> String {
    "standard".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemeKind {
    WalkForward,
    PurgedKfold,
    Holdout,
}

/// How out-of-sample predictions are made. Every labelled row is predicted at most once, by a model
/// that never trained on a row whose label window overlaps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    #[serde(default = "walk_forward")]
    pub scheme: SchemeKind,
    /// purged_kfold: number of folds.
    #[serde(default = "five")]
    pub folds: usize,
    /// purged_kfold: time left out after each test block (default: the label's look-ahead).
    pub embargo: Option<String>,
    /// walk_forward: length of each test window, e.g. `"30d"` or `500` bars (default: a fifth of the
    /// labelled span after the first training window, i.e. about five windows).
    pub test_window: Option<Horizon>,
    /// walk_forward: training window, or `"expanding"` (the default) for all rows before the test window.
    #[serde(default = "expanding")]
    pub train_window: String,
    /// walk_forward: fewest training rows before the first test window.
    #[serde(default = "default_min_train_rows")]
    pub min_train_rows: usize,
    /// holdout: the share of the time range tested (the gap before it is the label's look-ahead).
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        ValidationConfig {
            scheme: walk_forward(),
            folds: five(),
            embargo: None,
            test_window: None,
            train_window: expanding(),
            min_train_rows: default_min_train_rows(),
            test_fraction: default_test_fraction(),
        }
    }
}

fn walk_forward() -> SchemeKind {
    SchemeKind::WalkForward
}
fn five() -> usize {
    5
}
fn expanding() -> String {
    "expanding".into()
}
fn default_min_train_rows() -> usize {
    1000
}
fn default_test_fraction() -> f64 {
    0.2
}

impl ValidationConfig {
    /// The splitting scheme on bars of `timeframe`, for labels that look `lookahead_ms` ahead, over
    /// labelled rows spanning `span_ms`.
    pub fn scheme(&self, timeframe: Timeframe, lookahead_ms: i64, span_ms: i64) -> Result<Scheme, PipelineError> {
        let duration = |raw: &str, key: &str| -> Result<i64, PipelineError> {
            Horizon::parse(raw)
                .map(|h| h.max_millis(timeframe))
                .map_err(|e| PipelineError::config(format!("validation.{key}"), e.to_string()))
        };
        Ok(match self.scheme {
            SchemeKind::PurgedKfold => Scheme::PurgedKfold {
                folds: self.folds,
                embargo_ms: match &self.embargo {
                    Some(e) => duration(e, "embargo")?,
                    None => lookahead_ms,
                },
            },
            SchemeKind::Holdout => Scheme::Holdout { test_fraction: self.test_fraction, gap_ms: lookahead_ms },
            SchemeKind::WalkForward => {
                let train_ms = if self.train_window == "expanding" {
                    None
                } else {
                    Some(duration(&self.train_window, "train_window")?)
                };
                let test_ms = match self.test_window {
                    Some(h) => h.max_millis(timeframe),
                    // About five test windows after the first training window.
                    None => {
                        let first_train = train_ms.unwrap_or(span_ms / 3);
                        ((span_ms - first_train) / 5).max(timeframe.millis())
                    }
                };
                Scheme::WalkForward { train_ms, test_ms, min_train_rows: self.min_train_rows }
            }
        })
    }
}

/// One model to train: a name in the registry, a family with its parameters, and optionally the label
/// column it learns and its preprocessing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The registered model name (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// The label column to learn (default: the label's own target, e.g. `dir_4h`).
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub preprocess: Option<PreprocessSpec>,
    /// `[models.search]`: several parameter sets, each scored by the run's cross-validation; the
    /// best is the one registered, and every one counts as a trial in the deflated Sharpe ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchSpec>,
    /// `kind = "lightgbm" | "logistic" | "linear" | "svm" | "mlp" | "lstm" | "ensemble"` and the family's parameters (docs/models.md); the
    /// family's parameter struct refuses unknown keys.
    #[serde(flatten)]
    pub spec: ModelSpec,
}

/// How predictions become positions, and what trading costs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BacktestConfig {
    /// Classifiers: long when the probability of the positive class exceeds this.
    #[serde(default = "default_long_above")]
    pub long_above: f64,
    /// Classifiers: short when it is below this (no shorts when absent). Return regressors: shorts are
    /// allowed only when this is set.
    #[serde(default)]
    pub short_below: Option<f64>,
    #[serde(default)]
    pub size_by_confidence: bool,
    /// Fee per side, basis points of traded value.
    #[serde(default)]
    pub fee_bps: f64,
    #[serde(default)]
    pub slippage_bps: f64,
}

fn default_long_above() -> f64 {
    0.55
}

impl Default for BacktestConfig {
    fn default() -> Self {
        BacktestConfig {
            long_above: default_long_above(),
            short_below: None,
            size_by_confidence: false,
            fee_bps: 0.0,
            slippage_bps: 0.0,
        }
    }
}

impl BacktestConfig {
    pub fn rule(&self) -> PositionRule {
        PositionRule {
            long_above: self.long_above,
            short_below: self.short_below,
            size_by_confidence: self.size_by_confidence,
        }
    }
    pub fn costs(&self) -> Costs {
        Costs { fee_bps: self.fee_bps, slippage_bps: self.slippage_bps }
    }
}

/// What happens in the registry at the end of a successful run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Register the trained models (default true).
    #[serde(default = "yes")]
    pub register: bool,
    /// The stage to reach: `draft`, `staging` or `production`. Production is reached only through the
    /// gate; a version that fails it stays in staging and the report says why.
    #[serde(default = "default_stage")]
    pub stage: Stage,
    /// The experiment the run is recorded in.
    #[serde(default = "default_experiment")]
    pub experiment: String,
    /// The promotion gate (`min`, `max`, `min_deflated_sharpe`, `min_oos_rows`).
    #[serde(default)]
    pub gate: Gate,
}

fn yes() -> bool {
    true
}
fn default_stage() -> Stage {
    Stage::Staging
}
fn default_experiment() -> String {
    "default".into()
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            register: true,
            stage: default_stage(),
            experiment: default_experiment(),
            gate: Gate::default(),
        }
    }
}

/// A parsed pipeline file and the directory its relative paths start from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: PipelineConfig,
    pub path: PathBuf,
    /// blake3 of the file's text: two runs of the same file share it.
    pub hash: String,
    pub text: String,
}

impl PipelineConfig {
    /// Parses and checks a pipeline file. Errors name the key path (`models[1].num_leaves`) and the line.
    pub fn load(path: &Path) -> Result<LoadedConfig, PipelineError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| PipelineError::Config { file: path.to_path_buf(), message: e.to_string() })?;
        let config = PipelineConfig::parse(&text)
            .map_err(|message| PipelineError::Config { file: path.to_path_buf(), message })?;
        config.check().map_err(|message| PipelineError::Config { file: path.to_path_buf(), message })?;
        Ok(LoadedConfig {
            hash: blake3::hash(text.as_bytes()).to_hex().to_string(),
            config,
            path: path.to_path_buf(),
            text,
        })
    }

    /// Parses TOML text; the error names the key path and, where TOML knows it, the line.
    pub fn parse(text: &str) -> Result<PipelineConfig, String> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| e.to_string())?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.span().map(|span| 1 + text[..span.start.min(text.len())].matches('\n').count());
            let message = inner.message().to_string();
            match (path.as_str(), line) {
                (".", Some(line)) => format!("line {line}: {message}"),
                (".", None) => message,
                (path, Some(line)) => format!("{path} (line {line}): {message}"),
                (path, None) => format!("{path}: {message}"),
            }
        })
    }

    /// Checks that need more than one key: names, thresholds, counts.
    pub fn check(&self) -> Result<(), String> {
        if self.models.is_empty() {
            return Err("models: at least one [[models]] table is needed".into());
        }
        for (i, m) in self.models.iter().enumerate() {
            quantpipe_registry::check_name(&m.name).map_err(|e| format!("models[{i}].name: {e}"))?;
            if self.models[..i].iter().any(|o| o.name == m.name) {
                return Err(format!("models[{i}].name: {:?} is used twice; model names must differ", m.name));
            }
            m.spec.task().map_err(|e| format!("models[{i}] ({}): {e}", m.name))?;
            if let Some(p) = &m.preprocess {
                p.validate().map_err(|e| format!("models[{i}].preprocess: {e}"))?;
            }
            if let Some(search) = &m.search {
                search.candidates(&m.spec).map_err(|e| match e {
                    ModelError::InvalidParams(message) => format!("models[{i}].{message}"),
                    other => format!("models[{i}].search: {other}"),
                })?;
                let task = m.spec.task().map_err(|e| e.to_string())?;
                if let Some(metric) = &search.metric {
                    crate::run::selection_direction(task, metric)
                        .map_err(|e| format!("models[{i}].search.metric: {e}"))?;
                    if metric.starts_with("date_") && self.data.symbols.is_none() {
                        return Err(format!(
                            "models[{i}].search.metric: {metric:?} is scored per date across symbols; it needs a \
                             cross-sectional run (data.symbols)"
                        ));
                    }
                }
            }
        }
        self.label.validate().map_err(|e| format!("label: {e}"))?;
        self.backtest.rule().validate().map_err(|e| format!("backtest: {e}"))?;
        if !(self.backtest.fee_bps >= 0.0 && self.backtest.slippage_bps >= 0.0) {
            return Err("backtest: fee_bps and slippage_bps must be ≥ 0".into());
        }
        let v = &self.validation;
        if v.scheme == SchemeKind::PurgedKfold && !(2..=50).contains(&v.folds) {
            return Err(format!("validation.folds = {}: expected 2 to 50", v.folds));
        }
        if v.scheme == SchemeKind::Holdout && !(v.test_fraction > 0.0 && v.test_fraction < 0.9) {
            return Err(format!("validation.test_fraction = {}: expected 0 < f < 0.9", v.test_fraction));
        }
        if let Some(tf) = &self.data.timeframe {
            Timeframe::parse(tf).map_err(|e| format!("data.timeframe: {e}"))?;
        }
        let start = self.data.start.as_deref().map(parse_utc).transpose().map_err(|e| format!("data.start: {e}"))?;
        let end = self.data.end.as_deref().map(parse_utc).transpose().map_err(|e| format!("data.end: {e}"))?;
        if let (Some(s), Some(e)) = (start, end) {
            if e <= s {
                return Err("data.end: must be after data.start".into());
            }
        }
        if let Some(c) = &self.data.calendar {
            MarketCalendar::parse(c).map_err(|e| format!("data.calendar: {e}"))?;
        }
        match (&self.data.file, &self.data.symbol, &self.data.symbols) {
            (_, Some(_), Some(_)) => {
                return Err("data: give `symbol` (one series) or `symbols` (a cross-sectional run), not both".into())
            }
            (None, None, None) => {
                return Err(
                    "data: give `file` (a bar file), `symbol` (a stored series) or `symbols` (stored series)".into()
                )
            }
            (None, _, _) if self.data.timeframe.is_none() => {
                return Err("data.timeframe: needed to read stored series (e.g. \"1m\")".into())
            }
            _ => {}
        }
        if let Some(Universe::List(symbols)) = &self.data.symbols {
            if symbols.len() < 2 {
                return Err("data.symbols: a cross-sectional run needs at least two symbols".into());
            }
            for (i, s) in symbols.iter().enumerate() {
                quantpipe_core::Symbol::new(s).map_err(|e| format!("data.symbols[{i}]: {e}"))?;
                if symbols[..i].contains(s) {
                    return Err(format!("data.symbols[{i}]: {s:?} is listed twice"));
                }
            }
        }
        if self.data.on_conflict.is_some() && !self.data.repair {
            return Err("data.on_conflict: applies only with data.repair = true".into());
        }
        if self.data.min_bars.is_some() && self.data.symbols.is_none() {
            return Err("data.min_bars: applies only to a cross-sectional run (data.symbols)".into());
        }
        match (&self.cross_section, &self.data.symbols) {
            (Some(_), None) => {
                return Err("cross_section: applies only to a run over several symbols; set data.symbols".into())
            }
            (Some(cs), Some(_)) => {
                if !(cs.quantile > 0.0 && cs.quantile <= 0.5) {
                    return Err(format!("cross_section.quantile = {}: expected 0 < q ≤ 0.5", cs.quantile));
                }
                if cs.rebalance == Some(0) {
                    return Err("cross_section.rebalance: expected at least 1 bar".into());
                }
                if cs.min_symbols < 2 {
                    return Err("cross_section.min_symbols: expected at least 2".into());
                }
            }
            _ => {}
        }
        if self.data.symbols.is_some() {
            let relative = self.cross_section.as_ref().map_or(default_relative(), |c| c.target);
            for (i, m) in self.models.iter().enumerate() {
                if m.spec.window() > 1 {
                    return Err(format!(
                        "models[{i}] ({}): sequence models (window > 1) are not supported in cross-sectional runs yet",
                        m.name
                    ));
                }
                let task = m.spec.task().map_err(|e| e.to_string())?;
                if relative != Relative::None && task.is_classification() {
                    return Err(format!(
                        "models[{i}] ({}): a classifier cannot learn a target made relative across symbols \
                         (cross_section.target = {relative:?}); use a regression objective, or \
                         cross_section.target = \"none\"",
                        m.name
                    ));
                }
            }
        }
        Ok(())
    }
}

impl LoadedConfig {
    /// A path from the config, with `${VAR}` / `${VAR:-default}` expanded, relative to the config's directory.
    pub fn resolve(&self, raw: &str) -> Result<PathBuf, PipelineError> {
        let expanded = expand_env(raw).map_err(|message| PipelineError::Config { file: self.path.clone(), message })?;
        let path = PathBuf::from(expanded);
        let joined = if path.is_absolute() { path } else { self.path.parent().unwrap_or(Path::new(".")).join(path) };
        // `examples/../data/x.csv` reads better as the real path in reports; a missing file keeps its
        // name so the error can say which one.
        Ok(joined.canonicalize().unwrap_or(joined))
    }
}

/// `${VAR}` and `${VAR:-default}`; an unset variable without a default is an error naming it.
fn expand_env(raw: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("{raw:?}: `${{` without a closing `}}`"))?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (std::env::var(name).ok().filter(|v| !v.is_empty()), default) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("{raw:?}: environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The commented example `quantpipe init` prints.
pub const EXAMPLE: &str = include_str!("../../../examples/quickstart.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_times_read_as_epochs_or_iso_utc() {
        assert_eq!(parse_time_cell("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_time_cell("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(parse_time_cell("2023-11-14 22:13:20"), Some(1_700_000_000_000));
        assert_eq!(parse_time_cell("2023-11-14T22:13:20.5Z"), Some(1_700_000_000_500));
        assert_eq!(parse_time_cell("2023-11-14T22:13:20.123456Z"), Some(1_700_000_000_123));
        assert_eq!(parse_time_cell("2023-11-14"), Some(1_699_920_000_000));
        assert_eq!(parse_time_cell("yesterday"), None);
        assert_eq!(parse_time_cell("2023-13-01"), None);
    }

    /// The first error that parsing or checking a config text reports, or "" when it passes.
    fn check(text: String) -> String {
        match PipelineConfig::parse(&text) {
            Ok(config) => config.check().err().unwrap_or_default(),
            Err(e) => e,
        }
    }

    #[test]
    fn the_example_parses_and_checks() {
        let config = PipelineConfig::parse(EXAMPLE).unwrap();
        config.check().unwrap();
        assert!(!config.models.is_empty());
    }

    #[test]
    fn unknown_keys_name_their_path_and_line() {
        let text = EXAMPLE.replace("[backtest]\n", "[backtest]\nfee_bsp = 3\n");
        let err = PipelineConfig::parse(&text).unwrap_err();
        assert!(err.contains("backtest.fee_bsp"), "{err}");
        let line = 1 + text[..text.find("fee_bsp").unwrap()].matches('\n').count();
        assert!(err.contains(&format!("line {line}")), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn unknown_model_parameters_name_the_model() {
        let text = EXAMPLE.replacen("num_leaves", "num_leafs", 1);
        let err = PipelineConfig::parse(&text).unwrap_err();
        assert!(err.contains("models[0]") && err.contains("num_leafs"), "{err}");
    }

    #[test]
    fn environment_variables_expand_with_defaults() {
        assert_eq!(expand_env("${QUANTPIPE_SURELY_UNSET:-../data}/x.csv").unwrap(), "../data/x.csv");
        assert!(expand_env("${QUANTPIPE_SURELY_UNSET}/x").unwrap_err().contains("QUANTPIPE_SURELY_UNSET"));
        assert!(expand_env("${OOPS").is_err());
    }

    #[test]
    fn utc_times_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_utc("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_utc("2023-10-01T12:30").unwrap(), 1_696_163_400_000);
        assert_eq!(parse_utc("2023-10-01 12:30:15Z").unwrap(), 1_696_163_415_000);
        for bad in ["2023-02-30", "2023-13-01", "yesterday", "2023-10-01T25:00", "2023-10"] {
            assert!(parse_utc(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn search_errors_name_the_model_and_key() {
        let with_search = |space: &str| {
            EXAMPLE.replacen(
                "[[models]]\nname = \"btc_direction_forest\"",
                &format!("[models.search]\n{space}\n\n[[models]]\nname = \"btc_direction_forest\""),
                1,
            )
        };
        let ok = with_search("method = \"grid\"\nspace = { num_leaves = [7, 15] }");
        assert_eq!(check(ok), "");
        let err = check(with_search("method = \"grid\"\nspace = { num_leafs = [7, 15] }"));
        assert!(err.contains("models[0].search") && err.contains("num_leafs"), "{err}");
        let err = check(with_search("method = \"grid\"\nspace = { num_leaves = { min = 4, max = 9 } }"));
        assert!(err.starts_with("models[0].search.space.num_leaves"), "{err}");
        let err = check(with_search("method = \"grid\"\nmetrc = \"f1\"\nspace = { num_leaves = [7] }"));
        assert!(err.contains("models[0].search.metrc") && err.contains("line"), "{err}");
        let err = check(with_search("method = \"grid\"\nmetric = \"rmse\"\nspace = { num_leaves = [7] }"));
        assert!(err.contains("models[0].search.metric") && err.contains("roc_auc"), "{err}");
    }

    #[test]
    fn cross_sectional_keys_are_checked_and_name_the_key() {
        let with_data =
            |extra: &str| EXAMPLE.replacen("calendar = \"crypto\"\n", &format!("calendar = \"crypto\"\n{extra}\n"), 1);
        let err = check(with_data("symbols = \"everything\""));
        assert!(err.contains("data.symbols") && err.contains("\"all\" or a list"), "{err}");
        let err = check(with_data("symbols = [\"AAPL\"]"));
        assert!(err.contains("at least two symbols"), "{err}");
        let err = check(with_data("symbols = [\"AAPL\", \"AAPL\"]"));
        assert!(err.contains("data.symbols[1]") && err.contains("twice"), "{err}");
        // The example's models are classifiers: a target ranked across symbols is not a class.
        let err = check(with_data("symbols = \"all\""));
        assert!(err.contains("models[0]") && err.contains("cross_section.target"), "{err}");
        let err = check(with_data("on_conflict = \"keep-first\""));
        assert!(err.starts_with("data.on_conflict") && err.contains("repair"), "{err}");
        let err = check(with_data("on_conflict = \"keep-middle\"\nrepair = true"));
        assert!(err.contains("data.on_conflict") && err.contains("keep-first"), "{err}");
        let err = check(format!("{EXAMPLE}\n[cross_section]\nquantile = 0.2\n"));
        assert!(err.starts_with("cross_section") && err.contains("data.symbols"), "{err}");
        let text = with_data("symbols = \"all\"").replace("objective = \"binary\"", "objective = \"regression\"");
        let err = check(format!("{text}\n[cross_section]\nquantile = 0.7\n"));
        assert!(err.starts_with("cross_section.quantile"), "{err}");
        let err = check(format!("{text}\n[cross_section]\nrank = true\n"));
        assert!(err.contains("cross_section.rank") && err.contains("unknown field"), "{err}");
    }

    #[test]
    fn cross_key_checks_name_the_key() {
        let mut config = PipelineConfig::parse(EXAMPLE).unwrap();
        config.models.push(config.models[0].clone());
        assert!(config.check().unwrap_err().contains("used twice"));
        let mut config = PipelineConfig::parse(EXAMPLE).unwrap();
        config.backtest.short_below = Some(0.9);
        assert!(config.check().unwrap_err().starts_with("backtest"));
    }
}
