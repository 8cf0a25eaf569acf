//! quantpipe's metrics, statistics and backtest against the Python stack, on the same arrays from real
//! data (FILUSDT 1m, 343 k labelled rows): scikit-learn metrics, scipy distributions and moments,
//! pandas per-date IC, and vectorbt's `Portfolio.from_orders` for the backtest. The oracle script is
//! `eval_ref.py`, run by the virtual environment `scripts/test` creates.
//!
//! Tolerances: 1e-12 relative for metrics and distributions (sums in a different order); 1e-9 for
//! backtest statistics and per-bar returns (the bar: vectorbt books the same trades with its
//! own floating-point order of operations).

use std::path::PathBuf;
use std::process::Command;

use crate::common::fil;
use quantpipe_core::testing::test_python as python;
use quantpipe_core::Bars;
use quantpipe_eval::backtest::{simulate, Costs, PositionRule};
use quantpipe_eval::metrics::{binary_scores, calibration_table, ic_by_date, regression_scores};
use quantpipe_eval::overfit::sharpe_statistics;
use quantpipe_eval::stats::{normal_cdf, normal_ppf};
use quantpipe_labels::LabelSpec;
use serde_json::{json, Value};

/// Runs the oracle on `input` and returns its answer.
fn oracle(input: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("in.json"), dir.path().join("out.json"));
    std::fs::write(&src, serde_json::to_vec(input).unwrap()).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/eval_ref.py");
    let out = Command::new(python()).arg(script).arg(&src).arg(&dst).output().unwrap();
    assert!(out.status.success(), "eval_ref.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&std::fs::read(dst).unwrap()).unwrap()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn near(ours: f64, theirs: &Value, tolerance: f64, what: &str) {
    let theirs = num(theirs);
    assert!(
        (ours - theirs).abs() <= tolerance * theirs.abs().max(1.0),
        "{what}: quantpipe {ours} vs reference {theirs} (tolerance {tolerance})"
    );
}

/// A real, weak predictor: the probability of "up in the next hour" from how far the close stands
/// below its 60-bar mean, in units of that window's standard deviation (mean reversion).
fn predictions(bars: &Bars, rows: &[usize]) -> Vec<f64> {
    rows.iter()
        .map(|&i| {
            let from = i.saturating_sub(59);
            let w = &bars.close[from..=i];
            let m = w.iter().sum::<f64>() / w.len() as f64;
            let sd = (w.iter().map(|c| (c - m).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
            let z = if sd > 0.0 { (bars.close[i] - m) / sd } else { 0.0 };
            1.0 / (1.0 + (0.3 * z).exp())
        })
        .collect()
}

#[test]
fn metrics_distributions_and_backtest_equal_the_python_stack() {
    let bars = fil();
    let spec = LabelSpec::from_toml("kind = \"horizon\"\nhorizons = [60]", "t").unwrap();
    let labels = spec.compute(bars, None).unwrap();
    let y = labels.column("dir_60b").unwrap().to_vec();
    let forward = labels.column("ret_60b").unwrap().to_vec();
    let p = predictions(bars, &labels.row);
    // Regression: predict the next hour's return by minus the last hour's.
    let past: Vec<f64> =
        labels.row.iter().map(|&i| -(bars.close[i] / bars.close[i.saturating_sub(60)] - 1.0)).collect();
    let days: Vec<i64> = labels.ts.iter().map(|t| t.div_euclid(86_400_000)).collect();

    let x_grid: Vec<f64> = (-80..=80).map(|k| k as f64 * 0.1).collect();
    let p_grid: Vec<f64> = [1e-300, 1e-20, 1e-6, 0.001, 0.025, 0.3, 0.5, 0.7, 0.975, 0.999, 1.0 - 1e-12].to_vec();
    // The bar returns of a simple strategy (long above 0.5 on every bar).
    let strategy_returns: Vec<f64> = labels
        .row
        .iter()
        .zip(&p)
        .filter(|(&i, _)| i + 1 < bars.len())
        .map(|(&i, &q)| if q > 0.5 { bars.close[i + 1] / bars.close[i] - 1.0 } else { 0.0 })
        .collect();

    // Backtests of the one-hour call, re-decided at the start of every hour and held through it: full
    // positions beyond |z| ≈ 2, and positions sized by confidence.
    let close = &bars.close;
    let per_bar_p = predictions(bars, &(0..bars.len()).collect::<Vec<_>>());
    let costs = Costs { fee_bps: 4.0, slippage_bps: 2.0 };
    let rules = [
        PositionRule { long_above: 0.65, short_below: Some(0.35), size_by_confidence: false },
        PositionRule { long_above: 0.62, short_below: Some(0.38), size_by_confidence: true },
    ];
    let hourly = |t: Vec<f64>| -> Vec<f64> { (0..t.len()).map(|i| t[i - i % 60]).collect() };
    let targets: Vec<Vec<f64>> = rules.iter().map(|r| hourly(r.positions(&per_bar_p, None).unwrap().0)).collect();
    let backtests: Vec<Value> = targets
        .iter()
        .map(|t| json!({ "close": close, "target": t, "fee_bps": costs.fee_bps, "slippage_bps": costs.slippage_bps }))
        .collect();

    let input = json!({
        "classification": { "y": y, "p": p, "threshold": 0.5, "bins": 10 },
        "regression": { "y": forward, "prediction": past, "dates": days },
        "distributions": { "x": x_grid, "p": p_grid, "returns": strategy_returns },
        "backtests": backtests,
    });
    let reference = oracle(&input);

    // Classification metrics against scikit-learn.
    let c = &reference["classification"];
    let s = binary_scores(&y, &p, 0.5).unwrap();
    for (name, ours) in [
        ("accuracy", s.accuracy),
        ("precision", s.precision),
        ("recall", s.recall),
        ("f1", s.f1),
        ("roc_auc", s.roc_auc),
        ("log_loss", s.log_loss),
        ("brier", s.brier),
    ] {
        near(ours, &c[name], 1e-12, name);
    }
    let confusion: Vec<Vec<u64>> = serde_json::from_value(c["confusion"].clone()).unwrap();
    assert_eq!(
        confusion,
        s.confusion.iter().map(|r| r.iter().map(|&v| v as u64).collect::<Vec<_>>()).collect::<Vec<_>>()
    );
    let table = calibration_table(&y, &p, 10).unwrap();
    let (fraction, predicted) = (c["calibration_true"].as_array().unwrap(), c["calibration_pred"].as_array().unwrap());
    assert_eq!(table.len(), fraction.len(), "non-empty bins");
    for (bin, (f, q)) in table.iter().zip(fraction.iter().zip(predicted)) {
        near(bin.fraction_positive, f, 1e-12, "calibration fraction of positives");
        near(bin.mean_predicted, q, 1e-12, "calibration mean prediction");
    }
    // The predictor is weak but real: its AUC is off 0.5, and far from a leak.
    assert!(s.roc_auc > 0.505 && s.roc_auc < 0.6, "AUC {}", s.roc_auc);

    // Regression metrics against scikit-learn and scipy; per-date IC against pandas.
    let r = &reference["regression"];
    let forward = labels.column("ret_60b").unwrap();
    let past: Vec<f64> =
        labels.row.iter().map(|&i| -(bars.close[i] / bars.close[i.saturating_sub(60)] - 1.0)).collect();
    let reg = regression_scores(forward, &past).unwrap();
    for (name, ours) in [("rmse", reg.rmse), ("mae", reg.mae), ("r2", reg.r2), ("ic", reg.ic), ("rank_ic", reg.rank_ic)]
    {
        near(ours, &r[name], 1e-12, name);
    }
    let dated = ic_by_date(&days, forward, &past, 2).unwrap();
    assert_eq!(dated.dates as u64, r["dates"].as_u64().unwrap());
    near(dated.mean_ic, &r["mean_ic"], 1e-12, "mean per-date IC");
    near(dated.mean_rank_ic, &r["mean_rank_ic"], 1e-12, "mean per-date rank IC");
    near(dated.ic_ir, &r["ic_ir"], 1e-12, "IC IR");

    // The normal distribution, moments and the probabilistic Sharpe ratio against scipy.
    let d = &reference["distributions"];
    for (x, cdf) in x_grid.iter().zip(d["cdf"].as_array().unwrap()) {
        let theirs = num(cdf);
        assert!(
            (normal_cdf(*x) - theirs).abs() <= 1e-12 * theirs.max(1e-300) + 1e-300,
            "Φ({x}): {} vs {theirs}",
            normal_cdf(*x)
        );
    }
    for (q, ppf) in p_grid.iter().zip(d["ppf"].as_array().unwrap()) {
        near(normal_ppf(*q), ppf, 1e-12, &format!("Φ⁻¹({q})"));
    }
    let stats = sharpe_statistics(&strategy_returns, &[0.0]).unwrap();
    near(stats.skew, &d["skew"], 1e-9, "skew");
    near(stats.kurtosis, &d["kurtosis"], 1e-9, "kurtosis");
    near(stats.probabilistic_sharpe, &d["psr"], 1e-9, "probabilistic Sharpe ratio");

    // The backtests against vectorbt, bar by bar and in their statistics.
    for (k, target) in targets.iter().enumerate() {
        let b = &reference["backtests"][k];
        let bt = simulate(close, target, costs).unwrap();
        let theirs: Vec<f64> = b["returns"].as_array().unwrap().iter().map(num).collect();
        assert_eq!(theirs.len(), bt.returns.len());
        let worst = bt.returns.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-9, "backtest {k}: largest per-bar return difference {worst}");
        let perf = bt.performance(525_600.0);
        for (name, ours) in [
            ("total_return", perf.total_return),
            ("sharpe", perf.sharpe),
            ("sortino", perf.sortino),
            ("max_drawdown", perf.max_drawdown),
            ("annualized_return", perf.annualized_return),
            ("calmar", perf.calmar),
            ("fees_paid", perf.fees_paid),
        ] {
            near(ours, &b[name], 1e-9, &format!("backtest {k}: {name}"));
        }
        assert!(perf.trades > 100 && *bt.equity.last().unwrap() > 0.01, "backtest {k}: {perf:?}");
    }
}
