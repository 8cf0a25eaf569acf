//! Linear models from linfa: logistic regression with an L2 penalty (binary), and linear regression
//! (ordinary least squares, or elastic net: L1, L2 or both). The fitted model is its coefficients,
//! evaluated here directly, so prediction needs no solver and no allocation per row.
//!
//! Penalties follow scikit-learn's conventions so configs carry over: logistic `c` is the inverse L2
//! strength (minimises Σ log-loss + ‖w‖² / 2c), linear `alpha`/`l1_ratio` as in `ElasticNet`
//! (minimises ‖y − Xw‖² / 2n + α·l1_ratio·‖w‖₁ + α·(1 − l1_ratio)·‖w‖² / 2). Inputs must be complete:
//! the default preprocessing imputes the training median and standardises.

use std::path::Path;

use linfa::prelude::*;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::{check_rows, read_meta, write_atomically, ArtifactMeta, Dataset, Importance, Model, ModelError, Task};

fn default_c() -> f64 {
    1.0
}
fn default_iterations() -> u64 {
    1000
}
fn default_tolerance() -> f64 {
    1e-6
}
fn default_l1_ratio() -> f64 {
    0.5
}

/// `kind = "logistic"`: binary logistic regression with an L2 penalty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogisticParams {
    /// Inverse regularisation strength (scikit-learn's `C`): smaller is stronger.
    #[serde(default = "default_c")]
    pub c: f64,
    #[serde(default = "default_iterations")]
    pub max_iterations: u64,
    /// Stop when the gradient's norm falls below this.
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
}

impl Default for LogisticParams {
    fn default() -> Self {
        LogisticParams { c: default_c(), max_iterations: default_iterations(), tolerance: default_tolerance() }
    }
}

/// `kind = "linear"`: least squares, penalised by elastic net when `alpha` > 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearParams {
    /// Penalty strength; 0 is ordinary least squares.
    #[serde(default)]
    pub alpha: f64,
    /// Share of the penalty that is L1 (1 = lasso, 0 = ridge).
    #[serde(default = "default_l1_ratio")]
    pub l1_ratio: f64,
    #[serde(default = "default_iterations")]
    pub max_iterations: u64,
    /// Coordinate descent stops when no coefficient moves more than this.
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
}

impl Default for LinearParams {
    fn default() -> Self {
        LinearParams {
            alpha: 0.0,
            l1_ratio: default_l1_ratio(),
            max_iterations: default_iterations(),
            tolerance: default_tolerance(),
        }
    }
}

impl LogisticParams {
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::InvalidParams(m));
        if !(self.c.is_finite() && self.c > 0.0) {
            return bad(format!("c = {}: expected a positive number", self.c));
        }
        if self.max_iterations == 0 {
            return bad("max_iterations = 0: expected at least 1".into());
        }
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            return bad(format!("tolerance = {}: expected a positive number", self.tolerance));
        }
        Ok(())
    }
}

impl LinearParams {
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::InvalidParams(m));
        if !(self.alpha.is_finite() && self.alpha >= 0.0) {
            return bad(format!("alpha = {}: expected ≥ 0", self.alpha));
        }
        if !(0.0..=1.0).contains(&self.l1_ratio) {
            return bad(format!("l1_ratio = {}: expected 0 ≤ l1_ratio ≤ 1", self.l1_ratio));
        }
        if self.max_iterations == 0 {
            return bad("max_iterations = 0: expected at least 1".into());
        }
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            return bad(format!("tolerance = {}: expected a positive number", self.tolerance));
        }
        Ok(())
    }
}

/// The coefficients written to `linear.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Coefficients {
    intercept: f64,
    coefficients: Vec<f64>,
}

/// A fitted linear or logistic model.
#[derive(Debug, Clone)]
pub struct LinearModel {
    family: &'static str,
    task: Task,
    feature_names: Vec<String>,
    intercept: f64,
    coefficients: Vec<f64>,
    params: serde_json::Value,
    training: serde_json::Value,
}

/// Row-major features as an ndarray matrix, refusing missing values (linear models need every input).
fn matrix(data: &Dataset, family: &str) -> Result<Array2<f64>, ModelError> {
    let d = data.n_features();
    if let Some(k) = data.features.iter().position(|v| v.is_nan()) {
        return Err(ModelError::InvalidData(format!(
            "feature {:?} at row {} is missing (NaN): {family} models need every value; impute in [preprocess] \
             (impute = \"median\" or \"zero\")",
            data.feature_names[k % d],
            k / d
        )));
    }
    Array2::from_shape_vec((data.rows(), d), data.features.to_vec()).map_err(|e| ModelError::InvalidData(e.to_string()))
}

fn refuse_weights(data: &Dataset, family: &str) -> Result<(), ModelError> {
    if data.weights.is_some() {
        return Err(ModelError::InvalidParams(format!("{family} models do not take sample weights yet")));
    }
    Ok(())
}

impl LinearModel {
    pub fn fit_logistic(data: &Dataset, params: &LogisticParams) -> Result<LinearModel, ModelError> {
        params.validate()?;
        refuse_weights(data, "logistic")?;
        Task::Binary.check_labels(data.labels)?;
        let x = matrix(data, "logistic")?;
        let positives = data.labels.iter().filter(|&&y| y == 1.0).count();
        if positives == 0 || positives == data.rows() {
            return Err(ModelError::InvalidData("logistic regression needs both classes in the training rows".into()));
        }
        let y: Array1<bool> = data.labels.iter().map(|&v| v == 1.0).collect();
        let dataset = linfa::Dataset::new(x, y);
        let started = std::time::Instant::now();
        let fitted = linfa_logistic::LogisticRegression::default()
            .alpha(1.0 / params.c)
            .max_iterations(params.max_iterations)
            .gradient_tolerance(params.tolerance)
            .fit(&dataset)
            .map_err(|e| ModelError::Training(format!("logistic regression: {e}")))?;
        // linfa maps the larger label (true) to the positive class: P(true) = σ(x·w + b).
        let (mut coefficients, mut intercept) = (fitted.params().to_vec(), fitted.intercept());
        if !fitted.labels().pos.class {
            coefficients.iter_mut().for_each(|w| *w = -*w);
            intercept = -intercept;
        }
        Ok(LinearModel {
            family: "logistic",
            task: Task::Binary,
            feature_names: data.feature_names.to_vec(),
            intercept,
            coefficients,
            params: serde_json::to_value(params).expect("params serialise"),
            training: serde_json::json!({"rows": data.rows(), "seconds": started.elapsed().as_secs_f64()}),
        })
    }

    pub fn fit_linear(data: &Dataset, params: &LinearParams) -> Result<LinearModel, ModelError> {
        params.validate()?;
        refuse_weights(data, "linear")?;
        Task::Regression.check_labels(data.labels)?;
        let x = matrix(data, "linear")?;
        let y = Array1::from(data.labels.to_vec());
        let dataset = linfa::Dataset::new(x, y);
        let started = std::time::Instant::now();
        let (coefficients, intercept) = if params.alpha == 0.0 {
            let fitted = linfa_linear::LinearRegression::new()
                .fit(&dataset)
                .map_err(|e| ModelError::Training(format!("least squares: {e}")))?;
            (fitted.params().to_vec(), fitted.intercept())
        } else {
            let fitted = linfa_elasticnet::ElasticNet::params()
                .penalty(params.alpha)
                .l1_ratio(params.l1_ratio)
                .max_iterations(params.max_iterations as u32)
                .tolerance(params.tolerance)
                .fit(&dataset)
                .map_err(|e| ModelError::Training(format!("elastic net: {e}")))?;
            (fitted.hyperplane().to_vec(), fitted.intercept())
        };
        Ok(LinearModel {
            family: "linear",
            task: Task::Regression,
            feature_names: data.feature_names.to_vec(),
            intercept,
            coefficients,
            params: serde_json::to_value(params).expect("params serialise"),
            training: serde_json::json!({"rows": data.rows(), "seconds": started.elapsed().as_secs_f64()}),
        })
    }

    pub fn coefficients(&self) -> &[f64] {
        &self.coefficients
    }

    pub fn intercept(&self) -> f64 {
        self.intercept
    }

    fn raw(&self, row: &[f64]) -> f64 {
        self.intercept + row.iter().zip(&self.coefficients).map(|(x, w)| x * w).sum::<f64>()
    }

    fn output(&self, raw: f64) -> f64 {
        match self.task {
            Task::Binary => 1.0 / (1.0 + (-raw).exp()),
            _ => raw,
        }
    }

    fn check_complete(&self, rows: &[f64]) -> Result<usize, ModelError> {
        let n = check_rows(&self.feature_names, rows)?;
        if let Some(k) = rows.iter().position(|v| v.is_nan()) {
            let d = self.feature_names.len();
            return Err(ModelError::InvalidData(format!(
                "feature {:?} at row {} is missing (NaN) and this {} model has no imputation",
                self.feature_names[k % d],
                k / d,
                self.family
            )));
        }
        Ok(n)
    }

    pub fn load(dir: &Path) -> Result<LinearModel, ModelError> {
        let meta = read_meta(dir)?;
        let path = dir.join("linear.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let c: Coefficients = serde_json::from_str(&text)
            .map_err(|e| ModelError::Artifact { path: path.clone(), message: e.to_string() })?;
        if c.coefficients.len() != meta.feature_names.len() || !c.intercept.is_finite() {
            return Err(ModelError::Artifact {
                path,
                message: format!(
                    "{} coefficients for {} features (or a non-finite intercept)",
                    c.coefficients.len(),
                    meta.feature_names.len()
                ),
            });
        }
        let family = match meta.family.as_str() {
            "logistic" => "logistic",
            _ => "linear",
        };
        Ok(LinearModel {
            family,
            task: meta.task,
            feature_names: meta.feature_names,
            intercept: c.intercept,
            coefficients: c.coefficients,
            params: meta.params,
            training: meta.training,
        })
    }
}

impl Model for LinearModel {
    fn family(&self) -> &'static str {
        self.family
    }
    fn task(&self) -> Task {
        self.task
    }
    fn feature_names(&self) -> &[String] {
        &self.feature_names
    }
    fn predict(&self, rows: &[f64]) -> Result<Vec<f64>, ModelError> {
        self.check_complete(rows)?;
        Ok(rows.chunks_exact(self.feature_names.len()).map(|r| self.output(self.raw(r))).collect())
    }
    /// |coefficient|: comparable across features when they are standardised (the default).
    fn feature_importance(&self) -> Result<Vec<Importance>, ModelError> {
        Ok(self
            .feature_names
            .iter()
            .zip(&self.coefficients)
            .map(|(f, w)| Importance { feature: f.clone(), gain: w.abs(), splits: 0.0 })
            .collect())
    }
    /// coefficient × value per feature, then the intercept: they sum to the raw score (log-odds for
    /// logistic regression).
    fn explain(&self, row: &[f64]) -> Result<Vec<f64>, ModelError> {
        if self.check_complete(row)? != 1 {
            return Err(ModelError::InvalidData("explain takes one row".into()));
        }
        let mut out: Vec<f64> = row.iter().zip(&self.coefficients).map(|(x, w)| x * w).collect();
        out.push(self.intercept);
        Ok(out)
    }
    fn meta(&self) -> ArtifactMeta {
        ArtifactMeta {
            format_version: crate::ARTIFACT_FORMAT_VERSION,
            family: self.family.to_string(),
            task: self.task,
            feature_names: self.feature_names.clone(),
            params: self.params.clone(),
            training: self.training.clone(),
            preprocess: None,
        }
    }
    fn write_files(&self, dir: &Path) -> Result<(), ModelError> {
        let c = Coefficients { intercept: self.intercept, coefficients: self.coefficients.clone() };
        write_atomically(&dir.join("linear.json"), &serde_json::to_vec_pretty(&c).expect("json"))
    }
}
