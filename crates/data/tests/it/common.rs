use std::path::PathBuf;

use quantpipe_core::Symbol;
use quantpipe_data::{ingest_file, read::NoProgress, BarStore, IngestOptions, IngestReport, Result};

pub fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(name)
}

/// A file of the shared real-data folder (`../shared/data` beside the repository, or
/// `QUANTPIPE_SHARED_DATA`). These files exist on every development and CI machine, so a missing
/// one is a failure, not a skip.
pub fn shared(name: &str) -> PathBuf {
    let dir = std::env::var_os("QUANTPIPE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let path = dir.join(name);
    assert!(path.exists(), "real data file {} is missing (set QUANTPIPE_SHARED_DATA)", path.display());
    path
}

pub fn options(symbol: Option<&str>) -> IngestOptions {
    IngestOptions { symbol: symbol.map(|s| Symbol::new(s).unwrap()), ..Default::default() }
}

pub fn ingest(store: &BarStore, path: &std::path::Path, opts: &IngestOptions) -> Result<IngestReport> {
    ingest_file(store, path, opts, &NoProgress)
}
