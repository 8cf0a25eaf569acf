use std::path::PathBuf;

pub use quantpipe_core::testing::shared_data_file as shared;

use quantpipe_core::Symbol;
use quantpipe_data::{ingest_file, read::NoProgress, BarStore, IngestOptions, IngestReport, Result};

pub fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(name)
}

pub fn options(symbol: Option<&str>) -> IngestOptions {
    IngestOptions { symbol: symbol.map(|s| Symbol::new(s).unwrap()), ..Default::default() }
}

pub fn ingest(store: &BarStore, path: &std::path::Path, opts: &IngestOptions) -> Result<IngestReport> {
    ingest_file(store, path, opts, &NoProgress)
}
