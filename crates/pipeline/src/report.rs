//! The report of a run, written into its directory: `report.html` (self-contained: inline SVG charts
//! and CSS, no external scripts or fonts), `summary.json` (what `--json` prints) and
//! `predictions.csv` (every out-of-sample prediction with its position and return).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use quantpipe_core::time::format_iso;
use serde::Serialize;

use crate::config::LoadedConfig;
use crate::register::RegistryOutcome;
use crate::run::{DataSummary, Evaluated, ModelOutcome, Overfitting, Prepared, StageRecord};
use crate::svg::{escape, grouped_bar_chart, hbar_chart, line_chart, Axis, Line, PALETTE};
use crate::PipelineError;

/// The files a run wrote.
#[derive(Debug, Clone, Serialize)]
pub struct RunFiles {
    pub dir: PathBuf,
    pub report: PathBuf,
    pub summary: PathBuf,
    pub predictions: PathBuf,
    /// Every chart of the report as a PNG.
    pub charts: PathBuf,
    pub models: Vec<PathBuf>,
}

/// The JSON summary of a run (`summary.json`, and `quantpipe run --json`).
#[derive(Serialize)]
pub struct Summary<'a> {
    pub pipeline: &'a str,
    pub description: &'a str,
    pub config: &'a Path,
    pub config_hash: &'a str,
    pub code_version: &'a str,
    pub seconds: f64,
    pub data: &'a DataSummary,
    pub feature_set: String,
    pub feature_set_hash: String,
    pub features: usize,
    pub label: serde_json::Value,
    pub dataset_rows: usize,
    pub splits: usize,
    pub stages: Vec<&'a StageRecord>,
    pub models: &'a [ModelOutcome],
    pub overfitting: &'a Overfitting,
    pub registry: Option<&'a RegistryOutcome>,
    pub files: &'a RunFiles,
}

/// Everything the report shows.
pub struct ReportInput<'a> {
    pub loaded: &'a LoadedConfig,
    pub prepared: &'a Prepared,
    pub evaluated: &'a Evaluated,
    pub registry: Option<&'a RegistryOutcome>,
    /// Every stage, including registration and the report itself (filled in by the caller).
    pub stages: Vec<&'a StageRecord>,
    pub code_version: &'a str,
    pub seconds: f64,
    pub started_at: String,
}

pub fn files(dir: &Path, evaluated: &Evaluated) -> RunFiles {
    RunFiles {
        dir: dir.to_path_buf(),
        report: dir.join("report.html"),
        summary: dir.join("summary.json"),
        predictions: dir.join("predictions.csv"),
        charts: dir.join("charts"),
        models: evaluated.models.iter().map(|m| m.artifact.clone()).collect(),
    }
}

pub fn summary<'a>(input: &'a ReportInput<'a>, files: &'a RunFiles) -> Summary<'a> {
    let p = input.prepared;
    Summary {
        pipeline: &input.loaded.config.name,
        description: &input.loaded.config.description,
        config: &input.loaded.path,
        config_hash: &input.loaded.hash,
        code_version: input.code_version,
        seconds: input.seconds,
        data: &p.data,
        feature_set: p.feature_set.name.clone(),
        feature_set_hash: p.feature_set.hash(),
        features: p.width(),
        label: serde_json::to_value(&input.loaded.config.label).expect("serialises"),
        dataset_rows: p.rows.len(),
        splits: p.splits.len(),
        stages: input.stages.clone(),
        models: &input.evaluated.models,
        overfitting: &input.evaluated.overfitting,
        registry: input.registry,
        files,
    }
}

/// Writes summary.json, report.html and its charts as PNGs (after [`write_predictions`], which they
/// list); returns warnings (no font for the PNGs' text).
pub fn write(input: &ReportInput, files: &RunFiles) -> Result<Vec<String>, PipelineError> {
    let summary = summary(input, files);
    let json = serde_json::to_vec_pretty(&summary).expect("serialises");
    std::fs::write(&files.summary, json).map_err(|e| PipelineError::io(&files.summary, e))?;
    let html = html(input, files);
    let (_, warnings) = crate::png::write_charts(&html, &files.charts)?;
    std::fs::write(&files.report, html).map_err(|e| PipelineError::io(&files.report, e))?;
    Ok(warnings)
}

/// Writes predictions.csv: every out-of-sample prediction with its position and return.
pub fn write_predictions(input: &ReportInput, path: &Path) -> Result<(), PipelineError> {
    let p = input.prepared;
    let io = |e: csv::Error| PipelineError::stage("report", format!("{}: {e}", path.display()));
    let mut w = csv::Writer::from_path(path).map_err(io)?;
    w.write_record(["ts", "symbol", "model", "label", "prediction", "position", "return"]).map_err(io)?;
    for m in &input.evaluated.models {
        let points = m.point_predictions();
        for (j, &i) in m.oos_index.iter().enumerate() {
            let bar = p.bar(i);
            let label = match &m.classes {
                Some(classes) => classes[m.oos_labels[j] as usize],
                None => m.oos_labels[j],
            };
            let (position, ret) = match &m.backtest {
                Some(bt) => match &bt.rows {
                    Some(rows) => {
                        let (weight, next) = rows[j];
                        (weight.to_string(), if next.is_finite() { next.to_string() } else { String::new() })
                    }
                    None => {
                        let k = bar - bt.first_bar;
                        (bt.positions[k].to_string(), bt.returns.get(k + 1).map_or(String::new(), |r| r.to_string()))
                    }
                },
                None => (String::new(), String::new()),
            };
            w.write_record([
                format_iso(p.bars.ts[bar]),
                p.symbol(i).to_string(),
                m.name.clone(),
                label.to_string(),
                points[j].to_string(),
                position,
                ret,
            ])
            .map_err(io)?;
        }
    }
    w.flush().map_err(|e| PipelineError::io(path, e))
}

fn num(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "–".into()
    }
}

fn pct(v: f64) -> String {
    if v.is_finite() {
        format!("{:.2} %", v * 100.0)
    } else {
        "–".into()
    }
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:900px;color:#222;line-height:1.4}\
h1{font-size:1.6em;margin-bottom:0}h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:4px}h3{margin-bottom:4px}\
.sub{color:#666;margin-top:4px}table{border-collapse:collapse;margin:8px 0;font-size:.92em}\
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}\
th{background:#f4f4f4}.ok{color:#1a7f37;font-weight:600}.bad{color:#b42318;font-weight:600}.warn{color:#9a6700}\
svg.chart{display:block;margin:10px 0;background:#fff}svg .title{font-size:14px;font-weight:600;fill:#222}\
svg .tick{font-size:11px;fill:#555}svg .axis{font-size:12px;fill:#333}svg .legend{font-size:12px;fill:#333}\
svg .grid{stroke:#eee}code{background:#f4f4f4;padding:1px 4px;border-radius:3px}.empty{color:#888}\
.cm td{width:70px;text-align:center}tr.kept td{font-weight:600;background:#eef6ee}";

fn html(input: &ReportInput, files: &RunFiles) -> String {
    let config = &input.loaded.config;
    let p = input.prepared;
    let e = input.evaluated;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>quantpipe run: {}</title><style>{STYLE}</style></head><body>",
        escape(&config.name)
    );
    let _ = write!(h, "<h1>{}</h1><p class=\"sub\">{}</p>", escape(&config.name), escape(&config.description));
    let _ = write!(
        h,
        "<p class=\"sub\">Run started {} · {:.1} s · {} · config <code>{}</code> (blake3 {}…)</p>",
        escape(&input.started_at),
        input.seconds,
        escape(input.code_version),
        escape(&input.loaded.path.display().to_string()),
        &input.loaded.hash[..12]
    );

    // Headline table.
    h.push_str("<h2>Models</h2><table><tr><th>model</th><th>target</th><th>out-of-sample</th><th>Sharpe</th><th>buy &amp; hold Sharpe</th><th>max drawdown</th><th>deflated Sharpe</th><th>registered</th></tr>");
    for m in &e.models {
        let bt = m.backtest.as_ref();
        let registered = input
            .registry
            .and_then(|r| r.versions.iter().find(|v| v.model == m.name))
            .map(|v| {
                if v.gate_failures.is_empty() {
                    format!("{} <span class=\"ok\">{}</span>", escape(&v.version), v.stage.as_str())
                } else {
                    format!(
                        "{} <span class=\"bad\">{}</span> (gate: {})",
                        escape(&v.version),
                        v.stage.as_str(),
                        escape(&v.gate_failures.join("; "))
                    )
                }
            })
            .unwrap_or_else(|| "not registered".into());
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"n\">{} {}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{registered}</td></tr>",
            escape(&m.name),
            escape(&m.target),
            escape(&m.headline_metric),
            num(m.headline(), 4),
            bt.map_or("–".into(), |b| num(b.strategy.sharpe, 2)),
            bt.map_or("–".into(), |b| num(b.buy_and_hold.sharpe, 2)),
            bt.map_or("–".into(), |b| pct(b.strategy.max_drawdown)),
            m.sharpe_statistics.as_ref().map_or("–".into(), |s| num(s.deflated_sharpe, 3)),
        );
    }
    h.push_str("</table>");

    // Stages.
    h.push_str("<h2>Stages</h2><table><tr><th>stage</th><th>rows in</th><th>rows out</th><th>seconds</th><th>what it did</th></tr>");
    for s in &input.stages {
        let warnings: String =
            s.warnings.iter().map(|w| format!("<br><span class=\"warn\">⚠ {}</span>", escape(w))).collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.2}</td><td>{}{warnings}</td></tr>",
            s.stage,
            s.rows_in,
            s.rows_out,
            s.seconds,
            escape(&s.note)
        );
    }
    h.push_str("</table>");

    // Data quality.
    let d = &p.data;
    let _ = write!(
        h,
        "<h2>Data</h2><table><tr><th>source</th><td>{}</td></tr><tr><th>symbol</th><td>{}</td></tr><tr><th>bars</th><td>{} × {} ({} calendar), {} to {}</td></tr><tr><th>quality score</th><td>{:.1} / 100</td></tr><tr><th>dataset hash</th><td><code>{}</code></td></tr>",
        escape(&d.source),
        escape(&d.symbol),
        d.rows,
        escape(&d.timeframe),
        escape(&d.calendar),
        escape(&d.first),
        escape(&d.last),
        d.quality_score,
        &d.dataset_hash[..16.min(d.dataset_hash.len())]
    );
    let findings = if d.findings.is_empty() {
        "none".to_string()
    } else {
        d.findings.iter().map(|f| escape(f)).collect::<Vec<_>>().join("<br>")
    };
    let _ = write!(h, "<tr><th>findings</th><td>{findings}</td></tr></table>");
    let _ = write!(
        h,
        "<p>Features: {} columns of set <code>{}</code>. Label: <code>{}</code> with look-ahead {}; {} rows after warm-up; training rows whose label windows reach a test window are purged.</p>",
        p.width(),
        escape(&p.feature_set.name),
        escape(&serde_json::to_string(&config.label).unwrap_or_default()),
        escape(&p.labels.lookahead.name()),
        p.rows.len()
    );

    // Cross-validation.
    h.push_str("<h2>Cross-validation</h2>");
    let categories: Vec<String> = (0..p.splits.len()).map(|f| format!("fold {}", f + 1)).collect();
    let series: Vec<(&str, Vec<f64>, &str)> = e
        .models
        .iter()
        .enumerate()
        .map(|(k, m)| (m.name.as_str(), m.folds.iter().map(|f| f.score).collect(), PALETTE[k % PALETTE.len()]))
        .collect();
    let metric = e.models.first().map_or("score", |m| m.headline_metric.as_str());
    let baseline = (metric == "roc_auc").then_some(0.5);
    h.push_str(&grouped_bar_chart(&format!("Out-of-sample {metric} per fold"), &categories, &series, metric, baseline));
    h.push_str("<table><tr><th>fold</th><th>test window</th><th>train rows</th><th>purged</th><th>embargoed</th><th>test rows</th>");
    for m in &e.models {
        let _ = write!(h, "<th>{} {}</th>", escape(&m.name), escape(&m.headline_metric));
    }
    h.push_str("</tr>");
    if let Some(first) = e.models.first() {
        for (f, fold) in first.folds.iter().enumerate() {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{} – {}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
                f + 1,
                escape(&fold.test_first),
                escape(&fold.test_last),
                fold.train_rows,
                fold.purged,
                fold.embargoed,
                fold.test_rows
            );
            for m in &e.models {
                let _ = write!(h, "<td class=\"n\">{}</td>", num(m.folds.get(f).map_or(f64::NAN, |x| x.score), 4));
            }
            h.push_str("</tr>");
        }
    }
    h.push_str("</table>");

    // Parameter searches.
    for m in e.models.iter().filter(|m| m.search.is_some()) {
        let search = m.search.as_ref().expect("filtered");
        let names: Vec<&String> = search.trials.first().map(|t| t.params.keys().collect()).unwrap_or_default();
        let _ = write!(
            h,
            "<h2>Parameter search: {}</h2><p>{} search, {} trials, each scored by the cross-validation above on {} ({}); trial {} was kept and refitted for registration. Every trial counts in the deflated Sharpe ratio and in PBO.</p>",
            escape(&m.name),
            match search.method {
                quantpipe_models::search::SearchMethod::Grid => "Grid",
                quantpipe_models::search::SearchMethod::Random => "Random",
            },
            search.trials.len(),
            escape(&search.metric),
            if search.higher_is_better { "higher is better" } else { "lower is better" },
            search.chosen
        );
        let x: Vec<f64> = search.trials.iter().map(|t| t.trial as f64).collect();
        let scores: Vec<f64> = search.trials.iter().map(|t| t.score).collect();
        let best_so_far: Vec<f64> = scores
            .iter()
            .scan(f64::NAN, |best, &v| {
                let improves = !v.is_nan() && (best.is_nan() || (v > *best) == search.higher_is_better);
                if improves {
                    *best = v;
                }
                Some(*best)
            })
            .collect();
        let lines = [
            Line { name: "trial", x: &x, y: &scores, color: PALETTE[0], markers: true, dashed: false },
            Line { name: "best so far", x: &x, y: &best_so_far, color: PALETTE[1], markers: false, dashed: true },
        ];
        h.push_str(&line_chart(
            &format!("Cross-validated {} by trial", search.metric),
            Axis::Count,
            &search.metric,
            &lines,
            260.0,
            None,
            None,
        ));
        let mut order: Vec<&crate::run::TrialOutcome> = search.trials.iter().collect();
        order.sort_by(|a, b| {
            let (x, y) = if search.higher_is_better { (b.score, a.score) } else { (a.score, b.score) };
            x.is_nan().cmp(&y.is_nan()).then(x.total_cmp(&y)).then(a.trial.cmp(&b.trial))
        });
        h.push_str("<table><tr><th>trial</th>");
        for name in &names {
            let _ = write!(h, "<th>{}</th>", escape(name));
        }
        let _ = write!(
            h,
            "<th>{}</th><th>{} by fold<br>mean ± s.d.</th><th>Sharpe</th><th>seconds</th></tr>",
            escape(&search.metric),
            escape(&m.headline_metric)
        );
        const SHOWN: usize = 25;
        let more = order.len().saturating_sub(SHOWN);
        for t in order.into_iter().take(SHOWN) {
            let kept = t.trial == search.chosen;
            let _ = write!(
                h,
                "<tr{}><td>{}{}</td>",
                if kept { " class=\"kept\"" } else { "" },
                t.trial,
                if kept { " ✓ kept" } else { "" }
            );
            for name in &names {
                let value = t.params.get(*name).map_or(String::new(), |v| match v.as_f64() {
                    // Four significant digits, whatever the scale (learning rates, penalties).
                    Some(x) if v.is_f64() && x != 0.0 && x.abs() < 0.01 => format!("{x:.3e}"),
                    Some(x) if v.is_f64() => num(x, 4),
                    _ => v.to_string(),
                });
                let _ = write!(h, "<td class=\"n\">{}</td>", escape(&value));
            }
            let finite: Vec<f64> = t.fold_scores.iter().copied().filter(|x| x.is_finite()).collect();
            let _ = write!(
                h,
                "<td class=\"n\">{}</td><td class=\"n\">{} ± {}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td></tr>",
                num(t.score, 4),
                num(quantpipe_eval::stats::mean(&finite), 4),
                num(quantpipe_eval::stats::std_dev(&finite), 4),
                t.sharpe.map_or("—".into(), |x| num(x, 2)),
                t.seconds
            );
        }
        h.push_str("</table>");
        if more > 0 {
            let _ =
                write!(h, "<p>The best {SHOWN} trials are shown; summary.json lists all {}.</p>", search.trials.len());
        }
    }

    // Cross-section: how well each date's predictions ranked the symbols.
    if p.panel.is_some() {
        cross_section_section(&mut h, e);
    }

    // Backtest.
    // A cross-sectional run's benchmark is the equal-weight portfolio of the symbols it predicted.
    let hold_name = if p.panel.is_some() { "equal weight" } else { "buy and hold" };
    let backtested: Vec<&ModelOutcome> = e.models.iter().filter(|m| m.backtest.is_some()).collect();
    if let Some(first) = backtested.first().and_then(|m| m.backtest.as_ref()) {
        let _ = write!(
            h,
            "<h2>Backtest</h2><p>Out-of-sample positions ({}), traded at the close of the bar they are decided on, fee {} bp and slippage {} bp per side.</p>",
            escape(&first.rule),
            config.backtest.fee_bps,
            config.backtest.slippage_bps
        );
        let x: Vec<f64> = first.ts.iter().map(|&t| t as f64).collect();
        let names: Vec<&str> = backtested.iter().map(|m| m.name.as_str()).collect();
        let equities: Vec<&[f64]> = backtested
            .iter()
            .map(|m| m.backtest.as_ref().expect("backtested").equity.as_slice())
            .chain(std::iter::once(first.hold_equity.as_slice()))
            .collect();
        let lines = against_hold(&names, hold_name, &x, &equities);
        h.push_str(&line_chart("Equity (starting at 1)", Axis::Time, "equity", &lines, 320.0, None, None));
        let drawdowns: Vec<Vec<f64>> = backtested
            .iter()
            .map(|m| drawdown(&m.backtest.as_ref().expect("backtested").equity))
            .chain(std::iter::once(drawdown(&first.hold_equity)))
            .collect();
        let drawdowns: Vec<&[f64]> = drawdowns.iter().map(Vec::as_slice).collect();
        let lines = against_hold(&names, hold_name, &x, &drawdowns);
        h.push_str(&line_chart("Drawdown", Axis::Time, "fall from peak", &lines, 260.0, None, None));
        h.push_str("<table><tr><th></th><th>total return</th><th>annualised</th><th>volatility</th><th>Sharpe</th><th>Sortino</th><th>max drawdown</th><th>trades</th><th>win rate</th><th>exposure</th><th>fees</th></tr>");
        let mut row = |name: &str, s: &quantpipe_eval::backtest::Performance| {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(name),
                pct(s.total_return),
                pct(s.annualized_return),
                pct(s.annualized_volatility),
                num(s.sharpe, 2),
                num(s.sortino, 2),
                pct(s.max_drawdown),
                s.trades,
                pct(s.win_rate),
                pct(s.exposure),
                pct(s.fees_paid)
            );
        };
        for m in &backtested {
            row(&m.name, &m.backtest.as_ref().expect("backtested").strategy);
        }
        row(hold_name, &first.buy_and_hold);
        h.push_str("</table>");
        for m in &backtested {
            if let Some(rate) = m.backtest.as_ref().and_then(|b| b.strategy.approval_rate) {
                let _ = write!(
                    h,
                    "<p>{}: approval rate {} of the trades the label proposed.</p>",
                    escape(&m.name),
                    pct(rate)
                );
            }
        }
    }

    // Overfitting.
    h.push_str("<h2>Overfitting</h2><p>The deflated Sharpe ratio discounts each backtest for the number of trials (every backtested model, and every parameter set a search backtested, is one) and for non-normal returns; PBO is the probability that the trial chosen in sample ranks in the bottom half out of sample (combinatorially symmetric cross-validation).</p><table><tr><th>model</th><th>per-bar Sharpe</th><th>skew</th><th>kurtosis</th><th>probabilistic Sharpe</th><th>expected max Sharpe of the trials</th><th>deflated Sharpe</th></tr>");
    for m in &e.models {
        if let Some(s) = &m.sharpe_statistics {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(&m.name),
                num(s.sharpe, 4),
                num(s.skew, 2),
                num(s.kurtosis, 2),
                num(s.probabilistic_sharpe, 3),
                num(s.expected_max_sharpe, 4),
                num(s.deflated_sharpe, 3)
            );
        }
    }
    h.push_str("</table>");
    match (&e.overfitting.pbo, &e.overfitting.pbo_note) {
        (Some(pbo), _) => {
            let _ = write!(
                h,
                "<p>PBO over {} trials: <b>{:.3}</b> ({} splits).</p>",
                e.overfitting.trials, pbo.pbo, pbo.splits
            );
        }
        (None, Some(note)) => {
            let _ = write!(h, "<p>PBO: {}.</p>", escape(note));
        }
        _ => {}
    }

    // Calibration and confusion.
    let binary: Vec<&ModelOutcome> = e.models.iter().filter(|m| m.calibration.is_some()).collect();
    if !binary.is_empty() {
        h.push_str("<h2>Calibration</h2>");
        let curves: Vec<(Vec<f64>, Vec<f64>)> = binary
            .iter()
            .map(|m| {
                let bins = m.calibration.as_ref().expect("binary");
                (bins.iter().map(|b| b.mean_predicted).collect(), bins.iter().map(|b| b.fraction_positive).collect())
            })
            .collect();
        let lines: Vec<Line> = binary
            .iter()
            .enumerate()
            .map(|(k, m)| Line {
                name: &m.name,
                x: &curves[k].0,
                y: &curves[k].1,
                color: PALETTE[k % PALETTE.len()],
                markers: true,
                dashed: false,
            })
            .collect();
        h.push_str(&line_chart(
            "Reliability: observed frequency against predicted probability",
            Axis::Number,
            "fraction positive",
            &lines,
            360.0,
            Some([0.0, 0.0, 1.0, 1.0]),
            Some((0.0, 1.0)),
        ));
    }
    let with_confusion: Vec<&ModelOutcome> = e.models.iter().filter(|m| m.confusion.is_some()).collect();
    if !with_confusion.is_empty() {
        h.push_str("<h2>Confusion matrices</h2><p>Rows are the true class, columns the predicted one (threshold 0.5 for binary models).</p>");
        for m in with_confusion {
            let cm = m.confusion.as_ref().expect("present");
            let total: usize = cm.iter().flatten().sum();
            let classes: Vec<String> = match &m.classes {
                Some(c) => c.iter().map(|v| v.to_string()).collect(),
                None => (0..cm.len()).map(|k| k.to_string()).collect(),
            };
            let _ = write!(h, "<h3>{}</h3><table class=\"cm\"><tr><th>true \\ predicted</th>", escape(&m.name));
            for c in &classes {
                let _ = write!(h, "<th>{}</th>", escape(c));
            }
            h.push_str("</tr>");
            for (r, row) in cm.iter().enumerate() {
                let _ = write!(h, "<tr><th>{}</th>", escape(&classes[r]));
                for &count in row {
                    let shade =
                        if total > 0 { 255.0 - 120.0 * count as f64 / total as f64 * cm.len() as f64 } else { 255.0 };
                    let shade = shade.clamp(120.0, 255.0) as u8;
                    let _ = write!(h, "<td style=\"background:rgb({shade},{shade},255)\">{count}</td>");
                }
                h.push_str("</tr>");
            }
            h.push_str("</table>");
        }
    }

    // Importance and SHAP.
    h.push_str("<h2>Feature importance and SHAP</h2>");
    for (k, m) in e.models.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let top: Vec<_> = m.importance.iter().take(20).collect();
        if !top.is_empty() {
            let labels: Vec<String> = top.iter().map(|i| i.feature.clone()).collect();
            let values: Vec<f64> = top.iter().map(|i| i.gain).collect();
            h.push_str(&hbar_chart(
                &format!("{}: importance (total gain, top {})", m.name, top.len()),
                &labels,
                &values,
                color,
                "total gain of splits",
            ));
        }
        if !m.shap.is_empty() {
            let top = &m.shap[..m.shap.len().min(20)];
            let labels: Vec<String> = top.iter().map(|(f, _)| f.clone()).collect();
            let values: Vec<f64> = top.iter().map(|(_, v)| *v).collect();
            h.push_str(&hbar_chart(
                &format!("{}: mean |SHAP| over the last {} out-of-sample rows", m.name, m.shap_rows),
                &labels,
                &values,
                color,
                "mean |contribution| to the raw score",
            ));
        }
    }

    // Files.
    h.push_str("<h2>Files</h2><ul>");
    let rel = |path: &Path| path.strip_prefix(&files.dir).unwrap_or(path).display().to_string();
    let _ = write!(
        h,
        "<li><code>{}</code>: every out-of-sample prediction with its position and return</li>",
        escape(&rel(&files.predictions))
    );
    let _ = write!(h, "<li><code>{}</code>: this run as JSON</li>", escape(&rel(&files.summary)));
    let _ = write!(h, "<li><code>{}/</code>: every chart of this page as a PNG</li>", escape(&rel(&files.charts)));
    for m in &e.models {
        let _ = write!(
            h,
            "<li><code>{}</code>: the {} model, trained on {} rows</li>",
            escape(&rel(&m.artifact)),
            escape(&m.name),
            m.final_train_rows
        );
    }
    h.push_str("</ul>");
    // Lets a headless browser confirm every chart laid out with a size and marks.
    h.push_str("<script>(function(){var c=document.querySelectorAll('svg.chart'),ok=0;for(var i=0;i<c.length;i++){var b=c[i].getBoundingClientRect();if(b.width>0&&b.height>0&&c[i].querySelector('path,rect,circle'))ok++;}document.body.setAttribute('data-charts',String(c.length));document.body.setAttribute('data-charts-rendered',String(ok));})();</script>");
    h.push_str("</body></html>\n");
    h
}

/// One solid line per strategy and, last in `series`, buy-and-hold dashed.
fn against_hold<'a>(names: &[&'a str], hold_name: &'a str, x: &'a [f64], series: &[&'a [f64]]) -> Vec<Line<'a>> {
    let (hold, strategies) = series.split_last().expect("buy-and-hold is last");
    let mut lines: Vec<Line> = names
        .iter()
        .zip(strategies)
        .enumerate()
        .map(|(k, (name, y))| Line { name, x, y, color: PALETTE[k % PALETTE.len()], markers: false, dashed: false })
        .collect();
    lines.push(Line { name: hold_name, x, y: hold, color: "#555", markers: false, dashed: true });
    lines
}

/// Per-date IC summary and the cumulative rank IC of each model (a steady climb is a steady edge;
/// a flat or falling stretch is where the ranking stopped working).
fn cross_section_section(h: &mut String, e: &Evaluated) {
    h.push_str("<h2>Cross-section</h2><p>Each date's out-of-sample predictions against the symbols' realised targets (before they were made relative): the information coefficient (Pearson) and rank IC (Spearman) per date, their means, and their mean over standard deviation (IR).</p>");
    h.push_str("<table><tr><th>model</th><th>dates</th><th>mean IC</th><th>mean rank IC</th><th>IC IR</th><th>rank IC IR</th><th>dates with rank IC &gt; 0</th></tr>");
    let scored: Vec<&ModelOutcome> = e.models.iter().filter(|m| !m.ic_by_date.is_empty()).collect();
    for m in &scored {
        let get = |k: &str| m.oos_scores.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
        let positive = m.ic_by_date.iter().filter(|d| d.2 > 0.0).count() as f64 / m.ic_by_date.len() as f64;
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&m.name),
            m.ic_by_date.len(),
            num(get("date_ic"), 4),
            num(get("date_rank_ic"), 4),
            num(get("date_ic_ir"), 3),
            num(get("date_rank_ic_ir"), 3),
            pct(positive)
        );
    }
    h.push_str("</table>");
    let curves: Vec<(Vec<f64>, Vec<f64>)> = scored
        .iter()
        .map(|m| {
            let x = m.ic_by_date.iter().map(|d| d.0 as f64).collect();
            let y = m
                .ic_by_date
                .iter()
                .scan(0.0, |sum, d| {
                    *sum += d.2;
                    Some(*sum)
                })
                .collect();
            (x, y)
        })
        .collect();
    let lines: Vec<Line> = scored
        .iter()
        .zip(&curves)
        .enumerate()
        .map(|(k, (m, (x, y)))| Line {
            name: &m.name,
            x,
            y,
            color: PALETTE[k % PALETTE.len()],
            markers: false,
            dashed: false,
        })
        .collect();
    if !lines.is_empty() {
        h.push_str(&line_chart("Cumulative rank IC", Axis::Time, "sum of daily rank IC", &lines, 280.0, None, None));
    }
}

fn drawdown(equity: &[f64]) -> Vec<f64> {
    let mut peak = f64::NEG_INFINITY;
    equity
        .iter()
        .map(|&e| {
            peak = peak.max(e);
            e / peak - 1.0
        })
        .collect()
}
