//! Proof that validation is honest, on real data (FILUSDT 1m):
//! - every splitter keeps training labels out of the test windows (purge) and out of the embargo after them;
//! - a feature equal to the future label is caught by the leak scan, and a memoriser that exploits
//!   overlapping label windows is inflated by an unpurged split and back to chance with purging;
//! - a model trained on shuffled labels scores AUC ≈ 0.5 out of sample, with preprocessing fitted on
//!   each training window only.

use std::ops::Range;

use crate::common::fil;
use quantpipe_core::preprocess::{Impute, PreprocessSpec, Preprocessor};
use quantpipe_eval::leak;
use quantpipe_eval::metrics::roc_auc;
use quantpipe_eval::split::{LabelTimes, Scheme, Split};
use quantpipe_features::{compute, FeatureSet, Indicator};
use quantpipe_labels::{LabelSpec, Labels};

const HOUR: i64 = 3_600_000;

fn label(toml: &str) -> Labels {
    LabelSpec::from_toml(toml, "test").unwrap().compute(fil(), None).unwrap()
}

/// A deterministic pseudo-random stream (SplitMix64), so the test needs no RNG crate.
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// [first start, last end] of each contiguous test range.
fn test_spans(split: &Split, start: &[i64], end: &[i64]) -> Vec<(i64, i64)> {
    split.test.iter().map(|r: &Range<usize>| (start[r.start], r.clone().map(|i| end[i]).max().unwrap())).collect()
}

#[test]
fn no_training_label_overlaps_a_test_window_or_its_embargo() {
    // Triple-barrier labels end early or late, the hard case for purging.
    let labels = label("kind = \"triple_barrier\"\nhorizon = \"2h\"\nvol_window = 60");
    let (start, end) = (&labels.ts, &labels.end_ts);
    let times = LabelTimes::new(start, end).unwrap();
    let schemes = [
        (Scheme::PurgedKfold { folds: 5, embargo_ms: HOUR }, HOUR),
        (Scheme::Cpcv { groups: 6, test_groups: 2, embargo_ms: 30 * 60_000 }, 30 * 60_000),
        (Scheme::WalkForward { train_ms: Some(7 * 24 * HOUR), test_ms: 12 * HOUR, min_train_rows: 1000 }, 0),
        (Scheme::Holdout { test_fraction: 0.2, gap_ms: 24 * HOUR }, 0),
    ];
    for (scheme, embargo) in schemes {
        let splits = scheme.splits(times).unwrap();
        let mut purged_somewhere = false;
        for split in &splits {
            let spans = test_spans(split, start, end);
            for i in split.train_indices() {
                for &(from, to) in &spans {
                    assert!(
                        end[i] < from || start[i] > to + embargo,
                        "{scheme:?}: train row {i} overlaps [{from}, {to}]"
                    );
                }
            }
            let train: std::collections::HashSet<usize> = split.train_indices().collect();
            assert!(split.test_indices().all(|i| !train.contains(&i)));
            assert!(split.train_len() + split.test_len() + split.purged + split.embargoed <= labels.len());
            purged_somewhere |= split.purged > 0;
        }
        assert!(purged_somewhere, "{scheme:?} purged nothing");
        let purged: usize = splits.iter().map(|s| s.purged).sum();
        eprintln!("{scheme:?}: {} splits, {purged} rows purged in all", splits.len());
        match scheme {
            Scheme::PurgedKfold { .. } => {
                assert_eq!(splits.len(), 5);
                // Every row is tested exactly once.
                assert_eq!(splits.iter().map(Split::test_len).sum::<usize>(), labels.len());
            }
            Scheme::Cpcv { .. } => assert_eq!(splits.len(), 15),
            Scheme::WalkForward { .. } => {
                // Twice a day over ~9 months of data, less the first week and the two missing months.
                assert!(splits.len() > 350 && splits.len() < 500, "{} walk-forward splits", splits.len());
                for s in &splits {
                    let last_train = s.train.last().unwrap().end - 1;
                    let first_test = s.test[0].start;
                    assert!(start[first_test] - start[s.train[0].start] <= 7 * 24 * HOUR + 12 * HOUR);
                    assert!(end[last_train] < start[first_test]);
                }
            }
            Scheme::Holdout { .. } => {
                let s = &splits[0];
                let last_train = s.train.last().unwrap().end - 1;
                assert!(start[s.test[0].start] - end[last_train] > 24 * HOUR);
            }
        }
    }
}

/// 1-nearest-neighbour in time: predicts a test row's label by the label of the closest training row.
/// It knows nothing about markets; it can only score by reading overlapping label windows.
fn memoriser_accuracy(y: &[f64], train: &[bool], test: impl Iterator<Item = usize>) -> f64 {
    let n = y.len();
    let mut previous = vec![usize::MAX; n];
    let mut last = usize::MAX;
    for i in 0..n {
        previous[i] = last;
        if train[i] {
            last = i;
        }
    }
    let mut next = vec![usize::MAX; n];
    last = usize::MAX;
    for i in (0..n).rev() {
        next[i] = last;
        if train[i] {
            last = i;
        }
    }
    let (mut right, mut total) = (0usize, 0usize);
    for i in test {
        let nearest = match (previous[i], next[i]) {
            (usize::MAX, j) | (j, usize::MAX) => j,
            (a, b) => {
                if i - a <= b - i {
                    a
                } else {
                    b
                }
            }
        };
        total += 1;
        right += usize::from(y[nearest] == y[i]);
    }
    right as f64 / total as f64
}

#[test]
fn leak_canary_is_flagged_and_purging_removes_the_overlap_edge() {
    let bars = fil();
    let labels = label("kind = \"horizon\"\nhorizons = [60]");
    let y = labels.column("dir_60b").unwrap();
    let forward = labels.column("ret_60b").unwrap();
    let n = labels.len();

    // The canary: the label itself, and the forward return, slipped in as features next to honest ones.
    let set = FeatureSet {
        name: "honest".into(),
        features: vec![
            Indicator::Rsi { period: 14 },
            Indicator::LogReturn { lag: 60 },
            Indicator::Zscore { period: 60 },
            Indicator::RealizedVol { period: 60 },
        ],
    };
    let frame = compute(&set, bars);
    let mut features: Vec<(String, Vec<f64>)> = frame
        .names
        .iter()
        .zip(&frame.columns)
        .map(|(name, column)| (name.clone(), labels.row.iter().map(|&i| column[i]).collect()))
        .collect();
    features.push(("canary_label".into(), y.to_vec()));
    features.push(("canary_forward_return".into(), forward.to_vec()));
    let flagged: Vec<String> = leak::scan(&features, y, true).into_iter().map(|s| s.feature).collect();
    assert_eq!(flagged, ["canary_label", "canary_forward_return"]);
    let flagged_regression: Vec<String> =
        leak::scan(&features, forward, false).into_iter().map(|s| s.feature).collect();
    assert_eq!(flagged_regression, ["canary_forward_return"]);

    // Without purging: rows drawn at random into the test set (what `KFold(shuffle=True)` does) sit
    // next to training rows whose 60-minute windows overlap theirs almost entirely.
    let mut rng = SplitMix(7);
    let in_test: Vec<bool> = (0..n).map(|_| rng.next().is_multiple_of(5)).collect();
    let train: Vec<bool> = in_test.iter().map(|t| !t).collect();
    let unpurged = memoriser_accuracy(y, &train, (0..n).filter(|&i| in_test[i]));

    // With purged k-fold and a one-hour embargo, the nearest training label no longer overlaps.
    let times = LabelTimes::new(&labels.ts, &labels.end_ts).unwrap();
    let splits = Scheme::PurgedKfold { folds: 5, embargo_ms: HOUR }.splits(times).unwrap();
    let (mut right, mut total) = (0.0, 0usize);
    for split in &splits {
        let mut train = vec![false; n];
        split.train_indices().for_each(|i| train[i] = true);
        let accuracy = memoriser_accuracy(y, &train, split.test_indices());
        right += accuracy * split.test_len() as f64;
        total += split.test_len();
    }
    let purged = right / total as f64;
    eprintln!("memoriser accuracy: unpurged random split {unpurged:.4}, purged k-fold {purged:.4}");
    // The base rate of "up" is near one half, so chance accuracy is ≈ 0.5.
    assert!(unpurged > 0.85, "the unpurged memoriser should be inflated: {unpurged}");
    assert!((purged - 0.5).abs() < 0.02, "purged memoriser accuracy {purged} is not chance");
}

/// Ridge regression on standardised features, solved by Cholesky on the normal equations: a small,
/// honest linear model for the control (the model families themselves come with the models crate).
fn ridge_fit(x: &[Vec<f64>], y: &[f64], rows: &[usize], lambda: f64) -> Vec<f64> {
    let d = x.len() + 1;
    let mut a = vec![vec![0.0; d]; d];
    let mut b = vec![0.0; d];
    let mut row = vec![0.0; d];
    for &r in rows {
        row[0] = 1.0;
        for (c, column) in x.iter().enumerate() {
            row[c + 1] = column[r];
        }
        for i in 0..d {
            b[i] += row[i] * y[r];
            for j in 0..=i {
                a[i][j] += row[i] * row[j];
            }
        }
    }
    for (i, a_row) in a.iter_mut().enumerate().skip(1) {
        a_row[i] += lambda;
    }
    // Cholesky a = L Lᵀ (lower triangle), then two triangular solves.
    let mut l = vec![vec![0.0; d]; d];
    for i in 0..d {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            l[i][j] = if i == j { (a[i][i] - s).sqrt() } else { (a[i][j] - s) / l[j][j] };
        }
    }
    let mut z = vec![0.0; d];
    for i in 0..d {
        z[i] = (b[i] - (0..i).map(|k| l[i][k] * z[k]).sum::<f64>()) / l[i][i];
    }
    let mut w = vec![0.0; d];
    for i in (0..d).rev() {
        w[i] = (z[i] - (i + 1..d).map(|k| l[k][i] * w[k]).sum::<f64>()) / l[i][i];
    }
    w
}

/// Out-of-sample scores of a ridge model over purged k-fold, preprocessing fitted per training window.
fn out_of_sample_auc(columns: &[Vec<f64>], y: &[f64], splits: &[Split]) -> f64 {
    let spec = PreprocessSpec { impute: Impute::Median, winsorize: 0.01, standardize: true };
    let (mut truth, mut score) = (Vec::new(), Vec::new());
    for split in splits {
        let train: Vec<usize> = split.train_indices().collect();
        let pre = Preprocessor::fit(&spec, columns, &train);
        let transformed: Vec<Vec<f64>> =
            columns.iter().enumerate().map(|(c, col)| col.iter().map(|&v| pre.apply(c, v)).collect()).collect();
        let w = ridge_fit(&transformed, y, &train, 1.0);
        for i in split.test_indices() {
            let s = w[0] + transformed.iter().enumerate().map(|(c, col)| w[c + 1] * col[i]).sum::<f64>();
            truth.push(y[i]);
            score.push(s);
        }
    }
    roc_auc(&truth, &score).unwrap()
}

#[test]
fn shuffled_labels_score_chance_out_of_sample() {
    let bars = fil();
    let labels = label("kind = \"horizon\"\nhorizons = [60]");
    let y = labels.column("dir_60b").unwrap();
    let set = FeatureSet {
        name: "control".into(),
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
    let frame = compute(&set, bars);
    let columns: Vec<Vec<f64>> = frame.columns.iter().map(|c| labels.row.iter().map(|&i| c[i]).collect()).collect();
    let times = LabelTimes::new(&labels.ts, &labels.end_ts).unwrap();
    let splits = Scheme::PurgedKfold { folds: 5, embargo_ms: HOUR }.splits(times).unwrap();

    // Fisher–Yates shuffle of the labels with a fixed seed.
    let mut shuffled = y.to_vec();
    let mut rng = SplitMix(2026);
    for i in (1..shuffled.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        shuffled.swap(i, j);
    }
    let control = out_of_sample_auc(&columns, &shuffled, &splits);
    eprintln!("ridge out-of-sample AUC: shuffled labels {control:.4}");
    // n ≈ 343 000: the AUC's standard error under the null is ≈ 0.001; the band is ±0.01.
    assert!((control - 0.5).abs() < 0.01, "shuffled-label AUC {control}");
    // The same model on the real labels is a weak, real predictor: not a leak.
    let real = out_of_sample_auc(&columns, y, &splits);
    eprintln!("ridge out-of-sample AUC: real labels {real:.4}");
    assert!(real > 0.5 && real < 0.6, "real-label AUC {real}");
}
