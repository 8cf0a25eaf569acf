//! Model families behind one trait, so the pipeline, the registry and the server treat them alike.
//!
//! A fitted model predicts a batch or one row, explains a row (per-feature contributions), reports
//! feature importance and saves itself as a self-describing directory: `model.json` (quantpipe's
//! metadata, with a format version) beside the family's own file (`model.txt` for LightGBM, in
//! LightGBM's text format so Python LightGBM loads it).
//!
//! Families so far: LightGBM gradient boosting and its random-forest mode ([`lightgbm`]).

pub mod lightgbm;
pub mod trees;

use std::path::{Path, PathBuf};

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
    /// Writes the artifact directory (created if missing).
    fn save(&self, dir: &Path) -> Result<(), ModelError>;
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
}

/// Loads any artifact directory written by [`Model::save`].
pub fn load(dir: &Path) -> Result<Box<dyn Model>, ModelError> {
    let meta = read_meta(dir)?;
    match meta.family.as_str() {
        "lightgbm" => Ok(Box::new(lightgbm::LightGbmModel::load(dir)?)),
        other => Err(ModelError::Artifact {
            path: dir.join("model.json"),
            message: format!("unknown model family {other:?} (known: lightgbm)"),
        }),
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
