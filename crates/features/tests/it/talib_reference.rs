//! Every indicator that TA-Lib has equals TA-Lib (Python `ta-lib` 0.8.2, the oracle, in the virtual
//! environment `scripts/test` creates) on real data: FILUSDT 1m, EURUSD 1h and AAPL daily.
//!
//! Tolerance: |ours − TA-Lib| ≤ 1e-9 · max(|TA-Lib|, s) where s is the mean |value| of that output
//! over the file, so outputs that cross zero (MOM, MACD histogram, CCI) are judged against their
//! own scale rather than against a relative error that explodes at zero. Warm-up must match
//! exactly: NaN where TA-Lib has NaN, a number where it has one.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::load;
use quantpipe_core::testing::test_python as python;
use quantpipe_features::{compute, FeatureSet};

fn write_f64(path: &Path, v: &[f64]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

fn read_f64(path: &Path) -> Vec<f64> {
    std::fs::read(path).unwrap().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

fn check(file: &str, symbol: &str) -> usize {
    let bars = load(file, symbol);
    let set = FeatureSet::standard();
    let frame = compute(&set, &bars);
    let dir = tempfile::tempdir().unwrap();
    for (name, col) in [
        ("open", &bars.open),
        ("high", &bars.high),
        ("low", &bars.low),
        ("close", &bars.close),
        ("volume", &bars.volume),
    ] {
        write_f64(&dir.path().join(format!("{name}.f64")), col);
    }
    let mut spec = Vec::new();
    for f in &set.features {
        for (name, call) in f.outputs().into_iter().zip(f.talib()) {
            if let Some(call) = call {
                spec.push(serde_json::json!({
                    "name": name, "function": call.function, "inputs": call.inputs,
                    "kwargs": call.kwargs, "output": call.output,
                }));
            }
        }
    }
    std::fs::write(dir.path().join("spec.json"), serde_json::to_vec(&spec).unwrap()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/talib_ref.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(dir.path().join("spec.json"))
        .arg(dir.path())
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "TA-Lib script failed: {}", String::from_utf8_lossy(&out.stderr));

    let mut failures = Vec::new();
    for entry in &spec {
        let name = entry["name"].as_str().unwrap();
        let theirs = read_f64(&dir.path().join(format!("{name}.f64")));
        let k = frame.names.iter().position(|n| n == name).unwrap();
        let ours = &frame.columns[k];
        assert_eq!(theirs.len(), ours.len());
        let finite: Vec<f64> = theirs.iter().copied().filter(|v| v.is_finite()).collect();
        assert!(!finite.is_empty(), "{file} {name}: TA-Lib gave no values");
        let scale = finite.iter().map(|v| v.abs()).sum::<f64>() / finite.len() as f64;
        let mut worst = (0.0f64, 0usize);
        for i in 0..ours.len() {
            let (a, b) = (ours[i], theirs[i]);
            if a.is_nan() != b.is_nan() {
                failures.push(format!("{name}: warm-up differs at bar {i}: ours {a}, TA-Lib {b}"));
                break;
            }
            if b.is_nan() {
                continue;
            }
            let err = (a - b).abs() / b.abs().max(scale).max(f64::MIN_POSITIVE);
            if err > worst.0 {
                worst = (err, i);
            }
        }
        if name.starts_with("cdl_") {
            // A pattern that never fires would match trivially: each must fire on these files.
            let fired = theirs.iter().filter(|v| v.is_finite() && **v != 0.0).count();
            assert!(fired > 0, "{file} {name}: TA-Lib finds no pattern, so the comparison proves nothing");
        }
        if worst.0 > 1e-9 {
            let i = worst.1;
            failures.push(format!("{name}: error {:.2e} at bar {i} (ours {}, TA-Lib {})", worst.0, ours[i], theirs[i]));
        }
    }
    assert!(failures.is_empty(), "{file}: {} outputs differ from TA-Lib:\n  {}", failures.len(), failures.join("\n  "));
    spec.len()
}

#[test]
fn standard_set_equals_talib_on_filusdt_1m() {
    assert!(check("filusdt_perp_1m_2023.csv.gz", "FILUSDT") >= 50);
}

#[test]
fn standard_set_equals_talib_on_eurusd_1h() {
    check("eurusd_1h.csv.gz", "EURUSD");
}

#[test]
fn standard_set_equals_talib_on_aapl_daily() {
    check("sp500_daily_5yr.csv.gz", "AAPL");
}
