//! Shared by the feature tests: real bars from the shared data folder.

use quantpipe_core::testing::shared_data_file;
use quantpipe_core::{Bars, Symbol};
use quantpipe_data::quality::{validate, Policy};
use quantpipe_data::read::{read_bars, ReadOptions};

/// `symbol`'s bars in a file of the shared data folder, validated with the default policy.
pub fn load(file: &str, symbol: &str) -> Bars {
    let opts = ReadOptions { symbol: Some(Symbol::new(symbol).unwrap()), ..Default::default() };
    let mut read = read_bars(&shared_data_file(file), &opts).unwrap();
    validate(read.series.remove(0), &Policy::default()).unwrap().bars
}
