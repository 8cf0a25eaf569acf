//! The `quantpipe` binary as a user runs it: exit codes, no panics, JSON output, and a store that
//! survives an ingest killed at any moment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::{json, quantpipe, repo_arg, shared, text};

#[test]
fn quickstart_ingest_list_quality_and_json() {
    let home = tempfile::tempdir().unwrap();
    let out = quantpipe(home.path(), &["ingest", &repo_arg("data/sample/bitfinex_btcusd_1h.csv.gz")]);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("BTCUSD 1h") && t.contains("quality score") && t.contains("stored 1 series, 17583 new rows"),
        "{t}"
    );

    let list = quantpipe(home.path(), &["data", "list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(v["bars"][0]["symbol"], "BTCUSD");
    assert_eq!(v["bars"][0]["rows"], 17583);
    assert_eq!(v["ticks"], serde_json::json!([]));

    let q = quantpipe(home.path(), &["data", "quality", "BTCUSD", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&q.stdout).unwrap();
    assert_eq!(v["series"]["rows_kept"], 17583);
    assert_eq!(v["ingests"].as_array().unwrap().len(), 1);

    let r = quantpipe(home.path(), &["data", "resample", "BTCUSD", "--from", "1h", "--to", "1d", "--json"]);
    assert!(r.status.success(), "{}", text(&r));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["rows_in"], 17583);
    // 2017-07-01 11:00 to 2019-07-04 01:00: 734 calendar days, the last one incomplete.
    assert_eq!(v["rows_out"], 734);
    assert_eq!(v["last_bar_incomplete"], true);
}

#[test]
fn bad_input_exits_non_zero_without_panicking() {
    let home = tempfile::tempdir().unwrap();
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/tests/corpus");
    for entry in std::fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        let out = quantpipe(home.path(), &["ingest", path.to_str().unwrap(), "--symbol", "T", "--dry-run"]);
        let t = text(&out);
        assert!(!t.contains("panicked"), "{}: {t}", path.display());
        if !out.status.success() {
            assert_eq!(out.status.code(), Some(1), "{t}");
            assert!(t.starts_with("error: ") && t.contains(path.file_name().unwrap().to_str().unwrap()), "{t}");
        }
    }
    let usage = quantpipe(home.path(), &["ingest", "x.csv", "--on-conflict", "keep-first"]);
    assert_eq!(usage.status.code(), Some(2), "--on-conflict without --repair is a usage error");
    let unknown = quantpipe(home.path(), &["data", "quality", "NOPE"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown).contains("no stored series for NOPE"));
}

/// Kills `quantpipe ingest` of a file that adds rows to a stored series at many points in time;
/// afterwards the store holds either the old or the new series, never a mix, and it loads.
#[test]
fn killed_ingest_leaves_a_consistent_store() {
    let home = tempfile::tempdir().unwrap();
    let fil = shared("filusdt_perp_1m_2023.csv.gz");
    let first_half = home.path().join("first.csv");
    {
        // A first file with the first 100k rows, so the kill hits a merge into existing data.
        use std::io::{BufRead, Write};
        let gz = flate2_reader(&fil);
        let mut out = std::fs::File::create(&first_half).unwrap();
        for line in gz.lines().take(100_001) {
            writeln!(out, "{}", line.unwrap()).unwrap();
        }
    }
    let ok = quantpipe(home.path(), &["ingest", first_half.to_str().unwrap(), "--symbol", "FILUSDT"]);
    assert!(ok.status.success(), "{}", text(&ok));
    let meta_path = home.path().join("bars/FILUSDT/1m/meta.json");
    let old: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    assert_eq!(old["rows"], 100_000);

    let mut outcomes = (0, 0);
    for delay_ms in [5u64, 40, 80, 120, 160, 200, 240, 280, 320, 360, 400, 450, 500, 600] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quantpipe"))
            .args(["ingest", &fil, "--symbol", "FILUSDT"])
            .env("QUANTPIPE_HOME", home.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
        let rows = meta["rows"].as_u64().unwrap();
        assert!(rows == 100_000 || rows == 347_040, "half-written state: {rows} rows");
        if rows == 100_000 {
            outcomes.0 += 1
        } else {
            outcomes.1 += 1
        }
        let show = quantpipe(home.path(), &["data", "show", "FILUSDT", "--json", "--rows", "1"]);
        assert!(show.status.success(), "store unreadable after kill at {delay_ms} ms: {}", text(&show));
        let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
        assert_eq!(v["meta"]["rows"], rows);
        if rows == 347_040 {
            break;
        }
    }
    // Whatever the timing, a completed ingest afterwards gives the full series, and the killed
    // runs' temporary files are gone.
    let done = quantpipe(home.path(), &["ingest", &fil, "--symbol", "FILUSDT"]);
    assert!(done.status.success(), "{}", text(&done));
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    assert_eq!(meta["rows"], 347_040);
    let leftovers: Vec<String> = std::fs::read_dir(home.path().join("bars/FILUSDT/1m"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    eprintln!("kills before commit: {}, after commit: {}", outcomes.0, outcomes.1);
}

fn flate2_reader(path: &str) -> std::io::BufReader<flate2::read::MultiGzDecoder<std::fs::File>> {
    std::io::BufReader::new(flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap()))
}

#[test]
fn cross_section_ranks_per_date_from_the_cli() {
    let home = tempfile::tempdir().unwrap();
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/tests/corpus");
    // Two daily series with identical closes: every date is a tie, so both rank 0.5 with z 0.
    for (file, sym) in [("index_column.csv", "AAA"), ("semicolon.csv", "BBB")] {
        let out = quantpipe(home.path(), &["ingest", corpus.join(file).to_str().unwrap(), "--symbol", sym]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let csv = home.path().join("ranks.csv");
    let out = quantpipe(
        home.path(),
        &["features", "cross-section", "--timeframe", "1d", "--feature", "mom_1", "-o", csv.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let body = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], "ts,symbol,value,rank,zscore");
    assert!(lines.contains(&"2019-01-03T00:00:00Z,AAA,0.5,0.5,0"), "{body}");
    assert!(lines.contains(&"2019-01-03T00:00:00Z,BBB,0.5,0.5,0"), "{body}");
    let bad =
        quantpipe(home.path(), &["features", "cross-section", "--timeframe", "1d", "--feature", "nope", "-o", "x.csv"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("not an output of set standard"));
}

#[test]
fn labels_splits_and_backtest_from_the_cli() {
    let home = tempfile::tempdir().unwrap();
    let sample = repo_arg("data/sample/bitfinex_btcusd_1h.csv.gz");
    assert!(quantpipe(home.path(), &["ingest", &sample]).status.success());

    // Labels: JSON summary, the file written, and the drop counts add up.
    let out_path = home.path().join("labels.csv");
    let out = quantpipe(
        home.path(),
        &[
            "labels",
            "compute",
            "BTCUSD",
            "--timeframe",
            "1h",
            "--kind",
            "horizon",
            "--param",
            r#"horizons=["4h", "1d"]"#,
            "--weights",
            "-o",
            out_path.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["target"], "dir_4h");
    assert_eq!(v["lookahead"], "1d");
    let rows = v["rows"].as_u64().unwrap();
    assert_eq!(rows + v["dropped"]["incomplete_window"].as_u64().unwrap(), 17583);
    let csv = std::fs::read_to_string(&out_path).unwrap();
    let header = csv.lines().next().unwrap();
    assert_eq!(header, "ts,end_ts,dir_4h,ret_4h,max_gain_4h,max_loss_4h,dir_1d,ret_1d,max_gain_1d,max_loss_1d,weight");
    assert_eq!(csv.lines().count() as u64, rows + 1);
    // end_ts is a time, one day after ts.
    let first: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    assert!(first[1].ends_with('Z') && first[0] != first[1], "{first:?}");

    // A bad parameter names the key; an unknown kind names the kind.
    let bad = quantpipe(
        home.path(),
        &[
            "labels",
            "compute",
            "BTCUSD",
            "--timeframe",
            "1h",
            "--kind",
            "horizon",
            "--param",
            "horizonz=[4]",
            "-o",
            "x.csv",
        ],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("horizonz"), "{}", text(&bad));
    let bad =
        quantpipe(home.path(), &["labels", "compute", "BTCUSD", "--timeframe", "1h", "--kind", "nope", "-o", "x.csv"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("nope"), "{}", text(&bad));

    // Splits: purged k-fold purges around every test block; every row is tested once.
    let out = quantpipe(
        home.path(),
        &[
            "validate",
            "splits",
            "BTCUSD",
            "--timeframe",
            "1h",
            "--kind",
            "horizon",
            "--param",
            "horizons=[24]",
            "--folds",
            "4",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let splits = v["splits"].as_array().unwrap();
    assert_eq!(splits.len(), 4);
    let tested: u64 = splits.iter().map(|s| s["test_rows"].as_u64().unwrap()).sum();
    assert_eq!(tested, v["rows"].as_u64().unwrap());
    // 24 bars purged before each inner block, 24 after it, 24 embargoed (default: the look-ahead).
    assert_eq!(splits[1]["purged"], 48);
    assert_eq!(splits[1]["embargoed"], 24);

    // Backtest of a prediction file: long when the last bar rose, on a smooth synthetic price.
    let mut file = String::from("ts,close,p\n");
    let mut previous = 100.0;
    for i in 0..2000 {
        let close = 100.0 * (1.0 + 0.01 * ((i as f64) * 0.05).sin());
        let p = if close > previous { 0.8 } else { 0.2 };
        file.push_str(&format!("{i},{close},{p}\n"));
        previous = close;
    }
    let pred = home.path().join("pred.csv");
    std::fs::write(&pred, file).unwrap();
    let out = quantpipe(
        home.path(),
        &[
            "backtest",
            "--input",
            pred.to_str().unwrap(),
            "--prob",
            "p",
            "--timeframe",
            "1h",
            "--long-above",
            "0.5",
            "--fee-bps",
            "1",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["strategy"]["bars"], 2000);
    assert_eq!(v["periods_per_year"], 8760.0);
    // Momentum on a smooth sine wins; buy-and-hold over whole cycles is near flat.
    assert!(v["strategy"]["sharpe"].as_f64().unwrap() > 5.0, "{}", v["strategy"]);
    assert!(v["buy_and_hold"]["trades"] == 1);

    // A bad row is named by line and column.
    std::fs::write(&pred, "close,p\n100,0.5\n101,1.5\n102,0.5\n").unwrap();
    let bad =
        quantpipe(home.path(), &["backtest", "--input", pred.to_str().unwrap(), "--prob", "p", "--timeframe", "1h"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("line 3") && text(&bad).contains("\"p\""), "{}", text(&bad));
}

#[test]
fn train_holds_out_purges_saves_and_exports() {
    let home = tempfile::tempdir().unwrap();
    let sample = repo_arg("data/sample/bitfinex_btcusd_1h.csv.gz");
    assert!(quantpipe(home.path(), &["ingest", &sample]).status.success());
    let model_dir = home.path().join("model");
    let onnx = home.path().join("model.onnx");
    let args = |model: &str| {
        vec![
            "train".to_string(),
            "BTCUSD".into(),
            "--timeframe".into(),
            "1h".into(),
            "--kind".into(),
            "horizon".into(),
            "--param".into(),
            r#"horizons=["4h"]"#.into(),
            "--model".into(),
            model.into(),
            "-o".into(),
            model_dir.to_str().unwrap().into(),
            "--onnx".into(),
            onnx.to_str().unwrap().into(),
            "--json".into(),
        ]
    };
    let direction = repo_arg("docs/models/direction_lightgbm.toml");
    let a = args(&direction);
    let out = quantpipe(home.path(), &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["target"], "dir_4h");
    assert_eq!(v["classes"], serde_json::json!([0.0, 1.0]));
    // Labels look 4 bars ahead: the 4 rows before the first test row are purged.
    assert_eq!(v["purged_rows"], 4);
    let (train, test) = (v["train_rows"].as_u64().unwrap(), v["test_rows"].as_u64().unwrap());
    assert_eq!(test, ((train + 4 + test) as f64 * 0.2).round() as u64);
    let auc = v["test_scores"]["roc_auc"].as_f64().unwrap();
    assert!(auc > 0.0 && auc < 1.0, "{v}");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model_dir.join("train.json")).unwrap()).unwrap();
    assert_eq!(saved, v);
    assert!(model_dir.join("model.txt").exists() && model_dir.join("model.json").exists());
    assert!(std::fs::metadata(&onnx).unwrap().len() > 1000);

    // A misspelt parameter is named with the file; the exit code is 1.
    let bad = home.path().join("bad.toml");
    std::fs::write(&bad, "kind = \"lightgbm\"\nobjective = \"binary\"\nnum_iteration = 5\n").unwrap();
    let a = args(bad.to_str().unwrap());
    let out = quantpipe(home.path(), &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("num_iteration"), "{err}");
}

/// The stacking template: trained, registered and served from the registry's copy like any model.
#[test]
fn an_ensemble_trains_and_registers_as_one_model() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    assert!(quantpipe(h, &["ingest", &repo_arg("data/sample/bitfinex_btcusd_1h.csv.gz")]).status.success());
    let out_dir = h.join("stacked");
    let trained = train_sample_with(h, "docs/models/ensemble_stacking.toml", &out_dir, &["--register", "btc_stacked"]);
    let v = json(&trained);
    let auc = v["test_scores"]["roc_auc"].as_f64().unwrap();
    assert!(auc > 0.45 && auc < 0.7, "{v}");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out_dir.join("model.json")).unwrap()).unwrap();
    assert_eq!(meta["family"], "ensemble");
    assert_eq!(meta["training"]["members"], serde_json::json!(["lightgbm", "logistic"]));
    assert!(meta["training"]["stacking_purged_rows"].as_u64().unwrap() > 0);
    let shown = json(&quantpipe(h, &["models", "show", "btc_stacked@latest", "--json"]));
    assert_eq!(shown["family"], "ensemble");
    assert_eq!(shown["metrics"]["oos_roc_auc"].as_f64().unwrap(), auc);
}

/// A new, empty PostgreSQL database on the machine's server (or `QUANTPIPE_DATABASE_URL`'s).
fn fresh_postgres_database(tag: &str) -> String {
    use sqlx::Connection;
    let base = std::env::var("QUANTPIPE_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let db = format!("qp_cli_{tag}_{}", std::process::id());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut conn = sqlx::postgres::PgConnection::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {base} is needed by this test: {e}"));
        for sql in [format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"), format!("CREATE DATABASE {db}")] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
        }
    });
    let (prefix, _) = base.rsplit_once('/').unwrap();
    format!("{prefix}/{db}")
}

fn train_sample(home: &Path, out: &Path, extra: &[&str]) -> Output {
    train_sample_with(home, "docs/models/direction_lightgbm.toml", out, extra)
}

/// `quantpipe train` on the ingested BTCUSD sample, 4-hour direction, with the model file `model`
/// (relative to the repository).
fn train_sample_with(home: &Path, model: &str, out: &Path, extra: &[&str]) -> Output {
    let model = repo_arg(model);
    let mut args = vec![
        "train",
        "BTCUSD",
        "--timeframe",
        "1h",
        "--kind",
        "horizon",
        "--param",
        r#"horizons=["4h"]"#,
        "--model",
        &model,
        "-o",
        out.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    quantpipe(home, &args)
}

#[test]
fn registry_lifecycle_from_the_cli() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    assert!(quantpipe(h, &["ingest", &repo_arg("data/sample/bitfinex_btcusd_1h.csv.gz")]).status.success());
    let first = json(&train_sample(h, &h.join("m1"), &["--register", "btc_dir", "--experiment", "btc"]));
    assert_eq!(first["registered"]["version"], "1.0.0");
    let run_id = first["run_id"].as_i64().unwrap();
    let again = json(&train_sample(h, &h.join("m2"), &["--register", "btc_dir", "--experiment", "btc", "--staging"]));
    // Same configuration, same data: a patch version, starting as staging.
    assert_eq!(again["registered"]["version"], "1.0.1");
    assert_eq!(again["registered"]["stage"], "staging");
    assert_eq!(again["registered"]["parent"], "1.0.0");
    // The same data and model give the same scores, recorded as oos_ metrics.
    let auc = first["test_scores"]["roc_auc"].as_f64().unwrap();
    assert_eq!(again["registered"]["metrics"]["oos_roc_auc"].as_f64().unwrap(), auc);

    let shown = json(&quantpipe(h, &["models", "show", "btc_dir@staging", "--json"]));
    assert_eq!(shown["version"], "1.0.1");
    assert_eq!(shown["label_lookahead"], "4h");
    assert_eq!(shown["feature_names"].as_array().unwrap().len(), first["features"].as_u64().unwrap() as usize);
    assert_eq!(shown["dataset_hash"], first["dataset_hash"]);
    let dir = PathBuf::from(shown["artifact_uri"].as_str().unwrap().strip_prefix("file://").unwrap());
    for f in ["model.txt", "model.json", "train.json", "config.json", "metadata.json", "README.md"] {
        assert!(dir.join(f).exists(), "{f} missing in {}", dir.display());
    }

    // A gate that the version fails: exit 1, the failed check named, nothing changed.
    let gate = h.join("gate.toml");
    std::fs::write(&gate, format!("min = {{ oos_roc_auc = {} }}\n", auc + 0.01)).unwrap();
    let refused =
        quantpipe(h, &["models", "promote", "btc_dir@1.0.1", "--to", "production", "--gate", gate.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused).contains("oos_roc_auc"), "{}", text(&refused));
    std::fs::write(&gate, format!("min = {{ oos_roc_auc = {} }}\nmin_oos_rows = 1000\n", auc - 0.01)).unwrap();
    let g = gate.to_str().unwrap();
    json(&quantpipe(h, &["models", "promote", "btc_dir@1.0.0", "--to", "production", "--gate", g, "--json"]));
    let changes = json(&quantpipe(h, &["models", "promote", "btc_dir@1.0.1", "--to", "production", "--json"]));
    assert_eq!(changes[0]["version"], "btc_dir@1.0.0");
    assert_eq!(changes[0]["to"], "archived");
    let back = json(&quantpipe(h, &["models", "rollback", "btc_dir", "--json"]));
    assert_eq!(back[1]["version"], "btc_dir@1.0.0");
    let production = json(&quantpipe(h, &["models", "list", "--stage", "production", "--json"]));
    assert_eq!(production.as_array().unwrap().len(), 1);
    assert_eq!(production[0]["version"], "1.0.0");
    let compared = json(&quantpipe(h, &["models", "compare", "btc_dir@1.0.0", "btc_dir@1.0.1", "--json"]));
    assert_eq!(compared.as_array().unwrap().len(), 2);
    let table = quantpipe(h, &["models", "compare", "btc_dir@1.0.0", "btc_dir@1.0.1"]);
    assert!(text(&table).contains("oos_roc_auc"), "{}", text(&table));
    let audit = json(&quantpipe(h, &["models", "audit", "btc_dir", "--json"]));
    let actions: Vec<&str> = audit.as_array().unwrap().iter().rev().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["register", "register", "promote", "demote", "promote", "rollback", "rollback"]);

    // Runs: both recorded, with the version's run id; a failing run is recorded with its error.
    let failed = train_sample(h, &h.join("m3"), &["--register", "btc_dir", "--target", "nope"]);
    assert_eq!(failed.status.code(), Some(1));
    let runs = json(&quantpipe(h, &["runs", "list", "--json"]));
    assert_eq!(runs.as_array().unwrap().len(), 3);
    assert_eq!(runs[0]["status"], "failed");
    assert!(runs[0]["error"].as_str().unwrap().contains("nope"), "{}", runs[0]);
    assert_eq!(json(&quantpipe(h, &["runs", "show", &run_id.to_string(), "--json"]))["status"], "succeeded");
    assert_eq!(
        json(&quantpipe(h, &["models", "list", "--json"])).as_array().unwrap().len(),
        2,
        "no version from a failed run"
    );

    // Registering by hand, exporting, and scopes.
    json(&quantpipe(
        h,
        &["models", "register", h.join("m1").to_str().unwrap(), "--name", "other", "--scope", "acme", "--json"],
    ));
    assert_eq!(json(&quantpipe(h, &["models", "list", "--json"])).as_array().unwrap().len(), 2);
    assert_eq!(json(&quantpipe(h, &["models", "list", "--scope", "acme", "--json"])).as_array().unwrap().len(), 1);
    let out = h.join("exported");
    assert!(quantpipe(h, &["models", "export", "btc_dir@production", "-o", out.to_str().unwrap()]).status.success());
    assert!(out.join("metadata.json").exists() && out.join("model.txt").exists());
    for bad in [
        vec!["models", "show", "btc_dir@9.9.9"],
        vec!["models", "show", "bad name"],
        vec!["models", "promote", "btc_dir@1.0.0", "--to", "prod"],
        vec!["models", "rollback", "nothing"],
        vec!["models", "list", "--scope", "a/b/c"],
        vec!["models", "register", "/nonexistent", "--name", "x"],
    ] {
        let o = quantpipe(h, &bad);
        assert_eq!(o.status.code(), Some(if bad.contains(&"prod") { 2 } else { 1 }), "{bad:?}: {}", text(&o));
        assert!(!text(&o).contains("panicked"), "{}", text(&o));
    }
}

/// Registration killed at any moment (SIGKILL, on SQLite and on PostgreSQL) leaves either no new
/// version or a complete one: every listed version's directory is whole, and versions stay consecutive.
#[test]
fn killed_registration_leaves_no_half_written_version() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    assert!(quantpipe(h, &["ingest", &repo_arg("data/sample/bitfinex_btcusd_1h.csv.gz")]).status.success());
    let model_dir = h.join("model");
    json(&train_sample(h, &model_dir, &[]));
    // A large file in the artifact makes the window between the version's row and its commit wide.
    let big: Vec<u8> = (0..24_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(model_dir.join("oos_predictions.bin"), &big).unwrap();
    let sqlite = format!("sqlite://{}", h.join("kill.db").display());
    let postgres = fresh_postgres_database("kill");
    for url in [sqlite, postgres] {
        let register = |artifacts: &Path| {
            Command::new(env!("CARGO_BIN_EXE_quantpipe"))
                .args(["models", "register", model_dir.to_str().unwrap(), "--name", "killed"])
                .args(["--registry", &url, "--artifacts", artifacts.to_str().unwrap()])
                .env("QUANTPIPE_HOME", h)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        let artifacts = h.join(format!("artifacts-{}", if url.starts_with("sqlite") { "sqlite" } else { "pg" }));
        let mut killed = 0;
        for delay_ms in (0..30).map(|i| 10 + i * 12) {
            let mut child = register(&artifacts);
            std::thread::sleep(Duration::from_millis(delay_ms));
            if child.try_wait().unwrap().is_none() {
                killed += 1;
            }
            let _ = child.kill();
            let _ = child.wait();
            let list = quantpipe(h, &["models", "list", "--registry", &url, "--json", "--limit", "1000"]);
            let versions = json(&list);
            let versions = versions.as_array().unwrap();
            for (k, v) in versions.iter().rev().enumerate() {
                assert_eq!(v["version"], format!("1.0.{k}"), "versions are consecutive after a kill at {delay_ms} ms");
                let dir = PathBuf::from(v["artifact_uri"].as_str().unwrap().strip_prefix("file://").unwrap());
                assert_eq!(std::fs::metadata(dir.join("oos_predictions.bin")).unwrap().len(), big.len() as u64);
                let meta: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
                assert_eq!(meta["version"], v["version"]);
                assert!(dir.join("model.txt").exists() && dir.join("README.md").exists());
            }
        }
        assert!(killed >= 5, "{url}: only {killed} registrations were still running when killed");
        // Evidence that kills landed mid-write: staged directories never renamed into place, and
        // version directories whose rows never committed (both invisible, as checked above).
        let staged = std::fs::read_dir(artifacts.join(".staging")).map_or(0, |d| d.count());
        let dirs = std::fs::read_dir(artifacts.join("platform/killed")).map_or(0, |d| d.count());
        // A registration that is left alone completes and takes the next version.
        let before = json(&quantpipe(h, &["models", "list", "--registry", &url, "--json", "--limit", "1000"]));
        let n = before.as_array().unwrap().len();
        let status = register(&artifacts).wait().unwrap();
        assert!(status.success());
        let shown = json(&quantpipe(h, &["models", "show", "killed", "--registry", &url, "--json"]));
        assert_eq!(shown["version"], format!("1.0.{n}"));
        eprintln!(
            "{}: {killed} registrations killed mid-way, {n} completed; {staged} staged directories and {} \
             uncommitted version directories left invisible",
            url.split(':').next().unwrap(),
            dirs.saturating_sub(n)
        );
    }
}

/// Trade records from real FILUSDT 1m closes: a trade every 30 minutes, held 30 minutes; the entry
/// features are past returns and range; `won` is whether it closed higher, `pnl_bps` its return, and
/// `up_15` (whether the last 15 minutes rose) is a target learnable exactly from a feature.
fn trade_records(path: &Path) -> usize {
    use std::io::BufRead;
    let mut close = Vec::new();
    let mut ts = Vec::new();
    for line in flate2_reader(&shared("filusdt_perp_1m_2023.csv.gz")).lines().skip(1).take(60_000) {
        let line = line.unwrap();
        let f: Vec<&str> = line.split(',').collect();
        ts.push(f[0].parse::<i64>().unwrap());
        close.push(f[4].parse::<f64>().unwrap());
    }
    let mut out = String::from("trade_id,entry_time,symbol,ret_15,ret_60,range_60,hour,won,pnl_bps,up_15\n");
    let mut trades = 0;
    for i in (60..close.len() - 30).step_by(30) {
        let ret = |lag: usize| (close[i] / close[i - lag]).ln();
        let window = &close[i - 60..=i];
        let range =
            window.iter().cloned().fold(f64::MIN, f64::max) / window.iter().cloned().fold(f64::MAX, f64::min) - 1.0;
        let pnl = (close[i + 30] / close[i] - 1.0) * 1e4;
        let secs = ts[i] / 1000;
        let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let entry = format!("{}T{:02}:{:02}:00Z", civil(days), rest / 3600, rest % 3600 / 60);
        out.push_str(&format!(
            "t{trades},{entry},FILUSDT,{},{},{},{},{},{pnl},{}\n",
            ret(15),
            ret(60),
            range,
            rest / 3600,
            u8::from(pnl > 0.0),
            u8::from(ret(15) > 0.0)
        ));
        trades += 1;
    }
    std::fs::write(path, out).unwrap();
    trades
}

/// Days since 1970-01-01 as YYYY-MM-DD (proleptic Gregorian).
fn civil(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{:04}-{m:02}-{d:02}", era * 400 + yoe + i64::from(m <= 2))
}

/// `quantpipe train --table`: the trade-record role templates train on a bot's trade log; text
/// columns are left out by --ignore, the latest rows are held out, and mistakes name row and column.
#[test]
fn trade_record_roles_train_from_a_table() {
    let home = tempfile::tempdir().unwrap();
    let table = home.path().join("trades.csv");
    let trades = trade_records(&table);
    let table_arg = table.to_str().unwrap().to_string();
    let train = |model: &str, target: &str, extra: &[&str]| {
        let model = repo_arg(model);
        let out = home.path().join(format!("m_{target}"));
        let mut args = vec![
            "train",
            "--table",
            &table_arg,
            "--time",
            "entry_time",
            "--ignore",
            "trade_id,symbol",
            "--target",
            target,
            "--model",
            &model,
            "-o",
            out.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        quantpipe(home.path(), &args)
    };
    // A target that is a feature's sign: learnt exactly, so the columns reach the model as named.
    let v = json(&train("docs/models/trade_success_classifier.toml", "up_15", &[]));
    assert_eq!(v["features"], 6, "{v}");
    assert_eq!(v["feature_set"], "table");
    assert_eq!(v["purged_rows"], 0, "independent records are not purged");
    let (n_train, n_test) = (v["train_rows"].as_u64().unwrap(), v["test_rows"].as_u64().unwrap());
    assert_eq!(n_train + n_test, trades as u64);
    assert_eq!(n_test, (trades as f64 * 0.2).round() as u64);
    assert!(v["test_scores"]["roc_auc"].as_f64().unwrap() > 0.99, "{v}");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.path().join("m_up_15/model.json")).unwrap()).unwrap();
    let names: Vec<&str> = meta["feature_names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(names, ["ret_15", "ret_60", "range_60", "hour", "won", "pnl_bps"]);

    // The real roles: success (ignoring the outcome columns, which would leak), confidence, spend.
    let leak_free = ["--ignore", "trade_id,symbol,pnl_bps,up_15"];
    let success = json(&train("docs/models/trade_success_classifier.toml", "won", &leak_free));
    let auc = success["test_scores"]["roc_auc"].as_f64().unwrap();
    assert!(auc > 0.3 && auc < 0.7, "an honest trade-success AUC on 1-minute crypto is near 0.5: {auc}");
    for (model, target) in [
        ("docs/models/trade_exit_classifier.toml", "won"),
        ("docs/models/trade_recovery_classifier.toml", "won"),
        ("docs/models/confidence_regressor.toml", "pnl_bps"),
        ("docs/models/spend_regressor.toml", "pnl_bps"),
    ] {
        let ignore = if target == "won" { "trade_id,symbol,pnl_bps,up_15" } else { "trade_id,symbol,won,up_15" };
        let v = json(&train(model, target, &["--ignore", ignore]));
        assert_eq!(v["features"], 4, "{model}: {v}");
        assert!(v["test_scores"].as_object().is_some_and(|s| !s.is_empty()), "{model}: {v}");
    }

    // Mistakes exit with 1 and name the row and the column.
    let model = repo_arg("docs/models/trade_success_classifier.toml");
    let refused = |table: &str, extra: &[&str]| -> String {
        let mut args = vec!["train", "--table", table, "--model", &model, "-o", "x"];
        args.extend_from_slice(extra);
        let out = quantpipe(home.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refused(&table_arg, &["--target", "won"]);
    assert!(err.contains("row 2") && err.contains("\"trade_id\"") && err.contains("--ignore"), "{err}");
    let contents = std::fs::read_to_string(&table).unwrap();
    let mut lines: Vec<&str> = contents.lines().collect();
    lines.swap(5, 6);
    let shuffled = home.path().join("shuffled.csv");
    std::fs::write(&shuffled, lines.join("\n")).unwrap();
    let time_and_ignore = ["--time", "entry_time", "--ignore", "trade_id,symbol", "--target", "won"];
    let err = refused(shuffled.to_str().unwrap(), &time_and_ignore);
    assert!(err.contains("row 7") && err.contains("back in time"), "{err}");
    let err = refused(&table_arg, &["--target", "nope"]);
    assert!(err.contains("\"nope\" is not a column"), "{err}");
    let err = refused(&table_arg, &["--target", "won", "--kind", "horizon"]);
    assert!(err.contains("--table trains on the table's own columns"), "{err}");
}
