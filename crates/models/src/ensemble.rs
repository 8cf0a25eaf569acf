//! Ensembles of models of any family: a weighted average of their predictions, a (weighted) majority
//! vote of their classes, or stacking, where a meta-model learns from the members' out-of-fold
//! predictions only.
//!
//! Stacking's out-of-fold predictions come from contiguous time blocks of the training rows: each
//! block is predicted by members fitted on the other rows, minus those whose label windows overlap
//! the block's (purged, as in purged k-fold), so the meta-model never sees a prediction made by a
//! member that had trained on that row's label. The members are then refitted on every row.
//!
//! An ensemble is one artifact: `ensemble.json` holds each member's (and the meta-model's) artifact
//! files, so the registry, the server and `quantpipe models` handle it as any other model.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::linear::{LinearParams, LogisticParams};
use crate::{
    check_rows, fit, load, read_meta, write_atomically, ArtifactMeta, Dataset, Importance, Model, ModelError,
    ModelFile, ModelSpec, Task,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnsembleMethod {
    /// Weighted mean of the members' outputs (probabilities for classifiers, values for regressors).
    Average,
    /// Each member votes for its most probable class; the output is the weighted share of votes per
    /// class (for binary models: the share voting 1).
    Vote,
    /// A meta-model fitted on the members' out-of-fold outputs.
    Stacking,
}

/// One member of an ensemble: a model file's contents (a family with its parameters and, optionally,
/// its own preprocessing; default: the family's, e.g. standardisation for linear models and SVMs,
/// none for trees).
pub type Member = ModelFile;

fn default_folds() -> usize {
    5
}

/// `kind = "ensemble"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleParams {
    pub method: EnsembleMethod,
    /// `[[members]]` tables, each a model of the same task.
    pub members: Vec<Member>,
    /// average / vote: one non-negative weight per member (default: equal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Vec<f64>>,
    /// stacking: the meta-model (default: logistic regression for binary members, least squares for
    /// regressors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Box<Member>>,
    /// stacking: time blocks of the training rows for the out-of-fold predictions.
    #[serde(default = "default_folds")]
    pub stacking_folds: usize,
}

impl EnsembleParams {
    pub fn task(&self) -> Result<Task, ModelError> {
        let bad = |m: String| Err(ModelError::InvalidParams(m));
        if self.members.len() < 2 {
            return bad(format!("members: an ensemble needs at least two (has {})", self.members.len()));
        }
        let mut task = None;
        for (i, m) in self.members.iter().enumerate() {
            if matches!(m.spec, ModelSpec::Ensemble(_)) {
                return bad(format!("members[{i}]: ensembles do not nest"));
            }
            if m.spec.window() > 1 {
                return bad(format!(
                    "members[{i}]: an LSTM reads {} feature rows per input, and ensemble members share one row; \
                     train the LSTM as a model of its own",
                    m.spec.window()
                ));
            }
            let t = m.spec.task().map_err(|e| ModelError::InvalidParams(format!("members[{i}]: {}", strip(&e))))?;
            if let Some(p) = &m.preprocess {
                p.validate().map_err(|e| ModelError::InvalidParams(format!("members[{i}].preprocess: {e}")))?;
            }
            match task {
                None => task = Some(t),
                Some(first) if first != t => {
                    return bad(format!("members[{i}] predicts {t:?} but members[0] predicts {first:?}"))
                }
                Some(_) => {}
            }
        }
        let task = task.expect("at least two members");
        match self.method {
            EnsembleMethod::Average | EnsembleMethod::Vote => {
                if self.meta.is_some() {
                    return bad("meta: only stacking has a meta-model".into());
                }
                if self.method == EnsembleMethod::Vote && !task.is_classification() {
                    return bad("method = \"vote\" needs classifiers; regressors are averaged".into());
                }
                if let Some(w) = &self.weights {
                    if w.len() != self.members.len() {
                        return bad(format!("weights: {} weights for {} members", w.len(), self.members.len()));
                    }
                    if w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) || w.iter().sum::<f64>() <= 0.0 {
                        return bad(format!("weights = {w:?}: expected non-negative numbers, not all 0"));
                    }
                }
            }
            EnsembleMethod::Stacking => {
                if self.weights.is_some() {
                    return bad("weights: stacking learns how to combine the members; remove weights".into());
                }
                if !(2..=20).contains(&self.stacking_folds) {
                    return bad(format!("stacking_folds = {}: expected 2 to 20", self.stacking_folds));
                }
                let meta = self.meta_member(task)?;
                if matches!(meta.spec, ModelSpec::Ensemble(_)) {
                    return bad("meta: ensembles do not nest".into());
                }
                let t = meta.spec.task().map_err(|e| ModelError::InvalidParams(format!("meta: {}", strip(&e))))?;
                if t != task {
                    return bad(format!("meta predicts {t:?} but the members predict {task:?}"));
                }
            }
        }
        Ok(task)
    }

    /// The stacking meta-model: the configured one, or the default for the task.
    fn meta_member(&self, task: Task) -> Result<Member, ModelError> {
        if let Some(meta) = &self.meta {
            return Ok((**meta).clone());
        }
        let spec = match task {
            Task::Binary => ModelSpec::Logistic(LogisticParams::default()),
            Task::Regression => ModelSpec::Linear(LinearParams::default()),
            other => {
                return Err(ModelError::InvalidParams(format!(
                    "meta: give the meta-model for {other:?} members (defaults exist for binary and regression)"
                )))
            }
        };
        Ok(Member { preprocess: None, spec })
    }

    /// Whether any member (or the meta-model) is a LightGBM model: those train with every core and are
    /// never run side by side.
    pub fn uses_lightgbm(&self) -> bool {
        self.members.iter().chain(self.meta.as_deref()).any(|m| matches!(m.spec, ModelSpec::Lightgbm(_)))
    }
}

/// "invalid model parameters: x" → "x", so nested messages read once.
fn strip(e: &ModelError) -> String {
    match e {
        ModelError::InvalidParams(m) => m.clone(),
        other => other.to_string(),
    }
}

/// A fitted ensemble.
pub struct EnsembleModel {
    method: EnsembleMethod,
    task: Task,
    feature_names: Vec<String>,
    members: Vec<Box<dyn Model>>,
    /// Normalised to sum to 1 (average and vote).
    weights: Vec<f64>,
    meta: Option<Box<dyn Model>>,
    params: serde_json::Value,
    training: serde_json::Value,
}

/// Rows of a dataset picked by index, owned, with their label windows.
struct Rows {
    features: Vec<f64>,
    labels: Vec<f64>,
    start: Vec<i64>,
    end: Vec<i64>,
}

impl Rows {
    fn pick(data: &Dataset, rows: &[usize]) -> Rows {
        let d = data.n_features();
        Rows {
            features: rows.iter().flat_map(|&i| data.features[i * d..(i + 1) * d].iter().copied()).collect(),
            labels: rows.iter().map(|&i| data.labels[i]).collect(),
            start: data.label_windows.map_or_else(Vec::new, |(s, _)| rows.iter().map(|&i| s[i]).collect()),
            end: data.label_windows.map_or_else(Vec::new, |(_, e)| rows.iter().map(|&i| e[i]).collect()),
        }
    }

    fn dataset<'a>(&'a self, data: &Dataset<'a>) -> Dataset<'a> {
        Dataset {
            features: &self.features,
            labels: &self.labels,
            weights: None,
            label_windows: data.label_windows.map(|_| (self.start.as_slice(), self.end.as_slice())),
            ..*data
        }
    }
}

/// Names of the meta-model's inputs: one per member output.
fn meta_feature_names(members: usize, outputs: usize) -> Vec<String> {
    (0..members)
        .flat_map(|m| {
            (0..outputs)
                .map(move |c| if outputs == 1 { format!("member_{m}") } else { format!("member_{m}_class_{c}") })
        })
        .collect()
}

impl EnsembleModel {
    pub fn fit(data: &Dataset, params: &EnsembleParams) -> Result<EnsembleModel, ModelError> {
        let task = params.task()?;
        if data.weights.is_some() {
            return Err(ModelError::InvalidParams("ensembles do not take sample weights yet".into()));
        }
        let started = std::time::Instant::now();
        let fit_member = |i: usize, m: &Member, rows: &Dataset| {
            fit(&m.spec, m.preprocess.as_ref(), rows).map_err(|e| prefix(&format!("members[{i}]"), e))
        };
        let n = data.rows();
        let outputs = task.outputs();
        let mut purged_total = 0;
        let meta = if params.method == EnsembleMethod::Stacking {
            let k = params.stacking_folds.min(n);
            let width = params.members.len() * outputs;
            let mut oof = vec![0.0; n * width];
            for f in 0..k {
                let (lo, hi) = (f * n / k, (f + 1) * n / k);
                if lo == hi {
                    continue;
                }
                // Purge: rows outside the block whose label windows overlap the block's.
                let (block_start, block_end) = match data.label_windows {
                    Some((s, e)) => (s[lo..hi].iter().min().copied(), e[lo..hi].iter().max().copied()),
                    None => (None, None),
                };
                let train: Vec<usize> = (0..lo)
                    .chain(hi..n)
                    .filter(|&i| match (data.label_windows, block_start, block_end) {
                        (Some((s, e)), Some(bs), Some(be)) => e[i] < bs || s[i] > be,
                        _ => true,
                    })
                    .collect();
                purged_total += n - (hi - lo) - train.len();
                let rows = Rows::pick(data, &train);
                let block = &data.features[lo * data.n_features()..hi * data.n_features()];
                for (m, member) in params.members.iter().enumerate() {
                    let model = fit_member(m, member, &rows.dataset(data))
                        .map_err(|e| prefix(&format!("stacking block {} of {k}", f + 1), e))?;
                    let predicted = model.predict(block)?;
                    for (r, chunk) in predicted.chunks_exact(outputs).enumerate() {
                        let at = (lo + r) * width + m * outputs;
                        oof[at..at + outputs].copy_from_slice(chunk);
                    }
                }
            }
            let names = meta_feature_names(params.members.len(), outputs);
            let meta_data = Dataset { features: &oof, feature_names: &names, ..*data };
            let member = params.meta_member(task)?;
            Some(fit(&member.spec, member.preprocess.as_ref(), &meta_data).map_err(|e| prefix("meta", e))?)
        } else {
            None
        };
        let members: Vec<Box<dyn Model>> =
            params.members.iter().enumerate().map(|(i, m)| fit_member(i, m, data)).collect::<Result<_, _>>()?;
        let raw = params.weights.clone().unwrap_or_else(|| vec![1.0; members.len()]);
        let total: f64 = raw.iter().sum();
        Ok(EnsembleModel {
            method: params.method,
            task,
            feature_names: data.feature_names.to_vec(),
            weights: raw.iter().map(|w| w / total).collect(),
            params: serde_json::to_value(params).expect("params serialise"),
            training: serde_json::json!({
                "rows": n,
                "members": members.iter().map(|m| m.family()).collect::<Vec<_>>(),
                "stacking_purged_rows": purged_total,
                "seconds": started.elapsed().as_secs_f64(),
            }),
            members,
            meta,
        })
    }

    /// Each member's outputs for `rows`, row-major per member.
    fn member_outputs(&self, rows: &[f64]) -> Result<Vec<Vec<f64>>, ModelError> {
        self.members.iter().map(|m| m.predict(rows)).collect()
    }

    pub fn members(&self) -> &[Box<dyn Model>] {
        &self.members
    }

    pub fn meta_model(&self) -> Option<&dyn Model> {
        self.meta.as_deref()
    }

    pub fn load(dir: &Path) -> Result<EnsembleModel, ModelError> {
        let meta = read_meta(dir)?;
        let path = dir.join("ensemble.json");
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let bundle: Bundle = serde_json::from_str(&text)
            .map_err(|e| ModelError::Artifact { path: path.clone(), message: e.to_string() })?;
        let params: EnsembleParams = serde_json::from_value(meta.params.clone())
            .map_err(|e| ModelError::Artifact { path: dir.join("model.json"), message: format!("params: {e}") })?;
        if bundle.members.len() != params.members.len() || bundle.weights.len() != params.members.len() {
            return Err(ModelError::Artifact {
                path,
                message: format!("{} member artifacts for {} members", bundle.members.len(), params.members.len()),
            });
        }
        let members: Vec<Box<dyn Model>> = bundle.members.iter().map(unbundle).collect::<Result<_, _>>()?;
        let meta_model = bundle.meta.as_ref().map(unbundle).transpose()?;
        if members.iter().any(|m| m.feature_names() != meta.feature_names.as_slice() || m.task() != meta.task) {
            return Err(ModelError::Artifact {
                path,
                message: "a member's features or task differ from the ensemble's".into(),
            });
        }
        Ok(EnsembleModel {
            method: params.method,
            task: meta.task,
            feature_names: meta.feature_names,
            members,
            weights: bundle.weights,
            meta: meta_model,
            params: meta.params,
            training: meta.training,
        })
    }
}

fn prefix(what: &str, e: ModelError) -> ModelError {
    match e {
        ModelError::InvalidParams(m) => ModelError::InvalidParams(format!("{what}: {m}")),
        ModelError::InvalidData(m) => ModelError::InvalidData(format!("{what}: {m}")),
        ModelError::Training(m) => ModelError::Training(format!("{what}: {m}")),
        ModelError::LightGbm(m) => ModelError::LightGbm(format!("{what}: {m}")),
        other => other,
    }
}

/// `ensemble.json`: every member's artifact files (name → text), the meta-model's, and the weights.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Bundle {
    weights: Vec<f64>,
    members: Vec<BTreeMap<String, String>>,
    meta: Option<BTreeMap<String, String>>,
}

/// A private scratch directory (members are saved and loaded through the ordinary artifact code).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, ModelError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "quantpipe-ensemble-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| ModelError::io(&dir, e))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bundle(model: &dyn Model) -> Result<BTreeMap<String, String>, ModelError> {
    let scratch = Scratch::new()?;
    model.save(&scratch.0)?;
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&scratch.0).map_err(|e| ModelError::io(&scratch.0, e))? {
        let path = entry.map_err(|e| ModelError::io(&scratch.0, e))?.path();
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        files.insert(path.file_name().expect("a file").to_string_lossy().to_string(), text);
    }
    Ok(files)
}

fn unbundle(files: &BTreeMap<String, String>) -> Result<Box<dyn Model>, ModelError> {
    let scratch = Scratch::new()?;
    for (name, text) in files {
        if name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(ModelError::Artifact {
                path: scratch.0.clone(),
                message: format!("bad member file name {name:?}"),
            });
        }
        let path = scratch.0.join(name);
        std::fs::write(&path, text).map_err(|e| ModelError::io(&path, e))?;
    }
    load(&scratch.0)
}

impl Model for EnsembleModel {
    fn family(&self) -> &'static str {
        "ensemble"
    }
    fn task(&self) -> Task {
        self.task
    }
    fn feature_names(&self) -> &[String] {
        &self.feature_names
    }
    fn predict(&self, rows: &[f64]) -> Result<Vec<f64>, ModelError> {
        let n = check_rows(&self.feature_names, rows)?;
        let outputs = self.task.outputs();
        let each = self.member_outputs(rows)?;
        Ok(match (self.method, &self.meta) {
            (EnsembleMethod::Stacking, Some(meta)) => {
                let width = each.len() * outputs;
                let mut x = vec![0.0; n * width];
                for (m, predicted) in each.iter().enumerate() {
                    for (r, chunk) in predicted.chunks_exact(outputs).enumerate() {
                        x[r * width + m * outputs..r * width + (m + 1) * outputs].copy_from_slice(chunk);
                    }
                }
                meta.predict(&x)?
            }
            (EnsembleMethod::Vote, _) => {
                let classes = outputs.max(2);
                let mut out = vec![0.0; n * outputs];
                for (predicted, w) in each.iter().zip(&self.weights) {
                    for (r, chunk) in predicted.chunks_exact(outputs).enumerate() {
                        let class = if outputs == 1 {
                            usize::from(chunk[0] > 0.5)
                        } else {
                            (0..classes).max_by(|&a, &b| chunk[a].total_cmp(&chunk[b])).unwrap_or(0)
                        };
                        match outputs {
                            1 if class == 1 => out[r] += w,
                            1 => {}
                            _ => out[r * outputs + class] += w,
                        }
                    }
                }
                out
            }
            _ => {
                let mut out = vec![0.0; n * outputs];
                for (predicted, w) in each.iter().zip(&self.weights) {
                    out.iter_mut().zip(predicted).for_each(|(o, p)| *o += w * p);
                }
                out
            }
        })
    }
    /// The members' importances, each scaled to sum to 1, averaged with the ensemble's weights
    /// (stacking: equal weights); members without importances (RBF SVMs) are left out.
    fn feature_importance(&self) -> Result<Vec<Importance>, ModelError> {
        let mut total = vec![0.0; self.feature_names.len()];
        let mut used = 0;
        for (m, w) in self.members.iter().zip(&self.weights) {
            let Ok(importance) = m.feature_importance() else { continue };
            let sum: f64 = importance.iter().map(|i| i.gain).sum();
            if sum > 0.0 {
                used += 1;
                for (t, i) in total.iter_mut().zip(&importance) {
                    *t += w * i.gain / sum;
                }
            }
        }
        if used == 0 {
            return Err(ModelError::InvalidParams("no member of this ensemble reports feature importance".into()));
        }
        Ok(self
            .feature_names
            .iter()
            .zip(total)
            .map(|(f, gain)| Importance { feature: f.clone(), gain, splits: 0.0 })
            .collect())
    }
    /// Averaged regressors only: the weighted sum of the members' contributions, which sums to the
    /// prediction. Probabilities and votes do not decompose this way.
    fn explain(&self, row: &[f64]) -> Result<Vec<f64>, ModelError> {
        if !(self.method == EnsembleMethod::Average && self.task == Task::Regression) {
            return Err(ModelError::InvalidParams(
                "per-feature contributions are available for averaged regressors only".into(),
            ));
        }
        let mut out = vec![0.0; self.feature_names.len() + 1];
        for (m, w) in self.members.iter().zip(&self.weights) {
            let parts = m.explain(row)?;
            out.iter_mut().zip(&parts).for_each(|(o, p)| *o += w * p);
        }
        Ok(out)
    }
    fn meta(&self) -> ArtifactMeta {
        ArtifactMeta::of("ensemble", self.task, &self.feature_names, &self.params, &self.training)
    }
    fn write_files(&self, dir: &Path) -> Result<(), ModelError> {
        let bundle = Bundle {
            weights: self.weights.clone(),
            members: self.members.iter().map(|m| bundle(m.as_ref())).collect::<Result<_, _>>()?,
            meta: self.meta.as_deref().map(bundle).transpose()?,
        };
        write_atomically(&dir.join("ensemble.json"), &serde_json::to_vec(&bundle).expect("json"))
    }
}
