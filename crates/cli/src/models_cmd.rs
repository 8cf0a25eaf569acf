//! `quantpipe models …` and `quantpipe runs …`: the registry from the terminal. Every command is a
//! thin call into `quantpipe_registry`, the same functions the HTTP API uses.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use quantpipe_core::time::format_iso;
use quantpipe_registry::{
    ArtifactStore, Evaluation, Gate, ModelVersion, NewVersion, RankOrder, Registry, Run, RunFilter, Scope, Stage,
    VersionFilter, VersionRef,
};

use crate::render::{right, table};

/// Where the registry lives and who is acting. Shared by `models`, `runs` and `train --register`.
#[derive(Args, Clone)]
pub struct RegistryArgs {
    /// Registry database: sqlite:PATH or postgres://USER@HOST:PORT/DB [default: sqlite in QUANTPIPE_HOME]
    #[arg(long = "registry", global = true, env = "QUANTPIPE_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// Artifact store: a directory, file:///DIR or s3://BUCKET/PREFIX (configured by the usual AWS_*
    /// variables; AWS_ENDPOINT_URL for MinIO, R2 or other S3-compatible stores) [default: QUANTPIPE_HOME/artifacts]
    #[arg(long, global = true, env = "QUANTPIPE_ARTIFACTS", value_name = "URL")]
    pub artifacts: Option<String>,
    /// Owner scope: platform, TENANT or TENANT/USER. Every read and write stays inside it.
    #[arg(long, global = true, env = "QUANTPIPE_SCOPE", default_value = "platform")]
    pub scope: String,
    /// Who is acting, for the audit log [default: $USER]
    #[arg(long, global = true, env = "QUANTPIPE_ACTOR")]
    pub actor: Option<String>,
}

impl RegistryArgs {
    pub fn scope(&self) -> Result<Scope> {
        Ok(Scope::parse(&self.scope)?)
    }

    pub fn actor(&self) -> String {
        self.actor.clone().or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "unknown".into())
    }

    pub async fn open(&self, home: &Path) -> Result<Registry> {
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => {
                std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
                format!("sqlite://{}", home.join("registry.db").display())
            }
        };
        let artifacts = match &self.artifacts {
            Some(url) => ArtifactStore::from_url(url)?,
            None => ArtifactStore::Local { root: home.join("artifacts") },
        };
        Registry::open(&url, artifacts).await.with_context(|| format!("opening the registry at {}", redact(&url)))
    }
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    Ok(runtime.block_on(future))
}

#[derive(Args)]
pub struct ModelsArgs {
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Register a trained artifact directory (the output of `quantpipe train -o DIR`) as a new version.
    Register(RegisterArgs),
    /// Versions, newest first, filtered by name, a name substring, stage or family.
    List {
        #[arg(long)]
        name: Option<String>,
        /// Part of the model name.
        #[arg(long)]
        search: Option<String>,
        #[arg(long)]
        stage: Option<Stage>,
        #[arg(long)]
        family: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Show versions older than this version id (paging).
        #[arg(long)]
        before: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// One version: stage, metrics, evaluations, lineage, parameters, artifact.
    Show {
        /// NAME@1.2.0, NAME@production (any stage), NAME@latest or NAME.
        reference: String,
        #[arg(long)]
        json: bool,
    },
    /// Move a version to a stage. Promoting to production archives the current production version
    /// and applies the gate, if one is given.
    Promote {
        reference: String,
        #[arg(long)]
        to: Stage,
        /// A gate file (TOML): min = { oos_auc = 0.53 }, max = { … }, min_deflated_sharpe, min_oos_rows.
        #[arg(long, value_name = "FILE")]
        gate: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Archive a version (it stays stored and can be promoted again).
    Archive {
        reference: String,
        #[arg(long)]
        json: bool,
    },
    /// Retire a version for good (it can only be archived afterwards).
    Deprecate {
        reference: String,
        #[arg(long)]
        json: bool,
    },
    /// Put the previous production version back and archive the current one.
    Rollback {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Metrics and lineage of two or more versions side by side.
    Compare {
        #[arg(required = true, num_args = 2..)]
        references: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Keep the best K live versions of a model by a metric and archive the rest (production is kept).
    Rank {
        name: String,
        /// The metric to rank by, e.g. oos_auc.
        #[arg(long)]
        by: String,
        #[arg(long)]
        keep: usize,
        /// Rank ascending (for losses and errors).
        #[arg(long)]
        lower_is_better: bool,
        #[arg(long)]
        json: bool,
    },
    /// Every stage change, registration and deployment, newest first.
    Audit {
        name: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Alerts raised in this scope (a version the server could not load, …), newest first.
    Alerts {
        /// Include resolved alerts.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Copy a version's self-describing directory out of the store.
    Export {
        reference: String,
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Args)]
pub struct RegisterArgs {
    /// The artifact directory (model.json, the model file, train.json).
    dir: PathBuf,
    /// The registered model's name (letters, digits, _ - .).
    #[arg(long)]
    name: String,
    /// Start as staging instead of draft.
    #[arg(long)]
    staging: bool,
    #[arg(long, default_value = "")]
    description: String,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct RunsArgs {
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(Subcommand)]
enum RunsCommand {
    /// Runs, newest first.
    List {
        #[arg(long)]
        experiment: Option<String>,
        /// running, succeeded or failed
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        before: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// One run: configuration, parameters, status, timing, host, error.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

pub fn models(home: &Path, args: ModelsArgs) -> Result<ExitCode> {
    block_on(models_async(home, args))?
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn print_changes(changes: &[quantpipe_registry::StageChange], json: bool) -> Result<()> {
    if json {
        return print_json(&changes);
    }
    for c in changes {
        println!("{}: {} → {}", c.version, c.from, c.to);
    }
    Ok(())
}

async fn models_async(home: &Path, args: ModelsArgs) -> Result<ExitCode> {
    let scope = args.registry.scope()?;
    let actor = args.registry.actor();
    let registry = args.registry.open(home).await?;
    let result = match args.command {
        ModelsCommand::Register(a) => {
            let version =
                register_dir(&registry, &scope, &a.dir, &a.name, a.staging, &a.description, None, &actor).await?;
            if a.json {
                print_json(&version)?;
            } else {
                println!(
                    "registered {} ({}) from {}\n{}",
                    version.reference(),
                    version.stage,
                    a.dir.display(),
                    version.artifact_uri
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::List { name, search, stage, family, limit, before, json } => {
            let filter =
                VersionFilter { name, name_contains: search, stage, family, limit: Some(limit), before_id: before };
            let versions = registry.versions(&scope, &filter).await?;
            if json {
                print_json(&versions)?;
            } else if versions.is_empty() {
                println!("no model versions in scope {scope} match");
            } else {
                let mut t = table(&["id", "model", "version", "stage", "family", "task", "headline metric", "created"]);
                for v in &versions {
                    let headline = headline_metric(&v.metrics).map(|(k, x)| format!("{k} {x:.4}")).unwrap_or_default();
                    t.add_row(vec![
                        v.id.to_string(),
                        v.name.clone(),
                        v.version.to_string(),
                        v.stage.to_string(),
                        v.family.clone(),
                        v.task.clone(),
                        headline,
                        format_iso(v.created_at),
                    ]);
                }
                right(&mut t, &[0]);
                println!("{t}");
                if versions.len() as i64 == limit {
                    println!("(more with --before {})", versions.last().map_or(0, |v| v.id));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Show { reference, json } => {
            let version = registry.version(&scope, &VersionRef::parse(&reference)?).await?;
            if json {
                print_json(&version)?;
            } else {
                print_version(&version);
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Promote { reference, to, gate, json } => {
            let gate = match gate {
                Some(path) => {
                    let text =
                        std::fs::read_to_string(&path).with_context(|| format!("reading gate {}", path.display()))?;
                    Some(Gate::from_toml(&text, &path.display().to_string())?)
                }
                None => None,
            };
            let changes = registry.promote(&scope, &VersionRef::parse(&reference)?, to, gate.as_ref(), &actor).await?;
            print_changes(&changes, json)?;
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Archive { reference, json } => {
            let changes =
                registry.promote(&scope, &VersionRef::parse(&reference)?, Stage::Archived, None, &actor).await?;
            print_changes(&changes, json)?;
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Deprecate { reference, json } => {
            let reference = VersionRef::parse(&reference)?;
            let changes = registry.promote(&scope, &reference, Stage::Deprecated, None, &actor).await?;
            print_changes(&changes, json)?;
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Rollback { name, json } => {
            let changes = registry.rollback(&scope, &name, &actor).await?;
            print_changes(&changes, json)?;
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Compare { references, json } => {
            let mut versions = Vec::new();
            for r in &references {
                versions.push(registry.version(&scope, &VersionRef::parse(r)?).await?);
            }
            if json {
                print_json(&versions)?;
            } else {
                print_comparison(&versions);
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Rank { name, by, keep, lower_is_better, json } => {
            let order = if lower_is_better { RankOrder::LowerIsBetter } else { RankOrder::HigherIsBetter };
            let outcome = registry.rank(&scope, &name, &by, keep, order, &actor).await?;
            if json {
                print_json(&outcome)?;
            } else {
                let mut t = table(&["kept", &by]);
                for (v, m) in &outcome.kept {
                    t.add_row(vec![v.clone(), m.map_or("-".into(), |x| format!("{x:.4}"))]);
                }
                right(&mut t, &[1]);
                println!("{t}");
                for c in &outcome.archived {
                    println!("archived {} (was {})", c.version, c.from);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Audit { name, limit, json } => {
            let entries = registry.audit_log(&scope, name.as_deref(), limit).await?;
            if json {
                print_json(&entries)?;
            } else {
                let mut t = table(&["when", "actor", "action", "version", "from", "to", "detail"]);
                for e in &entries {
                    let version = match (&e.model, &e.version) {
                        (Some(m), Some(v)) => format!("{m}@{v}"),
                        (Some(m), None) => m.clone(),
                        _ => String::new(),
                    };
                    t.add_row(vec![
                        format_iso(e.at),
                        e.actor.clone(),
                        e.action.clone(),
                        version,
                        e.from_stage.clone().unwrap_or_default(),
                        e.to_stage.clone().unwrap_or_default(),
                        e.detail.clone(),
                    ]);
                }
                println!("{t}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Alerts { all, limit, json } => {
            let alerts = registry.alerts(&scope, !all, limit).await?;
            if json {
                print_json(&alerts)?;
            } else if alerts.is_empty() {
                println!("no {}alerts", if all { "" } else { "open " });
            } else {
                let mut t = table(&["id", "when", "severity", "kind", "message", "resolved"]);
                for a in &alerts {
                    t.add_row(vec![
                        a.id.to_string(),
                        format_iso(a.created_at),
                        a.severity.clone(),
                        a.kind.clone(),
                        a.message.clone(),
                        a.resolved_at.map(format_iso).unwrap_or_default(),
                    ]);
                }
                println!("{t}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Export { reference, output } => {
            let version = registry.version(&scope, &VersionRef::parse(&reference)?).await?;
            if output.exists() {
                bail!("{} exists; choose a new directory", output.display());
            }
            registry.artifacts().fetch(&version.artifact_uri, &output).await?;
            println!("exported {} to {}", version.reference(), output.display());
            Ok(ExitCode::SUCCESS)
        }
    };
    registry.close().await;
    result
}

pub fn runs(home: &Path, args: RunsArgs) -> Result<ExitCode> {
    block_on(runs_async(home, args))?
}

async fn runs_async(home: &Path, args: RunsArgs) -> Result<ExitCode> {
    let scope = args.registry.scope()?;
    let registry = args.registry.open(home).await?;
    match args.command {
        RunsCommand::List { experiment, status, limit, before, json } => {
            let status = status.map(|s| s.parse()).transpose()?;
            let runs =
                registry.runs(&scope, &RunFilter { experiment, status, limit: Some(limit), before_id: before }).await?;
            if json {
                print_json(&runs)?;
            } else if runs.is_empty() {
                println!("no runs in scope {scope} match");
            } else {
                let mut t = table(&["id", "experiment", "status", "started", "seconds", "host", "error"]);
                for r in &runs {
                    t.add_row(vec![
                        r.id.to_string(),
                        r.experiment.clone(),
                        r.status.as_str().to_string(),
                        format_iso(r.started_at),
                        r.compute_seconds.map_or("-".into(), |s| format!("{s:.1}")),
                        r.host.clone(),
                        r.error.clone().unwrap_or_default(),
                    ]);
                }
                right(&mut t, &[0, 4]);
                println!("{t}");
            }
        }
        RunsCommand::Show { id, json } => {
            let run = registry.run(&scope, id).await?;
            if json {
                print_json(&run)?;
            } else {
                print_run(&run);
            }
        }
    }
    registry.close().await;
    Ok(ExitCode::SUCCESS)
}

/// The metric a list shows for a version: the first of the usual headline scores it records.
fn headline_metric(metrics: &std::collections::BTreeMap<String, f64>) -> Option<(&str, f64)> {
    const PREFERRED: [&str; 6] = ["oos_roc_auc", "oos_accuracy", "oos_r2", "oos_rmse", "oos_mae", "oos_pinball"];
    PREFERRED
        .iter()
        .find_map(|k| metrics.get_key_value(*k))
        .or_else(|| metrics.iter().find(|(k, _)| k.as_str() != "oos_rows"))
        .map(|(k, x)| (k.as_str(), *x))
}

fn print_run(r: &Run) {
    println!("run {} in experiment {} ({}), scope {}", r.id, r.experiment, r.status.as_str(), r.scope);
    println!(
        "started {} on {} by {}, {}",
        format_iso(r.started_at),
        r.host,
        r.created_by,
        match (r.ended_at, r.compute_seconds) {
            (Some(end), Some(s)) => format!("ended {} after {s:.1} s", format_iso(end)),
            _ => "still running (or killed)".into(),
        }
    );
    println!("code: {}", r.code_version);
    if let Some(e) = &r.error {
        println!("error: {e}");
    }
    println!("params: {}", r.params);
    println!("config: {}", serde_json::to_string_pretty(&r.config).unwrap_or_default());
}

fn print_version(v: &ModelVersion) {
    println!("{} — {} ({}, {}), scope {}", v.reference(), v.stage, v.family, v.task, v.scope);
    if !v.description.is_empty() {
        println!("{}", v.description);
    }
    println!(
        "created {} by {}; parent {}; run {}",
        format_iso(v.created_at),
        v.created_by,
        v.parent.map_or("none".into(), |p| p.to_string()),
        v.run_id.map_or("none".into(), |r| r.to_string())
    );
    let mut t = table(&["metric", "value"]);
    for (k, x) in &v.metrics {
        t.add_row(vec![k.clone(), format!("{x:.6}")]);
    }
    right(&mut t, &[1]);
    println!("{t}");
    if !v.evaluations.is_empty() {
        let mut t = table(&["split", "metric", "value"]);
        for Evaluation { split, metric, value } in &v.evaluations {
            t.add_row(vec![split.clone(), metric.clone(), format!("{value:.6}")]);
        }
        right(&mut t, &[2]);
        println!("{t}");
    }
    println!(
        "features: {} from set {} (hash {}); label look-ahead {}",
        v.feature_names.len(),
        v.feature_set,
        v.feature_set_hash,
        v.label_lookahead
    );
    println!("label: {}", v.label);
    println!("params: {}", v.params);
    println!("data hash {}; code {}", v.dataset_hash, v.code_version);
    println!("artifact: {}", v.artifact_uri);
}

fn print_comparison(versions: &[ModelVersion]) {
    let mut header = vec!["".to_string()];
    header.extend(versions.iter().map(|v| v.reference()));
    let header_refs: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = table(&header_refs);
    let row = |label: &str, f: &dyn Fn(&ModelVersion) -> String| {
        let mut cells = vec![label.to_string()];
        cells.extend(versions.iter().map(f));
        cells
    };
    t.add_row(row("stage", &|v| v.stage.to_string()));
    t.add_row(row("family / task", &|v| format!("{} / {}", v.family, v.task)));
    let metrics: BTreeSet<&String> = versions.iter().flat_map(|v| v.metrics.keys()).collect();
    for m in metrics {
        t.add_row(row(m, &|v| v.metrics.get(m).map_or("-".into(), |x| format!("{x:.4}"))));
    }
    t.add_row(row("parent", &|v| v.parent.map_or("-".into(), |p| p.to_string())));
    t.add_row(row("feature set", &|v| format!("{} ({})", v.feature_set, v.feature_set_hash)));
    t.add_row(row("features", &|v| v.feature_names.len().to_string()));
    t.add_row(row("label look-ahead", &|v| v.label_lookahead.clone()));
    t.add_row(row("data hash", &|v| v.dataset_hash.chars().take(16).collect()));
    t.add_row(row("run", &|v| v.run_id.map_or("-".into(), |r| r.to_string())));
    t.add_row(row("created", &|v| format_iso(v.created_at)));
    // Parameters that differ, one row each.
    let keys: BTreeSet<String> =
        versions.iter().filter_map(|v| v.params.as_object()).flat_map(|o| o.keys().cloned()).collect();
    for k in keys {
        let values: Vec<String> =
            versions.iter().map(|v| v.params.get(&k).map_or("-".into(), |x| x.to_string())).collect();
        if values.iter().any(|x| x != &values[0]) {
            let mut cells = vec![format!("param {k}")];
            cells.extend(values);
            t.add_row(cells);
        }
    }
    println!("{t}");
}

/// Task as stored in the registry: `binary`, `multiclass:3`, `regression`, `quantile:0.9`.
fn task_text(task: &serde_json::Value) -> String {
    match task {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) => o
            .iter()
            .next()
            .map(|(k, v)| {
                let inner = v.as_object().and_then(|i| i.values().next()).map_or(v.to_string(), |x| x.to_string());
                format!("{k}:{inner}")
            })
            .unwrap_or_default(),
        other => other.to_string(),
    }
}

/// Registers the artifact directory `dir` written by `quantpipe train`: its model.json names the
/// family, task, features and parameters; its train.json the label, data, scores and hashes.
#[allow(clippy::too_many_arguments)]
pub async fn register_dir(
    registry: &Registry,
    scope: &Scope,
    dir: &Path,
    name: &str,
    staging: bool,
    description: &str,
    run_id: Option<i64>,
    actor: &str,
) -> Result<ModelVersion> {
    let read_json = |file: &str| -> Result<serde_json::Value> {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("reading {} (is {} an output of `quantpipe train -o`?)", path.display(), dir.display())
        })?;
        serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
    };
    // Loading proves the artifact is whole before it is registered.
    quantpipe_models::load(dir).with_context(|| format!("loading the model in {}", dir.display()))?;
    let model = read_json("model.json")?;
    let train = read_json("train.json")?;
    let text = |v: &serde_json::Value, key: &str| v.get(key).and_then(|x| x.as_str()).unwrap_or_default().to_string();
    let mut metrics = std::collections::BTreeMap::new();
    let mut evaluations = Vec::new();
    if let Some(scores) = train.get("test_scores").and_then(|s| s.as_object()) {
        for (k, v) in scores {
            if let Some(x) = v.as_f64().filter(|x| x.is_finite()) {
                if k != "rows" && k != "positives" {
                    metrics.insert(format!("oos_{k}"), x);
                    evaluations.push(Evaluation { split: "test".into(), metric: k.clone(), value: x });
                }
            }
        }
    }
    if let Some(rows) = train.get("test_rows").and_then(|x| x.as_f64()) {
        metrics.insert("oos_rows".into(), rows);
    }
    let mut params = model.get("params").cloned().unwrap_or(serde_json::Value::Null);
    if let (Some(object), Some(pre)) = (params.as_object_mut(), train.get("preprocess")) {
        if !pre.is_null() {
            object.insert("preprocess".into(), pre.clone());
        }
    }
    let new = NewVersion {
        name: name.to_string(),
        family: text(&model, "family"),
        task: task_text(model.get("task").unwrap_or(&serde_json::Value::Null)),
        params,
        feature_set: text(&train, "feature_set"),
        feature_set_hash: text(&train, "feature_set_hash"),
        feature_names: model
            .get("feature_names")
            .and_then(|f| serde_json::from_value(f.clone()).ok())
            .unwrap_or_default(),
        label: serde_json::json!({"spec": train.get("label"), "target": train.get("target"), "classes": train.get("classes")}),
        label_lookahead: text(&train, "label_lookahead"),
        dataset_hash: text(&train, "dataset_hash"),
        code_version: text(&train, "code_version"),
        run_id,
        metrics,
        evaluations,
        description: description.to_string(),
        stage: Some(if staging { Stage::Staging } else { Stage::Draft }),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().to_string();
        if entry.file_type()?.is_file() && !file_name.starts_with('.') {
            let bytes = std::fs::read(entry.path()).with_context(|| format!("reading {}", entry.path().display()))?;
            files.push((file_name, bytes));
        }
    }
    files.sort();
    Ok(registry.register(scope, &new, files, actor).await?)
}

pub const MODELS_EXAMPLES: &str = "Examples:\n  \
quantpipe train FILUSDT --timeframe 1m --kind horizon --param 'horizons=[\"1h\"]' --model docs/models/direction_lightgbm.toml -o out/dir --register direction_lgbm\n  \
quantpipe models register out/dir --name direction_lgbm\n  \
quantpipe models list --stage production\n  \
quantpipe models show direction_lgbm@1.2.0          # or @production, @latest\n  \
quantpipe models promote direction_lgbm@1.2.0 --to production --gate gate.toml\n  \
quantpipe models rollback direction_lgbm\n  \
quantpipe models compare direction_lgbm@1.1.0 direction_lgbm@1.2.0\n  \
quantpipe models rank direction_lgbm --by oos_auc --keep 5\n\n\
The registry is SQLite in QUANTPIPE_HOME unless QUANTPIPE_DATABASE_URL (or --registry) names PostgreSQL.\n\
Every command acts inside one owner scope (--scope / QUANTPIPE_SCOPE: platform, TENANT or TENANT/USER).";
