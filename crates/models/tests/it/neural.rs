//! Neural nets (MLP, LSTM on candle):
//!
//! - they learn what they exist for: an MLP separates a pattern no linear model can (an XOR of two
//!   features), an LSTM answers from a row several steps back in its window, which a model of the
//!   last row alone cannot;
//! - their saved artifacts mean what a reader of PyTorch's equations expects: an independent NumPy
//!   forward pass over `network.safetensors` (tests/neural_ref.py) reproduces quantpipe's predictions
//!   on real FILUSDT features to 2e-6 of the largest output (measured 1e-7 to 4e-7);
//! - the same rows and seed give the same weights, byte for byte; the single-row path equals the batch
//!   path; a saved and loaded model predicts the same values;
//! - explanations are integrated gradients: they sum to the raw output minus the output at the zero
//!   row (reported as the bias);
//! - bad parameters and missing values are refused with what is wrong.

use std::path::Path;

use crate::common::{data, python, read_f64, write_f64};
use quantpipe_core::preprocess::{Impute, PreprocessSpec, Preprocessor};
use quantpipe_models::neural::{
    gather_windows, parse_sequence_name, sequence_names, LstmParams, MlpParams, NeuralObjective,
};
use quantpipe_models::{fit, load, Dataset, ModelSpec};

/// A deterministic standard-normal stream.
struct Normal(u64);

impl Normal {
    fn next(&mut self) -> f64 {
        let mut unit = || {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let (u, v) = (unit(), unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

fn roc_auc(y: &[f64], p: &[f64]) -> f64 {
    let mut pairs: Vec<(f64, f64)> = p.iter().copied().zip(y.iter().copied()).collect();
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = y.iter().filter(|&&v| v == 1.0).count() as f64;
    let negatives = y.len() as f64 - positives;
    let rank_sum: f64 = pairs.iter().enumerate().filter(|(_, (_, y))| *y == 1.0).map(|(i, _)| i as f64 + 1.0).sum();
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

fn names(d: usize) -> Vec<String> {
    (0..d).map(|i| format!("f{i}")).collect()
}

fn dataset<'a>(x: &'a [f64], names: &'a [String], y: &'a [f64]) -> Dataset<'a> {
    Dataset { features: x, feature_names: names, labels: y, weights: None, label_windows: None }
}

fn mlp(hidden: Vec<usize>) -> MlpParams {
    MlpParams { hidden, max_epochs: 60, patience: 8, learning_rate: 3e-3, ..Default::default() }
}

#[test]
fn an_mlp_learns_an_xor_that_a_logistic_regression_cannot() {
    let (n, d) = (6_000, 4);
    let mut rng = Normal(7);
    let x: Vec<f64> = (0..n * d).map(|_| rng.next()).collect();
    let y: Vec<f64> = x.chunks(d).map(|r| f64::from(u8::from((r[0] > 0.0) != (r[1] > 0.0)))).collect();
    let names = names(d);
    let (train, test) = (5_000, 1_000);
    let fit_on = |spec: ModelSpec| {
        let model = fit(&spec, None, &dataset(&x[..train * d], &names, &y[..train])).unwrap();
        roc_auc(&y[train..], &model.predict(&x[train * d..]).unwrap())
    };
    let mlp_auc = fit_on(ModelSpec::Mlp(mlp(vec![32, 16])));
    let logistic_auc = fit_on(ModelSpec::Logistic(Default::default()));
    eprintln!("XOR: MLP AUC {mlp_auc}, logistic AUC {logistic_auc}");
    assert!(mlp_auc > 0.97, "MLP AUC {mlp_auc}");
    assert!((logistic_auc - 0.5).abs() < 0.06, "logistic AUC {logistic_auc}");
    assert_eq!(test, y.len() - train);
}

#[test]
fn an_lstm_answers_from_a_row_far_back_in_its_window_where_a_last_row_model_cannot() {
    // Two features over 12 000 steps; the label at t is whether feature 0 was positive 5 steps back.
    let (bars, d, window, lag) = (12_000, 2, 8, 5);
    let mut rng = Normal(11);
    let columns: Vec<Vec<f64>> = (0..d).map(|_| (0..bars).map(|_| rng.next()).collect()).collect();
    let ends: Vec<usize> = (window - 1..bars).collect();
    let y: Vec<f64> = ends.iter().map(|&t| f64::from(u8::from(columns[0][t - lag] > 0.0))).collect();
    let x = gather_windows(&columns, &ends, window);
    let base = names(d);
    let seq_names = sequence_names(&base, window);
    assert_eq!(seq_names[0], "f0[t-7]");
    assert_eq!(seq_names[seq_names.len() - 1], "f1[t]");
    assert_eq!(parse_sequence_name("f0[t-7]"), Some(("f0", 7)));
    assert_eq!(parse_sequence_name("rsi_14[t]"), Some(("rsi_14", 0)));
    assert_eq!(parse_sequence_name("rsi_14"), None);
    // The window's rows are the bars before each end, oldest first.
    assert_eq!(x[0], columns[0][0]);
    assert_eq!(x[(window - 1) * d + 1], columns[1][window - 1]);

    let train = 10_000;
    let w = window * d;
    let params = LstmParams {
        window,
        hidden: 16,
        max_epochs: 40,
        patience: 6,
        learning_rate: 1e-2,
        batch_size: 128,
        ..Default::default()
    };
    let model = fit(&ModelSpec::Lstm(params), None, &dataset(&x[..train * w], &seq_names, &y[..train])).unwrap();
    let p = model.predict(&x[train * w..]).unwrap();
    let accuracy =
        p.iter().zip(&y[train..]).filter(|(p, y)| (**p > 0.5) == (**y == 1.0)).count() as f64 / p.len() as f64;
    eprintln!("lag-5 memory: LSTM accuracy {accuracy}");
    assert!(accuracy > 0.95, "LSTM accuracy {accuracy}");

    // The same label from the last row alone is a coin toss.
    let last: Vec<f64> = ends.iter().flat_map(|&t| columns.iter().map(move |c| c[t])).collect();
    let mlp_model =
        fit(&ModelSpec::Mlp(mlp(vec![16])), None, &dataset(&last[..train * d], &base, &y[..train])).unwrap();
    let auc = roc_auc(&y[train..], &mlp_model.predict(&last[train * d..]).unwrap());
    eprintln!("lag-5 memory: last-row MLP AUC {auc}");
    assert!((auc - 0.5).abs() < 0.05, "last-row AUC {auc}");
}

/// FIL features preprocessed by hand (median imputation, standardisation), so the reference sees the
/// exact rows the network does.
fn fil_rows(rows: usize, window: usize) -> (Vec<f64>, Vec<String>, Preprocessor) {
    let d = data().names.len();
    let raw = &data().x[..rows * d];
    let spec = PreprocessSpec { impute: Impute::Median, winsorize: 0.0, standardize: true };
    let pre = Preprocessor::fit_rows(&spec, raw, d);
    let mut x = raw.to_vec();
    x.chunks_exact_mut(d).for_each(|r| pre.apply_row(r));
    if window == 1 {
        return (x, data().names.clone(), pre);
    }
    let columns: Vec<Vec<f64>> = (0..d).map(|c| x.iter().skip(c).step_by(d).copied().collect()).collect();
    let ends: Vec<usize> = (window - 1..rows).collect();
    (gather_windows(&columns, &ends, window), sequence_names(&data().names, window), pre)
}

fn numpy_forward(dir: &Path, rows: &[f64]) -> Vec<f64> {
    let scratch = tempfile::tempdir().unwrap();
    let (input, out) = (scratch.path().join("x.f64"), scratch.path().join("out.f64"));
    write_f64(&input, rows);
    let status = std::process::Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/neural_ref.py"))
        .args([dir.as_os_str(), input.as_os_str(), out.as_os_str()])
        .status()
        .unwrap();
    assert!(status.success(), "neural_ref.py failed");
    read_f64(&out)
}

#[test]
fn saved_networks_predict_as_numpy_evaluates_pytorchs_equations() {
    let identity = Some(PreprocessSpec::identity());
    let cases: Vec<(&str, ModelSpec, usize, &[f64])> = vec![
        (
            "mlp binary",
            ModelSpec::Mlp(MlpParams { hidden: vec![32, 16], max_epochs: 5, ..Default::default() }),
            1,
            &data().direction,
        ),
        (
            "mlp multiclass tanh",
            ModelSpec::Mlp(MlpParams {
                objective: NeuralObjective::Multiclass,
                num_class: Some(3),
                hidden: vec![24],
                activation: quantpipe_models::neural::Activation::Tanh,
                max_epochs: 5,
                ..Default::default()
            }),
            1,
            &data().barrier_class,
        ),
        (
            "lstm regression, 2 layers and a head",
            ModelSpec::Lstm(LstmParams {
                objective: NeuralObjective::Regression,
                window: 6,
                hidden: 12,
                layers: 2,
                head: vec![8],
                max_epochs: 3,
                ..Default::default()
            }),
            6,
            &data().forward_return,
        ),
    ];
    for (case, spec, window, labels) in cases {
        let rows = 6_000;
        let (x, names, _) = fil_rows(rows, window);
        let y = &labels[window - 1..rows];
        let width = names.len();
        let train = 5_000;
        let model = fit(&spec, identity.as_ref(), &dataset(&x[..train * width], &names, &y[..train])).unwrap();
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let test = &x[train * width..];
        let ours = model.predict(test).unwrap();
        let theirs = numpy_forward(dir.path(), test);
        assert_eq!(ours.len(), theirs.len(), "{case}");
        let scale = theirs.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
        // Relative to the largest output (returns are ~1e-3, probabilities ~1).
        let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs() / scale).fold(0.0, f64::max);
        eprintln!("{case}: largest difference {worst:e} of the largest output {scale:e}");
        assert!(worst < 2e-6, "{case}: largest difference {worst:e} (outputs up to {scale:e})");
        // The spread of the outputs is real (a constant model would pass the comparison trivially).
        let spread = theirs.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v))
            - theirs.iter().fold(f64::INFINITY, |m, v| m.min(*v));
        assert!(spread > 1e-2 * scale, "{case}: outputs do not vary ({spread:e})");

        // One row at a time (the allocation-free path) gives the batch's values.
        for (i, row) in test.chunks(width).take(50).enumerate() {
            let single = model.predict_row(row).unwrap();
            let outputs = single.len();
            for (k, v) in single.iter().enumerate() {
                let batch = ours[i * outputs + k];
                assert!((v - batch).abs() <= 1e-5 * batch.abs().max(1.0), "{case}: row {i}: {v} vs {batch}");
            }
        }
        // A loaded model predicts the same values.
        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded.family(), model.family());
        assert_eq!(loaded.predict(test).unwrap(), ours, "{case}: reloaded");
    }
}

#[test]
fn the_same_rows_and_seed_give_the_same_bytes_and_early_stopping_keeps_the_best_epoch() {
    let (x, names, _) = fil_rows(4_000, 1);
    let y = &data().direction[..4_000];
    let windows = (&data().start[..4_000], &data().end[..4_000]);
    let data = Dataset { label_windows: Some(windows), ..dataset(&x, &names, y) };
    let spec = ModelSpec::Mlp(MlpParams { max_epochs: 30, patience: 3, ..Default::default() });
    let identity = PreprocessSpec::identity();
    let save = |spec: &ModelSpec| {
        let model = fit(spec, Some(&identity), &data).unwrap();
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let weights = std::fs::read(dir.path().join("network.safetensors")).unwrap();
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("model.json")).unwrap()).unwrap();
        (weights, meta)
    };
    let (a, meta) = save(&spec);
    let (b, _) = save(&spec);
    assert_eq!(a, b, "two fits with one seed differ");
    let other = ModelSpec::Mlp(MlpParams { seed: 7, max_epochs: 30, patience: 3, ..Default::default() });
    assert_ne!(save(&other).0, a, "another seed gives the same weights");

    let training = &meta["training"];
    let curve = training["loss_curve"].as_array().unwrap();
    let (epochs, best) = (training["epochs"].as_u64().unwrap(), training["best_epoch"].as_u64().unwrap());
    assert_eq!(curve.len() as u64, epochs);
    // Stopped `patience` epochs after the best, which has the lowest held-out loss.
    assert!(epochs == 30 || epochs == best + 3, "epochs {epochs}, best {best}");
    let valid: Vec<f64> = curve.iter().map(|e| e[2].as_f64().unwrap()).collect();
    let lowest = valid.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(valid[best as usize - 1], lowest);
    assert_eq!(training["validation_rows"], 800);
    // Label windows of 60 bars: the training rows whose labels reach the held-out block are purged.
    assert_eq!(training["purged_before_validation"], 60);
}

#[test]
fn explanations_are_integrated_gradients_that_sum_to_the_output_minus_the_baseline() {
    let (x, names, _) = fil_rows(3_000, 1);
    let y = &data().direction[..3_000];
    let d = names.len();
    let model = fit(
        &ModelSpec::Mlp(MlpParams {
            hidden: vec![16],
            max_epochs: 10,
            activation: quantpipe_models::neural::Activation::Tanh,
            ..Default::default()
        }),
        Some(&PreprocessSpec::identity()),
        &dataset(&x, &names, y),
    )
    .unwrap();
    let logit = |p: f64| (p / (1.0 - p)).ln();
    let zero = model.predict_row(&vec![0.0; d]).unwrap()[0];
    for row in x.chunks(d).skip(2_000).take(20) {
        let c = model.explain(row).unwrap();
        assert_eq!(c.len(), d + 1);
        let raw = logit(model.predict_row(row).unwrap()[0]);
        assert!((c[d] - logit(zero)).abs() < 1e-5, "bias {} vs raw output at zero {}", c[d], logit(zero));
        let total: f64 = c.iter().sum();
        assert!((total - raw).abs() < 2e-3 * raw.abs().max(0.1), "contributions sum to {total}, output {raw}");
    }
    let importance = model.feature_importance().unwrap();
    assert_eq!(importance.len(), d);
    assert!(importance.iter().all(|i| i.gain.is_finite() && i.gain >= 0.0) && importance.iter().any(|i| i.gain > 0.0));
}

#[test]
fn bad_parameters_and_missing_values_are_refused_naming_the_problem() {
    let spec = |text: &str| {
        toml::from_str::<ModelSpec>(text)
            .map_err(|e| e.to_string())
            .and_then(|s| s.task().map(|_| s).map_err(|e| e.to_string()))
    };
    assert!(spec("kind = \"mlp\"\nhiden = [8]").unwrap_err().contains("hiden"));
    assert!(spec("kind = \"mlp\"\nhidden = [8, 0]").unwrap_err().contains("hidden[1] = 0"));
    assert!(spec("kind = \"mlp\"\nlearning_rate = 2.0").unwrap_err().contains("learning_rate"));
    assert!(spec("kind = \"mlp\"\nobjective = \"multiclass\"").unwrap_err().contains("num_class"));
    assert!(spec("kind = \"lstm\"\nwindow = 0").unwrap_err().contains("window = 0"));
    assert!(spec("kind = \"lstm\"\nvalidation_fraction = 0.1\npatience = 0").unwrap_err().contains("patience"));
    assert_eq!(spec("kind = \"lstm\"\nwindow = 32").unwrap().window(), 32);

    let names = names(3);
    let mut x = vec![0.5; 300];
    let y: Vec<f64> = (0..100).map(|i| f64::from(i % 2)).collect();
    x[7] = f64::NAN;
    let identity = PreprocessSpec::identity();
    let err = fit(&ModelSpec::Mlp(MlpParams::default()), Some(&identity), &dataset(&x, &names, &y))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("\"f1\" at row 2 is missing"), "{err}");
    // With the default preprocessing the hole is imputed and training goes on.
    fit(&ModelSpec::Mlp(MlpParams { max_epochs: 2, ..Default::default() }), None, &dataset(&x, &names, &y)).unwrap();
    // An LSTM's rows must be whole windows.
    let err = fit(&ModelSpec::Lstm(LstmParams { window: 2, ..Default::default() }), None, &dataset(&x, &names, &y))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("window = 2"), "{err}");
    // Ensembles refuse an LSTM member (its rows are windows, the others' are not).
    let ensemble =
        "kind = \"ensemble\"\nmethod = \"average\"\n[[members]]\nkind = \"mlp\"\n[[members]]\nkind = \"lstm\"\n";
    assert!(spec(ensemble).unwrap_err().contains("members[1]: an LSTM"));
}
