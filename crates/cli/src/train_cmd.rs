//! `quantpipe train`: features and a label over stored bars (or a file), a model fitted on the
//! earlier part, scored on the held-out later part (purged by label windows), saved as an artifact
//! directory, optionally exported to ONNX.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use quantpipe_core::preprocess::PreprocessSpec;
use quantpipe_features::compute;
use quantpipe_models::neural::{gather_windows, sequence_names};
use quantpipe_models::{fit, Dataset, ModelFile};
use serde::Serialize;

use crate::eval_cmd::{BarsArgs, LabelArgs};
use crate::features_cmd::{load_bars, load_set};
use crate::models_cmd::{block_on, register_dir, RegistryArgs};
use crate::render::{right, table};
use quantpipe_data::store::content_hash;
use quantpipe_registry::ModelVersion;

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    bars: BarsArgs,
    /// Feature set: "standard" or a feature-set TOML file.
    #[arg(long, default_value = "standard")]
    set: String,
    #[command(flatten)]
    label: LabelArgs,
    /// The label column to learn (default: the label's own target, e.g. dir_1h).
    #[arg(long)]
    target: Option<String>,
    /// Model file (TOML): `kind = "lightgbm"`, its parameters, and optionally a `[preprocess]` table.
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// The last fraction of labelled rows, in time order, held out for scoring (training rows whose
    /// labels reach into it are purged).
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Artifact directory to write (model.json, model.txt, train.json).
    #[arg(short, long)]
    output: PathBuf,
    /// Also export the model to this ONNX file.
    #[arg(long)]
    onnx: Option<PathBuf>,
    #[arg(long)]
    json: bool,
    /// Register the trained model as a new version of this model name (and record the run).
    #[arg(long, value_name = "NAME")]
    register: Option<String>,
    /// The experiment the run is recorded in (with --register).
    #[arg(long, default_value = "default", requires = "register")]
    experiment: String,
    /// Register the version as staging instead of draft.
    #[arg(long, requires = "register")]
    staging: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// What `train.json` records beside the artifact, and what `--json` prints.
#[derive(Serialize)]
struct TrainReport {
    data: String,
    feature_set: String,
    /// blake3 of the feature set's definition.
    feature_set_hash: String,
    features: usize,
    /// blake3 of the bars trained and tested on.
    dataset_hash: String,
    label: serde_json::Value,
    /// How far the label looks forward (rows whose label window reaches the test rows are purged).
    label_lookahead: String,
    target: String,
    /// Label values in class order, for classifiers (class k is the k-th value).
    classes: Option<Vec<f64>>,
    train_rows: usize,
    purged_rows: usize,
    test_rows: usize,
    train_seconds: f64,
    test_scores: serde_json::Value,
    artifact: PathBuf,
    onnx: Option<PathBuf>,
    preprocess: Option<PreprocessSpec>,
    code_version: String,
}

/// The program that trained a model: version and commit.
pub fn code_version() -> String {
    format!("quantpipe {} ({})", env!("CARGO_PKG_VERSION"), env!("QUANTPIPE_GIT_COMMIT"))
}

pub fn train(home: &Path, args: TrainArgs) -> Result<ExitCode> {
    let Some(name) = args.register.clone() else {
        let report = train_and_save(home, &args)?;
        print_outcome(&report, None, args.json)?;
        return Ok(ExitCode::SUCCESS);
    };
    block_on(async {
        let scope = args.registry.scope()?;
        let actor = args.registry.actor();
        let registry = args.registry.open(home).await?;
        let config = serde_json::json!({
            "command": "train",
            "data": args.bars.symbol.clone().or(args.bars.input.as_ref().map(|p| p.display().to_string())),
            "timeframe": args.bars.timeframe,
            "feature_set": args.set,
            "target": args.target,
            "model_file": args.model,
            "test_fraction": args.test_fraction,
            "output": args.output,
        });
        let params = std::fs::read_to_string(&args.model)
            .ok()
            .and_then(|t| toml::from_str::<toml::Value>(&t).ok())
            .and_then(|v| serde_json::to_value(v).ok())
            .unwrap_or(serde_json::Value::Null);
        let run = registry.start_run(&scope, &args.experiment, &config, &params, &code_version(), &actor).await?;
        let started = std::time::Instant::now();
        let outcome = match train_and_save(home, &args) {
            Ok(report) => register_dir(&registry, &scope, &args.output, &name, args.staging, "", Some(run.id), &actor)
                .await
                .map(|version| (report, version)),
            Err(e) => Err(e),
        };
        let seconds = started.elapsed().as_secs_f64();
        let ended = registry
            .finish_run(&scope, run.id, outcome.as_ref().map(|_| ()).map_err(|e| format!("{e:#}")), seconds)
            .await;
        registry.close().await;
        let (report, version) = outcome?;
        ended?;
        print_outcome(&report, Some((run.id, &version)), args.json)?;
        Ok(ExitCode::SUCCESS)
    })?
}

fn print_outcome(report: &TrainReport, registered: Option<(i64, &ModelVersion)>, json: bool) -> Result<()> {
    if json {
        let mut value = serde_json::to_value(report)?;
        if let (Some(object), Some((run, version))) = (value.as_object_mut(), registered) {
            object.insert("run_id".into(), run.into());
            object.insert("registered".into(), serde_json::to_value(version)?);
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_report(report);
        if let Some((run, version)) = registered {
            println!("registered {} ({}) from run {run}", version.reference(), version.stage);
        }
    }
    Ok(())
}

/// Trains, scores, saves the artifact directory and its train.json.
fn train_and_save(home: &Path, args: &TrainArgs) -> Result<TrainReport> {
    let spec = args.label.spec()?;
    let model_text =
        std::fs::read_to_string(&args.model).with_context(|| format!("reading model file {}", args.model.display()))?;
    let model_file: ModelFile =
        toml::from_str(&model_text).map_err(|e| anyhow::anyhow!("{}: {e}", args.model.display()))?;
    let task = model_file.spec.task()?;
    if !(args.test_fraction > 0.0 && args.test_fraction < 0.9) {
        bail!("--test-fraction {}: expected 0 < f < 0.9", args.test_fraction);
    }
    let set = load_set(&args.set)?;
    let loaded = load_bars(home, args.bars.symbol.clone(), args.bars.timeframe.clone(), args.bars.input.clone())?;
    let frame = compute(&set, &loaded.bars);
    let labels = spec.compute(&loaded.bars, None)?;
    let target = args.target.clone().unwrap_or_else(|| labels.target.clone());
    let Some(y_all) = labels.column(&target) else {
        let names: Vec<&str> = labels.columns.iter().map(|(n, _)| n.as_str()).collect();
        bail!("--target {target:?} is not a column of this label (columns: {})", names.join(", "));
    };
    // Rows from the end of the feature set's warm-up (the first bar where every feature has a value),
    // and for a model reading several rows per input (an LSTM) a whole window after it.
    let d = frame.names.len();
    let window = model_file.spec.window();
    let warm = (0..loaded.bars.len()).find(|&r| frame.columns.iter().all(|c| c[r].is_finite())).unwrap_or(0);
    let first_bar = warm + window - 1;
    let keep: Vec<usize> = (0..labels.len()).filter(|&k| labels.row[k] >= first_bar && y_all[k].is_finite()).collect();
    if keep.len() < 100 {
        bail!("{}: only {} labelled rows after the features' warm-up", loaded.name, keep.len());
    }
    // Class values → 0..k, in sorted order.
    let classes: Option<Vec<f64>> = task.is_classification().then(|| {
        let mut v: Vec<f64> = keep.iter().map(|&k| y_all[k]).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    });
    if let Some(values) = &classes {
        if values.len() != task.outputs().max(2) {
            bail!(
                "{target} has {} distinct values ({values:?}) but the model expects {} classes",
                values.len(),
                task.outputs().max(2)
            );
        }
    }
    let encode = |v: f64| match &classes {
        Some(values) => values.iter().position(|&c| c == v).expect("a seen value") as f64,
        None => v,
    };
    let cut = keep.len() - ((keep.len() as f64 * args.test_fraction).round() as usize).max(1);
    let first_test_ts = labels.ts[keep[cut]];
    let train_rows: Vec<usize> = keep[..cut].iter().copied().filter(|&k| labels.end_ts[k] < first_test_ts).collect();
    let test_rows = &keep[cut..];
    let gather = |rows: &[usize]| -> Vec<f64> {
        let ends: Vec<usize> = rows.iter().map(|&k| labels.row[k]).collect();
        gather_windows(&frame.columns, &ends, window)
    };
    let names = match window {
        1 => frame.names.clone(),
        w => sequence_names(&frame.names, w),
    };
    let (x_train, x_test) = (gather(&train_rows), gather(test_rows));
    let y_train: Vec<f64> = train_rows.iter().map(|&k| encode(y_all[k])).collect();
    let y_test: Vec<f64> = test_rows.iter().map(|&k| encode(y_all[k])).collect();
    let (start, end): (Vec<i64>, Vec<i64>) = train_rows.iter().map(|&k| (labels.ts[k], labels.end_ts[k])).unzip();
    let data = Dataset {
        features: &x_train,
        feature_names: &names,
        labels: &y_train,
        weights: None,
        label_windows: Some((&start, &end)),
    };
    let started = std::time::Instant::now();
    let model = fit(&model_file.spec, model_file.preprocess.as_ref(), &data)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let predictions = model.predict(&x_test)?;
    let (test_scores, _) = quantpipe_pipeline::run::score(task, &y_test, &predictions).map_err(anyhow::Error::msg)?;
    // Exported before anything is written, so a refused export leaves no half-reported model behind.
    let onnx = args.onnx.as_ref().map(|_| model.to_onnx()).transpose()?;
    model.save(&args.output)?;
    if let (Some(path), Some(bytes)) = (&args.onnx, onnx) {
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    let report = TrainReport {
        data: loaded.name.clone(),
        feature_set: set.name.clone(),
        feature_set_hash: set.hash(),
        features: d,
        dataset_hash: content_hash(&loaded.bars),
        label: serde_json::to_value(&spec)?,
        label_lookahead: lookahead_text(&spec),
        target,
        classes,
        train_rows: train_rows.len(),
        purged_rows: cut - train_rows.len(),
        test_rows: test_rows.len(),
        train_seconds,
        test_scores,
        artifact: args.output.clone(),
        onnx: args.onnx.clone(),
        preprocess: model_file.preprocess.clone(),
        code_version: code_version(),
    };
    let json = serde_json::to_string_pretty(&report)?;
    std::fs::write(args.output.join("train.json"), &json)
        .with_context(|| format!("writing {}", args.output.join("train.json").display()))?;
    Ok(report)
}

/// `1h`, or `60b` for a horizon counted in bars.
fn lookahead_text(spec: &quantpipe_labels::LabelSpec) -> String {
    spec.lookahead().name()
}

fn print_report(r: &TrainReport) {
    println!(
        "{}: {} features ({}), target {}, {} training rows ({} purged before the test rows), {} test rows",
        r.data, r.features, r.feature_set, r.target, r.train_rows, r.purged_rows, r.test_rows
    );
    let mut t = table(&["held-out score", "value"]);
    if let Some(scores) = r.test_scores.as_object() {
        for (k, v) in scores {
            if let Some(x) = v.as_f64().filter(|_| k != "rows" && k != "positives") {
                t.add_row(vec![k.clone(), format!("{x:.4}")]);
            }
        }
    }
    right(&mut t, &[1]);
    println!("{t}");
    println!("trained in {:.2} s; model written to {}", r.train_seconds, r.artifact.display());
    if let Some(onnx) = &r.onnx {
        println!("ONNX export: {}", onnx.display());
    }
}

pub const EXAMPLES: &str = "Examples:\n  \
quantpipe train FILUSDT --timeframe 1m --kind horizon --param 'horizons=[\"1h\"]' --model docs/models/direction_lightgbm.toml -o models/fil_dir_1h\n  \
quantpipe train FILUSDT --timeframe 1m --kind horizon --param 'horizons=[\"1h\"]' --target ret_1h --model docs/models/return_regressor.toml -o models/fil_ret --onnx fil_ret.onnx\n  \
quantpipe train --input bars.csv --kind triple_barrier --param 'horizon=\"2h\"' --model docs/models/barrier_multiclass.toml -o models/tb --json\n\n\
The model file names the family and its parameters (docs/models.md), e.g.\n  \
kind = \"lightgbm\"\n  objective = \"binary\"\n  num_iterations = 200\n  [preprocess]   # optional; trees default to raw values with NaN kept\n  impute = \"median\"\n\n\
Classes are the target's distinct values in sorted order (class k is the k-th).\n\
train.json beside the model records them, the label, the rows used and the held-out scores.";
