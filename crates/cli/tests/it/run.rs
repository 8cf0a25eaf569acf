//! `quantpipe run`: the README's main job, end to end, as a user runs it — the bundled sample through
//! every stage into the registry and a report; same config, same model bytes; failing stages that name
//! themselves and leave the registry untouched; the report in a real browser.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{json, quantpipe, repo, shared_data, text};

/// AUC by counting ordered pairs (ties half), independent of quantpipe's implementation.
fn pairwise_auc(y: &[f64], p: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..y.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let (mut below_negatives, mut wins, mut i) = (0.0, 0.0, 0);
    while i < order.len() {
        let mut j = i;
        while j < order.len() && p[order[j]] == p[order[i]] {
            j += 1;
        }
        let (pos, neg) =
            order[i..j].iter().fold((0.0, 0.0), |(a, b), &k| if y[k] == 1.0 { (a + 1.0, b) } else { (a, b + 1.0) });
        wins += pos * (below_negatives + neg / 2.0);
        below_negatives += neg;
        i = j;
    }
    let positives = y.iter().filter(|&&v| v == 1.0).count() as f64;
    wins / (positives * (y.len() as f64 - positives))
}

struct Prediction {
    ts: String,
    symbol: String,
    model: String,
    label: f64,
    prediction: f64,
    position: f64,
    ret: Option<f64>,
}

fn read_predictions(path: &Path) -> Vec<Prediction> {
    let mut r = csv::Reader::from_path(path).unwrap();
    assert_eq!(r.headers().unwrap(), vec!["ts", "symbol", "model", "label", "prediction", "position", "return"]);
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            Prediction {
                ts: rec[0].to_string(),
                symbol: rec[1].to_string(),
                model: rec[2].to_string(),
                label: rec[3].parse().unwrap(),
                prediction: rec[4].parse().unwrap(),
                position: rec[5].parse().unwrap(),
                ret: rec[6].parse().ok(),
            }
        })
        .collect()
}

#[test]
fn quickstart_runs_every_stage_registers_and_reports_and_repeats_exactly() {
    let home = tempfile::tempdir().unwrap();
    let out_dir = home.path().join("run1");
    let config = repo("examples/quickstart.toml");
    let v =
        json(&quantpipe(home.path(), &["run", config.to_str().unwrap(), "--out", out_dir.to_str().unwrap(), "--json"]));

    let stages: Vec<&str> = v["stages"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(
        stages,
        ["data", "features", "labels", "dataset", "train", "backtest", "overfitting", "register", "report"]
    );
    assert_eq!(v["data"]["rows"], 17583);
    assert_eq!(v["data"]["symbol"], "BTCUSD");
    assert!(v["features"].as_u64().unwrap() >= 100);
    let models = v["models"].as_array().unwrap();
    assert_eq!(models.len(), 2);

    // The predictions file agrees with the summary's scores and backtest.
    let predictions = read_predictions(&out_dir.join("predictions.csv"));
    for m in models {
        let name = m["name"].as_str().unwrap();
        let rows: Vec<&Prediction> = predictions.iter().filter(|p| p.model == name).collect();
        assert_eq!(rows.len() as u64, m["oos_rows"].as_u64().unwrap(), "{name}");
        assert!(rows.windows(2).all(|w| w[0].ts < w[1].ts), "{name}: predictions out of time order");
        let y: Vec<f64> = rows.iter().map(|p| p.label).collect();
        let p: Vec<f64> = rows.iter().map(|p| p.prediction).collect();
        assert!(y.iter().all(|&v| v == 0.0 || v == 1.0));
        let auc = m["oos_scores"]["roc_auc"].as_f64().unwrap();
        assert!((pairwise_auc(&y, &p) - auc).abs() < 1e-12, "{name}: AUC {auc} vs recomputed {}", pairwise_auc(&y, &p));
        // Hourly BTC direction is close to a coin flip out of sample; a pipeline that let the label
        // leak into the features would score far higher.
        assert!((0.45..0.60).contains(&auc), "{name}: out-of-sample AUC {auc}");
        for r in &rows {
            let want = if r.prediction > 0.55 {
                1.0
            } else if r.prediction < 0.45 {
                -1.0
            } else {
                0.0
            };
            assert_eq!(r.position, want, "{name} at {}: P(up) {} gave position {}", r.ts, r.prediction, r.position);
        }
        // Compounding the per-bar returns reproduces the reported total return (every bar in the tested
        // range has a prediction in this data).
        let growth: f64 = rows.iter().filter_map(|r| r.ret).map(|r| 1.0 + r).product();
        let total = m["backtest"]["strategy"]["total_return"].as_f64().unwrap();
        assert!((growth - 1.0 - total).abs() < 1e-9, "{name}: compounded {} vs total {total}", growth - 1.0);
        assert!(m["sharpe_statistics"]["deflated_sharpe"].as_f64().is_some());
        assert_eq!(m["sharpe_statistics"]["trials"], 2);
        assert!(m["folds"].as_array().unwrap().len() >= 5);
        assert!(m["importance"].as_array().unwrap().len() >= 10);
        assert!(m["shap"].as_array().unwrap().len() >= 10);
    }
    assert!(v["overfitting"]["pbo"]["pbo"].as_f64().is_some_and(|p| (0.0..=1.0).contains(&p)));

    // The registry holds one version per model from this run, in the stage the gate allowed.
    let registered = v["registry"]["versions"].as_array().unwrap();
    assert_eq!(registered.len(), 2);
    let listed = json(&quantpipe(home.path(), &["models", "list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    for r in registered {
        let stage = r["stage"].as_str().unwrap();
        let failures = r["gate_failures"].as_array().unwrap();
        assert!((stage == "production") == failures.is_empty(), "{r}");
        let shown = json(&quantpipe(home.path(), &["models", "show", r["version"].as_str().unwrap(), "--json"]));
        assert_eq!(shown["stage"], stage);
        assert_eq!(shown["run_id"], v["registry"]["run_id"]);
        assert!(
            shown["metrics"]["oos_roc_auc"].as_f64().is_some()
                && shown["metrics"]["deflated_sharpe"].as_f64().is_some()
        );
    }
    let runs = json(&quantpipe(home.path(), &["runs", "list", "--json"]));
    assert_eq!(runs[0]["status"], "succeeded", "{runs}");

    // The report is one self-contained file with every chart.
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.matches("<svg class=\"chart\"").count() >= 8);
    for external in ["<script src", "<link", "@import", "url(http", "src=\"http"] {
        assert!(!html.contains(external), "report refers to an external resource: {external}");
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["models"], v["models"]);
    check_in_browser(&out_dir.join("report.html"));
    // Every chart is also a PNG, named after its title, at twice the chart's size.
    let mut pngs: Vec<PathBuf> =
        std::fs::read_dir(out_dir.join("charts")).unwrap().map(|e| e.unwrap().path()).collect();
    pngs.sort();
    assert_eq!(pngs.len(), html.matches("<svg class=\"chart\"").count());
    assert!(pngs.iter().any(|p| p.file_name().unwrap().to_str().unwrap().contains("equity")), "{pngs:?}");
    for png in &pngs {
        let bytes = std::fs::read(png).unwrap();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "{}: {} bytes", png.display(), bytes.len());
        // IHDR: width at bytes 16..20, big-endian; charts are 820 units wide.
        assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 1640, "{}", png.display());
    }

    // Same config, same data: same metrics and the same model bytes.
    let home2 = tempfile::tempdir().unwrap();
    let out2 = home2.path().join("run2");
    let again =
        json(&quantpipe(home2.path(), &["run", config.to_str().unwrap(), "--out", out2.to_str().unwrap(), "--json"]));
    for (a, b) in models.iter().zip(again["models"].as_array().unwrap()) {
        assert_eq!(a["oos_scores"], b["oos_scores"]);
        assert_eq!(a["backtest"], b["backtest"]);
        let name = a["name"].as_str().unwrap();
        let bytes = |dir: &Path| std::fs::read(dir.join("models").join(name).join("model.txt")).unwrap();
        assert!(bytes(&out_dir) == bytes(&out2), "{name}: model files differ between identical runs");
    }
}

/// A parameter search: every candidate is scored by the run's cross-validation, the best is the one
/// refitted and registered, and every candidate counts as a trial in the deflated Sharpe ratio and PBO.
#[test]
fn a_parameter_search_keeps_the_best_trial_and_counts_every_trial() {
    let home = tempfile::tempdir().unwrap();
    let out_dir = home.path().join("run");
    let config = repo("examples/btc_search.toml");
    let check = json(&quantpipe(home.path(), &["run", config.to_str().unwrap(), "--check", "--json"]));
    let splits = check["splits"].as_u64().unwrap();
    assert_eq!(check["fits"].as_u64().unwrap(), (8 + 2) * splits + 2, "{check}");

    let v =
        json(&quantpipe(home.path(), &["run", config.to_str().unwrap(), "--out", out_dir.to_str().unwrap(), "--json"]));
    let predictions = read_predictions(&out_dir.join("predictions.csv"));
    let models = v["models"].as_array().unwrap();
    for (m, trials_wanted, metric, higher) in [(&models[0], 8, "roc_auc", true), (&models[1], 2, "brier", false)] {
        let name = m["name"].as_str().unwrap();
        let search = &m["search"];
        assert_eq!(search["metric"], metric);
        let trials = search["trials"].as_array().unwrap();
        assert_eq!(trials.len(), trials_wanted, "{name}");
        let scores: Vec<f64> = trials.iter().map(|t| t["score"].as_f64().unwrap()).collect();
        let best = if higher {
            scores.iter().copied().fold(f64::MIN, f64::max)
        } else {
            scores.iter().copied().fold(f64::MAX, f64::min)
        };
        let chosen = search["chosen"].as_u64().unwrap() as usize;
        let kept = &trials[chosen - 1];
        // The kept trial is the best, and the first of equals.
        assert_eq!(kept["score"].as_f64().unwrap(), best, "{name}: kept {kept} of {scores:?}");
        assert!(scores[..chosen - 1].iter().all(|&s| s != best), "{name}: an earlier trial tied");
        // Different parameters gave different models: a search that ignored its space would not.
        assert!(scores.iter().any(|&s| s != scores[0]), "{name}: every trial scored {}", scores[0]);
        // The model's out-of-sample figures are the kept trial's cross-validation, and the
        // predictions file reproduces them.
        assert_eq!(m["oos_scores"][metric].as_f64().unwrap(), best, "{name}");
        let folds: Vec<f64> = m["folds"].as_array().unwrap().iter().map(|f| f["score"].as_f64().unwrap()).collect();
        let kept_folds: Vec<f64> =
            kept["fold_scores"].as_array().unwrap().iter().map(|f| f.as_f64().unwrap()).collect();
        assert_eq!(folds, kept_folds, "{name}");
        let rows: Vec<&Prediction> = predictions.iter().filter(|p| p.model == name).collect();
        let y: Vec<f64> = rows.iter().map(|p| p.label).collect();
        let p: Vec<f64> = rows.iter().map(|p| p.prediction).collect();
        let auc = m["oos_scores"]["roc_auc"].as_f64().unwrap();
        assert!((pairwise_auc(&y, &p) - auc).abs() < 1e-12, "{name}");
        // The registered parameters are the kept trial's.
        for (param, value) in kept["params"].as_object().unwrap() {
            assert_eq!(&m["params"][param], value, "{name}: {param}");
        }
        assert_eq!(m["sharpe_statistics"]["trials"], 10, "{name}");
        let shown = json(&quantpipe(home.path(), &["models", "show", &format!("{name}@latest"), "--json"]));
        assert_eq!(shown["params"]["search"]["trials"], trials_wanted, "{shown}");
        assert_eq!(shown["params"]["search"]["chosen"], chosen as u64);
        assert_eq!(shown["metrics"]["trials"], 10.0);
    }
    // The saved booster was trained with the kept number of leaves.
    let kept_leaves = &models[0]["search"]["trials"][models[0]["search"]["chosen"].as_u64().unwrap() as usize - 1]
        ["params"]["num_leaves"];
    let booster = std::fs::read_to_string(out_dir.join("models/btc_direction_gbdt_searched/model.txt")).unwrap();
    assert!(
        booster.contains(&format!("[num_leaves: {kept_leaves}]")),
        "num_leaves {kept_leaves} not in the model file"
    );
    assert_eq!(v["overfitting"]["trials"], 10);
    assert!(v["overfitting"]["pbo"]["pbo"].as_f64().is_some_and(|p| (0.0..=1.0).contains(&p)));
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("Parameter search: btc_direction_gbdt_searched"));
    assert!(html.contains("Parameter search: btc_direction_forest_searched"));
}

/// The momentum-classifier role: an RBF SVM in a pipeline, its C chosen by a grid whose trials train
/// side by side (one thread each), registered with its Platt-calibrated probabilities.
#[test]
fn an_svm_pipeline_searches_its_cost_and_registers_calibrated_probabilities() {
    let home = tempfile::tempdir().unwrap();
    let out_dir = home.path().join("run");
    let config = repo("examples/btc_momentum_svm.toml");
    let v =
        json(&quantpipe(home.path(), &["run", config.to_str().unwrap(), "--out", out_dir.to_str().unwrap(), "--json"]));
    let m = &v["models"][0];
    assert_eq!(m["family"], "svm");
    let trials = m["search"]["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 2);
    let losses: Vec<f64> = trials.iter().map(|t| t["score"].as_f64().unwrap()).collect();
    let chosen = m["search"]["chosen"].as_u64().unwrap() as usize;
    assert_eq!(losses[chosen - 1], losses.iter().copied().fold(f64::MAX, f64::min), "lower log loss wins: {losses:?}");
    assert_eq!(m["params"]["c"], trials[chosen - 1]["params"]["c"]);
    // The predictions are probabilities whose log loss is the reported one.
    let predictions: Vec<Prediction> = read_predictions(&out_dir.join("predictions.csv"))
        .into_iter()
        .filter(|p| p.model == "btc_momentum_svm")
        .collect();
    assert_eq!(predictions.len() as u64, m["oos_rows"].as_u64().unwrap());
    assert!(predictions.iter().all(|p| p.prediction > 0.0 && p.prediction < 1.0));
    let log_loss = -predictions
        .iter()
        .map(|p| if p.label == 1.0 { p.prediction.ln() } else { (1.0 - p.prediction).ln() })
        .sum::<f64>()
        / predictions.len() as f64;
    assert!((log_loss - losses[chosen - 1]).abs() < 1e-12, "{log_loss} vs {}", losses[chosen - 1]);
    // The logistic baseline trained beside it; both count as trials with the SVM's two candidates.
    assert_eq!(v["models"][1]["family"], "logistic");
    assert_eq!(v["overfitting"]["trials"], 3);
    assert_eq!(m["sharpe_statistics"]["trials"], 3);
    // The saved model reloads as an SVM with its support vectors.
    let svm: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("models/btc_momentum_svm/svm.json")).unwrap()).unwrap();
    assert!(svm["model"]["sv"].as_array().unwrap().len() > 100);
    assert!(svm["platt"].as_array().is_some_and(|ab| ab.len() == 2));
}

fn write_config(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(repo("examples/quickstart.toml")).unwrap();
    let text = text.replace("../data/sample/", &format!("{}/", repo("data/sample").display()));
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, edit(text)).unwrap();
    path
}

#[test]
fn check_validates_config_and_data_without_training() {
    let home = tempfile::tempdir().unwrap();
    let config = write_config(home.path(), |t| t);
    let v = json(&quantpipe(home.path(), &["run", config.to_str().unwrap(), "--check", "--json"]));
    assert_eq!(v["ok"], true);
    assert_eq!(v["data"]["rows"], 17583);
    assert!(v["splits"].as_u64().unwrap() >= 5);
    assert!(!home.path().join("runs").exists(), "--check wrote a run directory");
    assert!(!home.path().join("registry.db").exists(), "--check touched the registry");
}

#[test]
fn failing_stages_and_bad_configs_name_the_cause_and_leave_the_registry_untouched() {
    let home = tempfile::tempdir().unwrap();
    // (text to find, its replacement, what the error must say)
    let cases = [
        ("[backtest]\n", "[backtest]\nfee_bsp = 3\n", "backtest.fee_bsp (line"),
        ("num_leaves = 15", "num_leafs = 15", "num_leafs"),
        ("seed = 7\n", "seed = 7\ntarget = \"nope\"\n", "models[0].target"),
        ("bitfinex_btcusd_1h.csv.gz", "missing.csv", "stage data"),
        ("timeframe = \"1h\"", "timeframe = \"1m\"", "the bars are 1h, but data.timeframe is 1m"),
        ("min_train_rows = 2000", "min_train_rows = 100000", "stage validation"),
        ("horizons = [\"4h\", \"24h\"]", "horizons = []", "label"),
    ];
    for (find, replace, expected) in cases {
        let config = write_config(home.path(), |t| {
            assert!(t.contains(find), "{find:?} is not in the example");
            t.replacen(find, replace, 1)
        });
        let out = quantpipe(home.path(), &["run", config.to_str().unwrap()]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(t.contains(expected), "expected {expected:?} in: {t}");
        assert!(!t.contains("panicked"), "{t}");
    }
    // Nothing was registered by any of them.
    let listed = json(&quantpipe(home.path(), &["models", "list", "--json"]));
    assert_eq!(listed, serde_json::json!([]));
}

#[test]
fn init_prints_a_commented_example_that_checks() {
    let home = tempfile::tempdir().unwrap();
    let out = quantpipe(home.path(), &["init"]);
    assert!(out.status.success());
    let example = String::from_utf8(out.stdout).unwrap();
    assert!(
        example.contains("# ") && example.contains("file = \"data/sample/bitfinex_btcusd_1h.csv.gz\""),
        "{example}"
    );
    // Written at the repository's root, as the README does, it is a valid pipeline.
    let path = home.path().join("pipeline.toml");
    std::fs::write(&path, example.replace("\"data/sample/", &format!("\"{}/", repo("data/sample").display()))).unwrap();
    let v = json(&quantpipe(home.path(), &["run", path.to_str().unwrap(), "--check", "--json"]));
    assert_eq!(v["ok"], true);
}

/// Opens the report in headless Chromium: no console errors, every chart laid out with marks, and a
/// screenshot beside the report.
fn check_in_browser(report: &Path) {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("Chromium is needed for the report test (apt-get install -y chromium); ./scripts/test installs it");
    let url = format!("file://{}", report.canonicalize().unwrap().display());
    let profile = tempfile::tempdir().unwrap();
    let common =
        ["--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", "--virtual-time-budget=3000"];
    let out = Command::new(chromium)
        .args(common)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--enable-logging=stderr", "--v=0", "--dump-dom", &url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE") || l.contains("Uncaught")).collect();
    assert!(console.is_empty(), "console messages from the report: {console:#?}");
    let attr = |name: &str| -> usize {
        let key = format!("{name}=\"");
        let at = dom.find(&key).unwrap_or_else(|| panic!("the report's check did not run (no {name} on <body>)"))
            + key.len();
        dom[at..].split('"').next().unwrap().parse().unwrap()
    };
    let (charts, rendered) = (attr("data-charts"), attr("data-charts-rendered"));
    assert!(charts >= 8, "{charts} charts");
    assert_eq!(rendered, charts, "{rendered} of {charts} charts rendered");
    let shot = report.with_file_name("report.png");
    let out = Command::new(chromium)
        .args(common)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--window-size=900,2400", "--hide-scrollbars", &format!("--screenshot={}", shot.display()), &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(png.len() > 20_000 && png.starts_with(b"\x89PNG"), "screenshot of {} bytes", png.len());
    // Kept for people to look at (CARGO_TARGET_TMPDIR/quickstart-report.png).
    let keep = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("quickstart-report.png");
    std::fs::copy(&shot, keep).unwrap();
}

/// Every example in examples/ is a valid pipeline over its real data (config, data, features, labels
/// and splits); the long ones are run in full by bench and by hand (docs/pipeline.md gives times).
#[test]
fn every_example_checks_against_its_real_data() {
    let home = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(repo("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let out = quantpipe(home.path(), &["run", path.to_str().unwrap(), "--check", "--json"]);
        let v = json(&out);
        assert_eq!(v["ok"], true, "{}", path.display());
        assert!(v["dataset_rows"].as_u64().unwrap() >= 1000, "{}: {v}", path.display());
        assert!(v["splits"].as_u64().unwrap() >= 2, "{}: {v}", path.display());
        checked += 1;
    }
    assert!(checked >= 6, "{checked} examples");
}

/// The sigma-reversion gate on FILUSDT 1m: the model approves or blocks the trades the label
/// proposes, and the reported approval rate is the share of proposed trades it let through.
#[test]
fn sigma_reversion_gate_reports_its_approval_rate() {
    let home = tempfile::tempdir().unwrap();
    let out_dir = home.path().join("run");
    let out = quantpipe(
        home.path(),
        &[
            "run",
            repo("examples/filusdt_sigma_gate.toml").to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--json",
        ],
    );
    let v = json(&out);
    let m = &v["models"][0];
    assert_eq!(m["target"], "reverts");
    let rate = m["backtest"]["strategy"]["approval_rate"].as_f64().unwrap();
    let predictions = read_predictions(&out_dir.join("predictions.csv"));
    assert_eq!(predictions.len() as u64, m["oos_rows"].as_u64().unwrap());
    // Every out-of-sample row is a proposed trade; the approved ones hold a position.
    let approved = predictions.iter().filter(|p| p.position != 0.0).count();
    assert!((rate - approved as f64 / predictions.len() as f64).abs() < 1e-12, "rate {rate}, approved {approved}");
    assert!(predictions.iter().all(|p| (p.position != 0.0) == (p.prediction > 0.08)));
    assert!(rate > 0.0 && rate < 1.0, "approval rate {rate}");
    assert!(m["oos_scores"]["roc_auc"].as_f64().unwrap() > 0.5);
}

/// The price-predictor example: an LSTM over windows of 16 feature rows beside LightGBM, on the same
/// dataset rows (shortened to 3 epochs here; the example trains up to 30).
#[test]
fn an_lstm_pipeline_trains_on_windows_of_feature_rows_beside_lightgbm() {
    let home = tempfile::tempdir().unwrap();
    let out_dir = home.path().join("run");
    let text = std::fs::read_to_string(repo("examples/filusdt_price_lstm.toml")).unwrap();
    assert!(text.contains("max_epochs = 30"));
    let config = home.path().join("price.toml");
    std::fs::write(&config, text.replace("max_epochs = 30", "max_epochs = 3")).unwrap();
    let out = quantpipe(home.path(), &["run", config.to_str().unwrap(), "--out", out_dir.to_str().unwrap(), "--json"]);
    let v = json(&out);
    let (lstm, gbdt) = (&v["models"][0], &v["models"][1]);
    assert_eq!((lstm["family"].as_str(), gbdt["family"].as_str()), (Some("lstm"), Some("lightgbm")));
    // Both models are scored on the same rows: those with a whole window after the warm-up.
    assert_eq!(lstm["oos_rows"], gbdt["oos_rows"]);
    assert!(lstm["oos_scores"]["ic"].as_f64().unwrap().is_finite());
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("models/fil_price_lstm_1h/model.json")).unwrap()).unwrap();
    let train: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("models/fil_price_lstm_1h/train.json")).unwrap()).unwrap();
    let inputs: Vec<&str> = meta["feature_names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    let features = train["features"].as_u64().unwrap() as usize;
    assert_eq!(inputs.len(), 16 * features, "a window of 16 rows of every feature");
    assert!(inputs[0].ends_with("[t-15]") && inputs[inputs.len() - 1].ends_with("[t]"), "{:?}", &inputs[..2]);
    assert!(meta["training"]["epochs"].as_u64().unwrap() <= 3);
    assert_eq!(train["window"], 16);
    // Predictions are returns that vary, not a constant.
    let predictions: Vec<f64> = read_predictions(&out_dir.join("predictions.csv"))
        .into_iter()
        .filter(|p| p.model == "fil_price_lstm_1h")
        .map(|p| p.prediction)
        .collect();
    assert_eq!(predictions.len() as u64, lstm["oos_rows"].as_u64().unwrap());
    let (lo, hi) = predictions.iter().fold((f64::MAX, f64::MIN), |(a, b), &p| (a.min(p), b.max(p)));
    assert!(hi - lo > 1e-5 && hi.abs() < 0.1, "predictions from {lo} to {hi}");
}

/// Spearman correlation with average ranks for ties, written here independently of quantpipe's.
fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let ranks = |v: &[f64]| {
        let mut order: Vec<usize> = (0..v.len()).collect();
        order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < order.len() {
            let mut j = i;
            while j + 1 < order.len() && v[order[j + 1]] == v[order[i]] {
                j += 1;
            }
            for &k in &order[i..=j] {
                r[k] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        r
    };
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// The S&P 500 cross-sectional example on 60 of its symbols (the full file is run by hand; README
/// gives its figures): one row per symbol and date, targets ranked within each date, the per-date
/// rank IC recomputed here from predictions.csv, and a dollar-neutral long-short book of deciles.
#[test]
fn sp500_cross_section_ranks_symbols_per_date_and_trades_long_short_deciles() {
    let home = tempfile::tempdir().unwrap();
    let out_dir = home.path().join("run");
    let example = std::fs::read_to_string(repo("examples/sp500_cross_section.toml")).unwrap();
    // 58 long-lived symbols, CBS and STI (each with a conflicting duplicate date, repaired), SNI (2 bars: left out).
    let symbols = "AAPL,ABT,ADBE,AMGN,AMZN,AXP,BA,BAC,BK,BMY,C,CAT,CL,CMCSA,COP,COST,CSCO,CVS,CVX,DIS,DUK,EMR,\
                   EXC,F,FDX,GD,GE,GILD,GS,HD,HON,IBM,INTC,JPM,KO,LLY,LMT,LOW,MCD,MDT,MMM,MO,MRK,MS,MSFT,NKE,\
                   ORCL,PEP,PFE,PG,QCOM,SBUX,T,TGT,TXN,UNH,USB,WMT,CBS,STI,SNI";
    let list: Vec<String> = symbols.split(',').map(|s| format!("{s:?}")).collect();
    let config = home.path().join("sp500.toml");
    let edited = example
        .replace("symbols = \"all\"", &format!("symbols = [{}]", list.join(", ")))
        .replace("min_symbols = 100", "min_symbols = 50")
        .replace("min_train_rows = 100000", "min_train_rows = 12000")
        .replace("min_data_in_leaf = 2000", "min_data_in_leaf = 300")
        .replace("num_iterations = 150", "num_iterations = 40");
    assert_ne!(edited, example);
    std::fs::write(&config, edited).unwrap();
    let out = quantpipe(home.path(), &["run", config.to_str().unwrap(), "--out", out_dir.to_str().unwrap(), "--json"]);
    let v = json(&out);
    assert_eq!(v["data"]["symbol"], "60 symbols", "{}", v["data"]);
    let data_warnings = v["stages"][0]["warnings"].to_string();
    assert!(data_warnings.contains("SNI (2)"), "{data_warnings}");
    assert!(data_warnings.contains("repaired"), "{data_warnings}");

    let gbdt = &v["models"][0];
    assert_eq!(gbdt["headline_metric"], "date_rank_ic");
    let scores = &gbdt["oos_scores"];
    let dates = scores["dates"].as_u64().unwrap() as usize;
    assert!(dates > 300, "{scores}");
    let predictions: Vec<Prediction> =
        read_predictions(&out_dir.join("predictions.csv")).into_iter().filter(|p| p.model == "sp500_rank_5d").collect();
    assert_eq!(predictions.len() as u64, gbdt["oos_rows"].as_u64().unwrap());
    let mut by_date: std::collections::BTreeMap<&str, Vec<&Prediction>> = Default::default();
    for p in &predictions {
        by_date.entry(p.ts.as_str()).or_default().push(p);
    }
    assert_eq!(by_date.len(), dates);
    let mut rank_ics = Vec::new();
    let mut held_since_rebalance: std::collections::HashMap<&str, f64> = Default::default();
    for (n, (date, rows)) in by_date.iter().enumerate() {
        // One row per symbol; labels are the date's ranks, 0 for the worst and 1 for the best.
        let mut names: Vec<&str> = rows.iter().map(|p| p.symbol.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), rows.len(), "{date}");
        assert!(rows.len() >= 50 && rows.len() <= 60, "{date}: {}", rows.len());
        let labels: Vec<f64> = rows.iter().map(|p| p.label).collect();
        let (lo, hi) = labels.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        assert!(lo == 0.0 && hi == 1.0, "{date}: labels from {lo} to {hi}");
        let pred: Vec<f64> = rows.iter().map(|p| p.prediction).collect();
        // The label is a monotone map of the raw return within a date, so its Spearman correlation
        // with the predictions is the rank IC against the returns.
        rank_ics.push(spearman(&pred, &labels));
        if n % 5 == 0 {
            // A rebalance (every 5 dates): dollar-neutral deciles, k = ⌊n / 10⌋ longs at +1/k and k
            // shorts at −1/k, the date's highest predictions long and its lowest short.
            let held: Vec<&&Prediction> = rows.iter().filter(|p| p.position != 0.0).collect();
            let k = rows.len() / 10;
            assert_eq!(held.iter().filter(|p| p.position > 0.0).count(), k, "{date}");
            assert_eq!(held.len(), 2 * k, "{date}");
            assert!(held.iter().all(|p| (p.position.abs() - 1.0 / k as f64).abs() < 1e-12));
            let mut sorted = pred.clone();
            sorted.sort_by(f64::total_cmp);
            for p in &held {
                let wanted = if p.position > 0.0 {
                    p.prediction >= sorted[rows.len() - k]
                } else {
                    p.prediction <= sorted[k - 1]
                };
                assert!(wanted, "{date}: {} at {} with prediction {}", p.symbol, p.position, p.prediction);
            }
            held_since_rebalance = held.iter().map(|p| (p.symbol.as_str(), p.position)).collect();
        } else {
            // Between rebalances each symbol shows the weight it has held since the last one.
            for p in rows {
                assert_eq!(p.position, held_since_rebalance.get(p.symbol.as_str()).copied().unwrap_or(0.0), "{date}");
            }
        }
    }
    let mean_rank_ic = rank_ics.iter().sum::<f64>() / rank_ics.len() as f64;
    let reported = scores["date_rank_ic"].as_f64().unwrap();
    assert!((mean_rank_ic - reported).abs() < 1e-9, "recomputed {mean_rank_ic}, reported {reported}");

    let bt = &gbdt["backtest"];
    assert!(bt["rule"].as_str().unwrap().contains("long the top 10 %"), "{bt}");
    assert!(bt["strategy"]["sharpe"].as_f64().unwrap().is_finite());
    assert!(bt["strategy"]["fees_paid"].as_f64().unwrap() > 0.0);
    let ridge = &v["models"][1];
    assert_eq!(ridge["family"], "linear");
    assert!(ridge["oos_scores"]["date_rank_ic"].as_f64().unwrap().is_finite());
    let report = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(report.contains("<h2>Cross-section</h2>") && report.contains("Cumulative rank IC"));
    assert!(report.contains("equal weight"));

    // Refused, naming the cause: an unknown symbol; the file's conflicting duplicates without
    // repair (naming the symbols); a classifier on a ranked target.
    let cases = [
        ("symbols = \"all\"", "symbols = [\"AAPL\", \"NOPE\", \"MSFT\"]", "data.symbols: not found: NOPE"),
        ("repair = true", "repair = false", "CBS"),
        ("on_conflict = \"keep-first\"", "on_conflict = \"keep-sideways\"", "data.on_conflict"),
        ("objective = \"regression\"", "objective = \"binary\"", "cross_section.target"),
    ];
    for (find, replace, expected) in cases {
        assert!(example.contains(find), "{find}");
        let mut edited = example.replacen(find, replace, 1);
        if replace == "repair = false" {
            edited = edited.replace("on_conflict = \"keep-first\"\n", "");
        }
        std::fs::write(&config, edited).unwrap();
        let out = quantpipe(home.path(), &["run", config.to_str().unwrap(), "--check"]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(t.contains(expected) && !t.contains("panicked"), "expected {expected:?} in: {t}");
    }

    // From the bar store instead of the file: `quantpipe ingest` repairs, the run reads the series.
    let file = format!("{}/sp500_daily_5yr.csv.gz", shared_data());
    let ingest = quantpipe(home.path(), &["ingest", &file, "--repair", "--on-conflict", "keep-first", "--json"]);
    assert!(ingest.status.success(), "{}", text(&ingest));
    let stored = example
        .lines()
        .filter(|l| !l.starts_with("file =") && !l.starts_with("repair =") && !l.starts_with("on_conflict ="))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("symbols = \"all\"", "timeframe = \"1d\"\nsymbols = [\"AAPL\", \"MSFT\", \"KO\", \"PEP\", \"XOM\"]")
        .replace("min_symbols = 100", "min_symbols = 5\nfeatures = \"rank\"")
        .replace("min_train_rows = 100000", "min_train_rows = 1000")
        .replace("min_data_in_leaf = 2000", "min_data_in_leaf = 50")
        .replace("num_iterations = 150", "num_iterations = 20");
    std::fs::write(&config, stored).unwrap();
    let out_dir = home.path().join("stored");
    let v =
        json(&quantpipe(home.path(), &["run", config.to_str().unwrap(), "--out", out_dir.to_str().unwrap(), "--json"]));
    assert_eq!(v["data"]["symbol"], "5 symbols", "{}", v["data"]);
    assert!(v["data"]["source"].as_str().unwrap().starts_with("bar store"), "{}", v["data"]);
    let dataset = v["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "dataset").unwrap();
    assert!(dataset["note"].as_str().unwrap().contains("5 symbols over"), "{dataset}");
    // With `features = "rank"` the models read each feature's rank across the date's symbols, so
    // every input lies in [0, 1] and is named for it.
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("models/sp500_rank_5d_ridge/model.json")).unwrap()).unwrap();
    let inputs = meta["feature_names"].as_array().unwrap();
    assert!(inputs.iter().all(|n| n.as_str().unwrap().starts_with("cs_rank(")), "{inputs:?}");
    assert!(v["models"][1]["oos_scores"]["date_rank_ic"].as_f64().unwrap().is_finite());
}
