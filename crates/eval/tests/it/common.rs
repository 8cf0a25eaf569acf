//! Shared by the evaluation tests: FILUSDT 1-minute bars, read and validated once per test binary.

use quantpipe_core::testing::shared_data_file;
use quantpipe_core::{Bars, Symbol};
use quantpipe_data::quality::{validate, Policy};
use quantpipe_data::read::{read_bars, ReadOptions};

pub fn fil() -> &'static Bars {
    static BARS: std::sync::OnceLock<Bars> = std::sync::OnceLock::new();
    BARS.get_or_init(|| {
        let opts = ReadOptions { symbol: Some(Symbol::new("FILUSDT").unwrap()), ..Default::default() };
        let mut read = read_bars(&shared_data_file("filusdt_perp_1m_2023.csv.gz"), &opts).unwrap();
        validate(read.series.remove(0), &Policy::default()).unwrap().bars
    })
}
