//! The prediction API: handlers without a socket, then end to end on port 0 against a fresh
//! registry on SQLite and on PostgreSQL.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use axum::body::Body;
use axum::http::Request;
use quantpipe_registry::Stage;
use quantpipe_serve::config::{CanaryConfig, EndpointConfig, FallbackRule};
use quantpipe_serve::{ServeConfig, Server};
use serde_json::json;
use tower::ServiceExt;

const ROW: [f64; 4] = [72.5, 0.004, 55.0, 0.3];
const LOW_ROW: [f64; 4] = [12.0, -0.006, 52.0, -1.1];

fn quick_config() -> ServeConfig {
    let mut config = ServeConfig::default();
    config.server.addr = "127.0.0.1:0".into();
    config.server.poll_interval_ms = 100;
    config.server.log_flush_ms = 50;
    config
}

async fn start(t: &TestRegistry, config: &ServeConfig) -> Server {
    Server::start(config, t.registry.clone(), P, t.dir.path().join("cache"), "test".into()).await.unwrap()
}

/// One request through the router, no socket.
async fn call(
    server: &Server,
    method: &str,
    path: &str,
    body: impl Into<Body>,
) -> (u16, serde_json::Value, Vec<(String, String)>) {
    let request = Request::builder().method(method).uri(path).body(body.into()).unwrap();
    let response = server.router().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let headers =
        response.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({ "text": String::from_utf8_lossy(&bytes) }));
    (status, value, headers)
}

fn assert_error_shape(status: u16, body: &serde_json::Value, expected_status: u16, code: &str, mentions: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_else(|| panic!("no message: {body}"));
    assert!(message.contains(mentions), "{message:?} does not mention {mentions:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_answer_and_refuse_bad_requests_without_a_socket() {
    let t = sqlite().await;
    let v1 = register(&t.registry, "direction", 7, 30, Stage::Production).await;
    let server = start(&t, &quick_config()).await;

    let (status, health, _) = call(&server, "GET", "/health", Body::empty()).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["models"][0]["loaded"][0]["version"], "direction@1.0.0");

    // The served probability is the artifact's own, bit for bit; array and name → value maps agree.
    let expected = direct_prediction(&t.registry, &v1, &ROW);
    let (status, by_array, _) =
        call(&server, "POST", "/predict", json!({"model_name": "direction", "features": ROW}).to_string()).await;
    assert_eq!(status, 200, "{by_array}");
    assert_eq!(by_array["probability"].as_f64().unwrap(), expected);
    assert_eq!(by_array["prediction"].as_f64().unwrap(), if expected >= 0.5 { 1.0 } else { 0.0 });
    assert_eq!(by_array["model_version"], "direction@1.0.0");
    assert_eq!((by_array["route"].as_str(), by_array["source"].as_str()), (Some("champion"), Some("model")));
    assert_eq!(by_array["id"].as_str().unwrap().len(), 32);
    let named = json!({"model_name": "direction", "features": {"vol_z": ROW[3], "atr_14": ROW[2], "ret_1": ROW[1], "rsi_14": ROW[0]}});
    let (_, by_name, _) = call(&server, "POST", "/predict", named.to_string()).await;
    assert_eq!(by_name["probability"].as_f64().unwrap(), expected);
    assert_ne!(by_name["id"], by_array["id"]);
    // The model learnt the synthetic rule: a high RSI and positive return is more likely up.
    let (_, low, _) =
        call(&server, "POST", "/predict", json!({"model_name": "direction", "features": LOW_ROW}).to_string()).await;
    assert!(low["probability"].as_f64().unwrap() < 0.3 && expected > 0.7, "{low} vs {expected}");

    // Batch: the same numbers as one at a time.
    let (status, batch, _) =
        call(&server, "POST", "/predict/batch", json!({"model_name": "direction", "rows": [ROW, LOW_ROW]}).to_string())
            .await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["predictions"][0]["probability"].as_f64().unwrap(), expected);
    assert_eq!(batch["predictions"][1]["probability"], low["probability"]);

    // The bad-request suite: each gets a 4xx in the error shape, naming what is wrong.
    let cases: Vec<(&str, &str, String, u16, &str, &str)> = vec![
        (
            "POST",
            "/predict",
            "{\"model_name\": \"direction\", \"features\": [1, 2,".into(),
            400,
            "malformed_json",
            "malformed JSON",
        ),
        ("POST", "/predict", "".into(), 400, "malformed_json", "empty"),
        ("POST", "/predict", "[1, 2, 3]".into(), 422, "invalid_request", "must be a JSON object, not an array"),
        (
            "POST",
            "/predict",
            json!({"model_name": 5, "features": ROW}).to_string(),
            422,
            "invalid_request",
            "model_name",
        ),
        ("POST", "/predict", json!({"model_name": "direction"}).to_string(), 422, "invalid_request", "features"),
        (
            "POST",
            "/predict",
            json!({"model_name": "direction", "features": ROW, "extra": 1}).to_string(),
            422,
            "invalid_request",
            "extra",
        ),
        (
            "POST",
            "/predict",
            json!({"model_name": "nope", "features": ROW}).to_string(),
            404,
            "unknown_model",
            "direction",
        ),
        (
            "POST",
            "/predict",
            json!({"model_name": "direction", "features": [1.0, 2.0, 3.0]}).to_string(),
            422,
            "invalid_features",
            "3 values given; direction@1.0.0 expects 4",
        ),
        (
            "POST",
            "/predict",
            json!({"model_name": "direction", "features": [1.0, "NaN", 3.0, 4.0]}).to_string(),
            422,
            "invalid_features",
            "ret_1",
        ),
        (
            "POST",
            "/predict",
            json!({"model_name": "direction", "features": [1.0, null, 3.0, 4.0]}).to_string(),
            422,
            "invalid_features",
            "ret_1",
        ),
        (
            "POST",
            "/predict",
            "{\"model_name\": \"direction\", \"features\": [1.0, 1e999, 3.0, 4.0]}".into(),
            400,
            "malformed_json",
            "number out of range at line 1 column 51",
        ),
        (
            "POST",
            "/predict",
            json!({"model_name": "direction", "features": {"rsi_14": 1.0, "ret_1": 0.0, "atr_14": 3.0, "volz": 1.0}})
                .to_string(),
            422,
            "invalid_features",
            "1 missing (vol_z); 1 unknown (volz)",
        ),
        (
            "POST",
            "/predict",
            json!({"model_name": "direction", "features": "1,2,3,4"}).to_string(),
            422,
            "invalid_request",
            "field `features`: invalid type: string \"1,2,3,4\", expected an array of numbers",
        ),
        (
            "POST",
            "/predict/batch",
            json!({"model_name": "direction", "rows": []}).to_string(),
            422,
            "invalid_request",
            "empty",
        ),
        (
            "POST",
            "/predict/batch",
            json!({"model_name": "direction", "rows": [ROW, [1.0]]}).to_string(),
            422,
            "invalid_features",
            "rows[1]",
        ),
        (
            "POST",
            "/feedback",
            json!({"prediction_id": "xyz", "outcome": 1}).to_string(),
            422,
            "invalid_request",
            "32 hex",
        ),
        (
            "POST",
            "/feedback",
            json!({"prediction_id": "0123456789abcdef0123456789abcdef", "outcome": 1}).to_string(),
            404,
            "not_found",
            "no prediction",
        ),
        (
            "POST",
            "/feedback",
            json!({"prediction_id": "0123456789abcdef0123456789abcdef", "outcome": "up"}).to_string(),
            422,
            "invalid_request",
            "outcome",
        ),
        ("GET", "/nowhere", String::new(), 404, "not_found", "/nowhere"),
        ("GET", "/predict", String::new(), 405, "method_not_allowed", "GET"),
        ("POST", "/models/nope/load", String::new(), 404, "not_found", "nope"),
        (
            "POST",
            "/models/direction/load",
            json!({"version": "9.9.9"}).to_string(),
            404,
            "not_found",
            "direction@9.9.9",
        ),
        ("POST", "/models/direction/load", json!({"version": "v-one"}).to_string(), 422, "invalid_request", "v-one"),
        ("DELETE", "/models/nope", String::new(), 404, "unknown_model", "nope"),
    ];
    for (method, path, body, status_expected, code, mentions) in cases {
        let (status, body_json, _) = call(&server, method, path, body.clone()).await;
        assert_error_shape(status, &body_json, status_expected, code, mentions);
    }
    // A body over the limit: 413 in the same shape.
    let mut small = quick_config();
    small.server.max_body_bytes = 4096;
    small.server.max_batch_rows = 3;
    let limited = start(&t, &small).await;
    let huge = json!({"model_name": "direction", "rows": vec![ROW; 2000]}).to_string();
    let (status, body, _) = call(&limited, "POST", "/predict/batch", huge).await;
    assert_error_shape(status, &body, 413, "body_too_large", "");
    let (status, body, _) =
        call(&limited, "POST", "/predict/batch", json!({"model_name": "direction", "rows": vec![ROW; 4]}).to_string())
            .await;
    assert_error_shape(status, &body, 413, "batch_too_large", "4 rows in one batch; the limit is 3");

    // Overload: with every permit taken, a request is refused at once with Retry-After.
    let permits =
        limited.state.capacity.clone().acquire_many_owned(limited.state.settings.max_concurrency as u32).await.unwrap();
    let (status, body, headers) =
        call(&limited, "POST", "/predict", json!({"model_name": "direction", "features": ROW}).to_string()).await;
    assert_error_shape(status, &body, 503, "overloaded", "in flight");
    assert!(headers.iter().any(|(k, v)| k == "retry-after" && v == "1"), "{headers:?}");
    drop(permits);

    // After all that, the server still answers, with the same number.
    let (status, again, _) =
        call(&server, "POST", "/predict", json!({"model_name": "direction", "features": ROW}).to_string()).await;
    assert_eq!((status, again["probability"].as_f64().unwrap()), (200, expected));

    // OpenAPI from the code, and Prometheus metrics that counted what happened.
    let (status, openapi, _) = call(&server, "GET", "/openapi.json", Body::empty()).await;
    assert_eq!(status, 200);
    for path in ["/predict", "/predict/batch", "/feedback", "/models/{name}/load", "/health", "/metrics"] {
        assert!(openapi["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    assert!(openapi["components"]["schemas"].get("PredictRequest").is_some());
    let (_, metrics, _) = call(&server, "GET", "/metrics", Body::empty()).await;
    let text = metrics["text"].as_str().unwrap();
    // 1 array + 1 map + 1 low + 2 batch + 1 final = 6 rows predicted by the champion.
    assert!(
        text.contains(
            "quantpipe_predictions_total{endpoint=\"direction\",version=\"direction@1.0.0\",route=\"champion\"} 6\n"
        ),
        "{text}"
    );
    assert!(text.contains("quantpipe_http_responses_total{class=\"4xx\"}"), "{text}");
    t.cleanup().await;
}

async fn wait_for_version(client: &mut Client, expected: &str) {
    for _ in 0..100 {
        let reply = client.post("/predict", &json!({"model_name": "direction", "features": ROW})).await;
        if reply.json()["model_version"] == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{expected} never answered");
}

async fn lifecycle_on_a_socket(t: TestRegistry) {
    let reg = &t.registry;
    let v1 = register(reg, "direction", 7, 30, Stage::Production).await;
    let v2 = register(reg, "direction", 11, 60, Stage::Staging).await;
    let mut config = quick_config();
    config.endpoints = vec![EndpointConfig {
        fallback: Some(FallbackRule {
            value: Some(0.5),
            feature: Some("rsi_14".into()),
            threshold: Some(70.0),
            above: Some(0.35),
            below: Some(0.6),
        }),
        ..EndpointConfig::for_model("direction")
    }];
    let (addr, stop, handle) = serve(&t, &config).await;
    let mut client = Client::connect(addr).await;

    let first = client.post("/predict", &json!({"model_name": "direction", "features": ROW})).await.json();
    assert_eq!(first["model_version"], "direction@1.0.0");
    assert_eq!(first["probability"].as_f64().unwrap(), direct_prediction(reg, &v1, &ROW));

    // Feedback: durable before the answer (the prediction may still be queued), once only.
    let id = first["id"].as_str().unwrap().to_string();
    let fb = client.post("/feedback", &json!({"prediction_id": id, "outcome": 1.0})).await;
    assert_eq!(fb.status, 200, "{}", fb.text());
    let stored = t.reopen().await.feedback(&P, &id).await.unwrap().expect("feedback committed before the answer");
    assert_eq!(stored.outcome, 1.0);
    let again = client.post("/feedback", &json!({"prediction_id": id, "outcome": 0.0})).await;
    assert_eq!((again.status, again.json()["error"]["code"].as_str()), (409, Some("conflict")));

    // Promotion in the registry (as `quantpipe models promote` does) is picked up by the poller.
    promote(reg, "direction@1.0.1").await;
    wait_for_version(&mut client, "direction@1.0.1").await;
    let served = client.post("/predict", &json!({"model_name": "direction", "features": ROW})).await.json();
    assert_eq!(served["probability"].as_f64().unwrap(), direct_prediction(reg, &v2, &ROW));
    // And a rollback brings the previous version back.
    reg.rollback(&P, "direction", "test").await.unwrap();
    wait_for_version(&mut client, "direction@1.0.0").await;

    // Unloaded by hand: the fallback rule answers and says so.
    let unloaded = client.send("DELETE", "/models/direction", b"", &[]).await.unwrap();
    assert_eq!(unloaded.json()["mode"], "unloaded");
    let fallback =
        client.post("/predict", &json!({"model_name": "direction", "features": {"rsi_14": 75.0}})).await.json();
    assert_eq!((fallback["source"].as_str(), fallback["route"].as_str()), (Some("fallback"), Some("fallback")));
    assert_eq!((fallback["probability"].as_f64(), fallback["model_version"].is_null()), (Some(0.35), true));
    let fallback =
        client.post("/predict", &json!({"model_name": "direction", "features": [10.0, 0.0, 1.0, 1.0]})).await.json();
    assert_eq!(
        fallback["probability"].as_f64(),
        Some(0.5),
        "an array cannot be read by name: the rule's value answers"
    );
    // Loaded by hand at a pinned version; then back to following production.
    let pinned = client.post("/models/direction/load", &json!({"version": "1.0.1"})).await;
    assert_eq!(pinned.status, 200, "{}", pinned.text());
    assert_eq!(pinned.json()["mode"], "pinned");
    let p = client.post("/predict", &json!({"model_name": "direction", "features": ROW})).await.json();
    assert_eq!(p["model_version"], "direction@1.0.1");
    let follow = client.send("POST", "/models/direction/load", b"", &[]).await.unwrap();
    assert_eq!((follow.status, follow.json()["loaded"][0]["version"].as_str()), (200, Some("direction@1.0.0")));

    // Deployments and the audit trail record what the server swapped in.
    let deployments = reg.deployments(&P, Some("direction")).await.unwrap();
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0].version, "direction@1.0.0");

    let metrics = client.get("/metrics").await.text();
    assert!(metrics.contains("quantpipe_model_swaps_total 5\n"), "{metrics}");
    assert!(metrics.contains("quantpipe_fallbacks_total{endpoint=\"direction\"} 2\n"), "{metrics}");

    // Graceful shutdown flushes the prediction log: every answered prediction is stored once.
    drop(client);
    stop.send(()).unwrap();
    handle.await.unwrap();
    let logged = reg.predictions(&P, Some("direction"), 100_000).await.unwrap();
    let fallbacks = logged.iter().filter(|r| r.source == "fallback").count();
    assert_eq!(fallbacks, 2);
    let first_logged = reg.prediction(&P, &id).await.unwrap();
    assert_eq!(first_logged.version, "direction@1.0.0");
    assert_eq!(first_logged.output["probability"].as_f64(), first["probability"].as_f64());
    assert_eq!(first_logged.features.as_deref(), Some(&ROW[..]), "the row the model saw, exactly");
    let mut ids: Vec<&str> = logged.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), logged.len());
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_a_socket_sqlite() {
    lifecycle_on_a_socket(sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_on_a_socket_postgres() {
    lifecycle_on_a_socket(postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_load_fails_no_request() {
    let t = sqlite().await;
    register(&t.registry, "direction", 7, 30, Stage::Production).await;
    register(&t.registry, "direction", 11, 60, Stage::Staging).await;
    let (addr, stop, handle) = serve(&t, &quick_config()).await;
    let running = Arc::new(AtomicBool::new(true));
    let ok = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (running, ok) = (running.clone(), ok.clone());
        clients.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            let mut failures = Vec::new();
            let mut versions = std::collections::BTreeSet::new();
            while running.load(Ordering::Relaxed) {
                let reply = client.post("/predict", &json!({"model_name": "direction", "features": ROW})).await;
                if reply.status == 200 {
                    ok.fetch_add(1, Ordering::Relaxed);
                    versions.insert(reply.json()["model_version"].as_str().unwrap().to_string());
                } else {
                    failures.push(reply.text());
                }
            }
            (failures, versions)
        }));
    }
    // Promote and roll back while the clients run: each swap happens under load.
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if round % 2 == 0 {
            promote(&t.registry, "direction@1.0.1").await;
        } else {
            t.registry.rollback(&P, "direction", "test").await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    running.store(false, Ordering::Relaxed);
    let mut seen = std::collections::BTreeSet::new();
    for c in clients {
        let (failures, versions) = c.await.unwrap();
        assert!(failures.is_empty(), "{} failed requests, first: {}", failures.len(), failures[0]);
        seen.extend(versions);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["direction@1.0.0", "direction@1.0.1"]);
    assert!(ok.load(Ordering::Relaxed) > 100, "only {} requests", ok.load(Ordering::Relaxed));
    stop.send(()).unwrap();
    handle.await.unwrap();
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_is_sticky_per_caller_and_shadow_is_logged_only() {
    let t = sqlite().await;
    let v1 = register(&t.registry, "direction", 7, 30, Stage::Production).await;
    let v2 = register(&t.registry, "direction", 11, 60, Stage::Staging).await;
    let v3 = register(&t.registry, "direction", 13, 40, Stage::Draft).await;
    let mut config = quick_config();
    config.endpoints = vec![EndpointConfig {
        canary: Some(CanaryConfig { version: "direction@staging".into(), share: 0.3 }),
        shadow: Some("direction@1.0.2".into()),
        ..EndpointConfig::for_model("direction")
    }];
    let (addr, stop, handle) = serve(&t, &config).await;
    let mut client = Client::connect(addr).await;
    let mut on_canary = 0;
    for caller in 0..300 {
        let key = format!("bot-{caller}");
        let mut routes = Vec::new();
        for _ in 0..2 {
            let reply = client
                .send(
                    "POST",
                    "/predict",
                    json!({"model_name": "direction", "features": ROW}).to_string().as_bytes(),
                    &[("x-caller-id", &key)],
                )
                .await
                .unwrap();
            let body = reply.json();
            let expected = if body["route"] == "canary" { ("direction@1.0.1", &v2) } else { ("direction@1.0.0", &v1) };
            assert_eq!(body["model_version"], expected.0);
            assert_eq!(body["probability"].as_f64().unwrap(), direct_prediction(&t.registry, expected.1, &ROW));
            routes.push(body["route"].as_str().unwrap().to_string());
        }
        assert_eq!(routes[0], routes[1], "caller {key} moved between routes");
        on_canary += (routes[0] == "canary") as usize;
    }
    // 300 callers at a 30 % share: binomial sd ≈ 7.9, so ±40 is five sd.
    assert!((50..=130).contains(&on_canary), "{on_canary} of 300 callers on the canary");
    stop.send(()).unwrap();
    handle.await.unwrap();
    let logged = t.registry.predictions(&P, Some("direction"), 100_000).await.unwrap();
    let shadows: Vec<_> = logged.iter().filter(|r| r.route == "shadow").collect();
    assert_eq!(shadows.len(), 600, "the shadow scores every request");
    assert!(shadows.iter().all(|r| r.version == "direction@1.0.2"));
    let expected_shadow = direct_prediction(&t.registry, &v3, &ROW);
    assert!(shadows.iter().all(|r| r.output["probability"].as_f64() == Some(expected_shadow)));
    let answered: std::collections::HashSet<&str> =
        logged.iter().filter(|r| r.route != "shadow").map(|r| r.id.as_str()).collect();
    assert_eq!(answered.len(), 600);
    assert!(shadows.iter().all(|r| answered.contains(r.inputs["shadow_of"].as_str().unwrap())));
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_fails_to_load_leaves_the_previous_one_serving() {
    let t = sqlite().await;
    register(&t.registry, "direction", 7, 30, Stage::Production).await;
    let broken = register(&t.registry, "direction", 11, 60, Stage::Staging).await;
    // Damage the artifact after registration (a bad disk, a half-copied bucket).
    let dir = t.registry.artifacts().local_dir(&broken.artifact_uri).unwrap();
    std::fs::write(dir.join("model.txt"), "tree\nversion=v4\nnot a model\n").unwrap();
    let (addr, stop, handle) = serve(&t, &quick_config()).await;
    let mut client = Client::connect(addr).await;
    promote(&t.registry, "direction@1.0.1").await;
    let mut alerts = Vec::new();
    for _ in 0..100 {
        alerts = t.registry.alerts(&P, true, 10).await.unwrap();
        if !alerts.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(alerts.len(), 1, "one alert for the broken version");
    assert_eq!(alerts[0].kind, "model_load_failed");
    assert!(
        alerts[0].message.contains("direction@1.0.1") && alerts[0].message.contains("previous version keeps serving")
    );
    let reply = client.post("/predict", &json!({"model_name": "direction", "features": ROW})).await.json();
    assert_eq!(reply["model_version"], "direction@1.0.0");
    // Loading it by hand says why it cannot serve.
    let by_hand = client.post("/models/direction/load", &json!({"version": "1.0.1"})).await;
    assert_eq!(by_hand.status, 500);
    assert_eq!(by_hand.json()["error"]["code"], "load_failed");
    let reply = client.post("/predict", &json!({"model_name": "direction", "features": ROW})).await.json();
    assert_eq!(reply["model_version"], "direction@1.0.0");
    let metrics = client.get("/metrics").await.text();
    assert!(metrics.contains("quantpipe_model_swap_failures_total 2\n"), "{metrics}");
    stop.send(()).unwrap();
    handle.await.unwrap();
    t.cleanup().await;
}

/// The log writer sleeps between flushes; a burst of a full batch (5,000 rows) wakes it early, so
/// a long flush interval does not hold a large backlog in memory, and everything reaches the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_of_predictions_is_written_before_the_flush_interval() {
    let t = sqlite().await;
    register(&t.registry, "direction", 7, 30, Stage::Production).await;
    let mut config = quick_config();
    config.server.log_flush_ms = 600_000;
    let server = start(&t, &config).await;
    let rows: Vec<[f64; 4]> = (0..6_000).map(|i| [ROW[0] + i as f64 * 1e-3, ROW[1], ROW[2], ROW[3]]).collect();
    let body = json!({"model_name": "direction", "rows": rows}).to_string();
    let (status, answer, _) = call(&server, "POST", "/predict/batch", body).await;
    assert_eq!(status, 200, "{answer}");
    let mut logged = 0;
    for _ in 0..200 {
        logged = t.registry.predictions(&P, Some("direction"), 10_000).await.unwrap().len();
        if logged >= 5_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(logged >= 5_000, "only {logged} of 6,000 rows written within 10 s, with a 10-minute flush interval");
    // A flush (feedback asks for one) writes the rest at once.
    server.state.log.flush().await;
    assert_eq!(t.registry.predictions(&P, Some("direction"), 10_000).await.unwrap().len(), 6_000);
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configured_endpoints_every_production_model_is_served() {
    let t = sqlite().await;
    register(&t.registry, "direction", 7, 30, Stage::Production).await;
    register(&t.registry, "volatility", 3, 20, Stage::Staging).await;
    let (addr, stop, handle) = serve(&t, &quick_config()).await;
    let mut client = Client::connect(addr).await;
    let models = client.get("/models").await.json();
    assert_eq!(models.as_array().unwrap().len(), 1, "{models}");
    // A model promoted while the server runs gets its endpoint.
    promote(&t.registry, "volatility@1.0.0").await;
    let mut served = false;
    for _ in 0..100 {
        let reply = client.post("/predict", &json!({"model_name": "volatility", "features": ROW})).await;
        if reply.status == 200 {
            served = true;
            break;
        }
        assert_eq!(reply.json()["error"]["code"], "unknown_model");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served);
    let shown = client.get("/models/volatility").await.json();
    assert_eq!(shown["feature_names"], json!(features()));
    assert_eq!(shown["metrics"]["oos_roc_auc"], 0.6);
    stop.send(()).unwrap();
    handle.await.unwrap();
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_misses_its_time_budget_is_answered_by_the_fallback() {
    let t = sqlite().await;
    // 400 trees over 5,000 rows take milliseconds; the budget is one.
    register(&t.registry, "direction", 7, 400, Stage::Production).await;
    let mut config = quick_config();
    config.endpoints = vec![EndpointConfig {
        time_budget_ms: Some(1),
        fallback: Some(FallbackRule { value: Some(0.5), feature: None, threshold: None, above: None, below: None }),
        ..EndpointConfig::for_model("direction")
    }];
    let server = start(&t, &config).await;
    let rows = vec![ROW; 5_000];
    let (status, body, _) =
        call(&server, "POST", "/predict/batch", json!({"model_name": "direction", "rows": rows}).to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["source"].as_str(), body["route"].as_str()), (Some("fallback"), Some("fallback")));
    assert!(body["predictions"].as_array().unwrap().iter().all(|p| p["probability"] == 0.5));
    assert!(body["model_version"].is_null());
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_deadline_gets_503_and_the_server_goes_on() {
    let t = sqlite().await;
    register(&t.registry, "direction", 7, 400, Stage::Production).await;
    let mut config = quick_config();
    config.server.request_timeout_ms = 1;
    let server = start(&t, &config).await;
    // A big batch runs on the blocking pool, so the deadline can abandon it.
    let rows = vec![ROW; 5_000];
    let (status, body, headers) =
        call(&server, "POST", "/predict/batch", json!({"model_name": "direction", "rows": rows}).to_string()).await;
    assert_error_shape(status, &body, 503, "timeout", "request_timeout_ms");
    assert!(headers.iter().any(|(k, _)| k == "retry-after"));
    let (_, metrics, _) = call(&server, "GET", "/metrics", Body::empty()).await;
    assert!(metrics["text"].as_str().unwrap().contains("quantpipe_request_timeouts_total 1\n"));
    t.cleanup().await;
}

/// One request through the router with an `Authorization` header, no socket.
async fn call_as(server: &Server, token: Option<&str>, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut request = Request::builder().method("POST").uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = server.router().oneshot(request.body(Body::from(body.to_string())).unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({ "text": String::from_utf8_lossy(&bytes) })))
}

/// Promote and rollback over HTTP: off without an admin token, 401 with a wrong one; with the right
/// one the registry changes (audited as "api") and the server answers with the new version at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_and_rollback_over_http_need_the_admin_token_and_swap_at_once() {
    let t = sqlite().await;
    let reg = &t.registry;
    register(reg, "direction", 7, 30, Stage::Production).await;
    let v2 = register(reg, "direction", 11, 60, Stage::Staging).await;
    let promote_v2 = r#"{"version": "1.0.1"}"#;

    let server = start(&t, &quick_config()).await;
    let (status, body) = call_as(&server, Some("anything-at-all-here"), "/models/direction/promote", promote_v2).await;
    assert_error_shape(status, &body, 403, "admin_disabled", "QUANTPIPE_ADMIN_TOKEN");
    let (status, body) = call_as(&server, None, "/models/direction/rollback", "").await;
    assert_error_shape(status, &body, 403, "admin_disabled", "QUANTPIPE_ADMIN_TOKEN");

    let token = "0123456789abcdef-admin";
    let mut config = quick_config();
    config.server.admin_token = Some(token.into());
    let server = start(&t, &config).await;
    for wrong in [None, Some("0123456789abcdef-admiN"), Some("short")] {
        let (status, body) = call_as(&server, wrong, "/models/direction/promote", promote_v2).await;
        assert_error_shape(status, &body, 401, "unauthorized", "Authorization: Bearer");
    }
    let production = reg.version(&P, &quantpipe_registry::VersionRef::parse("direction@production").unwrap()).await;
    assert_eq!(production.unwrap().reference(), "direction@1.0.0", "refused requests changed nothing");

    // Bad requests name what is wrong.
    let (status, body) =
        call_as(&server, Some(token), "/models/direction/promote", r#"{"version": "1.0.1", "to": "heaven"}"#).await;
    assert_error_shape(status, &body, 422, "invalid_request", "unknown stage");
    let (status, body) = call_as(&server, Some(token), "/models/direction/promote", r#"{"version": "9.9.9"}"#).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) =
        call_as(&server, Some(token), "/models/direction/promote", r#"{"version": "1.0.1", "to": "draft"}"#).await;
    assert_error_shape(status, &body, 409, "conflict", "draft");
    let (status, body) = call_as(&server, Some(token), "/models/direction/promote", r#"{"versoin": "1.0.1"}"#).await;
    assert_error_shape(status, &body, 422, "invalid_request", "versoin");

    // Promoted: the old production version is archived, and the next answer comes from 1.0.1.
    let (status, body) = call_as(&server, Some(token), "/models/direction/promote", promote_v2).await;
    assert_eq!(status, 200, "{body}");
    let changes: Vec<(&str, &str, &str)> = body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["version"].as_str().unwrap(), c["from"].as_str().unwrap(), c["to"].as_str().unwrap()))
        .collect();
    assert_eq!(changes, [("direction@1.0.0", "production", "archived"), ("direction@1.0.1", "staging", "production")]);
    assert_eq!(body["endpoint"]["loaded"][0]["version"], "direction@1.0.1", "{body}");
    let (status, answer, _) =
        call(&server, "POST", "/predict", json!({"model_name": "direction", "features": ROW}).to_string()).await;
    assert_eq!((status, answer["model_version"].as_str()), (200, Some("direction@1.0.1")));
    assert_eq!(answer["probability"].as_f64().unwrap(), direct_prediction(reg, &v2, &ROW));

    // Rolled back: 1.0.0 serves again.
    let (status, body) = call_as(&server, Some(token), "/models/direction/rollback", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["endpoint"]["loaded"][0]["version"], "direction@1.0.0", "{body}");
    let (_, answer, _) =
        call(&server, "POST", "/predict", json!({"model_name": "direction", "features": ROW}).to_string()).await;
    assert_eq!(answer["model_version"], "direction@1.0.0");
    let audit = reg.audit_log(&P, Some("direction"), 10).await.unwrap();
    let by_api: Vec<&str> = audit.iter().filter(|a| a.actor == "api").map(|a| a.action.as_str()).collect();
    assert!(by_api.contains(&"promote") && by_api.contains(&"rollback"), "{by_api:?}");
    t.cleanup().await;
}
