//! The ingest service: read a file, validate every series in it, and store them, or refuse the
//! whole file. The CLI (and later the HTTP API) call this; neither re-implements any of it.

use std::path::Path;

use quantpipe_core::{MarketCalendar, Symbol, Timeframe};
use serde::Serialize;

use crate::error::{DataError, Result};
use crate::layout::ColumnOverrides;
use crate::quality::{validate, Action, Example, Policy, ProblemTally, QualityReport, Validated};
use crate::read::{read_bars, Progress, ReadOptions};
use crate::store::{now_iso, BarStore, CommitOutcome, IngestRecord, Lineage};

#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    pub symbol: Option<Symbol>,
    pub columns: ColumnOverrides,
    pub timeframe: Option<Timeframe>,
    pub calendar: Option<MarketCalendar>,
    pub policy: Policy,
    /// Validate and report, store nothing.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeriesIngest {
    pub report: QualityReport,
    /// `None` on a dry run.
    pub stored: Option<CommitOutcome>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub file: String,
    pub format: String,
    pub layout: String,
    pub notes: Vec<String>,
    pub rows: u64,
    pub rows_of_other_symbols: u64,
    pub series: Vec<SeriesIngest>,
}

pub fn ingest_file(
    store: &BarStore,
    path: &Path,
    opts: &IngestOptions,
    progress: &dyn Progress,
) -> Result<IngestReport> {
    let read = read_bars(path, &ReadOptions { symbol: opts.symbol.clone(), columns: opts.columns.clone(), progress })?;
    let file = path.display().to_string();
    let notes = read.notes();
    if read.series.is_empty() {
        let detail = if read.rows_of_other_symbols > 0 {
            format!("no rows for symbol {}", opts.symbol.as_ref().map(|s| s.as_str()).unwrap_or(""))
        } else {
            describe_tally("rows that could not be read", &read.unparseable_rows)
        };
        return Err(DataError::Rejected { path: path.into(), summary: "no usable rows".into(), details: detail });
    }
    let mut policy = opts.policy.clone();
    policy.timeframe = opts.timeframe;
    policy.calendar = opts.calendar;
    if policy.timeframe.is_none() && read.series.len() > 1 {
        // One timeframe for the whole file, from every series' spacing together.
        policy.timeframe = crate::quality::infer_common_timeframe(read.series.iter().map(|s| s.bars.ts.as_slice()));
    }

    let mut validated: Vec<Validated> = Vec::with_capacity(read.series.len());
    let mut fatal_lines = Vec::new();
    if read.unparseable_rows.count > 0 && !policy.repair {
        fatal_lines.push(format!(
            "  {}\n    → --repair drops these rows and reports each",
            describe_tally("rows that could not be read", &read.unparseable_rows)
        ));
    }
    for raw in read.series {
        let symbol = raw.symbol.clone();
        let row_problems =
            [("unparseable values", raw.unparseable.clone()), ("NaN / infinite values", raw.non_finite.clone())];
        let mut v = match validate(raw, &policy) {
            Ok(v) => v,
            Err(message) => {
                // Unreadable rows are usually why too few were left to validate: show them first.
                for (label, tally) in row_problems.iter().filter(|(_, t)| t.count > 0) {
                    fatal_lines.push(format!("  {symbol}: {}", describe_tally(label, tally)));
                }
                fatal_lines.push(format!("  {message}"));
                continue;
            }
        };
        // Inferred from the whole file rather than given.
        v.report.timeframe_inferred = opts.timeframe.is_none();
        for check in v.report.fatal() {
            let Action::Fatal { hint } = &check.action else { continue };
            let tally = ProblemTally { count: check.count, examples: check.examples.clone() };
            fatal_lines.push(format!(
                "  {}: {}\n    → {hint}",
                v.report.symbol,
                describe_tally(check.kind.label(), &tally)
            ));
        }
        validated.push(v);
    }
    if !fatal_lines.is_empty() {
        let n = fatal_lines.len();
        let shown: Vec<String> = fatal_lines.into_iter().take(20).collect();
        let more = if n > 20 { format!("\n  … and {} more", n - 20) } else { String::new() };
        return Err(DataError::Rejected {
            path: path.into(),
            summary: format!("{n} fatal problem(s); nothing was stored"),
            details: format!("{}{more}", shown.join("\n")),
        });
    }

    // Plan every merge before writing any, so a conflict with stored data refuses the whole file.
    let mut planned = Vec::with_capacity(validated.len());
    for v in validated {
        let plan = if opts.dry_run { None } else { Some(store.plan_merge(&v.report.symbol, v.timeframe, v.bars)?) };
        planned.push((v.report, v.timeframe, plan));
    }
    let mut series = Vec::with_capacity(planned.len());
    let ingested_at = now_iso();
    for (report, timeframe, plan) in planned {
        let stored = match plan {
            None => None,
            Some(plan) => {
                let record =
                    IngestRecord { file: file.clone(), ingested_at: ingested_at.clone(), report: report.clone() };
                // The stored report describes the merged series; for a first ingest that is this report.
                let series_report = if plan.existing.is_some() && plan.rows_added > 0 {
                    crate::quality::assess(&report.symbol, &plan.merged, timeframe, report.calendar, &policy)
                        .map_err(DataError::Invalid)?
                } else if let Some(meta) = &plan.existing {
                    store.quality(&meta.symbol, timeframe)?.series
                } else {
                    report.clone()
                };
                let lineage = Lineage { ingest: Some(record), ..Lineage::default() };
                Some(store.commit(&report.symbol, timeframe, plan, series_report, lineage)?)
            }
        };
        series.push(SeriesIngest { report, stored });
    }
    Ok(IngestReport {
        file,
        format: read.format.name().to_string(),
        layout: read.layout.describe(),
        notes,
        rows: read.rows,
        rows_of_other_symbols: read.rows_of_other_symbols,
        series,
    })
}

pub fn describe_tally(label: &str, tally: &ProblemTally) -> String {
    let examples: Vec<String> = tally.examples.iter().map(Example::describe).collect();
    format!("{label}: {}\n      {}", tally.count, examples.join("\n      "))
}
