//! Artifacts in an S3-compatible store: a local emulator (moto's server, from the test environment's
//! pinned requirements) started by this test, used through the same code path as AWS S3, MinIO or R2.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quantpipe_registry::{ArtifactStore, NewVersion, Registry, Scope, Stage, VersionRef};

struct Emulator {
    child: Child,
    port: u16,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_emulator() -> Emulator {
    let python = quantpipe_core::testing::test_python();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(&python)
        .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting the S3 emulator with {} -m moto.server: {e}", python.display()));
    let emulator = Emulator { child, port };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "moto did not listen on {port} within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    emulator
}

/// Creates a bucket with a plain HTTP request (the emulator does not check signatures).
fn create_bucket(port: u16, bucket: &str) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"), "{response}");
}

fn version(name: &str, data: &str) -> NewVersion {
    NewVersion {
        name: name.into(),
        family: "lightgbm".into(),
        task: "binary".into(),
        params: serde_json::json!({"num_leaves": 31}),
        feature_set: "standard".into(),
        feature_set_hash: "fs".into(),
        feature_names: vec!["rsi_14".into()],
        label: serde_json::json!({"kind": "horizon"}),
        label_lookahead: "1h".into(),
        dataset_hash: data.into(),
        code_version: "test".into(),
        metrics: [("oos_auc".to_string(), 0.56)].into_iter().collect(),
        ..Default::default()
    }
}

async fn scenario(database_url: &str, bucket: &str) {
    let store = ArtifactStore::from_url(&format!("s3://{bucket}/team-a/registry")).unwrap();
    let registry = Registry::open(database_url, store).await.unwrap();
    let model: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
    let files = vec![("model.txt".to_string(), model.clone()), ("model.json".to_string(), b"{}".to_vec())];
    let scope = Scope::parse("acme").unwrap();
    let v1 = registry.register(&scope, &version("s3_model", "d1"), files.clone(), "ana").await.unwrap();
    assert_eq!(v1.artifact_uri, format!("s3://{bucket}/team-a/registry/t/acme/s3_model/1.0.0"));
    let v2 = registry.register(&scope, &version("s3_model", "d2"), files, "ana").await.unwrap();
    assert_eq!(v2.version.to_string(), "1.0.1");

    // Fetched back byte for byte, with the self-describing files beside the model.
    let dest = tempfile::tempdir().unwrap();
    registry.artifacts().fetch(&v2.artifact_uri, dest.path()).await.unwrap();
    assert_eq!(std::fs::read(dest.path().join("model.txt")).unwrap(), model);
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.path().join("metadata.json")).unwrap()).unwrap();
    assert_eq!(metadata["version"], "1.0.1");
    assert_eq!(metadata["lineage"]["parent_version"], "1.0.0");
    assert!(dest.path().join("README.md").exists() && dest.path().join("config.json").exists());

    // Objects left at a version's prefix by a registration killed before its commit are replaced,
    // not mixed with the new version's files.
    let orphan = ArtifactStore::from_url(&format!("s3://{bucket}/team-a/registry")).unwrap();
    orphan.put_dir("t/acme/s3_model/1.0.2", vec![("stale.bin".into(), b"old".to_vec())]).await.unwrap();
    let v3 = registry
        .register(&scope, &version("s3_model", "d3"), vec![("model.txt".into(), b"new".to_vec())], "ana")
        .await
        .unwrap();
    let dest3 = tempfile::tempdir().unwrap();
    registry.artifacts().fetch(&v3.artifact_uri, dest3.path()).await.unwrap();
    assert!(!dest3.path().join("stale.bin").exists());
    assert_eq!(std::fs::read(dest3.path().join("model.txt")).unwrap(), b"new");

    // The lifecycle does not care where the files are.
    registry
        .promote(&scope, &VersionRef::parse("s3_model@1.0.1").unwrap(), Stage::Production, None, "ana")
        .await
        .unwrap();
    let production = registry.version(&scope, &VersionRef::parse("s3_model@production").unwrap()).await.unwrap();
    assert_eq!(production.artifact_uri, v2.artifact_uri);
    let missing = registry.artifacts().fetch(&format!("s3://{bucket}/team-a/registry/nothing"), dest.path()).await;
    assert!(missing.is_err());
    registry.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_round_trip_through_an_s3_compatible_store() {
    let emulator = start_emulator();
    create_bucket(emulator.port, "quantpipe-test");
    // The standard AWS variables configure the store, as they would for a user of MinIO or R2.
    std::env::set_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", emulator.port));
    std::env::set_var("AWS_ALLOW_HTTP", "true");
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_REGION", "us-east-1");

    let sqlite = crate::common::sqlite().await;
    scenario(&sqlite.url, "quantpipe-test").await;
    sqlite.cleanup().await;
    create_bucket(emulator.port, "quantpipe-test-pg");
    let postgres = crate::common::postgres().await;
    scenario(&postgres.url, "quantpipe-test-pg").await;
    postgres.cleanup().await;

    let err = ArtifactStore::from_url("s3:///no-bucket").unwrap_err().to_string();
    assert!(err.contains("s3://BUCKET"), "{err}");
    let err = ArtifactStore::from_url("gs://elsewhere").unwrap_err().to_string();
    assert!(err.contains("gs://elsewhere"), "{err}");
}
