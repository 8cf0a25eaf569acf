//! Multi-symbol feature computation on the S&P 500 daily file with 1 thread and with all cores
//! (see bench/features.sh). Usage: bench_many PATH_TO_sp500_daily_5yr.csv.gz
use std::time::Instant;

use quantpipe_data::quality::{validate, ConflictRule, Policy};
use quantpipe_data::read::{read_bars, ReadOptions};
use quantpipe_features::{compute, compute_many, FeatureSet};

fn main() {
    let path = std::env::args().nth(1).expect("path to sp500_daily_5yr.csv.gz");
    let read = read_bars(std::path::Path::new(&path), &ReadOptions::default()).expect("read");
    let policy = Policy { repair: true, on_conflict: Some(ConflictRule::KeepFirst), ..Policy::default() };
    let bars: Vec<_> = read.series.into_iter().map(|raw| validate(raw, &policy).expect("valid").bars).collect();
    let refs: Vec<_> = bars.iter().collect();
    let set = FeatureSet::standard();
    let t = Instant::now();
    let one = compute_many(&set, &refs, 1);
    let single = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let all = compute_many(&set, &refs, 0);
    let parallel = t.elapsed().as_secs_f64();
    // Bitwise, so that NaN warm-up rows compare equal.
    let bits = |f: &quantpipe_features::FeatureFrame| -> Vec<u64> {
        f.columns.iter().flatten().map(|v| v.to_bits()).collect()
    };
    let same = one.iter().zip(&all).all(|(a, b)| a.ts == b.ts && bits(a) == bits(b))
        && bits(&compute(&set, refs[0])) == bits(&one[0]);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{{\"symbols\": {}, \"bars\": {}, \"columns\": {}, \"one_thread_s\": {single:.3}, \"all_cores_s\": {parallel:.3}, \"cores\": {cores}, \"speedup\": {:.2}, \"identical\": {same}}}",
        refs.len(),
        refs.iter().map(|b| b.len()).sum::<usize>(),
        set.columns().len(),
        single / parallel
    );
}
