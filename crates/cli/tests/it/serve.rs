//! `quantpipe serve` as a process: started on port 0, killed with SIGKILL mid-traffic, restarted.
//! Checks the prediction log's loss bound after a crash and that a restarted server serves the
//! last production version.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quantpipe_models::lightgbm::LightGbmParams;
use quantpipe_models::{Dataset, ModelSpec, Task};
use quantpipe_registry::{ArtifactStore, NewVersion, Registry, Scope, Stage, VersionRef};

const ROW: &str = "[72.5, 0.004, 55.0, 0.3]";

fn names() -> Vec<String> {
    ["rsi_14", "ret_1", "atr_14", "vol_z"].iter().map(|s| s.to_string()).collect()
}

/// Registers and promotes a small LightGBM model in the home's default registry.
async fn register_model(home: &Path) {
    let registry = Registry::open(
        &format!("sqlite://{}", home.join("registry.db").display()),
        ArtifactStore::Local { root: home.join("artifacts") },
    )
    .await
    .unwrap();
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..1000 {
        let rsi = (i * 37 % 100) as f64;
        let ret = ((i * 53 % 41) as f64 - 20.0) / 1000.0;
        x.extend([rsi, ret, 50.0 + (i % 7) as f64, ((i % 13) as f64 - 6.0) / 3.0]);
        y.push(if rsi / 100.0 + 10.0 * ret > 0.5 { 1.0 } else { 0.0 });
    }
    let feature_names = names();
    let mut params = LightGbmParams::new(Task::Binary);
    params.num_iterations = 20;
    params.num_threads = 1;
    let data = Dataset { features: &x, feature_names: &feature_names, labels: &y, weights: None, label_windows: None };
    let model = quantpipe_models::fit(&ModelSpec::Lightgbm(params), None, &data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    let files = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    let new = NewVersion {
        name: "direction".into(),
        family: "lightgbm".into(),
        task: "binary".into(),
        feature_names,
        stage: Some(Stage::Staging),
        ..Default::default()
    };
    let v = registry.register(&Scope::Platform, &new, files, "test").await.unwrap();
    let reference = VersionRef::parse(&v.reference()).unwrap();
    registry.promote(&Scope::Platform, &reference, Stage::Production, None, "test").await.unwrap();
    registry.close().await;
}

/// Starts the server and waits for the address it prints.
fn start(home: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quantpipe"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("QUANTPIPE_HOME", home)
        .env_remove("QUANTPIPE_DATABASE_URL")
        .env_remove("QUANTPIPE_ARTIFACTS")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().expect("the server prints its address").unwrap();
    let addr = line.rsplit("http://").next().unwrap().parse().unwrap_or_else(|_| panic!("no address in {line:?}"));
    (child, addr)
}

/// One keep-alive HTTP/1.1 exchange; returns status and body.
fn exchange(stream: &mut TcpStream, method: &str, path: &str, body: &str) -> (u16, String) {
    write!(stream, "{method} {path} HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed");
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
            let length: usize =
                head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
            while buffer.len() < end + 4 + length {
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0, "connection closed");
                buffer.extend_from_slice(&chunk[..n]);
            }
            let status = head.split(' ').nth(1).unwrap().parse().unwrap();
            return (status, String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).into_owned());
        }
    }
}

#[test]
fn a_killed_server_loses_at_most_the_last_flush_interval_and_restarts_on_the_production_version() {
    let home = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(register_model(home.path()));

    let (mut server, addr) = start(home.path());
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let body = format!("{{\"model_name\": \"direction\", \"features\": {ROW}}}");
    let (status, first) = exchange(&mut stream, "POST", "/predict", &body);
    assert_eq!(status, 200, "{first}");
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    let probability = first["probability"].as_f64().unwrap();

    // Steady traffic for a second, then SIGKILL with no warning.
    let mut answered: Vec<(String, Instant)> = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1000) {
        let (status, reply) = exchange(&mut stream, "POST", "/predict", &body);
        assert_eq!(status, 200, "{reply}");
        let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
        answered.push((reply["id"].as_str().unwrap().to_string(), Instant::now()));
    }
    server.kill().unwrap();
    let killed_at = Instant::now();
    server.wait().unwrap();

    let stored: std::collections::HashSet<String> = runtime.block_on(async {
        let registry = Registry::open(
            &format!("sqlite://{}", home.path().join("registry.db").display()),
            ArtifactStore::Local { root: home.path().join("artifacts") },
        )
        .await
        .unwrap();
        let rows = registry.predictions(&Scope::Platform, Some("direction"), 1_000_000).await.unwrap();
        registry.close().await;
        rows.into_iter().map(|r| r.id).collect()
    });
    // The log is committed every 10 ms (server.log_flush_ms): a prediction answered more than
    // 10 ms + an allowance for the commit itself (fsync on a busy machine) before the kill must be
    // stored; the bound of 500 ms leaves that allowance wide.
    let bound = Duration::from_millis(500);
    let lost: Vec<&(String, Instant)> = answered.iter().filter(|(id, _)| !stored.contains(id)).collect();
    for (id, at) in &lost {
        let age = killed_at.duration_since(*at);
        assert!(age <= bound, "prediction {id} answered {age:?} before the kill was lost");
    }
    assert!(answered.len() > 100, "only {} predictions in a second", answered.len());
    let oldest_lost = lost.iter().map(|(_, at)| killed_at.duration_since(*at)).max().unwrap_or_default();
    eprintln!(
        "{} predictions answered, {} lost to SIGKILL, the oldest answered {oldest_lost:?} before it",
        answered.len(),
        lost.len()
    );

    // Restarted, the server serves the same production version with the same answer.
    let (mut server, addr) = start(home.path());
    let mut stream = TcpStream::connect(addr).unwrap();
    let (status, health) = exchange(&mut stream, "GET", "/health", "");
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["models"][0]["loaded"][0]["version"], "direction@1.0.0", "{health}");
    let (_, again) = exchange(&mut stream, "POST", "/predict", &body);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["probability"].as_f64(), Some(probability));
    // SIGTERM is a graceful stop: the log is flushed and the process exits cleanly.
    let (_, last) = exchange(&mut stream, "POST", "/predict", &body);
    let last_id = serde_json::from_str::<serde_json::Value>(&last).unwrap()["id"].as_str().unwrap().to_string();
    drop(stream);
    let terminated = Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(terminated.success());
    let status = server.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let stored_last = runtime.block_on(async {
        let registry = Registry::open(
            &format!("sqlite://{}", home.path().join("registry.db").display()),
            ArtifactStore::Local { root: home.path().join("artifacts") },
        )
        .await
        .unwrap();
        let found = registry.prediction(&Scope::Platform, &last_id).await.is_ok();
        registry.close().await;
        found
    });
    assert!(stored_last, "graceful shutdown flushed the last prediction");
}

/// `quantpipe models alerts` reads what the server raises (here one raised through the library, as
/// the server's loader does for a version that cannot load).
#[test]
fn models_alerts_lists_the_alerts_of_the_scope() {
    let home = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let quantpipe = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_quantpipe"))
            .args(args)
            .env("QUANTPIPE_HOME", home.path())
            .env_remove("QUANTPIPE_DATABASE_URL")
            .output()
            .unwrap()
    };
    let empty = quantpipe(&["models", "alerts"]);
    assert!(empty.status.success() && String::from_utf8_lossy(&empty.stdout).contains("no open alerts"));
    runtime.block_on(async {
        let registry = Registry::open(
            &format!("sqlite://{}", home.path().join("registry.db").display()),
            ArtifactStore::Local { root: home.path().join("artifacts") },
        )
        .await
        .unwrap();
        registry
            .raise_alert(
                &Scope::Platform,
                "model_load_failed",
                quantpipe_registry::Severity::Critical,
                "direction@1.0.1: model.txt: unexpected end of file",
                None,
            )
            .await
            .unwrap();
        registry.close().await;
    });
    let listed = quantpipe(&["models", "alerts", "--json"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let v: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["kind"], "model_load_failed");
    assert_eq!(v[0]["severity"], "critical");
    let table = String::from_utf8_lossy(&quantpipe(&["models", "alerts"]).stdout).to_string();
    assert!(table.contains("direction@1.0.1: model.txt: unexpected end of file"), "{table}");
}
