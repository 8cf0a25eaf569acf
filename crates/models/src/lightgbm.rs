//! LightGBM through its C library (built from source by `lightgbm3`): gradient boosting and its
//! random-forest mode; binary, multiclass, regression and quantile objectives; early stopping on the
//! last rows in time order (purged by label windows); balanced class weights; fixed seeds give
//! identical models. The model file is LightGBM's own text format.

use std::path::Path;

use lightgbm3::{Booster, ImportanceType};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::trees::TreeEnsemble;
use crate::{read_meta, write_atomically, ArtifactMeta, Dataset, Importance, Model, ModelError, Task};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Boosting {
    /// Gradient-boosted decision trees.
    #[default]
    Gbdt,
    /// Random forest: bagged trees averaged (needs bagging_fraction < 1 and bagging_freq > 0).
    Rf,
}

/// LightGBM's objective names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    Binary,
    Multiclass,
    Regression,
    Quantile,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeight {
    /// Each class weighs rows / (classes × rows of that class), as scikit-learn's "balanced".
    Balanced,
}

fn default_iterations() -> usize {
    100
}
fn default_learning_rate() -> f64 {
    0.1
}
fn default_leaves() -> usize {
    31
}
fn default_max_depth() -> i32 {
    -1
}
fn default_min_data() -> usize {
    20
}
fn one() -> f64 {
    1.0
}
fn default_seed() -> u64 {
    42
}

/// LightGBM parameters as written in a config (`[model.params]`); unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LightGbmParams {
    /// `binary`, `multiclass` (with `num_class`), `regression` or `quantile` (with `alpha`).
    pub objective: Objective,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_class: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    #[serde(default)]
    pub boosting: Boosting,
    #[serde(default = "default_iterations")]
    pub num_iterations: usize,
    #[serde(default = "default_learning_rate")]
    pub learning_rate: f64,
    #[serde(default = "default_leaves")]
    pub num_leaves: usize,
    #[serde(default = "default_max_depth")]
    pub max_depth: i32,
    #[serde(default = "default_min_data")]
    pub min_data_in_leaf: usize,
    #[serde(default = "one")]
    pub feature_fraction: f64,
    #[serde(default = "one")]
    pub bagging_fraction: f64,
    #[serde(default)]
    pub bagging_freq: usize,
    #[serde(default)]
    pub lambda_l1: f64,
    #[serde(default)]
    pub lambda_l2: f64,
    /// Stop when the held-out loss has not improved for this many rounds (needs `validation_fraction`).
    #[serde(default)]
    pub early_stopping_rounds: Option<usize>,
    /// The last fraction of the training rows, in time order, held out for early stopping.
    #[serde(default)]
    pub validation_fraction: f64,
    #[serde(default)]
    pub class_weight: Option<ClassWeight>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Threads for training (0: LightGBM's default, all cores).
    #[serde(default)]
    pub num_threads: usize,
}

impl LightGbmParams {
    pub fn new(task: Task) -> LightGbmParams {
        let (objective, num_class, alpha) = match task {
            Task::Binary => (Objective::Binary, None, None),
            Task::Multiclass { classes } => (Objective::Multiclass, Some(classes), None),
            Task::Regression => (Objective::Regression, None, None),
            Task::Quantile { alpha } => (Objective::Quantile, None, Some(alpha)),
        };
        LightGbmParams {
            objective,
            num_class,
            alpha,
            boosting: Boosting::Gbdt,
            num_iterations: default_iterations(),
            learning_rate: default_learning_rate(),
            num_leaves: default_leaves(),
            max_depth: default_max_depth(),
            min_data_in_leaf: default_min_data(),
            feature_fraction: 1.0,
            bagging_fraction: 1.0,
            bagging_freq: 0,
            lambda_l1: 0.0,
            lambda_l2: 0.0,
            early_stopping_rounds: None,
            validation_fraction: 0.0,
            class_weight: None,
            seed: default_seed(),
            num_threads: 0,
        }
    }

    /// What the parameters train for; an error names what is missing or does not belong.
    pub fn task(&self) -> Result<Task, ModelError> {
        let bad = |m: &str| Err(ModelError::InvalidParams(m.into()));
        match (self.objective, self.num_class, self.alpha) {
            (Objective::Multiclass, Some(classes), None) => Ok(Task::Multiclass { classes }),
            (Objective::Multiclass, None, _) => bad("objective = \"multiclass\" needs num_class"),
            (Objective::Quantile, None, Some(alpha)) => Ok(Task::Quantile { alpha }),
            (Objective::Quantile, _, None) => bad("objective = \"quantile\" needs alpha (e.g. 0.9)"),
            (_, Some(_), _) => bad("num_class only applies to objective = \"multiclass\""),
            (_, _, Some(_)) => bad("alpha only applies to objective = \"quantile\""),
            (Objective::Binary, None, None) => Ok(Task::Binary),
            (Objective::Regression, None, None) => Ok(Task::Regression),
        }
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        let task = self.task()?;
        let bad = |m: String| Err(ModelError::InvalidParams(m));
        let fraction = |v: f64| v > 0.0 && v <= 1.0;
        if self.num_iterations == 0 {
            return bad("num_iterations must be ≥ 1".into());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(format!("learning_rate {}: expected > 0", self.learning_rate));
        }
        if self.num_leaves < 2 {
            return bad(format!("num_leaves {}: expected ≥ 2", self.num_leaves));
        }
        for (name, v) in [("feature_fraction", self.feature_fraction), ("bagging_fraction", self.bagging_fraction)] {
            if !fraction(v) {
                return bad(format!("{name} {v}: expected 0 < {name} ≤ 1"));
            }
        }
        if !(self.lambda_l1 >= 0.0 && self.lambda_l2 >= 0.0) {
            return bad("lambda_l1 and lambda_l2 must be ≥ 0".into());
        }
        if !(0.0..0.5).contains(&self.validation_fraction) {
            return bad(format!("validation_fraction {}: expected 0 ≤ v < 0.5", self.validation_fraction));
        }
        if self.early_stopping_rounds.is_some() && self.validation_fraction == 0.0 {
            return bad("early_stopping_rounds needs validation_fraction > 0 (the held-out last rows)".into());
        }
        if self.boosting == Boosting::Rf && !(self.bagging_fraction < 1.0 && self.bagging_freq > 0) {
            return bad("boosting = \"rf\" needs bagging_fraction < 1 and bagging_freq ≥ 1".into());
        }
        if self.class_weight.is_some() && !task.is_classification() {
            return bad("class_weight applies to binary and multiclass tasks only".into());
        }
        match task {
            Task::Multiclass { classes } if classes < 2 => bad("multiclass needs classes ≥ 2".into()),
            Task::Quantile { alpha } if !(alpha > 0.0 && alpha < 1.0) => {
                bad(format!("quantile alpha {alpha}: expected 0 < alpha < 1"))
            }
            _ => Ok(()),
        }
    }

    /// The parameters in LightGBM's vocabulary, as passed to its C library (and to Python LightGBM
    /// by the benchmarks, to train the same model).
    pub fn to_lightgbm(&self) -> serde_json::Value {
        let task = self.task().expect("validated before training");
        let (objective, metric) = match task {
            Task::Binary => ("binary", "binary_logloss"),
            Task::Multiclass { .. } => ("multiclass", "multi_logloss"),
            Task::Regression => ("regression", "l2"),
            Task::Quantile { .. } => ("quantile", "quantile"),
        };
        let mut p = json!({
            "objective": objective,
            "metric": metric,
            "boosting": match self.boosting { Boosting::Gbdt => "gbdt", Boosting::Rf => "rf" },
            "num_iterations": self.num_iterations,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l1": self.lambda_l1,
            "lambda_l2": self.lambda_l2,
            "seed": self.seed,
            // Same seed, same data, same threads → the same model, bit for bit.
            "deterministic": true,
            "force_row_wise": true,
            "verbosity": -1,
        });
        if let Task::Multiclass { classes } = task {
            p["num_class"] = json!(classes);
        }
        if let Task::Quantile { alpha } = task {
            p["alpha"] = json!(alpha);
        }
        if let Some(rounds) = self.early_stopping_rounds {
            p["early_stopping_rounds"] = json!(rounds);
        }
        if self.num_threads > 0 {
            p["num_threads"] = json!(self.num_threads);
        }
        p
    }
}

/// A LightGBM booster. The C API's prediction calls are thread-safe (LightGBM guards a booster with
/// its own shared lock), and quantpipe never uses the booster's single-row fast config, which is not;
/// so sharing the handle between threads is sound.
struct SharedBooster(Booster);
// SAFETY: see the type's comment; the handle is only freed in Drop, when no other reference exists.
unsafe impl Send for SharedBooster {}
// SAFETY: as above: every method used through `&self` is a thread-safe C API call.
unsafe impl Sync for SharedBooster {}

pub struct LightGbmModel {
    booster: SharedBooster,
    /// The same trees for in-process evaluation of single rows and small batches.
    trees: TreeEnsemble,
    /// LightGBM's text model, exactly as written to `model.txt`.
    text: String,
    params: LightGbmParams,
    feature_names: Vec<String>,
    training: serde_json::Value,
}

/// Batches up to this many rows are evaluated in process.
const SMALL_BATCH: usize = 256;

fn lgbm(e: lightgbm3::Error) -> ModelError {
    ModelError::LightGbm(e.to_string())
}

/// Rows of `features` (row-major, `d` wide) as f64, selected by `rows`.
fn gather(features: &[f64], d: usize, rows: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows.len() * d);
    for &r in rows {
        out.extend_from_slice(&features[r * d..(r + 1) * d]);
    }
    out
}

impl LightGbmModel {
    pub fn fit(data: &Dataset, params: &LightGbmParams) -> Result<LightGbmModel, ModelError> {
        params.validate()?;
        data.validate()?;
        params.task()?.check_labels(data.labels)?;
        let n = data.rows();
        let d = data.n_features();
        // Hold out the last rows for early stopping; purge training rows whose labels reach into them.
        let held = (n as f64 * params.validation_fraction).round() as usize;
        let cut = n - held;
        let train_rows: Vec<usize> = match (held, data.label_windows) {
            (0, _) => (0..n).collect(),
            (_, Some((_, end))) => {
                let first_valid = data.label_windows.map(|(start, _)| start[cut]).unwrap_or(i64::MAX);
                (0..cut).filter(|&i| end[i] < first_valid).collect()
            }
            (_, None) => (0..cut).collect(),
        };
        if train_rows.len() < 2 * params.min_data_in_leaf.max(1) {
            return Err(ModelError::InvalidData(format!(
                "{} training rows are too few (min_data_in_leaf = {})",
                train_rows.len(),
                params.min_data_in_leaf
            )));
        }
        let valid_rows: Vec<usize> = (cut..n).collect();
        let weights = sample_weights(data, params)?;
        let make = |rows: &[usize], reference: Option<&lightgbm3::Dataset>| -> Result<lightgbm3::Dataset, ModelError> {
            let x = gather(data.features, d, rows);
            let y: Vec<f32> = rows.iter().map(|&r| data.labels[r] as f32).collect();
            let mut ds =
                lightgbm3::Dataset::from_slice_with_reference(&x, &y, d as i32, true, reference).map_err(lgbm)?;
            ds.set_feature_names(data.feature_names).map_err(lgbm)?;
            if let Some(w) = &weights {
                let w: Vec<f32> = rows.iter().map(|&r| w[r] as f32).collect();
                ds.set_weights(&w).map_err(lgbm)?;
            }
            Ok(ds)
        };
        let train = make(&train_rows, None)?;
        let valid = if held > 0 { Some(make(&valid_rows, Some(&train))?) } else { None };
        let started = std::time::Instant::now();
        let booster = Booster::train_with_valid(train, valid, &params.to_lightgbm()).map_err(lgbm)?;
        let seconds = started.elapsed().as_secs_f64();
        let text = booster.save_string().map_err(lgbm)?;
        let trees = TreeEnsemble::parse(&text)?;
        let training = json!({
            "rows": train_rows.len(),
            "validation_rows": held,
            "purged_before_validation": cut - train_rows.len(),
            "iterations": booster.num_iterations(),
            "seconds": seconds,
        });
        Ok(LightGbmModel {
            booster: SharedBooster(booster),
            trees,
            text,
            params: params.clone(),
            feature_names: data.feature_names.to_vec(),
            training,
        })
    }

    /// LightGBM's text model.
    pub fn model_text(&self) -> &str {
        &self.text
    }

    /// The in-process tree evaluator.
    pub fn evaluator(&self) -> &TreeEnsemble {
        &self.trees
    }

    /// Predictions through LightGBM's C API (multi-threaded; what large batches use).
    pub fn predict_with_lightgbm(&self, rows: &[f64]) -> Result<Vec<f64>, ModelError> {
        self.check_rows(rows)?;
        self.booster.0.predict(rows, self.feature_names.len() as i32, true).map_err(lgbm)
    }

    pub fn params(&self) -> &LightGbmParams {
        &self.params
    }

    /// Trees kept (after early stopping), per class.
    pub fn iterations(&self) -> usize {
        self.booster.0.num_iterations().max(0) as usize
    }

    pub fn load(dir: &Path) -> Result<LightGbmModel, ModelError> {
        let meta = read_meta(dir)?;
        let artifact = |message: String| ModelError::Artifact { path: dir.join("model.json"), message };
        let params: LightGbmParams =
            serde_json::from_value(meta.params.clone()).map_err(|e| artifact(format!("params: {e}")))?;
        if params.task()? != meta.task {
            return Err(artifact("params and task disagree".into()));
        }
        let path = dir.join("model.txt");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let booster = Booster::from_string(&text)
            .map_err(|e| ModelError::Artifact { path: path.clone(), message: e.to_string() })?;
        if booster.num_features() as usize != meta.feature_names.len() {
            return Err(ModelError::Artifact {
                path,
                message: format!(
                    "the model has {} features, model.json lists {}",
                    booster.num_features(),
                    meta.feature_names.len()
                ),
            });
        }
        let trees = TreeEnsemble::parse(&text).map_err(|e| match e {
            ModelError::Artifact { message, .. } => ModelError::Artifact { path: path.clone(), message },
            other => other,
        })?;
        Ok(LightGbmModel {
            booster: SharedBooster(booster),
            trees,
            text,
            params,
            feature_names: meta.feature_names,
            training: meta.training,
        })
    }

    fn check_rows(&self, rows: &[f64]) -> Result<usize, ModelError> {
        crate::check_rows(&self.feature_names, rows)
    }
}

/// Sample weights × balanced class weights, when either is asked for.
fn sample_weights(data: &Dataset, params: &LightGbmParams) -> Result<Option<Vec<f64>>, ModelError> {
    let mut w: Option<Vec<f64>> = data.weights.map(<[f64]>::to_vec);
    if params.class_weight == Some(ClassWeight::Balanced) {
        let classes = match params.task()? {
            Task::Binary => 2,
            Task::Multiclass { classes } => classes,
            _ => unreachable!("validated: class weights only for classification"),
        };
        let mut counts = vec![0usize; classes];
        data.labels.iter().for_each(|&y| counts[y as usize] += 1);
        let n = data.rows() as f64;
        let class_w: Vec<f64> =
            counts.iter().map(|&c| if c > 0 { n / (classes as f64 * c as f64) } else { 0.0 }).collect();
        let base = w.get_or_insert_with(|| vec![1.0; data.rows()]);
        for (wi, &y) in base.iter_mut().zip(data.labels) {
            *wi *= class_w[y as usize];
        }
    }
    Ok(w)
}

impl Model for LightGbmModel {
    fn family(&self) -> &'static str {
        "lightgbm"
    }

    fn task(&self) -> Task {
        self.params.task().expect("validated when fitted or loaded")
    }

    fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    fn predict(&self, rows: &[f64]) -> Result<Vec<f64>, ModelError> {
        // Small batches in process (no FFI, no thread start-up); large ones through LightGBM's threads.
        if self.check_rows(rows)? <= SMALL_BATCH {
            Ok(self.trees.predict(rows))
        } else {
            self.predict_with_lightgbm(rows)
        }
    }

    fn feature_importance(&self) -> Result<Vec<Importance>, ModelError> {
        let gain = self.booster.0.feature_importance(ImportanceType::Gain).map_err(lgbm)?;
        let splits = self.booster.0.feature_importance(ImportanceType::Split).map_err(lgbm)?;
        Ok(self
            .feature_names
            .iter()
            .zip(gain.iter().zip(&splits))
            .map(|(f, (&g, &s))| Importance { feature: f.clone(), gain: g, splits: s })
            .collect())
    }

    fn explain(&self, row: &[f64]) -> Result<Vec<f64>, ModelError> {
        if self.check_rows(row)? != 1 {
            return Err(ModelError::InvalidData("explain takes one row".into()));
        }
        if let Task::Multiclass { .. } = self.task() {
            // lightgbm3 1.0.11 sizes the contribution buffer for one output, so a multiclass call would
            // overrun it; refused until quantpipe evaluates TreeSHAP itself.
            return Err(ModelError::InvalidParams(
                "per-feature contributions of multiclass LightGBM models are not available yet".into(),
            ));
        }
        self.booster.0.predict_contrib(row, self.feature_names.len() as i32, true).map_err(lgbm)
    }

    fn to_onnx(&self) -> Result<Vec<u8>, ModelError> {
        self.trees.to_onnx(self.task(), &self.feature_names)
    }

    fn meta(&self) -> ArtifactMeta {
        ArtifactMeta {
            format_version: crate::ARTIFACT_FORMAT_VERSION,
            family: "lightgbm".into(),
            task: self.task(),
            feature_names: self.feature_names.clone(),
            params: serde_json::to_value(&self.params).expect("parameters serialise"),
            training: self.training.clone(),
            preprocess: None,
        }
    }

    fn write_files(&self, dir: &Path) -> Result<(), ModelError> {
        write_atomically(&dir.join("model.txt"), self.text.as_bytes())
    }
}
