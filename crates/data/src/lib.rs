//! quantpipe's data layer: read market data files (CSV, gzip, JSONL, Parquet), validate them into
//! a quality report, resample bars, and keep them in a Parquet bar store.

// Columnar code walks several parallel columns with one index; iterators would obscure that.
#![allow(clippy::needless_range_loop)]

mod decimal;
pub mod error;
pub mod layout;
pub mod parquet_io;
pub mod quality;
pub mod read;
mod split;
pub mod timestamp;

pub use error::{DataError, Result};
pub mod ingest;
pub mod resample;
pub mod store;
pub mod ticks;

pub use ingest::{ingest_file, IngestOptions, IngestReport};
pub use store::BarStore;
