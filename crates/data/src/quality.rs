//! Validation of one symbol's bars and its quality report.
//!
//! Two kinds of problem. Fatal ones stop the ingest (unparseable values, non-finite values,
//! conflicting duplicates); everything else is stored and flagged. `strict` makes every problem
//! fatal; `repair` resolves what a stated rule can resolve and reports each change. The score
//! and its weights are documented in `docs/quality.md`.

use quantpipe_core::calendar::Absence;
use quantpipe_core::time::format_iso;
use quantpipe_core::{Bars, MarketCalendar, Symbol, Timeframe};
use serde::{Deserialize, Serialize};

use crate::read::RawSeries;

const MAX_EXAMPLES: usize = 5;

/// One problem occurrence: where it is in the source file and what is wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ts: Option<String>,
    pub detail: String,
}

impl Example {
    pub fn at_line(line: u64, detail: impl Into<String>) -> Example {
        // Line 0 stands for "not from a source file" (rows already in the store).
        Example { line: (line > 0).then_some(line), ts: None, detail: detail.into() }
    }
    pub fn with_ts(mut self, ts: i64) -> Example {
        self.ts = Some(format_iso(ts));
        self
    }
    /// `line 8 (2023-02-01T00:06:00Z): column low: "abc" is not a number`.
    pub fn describe(&self) -> String {
        let at = self.locate();
        if at.is_empty() {
            self.detail.clone()
        } else {
            format!("{at}: {}", self.detail)
        }
    }

    pub fn locate(&self) -> String {
        match (&self.line, &self.ts) {
            (Some(l), Some(t)) => format!("line {l} ({t})"),
            (Some(l), None) => format!("line {l}"),
            (None, Some(t)) => t.clone(),
            (None, None) => String::new(),
        }
    }
}

/// A count with the first few examples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProblemTally {
    pub count: u64,
    pub examples: Vec<Example>,
}

impl ProblemTally {
    pub fn add(&mut self, example: Example) {
        self.count += 1;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(example);
        }
    }

    /// Adds the problems of `later`, found after these.
    pub fn append(&mut self, later: ProblemTally) {
        self.count += later.count;
        let room = MAX_EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(later.examples.into_iter().take(room));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    UnparseableValues,
    NonFiniteValues,
    ConflictingDuplicates,
    ExactDuplicates,
    UnsortedRows,
    IrregularSpacing,
    NonPositivePrices,
    OhlcInconsistent,
    Gaps,
    ZeroVolume,
    ExtremeReturns,
    StaleRuns,
}

impl CheckKind {
    pub fn label(self) -> &'static str {
        match self {
            CheckKind::UnparseableValues => "unparseable values",
            CheckKind::NonFiniteValues => "NaN / infinite values",
            CheckKind::ConflictingDuplicates => "conflicting duplicate timestamps",
            CheckKind::ExactDuplicates => "exact duplicate rows",
            CheckKind::UnsortedRows => "rows out of time order",
            CheckKind::IrregularSpacing => "timestamps off the bar grid",
            CheckKind::NonPositivePrices => "non-positive prices",
            CheckKind::OhlcInconsistent => "OHLC inconsistencies",
            CheckKind::Gaps => "gaps (missing bars while the market was open)",
            CheckKind::ZeroVolume => "zero-volume bars",
            CheckKind::ExtremeReturns => "extreme returns",
            CheckKind::StaleRuns => "stale runs (flat bars)",
        }
    }
}

/// What was done about a check's findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing found.
    None,
    /// Stored and flagged in the report.
    Flagged,
    /// The ingest stops; `hint` names the flag that would resolve it.
    Fatal { hint: String },
    /// Changed by a stated rule, e.g. "dropped", "sorted by time", "kept first row".
    Repaired { rule: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub kind: CheckKind,
    pub count: u64,
    pub action: Action,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub examples: Vec<Example>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GapStats {
    /// Runs of missing bars while the market was open.
    pub gaps: u64,
    pub missing_bars: u64,
    /// Absences explained by the calendar (weekends, holidays, overnight).
    pub closures: u64,
    /// The largest gaps, biggest first.
    pub largest: Vec<Example>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deduction {
    /// What the points are for: a check's label, or "rows changed by repairs".
    pub component: String,
    /// Share of bars affected (missing bars for gaps).
    pub rate: f64,
    pub points: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    pub symbol: Symbol,
    pub timeframe: String,
    pub timeframe_inferred: bool,
    pub calendar: MarketCalendar,
    pub calendar_inferred: bool,
    pub rows_read: u64,
    pub rows_kept: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    pub checks: Vec<Check>,
    pub gaps: GapStats,
    /// 0–100; 100 minus the deductions.
    pub score: f64,
    pub deductions: Vec<Deduction>,
}

impl QualityReport {
    pub fn fatal(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| matches!(c.action, Action::Fatal { .. }))
    }
    pub fn check(&self, kind: CheckKind) -> Option<&Check> {
        self.checks.iter().find(|c| c.kind == kind)
    }
    pub fn count(&self, kind: CheckKind) -> u64 {
        self.check(kind).map_or(0, |c| c.count)
    }
}

/// How conflicting duplicates (same timestamp, different values) are resolved under `--repair`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConflictRule {
    KeepFirst,
    KeepLast,
    Drop,
}

impl ConflictRule {
    pub fn parse(raw: &str) -> Option<ConflictRule> {
        match raw {
            "keep-first" => Some(Self::KeepFirst),
            "keep-last" => Some(Self::KeepLast),
            "drop" => Some(Self::Drop),
            _ => None,
        }
    }
    fn describe(self) -> &'static str {
        match self {
            Self::KeepFirst => "kept the first row in file order",
            Self::KeepLast => "kept the last row in file order",
            Self::Drop => "dropped every row of the timestamp",
        }
    }
}

/// The rules of one validation.
#[derive(Debug, Clone)]
pub struct Policy {
    pub strict: bool,
    pub repair: bool,
    pub on_conflict: Option<ConflictRule>,
    pub timeframe: Option<Timeframe>,
    pub calendar: Option<MarketCalendar>,
    /// |robust z| of a log return above which it is flagged as extreme.
    pub extreme_return_z: f64,
    /// Minimum number of consecutive flat bars (O = H = L = C = previous close) that is a stale run.
    pub stale_run_min: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            strict: false,
            repair: false,
            on_conflict: None,
            timeframe: None,
            calendar: None,
            extreme_return_z: 30.0,
            stale_run_min: 10,
        }
    }
}

/// The outcome of validating one series: bars ready to store (sorted, deduplicated) and the report.
#[derive(Debug, Clone)]
pub struct Validated {
    pub bars: Bars,
    pub lines: Vec<u64>,
    pub timeframe: Timeframe,
    pub report: QualityReport,
}

pub fn validate(raw: RawSeries, policy: &Policy) -> Result<Validated, String> {
    let rows_read = raw.bars.len() as u64 + raw.unparseable.count + raw.non_finite.count;
    let mut checks = Vec::new();
    let fatal_or = |repairable: bool, hint: &str, rule: &str| {
        if policy.repair && repairable {
            Action::Repaired { rule: rule.to_string() }
        } else {
            Action::Fatal { hint: hint.to_string() }
        }
    };
    for (kind, tally) in
        [(CheckKind::UnparseableValues, &raw.unparseable), (CheckKind::NonFiniteValues, &raw.non_finite)]
    {
        let action = if tally.count == 0 {
            Action::None
        } else {
            fatal_or(true, "--repair drops these rows and reports each", "rows dropped")
        };
        checks.push(Check { kind, count: tally.count, action, examples: tally.examples.clone() });
    }

    // Sort by time (stable, so duplicates keep their file order).
    let RawSeries { symbol, bars, lines, .. } = raw;
    let mut out_of_order = ProblemTally::default();
    let mut repeated_ts = false;
    for i in 1..bars.len() {
        if bars.ts[i] < bars.ts[i - 1] {
            out_of_order.add(
                Example::at_line(lines[i], format!("comes after {}", format_iso(bars.ts[i - 1]))).with_ts(bars.ts[i]),
            );
        }
        repeated_ts |= bars.ts[i] == bars.ts[i - 1];
    }
    // Most files are strictly increasing: then there is nothing to sort or deduplicate, and the
    // row order below (two index vectors of the series' length) is not built.
    let strictly_increasing = out_of_order.count == 0 && !repeated_ts;
    let mut order: Vec<usize> = if strictly_increasing { Vec::new() } else { (0..bars.len()).collect() };
    if out_of_order.count > 0 {
        order.sort_by_key(|&i| bars.ts[i]);
    }
    checks.push(Check {
        kind: CheckKind::UnsortedRows,
        count: out_of_order.count,
        action: flagged_or_strict(out_of_order.count, policy, || Action::Repaired { rule: "sorted by time".into() }),
        examples: out_of_order.examples,
    });

    // Duplicates: groups of equal timestamps in sorted order.
    let mut exact = ProblemTally::default();
    let mut conflicts = ProblemTally::default();
    let mut keep = Vec::with_capacity(order.len());
    let mut g = 0;
    while g < order.len() {
        let mut end = g + 1;
        while end < order.len() && bars.ts[order[end]] == bars.ts[order[g]] {
            end += 1;
        }
        let group = &order[g..end];
        if group.len() == 1 {
            keep.push(group[0]);
        } else if group[1..].iter().all(|&j| bars.rows_identical(group[0], j)) {
            for &j in &group[1..] {
                exact.add(Example::at_line(lines[j], format!("same as line {}", lines[group[0]])).with_ts(bars.ts[j]));
            }
            keep.push(group[0]);
        } else {
            let other = *group[1..].iter().find(|&&j| !bars.rows_identical(group[0], j)).unwrap_or(&group[1]);
            let line_list: Vec<String> = group.iter().map(|&j| lines[j].to_string()).collect();
            conflicts.add(
                Example::at_line(
                    lines[group[0]],
                    format!(
                        "lines {} share this timestamp and differ in {}",
                        line_list.join(", "),
                        bars.differing_columns(group[0], other).join(", ")
                    ),
                )
                .with_ts(bars.ts[group[0]]),
            );
            match policy.on_conflict {
                Some(ConflictRule::KeepFirst) if policy.repair => keep.push(group[0]),
                Some(ConflictRule::KeepLast) if policy.repair => keep.push(group[group.len() - 1]),
                _ => {}
            }
        }
        g = end;
    }
    checks.push(Check {
        kind: CheckKind::ExactDuplicates,
        count: exact.count,
        action: flagged_or_strict(exact.count, policy, || Action::Repaired { rule: "dropped the repeats".into() }),
        examples: exact.examples,
    });
    let conflict_action = match (conflicts.count, policy.on_conflict) {
        (0, _) => Action::None,
        (_, Some(rule)) if policy.repair => Action::Repaired { rule: rule.describe().into() },
        _ => Action::Fatal {
            hint: "never resolved silently: --repair --on-conflict keep-first|keep-last|drop picks a rule".into(),
        },
    };
    checks.push(Check {
        kind: CheckKind::ConflictingDuplicates,
        count: conflicts.count,
        action: conflict_action,
        examples: conflicts.examples,
    });

    // Most files are clean and sorted: keep the columns as they are instead of copying them.
    let identity = strictly_increasing || (keep.len() == bars.len() && keep.iter().enumerate().all(|(k, &i)| k == i));
    let (bars, lines) = if identity {
        (bars, lines)
    } else {
        let lines: Vec<u64> = keep.iter().map(|&i| lines[i]).collect();
        (bars.select(&keep), lines)
    };

    // The return and flat-run checks need nothing the row checks compute: on a long series they run
    // on a second core meanwhile (for a year of 1-minute bars they are half of the validation).
    let returns_and_runs =
        || (extreme_returns(&bars, &lines, policy.extreme_return_z), stale_runs(&bars, &lines, policy.stale_run_min));
    let (row_checks, (extreme, (stale, stale_rows))) = std::thread::scope(|scope| {
        let beside = (bars.len() >= PARALLEL_CHECK_ROWS).then(|| scope.spawn(returns_and_runs));
        let row_checks = check_rows(&symbol, &bars, &lines, policy);
        let other = match beside {
            Some(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            None => returns_and_runs(),
        };
        (row_checks, other)
    });
    let RowChecks { timeframe, calendar, irregular, non_positive, ohlc, zero_volume, gaps } = row_checks?;
    let n = bars.len();

    let mut push_flag = |kind, tally: ProblemTally| {
        let action = flagged_or_strict(tally.count, policy, || Action::Flagged);
        checks.push(Check { kind, count: tally.count, action, examples: tally.examples });
    };
    push_flag(CheckKind::IrregularSpacing, irregular);
    push_flag(CheckKind::NonPositivePrices, non_positive);
    push_flag(CheckKind::OhlcInconsistent, ohlc);
    push_flag(CheckKind::Gaps, ProblemTally { count: gaps.gaps, examples: gaps.largest.clone() });
    push_flag(CheckKind::ZeroVolume, zero_volume);
    push_flag(CheckKind::ExtremeReturns, extreme);
    push_flag(CheckKind::StaleRuns, stale);

    let (score, deductions) = score(&checks, n as u64, rows_read, &gaps, stale_rows);
    let report = QualityReport {
        symbol,
        timeframe: timeframe.to_string(),
        timeframe_inferred: policy.timeframe.is_none(),
        calendar,
        calendar_inferred: policy.calendar.is_none(),
        rows_read,
        rows_kept: n as u64,
        first: bars.ts.first().map(|&t| format_iso(t)),
        last: bars.ts.last().map(|&t| format_iso(t)),
        checks,
        gaps,
        score,
        deductions,
    };
    Ok(Validated { bars, lines, timeframe, report })
}

/// Series at least this long run the return and flat-run checks on a second thread.
const PARALLEL_CHECK_ROWS: usize = 100_000;

/// What the per-row checks find, with the timeframe and calendar they judged the rows by.
struct RowChecks {
    timeframe: Timeframe,
    calendar: MarketCalendar,
    irregular: ProblemTally,
    non_positive: ProblemTally,
    ohlc: ProblemTally,
    zero_volume: ProblemTally,
    gaps: GapStats,
}

/// Timeframe and calendar (given or inferred), then prices, volumes, grid and gaps row by row.
fn check_rows(symbol: &Symbol, bars: &Bars, lines: &[u64], policy: &Policy) -> Result<RowChecks, String> {
    let inferred = infer_timeframe(&bars.ts);
    let timeframe = match (policy.timeframe, inferred) {
        (Some(given), Some(found)) if given.millis() > found.millis() => {
            return Err(format!(
                "{symbol}: --timeframe {given} but most bars are {found} apart; ingest as {found} and use `quantpipe data resample`"
            ))
        }
        (Some(given), _) => given,
        (None, Some(found)) => found,
        (None, None) => {
            return Err(format!("{symbol}: fewer than two distinct timestamps, so the timeframe is unknown: pass --timeframe"))
        }
    };
    let calendar = policy.calendar.unwrap_or_else(|| infer_calendar(&bars.ts, timeframe));

    let mut irregular = ProblemTally::default();
    let mut non_positive = ProblemTally::default();
    let mut ohlc = ProblemTally::default();
    let mut zero_volume = ProblemTally::default();
    for i in 0..bars.len() {
        let (o, h, l, c) = (bars.open[i], bars.high[i], bars.low[i], bars.close[i]);
        if o <= 0.0 || h <= 0.0 || l <= 0.0 || c <= 0.0 {
            non_positive
                .add(Example::at_line(lines[i], format!("open {o}, high {h}, low {l}, close {c}")).with_ts(bars.ts[i]));
        }
        if h < l || h < o.max(c) || l > o.min(c) {
            let what = if h < l {
                "high < low"
            } else if h < o.max(c) {
                "high below open/close"
            } else {
                "low above open/close"
            };
            ohlc.add(
                Example::at_line(lines[i], format!("{what}: open {o}, high {h}, low {l}, close {c}"))
                    .with_ts(bars.ts[i]),
            );
        }
        if bars.volume[i] == 0.0 {
            zero_volume.add(Example::at_line(lines[i], "volume 0").with_ts(bars.ts[i]));
        }
        if timeframe.floor(bars.ts[i]) != bars.ts[i] && timeframe.millis() < quantpipe_core::time::MS_PER_DAY * 7 {
            irregular.add(Example::at_line(lines[i], format!("not on the {timeframe} grid")).with_ts(bars.ts[i]));
        }
    }
    let gaps = gap_stats(bars, lines, timeframe, calendar, &mut irregular);
    Ok(RowChecks { timeframe, calendar, irregular, non_positive, ohlc, zero_volume, gaps })
}

/// The report of bars already in the store (merged from several files, or resampled): the same
/// checks, without source line numbers and never fatal.
pub fn assess(
    symbol: &Symbol,
    bars: &Bars,
    timeframe: Timeframe,
    calendar: MarketCalendar,
    policy: &Policy,
) -> Result<QualityReport, String> {
    let raw = RawSeries {
        symbol: symbol.clone(),
        bars: bars.clone(),
        lines: vec![0; bars.len()],
        unparseable: ProblemTally::default(),
        non_finite: ProblemTally::default(),
    };
    let policy = Policy { strict: false, timeframe: Some(timeframe), calendar: Some(calendar), ..policy.clone() };
    validate(raw, &policy).map(|v| v.report)
}

fn flagged_or_strict(count: u64, policy: &Policy, otherwise: impl FnOnce() -> Action) -> Action {
    if count == 0 {
        Action::None
    } else if policy.strict {
        Action::Fatal { hint: "fatal only because of --strict".into() }
    } else {
        otherwise()
    }
}

/// The most common positive spacing between consecutive (sorted) timestamps.
pub fn infer_timeframe(ts: &[i64]) -> Option<Timeframe> {
    infer_common_timeframe([ts])
}

/// The bar spacing of several series together (a multi-symbol file): the most common step over all
/// of them, so that a symbol with a handful of bars (two bars 60 days apart) gets the file's `1d`
/// rather than a timeframe of its own.
pub fn infer_common_timeframe<'a>(series: impl IntoIterator<Item = &'a [i64]>) -> Option<Timeframe> {
    let mut counts: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    for ts in series {
        // Steps come in long runs of the same value: count a run, then hash it once.
        let mut run = (0i64, 0usize);
        for w in ts.windows(2) {
            let d = w[1] - w[0];
            if d == run.0 {
                run.1 += 1;
            } else {
                if run.0 > 0 {
                    *counts.entry(run.0).or_default() += run.1;
                }
                run = (d, 1);
            }
        }
        if run.0 > 0 {
            *counts.entry(run.0).or_default() += run.1;
        }
    }
    counts.into_iter().max_by_key(|&(d, c)| (c, std::cmp::Reverse(d))).and_then(|(d, _)| Timeframe::from_millis(d))
}

/// Crypto when the data trades at weekends; else equity for daily or longer bars and FX intraday.
pub fn infer_calendar(ts: &[i64], timeframe: Timeframe) -> MarketCalendar {
    use quantpipe_core::time::{day_of, iso_weekday};
    let weekend = ts.iter().filter(|&&t| iso_weekday(day_of(t)) >= 6).count();
    let (first, last) = (ts.first().map_or(0, |&t| day_of(t)), ts.last().map_or(0, |&t| day_of(t)));
    let range_has_weekend = last - first >= 6 || (first..=last).any(|d| iso_weekday(d) >= 6);
    if !range_has_weekend {
        // Nothing to tell them apart: weekends and holidays only matter across a weekend.
        if timeframe.is_intraday() {
            MarketCalendar::Crypto
        } else {
            MarketCalendar::Equity
        }
    } else if ts.is_empty() || weekend * 50 > ts.len() {
        MarketCalendar::Crypto
    } else if timeframe.is_intraday() {
        MarketCalendar::Fx
    } else {
        MarketCalendar::Equity
    }
}

fn gap_stats(bars: &Bars, lines: &[u64], tf: Timeframe, cal: MarketCalendar, irregular: &mut ProblemTally) -> GapStats {
    let step = tf.millis();
    let mut stats = GapStats::default();
    let mut all: Vec<(u64, Example)> = Vec::new();
    for i in 1..bars.len() {
        let (prev, next) = (bars.ts[i - 1], bars.ts[i]);
        let d = next - prev;
        if d <= step {
            if d < step {
                irregular
                    .add(Example::at_line(lines[i], format!("only {} ms after the previous bar", d)).with_ts(next));
            }
            continue;
        }
        match cal.classify_absence(prev, next, tf) {
            Absence::Closure => stats.closures += 1,
            Absence::Missing(0) => {}
            Absence::Missing(k) => {
                stats.gaps += 1;
                stats.missing_bars += k;
                all.push((
                    k,
                    Example {
                        line: (lines[i] > 0).then_some(lines[i]),
                        ts: Some(format_iso(prev + step)),
                        detail: if k == 1 {
                            format!("1 bar missing at {}", format_iso(prev + step))
                        } else {
                            format!("{k} bars missing from {} to {}", format_iso(prev + step), format_iso(next - step))
                        },
                    },
                ));
            }
        }
    }
    all.sort_by_key(|g| std::cmp::Reverse(g.0));
    stats.largest = all.into_iter().take(MAX_EXAMPLES).map(|(_, e)| e).collect();
    stats
}

/// Log returns whose robust z-score (median and MAD) exceeds `z_max`.
fn extreme_returns(bars: &Bars, lines: &[u64], z_max: f64) -> ProblemTally {
    let mut tally = ProblemTally::default();
    let c = &bars.close;
    let returns: Vec<(usize, f64)> =
        (1..c.len()).filter(|&i| c[i] > 0.0 && c[i - 1] > 0.0).map(|i| (i, (c[i] / c[i - 1]).ln())).collect();
    if returns.len() < 30 {
        return tally;
    }
    let mut v: Vec<f64> = returns.iter().map(|r| r.1).collect();
    let median = median_in_place(&mut v);
    let mut dev: Vec<f64> = returns.iter().map(|r| (r.1 - median).abs()).collect();
    let mut scale = 1.4826 * median_in_place(&mut dev);
    if scale == 0.0 {
        // More than half the returns are identical (a quiet market): fall back to the mean deviation.
        scale = 1.2533 * dev.iter().sum::<f64>() / dev.len() as f64;
    }
    if scale == 0.0 {
        return tally;
    }
    for &(i, r) in &returns {
        let z = (r - median) / scale;
        if z.abs() > z_max {
            tally.add(Example::at_line(lines[i], format!("log return {r:.5} (robust z {z:.1})")).with_ts(bars.ts[i]));
        }
    }
    tally
}

fn median_in_place(v: &mut [f64]) -> f64 {
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    *m
}

/// Runs of at least `min_len` consecutive flat bars (open = high = low = close = previous close).
/// Returns the runs and the number of bars in them.
fn stale_runs(bars: &Bars, lines: &[u64], min_len: usize) -> (ProblemTally, u64) {
    let mut tally = ProblemTally::default();
    let mut rows = 0u64;
    let mut run_start = None;
    let n = bars.len();
    for i in 1..=n {
        let flat = i < n && {
            let p = bars.close[i - 1];
            bars.open[i] == p && bars.high[i] == p && bars.low[i] == p && bars.close[i] == p
        };
        match (flat, run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(s)) => {
                let len = i - s;
                if len >= min_len {
                    rows += len as u64;
                    tally.add(
                        Example::at_line(lines[s], format!("{len} flat bars at {}", bars.close[s])).with_ts(bars.ts[s]),
                    );
                }
                run_start = None;
            }
            _ => {}
        }
    }
    (tally, rows)
}

/// 100 minus a deduction per kind of problem: weight × min(1, rate × sensitivity). See docs/quality.md.
fn score(checks: &[Check], kept: u64, read: u64, gaps: &GapStats, stale_rows: u64) -> (f64, Vec<Deduction>) {
    let count = |k: CheckKind| checks.iter().find(|c| c.kind == k).map_or(0, |c| c.count);
    let kept_f = kept.max(1) as f64;
    let repaired = count(CheckKind::UnparseableValues)
        + count(CheckKind::NonFiniteValues)
        + count(CheckKind::ConflictingDuplicates)
        + count(CheckKind::ExactDuplicates)
        + count(CheckKind::UnsortedRows).min(1);
    const REPAIRS: &str = "rows changed by repairs (dropped, deduplicated, sorted)";
    let parts: [(&str, f64, f64, f64); 8] = [
        (CheckKind::OhlcInconsistent.label(), count(CheckKind::OhlcInconsistent) as f64 / kept_f, 20.0, 100.0),
        (CheckKind::NonPositivePrices.label(), count(CheckKind::NonPositivePrices) as f64 / kept_f, 20.0, 100.0),
        (CheckKind::Gaps.label(), gaps.missing_bars as f64 / (kept_f + gaps.missing_bars as f64), 20.0, 1.0),
        (CheckKind::ZeroVolume.label(), count(CheckKind::ZeroVolume) as f64 / kept_f, 10.0, 10.0),
        (CheckKind::ExtremeReturns.label(), count(CheckKind::ExtremeReturns) as f64 / kept_f, 10.0, 100.0),
        (CheckKind::StaleRuns.label(), stale_rows as f64 / kept_f, 10.0, 10.0),
        (CheckKind::IrregularSpacing.label(), count(CheckKind::IrregularSpacing) as f64 / kept_f, 5.0, 100.0),
        (REPAIRS, repaired as f64 / read.max(1) as f64, 5.0, 100.0),
    ];
    let deductions: Vec<Deduction> = parts
        .iter()
        .filter(|p| p.1 > 0.0)
        .map(|&(component, rate, weight, sensitivity)| Deduction {
            component: component.to_string(),
            rate,
            points: round2(weight * (rate * sensitivity).min(1.0)),
        })
        .collect();
    let total: f64 = deductions.iter().map(|d| d.points).sum();
    (round2((100.0 - total).max(0.0)), deductions)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(steps: &[i64]) -> Vec<i64> {
        let mut ts = vec![0];
        for s in steps {
            ts.push(ts.last().unwrap() + s * 60_000);
        }
        ts
    }

    #[test]
    fn the_timeframe_is_the_most_common_step_counted_across_runs_and_series() {
        let minute = Some(Timeframe::from_millis(60_000).unwrap());
        let two = Some(Timeframe::from_millis(120_000).unwrap());
        // Alternating steps: 1m three times, 2m twice.
        assert_eq!(infer_timeframe(&steps(&[1, 2, 1, 2, 1])), minute);
        // A run of 2m outnumbers scattered 1m steps.
        assert_eq!(infer_timeframe(&steps(&[1, 2, 2, 2, 1])), two);
        // Repeated and backward timestamps count for nothing.
        assert_eq!(infer_timeframe(&[0, 0, 0, 60_000, 30_000, 30_000]), minute);
        // A tie goes to the shorter step.
        assert_eq!(infer_timeframe(&steps(&[2, 1])), minute);
        // Across series: 1m twice in one, 2m three times over both.
        let (a, b) = (steps(&[1, 1, 2]), steps(&[2, 2]));
        assert_eq!(infer_common_timeframe([a.as_slice(), b.as_slice()]), two);
        assert_eq!(infer_timeframe(&[5]), None);
    }
}
