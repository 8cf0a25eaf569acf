//! LightGBM models trained by quantpipe on real data (FILUSDT 1m features and labels) equal Python
//! LightGBM 4.7.0 loading quantpipe's saved model file: predictions to 1e-12 and TreeSHAP
//! contributions to 1e-9, for every objective and for the random-forest mode. Also: fixed seeds give
//! identical models, early stopping purges and stops, class weights, bad input named.

use std::path::PathBuf;
use std::process::Command;

use crate::common::{data, python, read_f64, write_f64};
use quantpipe_models::lightgbm::{Boosting, ClassWeight, LightGbmModel, LightGbmParams};
use quantpipe_models::{load, Dataset, Model, Task};

const TRAIN: usize = 80_000;

fn fit(labels: &[f64], params: &LightGbmParams) -> LightGbmModel {
    let data = data();
    let d = data.names.len();
    let ds = Dataset {
        features: &data.x[..TRAIN * d],
        feature_names: &data.names,
        labels: &labels[..TRAIN],
        weights: None,
        label_windows: Some((&data.start[..TRAIN], &data.end[..TRAIN])),
    };
    LightGbmModel::fit(&ds, params).unwrap()
}

/// Saves `model`, loads it back through `quantpipe_models::load`, and compares quantpipe's and Python
/// LightGBM's predictions and contributions on held-out rows.
fn check_against_python(model: &LightGbmModel, what: &str) {
    let data = data();
    let d = data.names.len();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let loaded = load(dir.path()).unwrap();
    let test = &data.x[TRAIN * d..(TRAIN + 5_000) * d];
    let ours = loaded.predict(test).unwrap();
    assert_eq!(ours, model.predict(test).unwrap(), "{what}: the loaded model predicts as the fitted one");
    write_f64(&dir.path().join("x.f64"), test);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/lgbm_ref.py");
    let out = Command::new(python())
        .arg(script)
        .arg(dir.path().join("model.txt"))
        .arg(dir.path().join("x.f64"))
        .arg(d.to_string())
        .arg(dir.path().join("p.f64"))
        .arg(dir.path().join("c.f64"))
        .output()
        .unwrap();
    assert!(out.status.success(), "lgbm_ref.py: {}", String::from_utf8_lossy(&out.stderr));
    let theirs = read_f64(&dir.path().join("p.f64"));
    assert_eq!(ours.len(), theirs.len(), "{what}");
    let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst <= 1e-12, "{what}: largest prediction difference {worst}");
    // The in-process evaluator, row by row, gives the same numbers; with missing values too.
    let mine = model.evaluator().predict(test);
    let worst = mine.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst <= 1e-12, "{what}: in-process evaluator differs by {worst}");
    let mut holes = test[..200 * d].to_vec();
    for (k, v) in holes.iter_mut().enumerate() {
        if k % 7 == 0 {
            *v = f64::NAN;
        } else if k % 11 == 0 {
            *v = 0.0;
        }
    }
    let through_lightgbm = model.predict_with_lightgbm(&holes).unwrap();
    let in_process = model.evaluator().predict(&holes);
    let worst = in_process.iter().zip(&through_lightgbm).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst <= 1e-12, "{what}: with missing values the evaluator differs by {worst}");
    // TreeSHAP for a few rows, one call per row as the server explains (not yet for multiclass).
    if let Task::Multiclass { .. } = loaded.task() {
        assert!(loaded.explain(&test[..d]).is_err());
        return;
    }
    let contrib = read_f64(&dir.path().join("c.f64"));
    let per_row = contrib.len() / 5_000;
    for row in [0usize, 1234, 4999] {
        let mine = loaded.explain(&test[row * d..(row + 1) * d]).unwrap();
        let reference = &contrib[row * per_row..(row + 1) * per_row];
        let worst = mine.iter().zip(reference).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst <= 1e-9, "{what}: contributions of row {row} differ by {worst}");
    }
    let spread =
        ours.iter().copied().fold(f64::INFINITY, f64::min) < ours.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert!(spread, "{what}: a model that predicts a constant");
}

#[test]
fn every_objective_equals_python_lightgbm() {
    let data = data();
    let mut binary = LightGbmParams::new(Task::Binary);
    binary.num_iterations = 60;
    check_against_python(&fit(&data.direction, &binary), "binary gbdt");

    let mut forest = LightGbmParams::new(Task::Binary);
    forest.boosting = Boosting::Rf;
    forest.bagging_fraction = 0.7;
    forest.bagging_freq = 1;
    forest.feature_fraction = 0.8;
    forest.num_iterations = 40;
    check_against_python(&fit(&data.direction, &forest), "binary random forest");

    let mut multiclass = LightGbmParams::new(Task::Multiclass { classes: 3 });
    multiclass.num_iterations = 30;
    check_against_python(&fit(&data.barrier_class, &multiclass), "multiclass (triple barrier)");

    let mut regression = LightGbmParams::new(Task::Regression);
    regression.num_iterations = 40;
    check_against_python(&fit(&data.forward_return, &regression), "regression");

    let mut quantile = LightGbmParams::new(Task::Quantile { alpha: 0.9 });
    quantile.num_iterations = 40;
    let model = fit(&data.forward_return, &quantile);
    check_against_python(&model, "quantile 0.9");
    // A 0.9 quantile lies above about 90 % of the outcomes it was trained on.
    let d = data.names.len();
    let q = model.predict(&data.x[..TRAIN * d]).unwrap();
    let below = q.iter().zip(&data.forward_return[..TRAIN]).filter(|(p, y)| y <= p).count() as f64 / TRAIN as f64;
    assert!((below - 0.9).abs() < 0.03, "coverage {below}");
}

#[test]
fn same_seed_same_model_and_shap_sums_to_the_log_odds() {
    let data = data();
    let mut params = LightGbmParams::new(Task::Binary);
    params.num_iterations = 30;
    params.bagging_fraction = 0.8;
    params.bagging_freq = 1;
    let a = fit(&data.direction, &params);
    let b = fit(&data.direction, &params);
    assert_eq!(a.model_text(), b.model_text(), "same seed, same data → the same model");
    params.seed = 7;
    assert_ne!(a.model_text(), fit(&data.direction, &params).model_text(), "another seed, another model");

    let d = data.names.len();
    let row = &data.x[TRAIN * d..(TRAIN + 1) * d];
    let p = a.predict_row(row).unwrap()[0];
    let contributions = a.explain(row).unwrap();
    assert_eq!(contributions.len(), d + 1, "one per feature, then the bias");
    let raw: f64 = contributions.iter().sum();
    assert!((1.0 / (1.0 + (-raw).exp()) - p).abs() < 1e-12, "σ(Σ SHAP) = {} vs p = {p}", 1.0 / (1.0 + (-raw).exp()));
    let importance = a.feature_importance().unwrap();
    assert_eq!(importance.len(), d);
    assert!(importance.iter().any(|i| i.gain > 0.0 && i.splits > 0.0));
}

#[test]
fn early_stopping_on_the_last_rows_purges_and_stops() {
    let data = data();
    let mut params = LightGbmParams::new(Task::Binary);
    params.num_iterations = 1000;
    params.learning_rate = 0.3;
    params.validation_fraction = 0.2;
    params.early_stopping_rounds = Some(10);
    let model = fit(&data.direction, &params);
    assert!(model.iterations() < 1000, "{} iterations", model.iterations());
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("model.json")).unwrap()).unwrap();
    // Labels look 60 bars ahead: the 60 training rows before the held-out slice are purged.
    assert_eq!(meta["training"]["purged_before_validation"], 60);
    assert_eq!(meta["training"]["validation_rows"], 16_000);
    assert_eq!(meta["format_version"], 1);
}

#[test]
fn balanced_class_weights_lift_the_rare_class() {
    let data = data();
    // "Up by the upper barrier" is the rare class (about a quarter of rows).
    let rare: Vec<f64> = data.barrier_class.iter().map(|&c| f64::from(u8::from(c == 2.0))).collect();
    let mut params = LightGbmParams::new(Task::Binary);
    params.num_iterations = 30;
    let d = data.names.len();
    let test = &data.x[TRAIN * d..(TRAIN + 5_000) * d];
    let mean = |m: &LightGbmModel| m.predict(test).unwrap().iter().sum::<f64>() / 5_000.0;
    let plain = mean(&fit(&rare, &params));
    params.class_weight = Some(ClassWeight::Balanced);
    let weighted = mean(&fit(&rare, &params));
    assert!(plain < 0.35 && (weighted - 0.5).abs() < 0.1, "plain {plain}, balanced {weighted}");
}

#[test]
fn bad_input_and_bad_params_are_named() {
    let data = data();
    let d = data.names.len();
    let mut x = data.x[..1000 * d].to_vec();
    x[17 * d + 3] = f64::INFINITY;
    let ds = Dataset {
        features: &x,
        feature_names: &data.names,
        labels: &data.direction[..1000],
        weights: None,
        label_windows: None,
    };
    let err = LightGbmModel::fit(&ds, &LightGbmParams::new(Task::Binary)).err().unwrap().to_string();
    assert!(err.contains("row 17") && err.contains(&data.names[3]), "{err}");

    let labels: Vec<f64> = data.barrier_class[..1000].to_vec();
    let ds = Dataset { features: &data.x[..1000 * d], labels: &labels, ..ds };
    let err = LightGbmModel::fit(&ds, &LightGbmParams::new(Task::Binary)).err().unwrap().to_string();
    assert!(err.contains("expected 0 or 1"), "{err}");

    let err =
        serde_json::from_str::<LightGbmParams>(r#"{"objective": "binary", "num_leavez": 8}"#).unwrap_err().to_string();
    assert!(err.contains("num_leavez"), "{err}");
    let mut rf = LightGbmParams::new(Task::Binary);
    rf.boosting = Boosting::Rf;
    assert!(rf.validate().unwrap_err().to_string().contains("bagging"));

    // An artifact from a newer quantpipe is refused with the reason.
    let dir = tempfile::tempdir().unwrap();
    let mut params = LightGbmParams::new(Task::Binary);
    params.num_iterations = 5;
    fit(&data.direction, &params).save(dir.path()).unwrap();
    let meta_path = dir.path().join("model.json");
    let text = std::fs::read_to_string(&meta_path).unwrap().replace("\"format_version\": 1", "\"format_version\": 99");
    std::fs::write(&meta_path, text).unwrap();
    let err = load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("format 99"), "{err}");
}
