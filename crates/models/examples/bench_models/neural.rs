//! Timing harness for `bench/neural.sh`: an MLP classifier (hidden 64, 32, ReLU; Adam(W) lr 1e-3,
//! batch 256, a fixed number of epochs, no early stopping) through quantpipe (candle) on the first
//! ROWS × 50 FILUSDT rows, preprocessed (median, standardised); then one-row predictions. Writes the
//! matrix and labels for the Python side (scikit-learn's MLPClassifier, same settings); prints JSON.
//!
//! usage: bench_models neural FILUSDT_CSV_GZ OUT_DIR [ROWS] [EPOCHS]

use std::time::Instant;

use quantpipe_models::neural::{MlpParams, NeuralModel};
use quantpipe_models::{Dataset, Model};

pub fn run(args: &[String]) {
    let out = std::path::Path::new(&args[2]);
    let rows: usize = args.get(3).map_or(100_000, |r| r.parse().expect("ROWS"));
    let epochs: usize = args.get(4).map_or(10, |r| r.parse().expect("EPOCHS"));
    let crate::common::Matrix { names, x, y } =
        crate::common::fil_matrix(std::path::Path::new(&args[1])).first_rows_standardized(rows);
    let d = names.len();
    let train = rows * 4 / 5;
    let data = Dataset {
        features: &x[..train * d],
        feature_names: &names,
        labels: &y[..train],
        weights: None,
        label_windows: None,
    };
    let params = MlpParams {
        hidden: vec![64, 32],
        max_epochs: epochs,
        validation_fraction: 0.0,
        weight_decay: 0.0,
        ..Default::default()
    };
    let started = Instant::now();
    let model = NeuralModel::fit_mlp(&data, &params).unwrap();
    let fit_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let p = model.predict(&x[train * d..]).unwrap();
    let batch_s = started.elapsed().as_secs_f64();
    let test = &x[train * d..];
    let started = Instant::now();
    let n_single = 10_000.min(rows - train);
    for row in test.chunks_exact(d).take(n_single) {
        std::hint::black_box(model.predict_row(row).unwrap());
    }
    let single_us = started.elapsed().as_secs_f64() / n_single as f64 * 1e6;
    let (yt, pt) = (&y[train..], &p);
    let accuracy = pt.iter().zip(yt).filter(|(p, y)| (**p > 0.5) == (**y == 1.0)).count() as f64 / yt.len() as f64;
    crate::common::write_f64(&out.join("x.f64"), &x);
    crate::common::write_f64(&out.join("y.f64"), &y);
    let report = serde_json::json!({
        "rows": rows, "train_rows": train, "features": d, "epochs": epochs,
        "quantpipe_fit_s": (fit_s * 1000.0).round() / 1000.0,
        "quantpipe_predict_batch_s": (batch_s * 10000.0).round() / 10000.0,
        "quantpipe_predict_one_row_us": (single_us * 100.0).round() / 100.0,
        "quantpipe_test_accuracy": (accuracy * 10000.0).round() / 10000.0,
    });
    println!("{report}");
}
