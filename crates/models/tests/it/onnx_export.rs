//! ONNX export of LightGBM models trained on real data (FILUSDT 1m features, with missing values):
//! the exported file passes ONNX's full checker and onnxruntime gives the same probabilities and
//! values as quantpipe for the same float32 inputs (with missing values), for every objective, the
//! random-forest mode, and a model trained without missing values (whose splits read NaN as 0).
//!
//! Tolerance: the exported thresholds are chosen so that every split decides as LightGBM's does on
//! a float32 input; what remains is float32 rounding of the leaf sums and of the sigmoid/softmax:
//! 2e-6 absolute for probabilities, 1e-5 of the values' spread for regressors.

use std::process::Command;

use crate::common::{data, python, read_f64, write_f64};
use quantpipe_models::lightgbm::{Boosting, LightGbmModel, LightGbmParams};
use quantpipe_models::{Dataset, Model, Task};

const TRAIN: usize = 40_000;
const TEST: usize = 4_000;

/// Rows rounded to float32, as an ONNX runtime sees them; with `holes`, every 89th value is missing.
fn rows(range: std::ops::Range<usize>, holes: bool) -> Vec<f64> {
    let d = data().names.len();
    let mut x = data().x[range.start * d..range.end * d].to_vec();
    if holes {
        x.iter_mut().step_by(89).for_each(|v| *v = f64::NAN);
    }
    x.iter_mut().for_each(|v| *v = f64::from(*v as f32));
    x
}

fn onnxruntime(model: &[u8], x: &[f64]) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let (file, input, output) = (dir.path().join("m.onnx"), dir.path().join("x.f64"), dir.path().join("y.f64"));
    std::fs::write(&file, model).unwrap();
    write_f64(&input, x);
    let status = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/onnx_ref.py"))
        .args([file.to_str().unwrap(), input.to_str().unwrap(), &data().names.len().to_string()])
        .arg(&output)
        .status()
        .unwrap();
    assert!(status.success(), "onnx_ref.py failed");
    read_f64(&output)
}

#[test]
fn exported_models_equal_onnxruntime() {
    let with_holes = rows(0..TRAIN, true);
    // Trained without missing values, a split has no learned side for NaN: LightGBM reads NaN as 0.
    let without_holes = rows(0..TRAIN, false);
    let test = rows(TRAIN..TRAIN + TEST, true);
    let mut rf = LightGbmParams::new(Task::Binary);
    rf.boosting = Boosting::Rf;
    rf.bagging_fraction = 0.7;
    rf.bagging_freq = 1;
    let cases: Vec<(&str, LightGbmParams, &[f64], &[f64])> = vec![
        ("binary", LightGbmParams::new(Task::Binary), &data().direction, &with_holes),
        ("binary trained without NaN", LightGbmParams::new(Task::Binary), &data().direction, &without_holes),
        ("random forest", rf, &data().direction, &with_holes),
        ("multiclass", LightGbmParams::new(Task::Multiclass { classes: 3 }), &data().barrier_class, &with_holes),
        ("regression", LightGbmParams::new(Task::Regression), &data().forward_return, &with_holes),
        ("quantile", LightGbmParams::new(Task::Quantile { alpha: 0.9 }), &data().forward_return, &with_holes),
    ];
    for (what, params, labels, train) in cases {
        let ds = Dataset {
            features: train,
            feature_names: &data().names,
            labels: &labels[..TRAIN],
            weights: None,
            label_windows: None,
        };
        let model = LightGbmModel::fit(&ds, &params).unwrap();
        // Which missing-value rule the splits carry (decision_type bits 2–3: 0 none, 2 NaN).
        let nan_splits = model
            .model_text()
            .lines()
            .filter_map(|l| l.strip_prefix("decision_type="))
            .flat_map(|l| l.split(' ').map(|t| t.parse::<u8>().unwrap()))
            .filter(|t| (t >> 2) & 3 == 2)
            .count();
        assert_eq!(nan_splits == 0, train.iter().all(|v| v.is_finite()), "{what}: {nan_splits} splits route NaN");
        let ours = model.evaluator().predict(&test);
        assert_eq!(ours, model.predict_with_lightgbm(&test).unwrap(), "{what}: evaluator is LightGBM");
        let theirs = onnxruntime(&model.to_onnx().unwrap(), &test);
        let outputs = model.task().outputs();
        let spread = ours.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mut worst = 0.0f64;
        match model.task() {
            Task::Binary => {
                // onnxruntime gives [1 − p, p] and the label.
                for r in 0..TEST {
                    let p = ours[r];
                    worst = worst.max((theirs[2 * r + 1] - p).abs()).max((theirs[2 * r] - (1.0 - p)).abs());
                    assert_eq!(
                        theirs[2 * TEST + r],
                        f64::from(u8::from(p > 0.5)),
                        "{what}: label of row {r} (p = {p})"
                    );
                }
                assert!(worst <= 2e-6, "{what}: worst probability difference {worst}");
            }
            Task::Multiclass { classes } => {
                for r in 0..TEST {
                    let row = &ours[r * classes..(r + 1) * classes];
                    for c in 0..classes {
                        worst = worst.max((theirs[r * classes + c] - row[c]).abs());
                    }
                    let argmax = (0..classes).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
                    assert_eq!(theirs[TEST * classes + r], argmax as f64, "{what}: label of row {r}");
                }
                assert!(worst <= 2e-6, "{what}: worst probability difference {worst}");
            }
            _ => {
                assert_eq!(outputs, 1);
                for r in 0..TEST {
                    worst = worst.max((theirs[r] - ours[r]).abs());
                }
                assert!(worst <= 1e-5 * spread, "{what}: worst difference {worst} (values up to {spread})");
            }
        }
        eprintln!("{what}: worst difference {worst:e}");
    }
}

#[test]
fn models_with_fitted_preprocessing_are_refused_by_name() {
    let train = rows(0..5_000, true);
    let ds = Dataset {
        features: &train,
        feature_names: &data().names,
        labels: &data().direction[..5_000],
        weights: None,
        label_windows: None,
    };
    let mut params = LightGbmParams::new(Task::Binary);
    params.num_iterations = 5;
    let model = quantpipe_models::fit(
        &quantpipe_models::ModelSpec::Lightgbm(params),
        Some(&quantpipe_core::preprocess::PreprocessSpec::default()),
        &ds,
    )
    .unwrap();
    let err = model.to_onnx().expect_err("refused").to_string();
    assert!(err.contains("preprocessing"), "{err}");
}
