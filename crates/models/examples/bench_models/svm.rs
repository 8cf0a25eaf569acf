//! Timing harness for `bench/svm.sh`: RBF and linear SVM classifiers through quantpipe (libsvm-rs) on
//! the first ROWS × 50 FILUSDT rows, preprocessed (median, standardised), with probabilities (Platt's
//! sigmoid over 5 folds: six SVM fits, as scikit-learn's `SVC(probability=True)` does).
//! Writes the preprocessed matrix, labels and our decision values for the Python side; prints JSON.
//!
//! usage: bench_models svm FILUSDT_CSV_GZ OUT_DIR [ROWS]

use std::time::Instant;

use quantpipe_models::svm::{SvmKernel, SvmModel, SvmParams};
use quantpipe_models::Dataset;

pub fn run(args: &[String]) {
    let out = std::path::Path::new(&args[2]);
    let rows: usize = args.get(3).map_or(10_000, |r| r.parse().expect("ROWS"));
    let crate::common::Matrix { names, x, y } =
        crate::common::fil_matrix(std::path::Path::new(&args[1])).first_rows_standardized(rows);
    let d = names.len();
    let data = Dataset { features: &x, feature_names: &names, labels: &y, weights: None, label_windows: None };
    let mut report = serde_json::json!({"rows": rows, "features": d});
    for (name, params) in [
        ("rbf", SvmParams { kernel: SvmKernel::Rbf, c: 1.0, ..Default::default() }),
        ("linear", SvmParams { kernel: SvmKernel::Linear, c: 0.1, ..Default::default() }),
    ] {
        let started = Instant::now();
        let model = SvmModel::fit(&data, &params).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let decisions: Vec<f64> = x.chunks_exact(d).map(|r| model.decision_value(r)).collect();
        crate::common::write_f64(&out.join(format!("decision_{name}.f64")), &decisions);
        report[format!("quantpipe_{name}_s")] = serde_json::json!((seconds * 1000.0).round() / 1000.0);
        report[format!("quantpipe_{name}_support_vectors")] =
            quantpipe_models::Model::meta(&model).training["support_vectors"].clone();
    }
    crate::common::write_f64(&out.join("x.f64"), &x);
    crate::common::write_f64(&out.join("y.f64"), &y);
    println!("{report}");
}
