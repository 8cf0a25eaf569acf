//! Support vector machines from `libsvm-rs`, a pure-Rust port of LIBSVM (the solver behind
//! scikit-learn's `SVC` and `SVR`): C-SVC for binary labels and ε-SVR for regression, with a linear or
//! an RBF kernel.
//!
//! Probabilities: an SVM gives a decision value, not a probability. Like LIBSVM (and scikit-learn's
//! `probability=True`), the binary model fits Platt's sigmoid P(1 | f) = 1 / (1 + exp(A·f + B)) on
//! out-of-fold decision values of its training rows; unlike them, the folds are contiguous blocks in
//! time order rather than a shuffle by the C library's global `rand()`, so the same rows always give
//! the same model, whatever else the process trained before.
//!
//! Kernel SVM training grows with the square of the rows (and the kernel cache with them), so
//! `max_rows` refuses training sets that would run for hours rather than letting them.

use std::path::Path;

use libsvm_rs::probability::{sigmoid_predict, sigmoid_train};
use libsvm_rs::{KernelType, SvmNode, SvmParameter, SvmProblem, SvmType};
use serde::{Deserialize, Serialize};

use quantpipe_core::parallel::{map_in_parallel, workers_for};

use crate::{
    check_rows, read_meta, refuse_missing, write_atomically, ArtifactMeta, Dataset, Importance, Model, ModelError, Task,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SvmObjective {
    /// C-SVC on labels 0/1; predicts P(1) through Platt scaling.
    #[default]
    Binary,
    /// ε-SVR; predicts the value.
    Regression,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SvmKernel {
    /// K(x, y) = x·y.
    Linear,
    /// K(x, y) = exp(−γ‖x − y‖²).
    #[default]
    Rbf,
}

fn one() -> f64 {
    1.0
}
fn default_epsilon() -> f64 {
    0.1
}
fn default_tolerance() -> f64 {
    1e-3
}
fn default_cache_mb() -> f64 {
    200.0
}
fn default_calibration_folds() -> usize {
    5
}
fn default_max_rows() -> usize {
    50_000
}

/// `kind = "svm"`. Defaults follow scikit-learn's `SVC` / `SVR` (C = 1, RBF, γ = "scale", tol = 1e-3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SvmParams {
    #[serde(default)]
    pub objective: SvmObjective,
    #[serde(default)]
    pub kernel: SvmKernel,
    /// Cost of a margin violation: larger fits the training rows more tightly.
    #[serde(default = "one")]
    pub c: f64,
    /// RBF width. Absent: scikit-learn's "scale", 1 / (features × variance of the training values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    /// ε-SVR: half-width of the tube inside which errors cost nothing.
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// Solver stopping tolerance (LIBSVM's `-e`).
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    /// Kernel cache, megabytes.
    #[serde(default = "default_cache_mb")]
    pub cache_mb: f64,
    /// Binary: contiguous time blocks of the training rows whose out-of-fold decision values fit the
    /// probability sigmoid (LIBSVM uses 5 shuffled folds).
    #[serde(default = "default_calibration_folds")]
    pub calibration_folds: usize,
    /// Refuse training sets larger than this.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
}

impl Default for SvmParams {
    fn default() -> Self {
        SvmParams {
            objective: SvmObjective::Binary,
            kernel: SvmKernel::Rbf,
            c: 1.0,
            gamma: None,
            epsilon: default_epsilon(),
            tolerance: default_tolerance(),
            cache_mb: default_cache_mb(),
            calibration_folds: default_calibration_folds(),
            max_rows: default_max_rows(),
        }
    }
}

impl SvmParams {
    pub fn task(&self) -> Result<Task, ModelError> {
        let bad = |m: String| Err(ModelError::InvalidParams(m));
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.c) {
            return bad(format!("c = {}: expected a positive number", self.c));
        }
        if let Some(g) = self.gamma {
            if !positive(g) {
                return bad(format!("gamma = {g}: expected a positive number (or leave it out for \"scale\")"));
            }
            if self.kernel == SvmKernel::Linear {
                return bad("gamma: a linear kernel has no width; remove gamma or use kernel = \"rbf\"".into());
            }
        }
        if !(self.epsilon.is_finite() && self.epsilon >= 0.0) {
            return bad(format!("epsilon = {}: expected ≥ 0", self.epsilon));
        }
        if !positive(self.tolerance) {
            return bad(format!("tolerance = {}: expected a positive number", self.tolerance));
        }
        if !(self.cache_mb.is_finite() && self.cache_mb >= 1.0) {
            return bad(format!("cache_mb = {}: expected at least 1", self.cache_mb));
        }
        if self.objective == SvmObjective::Binary && !(2..=20).contains(&self.calibration_folds) {
            return bad(format!("calibration_folds = {}: expected 2 to 20", self.calibration_folds));
        }
        if self.max_rows == 0 {
            return bad("max_rows = 0: expected at least 1".into());
        }
        Ok(match self.objective {
            SvmObjective::Binary => Task::Binary,
            SvmObjective::Regression => Task::Regression,
        })
    }

    fn parameter(&self, gamma: f64) -> SvmParameter {
        SvmParameter {
            svm_type: match self.objective {
                SvmObjective::Binary => SvmType::CSvc,
                SvmObjective::Regression => SvmType::EpsilonSvr,
            },
            kernel_type: match self.kernel {
                SvmKernel::Linear => KernelType::Linear,
                SvmKernel::Rbf => KernelType::Rbf,
            },
            gamma,
            c: self.c,
            p: self.epsilon,
            eps: self.tolerance,
            cache_size: self.cache_mb,
            ..SvmParameter::default()
        }
    }
}

/// What `svm.json` holds beside `model.json`: LIBSVM's model (support vectors, coefficients, ρ) and
/// the calibration, at full precision (LIBSVM's text format rounds support vectors to 8 digits).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SvmFile {
    model: libsvm_rs::SvmModel,
    /// The γ used (resolved from "scale" at training time).
    gamma: f64,
    /// Decision values are negated so that positive means class 1 (LIBSVM orients them by the order
    /// in which labels first appear in the training rows).
    negate: bool,
    /// Platt's sigmoid (A, B) on oriented decision values; binary models only.
    platt: Option<(f64, f64)>,
}

/// A fitted SVM.
pub struct SvmModel {
    task: Task,
    feature_names: Vec<String>,
    file: SvmFile,
    params: serde_json::Value,
    training: serde_json::Value,
}

fn nodes(row: &[f64]) -> Vec<SvmNode> {
    row.iter().enumerate().map(|(j, &value)| SvmNode { index: j as i32 + 1, value }).collect()
}

/// Trains LIBSVM on `rows` (indices into the dataset) and returns the model and whether its decision
/// values need negating so positive means class 1 / larger values.
fn train(
    data: &Dataset,
    rows: std::ops::Range<usize>,
    parameter: &SvmParameter,
    binary: bool,
) -> (libsvm_rs::SvmModel, bool) {
    let d = data.n_features();
    let problem = SvmProblem {
        labels: rows
            .clone()
            .map(|i| {
                let y = data.labels[i];
                if binary {
                    if y == 1.0 {
                        1.0
                    } else {
                        -1.0
                    }
                } else {
                    y
                }
            })
            .collect(),
        instances: rows.map(|i| nodes(&data.features[i * d..(i + 1) * d])).collect(),
    };
    let model = libsvm_rs::train::svm_train(&problem, parameter);
    let negate = binary && model.label.first() != Some(&1);
    (model, negate)
}

fn decision(model: &libsvm_rs::SvmModel, negate: bool, row: &[f64]) -> f64 {
    let mut values = [0.0];
    libsvm_rs::predict::predict_values(model, &nodes(row), &mut values);
    if negate {
        -values[0]
    } else {
        values[0]
    }
}

impl SvmModel {
    pub fn fit(data: &Dataset, params: &SvmParams) -> Result<SvmModel, ModelError> {
        let task = params.task()?;
        if data.weights.is_some() {
            return Err(ModelError::InvalidParams("svm models do not take sample weights".into()));
        }
        task.check_labels(data.labels)?;
        let (n, d) = (data.rows(), data.n_features());
        if n > params.max_rows {
            return Err(ModelError::InvalidData(format!(
                "{n} training rows: kernel SVM training grows with the square of the rows; this model allows \
                 {} (raise max_rows, shorten the training window, or use a linear or tree model)",
                params.max_rows
            )));
        }
        refuse_missing(data.feature_names, data.features, "svm models need every value; impute in [preprocess]")?;
        let binary = task == Task::Binary;
        if binary {
            let positives = data.labels.iter().filter(|&&y| y == 1.0).count();
            if positives == 0 || positives == n {
                return Err(ModelError::InvalidData(
                    "an SVM classifier needs both classes in the training rows".into(),
                ));
            }
        }
        let gamma = params.gamma.unwrap_or_else(|| {
            let m = data.features.iter().sum::<f64>() / data.features.len() as f64;
            let var = data.features.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / data.features.len() as f64;
            if var > 0.0 {
                1.0 / (d as f64 * var)
            } else {
                1.0
            }
        });
        let parameter = params.parameter(gamma);
        parameter.validate().map_err(|e| ModelError::InvalidParams(format!("svm: {e}")))?;
        libsvm_rs::set_quiet(true);
        let started = std::time::Instant::now();

        // The final fit and, for classifiers, one fit per calibration block (whose out-of-fold
        // decision values fit the probability sigmoid) are independent: they share the cores.
        let folds = if binary { params.calibration_folds.min(n) } else { 0 };
        let jobs: Vec<Option<usize>> = std::iter::once(None).chain((0..folds).map(Some)).collect();
        let outcomes = map_in_parallel(&jobs, workers_for(jobs.len()), |_, job| -> Result<FitJob, ModelError> {
            let Some(f) = *job else {
                return Ok(FitJob::Final(Box::new(train(data, 0..n, &parameter, binary))));
            };
            let (lo, hi) = (f * n / folds, (f + 1) * n / folds);
            let kept: Vec<usize> = (0..lo).chain(hi..n).collect();
            let fold = subset(data, &kept);
            if !(fold.labels.contains(&1.0) && fold.labels.iter().any(|&y| y != 1.0)) {
                return Err(ModelError::InvalidData(format!(
                    "calibration fold {} of {folds} leaves one class only; use fewer calibration_folds",
                    f + 1
                )));
            }
            let (model, negate) = train(&fold.view(data), 0..kept.len(), &parameter, true);
            let values = (lo..hi).map(|i| decision(&model, negate, &data.features[i * d..(i + 1) * d])).collect();
            Ok(FitJob::Block(lo, values))
        });
        let mut fitted = None;
        let mut oof = vec![0.0; n];
        for outcome in outcomes {
            match outcome? {
                FitJob::Final(model) => fitted = Some(*model),
                FitJob::Block(lo, values) => oof[lo..lo + values.len()].copy_from_slice(&values),
            }
        }
        let (model, negate) = fitted.expect("the final fit is always a job");
        let platt = binary.then(|| {
            let targets: Vec<f64> = data.labels.iter().map(|&y| if y == 1.0 { 1.0 } else { -1.0 }).collect();
            sigmoid_train(&oof, &targets)
        });
        let support_vectors = model.sv.len();
        Ok(SvmModel {
            task,
            feature_names: data.feature_names.to_vec(),
            file: SvmFile { model, gamma, negate, platt },
            params: serde_json::to_value(params).expect("params serialise"),
            training: serde_json::json!({
                "rows": n,
                "support_vectors": support_vectors,
                "gamma": gamma,
                "seconds": started.elapsed().as_secs_f64(),
            }),
        })
    }

    /// The oriented decision value of one row (positive: class 1 for classifiers).
    pub fn decision_value(&self, row: &[f64]) -> f64 {
        decision(&self.file.model, self.file.negate, row)
    }

    pub fn load(dir: &Path) -> Result<SvmModel, ModelError> {
        let meta = read_meta(dir)?;
        let path = dir.join("svm.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let file: SvmFile = serde_json::from_str(&text)
            .map_err(|e| ModelError::Artifact { path: path.clone(), message: e.to_string() })?;
        let d = meta.feature_names.len() as i32;
        if file.model.sv.iter().flatten().any(|node| node.index < 1 || node.index > d) {
            return Err(ModelError::Artifact {
                path,
                message: format!("support vectors name features outside 1..={d}"),
            });
        }
        Ok(SvmModel {
            task: meta.task,
            feature_names: meta.feature_names,
            file,
            params: meta.params,
            training: meta.training,
        })
    }

    /// w of the linear kernel's decision function w·x − ρ (oriented), when the kernel is linear.
    fn linear_weights(&self) -> Option<Vec<f64>> {
        if self.file.model.param.kernel_type != KernelType::Linear {
            return None;
        }
        let mut w = vec![0.0; self.feature_names.len()];
        for (coef, sv) in self.file.model.sv_coef.first()?.iter().zip(&self.file.model.sv) {
            for node in sv {
                w[(node.index - 1) as usize] += coef * node.value;
            }
        }
        if self.file.negate {
            w.iter_mut().for_each(|x| *x = -*x);
        }
        Some(w)
    }
}

/// What one of the independent fits of [`SvmModel::fit`] produced.
enum FitJob {
    /// The model on every row, and whether its decision values are negated.
    Final(Box<(libsvm_rs::SvmModel, bool)>),
    /// Out-of-fold decision values of the rows from the first index on.
    Block(usize, Vec<f64>),
}

/// Rows of `data` picked by index, owned.
struct Subset {
    features: Vec<f64>,
    labels: Vec<f64>,
}

impl Subset {
    fn view<'a>(&'a self, data: &Dataset<'a>) -> Dataset<'a> {
        Dataset { features: &self.features, labels: &self.labels, weights: None, label_windows: None, ..*data }
    }
}

fn subset(data: &Dataset, rows: &[usize]) -> Subset {
    let d = data.n_features();
    Subset {
        features: rows.iter().flat_map(|&i| data.features[i * d..(i + 1) * d].iter().copied()).collect(),
        labels: rows.iter().map(|&i| data.labels[i]).collect(),
    }
}

impl Model for SvmModel {
    fn family(&self) -> &'static str {
        "svm"
    }
    fn task(&self) -> Task {
        self.task
    }
    fn feature_names(&self) -> &[String] {
        &self.feature_names
    }
    fn predict(&self, rows: &[f64]) -> Result<Vec<f64>, ModelError> {
        check_rows(&self.feature_names, rows)?;
        let d = self.feature_names.len();
        refuse_missing(&self.feature_names, rows, "this svm model has no imputation")?;
        Ok(rows
            .chunks_exact(d)
            .map(|row| {
                let f = self.decision_value(row);
                match self.file.platt {
                    Some((a, b)) => sigmoid_predict(f, a, b),
                    None => f,
                }
            })
            .collect())
    }
    /// |w| per feature for a linear kernel (comparable when features are standardised, the default);
    /// an RBF kernel has no per-feature weights.
    fn feature_importance(&self) -> Result<Vec<Importance>, ModelError> {
        let w = self.linear_weights().ok_or_else(|| {
            ModelError::InvalidParams("an RBF SVM has no per-feature importance; use a linear kernel".into())
        })?;
        Ok(self
            .feature_names
            .iter()
            .zip(w)
            .map(|(f, w)| Importance { feature: f.clone(), gain: w.abs(), splits: 0.0 })
            .collect())
    }
    /// Linear kernel: w_j·x_j per feature, then −ρ; they sum to the (oriented) decision value.
    fn explain(&self, row: &[f64]) -> Result<Vec<f64>, ModelError> {
        if check_rows(&self.feature_names, row)? != 1 {
            return Err(ModelError::InvalidData("explain takes one row".into()));
        }
        let w = self.linear_weights().ok_or_else(|| {
            ModelError::InvalidParams("per-feature contributions of an RBF SVM are not available".into())
        })?;
        let rho = self.file.model.rho.first().copied().unwrap_or(0.0);
        let mut out: Vec<f64> = row.iter().zip(&w).map(|(x, w)| x * w).collect();
        out.push(if self.file.negate { rho } else { -rho });
        Ok(out)
    }
    fn meta(&self) -> ArtifactMeta {
        ArtifactMeta::of("svm", self.task, &self.feature_names, &self.params, &self.training)
    }
    fn write_files(&self, dir: &Path) -> Result<(), ModelError> {
        write_atomically(&dir.join("svm.json"), &serde_json::to_vec(&self.file).expect("json"))
    }
}
