use std::path::Path;

use crate::error::Result;
use crate::read::{ReadOptions, ReadOutcome};

pub fn read_parquet_bars(path: &Path, _opts: &ReadOptions) -> Result<ReadOutcome> {
    Err(crate::DataError::Parquet { path: path.into(), message: "todo".into() })
}
