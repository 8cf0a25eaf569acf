//! Shared by the models crate's integration tests: FILUSDT 1m features and labels, Python from the
//! test virtual environment, raw f64 files for exchanging arrays with Python.

use std::path::Path;

pub use quantpipe_core::testing::{shared_data_file as shared, test_python as python};
use quantpipe_core::{Bars, Symbol};
use quantpipe_data::quality::{validate, Policy};
use quantpipe_data::read::{read_bars, ReadOptions};
use quantpipe_features::{compute, FeatureSet, Indicator};
use quantpipe_labels::LabelSpec;

/// Features and several targets of FILUSDT 1m, row-major, on the rows every label has.
pub struct Data {
    pub names: Vec<String>,
    pub x: Vec<f64>,
    pub direction: Vec<f64>,
    pub barrier_class: Vec<f64>,
    pub forward_return: Vec<f64>,
    pub start: Vec<i64>,
    pub end: Vec<i64>,
}

pub fn data() -> &'static Data {
    static DATA: std::sync::OnceLock<Data> = std::sync::OnceLock::new();
    DATA.get_or_init(|| {
        let opts = ReadOptions { symbol: Some(Symbol::new("FILUSDT").unwrap()), ..Default::default() };
        let mut read = read_bars(&shared("filusdt_perp_1m_2023.csv.gz"), &opts).unwrap();
        let bars: Bars = validate(read.series.remove(0), &Policy::default()).unwrap().bars;
        // The first 120 000 bars are plenty and keep the test quick.
        let bars = bars.select(&(0..120_000).collect::<Vec<usize>>());
        let set = FeatureSet {
            name: "test".into(),
            features: vec![
                Indicator::Rsi { period: 14 },
                Indicator::LogReturn { lag: 1 },
                Indicator::LogReturn { lag: 15 },
                Indicator::LogReturn { lag: 60 },
                Indicator::Zscore { period: 20 },
                Indicator::Zscore { period: 60 },
                Indicator::RealizedVol { period: 60 },
                Indicator::Natr { period: 14 },
                Indicator::VolumeZ { period: 60 },
                Indicator::Cci { period: 20 },
            ],
        };
        let frame = compute(&set, &bars);
        let horizon =
            LabelSpec::from_toml("kind = \"horizon\"\nhorizons = [60]", "t").unwrap().compute(&bars, None).unwrap();
        let barrier =
            LabelSpec::from_toml("kind = \"triple_barrier\"\nhorizon = 60", "t").unwrap().compute(&bars, None).unwrap();
        // Rows labelled by both, past the features' warm-up (NaN features are kept: LightGBM handles them,
        // but the first 200 bars are skipped so every label kind has its σ).
        let tb_rows: std::collections::HashMap<usize, usize> =
            barrier.row.iter().enumerate().map(|(k, &r)| (r, k)).collect();
        let d = frame.names.len();
        let mut out = Data {
            names: frame.names.clone(),
            x: Vec::new(),
            direction: Vec::new(),
            barrier_class: Vec::new(),
            forward_return: Vec::new(),
            start: Vec::new(),
            end: Vec::new(),
        };
        let dir = horizon.column("dir_60b").unwrap();
        let ret = horizon.column("ret_60b").unwrap();
        let tb = barrier.column("tb_label").unwrap();
        for (k, &r) in horizon.row.iter().enumerate() {
            let Some(&j) = tb_rows.get(&r) else { continue };
            if r < 200 {
                continue;
            }
            out.x.extend((0..d).map(|c| frame.columns[c][r]));
            out.direction.push(dir[k]);
            out.barrier_class.push(tb[j] + 1.0);
            out.forward_return.push(ret[k]);
            out.start.push(horizon.ts[k]);
            out.end.push(horizon.end_ts[k]);
        }
        out
    })
}

pub fn write_f64(path: &Path, v: &[f64]) {
    std::fs::write(path, v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

pub fn read_f64(path: &Path) -> Vec<f64> {
    std::fs::read(path).unwrap().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

/// Runs a reference script of this crate's tests
/// (`tests/SCRIPT KIND PARAMS_JSON X_TRAIN.f64 Y_TRAIN.f64 X_TEST.f64 COLUMNS OUT.f64`) in the test
/// Python and returns what it wrote to OUT.
pub fn python_reference(
    script: &str,
    kind: &str,
    params: &serde_json::Value,
    x: &[f64],
    y: &[f64],
    t: &[f64],
    d: usize,
) -> Vec<f64> {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = ["x.f64", "y.f64", "t.f64", "out.f64"].iter().map(|f| dir.path().join(f)).collect();
    write_f64(&paths[0], x);
    write_f64(&paths[1], y);
    write_f64(&paths[2], t);
    let status = std::process::Command::new(python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(script))
        .args([kind, &params.to_string()])
        .args(&paths[..3])
        .arg(d.to_string())
        .arg(&paths[3])
        .status()
        .unwrap();
    assert!(status.success(), "{script} {kind} failed");
    read_f64(&paths[3])
}

/// The largest absolute difference between two equally long arrays.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}
