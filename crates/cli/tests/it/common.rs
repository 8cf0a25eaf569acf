//! Shared by the CLI tests: the `quantpipe` binary run as a user runs it, and its output read back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use quantpipe_core::testing::{repo_root, shared_data_file};

/// `quantpipe ARGS` with `home` as its `QUANTPIPE_HOME`. Tests use the registry inside their own home
/// unless they name another, so the caller's registry settings are removed.
pub fn quantpipe(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quantpipe"))
        .args(args)
        .env("QUANTPIPE_HOME", home)
        .env_remove("QUANTPIPE_DATABASE_URL")
        .env_remove("QUANTPIPE_ARTIFACTS")
        .env_remove("QUANTPIPE_SCOPE")
        // The examples on real data find it through this.
        .env("QUANTPIPE_SHARED_DATA", shared_data())
        // Several runs share 2 cores while tests run in parallel: OpenMP threads that spin while
        // waiting would starve each other.
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .output()
        .expect("run quantpipe")
}

/// A path inside the repository.
pub fn repo(rel: &str) -> PathBuf {
    repo_root().join(rel)
}

/// The same, as an argument.
pub fn repo_arg(rel: &str) -> String {
    repo(rel).display().to_string()
}

/// A file of the shared real-data folder, as an argument.
pub fn shared(name: &str) -> String {
    shared_data_file(name).display().to_string()
}

/// The shared real-data folder.
pub fn shared_data() -> String {
    shared_data_file("eurusd_1h.csv.gz").parent().unwrap().display().to_string()
}

/// What a command printed, stdout then stderr.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The JSON a successful command printed.
pub fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{:?}: {}", o.status, text(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}
