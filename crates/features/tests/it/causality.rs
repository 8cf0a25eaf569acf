//! One code path and no look-ahead, checked for every feature of the standard set on real data:
//! - streaming (a `FeatureState` fed bar by bar) equals batch `compute`, bit for bit, and `compute`
//!   gives the same frame on one thread as on several;
//! - truncating the series after bar t, or changing every bar after t, never changes a value at or
//!   before t.

use crate::common::load;
use quantpipe_core::Bars;
use quantpipe_features::kernels::Bar;
use quantpipe_features::{compute, compute_with_threads, FeatureSet, FeatureState};

fn fil_bars(n: usize) -> Bars {
    let bars = load("filusdt_perp_1m_2023.csv.gz", "FILUSDT");
    let idx: Vec<usize> = (0..n).collect();
    bars.select(&idx)
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn streaming_equals_batch_bit_for_bit() {
    let bars = fil_bars(20_000);
    let set = FeatureSet::standard();
    let batch = compute(&set, &bars);
    for threads in [1, 3] {
        let other = compute_with_threads(&set, &bars, threads);
        assert_eq!(other.names, batch.names);
        for (k, (a, b)) in other.columns.iter().zip(&batch.columns).enumerate() {
            assert!(a.iter().zip(b).all(|(x, y)| same(*x, *y)), "{} on {threads} thread(s)", batch.names[k]);
        }
    }
    let mut state = FeatureState::new(&set);
    for i in 0..bars.len() {
        let row = state.update(&Bar::at(&bars, i)).to_vec();
        for (k, v) in row.iter().enumerate() {
            assert!(
                same(*v, batch.columns[k][i]),
                "{} at bar {i}: stream {v}, batch {}",
                batch.names[k],
                batch.columns[k][i]
            );
        }
    }
}

#[test]
fn no_feature_looks_ahead() {
    let bars = fil_bars(6_000);
    let set = FeatureSet::standard();
    let full = compute(&set, &bars);
    for cut in [250, 1_000, 3_333, 5_999] {
        let idx: Vec<usize> = (0..cut).collect();
        let truncated = compute(&set, &bars.select(&idx));
        // The future rewritten: every bar after the cut doubled in price and volume.
        let mut changed = bars.clone();
        for i in cut..changed.len() {
            for col in [&mut changed.open, &mut changed.high, &mut changed.low, &mut changed.close, &mut changed.volume]
            {
                col[i] *= 2.0;
            }
        }
        let rewritten = compute(&set, &changed);
        // The check has teeth: most features do change after the cut.
        let moved = (0..full.names.len())
            .filter(|&k| (cut..bars.len()).any(|i| !same(rewritten.columns[k][i], full.columns[k][i])))
            .count();
        if cut < bars.len() - 1 {
            assert!(moved * 2 > full.names.len(), "only {moved} features reacted to the rewritten future");
        }
        for k in 0..full.names.len() {
            for i in 0..cut {
                assert!(
                    same(truncated.columns[k][i], full.columns[k][i]),
                    "{} at {i} changed by truncation at {cut}",
                    full.names[k]
                );
                assert!(
                    same(rewritten.columns[k][i], full.columns[k][i]),
                    "{} at {i} changed by the future after {cut}",
                    full.names[k]
                );
            }
        }
    }
    assert_eq!(full.names.len(), set.columns().len());
}

#[test]
fn many_symbols_in_parallel_give_the_single_path_results() {
    let bars = fil_bars(9_000);
    let parts: Vec<Bars> = (0..3).map(|k| bars.select(&((k * 3_000)..((k + 1) * 3_000)).collect::<Vec<_>>())).collect();
    let refs: Vec<&Bars> = parts.iter().collect();
    let set = FeatureSet::standard();
    let many = quantpipe_features::compute_many(&set, &refs, 2);
    for (part, frame) in parts.iter().zip(&many) {
        let single = compute(&set, part);
        assert_eq!(frame.names, single.names);
        for (a, b) in frame.columns.iter().zip(&single.columns) {
            assert!(a.iter().zip(b).all(|(x, y)| same(*x, *y)));
        }
    }
}
