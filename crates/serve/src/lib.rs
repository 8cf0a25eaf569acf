//! `quantpipe serve`: the prediction API.
//!
//! Endpoints serve the production version of a registered model (or a version loaded by hand), with
//! an optional canary (a share of callers, sticky per `X-Caller-Id`) and shadow (scores every
//! request, logged only). A poller follows promotions and rollbacks in the registry and swaps
//! versions in atomically: each request works on the snapshot of routes it started with. Every
//! prediction gets an id and goes to the prediction log in batches, off the request path; feedback
//! is written before it is acknowledged. Overload is refused (503 + Retry-After), not queued.

pub mod api;
pub mod config;
pub mod endpoints;
pub mod input;
pub mod live;
pub mod log;
pub mod metrics;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use quantpipe_registry::{Registry, Scope};
use tokio::sync::Semaphore;
use utoipa::OpenApi;

pub use config::ServeConfig;
use config::ServerSettings;
use endpoints::{Endpoints, Loader};
use metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{file}: {message}")]
    Config { file: String, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("registry: {0}")]
    Registry(#[from] quantpipe_registry::RegistryError),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything a handler needs.
pub struct AppState {
    pub registry: Registry,
    pub scope: Scope,
    pub settings: ServerSettings,
    pub endpoints: Endpoints,
    pub loader: Loader,
    pub log: log::PredictionLog,
    pub ids: api::IdMaker,
    pub started: Instant,
    /// Live feature state for `POST /bars`, when `[live]` is configured.
    pub live: Option<Arc<live::LiveFeatures>>,
    /// One permit per request in flight (server.max_concurrency).
    pub capacity: Arc<Semaphore>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "quantpipe serve",
        description = "Predictions from registered models, with hot swap, canary and shadow routes, fallback rules and outcome feedback. Errors are {\"error\": {\"code\", \"message\", \"details\"}}."
    ),
    paths(
        api::health,
        api::list_models,
        api::show_model,
        api::predict,
        api::predict_batch,
        api::load_model,
        api::unload_model,
        api::promote_model,
        api::rollback_model,
        api::feedback,
        api::metrics
    )
)]
pub struct ApiDoc;

/// The server, built but not yet listening: the tests drive [`Server::router`] without a socket.
pub struct Server {
    pub state: Arc<AppState>,
    log_writer: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Loads every endpoint's versions (a version that fails to load is reported, and the endpoint
    /// starts without it) and starts the prediction log writer.
    pub async fn start(
        config: &ServeConfig,
        registry: Registry,
        scope: Scope,
        cache_dir: PathBuf,
        actor: String,
    ) -> Result<Server, ServeError> {
        config.validate().map_err(|message| ServeError::Config { file: "serve config".into(), message })?;
        let metrics = Arc::new(Metrics::default());
        let settings = config.server.clone();
        let (log, log_writer) = log::PredictionLog::start(
            registry.clone(),
            metrics.clone(),
            settings.log_queue,
            Duration::from_millis(settings.log_flush_ms),
        );
        let live = match &config.live {
            Some(l) => {
                Some(Arc::new(live::LiveFeatures::new(load_feature_set(&l.feature_set)?, l.max_symbols, l.history)))
            }
            None => None,
        };
        let endpoints = Endpoints::new(&config.endpoints, &metrics);
        let loader = Loader { registry: registry.clone(), scope: scope.clone(), cache_dir, metrics, actor };
        let outcome = loader.poll(&endpoints).await;
        for failure in &outcome.failures {
            eprintln!("quantpipe serve: {failure}");
        }
        let state = Arc::new(AppState {
            registry,
            scope,
            capacity: Arc::new(Semaphore::new(settings.max_concurrency)),
            settings,
            endpoints,
            loader,
            log,
            ids: api::IdMaker::new(),
            started: Instant::now(),
            live,
        });
        Ok(Server { state, log_writer })
    }

    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` resolves, following the registry meanwhile; then
    /// finishes in-flight requests and flushes the prediction log.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let poller = tokio::spawn(poll_registry(self.state.clone()));
        let app = self.router();
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
        poller.abort();
        let Server { state, log_writer } = self;
        state.log.flush().await;
        drop(state);
        // The writer ends once the last handle to the log is gone; a request task may still hold one briefly.
        let _ = tokio::time::timeout(Duration::from_secs(10), log_writer).await;
        served.map_err(ServeError::Io)
    }
}

async fn poll_registry(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_millis(state.settings.poll_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let outcome = state.loader.poll(&state.endpoints).await;
        for swap in &outcome.swapped {
            eprintln!("quantpipe serve: now serving {swap}");
        }
        for failure in &outcome.failures {
            eprintln!("quantpipe serve: {failure}");
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let body_limit = state.settings.max_body_bytes;
    Router::new()
        .route("/health", get(api::health))
        .route("/models", get(api::list_models))
        .route("/models/{name}", get(api::show_model).delete(api::unload_model))
        .route("/models/{name}/load", post(api::load_model))
        .route("/models/{name}/promote", post(api::promote_model))
        .route("/models/{name}/rollback", post(api::rollback_model))
        .route("/predict", post(api::predict))
        .route("/predict/batch", post(api::predict_batch))
        .route("/feedback", post(api::feedback))
        .route("/bars", post(api::push_bars))
        .route("/metrics", get(api::metrics))
        .route("/openapi.json", get(openapi))
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), limits))
        .with_state(state)
}

async fn openapi() -> Response {
    let mut response = ApiDoc::openapi().to_json().unwrap_or_default().into_response();
    response.headers_mut().insert("content-type", axum::http::HeaderValue::from_static("application/json"));
    response
}

/// Concurrency bound (503 + Retry-After when full, never an unbounded queue), request deadline,
/// and the request counters.
async fn limits(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let http = &state.loader.metrics.http;
    let Ok(_permit) = state.capacity.clone().try_acquire_owned() else {
        http.overloaded.fetch_add(1, Relaxed);
        state.loader.metrics.record_status(503);
        return api::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            format!(
                "{} requests are in flight (server.max_concurrency); retry shortly",
                state.settings.max_concurrency
            ),
        )
        .into_response();
    };
    let started = Instant::now();
    http.in_flight.fetch_add(1, Relaxed);
    let deadline = Duration::from_millis(state.settings.request_timeout_ms);
    let response = match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            http.timed_out.fetch_add(1, Relaxed);
            api::ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the request took longer than {} ms (server.request_timeout_ms)",
                    state.settings.request_timeout_ms
                ),
            )
            .into_response()
        }
    };
    http.in_flight.fetch_sub(1, Relaxed);
    http.latency.observe(started.elapsed().as_secs_f64());
    state.loader.metrics.record_status(response.status().as_u16());
    response
}

/// `standard`, or a feature-set TOML file (resolved by the caller relative to the config file).
fn load_feature_set(set: &str) -> Result<quantpipe_features::FeatureSet, ServeError> {
    if set == "standard" {
        return Ok(quantpipe_features::FeatureSet::standard());
    }
    let bad = |message: String| ServeError::Config { file: set.to_string(), message };
    let text = std::fs::read_to_string(set).map_err(|e| bad(format!("reading the live feature set: {e}")))?;
    quantpipe_features::FeatureSet::from_toml(set, &text).map_err(|e| bad(e.to_string()))
}

/// Binds `addr` (port 0 picks a free port).
pub async fn bind(addr: &str) -> Result<(tokio::net::TcpListener, SocketAddr), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr: addr.to_string(), source })?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
