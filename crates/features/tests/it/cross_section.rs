//! Cross-sectional ranks on the S&P 500 daily file: on every date, the ranks of the symbols with a
//! value are a permutation of 0, 1/(n−1), …, 1 (no ties in returns of 20 symbols), and the z-scores
//! have mean 0 and population σ 1.

use quantpipe_core::testing::shared_data_file;
use quantpipe_data::quality::{validate, ConflictRule, Policy};
use quantpipe_data::read::{read_bars, ReadOptions};
use quantpipe_features::cross::cross_section;
use quantpipe_features::{compute, FeatureSet, Indicator};

#[test]
fn sp500_daily_return_ranks() {
    let read = read_bars(&shared_data_file("sp500_daily_5yr.csv.gz"), &ReadOptions::default()).unwrap();
    let policy = Policy { repair: true, on_conflict: Some(ConflictRule::KeepFirst), ..Policy::default() };
    let set = FeatureSet { name: "r".into(), features: vec![Indicator::Roc { period: 20 }] };
    let frames: Vec<_> =
        read.series.into_iter().take(20).map(|raw| compute(&set, &validate(raw, &policy).unwrap().bars)).collect();
    let out = cross_section(&frames, "roc_20").unwrap();
    let mut dates: std::collections::BTreeMap<i64, Vec<(f64, f64)>> = Default::default();
    for (f, frame) in frames.iter().enumerate() {
        for (row, &ts) in frame.ts.iter().enumerate() {
            if out[f].rank[row].is_finite() {
                dates.entry(ts).or_default().push((out[f].rank[row], out[f].zscore[row]));
            }
        }
    }
    assert!(dates.len() > 1000);
    for (ts, v) in dates {
        let n = v.len();
        let mut ranks: Vec<f64> = v.iter().map(|x| x.0 * (n - 1) as f64).collect();
        ranks.sort_by(f64::total_cmp);
        for (k, r) in ranks.iter().enumerate() {
            assert!((r - k as f64).abs() < 1e-9, "date {ts}: ranks {ranks:?}");
        }
        let mean = v.iter().map(|x| x.1).sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x.1 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 1e-9 && (var - 1.0).abs() < 1e-9, "date {ts}: mean {mean}, var {var}");
    }
}
