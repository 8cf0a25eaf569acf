//! Timing harnesses of the models crate, run by the scripts under `bench/` (through
//! `bench/models_harness.sh`): `bench_models KIND FILUSDT_CSV_GZ OUT_DIR [ARGS…]`, where KIND is one of
//! `inference`, `linear`, `neural`, `svm` or `training` (each module's documentation gives its
//! arguments). One binary rather than one per harness: each links LightGBM, candle and Arrow, and
//! `cargo test` builds every example.

mod common;
mod inference;
mod linear;
mod neural;
mod svm;
mod training;

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    let kind = if args.len() > 1 { args.remove(1) } else { String::new() };
    match kind.as_str() {
        "inference" => inference::run(&args),
        "linear" => linear::run(&args),
        "neural" => neural::run(&args),
        "svm" => svm::run(&args),
        "training" => training::run(&args),
        _ => {
            eprintln!("usage: bench_models inference|linear|neural|svm|training FILUSDT_CSV_GZ OUT_DIR [ARGS…]");
            std::process::exit(2);
        }
    }
}
