//! `quantpipe`: from raw market data to trusted models. This binary only parses arguments, calls the
//! library crates' service functions and renders their results; it owns `anyhow` and exit codes.

mod data_cmd;
mod eval_cmd;
mod features_cmd;
mod models_cmd;
mod render;
mod run_cmd;
mod serve_cmd;
mod train_cmd;

// The server's prediction log allocates on request threads and frees on the database thread, which
// glibc's malloc does slowly; mimalloc measured +20 % requests/s (bench/RESULTS.md, Serving).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "quantpipe",
    version,
    about = "From raw market data to validated, versioned, served trading models.",
    long_about = "From raw market data to validated, versioned, served trading models.\n\n\
Start by ingesting a file of bars; quantpipe detects its layout, checks every row and stores it with a\n\
quality report:\n\n    quantpipe ingest data/sample/bitfinex_btcusd_1h.csv.gz\n    quantpipe data list\n    \
quantpipe data quality BTCUSD\n\nData lives under QUANTPIPE_HOME (default ./.quantpipe).",
    after_help = "Run `quantpipe COMMAND --help` for the options and examples of each command."
)]
struct Cli {
    /// Where quantpipe keeps its data (bar store, registry, artifacts).
    #[arg(long, global = true, env = "QUANTPIPE_HOME", default_value = ".quantpipe", value_name = "DIR")]
    home: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Read bar files, validate every row, store them and print the quality report.
    #[command(after_help = data_cmd::INGEST_EXAMPLES)]
    Ingest(data_cmd::IngestArgs),
    /// What is stored: list series, show bars, print quality reports, resample, remove.
    #[command(subcommand)]
    Data(data_cmd::DataCommand),
    /// The feature catalogue, and feature sets computed over stored bars or a file.
    #[command(subcommand)]
    Features(features_cmd::FeaturesCommand),
    /// Training targets that look forward, each with its declared look-ahead: list kinds, compute labels.
    #[command(subcommand)]
    Labels(eval_cmd::LabelsCommand),
    /// Honest validation: the purged, embargoed train/test splits a scheme makes.
    #[command(subcommand)]
    Validate(eval_cmd::ValidateCommand),
    /// Backtest out-of-sample predictions with costs; compare with buy-and-hold; PSR, deflated Sharpe, PBO.
    #[command(after_help = "Examples:\n  \
quantpipe backtest --input oos_predictions.csv --timeframe 1m --long-above 0.55 --short-below 0.45 --fee-bps 4 --slippage-bps 2\n  \
quantpipe backtest --input oos.csv --timeframe 1h --calendar fx --prob p_lgbm --prob p_linear --prob p_mlp --json\n\n\
The input has one row per bar in time order: a close column, probability-of-up column(s) and optionally ts.\n\
The position decided at a bar's close is traded at that close and held until the target changes.")]
    Backtest(eval_cmd::BacktestArgs),
    /// Train a model on features and a label: fitted on the earlier rows, scored on the held-out later
    /// rows (purged by label windows), saved as an artifact directory, optionally exported to ONNX.
    #[command(after_help = train_cmd::EXAMPLES)]
    Train(train_cmd::TrainArgs),
    /// The model registry: register, list, show, promote, archive, deprecate, roll back, compare,
    /// rank, audit and export model versions.
    #[command(after_help = models_cmd::MODELS_EXAMPLES)]
    Models(models_cmd::ModelsArgs),
    /// Training runs recorded in the registry: list and show.
    Runs(models_cmd::RunsArgs),
    /// Print a commented example pipeline file to start from.
    Init,
    /// The whole job from one pipeline file: data → features → labels → cross-validated training →
    /// backtest → overfitting statistics → registry → report (HTML, JSON, predictions).
    #[command(after_help = run_cmd::EXAMPLES)]
    Run(run_cmd::RunArgs),
    /// The prediction API: production models from the registry over HTTP, with hot swap on
    /// promotion or rollback, canary and shadow routes, fallback rules, a prediction log and feedback.
    #[command(after_help = serve_cmd::EXAMPLES)]
    Serve(serve_cmd::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ingest(args) => data_cmd::ingest(&cli.home, args),
        Command::Data(cmd) => data_cmd::data(&cli.home, cmd),
        Command::Features(cmd) => features_cmd::run(&cli.home, cmd),
        Command::Labels(cmd) => eval_cmd::labels(&cli.home, cmd),
        Command::Validate(cmd) => eval_cmd::validate(&cli.home, cmd),
        Command::Backtest(args) => eval_cmd::backtest(args),
        Command::Train(args) => train_cmd::train(&cli.home, args),
        Command::Models(args) => models_cmd::models(&cli.home, args),
        Command::Runs(args) => models_cmd::runs(&cli.home, args),
        Command::Init => run_cmd::init(),
        Command::Run(args) => run_cmd::run(&cli.home, args),
        Command::Serve(args) => serve_cmd::serve(&cli.home, args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
