//! Timing harness for `bench/training.sh`: LightGBM training through quantpipe (from row-major f64
//! rows to a fitted model with its in-process evaluator) on 200,000 FILUSDT rows × 50 features,
//! 200 iterations, 2 threads; median of 5 fits. Writes the matrix, the parameters in LightGBM's
//! vocabulary and the model for the Python side; prints JSON.
//!
//! usage: bench_models training FILUSDT_CSV_GZ OUT_DIR

use std::time::Instant;

use quantpipe_models::lightgbm::{LightGbmModel, LightGbmParams};
use quantpipe_models::{Dataset, Model, Task};

pub fn run(args: &[String]) {
    let out = std::path::Path::new(&args[2]);
    let crate::common::Matrix { names, x, y } = crate::common::fil_matrix(std::path::Path::new(&args[1]));
    let mut params = LightGbmParams::new(Task::Binary);
    params.num_iterations = 200;
    params.num_threads = 2;
    let data = Dataset { features: &x, feature_names: &names, labels: &y, weights: None, label_windows: None };
    let mut seconds = Vec::new();
    let mut booster_seconds = Vec::new();
    let mut model = None;
    for _ in 0..5 {
        let started = Instant::now();
        let fitted = LightGbmModel::fit(&data, &params).unwrap();
        seconds.push(started.elapsed().as_secs_f64());
        booster_seconds.push(fitted.meta().training["seconds"].as_f64().unwrap());
        model = Some(fitted);
    }
    seconds.sort_by(f64::total_cmp);
    booster_seconds.sort_by(f64::total_cmp);
    let model = model.unwrap();
    std::fs::write(out.join("model.txt"), model.model_text()).unwrap();
    std::fs::write(out.join("params.json"), params.to_lightgbm().to_string()).unwrap();
    std::fs::write(out.join("names.json"), serde_json::to_string(&names).unwrap()).unwrap();
    crate::common::write_f64(&out.join("x.f64"), &x);
    crate::common::write_f64(&out.join("y.f64"), &y);
    println!(
        "{{\"rows\": {}, \"features\": {}, \"iterations\": {}, \"threads\": 2, \"quantpipe_train_s\": {:.3}, \
         \"of_which_lightgbm_boosting_s\": {:.3}}}",
        y.len(),
        names.len(),
        model.iterations(),
        seconds[2],
        booster_seconds[2]
    );
}
