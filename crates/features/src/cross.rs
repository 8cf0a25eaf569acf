//! Cross-sectional features for multi-symbol data (e.g. the S&P 500 daily file): on each date, a
//! feature's rank and z-score across the symbols that have a value that date. Both use only
//! values of that same date, so they add no look-ahead to the features they are built from.

use std::collections::HashMap;

use crate::FeatureFrame;

/// Per-symbol output columns aligned with that symbol's frame rows.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossSection {
    /// Rank scaled to [0, 1] (0 = lowest; ties share their average rank); NaN when the value is
    /// missing or fewer than two symbols have one that date.
    pub rank: Vec<f64>,
    /// (x − mean) / population σ across the symbols that date; NaN as for rank, 0 when σ = 0.
    pub zscore: Vec<f64>,
}

/// Rank and z-score of `column` across `frames` for every timestamp. Errors name a missing column.
pub fn cross_section(frames: &[FeatureFrame], column: &str) -> Result<Vec<CrossSection>, String> {
    let mut by_ts: HashMap<i64, Vec<(usize, usize, f64)>> = HashMap::new();
    for (f, frame) in frames.iter().enumerate() {
        let k = frame.names.iter().position(|n| n == column).ok_or_else(|| format!("no feature column {column:?}"))?;
        for (row, (&ts, &v)) in frame.ts.iter().zip(&frame.columns[k]).enumerate() {
            if v.is_finite() {
                by_ts.entry(ts).or_default().push((f, row, v));
            }
        }
    }
    let mut out: Vec<CrossSection> = frames
        .iter()
        .map(|fr| CrossSection { rank: vec![f64::NAN; fr.ts.len()], zscore: vec![f64::NAN; fr.ts.len()] })
        .collect();
    for (_, mut group) in by_ts {
        let n = group.len();
        if n < 2 {
            continue;
        }
        let mean = group.iter().map(|g| g.2).sum::<f64>() / n as f64;
        let sd = (group.iter().map(|g| (g.2 - mean) * (g.2 - mean)).sum::<f64>() / n as f64).sqrt();
        group.sort_by(|a, b| a.2.total_cmp(&b.2));
        let mut i = 0;
        while i < n {
            let mut j = i;
            while j + 1 < n && group[j + 1].2 == group[i].2 {
                j += 1;
            }
            // Average zero-based rank of the tie block, scaled to [0, 1].
            let rank = (i + j) as f64 / 2.0 / (n - 1) as f64;
            for &(f, row, v) in &group[i..=j] {
                out[f].rank[row] = rank;
                out[f].zscore[row] = if sd > 0.0 { (v - mean) / sd } else { 0.0 };
            }
            i = j + 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ts: &[i64], v: &[f64]) -> FeatureFrame {
        FeatureFrame { ts: ts.to_vec(), names: vec!["x".into()], columns: vec![v.to_vec()] }
    }

    #[test]
    fn ranks_and_zscores_by_date_with_ties_and_gaps() {
        // Date 1: values 1, 3, 3 → ranks 0, 0.75, 0.75; mean 7/3, σ = sqrt(8/9).
        // Date 2: only symbols A and C → ranks by two values. Date 3: only A → NaN.
        let a = frame(&[1, 2, 3], &[1.0, 5.0, 9.0]);
        let b = frame(&[1], &[3.0]);
        let c = frame(&[1, 2], &[3.0, f64::NAN]);
        let d = frame(&[2], &[2.0]);
        let out = cross_section(&[a, b, c, d], "x").unwrap();
        assert_eq!((out[0].rank[0], out[0].rank[1]), (0.0, 1.0));
        assert!(out[0].rank[2].is_nan());
        assert_eq!((out[1].rank[0], out[2].rank[0]), (0.75, 0.75));
        let sd = (8.0f64 / 9.0).sqrt();
        assert!((out[0].zscore[0] - (1.0 - 7.0 / 3.0) / sd).abs() < 1e-12);
        assert!(out[2].rank[1].is_nan(), "missing value");
        assert_eq!(out[3].rank[0], 0.0);
        assert_eq!((out[0].zscore[1], out[3].zscore[0]), (1.0, -1.0));
        assert!(cross_section(&[frame(&[1], &[1.0])], "y").unwrap_err().contains("\"y\""));
    }
}
