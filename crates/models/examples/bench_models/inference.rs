//! Timing harness for `bench/inference.sh`: a LightGBM binary model (200 trees × 31 leaves) on
//! FILUSDT 1m features; one-row and 100-row prediction through LightGBM's C API and through
//! quantpipe's in-process evaluator. Writes the model, its ONNX export and rows for the Python side
//! (Python LightGBM and onnxruntime); prints JSON.
//!
//! usage: bench_models inference FILUSDT_CSV_GZ OUT_DIR

use std::hint::black_box;
use std::time::Instant;

use quantpipe_models::lightgbm::{LightGbmModel, LightGbmParams};
use quantpipe_models::{Dataset, Model, Task};

/// Median seconds per call of `f` over `calls` calls, in 7 rounds.
fn per_call(calls: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut rounds: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for i in 0..calls {
                f(i);
            }
            t.elapsed().as_secs_f64() / calls as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[3]
}

pub fn run(args: &[String]) {
    let out = std::path::Path::new(&args[2]);
    let crate::common::Matrix { names, x, y } = crate::common::fil_matrix(std::path::Path::new(&args[1]));
    let d = names.len();
    let rows = y.len();
    let mut params = LightGbmParams::new(Task::Binary);
    params.num_iterations = 200;
    let data = Dataset { features: &x, feature_names: &names, labels: &y, weights: None, label_windows: None };
    let model = LightGbmModel::fit(&data, &params).unwrap();
    model.save(out).unwrap();
    std::fs::write(out.join("model.onnx"), model.to_onnx().unwrap()).unwrap();
    let test = &x[(rows - 10_000) * d..];
    std::fs::write(out.join("rows.f64"), test.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();

    let row = |i: usize| &test[(i % 10_000) * d..(i % 10_000 + 1) * d];
    let c_api_one = per_call(20_000, |i| {
        black_box(model.predict_with_lightgbm(black_box(row(i))).unwrap());
    });
    // The C API's fastest one-row path: the prediction configuration parsed once
    // (`LGBM_BoosterPredictForMatSingleRowFastInit`), then `...SingleRowFast` per row.
    let mut fast = lightgbm3::Booster::from_string(model.model_text()).unwrap();
    fast.single_row_fast_init::<f64>(None).unwrap();
    let c_api_fast_one = per_call(20_000, |i| {
        black_box(fast.predict_single_row_fast(black_box(row(i))).unwrap());
    });
    assert_eq!(
        fast.predict_single_row_fast(row(0)).unwrap(),
        model.predict_with_lightgbm(row(0)).unwrap(),
        "both C API paths give the same prediction"
    );
    let mut buffer = [0.0];
    let ours_one = per_call(20_000, |i| {
        model.evaluator().predict_row(black_box(row(i)), &mut buffer);
        black_box(buffer[0]);
    });
    let batch = |i: usize| &test[(i % 99) * 100 * d..((i % 99) * 100 + 100) * d];
    let c_api_100 = per_call(500, |i| {
        black_box(model.predict_with_lightgbm(black_box(batch(i))).unwrap());
    });
    let ours_100 = per_call(500, |i| {
        black_box(model.evaluator().predict(black_box(batch(i))));
    });
    println!(
        "{{\"features\": {d}, \"trees\": {}, \"c_api_one_row_us\": {:.3}, \"c_api_fast_one_row_us\": {:.3}, \
         \"quantpipe_one_row_us\": {:.3}, \"c_api_100_rows_us\": {:.3}, \"quantpipe_100_rows_us\": {:.3}}}",
        model.iterations(),
        c_api_one * 1e6,
        c_api_fast_one * 1e6,
        ours_one * 1e6,
        c_api_100 * 1e6,
        ours_100 * 1e6
    );
}
