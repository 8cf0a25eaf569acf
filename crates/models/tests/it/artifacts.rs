//! Fitted preprocessing travels with the model, and artifacts written by earlier versions keep
//! loading and predicting the same values (golden artifacts under `tests/golden/`).
//!
//! - The preprocessing a model carries equals NumPy's statistics over the training rows only
//!   (1e-12 relative to the value or the column's standard deviation), and is applied to every row at prediction time exactly as in training: the
//!   model equals a bare LightGBM model trained and evaluated on rows transformed by hand, bit for bit.
//! - Each golden artifact, loaded by this version, predicts its recorded rows to 1e-12.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{data, python, read_f64, write_f64};
use quantpipe_core::preprocess::{Impute, PreprocessSpec, Preprocessor};
use quantpipe_models::lightgbm::{LightGbmModel, LightGbmParams};
use quantpipe_models::linear::{LinearParams, LogisticParams};
use quantpipe_models::neural::{LstmParams, MlpParams, NeuralObjective};
use quantpipe_models::svm::SvmParams;
use quantpipe_models::{fit, load, Dataset, ModelSpec, Task};
use serde::{Deserialize, Serialize};

const TRAIN: usize = 20_000;
const TEST: usize = 2_000;

/// FIL features with holes punched in (every 97th value), so imputation has work to do.
fn features_with_holes() -> Vec<f64> {
    let mut x = data().x[..(TRAIN + TEST) * data().names.len()].to_vec();
    x.iter_mut().step_by(97).for_each(|v| *v = f64::NAN);
    x
}

fn small_params(task: Task) -> LightGbmParams {
    let mut p = LightGbmParams::new(task);
    p.num_iterations = 25;
    p.num_leaves = 15;
    p.num_threads = 1;
    p
}

fn dataset<'a>(x: &'a [f64], labels: &'a [f64]) -> Dataset<'a> {
    Dataset { features: x, feature_names: &data().names, labels, weights: None, label_windows: None }
}

fn meta_preprocessor(dir: &Path) -> Preprocessor {
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
    serde_json::from_value(meta["preprocess"].clone()).expect("model.json carries the fitted preprocessing")
}

#[test]
fn preprocessing_is_fitted_on_training_rows_and_applied_identically() {
    let d = data().names.len();
    let x = features_with_holes();
    let (train, test) = x.split_at(TRAIN * d);
    let labels = &data().direction[..TRAIN];
    let spec = PreprocessSpec { impute: Impute::Median, winsorize: 0.01, standardize: true };
    let params = small_params(Task::Binary);
    let model = fit(&ModelSpec::Lightgbm(params.clone()), Some(&spec), &dataset(train, labels)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let pre = meta_preprocessor(dir.path());

    // 1. The statistics are NumPy's over the training rows (the test rows would move every one).
    let scratch = tempfile::tempdir().unwrap();
    let (train_file, out_file) = (scratch.path().join("train.f64"), scratch.path().join("stats.f64"));
    write_f64(&train_file, train);
    let status = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/preprocess_ref.py"))
        .args([train_file.to_str().unwrap(), &d.to_string(), "0.01", out_file.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let numpy = read_f64(&out_file);
    for (k, (name, ours)) in ["fill", "lower", "upper", "mean", "scale"]
        .iter()
        .zip([&pre.fill, &pre.lower, &pre.upper, &pre.mean, &pre.scale])
        .enumerate()
    {
        for c in 0..d {
            let theirs = numpy[k * d + c];
            // Relative to the column's spread: a mean of returns near zero is a sum that cancels.
            let tolerance = 1e-12 * theirs.abs().max(numpy[4 * d + c]);
            assert!(
                (ours[c] - theirs).abs() <= tolerance,
                "{name} of {}: {} vs NumPy {theirs}",
                data().names[c],
                ours[c]
            );
        }
    }

    // 2. Applied identically: a bare model on hand-transformed rows is the same model, bit for bit.
    let by_hand = |rows: &[f64]| {
        let mut out = rows.to_vec();
        out.chunks_exact_mut(d).for_each(|r| pre.apply_row(r));
        out
    };
    let bare = LightGbmModel::fit(&dataset(&by_hand(train), labels), &params).unwrap();
    let expected = bare.predict_with_lightgbm(&by_hand(test)).unwrap();
    assert_eq!(model.predict(test).unwrap(), expected, "in-memory model");
    let loaded = load(dir.path()).unwrap();
    assert_eq!(loaded.predict(test).unwrap(), expected, "loaded model");
    for r in (0..TEST).step_by(97) {
        assert_eq!(loaded.predict_row(&test[r * d..(r + 1) * d]).unwrap()[0], expected[r], "row {r} alone");
    }

    // 3. A missing value at prediction time is the training median, not anything of the test period.
    let mut row = test[..d].to_vec();
    row[0] = f64::NAN;
    let mut filled = row.clone();
    filled[0] = pre.fill[0];
    assert_eq!(loaded.predict_row(&row).unwrap(), loaded.predict_row(&filled).unwrap());
    let short = loaded.predict_row(&[1.0]).expect_err("a short row is refused").to_string();
    assert!(short.contains("not whole rows"), "{short}");
    row[3] = f64::INFINITY;
    let infinite = loaded.predict_row(&row).expect_err("∞ is refused").to_string();
    assert!(infinite.contains(&data().names[3]), "{infinite}");
}

#[test]
fn without_preprocessing_lightgbm_keeps_missing_values_and_model_json_has_none() {
    let d = data().names.len();
    let x = features_with_holes();
    let model = fit(
        &ModelSpec::Lightgbm(small_params(Task::Binary)),
        None,
        &dataset(&x[..TRAIN * d], &data().direction[..TRAIN]),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("model.json")).unwrap()).unwrap();
    assert!(meta.get("preprocess").is_none(), "{meta}");
}

/// Rows and the predictions an artifact gave when it was written; NaN is null.
#[derive(Serialize, Deserialize)]
struct Expected {
    rows: Vec<Vec<Option<f64>>>,
    predictions: Vec<Vec<f64>>,
}

fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// The golden artifacts: name, model, preprocessing.
fn golden_specs() -> Vec<(&'static str, ModelSpec, Option<PreprocessSpec>)> {
    let mut rf = small_params(Task::Binary);
    rf.boosting = quantpipe_models::lightgbm::Boosting::Rf;
    rf.bagging_fraction = 0.7;
    rf.bagging_freq = 1;
    vec![
        ("lightgbm_binary_v1", ModelSpec::Lightgbm(small_params(Task::Binary)), None),
        ("lightgbm_rf_binary_v1", ModelSpec::Lightgbm(rf), None),
        ("lightgbm_multiclass_v1", ModelSpec::Lightgbm(small_params(Task::Multiclass { classes: 3 })), None),
        (
            "lightgbm_regression_preprocessed_v1",
            ModelSpec::Lightgbm(small_params(Task::Regression)),
            Some(PreprocessSpec { impute: Impute::Median, winsorize: 0.01, standardize: true }),
        ),
        ("logistic_binary_v1", ModelSpec::Logistic(LogisticParams { c: 0.1, ..Default::default() }), None),
        (
            "linear_elasticnet_v1",
            ModelSpec::Linear(LinearParams { alpha: 2e-5, l1_ratio: 0.5, ..Default::default() }),
            Some(PreprocessSpec { impute: Impute::Median, winsorize: 0.01, standardize: true }),
        ),
        ("svm_rbf_binary_v1", ModelSpec::Svm(SvmParams { calibration_folds: 3, ..Default::default() }), None),
        ("mlp_binary_v1", ModelSpec::Mlp(MlpParams { hidden: vec![16, 8], max_epochs: 3, ..Default::default() }), None),
        (
            // Rows of 10 features read as windows of 2 steps × 5 (the format is what is pinned here).
            "lstm_regression_v1",
            ModelSpec::Lstm(LstmParams {
                objective: NeuralObjective::Regression,
                window: 2,
                hidden: 8,
                head: vec![4],
                max_epochs: 3,
                ..Default::default()
            }),
            None,
        ),
    ]
}

/// Writes the golden artifacts that do not exist yet (existing ones are history and never rewritten).
/// Run by hand when a family or format version is added, and commit the output:
/// `cargo test -p quantpipe-models --test it -- --ignored artifacts::write_golden_artifacts`
#[test]
#[ignore]
fn write_golden_artifacts() {
    let d = data().names.len();
    let x = features_with_holes();
    for (name, spec, pre) in golden_specs() {
        let labels = match spec.task().unwrap() {
            Task::Multiclass { .. } => &data().barrier_class,
            Task::Regression => &data().forward_return,
            _ => &data().direction,
        };
        let dir = golden().join(name);
        if dir.exists() {
            continue;
        }
        // An SVM keeps its support vectors: the last 500 training rows keep the artifact small.
        let first = if matches!(spec, ModelSpec::Svm(_)) { TRAIN - 500 } else { 0 };
        let model = fit(&spec, pre.as_ref(), &dataset(&x[first * d..TRAIN * d], &labels[first..TRAIN])).unwrap();
        model.save(&dir).unwrap();
        let rows: Vec<usize> = (TRAIN..TRAIN + TEST).step_by(200).collect();
        let expected = Expected {
            rows: rows
                .iter()
                .map(|&r| x[r * d..(r + 1) * d].iter().map(|v| v.is_finite().then_some(*v)).collect())
                .collect(),
            predictions: rows.iter().map(|&r| model.predict_row(&x[r * d..(r + 1) * d]).unwrap()).collect(),
        };
        std::fs::write(
            golden().join(format!("{name}.expected.json")),
            serde_json::to_string_pretty(&expected).unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn golden_artifacts_of_earlier_versions_load_and_predict_the_same() {
    let specs = golden_specs();
    for (name, _, pre) in &specs {
        let dir = golden().join(name);
        let model = load(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected: Expected =
            serde_json::from_slice(&std::fs::read(golden().join(format!("{name}.expected.json"))).unwrap()).unwrap();
        assert!(expected.rows.iter().flatten().any(Option::is_none), "{name}: the rows include missing values");
        // Linear families, SVMs and neural nets always carry preprocessing (their default imputes and
        // standardises).
        let linear = ["logistic", "linear", "svm", "mlp", "lstm"].iter().any(|f| name.starts_with(f));
        assert_eq!(pre.is_some() || linear, meta_has_preprocess(&dir), "{name}");
        for (row, want) in expected.rows.iter().zip(&expected.predictions) {
            let row: Vec<f64> = row.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
            let got = model.predict_row(&row).unwrap();
            let batch = model.predict(&row).unwrap();
            for ((g, b), w) in got.iter().zip(&batch).zip(want) {
                assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{name}: {g} vs recorded {w}");
                assert!((b - w).abs() <= 1e-12 * w.abs().max(1.0), "{name} (batch): {b} vs recorded {w}");
            }
        }
    }
}

fn meta_has_preprocess(dir: &Path) -> bool {
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("model.json")).unwrap()).unwrap();
    meta.get("preprocess").is_some()
}
