use std::path::PathBuf;

/// Everything that can stop a read, an ingest or a store operation. Each variant names the file and,
/// where there is one, the line and column, so the user can go straight to the problem.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the file is empty")]
    Empty { path: PathBuf },
    #[error("{path}: the file has a header but no data rows")]
    HeaderOnly { path: PathBuf },
    #[error("{path}: this looks like a binary file, not CSV, JSONL or Parquet (found a NUL byte in the first {checked} bytes)")]
    Binary { path: PathBuf, checked: usize },
    #[error("{path}: the gzip stream is corrupt or cut short after {rows} rows: {reason}")]
    Gzip { path: PathBuf, rows: u64, reason: String },
    #[error("{path}: line {line}: {message}")]
    Malformed { path: PathBuf, line: u64, message: String },
    #[error("{path}: {message}\n  header: {header}\n  map the columns explicitly, e.g. --columns ts=open_time,open=o,high=h,low=l,close=c,volume=v (names or 1-based positions; the same keys work as `columns` in config)")]
    Layout { path: PathBuf, message: String, header: String },
    #[error("{path}: {message}")]
    Parquet { path: PathBuf, message: String },
    #[error("{path}: rejected: {summary}\n{details}")]
    Rejected { path: PathBuf, summary: String, details: String },
    #[error("bar store: {0}")]
    Store(String),
    #[error("bar store: {series} already holds different values for {count} of these timestamps (first: {first}); nothing was stored. Stored data is never overwritten: remove the series with `quantpipe data remove` if the new file is the right one")]
    StoreConflict { series: String, count: usize, first: String },
    #[error("no stored series {symbol} {timeframe}; `quantpipe data list` shows what is stored")]
    NotFound { symbol: String, timeframe: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Core(#[from] quantpipe_core::CoreError),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), source }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
