//! For the workspace's tests (feature `testing`): where the real market data and the reference
//! Python live. Both exist on every development and CI machine (`scripts/test` builds the Python
//! environment), so a missing one is a failure that says how to fix it, never a skip.

use std::path::PathBuf;

/// The repository's root (this crate sits at `crates/core`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A file of the shared real-data folder: `QUANTPIPE_SHARED_DATA`, or `../shared/data` beside the
/// repository.
pub fn shared_data_file(name: &str) -> PathBuf {
    let dir = std::env::var_os("QUANTPIPE_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/data"));
    let path = dir.join(name);
    assert!(path.exists(), "real data file {} is missing (set QUANTPIPE_SHARED_DATA to its folder)", path.display());
    path
}

/// The Python of the test environment (numpy, TA-Lib, scikit-learn, LightGBM, moto…):
/// `QUANTPIPE_PYTHON`, or `.venv/bin/python` in the repository.
pub fn test_python() -> PathBuf {
    let python =
        std::env::var_os("QUANTPIPE_PYTHON").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "no test Python at {}: run ./scripts/test (it creates .venv from tests/requirements.txt) or set QUANTPIPE_PYTHON",
        python.display()
    );
    python
}
