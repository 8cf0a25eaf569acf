//! Shared by the server tests: fresh registries (SQLite file, new PostgreSQL database), real
//! LightGBM models registered in them, and a small HTTP/1.1 client for tests on a real socket.

use std::collections::BTreeMap;

use quantpipe_models::lightgbm::LightGbmParams;
use quantpipe_models::{Dataset, ModelSpec, Task};
pub use quantpipe_registry::testing::{postgres, sqlite, TestRegistry};
use quantpipe_registry::{ModelVersion, NewVersion, Registry, Scope, Stage, VersionRef};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const P: Scope = Scope::Platform;

pub fn features() -> Vec<String> {
    ["rsi_14", "ret_1", "atr_14", "vol_z"].iter().map(|s| s.to_string()).collect()
}

/// A deterministic training set: label 1 when `rsi_14 + 30·ret_1` is high, with noise, so the model
/// learns something a test can check (P(up) rises with rsi_14).
pub fn training_rows(seed: u64, rows: usize) -> (Vec<f64>, Vec<f64>) {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut x = Vec::with_capacity(rows * 4);
    let mut y = Vec::with_capacity(rows);
    for _ in 0..rows {
        let rsi = 100.0 * next();
        let ret = 0.02 * (next() - 0.5);
        let atr = 50.0 + 10.0 * next();
        let vz = 4.0 * (next() - 0.5);
        x.extend([rsi, ret, atr, vz]);
        let score = (rsi - 50.0) / 25.0 + 30.0 * ret + 0.8 * (next() - 0.5) * 4.0;
        y.push(if score > 0.0 { 1.0 } else { 0.0 });
    }
    (x, y)
}

/// Trains a LightGBM direction model and returns its artifact files.
pub fn train(seed: u64, iterations: usize) -> Vec<(String, Vec<u8>)> {
    let names = features();
    let (x, y) = training_rows(seed, 2000);
    let mut params = LightGbmParams::new(Task::Binary);
    params.num_iterations = iterations;
    params.num_leaves = 15;
    params.num_threads = 1;
    params.seed = seed;
    let data = Dataset { features: &x, feature_names: &names, labels: &y, weights: None, label_windows: None };
    let model = quantpipe_models::fit(&ModelSpec::Lightgbm(params), None, &data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.save(dir.path()).unwrap();
    std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
        })
        .collect()
}

pub fn new_version(name: &str, seed: u64, stage: Stage) -> NewVersion {
    NewVersion {
        name: name.into(),
        family: "lightgbm".into(),
        task: "binary".into(),
        params: serde_json::json!({ "num_leaves": 15 }),
        feature_set: "test".into(),
        feature_set_hash: "fs-test".into(),
        feature_names: features(),
        label: serde_json::json!({ "kind": "synthetic" }),
        label_lookahead: "1 bar".into(),
        dataset_hash: format!("data-{seed}"),
        code_version: "quantpipe test".into(),
        metrics: BTreeMap::from([("oos_roc_auc".to_string(), 0.6)]),
        stage: Some(stage),
        ..Default::default()
    }
}

/// Registers a trained model as a new version and moves it to `stage`.
pub async fn register(reg: &Registry, name: &str, seed: u64, iterations: usize, stage: Stage) -> ModelVersion {
    let registered_as = if stage == Stage::Draft { Stage::Draft } else { Stage::Staging };
    let v = reg.register(&P, &new_version(name, seed, registered_as), train(seed, iterations), "test").await.unwrap();
    if stage == Stage::Production {
        promote(reg, &v.reference()).await;
    }
    reg.version(&P, &VersionRef::parse(&v.reference()).unwrap()).await.unwrap()
}

pub async fn promote(reg: &Registry, reference: &str) {
    reg.promote(&P, &VersionRef::parse(reference).unwrap(), Stage::Production, None, "test").await.unwrap();
}

/// What the artifact itself predicts, straight from the model crate: the server must give the same.
pub fn direct_prediction(reg: &Registry, version: &ModelVersion, row: &[f64]) -> f64 {
    let dir = reg.artifacts().local_dir(&version.artifact_uri).unwrap();
    quantpipe_models::load(&dir).unwrap().predict(row).unwrap()[0]
}

/// A server on port 0 over `t` (cache under its directory): its address, a sender that stops it
/// gracefully, and the task to await for the stop (which flushes the prediction log).
pub async fn serve(
    t: &TestRegistry,
    config: &quantpipe_serve::ServeConfig,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let server =
        quantpipe_serve::Server::start(config, t.registry.clone(), P, t.dir.path().join("cache"), "test".into())
            .await
            .unwrap();
    let (listener, addr) = quantpipe_serve::bind(&config.server.addr).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        server
            .run(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (addr, stop, handle)
}

/// A keep-alive HTTP/1.1 connection: enough client for tests, with nothing hidden in between.
pub struct Client {
    stream: tokio::net::TcpStream,
    buffer: Vec<u8>,
}

pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("status {}: body is not JSON ({e}): {}", self.status, String::from_utf8_lossy(&self.body))
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Client { stream, buffer: Vec::new() }
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> std::io::Result<Reply> {
        let mut request = format!("{method} {path} HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\n", body.len());
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes).await?;
        loop {
            if let Some(end) = find(&self.buffer, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                let mut lines = head.split("\r\n");
                let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string())))
                    .collect();
                let length: usize =
                    headers.iter().find(|(k, _)| k == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
                while self.buffer.len() < end + 4 + length {
                    self.read_more().await?;
                }
                let body = self.buffer[end + 4..end + 4 + length].to_vec();
                self.buffer.drain(..end + 4 + length);
                return Ok(Reply { status, body });
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    pub async fn post(&mut self, path: &str, body: &serde_json::Value) -> Reply {
        self.send("POST", path, body.to_string().as_bytes(), &[]).await.unwrap()
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, b"", &[]).await.unwrap()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
