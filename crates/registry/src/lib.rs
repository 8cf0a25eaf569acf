//! The model registry and experiment tracker: experiments and runs, registered models and their
//! versions (semantic versions bumped automatically), the lifecycle draft → staging → production →
//! archived / deprecated with at most one production version per model (enforced by the database),
//! promotion gates, rollback, ranking, comparison, deployments, alerts and an audit log of every
//! stage or deployment change, and the served-prediction log with realised outcomes.
//!
//! One code path serves SQLite (the embedded default) and PostgreSQL (teams, many machines) through
//! sqlx's `Any` driver; only the migrations differ (`migrations/sqlite`, `migrations/postgres`).
//! Every row carries its owner [`Scope`] and every query filters by it.
//!
//! The CLI calls these functions today; the HTTP API calls the same ones later.

mod artifacts;
mod db;
mod lifecycle;
mod ops;
mod predictions;
mod runs;
#[cfg(feature = "testing")]
pub mod testing;
mod versions;

use std::fmt;
use std::str::FromStr;

pub use artifacts::ArtifactStore;
pub use lifecycle::{AuditEntry, Gate, RankOrder, RankOutcome, StageChange};
pub use ops::{Alert, Deployment, Route, Severity};
pub use predictions::{Feedback, PredictionRecord};
pub use quantpipe_core::Scope;
pub use runs::{Run, RunFilter, RunStatus};
pub use versions::{Evaluation, ModelVersion, NewVersion, VersionFilter};

use sqlx::AnyPool;

/// Everything that can go wrong in the registry, named so a user knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The database error is shown in the message and not chained as a source, so an error report
    /// prints it once.
    #[error("registry database: {0}")]
    Database(sqlx::Error),
    #[error("registry database URL {url:?}: {message}")]
    InvalidUrl { url: String, message: String },
    #[error("registry migration {version} ({name}): {message}")]
    Migration { version: i64, name: String, message: String },
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("invalid model name {0:?}: use letters, digits and _ - . (1 to 128 characters, not starting with .)")]
    InvalidName(String),
    #[error("invalid model reference {0:?}: expected NAME, NAME@MAJOR.MINOR.PATCH, NAME@STAGE or NAME@latest")]
    InvalidReference(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{version} is {from}; it cannot move to {to} ({hint})")]
    InvalidTransition { version: String, from: Stage, to: Stage, hint: &'static str },
    #[error("promotion of {version} to production refused by the gate:\n  - {}", failures.join("\n  - "))]
    GateRefused { version: String, failures: Vec<String> },
    #[error("invalid promotion gate in {file}: {message}")]
    InvalidGate { file: String, message: String },
    #[error("{0}")]
    NoRollbackTarget(String),
    /// The request contradicts what is stored (a second outcome for one prediction).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("artifact store {url:?}: {message}")]
    UnsupportedStore { url: String, message: String },
    #[error("artifact of {version} at {uri}: {message}")]
    Artifact { version: String, uri: String, message: String },
    #[error("stored row is unreadable ({what}): {message}; was the database written by a newer quantpipe?")]
    Corrupt { what: String, message: String },
}

impl From<sqlx::Error> for RegistryError {
    fn from(e: sqlx::Error) -> Self {
        RegistryError::Database(e)
    }
}

pub type Result<T> = std::result::Result<T, RegistryError>;

/// Where a model version is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Draft,
    Staging,
    Production,
    Archived,
    Deprecated,
}

impl Stage {
    pub const ALL: [Stage; 5] = [Stage::Draft, Stage::Staging, Stage::Production, Stage::Archived, Stage::Deprecated];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Draft => "draft",
            Stage::Staging => "staging",
            Stage::Production => "production",
            Stage::Archived => "archived",
            Stage::Deprecated => "deprecated",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage {
    type Err = RegistryError;
    fn from_str(s: &str) -> Result<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            RegistryError::InvalidArgument(format!(
                "unknown stage {s:?}: expected draft, staging, production, archived or deprecated"
            ))
        })
    }
}

/// A semantic version, ordered as numbers (1.10.0 > 1.9.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SemVer {
    pub major: i64,
    pub minor: i64,
    pub patch: i64,
}

impl SemVer {
    pub const FIRST: SemVer = SemVer { major: 1, minor: 0, patch: 0 };

    pub fn parse(raw: &str) -> Option<SemVer> {
        let mut parts = raw.strip_prefix('v').unwrap_or(raw).split('.');
        let mut next = || parts.next().and_then(|p| p.parse::<i64>().ok()).filter(|&n| n >= 0);
        let version = SemVer { major: next()?, minor: next()?, patch: next()? };
        parts.next().is_none().then_some(version)
    }
}

impl fmt::Display for SemVer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl serde::Serialize for SemVer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Which version of a model a command means: `name@1.2.0`, `name@production` (any stage), or
/// `name@latest` / `name` (the highest version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRef {
    pub name: String,
    pub selector: Selector,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    Exact(SemVer),
    Stage(Stage),
    Latest,
}

impl VersionRef {
    pub fn parse(raw: &str) -> Result<VersionRef> {
        let (name, selector) = match raw.split_once('@') {
            None => (raw, Selector::Latest),
            Some((name, "latest")) => (name, Selector::Latest),
            Some((name, sel)) => match (SemVer::parse(sel), sel.parse::<Stage>()) {
                (Some(v), _) => (name, Selector::Exact(v)),
                (None, Ok(stage)) => (name, Selector::Stage(stage)),
                (None, Err(_)) => return Err(RegistryError::InvalidReference(raw.to_string())),
            },
        };
        check_name(name).map_err(|_| RegistryError::InvalidReference(raw.to_string()))?;
        Ok(VersionRef { name: name.to_string(), selector })
    }
}

impl fmt::Display for VersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.selector {
            Selector::Exact(v) => write!(f, "{}@{v}", self.name),
            Selector::Stage(s) => write!(f, "{}@{s}", self.name),
            Selector::Latest => write!(f, "{}@latest", self.name),
        }
    }
}

/// Model and experiment names become path components of artifact keys, so they are restricted.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(RegistryError::InvalidName(name.to_string()))
    }
}

/// Which database a registry talks to. Only the migrations and the connection set-up differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection to the registry database and its artifact store.
#[derive(Clone)]
pub struct Registry {
    pool: AnyPool,
    backend: Backend,
    artifacts: ArtifactStore,
}

impl Registry {
    /// Opens (creating and migrating where needed) the registry at `database_url`
    /// (`sqlite:///path/registry.db`, `sqlite:relative.db` or `postgres://…`) with artifacts in `artifacts`.
    pub async fn open(database_url: &str, artifacts: ArtifactStore) -> Result<Registry> {
        let (pool, backend) = db::connect(database_url).await?;
        db::migrate(&pool, backend).await?;
        Ok(Registry { pool, backend, artifacts })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn artifacts(&self) -> &ArtifactStore {
        &self.artifacts
    }

    /// Closes the pool's connections (SQLite checkpoints its WAL on the last close).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(crate) use quantpipe_core::time::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        let r = VersionRef::parse("direction_lgbm@1.10.2").unwrap();
        assert_eq!(r.selector, Selector::Exact(SemVer { major: 1, minor: 10, patch: 2 }));
        assert_eq!(VersionRef::parse("m@production").unwrap().selector, Selector::Stage(Stage::Production));
        assert_eq!(VersionRef::parse("m").unwrap().selector, Selector::Latest);
        assert_eq!(VersionRef::parse("m@latest").unwrap().selector, Selector::Latest);
        for bad in ["", "@1.0.0", "m@1.0", "m@prod", "m@1.0.0.1", "../m@1.0.0", "m@-1.0.0"] {
            assert!(VersionRef::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(SemVer { major: 1, minor: 10, patch: 0 } > SemVer { major: 1, minor: 9, patch: 7 });
    }
}
