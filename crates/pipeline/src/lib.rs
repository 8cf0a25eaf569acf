//! quantpipe's end-to-end run: a pipeline file (TOML) built into stages — data, features, labels,
//! dataset, validation, training, backtest, overfitting statistics, registration, report — each
//! reporting rows in and out, time and warnings in one shape. The CLI's `quantpipe run` is a thin
//! wrapper over [`run::prepare`], [`run::evaluate`], [`register::register`] and [`report::write`].

pub mod config;
pub mod panel;
pub mod png;
pub mod register;
pub mod report;
pub mod run;
mod svg;

use std::path::PathBuf;

pub use config::{LoadedConfig, PipelineConfig};
pub use run::{Observer, StageRecord};

/// Everything that can stop a run. A stage error names the stage, so the user knows where the run
/// stopped; nothing is registered unless every stage before registration succeeded.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{}: {message}", file.display())]
    Config { file: PathBuf, message: String },
    #[error("config key {key}: {message}")]
    ConfigKey { key: String, message: String },
    #[error("stage {stage}: {message}")]
    Stage { stage: &'static str, message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl PipelineError {
    pub(crate) fn config(key: impl Into<String>, message: impl Into<String>) -> PipelineError {
        PipelineError::ConfigKey { key: key.into(), message: message.into() }
    }
    pub(crate) fn stage(stage: &'static str, message: impl std::fmt::Display) -> PipelineError {
        PipelineError::Stage { stage, message: message.to_string() }
    }
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> PipelineError {
        PipelineError::Io { path: path.to_path_buf(), source }
    }
}
