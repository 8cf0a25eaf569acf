//! Training targets. This is the only quantpipe crate that reads bars after the one being labelled,
//! and every label says how far it looks: a declared [`Horizon`] plus, per labelled row, the index of
//! the last bar it read (`end_row`), so validation can purge and embargo exactly.
//!
//! Rows without a complete future window are dropped, never filled. The rules are written out in
//! `docs/labels.md`.

pub mod horizon;
mod rolling;

pub use horizon::{Horizon, NO_END};

use quantpipe_core::{Bars, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LabelError {
    #[error("invalid horizon {0}")]
    InvalidHorizon(String),
    #[error("label {label}: {message}")]
    InvalidParams { label: &'static str, message: String },
    #[error("label file {file}: {message}")]
    InvalidFile { file: String, message: String },
    #[error("label {label}: a primary side is required (one value per bar: +1 long, -1 short, 0 or NaN none)")]
    MissingSide { label: &'static str },
    #[error("label {label}: the primary side has {got} values but there are {bars} bars")]
    SideLength { label: &'static str, got: usize, bars: usize },
}

/// What to do with rows whose move is inside the dead zone of a direction label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadZoneMode {
    /// The row gets no direction (dropped where direction is the target).
    #[default]
    Drop,
    /// Three classes: 0 down, 1 flat, 2 up.
    Flat,
}

fn default_vol_window() -> usize {
    100
}
fn default_sigma_k() -> f64 {
    1.5
}
fn default_sigma_window() -> usize {
    20
}
fn default_sigma_lookahead() -> Horizon {
    Horizon::Duration(60_000)
}
fn default_fraction() -> f64 {
    0.5
}
fn default_barrier() -> f64 {
    1.0
}
fn default_reference_window() -> usize {
    5_000
}
fn default_min_reference() -> usize {
    100
}

/// A label and its parameters, as written in a pipeline or label file: `kind = "horizon"`, ….
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LabelSpec {
    /// Forward return, direction, maximum gain and maximum loss over one or more horizons, in one pass.
    /// The target is the direction over the first horizon.
    Horizon {
        horizons: Vec<Horizon>,
        /// Dead zone half-width in units of σ·√(bars in the window); 0 disables it.
        #[serde(default)]
        dead_zone: f64,
        #[serde(default)]
        dead_zone_mode: DeadZoneMode,
        /// Bars of 1-bar log returns behind σ (only used with a dead zone).
        #[serde(default = "default_vol_window")]
        vol_window: usize,
    },
    /// At bars `k` rolling standard deviations or more from the rolling mean of closes: does price come
    /// back toward that mean by `fraction` of the distance within `lookahead`?
    SigmaReversion {
        #[serde(default = "default_sigma_lookahead")]
        lookahead: Horizon,
        #[serde(default = "default_sigma_k")]
        k: f64,
        #[serde(default = "default_sigma_window")]
        window: usize,
        #[serde(default = "default_fraction")]
        fraction: f64,
    },
    /// First of profit-take, stop-loss (multiples of σ·√(bars to the vertical barrier)) and the vertical
    /// barrier at `horizon`. With a primary side, also the meta-label: did the primary trade pay?
    TripleBarrier {
        horizon: Horizon,
        #[serde(default = "default_barrier")]
        profit_take: f64,
        #[serde(default = "default_barrier")]
        stop_loss: f64,
        #[serde(default = "default_vol_window")]
        vol_window: usize,
    },
    /// Realised volatility of the coming window: √Σ r² of its 1-bar log returns.
    FutureVolatility { horizon: Horizon },
    /// 0–100: where the coming window's maximum adverse excursion ranks among the previous
    /// `reference_window` rows' (100 = worse than all of them).
    RiskScore {
        horizon: Horizon,
        #[serde(default = "default_reference_window")]
        reference_window: usize,
        #[serde(default = "default_min_reference")]
        min_reference: usize,
    },
    /// Will the move over the coming window be stronger, in the same direction, than the move over the
    /// window just past (accelerating = 1), or not (decelerating = 0)?
    MomentumState { horizon: Horizon },
}

/// The label catalogue: name, what it predicts, its target column and its class coding.
pub const CATALOGUE: &[(&str, &str, &str)] = &[
    ("horizon", "forward return, direction, max gain / max loss over each horizon", "dir_<h> (1 up, 0 not up)"),
    ("sigma_reversion", "reversion toward the rolling mean after a k-sigma excursion", "reverts (1/0)"),
    ("triple_barrier", "first barrier touched: profit-take, stop-loss or time", "tb_label (+1/-1/0); meta (1/0)"),
    ("future_volatility", "realised volatility of the coming window", "future_vol_<h> (regression)"),
    ("risk_score", "percentile 0-100 of the coming maximum adverse excursion", "risk_score (regression)"),
    ("momentum_state", "coming move stronger in the same direction than the last one", "accelerating (1/0)"),
];

/// Counts of bars that did not become labelled rows, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Dropped {
    /// The future window runs past the data, or the bar it ends on is missing.
    pub incomplete_window: usize,
    /// Not enough history for the label's own rolling statistics (σ, rolling mean, reference set).
    pub warm_up: usize,
    /// Inside the dead zone (direction labels with `dead_zone_mode = "drop"`).
    pub dead_zone: usize,
    /// Not an event: no k-sigma excursion, or no primary side.
    pub no_event: usize,
}

/// Labelled rows: which bar each row labels, the last bar its label read, and the label columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Labels {
    pub kind: &'static str,
    /// The declared look-ahead (the longest horizon).
    pub lookahead: Horizon,
    /// The column a model is trained on.
    pub target: String,
    /// Index of the labelled bar; the label is decided at its close.
    pub row: Vec<usize>,
    /// Index of the last bar the label read (always > row).
    pub end_row: Vec<usize>,
    /// Open times of `row` and `end_row`.
    pub ts: Vec<Timestamp>,
    pub end_ts: Vec<Timestamp>,
    pub columns: Vec<(String, Vec<f64>)>,
    pub dropped: Dropped,
}

impl Labels {
    pub fn len(&self) -> usize {
        self.row.len()
    }
    pub fn is_empty(&self) -> bool {
        self.row.is_empty()
    }
    pub fn column(&self, name: &str) -> Option<&[f64]> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
    pub fn target_values(&self) -> &[f64] {
        self.column(&self.target).expect("the target is one of the columns")
    }
}

/// Collects rows as a label is computed.
struct Builder {
    row: Vec<usize>,
    end_row: Vec<usize>,
    columns: Vec<(String, Vec<f64>)>,
    dropped: Dropped,
}

impl Builder {
    fn new(names: &[String]) -> Builder {
        Builder {
            row: Vec::new(),
            end_row: Vec::new(),
            columns: names.iter().map(|n| (n.clone(), Vec::new())).collect(),
            dropped: Dropped::default(),
        }
    }
    fn push(&mut self, row: usize, end_row: usize, values: &[f64]) {
        debug_assert!(end_row > row);
        self.row.push(row);
        self.end_row.push(end_row);
        for ((_, col), &v) in self.columns.iter_mut().zip(values) {
            col.push(v);
        }
    }
    fn finish(self, bars: &Bars, kind: &'static str, lookahead: Horizon, target: String) -> Labels {
        Labels {
            kind,
            lookahead,
            target,
            ts: self.row.iter().map(|&i| bars.ts[i]).collect(),
            end_ts: self.end_row.iter().map(|&i| bars.ts[i]).collect(),
            row: self.row,
            end_row: self.end_row,
            columns: self.columns,
            dropped: self.dropped,
        }
    }
}

impl LabelSpec {
    /// Reads a label from TOML (a `[label]` table's body); unknown keys are errors naming the key.
    pub fn from_toml(text: &str, file: &str) -> Result<LabelSpec, LabelError> {
        let spec: LabelSpec = toml::from_str(text)
            .map_err(|e| LabelError::InvalidFile { file: file.to_string(), message: e.to_string() })?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn kind(&self) -> &'static str {
        match self {
            LabelSpec::Horizon { .. } => "horizon",
            LabelSpec::SigmaReversion { .. } => "sigma_reversion",
            LabelSpec::TripleBarrier { .. } => "triple_barrier",
            LabelSpec::FutureVolatility { .. } => "future_volatility",
            LabelSpec::RiskScore { .. } => "risk_score",
            LabelSpec::MomentumState { .. } => "momentum_state",
        }
    }

    /// The declared look-ahead: the longest window any row of this label may read.
    pub fn lookahead(&self) -> Horizon {
        match self {
            LabelSpec::Horizon { horizons, .. } => {
                // Validated non-empty; the comparison is by the span on 1-minute bars, which orders bars
                // and durations consistently enough to name the longest (purging uses per-row ends).
                *horizons
                    .iter()
                    .max_by_key(|h| h.max_millis(quantpipe_core::Timeframe::MINUTE))
                    .expect("validated non-empty")
            }
            LabelSpec::SigmaReversion { lookahead, .. } => *lookahead,
            LabelSpec::TripleBarrier { horizon, .. }
            | LabelSpec::FutureVolatility { horizon }
            | LabelSpec::RiskScore { horizon, .. }
            | LabelSpec::MomentumState { horizon } => *horizon,
        }
    }

    /// The column a model trains on (with a primary side, the triple barrier's target is `meta`).
    pub fn target(&self, with_side: bool) -> String {
        match self {
            LabelSpec::Horizon { horizons, .. } => format!("dir_{}", horizons[0].name()),
            LabelSpec::SigmaReversion { .. } => "reverts".into(),
            LabelSpec::TripleBarrier { .. } if with_side => "meta".into(),
            LabelSpec::TripleBarrier { .. } => "tb_label".into(),
            LabelSpec::FutureVolatility { horizon } => format!("future_vol_{}", horizon.name()),
            LabelSpec::RiskScore { .. } => "risk_score".into(),
            LabelSpec::MomentumState { .. } => "accelerating".into(),
        }
    }

    /// Whether the target is a class (classification) rather than a value (regression).
    pub fn is_classification(&self) -> bool {
        !matches!(self, LabelSpec::FutureVolatility { .. } | LabelSpec::RiskScore { .. })
    }

    pub fn validate(&self) -> Result<(), LabelError> {
        let kind = self.kind();
        let bad = |message: String| Err(LabelError::InvalidParams { label: kind, message });
        match self {
            LabelSpec::Horizon { horizons, dead_zone, vol_window, .. } => {
                if horizons.is_empty() {
                    return bad("horizons is empty: give at least one, e.g. horizons = [\"1h\", \"4h\"]".into());
                }
                let mut names: Vec<String> = horizons.iter().map(|h| h.name()).collect();
                names.sort();
                if names.windows(2).any(|w| w[0] == w[1]) {
                    return bad("the same horizon is listed twice".into());
                }
                if !(dead_zone.is_finite() && *dead_zone >= 0.0) {
                    return bad(format!("dead_zone = {dead_zone}: expected a number ≥ 0"));
                }
                if *vol_window < 2 {
                    return bad(format!("vol_window = {vol_window}: expected ≥ 2"));
                }
            }
            LabelSpec::SigmaReversion { k, window, fraction, .. } => {
                if !(k.is_finite() && *k > 0.0) {
                    return bad(format!("k = {k}: expected a number > 0"));
                }
                if *window < 2 {
                    return bad(format!("window = {window}: expected ≥ 2"));
                }
                if !(fraction.is_finite() && *fraction > 0.0 && *fraction <= 1.0) {
                    return bad(format!("fraction = {fraction}: expected a number in (0, 1]"));
                }
            }
            LabelSpec::TripleBarrier { profit_take, stop_loss, vol_window, .. } => {
                for (name, v) in [("profit_take", profit_take), ("stop_loss", stop_loss)] {
                    if !(v.is_finite() && *v > 0.0) {
                        return bad(format!("{name} = {v}: expected a multiple of σ > 0"));
                    }
                }
                if *vol_window < 2 {
                    return bad(format!("vol_window = {vol_window}: expected ≥ 2"));
                }
            }
            LabelSpec::RiskScore { reference_window, min_reference, .. } => {
                if *min_reference == 0 || min_reference > reference_window {
                    return bad(format!(
                        "min_reference = {min_reference}: expected between 1 and reference_window ({reference_window})"
                    ));
                }
            }
            LabelSpec::FutureVolatility { .. } | LabelSpec::MomentumState { .. } => {}
        }
        Ok(())
    }

    /// Labels `bars`. `side` is the primary signal for meta-labelling (triple barrier only): one value
    /// per bar, +1 long, −1 short, 0 or NaN for no trade.
    pub fn compute(&self, bars: &Bars, side: Option<&[f64]>) -> Result<Labels, LabelError> {
        self.validate()?;
        let kind = self.kind();
        if let Some(side) = side {
            if !matches!(self, LabelSpec::TripleBarrier { .. }) {
                return Err(LabelError::InvalidParams {
                    label: kind,
                    message: "a primary side only applies to triple_barrier (meta-labels)".into(),
                });
            }
            if side.len() != bars.len() {
                return Err(LabelError::SideLength { label: kind, got: side.len(), bars: bars.len() });
            }
        }
        let target = self.target(side.is_some());
        let lookahead = self.lookahead();
        let builder = match self {
            LabelSpec::Horizon { horizons, dead_zone, dead_zone_mode, vol_window } => {
                horizon_labels(bars, horizons, *dead_zone, *dead_zone_mode, *vol_window)
            }
            LabelSpec::SigmaReversion { lookahead, k, window, fraction } => {
                sigma_reversion(bars, *lookahead, *k, *window, *fraction)
            }
            LabelSpec::TripleBarrier { horizon, profit_take, stop_loss, vol_window } => {
                triple_barrier(bars, *horizon, *profit_take, *stop_loss, *vol_window, side)
            }
            LabelSpec::FutureVolatility { horizon } => future_volatility(bars, *horizon),
            LabelSpec::RiskScore { horizon, reference_window, min_reference } => {
                risk_score(bars, *horizon, *reference_window, *min_reference)
            }
            LabelSpec::MomentumState { horizon } => momentum_state(bars, *horizon),
        };
        Ok(builder.finish(bars, kind, lookahead, target))
    }
}

fn horizon_labels(bars: &Bars, horizons: &[Horizon], dead_zone: f64, mode: DeadZoneMode, vol_window: usize) -> Builder {
    let n = bars.len();
    let mut names = Vec::new();
    for h in horizons {
        let s = h.name();
        names.extend([format!("dir_{s}"), format!("ret_{s}"), format!("max_gain_{s}"), format!("max_loss_{s}")]);
    }
    let mut out = Builder::new(&names);
    let ends: Vec<Vec<usize>> = horizons.iter().map(|h| h.window_ends(bars)).collect();
    let highs: Vec<Vec<f64>> = ends.iter().map(|e| rolling::forward_extreme(&bars.high, e, true)).collect();
    let lows: Vec<Vec<f64>> = ends.iter().map(|e| rolling::forward_extreme(&bars.low, e, false)).collect();
    let sigma = (dead_zone > 0.0).then(|| rolling::log_return_std(&bars.close, vol_window));
    let mut values = vec![0.0; names.len()];
    for i in 0..n {
        if ends.iter().any(|e| e[i] == NO_END) {
            out.dropped.incomplete_window += 1;
            continue;
        }
        if sigma.as_ref().is_some_and(|s| s[i].is_nan()) {
            out.dropped.warm_up += 1;
            continue;
        }
        let c = bars.close[i];
        let mut last_end = i;
        for (k, e) in ends.iter().enumerate() {
            let end = e[i];
            last_end = last_end.max(end);
            let ret = bars.close[end] / c - 1.0;
            let dir = match &sigma {
                Some(s) => {
                    let band = dead_zone * s[i] * ((end - i) as f64).sqrt();
                    let log_ret = (bars.close[end] / c).ln();
                    if log_ret.abs() < band || log_ret == 0.0 {
                        match mode {
                            DeadZoneMode::Drop => f64::NAN,
                            DeadZoneMode::Flat => 1.0,
                        }
                    } else {
                        match (mode, log_ret > 0.0) {
                            (DeadZoneMode::Drop, up) => f64::from(u8::from(up)),
                            (DeadZoneMode::Flat, up) => 2.0 * f64::from(u8::from(up)),
                        }
                    }
                }
                None => f64::from(u8::from(ret > 0.0)),
            };
            values[4 * k] = dir;
            values[4 * k + 1] = ret;
            values[4 * k + 2] = highs[k][i] / c - 1.0;
            values[4 * k + 3] = lows[k][i] / c - 1.0;
        }
        if values[0].is_nan() {
            out.dropped.dead_zone += 1;
            continue;
        }
        out.push(i, last_end, &values);
    }
    out
}

fn sigma_reversion(bars: &Bars, lookahead: Horizon, k: f64, window: usize, fraction: f64) -> Builder {
    let names = ["reverts", "z", "side", "bars_to_revert", "revert_level"].map(String::from);
    let mut out = Builder::new(&names);
    let ends = lookahead.window_ends(bars);
    let (mean, std) = rolling::mean_std_population(&bars.close, window);
    for i in 0..bars.len() {
        if ends[i] == NO_END {
            out.dropped.incomplete_window += 1;
            continue;
        }
        if mean[i].is_nan() {
            out.dropped.warm_up += 1;
            continue;
        }
        let c = bars.close[i];
        let z = if std[i] > 0.0 { (c - mean[i]) / std[i] } else { 0.0 };
        if z.abs() < k {
            out.dropped.no_event += 1;
            continue;
        }
        let level = c - fraction * (c - mean[i]);
        let above = z > 0.0;
        let touch = (i + 1..=ends[i]).find(|&j| if above { bars.low[j] <= level } else { bars.high[j] >= level });
        let (reverts, end, bars_to) = match touch {
            Some(j) => (1.0, j, (j - i) as f64),
            None => (0.0, ends[i], f64::NAN),
        };
        let side = if above { -1.0 } else { 1.0 };
        out.push(i, end, &[reverts, z, side, bars_to, level]);
    }
    out
}

fn triple_barrier(
    bars: &Bars,
    horizon: Horizon,
    profit_take: f64,
    stop_loss: f64,
    vol_window: usize,
    side: Option<&[f64]>,
) -> Builder {
    let mut names: Vec<String> =
        ["tb_label", "tb_return", "tb_bars", "tb_touch_ts", "upper", "lower"].map(String::from).to_vec();
    if side.is_some() {
        names.extend(["side".to_string(), "meta".to_string()]);
    }
    let mut out = Builder::new(&names);
    let ends = horizon.window_ends(bars);
    let sigma = rolling::log_return_std(&bars.close, vol_window);
    for i in 0..bars.len() {
        if ends[i] == NO_END {
            out.dropped.incomplete_window += 1;
            continue;
        }
        if sigma[i].is_nan() {
            out.dropped.warm_up += 1;
            continue;
        }
        let trade_side = match side.map(|s| s[i]) {
            None => 1.0,
            Some(s) if s > 0.0 => 1.0,
            Some(s) if s < 0.0 => -1.0,
            Some(_) => {
                out.dropped.no_event += 1;
                continue;
            }
        };
        let end = ends[i];
        let c = bars.close[i];
        let width = sigma[i] * ((end - i) as f64).sqrt();
        // For a short primary trade the profit-take is below the entry.
        let (up_mult, down_mult) = if trade_side > 0.0 { (profit_take, stop_loss) } else { (stop_loss, profit_take) };
        let upper = c * (up_mult * width).exp();
        let lower = c * (-down_mult * width).exp();
        let mut outcome = (0.0, end, bars.close[end]);
        for j in i + 1..=end {
            let hit_low = bars.low[j] <= lower;
            let hit_high = bars.high[j] >= upper;
            // Both barriers inside one bar: the order is unknown, so count the trade's stop first.
            if hit_low && (!hit_high || trade_side > 0.0) {
                outcome = (-1.0, j, bars.open[j].min(lower));
                break;
            }
            if hit_high {
                outcome = (1.0, j, bars.open[j].max(upper));
                break;
            }
        }
        let (label, exit_row, exit_price) = outcome;
        let ret = exit_price / c - 1.0;
        let mut values = vec![label, ret, (exit_row - i) as f64, bars.ts[exit_row] as f64, upper, lower];
        if side.is_some() {
            let paid = trade_side * ret > 0.0;
            values.extend([trade_side, f64::from(u8::from(paid))]);
        }
        out.push(i, exit_row, &values);
    }
    out
}

fn future_volatility(bars: &Bars, horizon: Horizon) -> Builder {
    let name = format!("future_vol_{}", horizon.name());
    let mut out = Builder::new(std::slice::from_ref(&name));
    let ends = horizon.window_ends(bars);
    // Prefix sums of squared 1-bar log returns: the window sum is then O(1).
    let mut sq = vec![0.0; bars.len() + 1];
    for i in 1..bars.len() {
        let r = (bars.close[i] / bars.close[i - 1]).ln();
        sq[i + 1] = sq[i] + r * r;
    }
    for (i, &end) in ends.iter().enumerate() {
        if end == NO_END {
            out.dropped.incomplete_window += 1;
            continue;
        }
        // Returns of bars i+1..=end; recomputed from the raw sum when cancellation could bite.
        let mut sum = sq[end + 1] - sq[i + 1];
        if sum < 1e-9 * sq[end + 1] {
            sum = (i + 1..=end).map(|j| (bars.close[j] / bars.close[j - 1]).ln().powi(2)).sum();
        }
        out.push(i, end, &[sum.max(0.0).sqrt()]);
    }
    out
}

fn risk_score(bars: &Bars, horizon: Horizon, reference_window: usize, min_reference: usize) -> Builder {
    let names = ["risk_score", "max_loss"].map(String::from);
    let mut out = Builder::new(&names);
    let ends = horizon.window_ends(bars);
    let lows = rolling::forward_extreme(&bars.low, &ends, false);
    // Adverse excursion of every complete row, then its percentile among the previous rows'.
    let rows: Vec<usize> = (0..bars.len()).filter(|&i| ends[i] != NO_END).collect();
    out.dropped.incomplete_window = bars.len() - rows.len();
    let max_loss: Vec<f64> = rows.iter().map(|&i| lows[i] / bars.close[i] - 1.0).collect();
    let adverse: Vec<f64> = max_loss.iter().map(|&l| (-l).max(0.0)).collect();
    let percentiles = rolling::trailing_percentile(&adverse, reference_window, min_reference);
    for (k, &i) in rows.iter().enumerate() {
        if percentiles[k].is_nan() {
            out.dropped.warm_up += 1;
            continue;
        }
        out.push(i, ends[i], &[percentiles[k], max_loss[k]]);
    }
    out
}

fn momentum_state(bars: &Bars, horizon: Horizon) -> Builder {
    let names = ["accelerating", "momentum_change", "past_move", "next_move"].map(String::from);
    let mut out = Builder::new(&names);
    let ends = horizon.window_ends(bars);
    let starts = horizon.window_starts(bars);
    for i in 0..bars.len() {
        if ends[i] == NO_END {
            out.dropped.incomplete_window += 1;
            continue;
        }
        if starts[i] == NO_END {
            out.dropped.warm_up += 1;
            continue;
        }
        let past = (bars.close[i] / bars.close[starts[i]]).ln();
        let next = (bars.close[ends[i]] / bars.close[i]).ln();
        let direction = if past > 0.0 {
            1.0
        } else if past < 0.0 {
            -1.0
        } else {
            0.0
        };
        let accelerating = direction != 0.0 && next * direction > past.abs();
        out.push(i, ends[i], &[f64::from(u8::from(accelerating)), next - past, past, next]);
    }
    out
}

/// Sample weights from label uniqueness (López de Prado): a row's weight is the average, over the bars its
/// label spans, of 1 / (number of labels spanning that bar), scaled so the weights average 1. Rows whose
/// windows overlap many others count less.
pub fn uniqueness_weights(labels: &Labels, bars_len: usize) -> Vec<f64> {
    // Concurrency per bar (returns of bars row+1..=end_row), by a difference array.
    let mut diff = vec![0i64; bars_len + 2];
    for (&r, &e) in labels.row.iter().zip(&labels.end_row) {
        diff[r + 1] += 1;
        diff[e + 1] -= 1;
    }
    let mut inverse_prefix = vec![0.0; bars_len + 1];
    let mut concurrency = 0i64;
    for j in 0..bars_len {
        concurrency += diff[j];
        let inv = if concurrency > 0 { 1.0 / concurrency as f64 } else { 0.0 };
        inverse_prefix[j + 1] = inverse_prefix[j] + inv;
    }
    let mut weights: Vec<f64> = labels
        .row
        .iter()
        .zip(&labels.end_row)
        .map(|(&r, &e)| (inverse_prefix[e + 1] - inverse_prefix[r + 1]) / (e - r) as f64)
        .collect();
    let mean = weights.iter().sum::<f64>() / weights.len().max(1) as f64;
    if mean > 0.0 {
        weights.iter_mut().for_each(|w| *w /= mean);
    }
    weights
}
