//! The register stage: a recorded run, one new version per model with its out-of-sample and backtest
//! metrics, then promotion to the configured stage through the gate. Nothing reaches the registry
//! before every earlier stage has succeeded.

use std::collections::BTreeMap;

use quantpipe_core::Scope;
use quantpipe_registry::{Evaluation, NewVersion, Registry, RegistryError, Selector, Stage, VersionRef};
use serde::Serialize;

use crate::config::LoadedConfig;
use crate::run::{Evaluated, ModelOutcome, Prepared};
use crate::PipelineError;

/// A version ready to register: its description and its artifact files (name → bytes).
type PendingVersion = (NewVersion, Vec<(String, Vec<u8>)>);

/// One model's version and where it ended up.
#[derive(Debug, Clone, Serialize)]
pub struct Registered {
    pub model: String,
    /// `name@1.2.0`.
    pub version: String,
    pub stage: Stage,
    /// Why promotion to production was refused (empty when it was not refused).
    pub gate_failures: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegistryOutcome {
    pub run_id: i64,
    pub experiment: String,
    pub versions: Vec<Registered>,
}

/// The metrics a version carries, for gates, ranking and `models compare`: every finite number.
pub fn version_metrics(model: &ModelOutcome, evaluated: &Evaluated) -> BTreeMap<String, f64> {
    let mut metrics = BTreeMap::new();
    if let Some(scores) = model.oos_scores.as_object() {
        for (k, v) in scores {
            if let Some(x) = v.as_f64().filter(|_| k != "rows" && k != "positives") {
                metrics.insert(format!("oos_{k}"), x);
            }
        }
    }
    metrics.insert("oos_rows".into(), model.oos_rows as f64);
    if let Some(bt) = &model.backtest {
        let s = &bt.strategy;
        metrics.insert("sharpe".into(), s.sharpe);
        metrics.insert("sortino".into(), s.sortino);
        metrics.insert("max_drawdown".into(), s.max_drawdown);
        metrics.insert("total_return".into(), s.total_return);
        metrics.insert("annualized_return".into(), s.annualized_return);
        metrics.insert("trades".into(), s.trades as f64);
        metrics.insert("buy_and_hold_sharpe".into(), bt.buy_and_hold.sharpe);
        if let Some(rate) = s.approval_rate {
            metrics.insert("approval_rate".into(), rate);
        }
    }
    if let Some(stats) = &model.sharpe_statistics {
        metrics.insert("probabilistic_sharpe".into(), stats.probabilistic_sharpe);
        metrics.insert("deflated_sharpe".into(), stats.deflated_sharpe);
        metrics.insert("trials".into(), stats.trials as f64);
    }
    if let Some(pbo) = &evaluated.overfitting.pbo {
        metrics.insert("pbo".into(), pbo.pbo);
    }
    metrics.retain(|_, v| v.is_finite());
    metrics
}

/// Records the run and registers every model, then promotes each to the configured stage.
#[allow(clippy::too_many_arguments)]
pub async fn register(
    registry: &Registry,
    scope: &Scope,
    actor: &str,
    loaded: &LoadedConfig,
    prepared: &Prepared,
    evaluated: &Evaluated,
    code_version: &str,
    seconds: f64,
) -> Result<RegistryOutcome, PipelineError> {
    let fail = |e: RegistryError| PipelineError::stage("register", e);
    let config = &loaded.config;
    // Everything that could refuse a version is read before the first write.
    let mut pending = Vec::new();
    for model in &evaluated.models {
        let mut files = Vec::new();
        let dir = &model.artifact;
        for entry in std::fs::read_dir(dir).map_err(|e| PipelineError::io(dir, e))? {
            let entry = entry.map_err(|e| PipelineError::io(dir, e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if entry.path().is_file() && !name.starts_with('.') {
                files.push((name, std::fs::read(entry.path()).map_err(|e| PipelineError::io(&entry.path(), e))?));
            }
        }
        files.sort();
        let metrics = version_metrics(model, evaluated);
        let mut evaluations: Vec<Evaluation> = model
            .folds
            .iter()
            .filter(|f| f.score.is_finite())
            .map(|f| Evaluation {
                split: format!("fold_{}", f.fold),
                metric: model.headline_metric.clone(),
                value: f.score,
            })
            .collect();
        evaluations.extend(metrics.iter().filter_map(|(k, &v)| {
            k.strip_prefix("oos_").map(|m| Evaluation { split: "oos".into(), metric: m.into(), value: v })
        }));
        // Every trial of a parameter search, so the registry shows what was tried, not only the winner.
        if let Some(search) = &model.search {
            evaluations.extend(search.trials.iter().filter(|t| t.score.is_finite()).map(|t| Evaluation {
                split: format!("trial_{}", t.trial),
                metric: search.metric.clone(),
                value: t.score,
            }));
        }
        let mut params = model.params.clone();
        if let (Some(object), Some(pre)) = (
            params.as_object_mut(),
            config.models.iter().find(|m| m.name == model.name).and_then(|m| m.preprocess.as_ref()),
        ) {
            object.insert("preprocess".into(), serde_json::to_value(pre).expect("serialises"));
        }
        if let (Some(object), Some(search)) = (params.as_object_mut(), &model.search) {
            object.insert(
                "search".into(),
                serde_json::json!({
                    "method": search.method,
                    "metric": search.metric,
                    "trials": search.trials.len(),
                    "chosen": search.chosen,
                    "chosen_params": search.trials[search.chosen - 1].params,
                }),
            );
        }
        let new = NewVersion {
            name: model.name.clone(),
            family: model.family.clone(),
            task: crate::run::task_name(model.task),
            params,
            feature_set: prepared.feature_set.name.clone(),
            feature_set_hash: prepared.feature_set.hash(),
            feature_names: model.inputs.clone(),
            label: serde_json::json!({"spec": config.label, "target": model.target, "classes": model.classes}),
            label_lookahead: prepared.labels.lookahead.name(),
            dataset_hash: prepared.data.dataset_hash.clone(),
            code_version: code_version.to_string(),
            run_id: None,
            metrics,
            evaluations,
            description: config.description.clone(),
            stage: Some(if config.registry.stage == Stage::Draft { Stage::Draft } else { Stage::Staging }),
        };
        pending.push((new, files));
    }
    let run_config = serde_json::json!({
        "command": "run",
        "pipeline": loaded.path,
        "pipeline_hash": loaded.hash,
        "data": prepared.data.source,
    });
    let params = serde_json::to_value(config).expect("serialises");
    let run = registry
        .start_run(scope, &config.registry.experiment, &run_config, &params, code_version, actor)
        .await
        .map_err(fail)?;
    let outcome = register_versions(registry, scope, actor, config, run.id, pending).await;
    let ended =
        registry.finish_run(scope, run.id, outcome.as_ref().map(|_| ()).map_err(|e| e.to_string()), seconds).await;
    let versions = outcome?;
    ended.map_err(fail)?;
    Ok(RegistryOutcome { run_id: run.id, experiment: config.registry.experiment.clone(), versions })
}

async fn register_versions(
    registry: &Registry,
    scope: &Scope,
    actor: &str,
    config: &crate::config::PipelineConfig,
    run_id: i64,
    pending: Vec<PendingVersion>,
) -> Result<Vec<Registered>, PipelineError> {
    let fail = |e: RegistryError| PipelineError::stage("register", e);
    let mut out = Vec::new();
    for (mut new, files) in pending {
        new.run_id = Some(run_id);
        let version = registry.register(scope, &new, files, actor).await.map_err(fail)?;
        let mut registered = Registered {
            model: version.name.clone(),
            version: version.reference(),
            stage: version.stage,
            gate_failures: Vec::new(),
        };
        if config.registry.stage == Stage::Production {
            let reference = VersionRef { name: version.name.clone(), selector: Selector::Exact(version.version) };
            match registry.promote(scope, &reference, Stage::Production, Some(&config.registry.gate), actor).await {
                Ok(_) => registered.stage = Stage::Production,
                Err(RegistryError::GateRefused { failures, .. }) => registered.gate_failures = failures,
                Err(e) => return Err(fail(e)),
            }
        }
        out.push(registered);
    }
    Ok(out)
}
