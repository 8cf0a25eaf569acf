//! `quantpipe serve`: the prediction API over HTTP.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use quantpipe_serve::{ServeConfig, Server};

use crate::models_cmd::RegistryArgs;

pub const EXAMPLES: &str = "Examples:
  quantpipe serve                                   # every model with a production version, on 127.0.0.1:8001
  quantpipe serve --addr 0.0.0.0:8001 --config serve.toml
  curl -s localhost:8001/predict -d '{\"model_name\": \"direction_lgbm\", \"features\": {\"rsi_14\": 55.2, …}}'
  curl -s localhost:8001/feedback -d '{\"prediction_id\": \"…\", \"outcome\": 1}'

Promoting or rolling back a version (`quantpipe models promote|rollback`) is picked up within
server.poll_interval_ms and swapped in without failing a request. Over HTTP, with the server
started with QUANTPIPE_ADMIN_TOKEN set (16+ characters; without it these answer 403):
  curl -s localhost:8001/models/direction_lgbm/promote -H \"Authorization: Bearer $QUANTPIPE_ADMIN_TOKEN\" -d '{\"version\": \"1.2.0\"}'
  curl -s -X POST localhost:8001/models/direction_lgbm/rollback -H \"Authorization: Bearer $QUANTPIPE_ADMIN_TOKEN\" See docs/serve.md for serve.toml
(limits, canary and shadow routes, fallback rules) and every endpoint; GET /openapi.json describes them.";

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port, printed at start) [default: server.addr, 127.0.0.1:8001]
    #[arg(long, env = "QUANTPIPE_ADDR")]
    addr: Option<String>,
    /// serve.toml: limits, endpoints, canary/shadow routes and fallback rules
    #[arg(long, env = "QUANTPIPE_SERVE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn serve(home: &Path, args: ServeArgs) -> Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let mut config = ServeConfig::from_toml(&text, &path.display().to_string())?;
            // A feature-set file is named relative to the config file.
            if let Some(live) = config.live.as_mut() {
                if live.feature_set != "standard" && Path::new(&live.feature_set).is_relative() {
                    let base = path.parent().unwrap_or(Path::new("."));
                    live.feature_set = base.join(&live.feature_set).display().to_string();
                }
            }
            config
        }
        None => ServeConfig::default(),
    };
    if let Some(addr) = &args.addr {
        config.server.addr = addr.clone();
        config.validate().map_err(|m| anyhow::anyhow!("--addr: {m}"))?;
    }
    // Registry changes over HTTP (promote, rollback) only with a token, and the token only from the
    // environment: not a flag (other users see it in `ps`), not serve.toml (files get committed).
    if let Ok(token) = std::env::var("QUANTPIPE_ADMIN_TOKEN") {
        if token.len() < 16 {
            anyhow::bail!("QUANTPIPE_ADMIN_TOKEN: use at least 16 characters (e.g. `openssl rand -hex 16`)");
        }
        config.server.admin_token = Some(token);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    runtime.block_on(async {
        let registry = args.registry.open(home).await?;
        let scope = args.registry.scope()?;
        let (listener, local) = quantpipe_serve::bind(&config.server.addr).await?;
        let server =
            Server::start(&config, registry.clone(), scope, home.join("serve-cache"), args.registry.actor()).await?;
        for endpoint in server.state.endpoints.all() {
            let routes = endpoint.routes();
            let serving = routes.champion.as_ref().map_or("nothing loaded".to_string(), |c| c.model.reference());
            eprintln!("quantpipe serve: {} → {serving}", endpoint.config.name);
        }
        // The address line is what scripts (and the tests) wait for.
        println!("quantpipe serve: listening on http://{local}");
        server.run(listener, shutdown_signal()).await?;
        registry.close().await;
        eprintln!("quantpipe serve: stopped; prediction log flushed");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
