//! Time-ordered splitters that purge and embargo around label windows.
//!
//! Every row has a label interval `[start, end]`: the time of the bar it labels and the time of the
//! last bar its label read (from `quantpipe-labels`, or `start + declared look-ahead`). A training row
//! is *purged* when its interval overlaps a test block's span, so no training label has seen the test
//! period; rows starting within the *embargo* after a test block are dropped too, since features with
//! memory (rolling windows) still carry the test period into them.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// Label intervals of the rows, in time order (`start` non-decreasing; several symbols may share a time).
#[derive(Debug, Clone, Copy)]
pub struct LabelTimes<'a> {
    pub start: &'a [i64],
    pub end: &'a [i64],
}

impl<'a> LabelTimes<'a> {
    pub fn new(start: &'a [i64], end: &'a [i64]) -> Result<LabelTimes<'a>, EvalError> {
        if start.len() != end.len() {
            return Err(EvalError::LengthMismatch {
                what: "label start and end times".into(),
                left: start.len(),
                right: end.len(),
            });
        }
        if let Some(i) = start.windows(2).position(|w| w[1] < w[0]) {
            return Err(EvalError::InvalidInput(format!(
                "rows must be in time order: row {} starts before row {i}",
                i + 1
            )));
        }
        if let Some(i) = start.iter().zip(end).position(|(s, e)| e < s) {
            return Err(EvalError::InvalidInput(format!("row {i}: its label ends before it starts")));
        }
        Ok(LabelTimes { start, end })
    }
    pub fn len(&self) -> usize {
        self.start.len()
    }
    pub fn is_empty(&self) -> bool {
        self.start.is_empty()
    }
}

/// One split: training and test rows as sorted index ranges (compact even for millions of rows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Split {
    pub train: Vec<Range<usize>>,
    pub test: Vec<Range<usize>>,
    /// Training rows removed because their labels overlap a test block (purge) or follow it (embargo).
    pub purged: usize,
    pub embargoed: usize,
}

impl Split {
    pub fn train_len(&self) -> usize {
        self.train.iter().map(|r| r.len()).sum()
    }
    pub fn test_len(&self) -> usize {
        self.test.iter().map(|r| r.len()).sum()
    }
    pub fn train_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.train.iter().flat_map(|r| r.clone())
    }
    pub fn test_indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.test.iter().flat_map(|r| r.clone())
    }
}

/// A validation scheme, as written in a pipeline file: `[validation] scheme = "purged_kfold"`, ….
/// Durations are milliseconds here; configuration layers parse `"12h"`-style strings into them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scheme {
    /// The last `test_fraction` of the time range is the test set; `gap_ms` more is left out before it.
    Holdout { test_fraction: f64, gap_ms: i64 },
    /// Train on the past, test on the next `test_ms`, step forward by `test_ms`. `train_ms = None`
    /// means an expanding window.
    WalkForward { train_ms: Option<i64>, test_ms: i64, min_train_rows: usize },
    /// `folds` contiguous blocks; each is the test set once, with purging and an embargo.
    PurgedKfold { folds: usize, embargo_ms: i64 },
    /// Combinatorial purged CV: `groups` blocks, every choice of `test_groups` of them is a test set.
    Cpcv { groups: usize, test_groups: usize, embargo_ms: i64 },
}

impl Scheme {
    pub fn splits(&self, times: LabelTimes) -> Result<Vec<Split>, EvalError> {
        match *self {
            Scheme::Holdout { test_fraction, gap_ms } => holdout(times, test_fraction, gap_ms).map(|s| vec![s]),
            Scheme::WalkForward { train_ms, test_ms, min_train_rows } => {
                walk_forward(times, train_ms, test_ms, min_train_rows)
            }
            Scheme::PurgedKfold { folds, embargo_ms } => purged_kfold(times, folds, embargo_ms),
            Scheme::Cpcv { groups, test_groups, embargo_ms } => Ok(cpcv(times, groups, test_groups, embargo_ms)?.0),
        }
    }
}

/// Row boundaries of `groups` contiguous blocks of near-equal size, moved so that rows sharing a time
/// (several symbols) never straddle two blocks.
fn block_bounds(times: LabelTimes, groups: usize) -> Result<Vec<usize>, EvalError> {
    let n = times.len();
    if groups < 2 || groups > n {
        return Err(EvalError::InvalidInput(format!(
            "{groups} blocks cannot be made from {n} rows (need 2 ≤ blocks ≤ rows)"
        )));
    }
    let mut bounds = vec![0];
    for g in 1..groups {
        let mut b = (n * g / groups).max(*bounds.last().unwrap());
        while b < n && b > 0 && times.start[b] == times.start[b - 1] {
            b += 1;
        }
        bounds.push(b);
    }
    bounds.push(n);
    if bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(EvalError::InvalidInput(format!(
            "{groups} blocks leave one empty: too few distinct times ({n} rows)"
        )));
    }
    Ok(bounds)
}

/// Training rows = all rows outside the test blocks, minus those purged around each test block and
/// embargoed after it.
fn purged_train(times: LabelTimes, test_blocks: &[Range<usize>], embargo_ms: i64) -> (Vec<Range<usize>>, usize, usize) {
    let n = times.len();
    // 0 = train, 1 = test, 2 = purged, 3 = embargoed
    let mut state = vec![0u8; n];
    for block in test_blocks {
        state[block.clone()].iter_mut().for_each(|s| *s = 1);
    }
    let longest_label = max_label_span(times);
    for block in test_blocks {
        let span_start = times.start[block.start];
        let span_end = block.clone().map(|i| times.end[i]).max().unwrap_or(span_start);
        // Before the block: a row overlaps when its label ends at or after the block starts. Ends are not
        // sorted (barrier labels end early or late), so scan back until labels could not reach.
        for i in (0..block.start).rev() {
            if state[i] == 0 && times.end[i] >= span_start {
                state[i] = 2;
            }
            // Past this row's start, only labels ending after span_start matter; stop once rows are
            // older than the longest label could reach back.
            if span_start - times.start[i] > longest_label {
                break;
            }
        }
        // After the block: rows starting inside the span are purged, then the embargo.
        for (slot, &s) in state[block.end..n].iter_mut().zip(&times.start[block.end..n]) {
            if s <= span_end {
                if *slot == 0 {
                    *slot = 2;
                }
            } else if s <= span_end + embargo_ms {
                if *slot == 0 {
                    *slot = 3;
                }
            } else {
                break;
            }
        }
    }
    let purged = state.iter().filter(|&&s| s == 2).count();
    let embargoed = state.iter().filter(|&&s| s == 3).count();
    (ranges_where(&state, 0), purged, embargoed)
}

fn max_label_span(times: LabelTimes) -> i64 {
    times.start.iter().zip(times.end).map(|(s, e)| e - s).max().unwrap_or(0)
}

fn ranges_where(state: &[u8], wanted: u8) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < state.len() {
        if state[i] == wanted {
            let start = i;
            while i < state.len() && state[i] == wanted {
                i += 1;
            }
            out.push(start..i);
        } else {
            i += 1;
        }
    }
    out
}

pub fn purged_kfold(times: LabelTimes, folds: usize, embargo_ms: i64) -> Result<Vec<Split>, EvalError> {
    check_embargo(embargo_ms)?;
    let bounds = block_bounds(times, folds)?;
    Ok((0..folds)
        .map(|k| {
            let test: Vec<Range<usize>> = std::iter::once(bounds[k]..bounds[k + 1]).collect();
            let (train, purged, embargoed) = purged_train(times, &test, embargo_ms);
            Split { train, test, purged, embargoed }
        })
        .collect())
}

fn check_embargo(embargo_ms: i64) -> Result<(), EvalError> {
    if embargo_ms < 0 {
        return Err(EvalError::InvalidInput(format!("embargo {embargo_ms} ms: expected ≥ 0")));
    }
    Ok(())
}

pub fn holdout(times: LabelTimes, test_fraction: f64, gap_ms: i64) -> Result<Split, EvalError> {
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(EvalError::InvalidInput(format!("test_fraction {test_fraction}: expected a number in (0, 1)")));
    }
    check_embargo(gap_ms)?;
    let n = times.len();
    let mut cut = ((n as f64) * (1.0 - test_fraction)).round() as usize;
    while cut > 0 && cut < n && times.start[cut] == times.start[cut - 1] {
        cut += 1;
    }
    if cut == 0 || cut >= n {
        return Err(EvalError::InvalidInput(format!("a {test_fraction} holdout of {n} rows leaves a side empty")));
    }
    let test_start = times.start[cut];
    let mut purged = 0;
    let train: Vec<usize> = (0..cut)
        .filter(|&i| {
            let keep = times.end[i] < test_start - gap_ms;
            purged += usize::from(!keep);
            keep
        })
        .collect();
    Ok(Split { train: compact(&train), test: std::iter::once(cut..n).collect(), purged, embargoed: 0 })
}

fn compact(indices: &[usize]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for &i in indices {
        match out.last_mut() {
            Some(r) if r.end == i => r.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// Walk-forward: test windows of `test_ms` one after another from the first point where `min_train_rows`
/// purged training rows exist; each trains on everything before it (or the last `train_ms`), minus rows
/// whose labels reach into the test window.
pub fn walk_forward(
    times: LabelTimes,
    train_ms: Option<i64>,
    test_ms: i64,
    min_train_rows: usize,
) -> Result<Vec<Split>, EvalError> {
    if test_ms <= 0 || train_ms.is_some_and(|t| t <= 0) {
        return Err(EvalError::InvalidInput("walk-forward windows must be positive durations".into()));
    }
    if times.is_empty() {
        return Err(EvalError::Empty("walk-forward rows".into()));
    }
    let n = times.len();
    let first = times.start[0];
    let last = times.start[n - 1];
    let mut splits = Vec::new();
    // Test windows are aligned to multiples of test_ms from the first row's time.
    let mut window_start = first + test_ms;
    while window_start <= last {
        let window_end = window_start + test_ms;
        let test_from = times.start.partition_point(|&s| s < window_start);
        let test_to = times.start.partition_point(|&s| s < window_end);
        if test_from < test_to {
            let train_from = match train_ms {
                Some(t) => times.start.partition_point(|&s| s < window_start - t),
                None => 0,
            };
            let mut purged = 0;
            let train: Vec<usize> = (train_from..test_from)
                .filter(|&i| {
                    let keep = times.end[i] < window_start;
                    purged += usize::from(!keep);
                    keep
                })
                .collect();
            if train.len() >= min_train_rows.max(1) {
                splits.push(Split {
                    train: compact(&train),
                    test: std::iter::once(test_from..test_to).collect(),
                    purged,
                    embargoed: 0,
                });
            }
        }
        window_start = window_end;
    }
    if splits.is_empty() {
        return Err(EvalError::InvalidInput(format!(
            "walk-forward made no split: {n} rows span {} ms; need at least {min_train_rows} training rows before a test window",
            last - first
        )));
    }
    Ok(splits)
}

/// Combinatorial purged cross-validation (López de Prado): `groups` blocks; every choice of
/// `test_groups` of them is one split. Returns the splits and the backtest paths: each path is, for
/// every block in order, the index of the split whose test predictions cover that block. There are
/// C(groups − 1, test_groups − 1) paths.
pub fn cpcv(
    times: LabelTimes,
    groups: usize,
    test_groups: usize,
    embargo_ms: i64,
) -> Result<(Vec<Split>, Vec<Vec<usize>>), EvalError> {
    check_embargo(embargo_ms)?;
    if test_groups == 0 || test_groups >= groups {
        return Err(EvalError::InvalidInput(format!(
            "test_groups {test_groups}: expected 1 ≤ test_groups < groups ({groups})"
        )));
    }
    let combos = combinations(groups, test_groups);
    if combos.len() > 10_000 {
        return Err(EvalError::InvalidInput(format!(
            "C({groups}, {test_groups}) = {} splits is too many",
            combos.len()
        )));
    }
    let bounds = block_bounds(times, groups)?;
    let splits = combos
        .iter()
        .map(|combo| {
            let test: Vec<Range<usize>> = combo.iter().map(|&g| bounds[g]..bounds[g + 1]).collect();
            let (train, purged, embargoed) = purged_train(times, &test, embargo_ms);
            // Adjacent test blocks read as one range.
            let mut merged: Vec<Range<usize>> = Vec::new();
            for r in test {
                match merged.last_mut() {
                    Some(m) if m.end == r.start => m.end = r.end,
                    _ => merged.push(r),
                }
            }
            Split { train, test: merged, purged, embargoed }
        })
        .collect();
    // Path p takes, for each block, the p-th split (in combination order) that tests it.
    let paths_count = combos.iter().filter(|c| c.contains(&0)).count();
    let mut paths = vec![Vec::with_capacity(groups); paths_count];
    for g in 0..groups {
        let testing: Vec<usize> = (0..combos.len()).filter(|&s| combos[s].contains(&g)).collect();
        for (p, path) in paths.iter_mut().enumerate() {
            path.push(testing[p]);
        }
    }
    Ok((splits, paths))
}

pub(crate) fn combinations(n: usize, k: usize) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut current: Vec<usize> = (0..k).collect();
    if k == 0 || k > n {
        return out;
    }
    loop {
        out.push(current.clone());
        let Some(i) = (0..k).rev().find(|&i| current[i] < n - k + i) else {
            return out;
        };
        current[i] += 1;
        for j in i + 1..k {
            current[j] = current[j - 1] + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 rows one minute apart whose labels look 5 minutes ahead.
    fn rows() -> (Vec<i64>, Vec<i64>) {
        let start: Vec<i64> = (0..100).map(|i| i * 60_000).collect();
        let end = start.iter().map(|s| s + 5 * 60_000).collect();
        (start, end)
    }

    #[test]
    fn kfold_purges_overlapping_labels_and_embargoes() {
        let (start, end) = rows();
        let times = LabelTimes::new(&start, &end).unwrap();
        let splits = purged_kfold(times, 5, 2 * 60_000).unwrap();
        assert_eq!(splits.len(), 5);
        let middle = &splits[2]; // test rows 40..60
        assert_eq!(middle.test, vec![40..60]);
        // Rows 35..40 have labels reaching minute 40 or later; rows 60..65 start inside the test span
        // (which ends at minute 64); 65..67 are the 2-minute embargo.
        assert_eq!(middle.train, vec![0..35, 67..100]);
        assert_eq!((middle.purged, middle.embargoed), (10, 2));
        for s in &splits {
            for i in s.train_indices() {
                for j in s.test_indices() {
                    assert!(end[i] < start[j] || start[i] > end[j], "train {i} overlaps test {j}");
                }
            }
        }
    }

    #[test]
    fn walk_forward_rolling_window() {
        let (start, end) = rows();
        let times = LabelTimes::new(&start, &end).unwrap();
        // Train on the last 30 minutes, test the next 10, refit every 10.
        let splits = walk_forward(times, Some(30 * 60_000), 10 * 60_000, 10).unwrap();
        let first = &splits[0];
        assert_eq!(first.test, vec![20..30]);
        assert_eq!(first.train, vec![0..15]); // labels of rows 15..20 reach into minute 20+
        let later = &splits[3];
        assert_eq!(later.test, vec![50..60]);
        assert_eq!(later.train, vec![20..45]);
        assert!(splits.iter().all(|s| s.train.iter().all(|r| r.end <= s.test[0].start)));
    }

    #[test]
    fn cpcv_paths_cover_every_block_once() {
        let (start, end) = rows();
        let times = LabelTimes::new(&start, &end).unwrap();
        let (splits, paths) = cpcv(times, 6, 2, 0).unwrap();
        assert_eq!(splits.len(), 15);
        assert_eq!(paths.len(), 5); // C(5, 1)
        for path in &paths {
            assert_eq!(path.len(), 6);
            for (g, &s) in path.iter().enumerate() {
                let block_start = [0, 16, 33, 50, 66, 83][g];
                assert!(splits[s].test_indices().any(|i| i == block_start), "split {s} tests block {g}");
            }
        }
        // Every (block, split) pair is used by exactly one path.
        let mut used: Vec<(usize, usize)> = paths.iter().flat_map(|p| p.iter().copied().enumerate()).collect();
        used.sort();
        used.dedup();
        assert_eq!(used.len(), 30);
    }

    #[test]
    fn holdout_leaves_a_gap() {
        let (start, end) = rows();
        let times = LabelTimes::new(&start, &end).unwrap();
        let split = holdout(times, 0.2, 60_000).unwrap();
        assert_eq!(split.test, vec![80..100]);
        // Labels must end before minute 80 − 1.
        assert_eq!(split.train, vec![0..74]);
    }

    #[test]
    fn unsorted_rows_are_refused() {
        assert!(LabelTimes::new(&[2, 1], &[3, 3]).is_err());
        assert!(LabelTimes::new(&[1, 2], &[3]).is_err());
    }
}
