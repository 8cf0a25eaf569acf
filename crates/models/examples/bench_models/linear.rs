//! Timing harness for `bench/linear.sh`: logistic regression, least squares and elastic net through
//! quantpipe (logistic: its own Newton solver; the others: linfa) on the first 100,000 × 50 FILUSDT rows, preprocessed (median, standardised).
//! Writes the preprocessed matrix, targets and our predictions for the Python side; prints JSON.
//!
//! usage: bench_models linear FILUSDT_CSV_GZ OUT_DIR

use std::time::Instant;

use quantpipe_core::preprocess::{PreprocessSpec, Preprocessor};
use quantpipe_models::linear::{LinearModel, LinearParams, LogisticParams};
use quantpipe_models::{Dataset, Model};

const ROWS: usize = 100_000;

pub fn run(args: &[String]) {
    let out = std::path::Path::new(&args[2]);
    let crate::common::Matrix { names, x, y } = crate::common::fil_matrix(std::path::Path::new(&args[1]));
    let d = names.len();
    let mut x = x[..ROWS * d].to_vec();
    let y = y[..ROWS].to_vec();
    let spec = PreprocessSpec { standardize: true, ..PreprocessSpec::default() };
    let pre = Preprocessor::fit_rows(&spec, &x, d);
    x.chunks_exact_mut(d).for_each(|r| pre.apply_row(r));
    // A regression target from the same rows: the next row's standardised first feature (any
    // real-valued target with signal makes the solvers work as they do on returns).
    let target: Vec<f64> = (0..ROWS).map(|r| x[((r + 1) % ROWS) * d]).collect();
    let time = |f: &dyn Fn() -> LinearModel| {
        let started = Instant::now();
        let model = f();
        (started.elapsed().as_secs_f64(), model)
    };
    let classify = Dataset { features: &x, feature_names: &names, labels: &y, weights: None, label_windows: None };
    let regress = Dataset { labels: &target, ..classify };
    let logistic = LogisticParams { c: 1.0, ..Default::default() };
    let elastic = LinearParams { alpha: 0.01, l1_ratio: 0.5, ..Default::default() };
    let (logistic_s, logistic_model) = time(&|| LinearModel::fit_logistic(&classify, &logistic).unwrap());
    let (ols_s, ols_model) = time(&|| LinearModel::fit_linear(&regress, &LinearParams::default()).unwrap());
    let (elastic_s, elastic_model) = time(&|| LinearModel::fit_linear(&regress, &elastic).unwrap());
    crate::common::write_f64(&out.join("x.f64"), &x);
    crate::common::write_f64(&out.join("y.f64"), &y);
    crate::common::write_f64(&out.join("target.f64"), &target);
    crate::common::write_f64(&out.join("p_logistic.f64"), &logistic_model.predict(&x).unwrap());
    crate::common::write_f64(&out.join("p_ols.f64"), &ols_model.predict(&x).unwrap());
    crate::common::write_f64(&out.join("p_elastic.f64"), &elastic_model.predict(&x).unwrap());
    let solver = logistic_model.meta().training;
    println!(
        "{{\"rows\": {ROWS}, \"features\": {d}, \"quantpipe_logistic_s\": {logistic_s:.3}, \
         \"quantpipe_logistic_newton_steps\": {}, \"quantpipe_logistic_gradient_norm\": {:e}, \
         \"quantpipe_ols_s\": {ols_s:.3}, \"quantpipe_elastic_net_s\": {elastic_s:.3}}}",
        solver["iterations"],
        solver["gradient_norm"].as_f64().unwrap_or(f64::NAN)
    );
}
