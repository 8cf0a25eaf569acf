//! Where model version directories live. A version becomes visible only through its database row,
//! which is committed after its files are complete; the files themselves are staged under a private
//! name and renamed into place, so no reader ever sees a half-written directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{RegistryError, Result};

/// The object store for artifacts. Today: a local (or mounted shared) directory.
#[derive(Debug, Clone)]
pub enum ArtifactStore {
    Local { root: PathBuf },
}

const STAGING: &str = ".staging";

impl ArtifactStore {
    /// `file:///abs/dir` or a plain path. S3-compatible URLs (`s3://bucket/prefix`) are recognised and
    /// refused with a clear message until that backend lands.
    pub fn from_url(url: &str) -> Result<ArtifactStore> {
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(ArtifactStore::Local { root: PathBuf::from(path) });
        }
        if url.contains("://") {
            return Err(RegistryError::UnsupportedStore {
                url: url.to_string(),
                message: "only local directories (a path or file:///path) are supported by this build".into(),
            });
        }
        Ok(ArtifactStore::Local { root: PathBuf::from(url) })
    }

    pub fn url(&self) -> String {
        match self {
            ArtifactStore::Local { root } => format!("file://{}", absolute(root).display()),
        }
    }

    /// Writes `files` as the directory `key` (e.g. `platform/direction_lgbm/1.2.0`) and returns its URI.
    /// An existing directory at `key` is replaced: the caller holds the model's registry lock and has
    /// checked that no committed version points there (it is left over from a killed registration).
    pub async fn put_dir(&self, key: &str, files: Vec<(String, Vec<u8>)>) -> Result<String> {
        let ArtifactStore::Local { root } = self.clone();
        let key = key.to_string();
        tokio::task::spawn_blocking(move || put_local(&root, &key, &files))
            .await
            .map_err(|e| RegistryError::Io { path: "artifact writer".into(), source: std::io::Error::other(e) })?
    }

    /// The local directory behind a URI this store returned.
    pub fn local_dir(&self, uri: &str) -> Result<PathBuf> {
        match uri.strip_prefix("file://") {
            Some(path) => Ok(PathBuf::from(path)),
            None => Err(RegistryError::UnsupportedStore {
                url: uri.to_string(),
                message: "not a local artifact; this build reads file:// artifacts only".into(),
            }),
        }
    }

    /// Best-effort removal of a directory this store wrote (used when a registration's commit fails).
    pub fn remove(&self, uri: &str) {
        if let Ok(dir) = self.local_dir(uri) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io { path: path.display().to_string(), source }
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
