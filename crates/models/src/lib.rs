//! Model families behind one trait, so the pipeline, the registry and the server treat them alike.
//!
//! A fitted model predicts a batch or one row, explains a row (per-feature contributions), reports
//! feature importance and saves itself as a self-describing directory: `model.json` (quantpipe's
//! metadata, with a format version) beside the family's own file (`model.txt` for LightGBM, in
//! LightGBM's text format so Python LightGBM loads it).
//!
//! Families so far: LightGBM gradient boosting and its random-forest mode ([`lightgbm`]), logistic and
//! linear regression ([`linear`]), support vector machines ([`svm`]), neural nets (an MLP and an LSTM
//! over the last rows, [`neural`]), and ensembles of any of them ([`ensemble`]).

pub mod ensemble;
pub mod lightgbm;
pub mod linear;
pub mod neural;
pub mod onnx;
mod rng;
pub mod search;
pub mod svm;
pub mod trees;

use std::path::{Path, PathBuf};

use quantpipe_core::preprocess::{Impute, PreprocessSpec, Preprocessor};
use serde::{Deserialize, Serialize};

/// Version of the artifact layout written by [`Model::save`]. Loading accepts every version up to this.
pub const ARTIFACT_FORMAT_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid model parameters: {0}")]
    InvalidParams(String),
    #[error("invalid training data: {0}")]
    InvalidData(String),
    #[error("LightGBM: {0}")]
    LightGbm(String),
    #[error("training failed: {0}")]
    Training(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Artifact { path: PathBuf, message: String },
}

impl ModelError {
    fn io(path: &Path, source: std::io::Error) -> ModelError {
        ModelError::Io { path: path.to_path_buf(), source }
    }
}

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Task {
    /// Labels 0/1; predicts P(1).
    Binary,
    /// Labels 0..classes; predicts one probability per class.
    Multiclass { classes: usize },
    /// Predicts the conditional mean (L2 loss).
    Regression,
    /// Predicts the `alpha` quantile.
    Quantile { alpha: f64 },
}

impl Task {
    /// Values per predicted row.
    pub fn outputs(&self) -> usize {
        match self {
            Task::Multiclass { classes } => *classes,
            _ => 1,
        }
    }

    pub fn is_classification(&self) -> bool {
        matches!(self, Task::Binary | Task::Multiclass { .. })
    }

    /// Checks every label for this task, naming the first bad row.
    pub fn check_labels(&self, labels: &[f64]) -> Result<(), ModelError> {
        for (i, &y) in labels.iter().enumerate() {
            let ok = match self {
                Task::Binary => y == 0.0 || y == 1.0,
                Task::Multiclass { classes } => y >= 0.0 && y.fract() == 0.0 && (y as usize) < *classes,
                Task::Regression | Task::Quantile { .. } => y.is_finite(),
            };
            if !ok {
                let expected = match self {
                    Task::Binary => "0 or 1".to_string(),
                    Task::Multiclass { classes } => format!("an integer 0..{}", classes - 1),
                    _ => "a finite number".to_string(),
                };
                return Err(ModelError::InvalidData(format!("label at row {i} is {y}: expected {expected}")));
            }
        }
        Ok(())
    }
}

/// Training rows, row-major: `features[row * n_features + column]`. NaN is a missing value (the
/// model's imputation policy decides what it means); ±∞ is refused.
#[derive(Debug, Clone, Copy)]
pub struct Dataset<'a> {
    pub features: &'a [f64],
    pub feature_names: &'a [String],
    pub labels: &'a [f64],
    /// Optional sample weights (e.g. label uniqueness).
    pub weights: Option<&'a [f64]>,
    /// Optional label windows (start and end time of each row's label): with them, the rows held out
    /// for early stopping are purged of training rows whose labels reach into them.
    pub label_windows: Option<(&'a [i64], &'a [i64])>,
}

impl Dataset<'_> {
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Shape and value checks shared by every family.
    pub fn validate(&self) -> Result<(), ModelError> {
        let d = self.n_features();
        if d == 0 {
            return Err(ModelError::InvalidData("no feature columns".into()));
        }
        if self.features.len() != self.rows() * d {
            return Err(ModelError::InvalidData(format!(
                "{} feature values for {} rows × {d} features",
                self.features.len(),
                self.rows()
            )));
        }
        if self.rows() == 0 {
            return Err(ModelError::InvalidData("no rows".into()));
        }
        if let Some(k) = self.features.iter().position(|v| v.is_infinite()) {
            return Err(ModelError::InvalidData(format!(
                "feature {:?} at row {} is {}: only finite values or NaN (missing) are accepted",
                self.feature_names[k % d],
                k / d,
                self.features[k]
            )));
        }
        if let Some(w) = self.weights {
            if w.len() != self.rows() {
                return Err(ModelError::InvalidData(format!("{} weights for {} rows", w.len(), self.rows())));
            }
            if let Some(i) = w.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(ModelError::InvalidData(format!("weight at row {i} is {}: expected ≥ 0", w[i])));
            }
        }
        if let Some((start, end)) = self.label_windows {
            if start.len() != self.rows() || end.len() != self.rows() {
                return Err(ModelError::InvalidData("label windows must have one start and end per row".into()));
            }
        }
        Ok(())
    }
}

/// One feature's importance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Importance {
    pub feature: String,
    /// Total gain of the splits on this feature.
    pub gain: f64,
    /// Number of splits on this feature.
    pub splits: f64,
}

/// A fitted model.
pub trait Model: Send + Sync {
    /// The family: "lightgbm", ….
    fn family(&self) -> &'static str;
    fn task(&self) -> Task;
    fn feature_names(&self) -> &[String];
    /// Predictions for row-major rows: `task().outputs()` values per row (probabilities for
    /// classifiers, values for regressors).
    fn predict(&self, rows: &[f64]) -> Result<Vec<f64>, ModelError>;
    /// One row.
    fn predict_row(&self, row: &[f64]) -> Result<Vec<f64>, ModelError> {
        self.predict(row)
    }
    fn feature_importance(&self) -> Result<Vec<Importance>, ModelError>;
    /// Per-feature contributions to one row's raw score (then the bias), per output: for LightGBM the
    /// exact TreeSHAP values. They sum to the raw (log-odds for classifiers) prediction.
    fn explain(&self, row: &[f64]) -> Result<Vec<f64>, ModelError>;
    /// The model as an ONNX file, for other runtimes; families without an export say so.
    fn to_onnx(&self) -> Result<Vec<u8>, ModelError> {
        Err(ModelError::InvalidParams(format!("ONNX export of {} models is not available", self.family())))
    }
    /// What `model.json` says about this model.
    fn meta(&self) -> ArtifactMeta;
    /// Writes the family's own files (not `model.json`) into an existing directory.
    fn write_files(&self, dir: &Path) -> Result<(), ModelError>;
    /// Writes the artifact directory (created if missing): the family's files, then `model.json`,
    /// which is what makes the directory an artifact.
    fn save(&self, dir: &Path) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        self.write_files(dir)?;
        let json = serde_json::to_vec_pretty(&self.meta()).expect("metadata serialises");
        write_atomically(&dir.join("model.json"), &json)
    }
}

/// The metadata file of every artifact.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactMeta {
    pub format_version: u32,
    pub family: String,
    pub task: Task,
    pub feature_names: Vec<String>,
    /// The family's parameters as given (validated).
    pub params: serde_json::Value,
    /// What training saw and did (rows, iterations kept, …).
    pub training: serde_json::Value,
    /// Preprocessing fitted on the training rows, applied to every row before the model sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<Preprocessor>,
}

impl ArtifactMeta {
    /// The metadata of a freshly fitted (or loaded) model without preprocessing of its own.
    pub(crate) fn of(
        family: &str,
        task: Task,
        feature_names: &[String],
        params: &serde_json::Value,
        training: &serde_json::Value,
    ) -> ArtifactMeta {
        ArtifactMeta {
            format_version: ARTIFACT_FORMAT_VERSION,
            family: family.to_string(),
            task,
            feature_names: feature_names.to_vec(),
            params: params.clone(),
            training: training.clone(),
            preprocess: None,
        }
    }
}

/// Refuses the first missing value (NaN) of row-major `rows`, naming its feature and row: for
/// families that need every input. `advice` ends the message (what the user can do).
pub(crate) fn refuse_missing(feature_names: &[String], rows: &[f64], advice: &str) -> Result<(), ModelError> {
    let d = feature_names.len();
    match rows.iter().position(|v| v.is_nan()) {
        Some(k) => Err(ModelError::InvalidData(format!(
            "feature {:?} at row {} is missing (NaN): {advice}",
            feature_names[k % d],
            k / d
        ))),
        None => Ok(()),
    }
}

/// A model family and its parameters, as written in a config (`[model]` with `kind = "…"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSpec {
    Lightgbm(lightgbm::LightGbmParams),
    /// Binary logistic regression, L2 penalty.
    Logistic(linear::LogisticParams),
    /// Least squares; elastic net (L1 / L2) when `alpha` > 0.
    Linear(linear::LinearParams),
    /// Support vector machine (LIBSVM's C-SVC / ε-SVR), linear or RBF kernel.
    Svm(svm::SvmParams),
    /// Multilayer perceptron (candle), AdamW with early stopping.
    Mlp(neural::MlpParams),
    /// LSTM over the last `window` feature rows (candle), AdamW with early stopping.
    Lstm(neural::LstmParams),
    /// Average, vote or stacking over member models of any family.
    Ensemble(ensemble::EnsembleParams),
}

impl ModelSpec {
    pub fn task(&self) -> Result<Task, ModelError> {
        match self {
            ModelSpec::Lightgbm(p) => p.task(),
            ModelSpec::Logistic(p) => p.validate().map(|_| p.task()),
            ModelSpec::Linear(p) => p.validate().map(|_| Task::Regression),
            ModelSpec::Svm(p) => p.task(),
            ModelSpec::Mlp(p) => p.task(),
            ModelSpec::Lstm(p) => p.task(),
            ModelSpec::Ensemble(p) => p.task(),
        }
    }

    /// Feature rows per input: an LSTM's window (its input row is that many feature rows, oldest
    /// first, see [`neural::sequence_names`]); 1 for every other family.
    pub fn window(&self) -> usize {
        match self {
            ModelSpec::Lstm(p) => p.window,
            _ => 1,
        }
    }

    /// Whether fitting this spec trains LightGBM (which uses every core and, its OpenMP settings being
    /// process-wide, never runs beside another LightGBM fit).
    pub fn uses_lightgbm(&self) -> bool {
        match self {
            ModelSpec::Lightgbm(_) => true,
            ModelSpec::Ensemble(p) => p.uses_lightgbm(),
            _ => false,
        }
    }

    /// The preprocessing a family gets when the config names none: tree models take raw values and
    /// route missing ones themselves.
    pub fn default_preprocess(&self) -> PreprocessSpec {
        match self {
            // Ensemble members carry their own preprocessing.
            ModelSpec::Lightgbm(_) | ModelSpec::Ensemble(_) => PreprocessSpec::identity(),
            // Linear models need every value, on comparable scales.
            // So do neural nets, which also train poorly on unscaled inputs.
            ModelSpec::Logistic(_)
            | ModelSpec::Linear(_)
            | ModelSpec::Svm(_)
            | ModelSpec::Mlp(_)
            | ModelSpec::Lstm(_) => PreprocessSpec { impute: Impute::Median, winsorize: 0.0, standardize: true },
        }
    }
}

/// A model file (`quantpipe train --model`, an ensemble's `[[members]]`): the family with its
/// parameters and, optionally, a `[preprocess]` table (default: the family's own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocess: Option<PreprocessSpec>,
    #[serde(flatten)]
    pub spec: ModelSpec,
}

/// Fits preprocessing (when it is not the identity) and then the model on `data`, all of whose rows
/// are the training window. The returned model applies the same preprocessing to every row it is
/// given, and saves it in `model.json`.
pub fn fit(
    spec: &ModelSpec,
    preprocess: Option<&PreprocessSpec>,
    data: &Dataset,
) -> Result<Box<dyn Model>, ModelError> {
    data.validate()?;
    let preprocess = preprocess.cloned().unwrap_or_else(|| spec.default_preprocess());
    preprocess.validate().map_err(|m| ModelError::InvalidParams(format!("preprocess: {m}")))?;
    let fitted =
        (!preprocess.is_identity()).then(|| Preprocessor::fit_rows(&preprocess, data.features, data.n_features()));
    let transformed;
    let data = match &fitted {
        Some(p) => {
            transformed = preprocessed(p, data.features);
            Dataset { features: &transformed, ..*data }
        }
        None => *data,
    };
    let model: Box<dyn Model> = match spec {
        ModelSpec::Lightgbm(params) => Box::new(lightgbm::LightGbmModel::fit(&data, params)?),
        ModelSpec::Logistic(params) => Box::new(linear::LinearModel::fit_logistic(&data, params)?),
        ModelSpec::Linear(params) => Box::new(linear::LinearModel::fit_linear(&data, params)?),
        ModelSpec::Svm(params) => Box::new(svm::SvmModel::fit(&data, params)?),
        ModelSpec::Mlp(params) => Box::new(neural::NeuralModel::fit_mlp(&data, params)?),
        ModelSpec::Lstm(params) => Box::new(neural::NeuralModel::fit_lstm(&data, params)?),
        ModelSpec::Ensemble(params) => Box::new(ensemble::EnsembleModel::fit(&data, params)?),
    };
    Ok(match fitted {
        Some(pre) => Box::new(Preprocessed { pre, inner: model }),
        None => model,
    })
}

fn preprocessed(p: &Preprocessor, rows: &[f64]) -> Vec<f64> {
    let mut out = rows.to_vec();
    out.chunks_exact_mut(p.width()).for_each(|row| p.apply_row(row));
    out
}

/// A model behind its fitted preprocessing.
pub struct Preprocessed {
    pre: Preprocessor,
    inner: Box<dyn Model>,
}

impl Preprocessed {
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.pre
    }

    pub fn inner(&self) -> &dyn Model {
        self.inner.as_ref()
    }

    fn transform(&self, rows: &[f64]) -> Result<Vec<f64>, ModelError> {
        check_rows(self.inner.feature_names(), rows)?;
        Ok(preprocessed(&self.pre, rows))
    }
}

impl Model for Preprocessed {
    fn family(&self) -> &'static str {
        self.inner.family()
    }
    fn task(&self) -> Task {
        self.inner.task()
    }
    fn feature_names(&self) -> &[String] {
        self.inner.feature_names()
    }
    fn predict(&self, rows: &[f64]) -> Result<Vec<f64>, ModelError> {
        self.inner.predict(&self.transform(rows)?)
    }
    fn feature_importance(&self) -> Result<Vec<Importance>, ModelError> {
        self.inner.feature_importance()
    }
    /// Contributions of the preprocessed features (each feature's own transformation is monotone,
    /// so a contribution still belongs to the feature it is named after).
    fn explain(&self, row: &[f64]) -> Result<Vec<f64>, ModelError> {
        self.inner.explain(&self.transform(row)?)
    }
    fn to_onnx(&self) -> Result<Vec<u8>, ModelError> {
        Err(ModelError::InvalidParams(
            "ONNX export of a model with fitted preprocessing is not available yet (export trees trained without it)"
                .into(),
        ))
    }
    fn meta(&self) -> ArtifactMeta {
        ArtifactMeta { preprocess: Some(self.pre.clone()), ..self.inner.meta() }
    }
    fn write_files(&self, dir: &Path) -> Result<(), ModelError> {
        self.inner.write_files(dir)
    }
}

/// Checks rows given for prediction: whole rows of `feature_names.len()` values, none infinite (NaN is
/// a missing value). Returns the number of rows.
pub(crate) fn check_rows(feature_names: &[String], rows: &[f64]) -> Result<usize, ModelError> {
    let d = feature_names.len();
    if rows.is_empty() || !rows.len().is_multiple_of(d) {
        return Err(ModelError::InvalidData(format!("{} values are not whole rows of {d} features", rows.len())));
    }
    if let Some(k) = rows.iter().position(|v| v.is_infinite()) {
        return Err(ModelError::InvalidData(format!(
            "feature {:?} at row {} is {}",
            feature_names[k % d],
            k / d,
            rows[k]
        )));
    }
    Ok(rows.len() / d)
}

/// Loads any artifact directory written by [`Model::save`], with its preprocessing.
pub fn load(dir: &Path) -> Result<Box<dyn Model>, ModelError> {
    let meta = read_meta(dir)?;
    let model: Box<dyn Model> = match meta.family.as_str() {
        "lightgbm" => Box::new(lightgbm::LightGbmModel::load(dir)?),
        "logistic" | "linear" => Box::new(linear::LinearModel::load(dir)?),
        "svm" => Box::new(svm::SvmModel::load(dir)?),
        "mlp" | "lstm" => Box::new(neural::NeuralModel::load(dir)?),
        "ensemble" => Box::new(ensemble::EnsembleModel::load(dir)?),
        other => {
            return Err(ModelError::Artifact {
                path: dir.join("model.json"),
                message: format!(
                    "unknown model family {other:?} (known: lightgbm, logistic, linear, svm, mlp, lstm, ensemble)"
                ),
            })
        }
    };
    match meta.preprocess {
        Some(pre) if pre.width() != meta.feature_names.len() => Err(ModelError::Artifact {
            path: dir.join("model.json"),
            message: format!("preprocess has {} columns, feature_names {}", pre.width(), meta.feature_names.len()),
        }),
        Some(pre) => Ok(Box::new(Preprocessed { pre, inner: model })),
        None => Ok(model),
    }
}

pub(crate) fn read_meta(dir: &Path) -> Result<ArtifactMeta, ModelError> {
    let path = dir.join("model.json");
    let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
    let meta: ArtifactMeta =
        serde_json::from_str(&text).map_err(|e| ModelError::Artifact { path: path.clone(), message: e.to_string() })?;
    if meta.format_version == 0 || meta.format_version > ARTIFACT_FORMAT_VERSION {
        return Err(ModelError::Artifact {
            path,
            message: format!(
                "artifact format {} is not one this quantpipe reads (1..={ARTIFACT_FORMAT_VERSION}); upgrade quantpipe",
                meta.format_version
            ),
        });
    }
    Ok(meta)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never sees half a file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| ModelError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))
}

#[cfg(test)]
mod template_tests {
    use super::*;

    /// Every template in docs/models/ is a valid model file.
    #[test]
    fn the_documented_model_templates_parse_and_validate() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/models");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let file: ModelFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            file.spec.task().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if let Some(p) = &file.preprocess {
                p.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            checked += 1;
        }
        assert!(checked >= 8, "{checked} templates");
    }
}
