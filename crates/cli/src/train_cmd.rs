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
use quantpipe_data::store::{content_hash, hash_columns};
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
    /// Train on a table's rows instead of bars (CSV, e.g. a bot's trade records): every numeric column
    /// but --target, --time and --ignore is a feature; rows in time order, the last --test-fraction held out.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["symbol", "input"])]
    table: Option<PathBuf>,
    /// With --table: the column holding each row's time (ISO-8601 or epoch); rows must be in its order.
    #[arg(long, requires = "table", value_name = "COLUMN")]
    time: Option<String>,
    /// With --table: columns that are not features (ids, symbols, free text), comma-separated.
    #[arg(long, requires = "table", value_delimiter = ',', value_name = "COLUMN,...")]
    ignore: Vec<String>,
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

/// What the training rows were made from: the first fields of `train.json`.
#[derive(Serialize)]
struct Source {
    data: String,
    /// The feature set's name, or `table` for `--table`.
    feature_set: String,
    /// blake3 of the feature set's definition (empty for a table).
    feature_set_hash: String,
    features: usize,
    /// blake3 of the bars (or the table's columns) trained and tested on.
    dataset_hash: String,
    label: serde_json::Value,
    /// How far the label looks forward (rows whose label window reaches the test rows are purged).
    label_lookahead: String,
    target: String,
}

/// What `train.json` records beside the artifact, and what `--json` prints.
#[derive(Serialize)]
struct TrainReport {
    #[serde(flatten)]
    source: Source,
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

/// Training rows from either source, before the split: inputs row-major in time order, raw targets,
/// and the label windows used for purging (bars) or none (independent table rows).
struct Rows {
    source: Source,
    names: Vec<String>,
    x: Vec<f64>,
    y: Vec<f64>,
    /// Label start and end times per row, or `None` for a table (rows are independent records).
    windows: Option<(Vec<i64>, Vec<i64>)>,
}

/// Trains, scores, saves the artifact directory and its train.json.
fn train_and_save(home: &Path, args: &TrainArgs) -> Result<TrainReport> {
    let model_text =
        std::fs::read_to_string(&args.model).with_context(|| format!("reading model file {}", args.model.display()))?;
    let model_file: ModelFile =
        toml::from_str(&model_text).map_err(|e| anyhow::anyhow!("{}: {e}", args.model.display()))?;
    let task = model_file.spec.task()?;
    if !(args.test_fraction > 0.0 && args.test_fraction < 0.9) {
        bail!("--test-fraction {}: expected 0 < f < 0.9", args.test_fraction);
    }
    let rows = match &args.table {
        Some(path) => table_rows(path, args, &model_file)?,
        None => bar_rows(home, args, &model_file)?,
    };
    let n = rows.y.len();
    let width = rows.names.len();
    if n < 100 {
        bail!("{}: only {n} labelled rows", rows.source.data);
    }
    // Class values → 0..k, in sorted order.
    let classes: Option<Vec<f64>> = task.is_classification().then(|| {
        let mut v = rows.y.clone();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    });
    let target = &rows.source.target;
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
    let cut = n - ((n as f64 * args.test_fraction).round() as usize).max(1);
    let train_rows: Vec<usize> = match &rows.windows {
        // Training rows whose labels reach into the test rows are purged.
        Some((start, end)) => (0..cut).filter(|&i| end[i] < start[cut]).collect(),
        None => (0..cut).collect(),
    };
    let test_rows: Vec<usize> = (cut..n).collect();
    let gather = |idx: &[usize]| -> Vec<f64> {
        idx.iter().flat_map(|&i| rows.x[i * width..(i + 1) * width].iter().copied()).collect()
    };
    let (x_train, x_test) = (gather(&train_rows), gather(&test_rows));
    let y_train: Vec<f64> = train_rows.iter().map(|&i| encode(rows.y[i])).collect();
    let y_test: Vec<f64> = test_rows.iter().map(|&i| encode(rows.y[i])).collect();
    let windows: Option<(Vec<i64>, Vec<i64>)> =
        rows.windows.as_ref().map(|(s, e)| train_rows.iter().map(|&i| (s[i], e[i])).unzip());
    let data = Dataset {
        features: &x_train,
        feature_names: &rows.names,
        labels: &y_train,
        weights: None,
        label_windows: windows.as_ref().map(|(s, e)| (s.as_slice(), e.as_slice())),
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
        source: rows.source,
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

/// Features and a label over bars (stored or from a file).
fn bar_rows(home: &Path, args: &TrainArgs, model_file: &ModelFile) -> Result<Rows> {
    let spec = args.label.spec()?;
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
    let window = model_file.spec.window();
    let warm = (0..loaded.bars.len()).find(|&r| frame.columns.iter().all(|c| c[r].is_finite())).unwrap_or(0);
    let first_bar = warm + window - 1;
    let keep: Vec<usize> = (0..labels.len()).filter(|&k| labels.row[k] >= first_bar && y_all[k].is_finite()).collect();
    let ends: Vec<usize> = keep.iter().map(|&k| labels.row[k]).collect();
    let names = match window {
        1 => frame.names.clone(),
        w => sequence_names(&frame.names, w),
    };
    Ok(Rows {
        source: Source {
            data: loaded.name.clone(),
            feature_set: set.name.clone(),
            feature_set_hash: set.hash(),
            features: frame.names.len(),
            dataset_hash: content_hash(&loaded.bars),
            label: serde_json::to_value(&spec)?,
            label_lookahead: lookahead_text(&spec),
            target,
        },
        names,
        x: gather_windows(&frame.columns, &ends, window),
        y: keep.iter().map(|&k| y_all[k]).collect(),
        windows: Some(keep.iter().map(|&k| (labels.ts[k], labels.end_ts[k])).unzip()),
    })
}

/// Rows of a table (CSV, e.g. a bot's trade records): every column but the target, `--time` and
/// `--ignore` ones is a numeric feature (empty, `NaN` or `null` cells are missing values).
fn table_rows(path: &Path, args: &TrainArgs, model_file: &ModelFile) -> Result<Rows> {
    if args.bars.symbol.is_some() || args.bars.input.is_some() || args.label.is_given() {
        bail!("--table trains on the table's own columns: leave out the symbol, --input, --label and --kind");
    }
    if model_file.spec.window() > 1 {
        bail!("an LSTM reads windows of consecutive bars; a table's rows are independent records (use kind = \"mlp\")");
    }
    let Some(target) = args.target.clone() else {
        bail!("--table needs --target COLUMN, the column to learn");
    };
    let file = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| format!("reading {file}"))?;
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
    let header: Vec<String> =
        reader.headers().with_context(|| format!("{file}: header"))?.iter().map(String::from).collect();
    let find = |name: &str, flag: &str| -> Result<usize> {
        header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{file}: {flag} {name:?} is not a column (columns: {})", header.join(", ")))
    };
    let target_col = find(&target, "--target")?;
    let time_col = args.time.as_deref().map(|t| find(t, "--time")).transpose()?;
    for ignored in &args.ignore {
        find(ignored, "--ignore")?;
    }
    let feature_cols: Vec<usize> = (0..header.len())
        .filter(|&c| c != target_col && Some(c) != time_col && !args.ignore.contains(&header[c]))
        .collect();
    if feature_cols.is_empty() {
        bail!("{file}: no feature columns left besides the target");
    }
    let (mut x, mut y, mut times) = (Vec::new(), Vec::new(), Vec::new());
    for (i, record) in reader.records().enumerate() {
        // Row numbers as a spreadsheet shows them: the header is row 1.
        let row = i + 2;
        let record = record.with_context(|| format!("{file}: row {row}"))?;
        let cell = |c: usize| record.get(c).unwrap_or("").trim();
        let number = |c: usize| -> Result<f64> {
            match cell(c) {
                "" | "NaN" | "nan" | "null" | "NA" => Ok(f64::NAN),
                text => match text.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(v),
                    Ok(v) => bail!("{file}: row {row}, column {:?}: {v} (only finite numbers or an empty cell)", header[c]),
                    Err(_) => bail!(
                        "{file}: row {row}, column {:?}: {text:?} is not a number (leave text columns out with --ignore {})",
                        header[c],
                        header[c]
                    ),
                },
            }
        };
        let label = number(target_col)?;
        if label.is_nan() {
            bail!("{file}: row {row}: the target {target:?} is empty");
        }
        for &c in &feature_cols {
            x.push(number(c)?);
        }
        y.push(label);
        if let Some(c) = time_col {
            let text = cell(c);
            let Some(ts) = quantpipe_pipeline::config::parse_time_cell(text) else {
                bail!(
                    "{file}: row {row}, column {:?}: {text:?} is not a time (ISO-8601 such as 2023-10-01T12:30:00Z, or epoch)",
                    header[c]
                );
            };
            if times.last().is_some_and(|&last| ts < last) {
                bail!("{file}: row {row}: {:?} goes back in time; sort the table by it first", header[c]);
            }
            times.push(ts);
        }
    }
    let names: Vec<String> = feature_cols.iter().map(|&c| header[c].clone()).collect();
    let dataset_hash = {
        let columns: Vec<(&str, Vec<f64>)> = names
            .iter()
            .enumerate()
            .map(|(k, n)| (n.as_str(), x.iter().skip(k).step_by(names.len()).copied().collect()))
            .chain(std::iter::once((target.as_str(), y.clone())))
            .collect();
        let views: Vec<(&str, &[f64])> = columns.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        hash_columns(&times, &views)
    };
    Ok(Rows {
        source: Source {
            data: file,
            feature_set: "table".into(),
            feature_set_hash: String::new(),
            features: names.len(),
            dataset_hash,
            label: serde_json::json!({"table": path, "target": target, "time": args.time}),
            label_lookahead: String::new(),
            target,
        },
        names,
        x,
        y,
        windows: None,
    })
}

/// `1h`, or `60b` for a horizon counted in bars.
fn lookahead_text(spec: &quantpipe_labels::LabelSpec) -> String {
    spec.lookahead().name()
}

fn print_report(r: &TrainReport) {
    println!(
        "{}: {} features ({}), target {}, {} training rows ({} purged before the test rows), {} test rows",
        r.source.data,
        r.source.features,
        r.source.feature_set,
        r.source.target,
        r.train_rows,
        r.purged_rows,
        r.test_rows
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
quantpipe train --input bars.csv --kind triple_barrier --param 'horizon=\"2h\"' --model docs/models/barrier_multiclass.toml -o models/tb --json\n  \
quantpipe train --table trades.csv --time entry_time --target won --ignore trade_id,symbol --model docs/models/trade_success_classifier.toml -o models/trade_success\n\n\
The model file names the family and its parameters (docs/models.md), e.g.\n  \
kind = \"lightgbm\"\n  objective = \"binary\"\n  num_iterations = 200\n  [preprocess]   # optional; trees default to raw values with NaN kept\n  impute = \"median\"\n\n\
Classes are the target's distinct values in sorted order (class k is the k-th).\n\
train.json beside the model records them, the label, the rows used and the held-out scores.";
