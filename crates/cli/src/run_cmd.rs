//! `quantpipe init` and `quantpipe run`: the whole job from one pipeline file.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use quantpipe_core::time::now_ms;
use quantpipe_pipeline::config::EXAMPLE;
use quantpipe_pipeline::register::register;
use quantpipe_pipeline::report::{self, ReportInput};
use quantpipe_pipeline::run::{evaluate, planned_fits, prepare, RunOptions, Silent};
use quantpipe_pipeline::{Observer, PipelineConfig, StageRecord};

use crate::models_cmd::{block_on, RegistryArgs};
use crate::render::{right, table};
use crate::train_cmd::code_version;

#[derive(Args)]
pub struct RunArgs {
    /// The pipeline file (TOML). `quantpipe init` prints a commented one.
    pipeline: PathBuf,
    /// Check the config and the data (read, features, labels, splits) without training or registering.
    #[arg(long)]
    check: bool,
    /// Print the run's summary as JSON (the same as summary.json) instead of tables.
    #[arg(long)]
    json: bool,
    /// The run's directory [default: QUANTPIPE_HOME/runs/NAME-UTCTIME].
    #[arg(short, long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub const EXAMPLES: &str = "Examples:\n  \
quantpipe init > pipeline.toml                 # a commented example to edit\n  \
quantpipe run examples/quickstart.toml         # the bundled sample: about 30 s on 2 cores\n  \
quantpipe run pipeline.toml --check            # config and data only, nothing trained\n  \
quantpipe run pipeline.toml --json > run.json  # for scripts\n\n\
Stages: data → features → labels → dataset → train (cross-validated, then refitted) → backtest →\n\
overfitting → register → report. A failing stage names itself and leaves the registry untouched.\n\
The run's directory holds report.html (open it in a browser; it works offline), summary.json,\n\
predictions.csv and the trained models. Same config and data give the same metrics and model files.";

/// Stage lines on stderr and a progress bar for stages that count steps.
struct Terminal {
    bar: Mutex<Option<ProgressBar>>,
    quiet: bool,
}

impl Observer for Terminal {
    fn stage_started(&self, stage: &'static str, steps: u64) {
        if self.quiet || !std::io::stderr().is_terminal() {
            return;
        }
        let bar = if steps > 0 { ProgressBar::new(steps) } else { ProgressBar::new_spinner() };
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(if steps > 0 {
                "{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({elapsed})"
            } else {
                "{prefix:>12} {spinner} {msg} ({elapsed})"
            })
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(stage);
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        *self.bar.lock().expect("not poisoned") = Some(bar);
    }
    fn step(&self, _stage: &'static str, message: &str) {
        if let Some(bar) = self.bar.lock().expect("not poisoned").as_ref() {
            bar.set_message(message.to_string());
            bar.inc(1);
        }
    }
    fn stage_finished(&self, r: &StageRecord) {
        if let Some(bar) = self.bar.lock().expect("not poisoned").take() {
            bar.finish_and_clear();
        }
        if self.quiet {
            return;
        }
        eprintln!("{:>12}  {:>8} → {:<8} {:>7.2} s  {}", r.stage, r.rows_in, r.rows_out, r.seconds, r.note);
        for w in &r.warnings {
            eprintln!("{:>12}  warning: {w}", "");
        }
    }
}

pub fn init() -> Result<ExitCode> {
    // The example's data path is relative to examples/; `init` output is meant for the repository's root.
    print!("{}", EXAMPLE.replace("\"../data/sample/", "\"data/sample/"));
    Ok(ExitCode::SUCCESS)
}

pub fn run(home: &Path, args: RunArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let started_at = quantpipe_core::time::format_iso(now_ms());
    let loaded = PipelineConfig::load(&args.pipeline)?;
    let out_dir = args.out.clone().unwrap_or_else(|| {
        let stamp: String = started_at.chars().filter(|c| c.is_ascii_digit() || *c == 'T').collect();
        home.join("runs").join(format!("{}-{stamp}Z", loaded.config.name))
    });
    let options = RunOptions { home: home.to_path_buf(), out_dir: out_dir.clone(), code_version: code_version() };
    let terminal = Terminal { bar: Mutex::new(None), quiet: args.json };
    let observer: &dyn Observer = if args.json { &Silent } else { &terminal };
    let prepared = prepare(&loaded, &options, observer)?;
    if args.check {
        let fits: u64 = loaded.config.models.iter().map(|m| planned_fits(m, prepared.splits.len())).sum();
        let checked = serde_json::json!({
            "pipeline": loaded.config.name,
            "config": loaded.path,
            "ok": true,
            "data": prepared.data,
            "dataset_rows": prepared.rows.len(),
            "features": prepared.width(),
            "splits": prepared.splits.len(),
            "models": loaded.config.models.iter().map(|m| &m.name).collect::<Vec<_>>(),
            "fits": fits,
            "stages": prepared.stages,
        });
        if args.json {
            println!("{}", serde_json::to_string_pretty(&checked)?);
        } else {
            println!(
                "{}: config and data are valid: {} rows × {} features, {} splits, {} models, {fits} fits to run (nothing trained)",
                args.pipeline.display(),
                prepared.rows.len(),
                prepared.width(),
                prepared.splits.len(),
                loaded.config.models.len()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating the run directory {}", out_dir.display()))?;
    let evaluated = evaluate(&loaded, &prepared, &options, observer)?;

    let registry_outcome = if loaded.config.registry.register {
        observer.stage_started("register", 0);
        let clock = Instant::now();
        let seconds = started.elapsed().as_secs_f64();
        let outcome = block_on(async {
            let scope = args.registry.scope()?;
            let registry = args.registry.open(home).await?;
            let outcome = register(
                &registry,
                &scope,
                &args.registry.actor(),
                &loaded,
                &prepared,
                &evaluated,
                &options.code_version,
                seconds,
            )
            .await;
            registry.close().await;
            anyhow::Ok(outcome?)
        })??;
        let record = StageRecord {
            stage: "register",
            rows_in: evaluated.models.len(),
            rows_out: outcome.versions.len(),
            seconds: clock.elapsed().as_secs_f64(),
            note: format!(
                "run {} in experiment {:?}: {}",
                outcome.run_id,
                outcome.experiment,
                outcome
                    .versions
                    .iter()
                    .map(|v| format!("{} ({})", v.version, v.stage.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            warnings: outcome
                .versions
                .iter()
                .filter(|v| !v.gate_failures.is_empty())
                .map(|v| {
                    format!(
                        "{} stays {}: the gate refused production: {}",
                        v.version,
                        v.stage.as_str(),
                        v.gate_failures.join("; ")
                    )
                })
                .collect(),
        };
        observer.stage_finished(&record);
        Some((outcome, record))
    } else {
        None
    };

    observer.stage_started("report", 0);
    let clock = Instant::now();
    let files = report::files(&out_dir, &evaluated);
    let mut stages: Vec<&StageRecord> = prepared.stages.iter().chain(&evaluated.stages).collect();
    if let Some((_, record)) = &registry_outcome {
        stages.push(record);
    }
    let mut input = ReportInput {
        loaded: &loaded,
        prepared: &prepared,
        evaluated: &evaluated,
        registry: registry_outcome.as_ref().map(|(o, _)| o),
        stages,
        code_version: &options.code_version,
        seconds: started.elapsed().as_secs_f64(),
        started_at,
    };
    // The report lists its own stage, timed over the predictions file (the bulk of the writing).
    report::write_predictions(&input, &files.predictions)?;
    let report_record = StageRecord {
        stage: "report",
        rows_in: evaluated.models.len(),
        rows_out: 3,
        seconds: clock.elapsed().as_secs_f64(),
        note: format!("{}", files.report.display()),
        warnings: Vec::new(),
    };
    input.stages.push(&report_record);
    input.seconds = started.elapsed().as_secs_f64();
    let warnings = report::write(&input, &files)?;
    observer.stage_finished(&StageRecord { warnings, ..report_record.clone() });

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report::summary(&input, &files))?);
    } else {
        let mut t = table(&[
            "model",
            "target",
            "out-of-sample",
            "Sharpe",
            // A cross-sectional run's benchmark is its equal-weight portfolio.
            if prepared.panel.is_some() { "equal weight" } else { "buy & hold" },
            "max DD",
            "deflated Sharpe",
            "registry",
        ]);
        for m in &evaluated.models {
            let bt = m.backtest.as_ref();
            let reg = registry_outcome
                .as_ref()
                .and_then(|(o, _)| o.versions.iter().find(|v| v.model == m.name))
                .map_or("not registered".into(), |v| format!("{} {}", v.version, v.stage.as_str()));
            let f = |v: Option<f64>, d: usize| v.filter(|x| x.is_finite()).map_or("–".into(), |x| format!("{x:.d$}"));
            t.add_row(vec![
                m.name.clone(),
                m.target.clone(),
                format!("{} {:.4}", m.headline_metric, m.headline()),
                f(bt.map(|b| b.strategy.sharpe), 2),
                f(bt.map(|b| b.buy_and_hold.sharpe), 2),
                bt.map_or("–".into(), |b| format!("{:.1} %", b.strategy.max_drawdown * 100.0)),
                f(m.sharpe_statistics.as_ref().map(|s| s.deflated_sharpe), 3),
                reg,
            ]);
        }
        right(&mut t, &[3, 4, 5, 6]);
        println!("{t}");
        for m in &evaluated.models {
            if let Some(search) = &m.search {
                let kept = &search.trials[search.chosen - 1];
                let params: Vec<String> = kept.params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                println!(
                    "{}: kept trial {} of {} by {} {:.4}: {}",
                    m.name,
                    search.chosen,
                    search.trials.len(),
                    search.metric,
                    kept.score,
                    params.join(", ")
                );
            }
        }
        if let Some(pbo) = &evaluated.overfitting.pbo {
            println!(
                "probability of backtest overfitting over {} trials: {:.3}",
                evaluated.overfitting.trials, pbo.pbo
            );
        }
        println!("report: {}", files.report.display());
        println!("run finished in {:.1} s", input.seconds);
    }
    Ok(ExitCode::SUCCESS)
}
