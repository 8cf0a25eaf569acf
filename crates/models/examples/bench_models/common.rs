//! The benchmark matrix shared by the models crate's timing harnesses: FILUSDT 1m, 50 standard
//! features without long warm-ups, up to 200,000 rows past the warm-up, and the 60-bar direction.

use quantpipe_core::preprocess::{PreprocessSpec, Preprocessor};
use quantpipe_core::Symbol;
use quantpipe_data::quality::{validate, Policy};
use quantpipe_data::read::{read_bars, ReadOptions};
use quantpipe_features::{compute, FeatureSet};
use quantpipe_labels::LabelSpec;

pub struct Matrix {
    pub names: Vec<String>,
    /// Row-major.
    pub x: Vec<f64>,
    pub y: Vec<f64>,
}

pub fn fil_matrix(csv_gz: &std::path::Path) -> Matrix {
    let opts = ReadOptions { symbol: Some(Symbol::new("FILUSDT").unwrap()), ..Default::default() };
    let mut read = read_bars(csv_gz, &opts).unwrap();
    let bars = validate(read.series.remove(0), &Policy::default()).unwrap().bars;
    let frame = compute(&FeatureSet::standard(), &bars);
    let labels =
        LabelSpec::from_toml("kind = \"horizon\"\nhorizons = [60]", "b").unwrap().compute(&bars, None).unwrap();
    let keep: Vec<usize> = (0..frame.names.len()).filter(|&c| frame.columns[c][5_000].is_finite()).take(50).collect();
    let names: Vec<String> = keep.iter().map(|&c| frame.names[c].clone()).collect();
    let rows: Vec<usize> = labels.row.iter().copied().filter(|&r| r >= 5_000).take(200_000).collect();
    let direction = labels.column("dir_60b").unwrap();
    let y: Vec<f64> = rows.iter().map(|&r| direction[labels.row.binary_search(&r).unwrap()]).collect();
    let columns = &frame.columns;
    let x: Vec<f64> = rows.iter().flat_map(|&r| keep.iter().map(move |&c| columns[c][r])).collect();
    Matrix { names, x, y }
}

/// Raw little-endian f64s, the format the Python sides read with `numpy.fromfile`.
pub fn write_f64(path: &std::path::Path, v: &[f64]) {
    std::fs::write(path, v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

impl Matrix {
    /// The first `rows` rows, standardised with statistics fitted on those rows (median imputation,
    /// as `PreprocessSpec`'s default) — what the SVM and neural-net harnesses train on.
    pub fn first_rows_standardized(self, rows: usize) -> Matrix {
        let d = self.names.len();
        let mut x = self.x[..rows * d].to_vec();
        let spec = PreprocessSpec { standardize: true, ..PreprocessSpec::default() };
        let pre = Preprocessor::fit_rows(&spec, &x, d);
        x.chunks_exact_mut(d).for_each(|r| pre.apply_row(r));
        Matrix { names: self.names, x, y: self.y[..rows].to_vec() }
    }
}
