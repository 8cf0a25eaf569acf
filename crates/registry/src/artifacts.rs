//! Where model version directories live: a local (or mounted shared) directory, or any
//! S3-compatible object store. A version becomes visible only through its database row, which is
//! committed after its files are complete. Locally the files are staged under a private name and
//! renamed into place; in an object store each file is one atomic PUT under the version's prefix, and
//! a prefix left by a killed registration (no committed row) is cleared before it is written again.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::{RegistryError, Result};

/// The object store for artifacts.
#[derive(Debug, Clone)]
pub enum ArtifactStore {
    Local {
        root: PathBuf,
    },
    /// `s3://BUCKET/PREFIX`, configured from the standard `AWS_*` variables (`AWS_ENDPOINT_URL` for
    /// MinIO, Ceph, R2 or a local emulator; `AWS_ALLOW_HTTP=true` for plain-HTTP endpoints).
    S3 {
        bucket: String,
        prefix: String,
        store: Arc<dyn ObjectStore>,
    },
}

const STAGING: &str = ".staging";

impl ArtifactStore {
    /// `s3://bucket/prefix`, `file:///abs/dir` or a plain path.
    pub fn from_url(url: &str) -> Result<ArtifactStore> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(RegistryError::UnsupportedStore {
                    url: url.to_string(),
                    message: "expected s3://BUCKET or s3://BUCKET/PREFIX".into(),
                });
            }
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| RegistryError::UnsupportedStore { url: url.to_string(), message: e.to_string() })?;
            return Ok(ArtifactStore::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                store: Arc::new(store),
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(ArtifactStore::Local { root: PathBuf::from(path) });
        }
        if url.contains("://") {
            return Err(RegistryError::UnsupportedStore {
                url: url.to_string(),
                message: "expected a directory, file:///DIR or s3://BUCKET/PREFIX".into(),
            });
        }
        Ok(ArtifactStore::Local { root: PathBuf::from(url) })
    }

    pub fn url(&self) -> String {
        match self {
            ArtifactStore::Local { root } => format!("file://{}", absolute(root).display()),
            ArtifactStore::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// Writes `files` as the directory `key` (e.g. `platform/direction_lgbm/1.2.0`) and returns its URI.
    /// What is already at `key` is replaced: the caller holds the model's registry lock and has
    /// checked that no committed version points there (it is left over from a killed registration).
    pub async fn put_dir(&self, key: &str, files: Vec<(String, Vec<u8>)>) -> Result<String> {
        match self {
            ArtifactStore::Local { root } => {
                let (root, key) = (root.clone(), key.to_string());
                tokio::task::spawn_blocking(move || put_local(&root, &key, &files)).await.map_err(|e| {
                    RegistryError::Io { path: "artifact writer".into(), error: std::io::Error::other(e) }
                })?
            }
            ArtifactStore::S3 { bucket, prefix, store } => {
                let dir = join_key(prefix, key);
                let uri = format!("s3://{bucket}/{dir}");
                let failed = |e: object_store::Error| RegistryError::UnsupportedStore {
                    url: uri.clone(),
                    message: e.to_string(),
                };
                delete_prefix(store.as_ref(), &dir).await.map_err(failed)?;
                for (name, bytes) in files {
                    let path = ObjectPath::from(format!("{dir}/{name}"));
                    store.put(&path, PutPayload::from(bytes)).await.map_err(failed)?;
                }
                Ok(uri)
            }
        }
    }

    /// Copies the version directory at `uri` into the local directory `dest` (created).
    pub async fn fetch(&self, uri: &str, dest: &Path) -> Result<()> {
        std::fs::create_dir_all(dest).map_err(io_err(dest))?;
        match self {
            ArtifactStore::Local { .. } => {
                let source = self.local_dir(uri)?;
                for entry in std::fs::read_dir(&source).map_err(io_err(&source))? {
                    let entry = entry.map_err(io_err(&source))?;
                    if entry.file_type().map_err(io_err(&source))?.is_file() {
                        let to = dest.join(entry.file_name());
                        std::fs::copy(entry.path(), &to).map_err(io_err(&to))?;
                    }
                }
                Ok(())
            }
            ArtifactStore::S3 { store, .. } => {
                let dir = self.object_dir(uri)?;
                let failed = |e: object_store::Error| RegistryError::UnsupportedStore {
                    url: uri.to_string(),
                    message: e.to_string(),
                };
                let objects: Vec<_> =
                    store.list(Some(&ObjectPath::from(dir.as_str()))).try_collect().await.map_err(failed)?;
                if objects.is_empty() {
                    return Err(RegistryError::NotFound(format!("no artifact files at {uri}")));
                }
                for meta in objects {
                    let Some(name) = meta.location.filename().map(str::to_string) else { continue };
                    let bytes = store.get(&meta.location).await.map_err(failed)?.bytes().await.map_err(failed)?;
                    let to = dest.join(&name);
                    std::fs::write(&to, &bytes).map_err(io_err(&to))?;
                }
                Ok(())
            }
        }
    }

    /// The local directory behind a `file://` URI this store returned.
    pub fn local_dir(&self, uri: &str) -> Result<PathBuf> {
        match uri.strip_prefix("file://") {
            Some(path) => Ok(PathBuf::from(path)),
            None => Err(RegistryError::UnsupportedStore {
                url: uri.to_string(),
                message: "not a local artifact; fetch it into a directory instead".into(),
            }),
        }
    }

    /// The object prefix behind an `s3://` URI of this store's bucket.
    fn object_dir(&self, uri: &str) -> Result<String> {
        let ArtifactStore::S3 { bucket, .. } = self else {
            return self.local_dir(uri).map(|p| p.display().to_string());
        };
        uri.strip_prefix(&format!("s3://{bucket}/")).map(str::to_string).ok_or_else(|| {
            RegistryError::UnsupportedStore {
                url: uri.to_string(),
                message: format!("not in this store's bucket {bucket}"),
            }
        })
    }

    /// Best-effort removal of a directory this store wrote (used when a registration's commit fails).
    pub async fn remove(&self, uri: &str) {
        match self {
            ArtifactStore::Local { .. } => {
                if let Ok(dir) = self.local_dir(uri) {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            ArtifactStore::S3 { store, .. } => {
                if let Ok(dir) = self.object_dir(uri) {
                    let _ = delete_prefix(store.as_ref(), &dir).await;
                }
            }
        }
    }
}

fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}/{key}")
    }
}

async fn delete_prefix(store: &dyn ObjectStore, dir: &str) -> std::result::Result<(), object_store::Error> {
    let objects: Vec<_> = store.list(Some(&ObjectPath::from(dir))).try_collect().await?;
    for meta in objects {
        store.delete(&meta.location).await?;
    }
    Ok(())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |error| RegistryError::Io { path: path.display().to_string(), error }
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn put_local(root: &Path, key: &str, files: &[(String, Vec<u8>)]) -> Result<String> {
    let root = absolute(root);
    let staging_root = root.join(STAGING);
    std::fs::create_dir_all(&staging_root).map_err(io_err(&staging_root))?;
    remove_abandoned(&staging_root);
    let staged = staging_root.join(unique_suffix());
    std::fs::create_dir(&staged).map_err(io_err(&staged))?;
    let result = (|| {
        for (name, bytes) in files {
            let path = staged.join(name);
            let mut file = std::fs::File::create(&path).map_err(io_err(&path))?;
            file.write_all(bytes).map_err(io_err(&path))?;
            file.sync_all().map_err(io_err(&path))?;
        }
        sync_dir(&staged)?;
        let target = root.join(key);
        let parent = target.parent().unwrap_or(&root).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(io_err(&parent))?;
        if target.exists() {
            let stale = staging_root.join(format!("stale-{}", unique_suffix()));
            std::fs::rename(&target, &stale).map_err(io_err(&target))?;
            let _ = std::fs::remove_dir_all(&stale);
        }
        std::fs::rename(&staged, &target).map_err(io_err(&target))?;
        sync_dir(&parent)?;
        Ok(format!("file://{}", target.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staged);
    }
    result
}

/// Staged directories of registrations killed more than an hour ago (a live one takes seconds).
fn remove_abandoned(staging_root: &Path) {
    let Ok(entries) = std::fs::read_dir(staging_root) else { return };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(3600));
        if old {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Makes a rename or a new file's directory entry durable.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}
