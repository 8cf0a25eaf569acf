//! Every label on real data (FILUSDT 1m, EURUSD 1h), checked on chosen rows against values computed
//! directly from the raw bars: literal numbers taken from the CSV with pandas for the fixed-horizon
//! label, and a plain re-derivation of each rule (no shared code with the crate) for the others.
//! Tolerance: 1e-12 relative (the same arithmetic in a different order) unless a check says otherwise.

use quantpipe_core::testing::shared_data_file as shared;
use quantpipe_core::{Bars, Symbol};
use quantpipe_data::quality::{validate, Policy};
use quantpipe_data::read::{read_bars, ReadOptions};
use quantpipe_labels::{uniqueness_weights, Horizon, LabelSpec, Labels};

fn load(file: &str, symbol: &str) -> Bars {
    let opts = ReadOptions { symbol: Some(Symbol::new(symbol).unwrap()), ..Default::default() };
    let mut read = read_bars(&shared(file), &opts).unwrap();
    validate(read.series.remove(0), &Policy::default()).unwrap().bars
}

fn fil() -> &'static Bars {
    static BARS: std::sync::OnceLock<Bars> = std::sync::OnceLock::new();
    BARS.get_or_init(|| load("filusdt_perp_1m_2023.csv.gz", "FILUSDT"))
}

fn close_to(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-300) || a == b, "{what}: {a} vs {b}");
}

/// The labelled row built from bar `bar`, if it was kept.
fn at(labels: &Labels, bar: usize) -> Option<usize> {
    labels.row.binary_search(&bar).ok()
}

fn value(labels: &Labels, column: &str, k: usize) -> f64 {
    labels.column(column).unwrap_or_else(|| panic!("no column {column}"))[k]
}

/// Bars of 1-bar log returns ending at `i`: sample standard deviation of the last `window`.
fn sigma(bars: &Bars, i: usize, window: usize) -> f64 {
    let r: Vec<f64> = (i + 1 - window..=i).map(|j| (bars.close[j] / bars.close[j - 1]).ln()).collect();
    let m = r.iter().sum::<f64>() / window as f64;
    (r.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (window as f64 - 1.0)).sqrt()
}

#[test]
fn fixed_horizons_one_hour_four_hours_one_day_on_minute_bars() {
    let bars = fil();
    let spec = LabelSpec::from_toml(
        r#"kind = "horizon"
horizons = ["1h", "4h", "1d"]"#,
        "test.toml",
    )
    .unwrap();
    let labels = spec.compute(bars, None).unwrap();
    assert_eq!(labels.target, "dir_1h");
    assert_eq!(labels.lookahead, Horizon::parse("1d").unwrap());
    // Row 10 000 (2023-02-07 22:40 UTC, close 5.518). Values from pandas on the raw CSV:
    // close[i+H]/close[i] − 1, max(high[i+1..=i+H])/close[i] − 1, min(low[i+1..=i+H])/close[i] − 1.
    let k = at(&labels, 10_000).unwrap();
    assert_eq!(labels.ts[k], 1_675_809_600_000);
    let expected = [
        ("1h", 0.005074302283436083, 0.00924247915911569, -0.0007249003262050913),
        ("4h", 0.012685755708590207, 0.034070315331641954, -0.0007249003262050913),
        ("1d", -0.015222906850308027, 0.036063791228706066, -0.047118521203334485),
    ];
    for (h, ret, gain, loss) in expected {
        close_to(value(&labels, &format!("ret_{h}"), k), ret, h);
        close_to(value(&labels, &format!("max_gain_{h}"), k), gain, h);
        close_to(value(&labels, &format!("max_loss_{h}"), k), loss, h);
        assert_eq!(value(&labels, &format!("dir_{h}"), k), f64::from(u8::from(ret > 0.0)));
    }
    assert_eq!(labels.end_row[k], 10_000 + 1440);
    // The last February bar (row 40 319, 2023-02-28 23:59) has no bar one hour later: March is missing,
    // so a duration horizon cannot be completed and the row is dropped, as is every row of the last day.
    assert!(at(&labels, 40_319).is_none());
    assert!(at(&labels, 40_319 - 1440).is_some());
    assert!(at(&labels, bars.len() - 1440).is_none());
    // Every row of the 2 gaps' last day and the file's last day is gone: 3 × 1440.
    assert_eq!(labels.dropped.incomplete_window, 3 * 1440);
    assert_eq!(labels.len(), bars.len() - 3 * 1440);
}

#[test]
fn dead_zone_drops_or_flattens_small_moves() {
    let bars = fil();
    let base = r#"kind = "horizon"
horizons = [60]
dead_zone = 0.5
vol_window = 100
"#;
    let dropped = LabelSpec::from_toml(base, "t").unwrap().compute(bars, None).unwrap();
    let flat =
        LabelSpec::from_toml(&format!("{base}dead_zone_mode = \"flat\""), "t").unwrap().compute(bars, None).unwrap();
    for bar in [5_000usize, 77_777, 123_456, 300_000] {
        let s = sigma(bars, bar, 100);
        let log_ret = (bars.close[bar + 60] / bars.close[bar]).ln();
        let small = log_ret.abs() < 0.5 * s * 60f64.sqrt() || log_ret == 0.0;
        match at(&dropped, bar) {
            None => assert!(small, "bar {bar} dropped but moved {log_ret} against band {}", 0.5 * s * 60f64.sqrt()),
            Some(k) => {
                assert!(!small);
                assert_eq!(value(&dropped, "dir_60b", k), f64::from(u8::from(log_ret > 0.0)));
            }
        }
        let k = at(&flat, bar).unwrap();
        let class = if small {
            1.0
        } else if log_ret > 0.0 {
            2.0
        } else {
            0.0
        };
        assert_eq!(value(&flat, "dir_60b", k), class, "bar {bar}");
    }
    assert!(dropped.dropped.dead_zone > 10_000, "{:?}", dropped.dropped);
    assert_eq!(dropped.len() + dropped.dropped.dead_zone, flat.len());
}

#[test]
fn sigma_reversion_rule_on_chosen_events() {
    let bars = fil();
    let spec = LabelSpec::from_toml("kind = \"sigma_reversion\"\nlookahead = \"5m\"", "t").unwrap();
    let labels = spec.compute(bars, None).unwrap();
    let (window, k_sigma, fraction) = (20usize, 1.5, 0.5);
    let mut checked = 0;
    for bar in (1_000..bars.len() - 10).step_by(997) {
        let closes = &bars.close[bar + 1 - window..=bar];
        let mean = closes.iter().sum::<f64>() / window as f64;
        let sd = (closes.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / window as f64).sqrt();
        let z = if sd > 0.0 { (bars.close[bar] - mean) / sd } else { 0.0 };
        let complete = bars.ts[bar + 5] == bars.ts[bar] + 5 * 60_000;
        match at(&labels, bar) {
            None => assert!(z.abs() < k_sigma || !complete, "bar {bar}: z {z}"),
            Some(k) => {
                assert!(z.abs() >= k_sigma);
                // z divides differences of prices near 5 by a σ near 0.01: 1e-9 relative.
                let ours = value(&labels, "z", k);
                assert!((ours - z).abs() < 1e-9 * z.abs(), "z at bar {bar}: {ours} vs {z}");
                let level = bars.close[bar] - fraction * (bars.close[bar] - mean);
                let touched =
                    (bar + 1..=bar + 5).find(|&j| if z > 0.0 { bars.low[j] <= level } else { bars.high[j] >= level });
                assert_eq!(value(&labels, "reverts", k), f64::from(u8::from(touched.is_some())), "bar {bar}");
                assert_eq!(labels.end_row[k], touched.unwrap_or(bar + 5));
                close_to(value(&labels, "revert_level", k), level, "level");
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} events among the sampled bars");
    // Events are the minority of bars, and both outcomes occur.
    let reverts = labels.target_values();
    let share = reverts.iter().sum::<f64>() / reverts.len() as f64;
    assert!(labels.len() < bars.len() / 3 && share > 0.2 && share < 0.95, "{} events, {share}", labels.len());
}

#[test]
fn triple_barrier_and_meta_labels() {
    let bars = fil();
    let spec = LabelSpec::from_toml(
        "kind = \"triple_barrier\"\nhorizon = 30\nprofit_take = 2.0\nstop_loss = 1.0\nvol_window = 50",
        "t",
    )
    .unwrap();
    // A primary signal: long after an up bar, short after a down bar, none after a flat one.
    let side: Vec<f64> =
        (0..bars.len()).map(|i| if i == 0 { 0.0 } else { (bars.close[i] - bars.close[i - 1]).signum() }).collect();
    let plain = spec.compute(bars, None).unwrap();
    let meta = spec.compute(bars, Some(&side)).unwrap();
    assert_eq!(meta.target, "meta");
    let mut seen = [0usize; 3];
    for bar in (500..bars.len() - 40).step_by(1231) {
        let s = sigma(bars, bar, 50);
        let c = bars.close[bar];
        for (labels, trade_side) in [(&plain, 1.0), (&meta, side[bar])] {
            let Some(k) = at(labels, bar) else {
                assert_eq!(trade_side, 0.0, "bar {bar} dropped");
                continue;
            };
            let width = s * 30f64.sqrt();
            let (up, down) = if trade_side > 0.0 { (2.0, 1.0) } else { (1.0, 2.0) };
            let (upper, lower) = (c * (up * width).exp(), c * (-down * width).exp());
            close_to(value(labels, "upper", k), upper, "upper");
            close_to(value(labels, "lower", k), lower, "lower");
            let mut expected = (0.0, bar + 30, bars.close[bar + 30]);
            for j in bar + 1..=bar + 30 {
                let low_hit = bars.low[j] <= lower;
                let high_hit = bars.high[j] >= upper;
                if low_hit && (trade_side > 0.0 || !high_hit) {
                    expected = (-1.0, j, bars.open[j].min(lower));
                    break;
                }
                if high_hit {
                    expected = (1.0, j, bars.open[j].max(upper));
                    break;
                }
            }
            assert_eq!(value(labels, "tb_label", k), expected.0, "bar {bar}");
            assert_eq!(labels.end_row[k], expected.1);
            assert_eq!(value(labels, "tb_touch_ts", k), bars.ts[expected.1] as f64);
            close_to(value(labels, "tb_return", k), expected.2 / c - 1.0, "return");
            if labels.columns.iter().any(|(n, _)| n == "meta") {
                let paid = trade_side * (expected.2 / c - 1.0) > 0.0;
                assert_eq!(value(labels, "meta", k), f64::from(u8::from(paid)));
            } else {
                seen[(expected.0 + 1.0) as usize] += 1;
            }
        }
    }
    assert!(seen.iter().all(|&n| n > 0), "every barrier is touched somewhere: {seen:?}");
}

#[test]
fn regression_targets_volatility_risk_and_momentum() {
    let bars = fil();
    let vol = LabelSpec::from_toml("kind = \"future_volatility\"\nhorizon = \"1h\"", "t").unwrap().compute(bars, None);
    let vol = vol.unwrap();
    let risk = LabelSpec::from_toml("kind = \"risk_score\"\nhorizon = 60\nreference_window = 500", "t").unwrap();
    let risk = risk.compute(bars, None).unwrap();
    let momentum = LabelSpec::from_toml("kind = \"momentum_state\"\nhorizon = 15", "t").unwrap();
    let momentum = momentum.compute(bars, None).unwrap();
    let adverse = |i: usize| -> f64 {
        let low = bars.low[i + 1..=i + 60].iter().copied().fold(f64::INFINITY, f64::min);
        (1.0 - low / bars.close[i]).max(0.0)
    };
    for bar in [2_000usize, 54_321, 222_222, 345_000] {
        let k = at(&vol, bar).unwrap();
        let sum: f64 = (bar + 1..=bar + 60).map(|j| (bars.close[j] / bars.close[j - 1]).ln().powi(2)).sum();
        close_to(value(&vol, "future_vol_1h", k), sum.sqrt(), "future vol");

        let k = at(&risk, bar).unwrap();
        let mine = adverse(bar);
        let previous: Vec<f64> = (bar - 500..bar).map(adverse).collect();
        let below = previous.iter().filter(|&&a| a < mine).count() as f64;
        let equal = previous.iter().filter(|&&a| a == mine).count() as f64;
        close_to(value(&risk, "risk_score", k), 100.0 * (below + 0.5 * equal) / 500.0, "risk score");

        let k = at(&momentum, bar).unwrap();
        let past = (bars.close[bar] / bars.close[bar - 15]).ln();
        let next = (bars.close[bar + 15] / bars.close[bar]).ln();
        let accelerating = past != 0.0 && next * past.signum() > past.abs();
        assert_eq!(value(&momentum, "accelerating", k), f64::from(u8::from(accelerating)), "bar {bar}");
    }
    let scores = risk.target_values();
    assert!(scores.iter().all(|s| (0.0..=100.0).contains(s)));
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    assert!((mean - 50.0).abs() < 3.0, "a percentile averages about 50: {mean}");
}

#[test]
fn hourly_fx_with_weekend_gaps() {
    let bars = load("eurusd_1h.csv.gz", "EURUSD");
    // 24 bars ahead crosses the weekend; "1d" ahead needs the bar exactly 24 h later and drops Fridays.
    let by_bars =
        LabelSpec::from_toml("kind = \"horizon\"\nhorizons = [24]", "t").unwrap().compute(&bars, None).unwrap();
    let by_time =
        LabelSpec::from_toml("kind = \"horizon\"\nhorizons = [\"1d\"]", "t").unwrap().compute(&bars, None).unwrap();
    assert_eq!(by_bars.len(), bars.len() - 24);
    assert!(by_time.len() < by_bars.len() - 1000, "{} vs {}", by_time.len(), by_bars.len());
    for k in (0..by_time.len()).step_by(501) {
        assert_eq!(by_time.end_ts[k] - by_time.ts[k], 86_400_000);
    }
}

#[test]
fn uniqueness_weights_on_overlapping_windows() {
    let bars = fil();
    let labels = LabelSpec::from_toml("kind = \"horizon\"\nhorizons = [10]", "t").unwrap().compute(bars, None).unwrap();
    let w = uniqueness_weights(&labels, bars.len());
    assert_eq!(w.len(), labels.len());
    let mean = w.iter().sum::<f64>() / w.len() as f64;
    // A mean over 343 000 rows: summation rounding allows 1e-9.
    assert!((mean - 1.0).abs() < 1e-9, "{mean}");
    // In the middle every window overlaps 10 others fully: equal weights. The first rows overlap fewer.
    assert!(w[0] > w[5_000]);
    // Differences of prefix sums over 10⁵ bars: 1e-9.
    assert!((w[5_000] - w[100_000]).abs() < 1e-9, "uniform in the middle: {} vs {}", w[5_000], w[100_000]);
}
