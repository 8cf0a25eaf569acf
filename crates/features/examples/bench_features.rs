//! Feature-engine benchmark driver (see bench/features.sh).
//!   bench_features spec OUT.json          — the TA-Lib calls of the standard set, for the Python side
//!   bench_features run DIR                — time compute on DIR/{open,high,low,close,volume}.f64
//!   bench_features per DIR OUT.json       — time each TA-Lib-covered indicator alone (one thread), with
//!                                           its TA-Lib calls, for bench/features_talib.py --per
//!   bench_features set OUT.toml           — the TA-Lib-covered part of the standard set as a feature-set
//!                                           file (the end-to-end pipeline benchmark, bench/pipeline.sh)
use std::path::Path;
use std::time::Instant;

use quantpipe_core::Bars;
use quantpipe_features::kernels::Bar;
use quantpipe_features::{compute, compute_with_threads, FeatureSet, FeatureState};

fn read(dir: &Path, name: &str) -> Vec<f64> {
    std::fs::read(dir.join(format!("{name}.f64")))
        .expect("input array")
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn read_bars(dir: &Path) -> Bars {
    let close = read(dir, "close");
    let n = close.len();
    Bars {
        ts: (0..n as i64).map(|i| 1_675_209_600_000 + i * 60_000).collect(),
        open: read(dir, "open"),
        high: read(dir, "high"),
        low: read(dir, "low"),
        close,
        volume: read(dir, "volume"),
        extras: Vec::new(),
    }
}

fn talib_subset() -> FeatureSet {
    let full = FeatureSet::standard();
    let features = full.features.into_iter().filter(|f| f.talib().iter().all(Option::is_some)).collect();
    FeatureSet { name: "standard-talib-covered".into(), features }
}

fn best_of(runs: usize, f: impl FnMut()) -> f64 {
    timed(runs, f).1
}

/// (first, best) wall time of `runs` calls: the first is what a fresh process pays (its memory is
/// new to it), the best what a warm one does.
fn timed(runs: usize, mut f: impl FnMut()) -> (f64, f64) {
    let times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    (times[0], times.iter().copied().fold(f64::INFINITY, f64::min))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("spec") => {
            let mut spec = Vec::new();
            for f in &talib_subset().features {
                for (name, call) in f.outputs().into_iter().zip(f.talib()) {
                    let call = call.expect("subset is TA-Lib-covered");
                    spec.push(serde_json::json!({"name": name, "function": call.function,
                        "inputs": call.inputs, "kwargs": call.kwargs, "output": call.output}));
                }
            }
            std::fs::write(&args[2], serde_json::to_vec(&spec).unwrap()).unwrap();
        }
        Some("set") => {
            let subset = talib_subset();
            let mut text = format!("name = {:?}\n", subset.name);
            for f in &subset.features {
                text.push_str("\n[[feature]]\n");
                let value = serde_json::to_value(f).unwrap();
                for (key, v) in value.as_object().unwrap() {
                    text.push_str(&format!("{key} = {v}\n"));
                }
            }
            FeatureSet::from_toml("subset", &text).expect("the written set parses back");
            std::fs::write(&args[2], text).unwrap();
        }
        Some("per") => {
            let bars = read_bars(Path::new(&args[2]));
            let mut rows = Vec::new();
            // QUANTPIPE_BENCH_ONLY=stddev times only the indicators whose outputs contain that text.
            let only = std::env::var("QUANTPIPE_BENCH_ONLY").unwrap_or_default();
            // QUANTPIPE_BENCH_PER_SET=standard times every indicator of the standard set instead.
            let set = if std::env::var("QUANTPIPE_BENCH_PER_SET").as_deref() == Ok("standard") {
                FeatureSet::standard()
            } else {
                talib_subset()
            };
            for f in set.features {
                if !f.outputs().join(",").contains(&only) {
                    continue;
                }
                let mut calls: Vec<serde_json::Value> = Vec::new();
                for call in f.talib().into_iter().flatten() {
                    let c =
                        serde_json::json!({"function": call.function, "inputs": call.inputs, "kwargs": call.kwargs});
                    if !calls.contains(&c) {
                        calls.push(c);
                    }
                }
                let outputs = f.outputs();
                let one = FeatureSet { name: "one".into(), features: vec![f] };
                let t = best_of(3, || {
                    std::hint::black_box(compute_with_threads(&one, &bars, 1));
                });
                rows.push(serde_json::json!({"feature": outputs.join(","), "calls": calls, "quantpipe_s": t}));
            }
            std::fs::write(&args[3], serde_json::to_vec(&rows).unwrap()).unwrap();
        }
        Some("run") => {
            let bars = read_bars(Path::new(&args[2]));
            let n = bars.len();
            let subset = talib_subset();
            let standard = FeatureSet::standard();
            let (t_subset_first, t_subset) = timed(3, || {
                std::hint::black_box(compute_with_threads(&subset, &bars, 1));
            });
            let t_full = best_of(3, || {
                std::hint::black_box(compute_with_threads(&standard, &bars, 1));
            });
            // `compute` spreads the indicators over every core.
            let t_subset_all = best_of(3, || {
                std::hint::black_box(compute(&subset, &bars));
            });
            let t_full_all = best_of(3, || {
                std::hint::black_box(compute(&standard, &bars));
            });
            // Streaming: warm the state on all but the last 100k bars, then time each update.
            let mut state = FeatureState::new(&standard);
            let split = n.saturating_sub(100_000);
            let bar = |i: usize| Bar::at(&bars, i);
            for i in 0..split {
                state.update(&bar(i));
            }
            let mut lat: Vec<f64> = (split..n)
                .map(|i| {
                    let b = bar(i);
                    let t = Instant::now();
                    std::hint::black_box(state.update(&b));
                    t.elapsed().as_secs_f64() * 1e6
                })
                .collect();
            lat.sort_by(f64::total_cmp);
            let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
            println!(
                "{}",
                serde_json::json!({
                    "bars": n,
                    "talib_covered_columns": subset.columns().len(),
                    "quantpipe_talib_covered_s": t_subset,
                    "quantpipe_talib_covered_first_s": t_subset_first,
                    "standard_columns": standard.columns().len(),
                    "quantpipe_standard_s": t_full,
                    "cores": std::thread::available_parallelism().map_or(1, |c| c.get()),
                    "quantpipe_talib_covered_all_cores_s": t_subset_all,
                    "quantpipe_standard_all_cores_s": t_full_all,
                    "stream_update_us_mean": lat.iter().sum::<f64>() / lat.len() as f64,
                    "stream_update_us_p50": pct(0.5),
                    "stream_update_us_p99": pct(0.99),
                })
            );
        }
        _ => eprintln!("usage: bench_features spec OUT.json | run DIR"),
    }
}
