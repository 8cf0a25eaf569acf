//! Window helpers for labels: forward extremes, rolling moments and trailing percentiles.

use std::collections::VecDeque;

use crate::NO_END;

/// For every bar `i` with a window end, the maximum (or minimum) of `values[i+1..=end]`, by a monotone
/// deque in O(n). Window ends are non-decreasing over the bars that have one.
pub(crate) fn forward_extreme(values: &[f64], ends: &[usize], maximum: bool) -> Vec<f64> {
    let better = |a: f64, b: f64| if maximum { a >= b } else { a <= b };
    let mut out = vec![f64::NAN; values.len()];
    let mut deque: VecDeque<usize> = VecDeque::new();
    let mut pushed = 0; // next index to enter the deque
    for (i, &end) in ends.iter().enumerate() {
        if end == NO_END {
            continue;
        }
        while pushed <= end {
            while deque.back().is_some_and(|&b| better(values[pushed], values[b])) {
                deque.pop_back();
            }
            deque.push_back(pushed);
            pushed += 1;
        }
        while deque.front().is_some_and(|&f| f <= i) {
            deque.pop_front();
        }
        out[i] = deque.front().map_or(f64::NAN, |&f| values[f]);
    }
    out
}

/// Mean and sum of squared deviations of every full window `values[i+1-window..=i]` (`None` before the
/// first). Welford's update with removal keeps it O(1) per step; the window is recomputed by two passes
/// once every `window` steps so rounding cannot drift over hundreds of thousands of bars.
fn rolling_moments(values: &[f64], window: usize) -> Vec<Option<(f64, f64)>> {
    let mut out = vec![None; values.len()];
    let (mut n, mut mean, mut m2) = (0.0_f64, 0.0_f64, 0.0_f64);
    for i in 0..values.len() {
        let x = values[i];
        n += 1.0;
        let d = x - mean;
        mean += d / n;
        m2 += d * (x - mean);
        if i >= window {
            let old = values[i - window];
            n -= 1.0;
            let d = old - mean;
            mean -= d / n;
            m2 -= d * (old - mean);
        }
        if i + 1 >= window {
            if (i + 1) % window == 0 {
                let w = &values[i + 1 - window..=i];
                mean = w.iter().sum::<f64>() / window as f64;
                m2 = w.iter().map(|v| (v - mean) * (v - mean)).sum();
            }
            out[i] = Some((mean, m2.max(0.0)));
        }
    }
    out
}

/// Sample standard deviation (n − 1) of the last `window` 1-bar log returns ending at each bar; NaN until
/// `window` returns exist.
pub(crate) fn log_return_std(close: &[f64], window: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; close.len()];
    let returns: Vec<f64> = close.windows(2).map(|w| (w[1] / w[0]).ln()).collect();
    // returns[j] is the return of bar j + 1.
    for (j, m) in rolling_moments(&returns, window).into_iter().enumerate() {
        if let Some((_, m2)) = m {
            out[j + 1] = (m2 / (window as f64 - 1.0)).sqrt();
        }
    }
    out
}

/// Rolling mean and population standard deviation of the last `window` values; NaN before.
pub(crate) fn mean_std_population(values: &[f64], window: usize) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![f64::NAN; values.len()];
    let mut std = vec![f64::NAN; values.len()];
    for (i, m) in rolling_moments(values, window).into_iter().enumerate() {
        if let Some((mu, m2)) = m {
            mean[i] = mu;
            std[i] = (m2 / window as f64).sqrt();
        }
    }
    (mean, std)
}

/// For each position, the percentile (0–100, ties counted half) of `values[k]` among the previous
/// `window` values; NaN while fewer than `min_reference` previous values exist. O(n log n) by a Fenwick
/// tree over value ranks.
pub(crate) fn trailing_percentile(values: &[f64], window: usize, min_reference: usize) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.dedup();
    let rank = |v: f64| sorted.partition_point(|&s| s < v);
    let ranks: Vec<usize> = values.iter().map(|&v| rank(v)).collect();
    let mut tree = vec![0i64; sorted.len() + 1];
    let add = |tree: &mut Vec<i64>, r: usize, delta: i64| {
        let mut i = r + 1;
        while i < tree.len() {
            tree[i] += delta;
            i += i & i.wrapping_neg();
        }
    };
    let count_below = |tree: &Vec<i64>, r: usize| {
        // Number of stored values with rank < r.
        let mut i = r;
        let mut sum = 0;
        while i > 0 {
            sum += tree[i];
            i -= i & i.wrapping_neg();
        }
        sum
    };
    let mut out = vec![f64::NAN; values.len()];
    for k in 0..values.len() {
        let stored = k.min(window);
        if stored >= min_reference {
            let below = count_below(&tree, ranks[k]) as f64;
            let equal = (count_below(&tree, ranks[k] + 1) as f64) - below;
            out[k] = 100.0 * (below + 0.5 * equal) / stored as f64;
        }
        add(&mut tree, ranks[k], 1);
        if k >= window {
            add(&mut tree, ranks[k - window], -1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_extremes_match_a_direct_scan() {
        let values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
        let ends = [2, 3, 4, 5, 6, 7, NO_END, NO_END];
        let max = forward_extreme(&values, &ends, true);
        let min = forward_extreme(&values, &ends, false);
        for i in 0..6 {
            let window = &values[i + 1..=ends[i]];
            assert_eq!(max[i], window.iter().cloned().fold(f64::MIN, f64::max));
            assert_eq!(min[i], window.iter().cloned().fold(f64::MAX, f64::min));
        }
        assert!(max[6].is_nan());
    }

    #[test]
    fn moments_match_two_pass_on_large_prices() {
        let values: Vec<f64> = (0..500).map(|i| 40_000.0 + ((i * 37) % 101) as f64 * 0.01).collect();
        let (mean, std) = mean_std_population(&values, 20);
        for i in 19..values.len() {
            let w = &values[i - 19..=i];
            let m = w.iter().sum::<f64>() / 20.0;
            let s = (w.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 20.0).sqrt();
            assert!((mean[i] - m).abs() < 1e-9, "mean at {i}");
            assert!((std[i] - s).abs() < 1e-9 * s.max(1.0), "std at {i}: {} vs {s}", std[i]);
        }
    }

    #[test]
    fn trailing_percentile_counts_ties_half() {
        let values = [1.0, 2.0, 2.0, 3.0, 0.5];
        let p = trailing_percentile(&values, 3, 2);
        assert!(p[0].is_nan() && p[1].is_nan());
        assert_eq!(p[2], 100.0 * (1.0 + 0.5) / 2.0); // among [1, 2]: one below, one equal
        assert_eq!(p[3], 100.0); // among [1, 2, 2]
        assert_eq!(p[4], 0.0); // among [2, 2, 3]
    }
}
