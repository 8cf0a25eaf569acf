//! Live features: bars pushed to `POST /bars` give, through the server's streaming state, exactly
//! the feature row the batch computation (training's code path) gives for that bar, so a live
//! prediction equals the model's prediction on the training-path row, bit for bit. On the bundled
//! BTC/USD hourly sample with the standard feature set.

use std::path::PathBuf;

use crate::common::*;
use quantpipe_core::Bars;
use quantpipe_data::quality::{validate, Policy};
use quantpipe_data::read::{read_bars, ReadOptions};
use quantpipe_features::{compute, FeatureSet};
use quantpipe_models::lightgbm::LightGbmParams;
use quantpipe_models::neural::{gather_windows, sequence_names, LstmParams};
use quantpipe_models::{Dataset, ModelSpec, Task};
use quantpipe_registry::{NewVersion, Stage};
use quantpipe_serve::config::LiveConfig;
use serde_json::json;

fn sample() -> Bars {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/sample/bitfinex_btcusd_1h.csv.gz");
    let mut read = read_bars(&path, &ReadOptions::default()).unwrap();
    validate(read.series.remove(0), &Policy::default()).unwrap().bars
}

/// An artifact directory's files, as the registry takes them.
fn artifact_files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect()
}

fn bars_json(bars: &Bars, range: std::ops::Range<usize>) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = range
        .map(|i| {
            json!({"ts": bars.ts[i], "open": bars.open[i], "high": bars.high[i], "low": bars.low[i],
                   "close": bars.close[i], "volume": bars.volume[i]})
        })
        .collect();
    json!(rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_bars_give_the_training_paths_features_and_prediction() {
    let bars = sample();
    let set = FeatureSet::standard();
    let frame = compute(&set, &bars);
    let n = 2_400.min(bars.len() - 2);
    let d = frame.names.len();
    // Train on the first 1,800 bars: next-bar direction from the standard features (NaN warm-up
    // values are LightGBM's missing values).
    let train_rows = 1_800;
    let mut x = Vec::with_capacity(train_rows * d);
    let mut y = Vec::with_capacity(train_rows);
    for i in 0..train_rows {
        x.extend(frame.columns.iter().map(|c| c[i]));
        y.push(if bars.close[i + 1] > bars.close[i] { 1.0 } else { 0.0 });
    }
    let mut params = LightGbmParams::new(Task::Binary);
    params.num_iterations = 40;
    params.num_threads = 1;
    let data = Dataset { features: &x, feature_names: &frame.names, labels: &y, weights: None, label_windows: None };
    let model = quantpipe_models::fit(&ModelSpec::Lightgbm(params), None, &data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let files = artifact_files(dir.path());

    let t = sqlite().await;
    let new = NewVersion {
        feature_set: "standard".into(),
        feature_set_hash: set.hash(),
        feature_names: frame.names.clone(),
        ..new_version("direction", 1, Stage::Staging)
    };
    let v = t.registry.register(&P, &new, files.clone(), "test").await.unwrap();
    promote(&t.registry, &v.reference()).await;
    // A model that claims another feature set: live features must not feed it.
    let other = NewVersion { name: "other".into(), feature_set_hash: "another-set".into(), ..new.clone() };
    let o = t.registry.register(&P, &other, files, "test").await.unwrap();
    promote(&t.registry, &o.reference()).await;

    let mut config = ServeConfigBuilder::live();
    config.server.max_batch_rows = 1_000;
    let (addr, stop, handle) = serve(&t, &config).await;
    let mut client = Client::connect(addr).await;

    // History first, in pushes of 600 bars.
    for start in (0..n).step_by(600) {
        let end = (start + 600).min(n);
        let reply = client.post("/bars", &json!({"symbol": "BTCUSD", "bars": bars_json(&bars, start..end)})).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["bars_seen"], end as u64);
    }
    let row_at = |i: usize| -> Vec<f64> { frame.columns.iter().map(|c| c[i]).collect() };
    for i in [n - 1, n] {
        if i == n {
            let reply = client.post("/bars", &json!({"symbol": "BTCUSD", "bars": bars_json(&bars, n..n + 1)})).await;
            assert_eq!(reply.json()["warming_up_features"], 0, "{}", reply.text());
        }
        let expected = model.predict(&row_at(i)).unwrap()[0];
        let reply = client.post("/predict", &json!({"model_name": "direction", "symbol": "BTCUSD"})).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let body = reply.json();
        assert_eq!(body["probability"].as_f64().unwrap(), expected, "bar {i}");
        assert_eq!(body["bar_ts"], bars.ts[i]);
    }
    // Sent as JSON, the same row is refused where it holds an undefined (missing) value, which JSON
    // cannot carry as a number: live features are how such models are served.
    let row = row_at(n);
    let by_array = client.post("/predict", &json!({"model_name": "direction", "features": row})).await;
    match row.iter().position(|v| !v.is_finite()) {
        Some(k) => {
            assert_eq!(by_array.status, 422);
            assert!(by_array.text().contains(&frame.names[k]), "{}", by_array.text());
        }
        None => assert_eq!(by_array.json()["probability"].as_f64(), Some(model.predict(&row).unwrap()[0])),
    }

    // Refused pushes change nothing: a repeated bar, then a valid bar followed by a broken one.
    let repeat = client.post("/bars", &json!({"symbol": "BTCUSD", "bars": bars_json(&bars, n..n + 1)})).await;
    assert_eq!((repeat.status, repeat.json()["error"]["code"].as_str()), (422, Some("invalid_bar")));
    assert!(repeat.json()["error"]["message"].as_str().unwrap().contains("bars[0]: ts"), "{}", repeat.text());
    let mut broken = bars_json(&bars, n + 1..n + 2).as_array().unwrap().clone();
    broken.push(json!({"ts": bars.ts[n + 1] + 3_600_000, "open": 100.0, "high": 90.0, "low": 95.0, "close": 92.0, "volume": 1.0}));
    let refused = client.post("/bars", &json!({"symbol": "BTCUSD", "bars": broken})).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.json()["error"]["message"].as_str().unwrap().contains("bars[1]: high 90 is below low 95"),
        "{}",
        refused.text()
    );
    let still = client.post("/predict", &json!({"model_name": "direction", "symbol": "BTCUSD"})).await.json();
    assert_eq!(still["bar_ts"], bars.ts[n], "the refused push was not applied");
    let bad_type = client.post("/bars", &json!({"symbol": "BTCUSD", "bars": [{"ts": "yesterday", "open": 1, "high": 1, "low": 1, "close": 1, "volume": 1}]})).await;
    assert_eq!(bad_type.status, 422);
    assert!(bad_type.json()["error"]["message"].as_str().unwrap().contains("bars[0].ts"), "{}", bad_type.text());

    // A symbol with too little history, one never pushed, a model of another feature set.
    let short = client.post("/bars", &json!({"symbol": "ETHUSD", "bars": bars_json(&bars, 0..5)})).await;
    assert_eq!(short.status, 200);
    let warming = client.post("/predict", &json!({"model_name": "direction", "symbol": "ETHUSD"})).await;
    assert_eq!((warming.status, warming.json()["error"]["code"].as_str()), (422, Some("warming_up")));
    assert!(warming.json()["error"]["message"].as_str().unwrap().contains("after 5 bar(s)"));
    let unknown = client.post("/predict", &json!({"model_name": "direction", "symbol": "DOGEUSD"})).await;
    assert_eq!((unknown.status, unknown.json()["error"]["code"].as_str()), (404, Some("unknown_symbol")));
    let mismatch = client.post("/predict", &json!({"model_name": "other", "symbol": "BTCUSD"})).await;
    assert_eq!((mismatch.status, mismatch.json()["error"]["code"].as_str()), (422, Some("feature_set_mismatch")));
    let both =
        client.post("/predict", &json!({"model_name": "direction", "symbol": "BTCUSD", "features": [1.0]})).await;
    assert_eq!((both.status, both.json()["error"]["code"].as_str()), (422, Some("invalid_request")));

    // Many symbols in one call: a second symbol 100 bars behind; each answer is the model's own on
    // that symbol's latest batch-computed row, bit for bit, in the order asked.
    let m = n - 100;
    for start in (0..m).step_by(600) {
        let pushed = json!({"symbol": "BTCLATE", "bars": bars_json(&bars, start..(start + 600).min(m))});
        assert_eq!(client.post("/bars", &pushed).await.status, 200);
    }
    let batch =
        client.post("/predict/batch", &json!({"model_name": "direction", "symbols": ["BTCLATE", "BTCUSD"]})).await;
    assert_eq!(batch.status, 200, "{}", batch.text());
    let answers = batch.json()["predictions"].as_array().unwrap().clone();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["probability"].as_f64().unwrap(), model.predict(&row_at(m - 1)).unwrap()[0]);
    assert_eq!(answers[1]["probability"].as_f64().unwrap(), model.predict(&row_at(n)).unwrap()[0]);
    assert_ne!(answers[0]["probability"], answers[1]["probability"]);
    // Refusals name the symbol's place in the list; nothing is answered for the others.
    for (symbols, status, code, says) in [
        (json!(["BTCUSD", "ETHUSD"]), 422, "warming_up", "symbols[1] (ETHUSD)"),
        (json!(["BTCUSD", "DOGEUSD"]), 404, "unknown_symbol", "symbols[1]: no bars were pushed for \"DOGEUSD\""),
        (json!([]), 422, "invalid_request", "symbols is empty"),
    ] {
        let reply = client.post("/predict/batch", &json!({"model_name": "direction", "symbols": symbols})).await;
        assert_eq!((reply.status, reply.json()["error"]["code"].as_str()), (status, Some(code)), "{}", reply.text());
        assert!(reply.json()["error"]["message"].as_str().unwrap().contains(says), "{}", reply.text());
    }
    let both_kinds = json!({"model_name": "direction", "symbols": ["BTCUSD"], "rows": [row_at(n)]});
    let reply = client.post("/predict/batch", &both_kinds).await;
    assert_eq!((reply.status, reply.json()["error"]["code"].as_str()), (422, Some("invalid_request")));

    // The log records which bar a live prediction used.
    stop.send(()).unwrap();
    handle.await.unwrap();
    let logged = t.registry.predictions(&P, Some("direction"), 1_000).await.unwrap();
    assert!(logged.iter().any(|r| r.inputs["symbol"] == "BTCUSD" && r.inputs["bar_ts"] == bars.ts[n]));
    let late: Vec<_> = logged.iter().filter(|r| r.inputs["symbol"] == "BTCLATE").collect();
    assert_eq!(late.len(), 1, "one batch answer for BTCLATE");
    assert_eq!(late[0].inputs["bar_ts"], bars.ts[m - 1]);
    assert_eq!(late[0].features.as_deref(), Some(&row_at(m - 1)[..]));
    t.cleanup().await;
}

/// An LSTM reads the last `window` feature rows: the server builds the window from the rows it keeps
/// per symbol, and the prediction equals the model's on the training path's window, bit for bit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_lstm_is_served_from_the_window_of_live_feature_rows() {
    let bars = sample();
    let set = FeatureSet::standard();
    let frame = compute(&set, &bars);
    let window = 4;
    let warm = (0..bars.len()).find(|&r| frame.columns.iter().all(|c| c[r].is_finite())).unwrap();
    let ends: Vec<usize> = (warm + window..warm + 1_200).collect();
    let x = gather_windows(&frame.columns, &ends, window);
    let y: Vec<f64> = ends.iter().map(|&i| f64::from(u8::from(bars.close[i + 1] > bars.close[i]))).collect();
    let names = sequence_names(&frame.names, window);
    let params = LstmParams { window, hidden: 8, max_epochs: 2, ..Default::default() };
    let data = Dataset { features: &x, feature_names: &names, labels: &y, weights: None, label_windows: None };
    let model = quantpipe_models::fit(&ModelSpec::Lstm(params), None, &data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let files = artifact_files(dir.path());
    let t = sqlite().await;
    let new = NewVersion {
        family: "lstm".into(),
        feature_set: "standard".into(),
        feature_set_hash: set.hash(),
        feature_names: names.clone(),
        ..new_version("price", 1, Stage::Staging)
    };
    let v = t.registry.register(&P, &new, files, "test").await.unwrap();
    promote(&t.registry, &v.reference()).await;

    let n = warm + 1_300;
    let (addr, stop, handle) = serve(&t, &ServeConfigBuilder::live()).await;
    let mut client = Client::connect(addr).await;
    // Too little history for a window: warming up, naming the lagged inputs.
    let reply = client.post("/bars", &json!({"symbol": "BTCUSD", "bars": bars_json(&bars, 0..2)})).await;
    assert_eq!(reply.status, 200);
    let early = client.post("/predict", &json!({"model_name": "price", "symbol": "BTCUSD"})).await;
    assert_eq!((early.status, early.json()["error"]["code"].as_str()), (422, Some("warming_up")), "{}", early.text());
    let reply = client.post("/bars", &json!({"symbol": "BTCUSD", "bars": bars_json(&bars, 2..n)})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    for i in [n - 1, n] {
        if i == n {
            client.post("/bars", &json!({"symbol": "BTCUSD", "bars": bars_json(&bars, n..n + 1)})).await;
        }
        let expected = model.predict(&gather_windows(&frame.columns, &[i], window)).unwrap()[0];
        let reply = client.post("/predict", &json!({"model_name": "price", "symbol": "BTCUSD"})).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["probability"].as_f64().unwrap(), expected, "bar {i}");
    }
    stop.send(()).unwrap();
    handle.await.unwrap();

    // A server keeping fewer rows than the window says how many it needs.
    let mut config = ServeConfigBuilder::live();
    config.live.as_mut().unwrap().history = 2;
    let (addr, stop, handle) = serve(&t, &config).await;
    let mut client = Client::connect(addr).await;
    client.post("/bars", &json!({"symbol": "BTCUSD", "bars": bars_json(&bars, 0..n)})).await;
    let short = client.post("/predict", &json!({"model_name": "price", "symbol": "BTCUSD"})).await;
    assert_eq!((short.status, short.json()["error"]["code"].as_str()), (422, Some("history_too_short")));
    assert!(short.text().contains("history = 3"), "{}", short.text());
    stop.send(()).unwrap();
    handle.await.unwrap();
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_live_features_bars_are_refused_clearly() {
    let t = sqlite().await;
    register(&t.registry, "direction", 7, 10, Stage::Production).await;
    let mut config = quantpipe_serve::ServeConfig::default();
    config.server.addr = "127.0.0.1:0".into();
    let (addr, stop, handle) = serve(&t, &config).await;
    let mut client = Client::connect(addr).await;
    let reply = client.post("/bars", &json!({"symbol": "BTCUSD", "bars": []})).await;
    assert_eq!((reply.status, reply.json()["error"]["code"].as_str()), (404, Some("live_features_off")));
    let reply = client.post("/predict", &json!({"model_name": "direction", "symbol": "BTCUSD"})).await;
    assert_eq!((reply.status, reply.json()["error"]["code"].as_str()), (422, Some("live_features_off")));
    stop.send(()).unwrap();
    handle.await.unwrap();
    t.cleanup().await;
}

struct ServeConfigBuilder;

impl ServeConfigBuilder {
    fn live() -> quantpipe_serve::ServeConfig {
        let mut config = quantpipe_serve::ServeConfig::default();
        config.server.addr = "127.0.0.1:0".into();
        config.server.log_flush_ms = 50;
        config.live = Some(LiveConfig { feature_set: "standard".into(), max_symbols: 100, history: 63 });
        config
    }
}
