//! Timing harness for `bench/backtest.sh`: the backtest of a signal series (simulate + statistics) and
//! purged k-fold splitting, on arrays the script writes. Prints JSON; median of `runs`.
//!
//! usage: bench_backtest DIR RUNS   (DIR holds close.f64 and target.f64, little-endian f64)

use std::time::Instant;

use quantpipe_eval::backtest::{simulate, Costs};
use quantpipe_eval::split::{purged_kfold, LabelTimes};

fn read(path: &std::path::Path) -> Vec<f64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::Path::new(&args[1]);
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(7);
    let close = read(&dir.join("close.f64"));
    let target = read(&dir.join("target.f64"));
    let costs = Costs { fee_bps: 4.0, slippage_bps: 2.0 };
    let mut backtest_s = Vec::new();
    let mut sharpe = 0.0;
    for _ in 0..runs {
        let t = Instant::now();
        let bt = simulate(&close, &target, costs).expect("valid inputs");
        let perf = bt.performance(525_600.0);
        backtest_s.push(t.elapsed().as_secs_f64());
        sharpe = perf.sharpe;
    }
    // Purged k-fold over 1-minute rows whose labels look 60 bars ahead.
    let start: Vec<i64> = (0..close.len() as i64).map(|i| i * 60_000).collect();
    let end: Vec<i64> = start.iter().map(|s| s + 60 * 60_000).collect();
    let mut kfold_s = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let times = LabelTimes::new(&start, &end).expect("sorted");
        let splits = purged_kfold(times, 5, 60 * 60_000).expect("valid");
        assert_eq!(splits.len(), 5);
        kfold_s.push(t.elapsed().as_secs_f64());
    }
    println!(
        "{{\"bars\": {}, \"quantpipe_backtest_s\": {:.6}, \"quantpipe_sharpe\": {}, \"quantpipe_purged_kfold_s\": {:.6}}}",
        close.len(),
        median(backtest_s),
        sharpe,
        median(kfold_s)
    );
}
