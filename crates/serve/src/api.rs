//! Request and response shapes, the error shape, and the handlers.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use quantpipe_core::time::now_ms;
use quantpipe_models::neural::parse_sequence_name;
use quantpipe_models::Task;
use quantpipe_registry::{PredictionRecord, RegistryError, Route};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::endpoints::{Endpoint, LoadError, LoadedModel, Routes, Slot};
use crate::input::FeatureInput;
use crate::live::LiveFeatures;
use crate::AppState;
use quantpipe_features::kernels::Bar;

// ---------------------------------------------------------------------------------------------
// Errors

/// `{"error": {"code", "message", "details"}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `malformed_json`, `invalid_request`, `unknown_model`, `invalid_features`, …
    pub code: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: serde_json::Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: serde_json::Value::Null }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> ApiError {
        self.details = details;
        self
    }

    fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// The same error with its message saying which part of the request it is about.
    fn prefixed(mut self, at: &str) -> ApiError {
        self.message = format!("{at}{}", self.message);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail { code: self.code.to_string(), message: self.message, details: self.details },
        };
        let mut response = (self.status, json_bytes(&body)).into_response();
        response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
        }
        response
    }
}

fn json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec())
}

/// A JSON response.
pub struct JsonResponse<T>(pub StatusCode, pub T);

impl<T: Serialize> IntoResponse for JsonResponse<T> {
    fn into_response(self) -> Response {
        let mut response = (self.0, json_bytes(&self.1)).into_response();
        response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
        response
    }
}

fn registry_error(e: RegistryError) -> ApiError {
    match e {
        RegistryError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
        RegistryError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
        RegistryError::InvalidArgument(m) | RegistryError::InvalidReference(m) | RegistryError::InvalidName(m) => {
            ApiError::unprocessable("invalid_request", m)
        }
        e @ (RegistryError::InvalidTransition { .. }
        | RegistryError::NoRollbackTarget(_)
        | RegistryError::GateRefused { .. }) => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
        other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "registry_error", other.to_string()),
    }
}

/// The JSON body extractor: any content type (curl's `-d` sends a form type), errors in our shape.
/// Syntax errors are 400 `malformed_json`; well-formed JSON of the wrong shape is 422
/// `invalid_request` naming the field.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "body_too_large" } else { "unreadable_body" };
            ApiError::new(status, code, rejection.body_text())
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the request body is empty; send a JSON object",
        ));
    }
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(other) => ApiError::unprocessable(
                "invalid_request",
                format!("the request body must be a JSON object, not {}", kind(&other)),
            ),
            Err(e) => ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("malformed JSON: {e}")),
        });
    }
    // The fast path; only a failure is parsed again to find the field to name.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let at = if path == "." { String::new() } else { format!("field `{path}`: ") };
                ApiError::unprocessable("invalid_request", format!("{at}{inner}"))
                    .with_details(serde_json::json!({ "field": path }))
            }
            _ => ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("malformed JSON: {inner}")),
        }
    })?;
    de.end().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", format!("malformed JSON: {e}")))?;
    Ok(value)
}

// ---------------------------------------------------------------------------------------------
// Shapes

/// Either `features` (an array in the model's feature order, or an object of feature name → value)
/// or `symbol` (the latest live features of bars pushed with `POST /bars`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// The endpoint (by default the registered model's name).
    pub model_name: String,
    /// `[f1, f2, …]` in the model's order, or `{"name": value, …}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub features: Option<FeatureInput>,
    /// Predict from this symbol's live features instead.
    #[serde(default)]
    pub symbol: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BarsRequest {
    pub symbol: String,
    /// In time order, each after the symbol's last bar.
    pub bars: Vec<BarInput>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BarInput {
    /// Bar open time, UTC milliseconds since the epoch.
    pub ts: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BarsResponse {
    pub symbol: String,
    pub accepted: usize,
    pub bars_seen: u64,
    pub last_ts: i64,
    pub feature_set: String,
    /// Features not yet past their warm-up (never defined) for this symbol.
    pub warming_up_features: usize,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    pub model_name: String,
    /// Rows, each an array in the model's order or an object of name → value.
    #[schema(value_type = Option<Vec<Object>>)]
    pub rows: Option<Vec<FeatureInput>>,
    /// Or symbols: one prediction per symbol from its latest live features (bars pushed with
    /// `POST /bars`), all answered by the same version.
    pub symbols: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Prediction {
    /// Prediction id, for `POST /feedback`.
    pub id: String,
    /// Class for classifiers (1 = up for a direction model), value for regressors.
    pub prediction: f64,
    /// Binary classifiers: P(class 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Multiclass: one probability per class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<f64>>,
    /// Classifiers: probability of the predicted class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PredictResponse {
    /// Prediction id, for `POST /feedback`.
    pub id: String,
    /// Class for classifiers (1 = up for a direction model), value for regressors.
    pub prediction: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    pub model_name: String,
    /// `name@1.2.0`; null when the fallback answered.
    pub model_version: Option<String>,
    /// champion, canary or fallback.
    pub route: String,
    /// model or fallback.
    pub source: String,
    /// Live predictions: the open time of the bar whose features were used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bar_ts: Option<i64>,
    /// Time spent in the server, microseconds.
    pub latency_us: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    pub model_name: String,
    pub model_version: Option<String>,
    pub route: String,
    pub source: String,
    pub predictions: Vec<Prediction>,
    pub latency_us: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    pub prediction_id: String,
    /// The realised outcome (the label the prediction tried to predict, or a return).
    pub outcome: f64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FeedbackResponse {
    pub prediction_id: String,
    pub outcome: f64,
    pub recorded_at: i64,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    /// `1.2.0`, a stage (`staging`), or `latest`; absent: follow the production version.
    #[serde(default)]
    pub version: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ServedVersion {
    pub version: String,
    pub version_id: i64,
    pub route: String,
    pub family: String,
    pub task: String,
    pub stage: String,
    /// Canary share of callers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_share: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointInfo {
    pub model_name: String,
    pub registered_model: String,
    /// following_production, pinned or unloaded.
    pub mode: String,
    pub loaded: Vec<ServedVersion>,
    pub has_fallback: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_names: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metrics: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// ok when every endpoint has a model, degraded otherwise.
    pub status: String,
    pub scope: String,
    pub models: Vec<EndpointInfo>,
    pub uptime_s: f64,
    pub prediction_log_queued: usize,
}

// ---------------------------------------------------------------------------------------------
// Helpers

/// Prediction ids: 12 hex digits of milliseconds, 8 of a per-process random tag, 12 of a counter.
/// Time-ordered, unique across restarts, made without a lock.
pub struct IdMaker {
    tag: u32,
    counter: std::sync::atomic::AtomicU64,
}

impl IdMaker {
    pub fn new() -> IdMaker {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        h.write_u32(std::process::id());
        IdMaker { tag: h.finish() as u32, counter: std::sync::atomic::AtomicU64::new(0) }
    }

    /// A new id, and a well-mixed number drawn from it (routes callers without a key).
    pub fn next(&self) -> (String, u64) {
        let n = self.counter.fetch_add(1, Relaxed);
        let id = format!("{:012x}{:08x}{:012x}", now_ms() as u64 & 0xffff_ffff_ffff, self.tag, n & 0xffff_ffff_ffff);
        (id, mix(n ^ ((self.tag as u64) << 32)))
    }
}

impl Default for IdMaker {
    fn default() -> Self {
        IdMaker::new()
    }
}

fn mix(mut z: u64) -> u64 {
    // splitmix64's finaliser.
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable hash of the caller key (FNV-1a, mixed), so canary stickiness survives restarts.
pub fn caller_hash(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// One row of features for `model`: an array in its order or a name → value map. Every problem is
/// listed (missing, unknown, non-numeric names), not just the first.
pub fn feature_row(model: &LoadedModel, input: &FeatureInput, at: &str) -> Result<Vec<f64>, ApiError> {
    let names = model.feature_names();
    let invalid = |message: String, details: serde_json::Value| {
        ApiError::unprocessable("invalid_features", message).with_details(details)
    };
    match input {
        FeatureInput::Vector { values, bad } => {
            let given = values.len() + bad.len();
            if given != names.len() {
                return Err(invalid(
                    format!("{at}: {given} values given; {} expects {} features", model.reference(), names.len()),
                    serde_json::json!({ "expected": names.len(), "given": given }),
                ));
            }
            if let Some((i, what)) = bad.first() {
                let listed: Vec<serde_json::Value> = bad
                    .iter()
                    .map(|(i, w)| serde_json::json!({ "index": i, "feature": names[*i], "value": w }))
                    .collect();
                return Err(invalid(
                    format!(
                        "{at}: {} value(s) are not numbers (first: {} at index {i} is {what})",
                        bad.len(),
                        names[*i]
                    ),
                    serde_json::json!({ "not_numbers": listed }),
                ));
            }
            Ok(values.clone())
        }
        FeatureInput::Named { values, bad } => {
            let mut row = vec![f64::NAN; names.len()];
            let mut seen = vec![false; names.len()];
            let mut unknown = Vec::new();
            for (name, v) in values {
                match model.columns.get(name) {
                    None => unknown.push(name.clone()),
                    Some(&i) => {
                        row[i] = *v;
                        seen[i] = true;
                    }
                }
            }
            let mut not_numbers = Vec::new();
            for (name, what) in bad {
                match model.columns.get(name) {
                    None => unknown.push(name.clone()),
                    Some(&i) => {
                        seen[i] = true;
                        not_numbers.push(serde_json::json!({ "feature": name, "value": what }));
                    }
                }
            }
            let missing: Vec<&String> = names.iter().zip(&seen).filter(|(_, s)| !**s).map(|(n, _)| n).collect();
            if !(missing.is_empty() && unknown.is_empty() && not_numbers.is_empty()) {
                let mut parts = Vec::new();
                if !missing.is_empty() {
                    parts.push(format!("{} missing ({})", missing.len(), preview(&missing)));
                }
                if !unknown.is_empty() {
                    parts.push(format!("{} unknown ({})", unknown.len(), preview(&unknown)));
                }
                if let Some(first) = not_numbers.first() {
                    parts.push(format!("{} not numbers (first: {first})", not_numbers.len()));
                }
                return Err(invalid(
                    format!("{at}: features for {}: {}", model.reference(), parts.join("; ")),
                    serde_json::json!({ "missing": missing, "unknown": unknown, "not_numbers": not_numbers }),
                ));
            }
            Ok(row)
        }
    }
}

fn preview<T: std::fmt::Display>(names: &[T]) -> String {
    let shown: Vec<String> = names.iter().take(5).map(|n| n.to_string()).collect();
    if names.len() > 5 {
        format!("{}, …", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A model's raw outputs for one row, shaped for the client.
pub fn shape(task: Option<Task>, outputs: &[f64]) -> (f64, Option<f64>, Option<Vec<f64>>, Option<f64>) {
    match task {
        Some(Task::Binary) => {
            let p = outputs[0];
            (if p >= 0.5 { 1.0 } else { 0.0 }, Some(p), None, Some(p.max(1.0 - p)))
        }
        Some(Task::Multiclass { .. }) if outputs.len() > 1 => {
            let (best, p) =
                outputs
                    .iter()
                    .enumerate()
                    .fold((0, f64::NEG_INFINITY), |acc, (i, &p)| if p > acc.1 { (i, p) } else { acc });
            (best as f64, None, Some(outputs.to_vec()), Some(p))
        }
        _ => (outputs[0], None, None, None),
    }
}

fn unknown_model(state: &AppState, name: &str) -> ApiError {
    let served: Vec<String> = state.endpoints.all().iter().map(|e| e.config.name.clone()).collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_model",
        format!(
            "no model named {name:?} is served here (served: {})",
            if served.is_empty() { "none".into() } else { served.join(", ") }
        ),
    )
    .with_details(serde_json::json!({ "served": served }))
}

struct Answer {
    outputs: Vec<f64>,
    /// None: the fallback answered.
    slot: Option<Slot>,
    route: Route,
}

/// Rows above which a call leaves the request threads for the blocking pool: a big batch must not
/// hold up other requests, and it can then be abandoned at the request deadline.
const INLINE_ROWS: usize = 64;

/// Runs the answering model on `rows`, under the endpoint's time budget when it has one. `None`:
/// the budget was missed.
async fn run_model(endpoint: &Endpoint, slot: &Slot, rows: Vec<f64>) -> Result<Option<Vec<f64>>, ApiError> {
    let started = Instant::now();
    let width = slot.model.feature_names().len().max(1);
    let budget = endpoint.config.time_budget_ms.map(Duration::from_millis);
    let result = if budget.is_none() && rows.len() / width <= INLINE_ROWS {
        slot.model.model.predict(&rows)
    } else {
        let model = slot.model.clone();
        let job = tokio::task::spawn_blocking(move || model.model.predict(&rows));
        // Without a budget the request deadline (the limits layer) is the only bound.
        match tokio::time::timeout(budget.unwrap_or(Duration::MAX), job).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => {
                slot.stats.errors.fetch_add(1, Relaxed);
                return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "prediction_failed", e.to_string()));
            }
            Err(_) => return Ok(None),
        }
    };
    slot.stats.latency.observe(started.elapsed().as_secs_f64());
    match result {
        Ok(outputs) => Ok(Some(outputs)),
        Err(e) => {
            slot.stats.errors.fetch_add(1, Relaxed);
            Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "prediction_failed", e.to_string()))
        }
    }
}

/// The caller's key for sticky canary routing: the `X-Caller-Id` header.
fn caller_key(headers: &HeaderMap) -> Option<&str> {
    headers.get("x-caller-id").and_then(|v| v.to_str().ok())
}

/// What a request gives to predict from.
pub enum Inputs<'a> {
    /// Rows sent as JSON (arrays or name → value objects).
    Json(&'a [FeatureInput]),
    /// The latest live features of symbols, one row each.
    Live(&'a [LiveSnapshot]),
}

/// A symbol's live features at the moment the request read them.
pub struct LiveSnapshot {
    pub symbol: String,
    pub row: Vec<f64>,
    /// The rows before `row`, most recent last.
    pub history: Vec<Arc<Vec<f64>>>,
    /// Per column: past its warm-up for this symbol.
    pub defined: Vec<bool>,
    pub bar_ts: i64,
    pub bars_seen: u64,
    pub live: Arc<LiveFeatures>,
}

impl Inputs<'_> {
    fn len(&self) -> usize {
        match self {
            Inputs::Json(rows) => rows.len(),
            Inputs::Live(snapshots) => snapshots.len(),
        }
    }

    /// The rows in `model`'s feature order.
    fn rows_for(&self, model: &LoadedModel) -> Result<Vec<Vec<f64>>, ApiError> {
        match self {
            Inputs::Json(inputs) => inputs
                .iter()
                .enumerate()
                .map(|(i, input)| {
                    let at = if inputs.len() == 1 { "features".to_string() } else { format!("rows[{i}]") };
                    feature_row(model, input, &at)
                })
                .collect(),
            Inputs::Live(snapshots) => snapshots
                .iter()
                .enumerate()
                .map(|(i, snapshot)| {
                    live_row(model, snapshot).map_err(|e| {
                        if snapshots.len() == 1 {
                            e
                        } else {
                            e.prefixed(&format!("symbols[{i}] ({}): ", snapshot.symbol))
                        }
                    })
                })
                .collect(),
        }
    }

    /// Feature `name` of row `i`, for fallback rules.
    fn feature(&self, i: usize, name: &str) -> Option<f64> {
        match self {
            Inputs::Json(inputs) => inputs[i].get(name),
            Inputs::Live(snapshots) => snapshots[i].live.column(name).map(|c| snapshots[i].row[c]),
        }
    }

    /// What the prediction log stores as a row's inputs when no model row was built (fallback).
    fn logged(&self, i: usize) -> serde_json::Value {
        match self {
            Inputs::Json(inputs) => inputs[i].to_json(),
            Inputs::Live(snapshots) => {
                serde_json::json!({ "symbol": snapshots[i].symbol, "bar_ts": snapshots[i].bar_ts })
            }
        }
    }
}

/// Whether column `c` had been defined by the row `lag` rows before the latest: a NaN there before
/// the column's first value is warm-up, after it a value in its own right (as in training).
fn defined_at_lag(snapshot: &LiveSnapshot, c: usize, lag: usize) -> bool {
    let older = snapshot.history.len() - lag;
    snapshot.history[..=older].iter().any(|row| row[c].is_finite())
}

/// A model's row from live features: every feature it needs must be computed by the server's set
/// (the same set it was trained on) and past its warm-up for the symbol (defined at least once).
fn live_row(model: &LoadedModel, snapshot: &LiveSnapshot) -> Result<Vec<f64>, ApiError> {
    let live = &snapshot.live;
    let trained_on = &model.version.feature_set_hash;
    if !trained_on.is_empty() && *trained_on != live.set_hash {
        return Err(ApiError::unprocessable(
            "feature_set_mismatch",
            format!(
                "{} was trained on feature set {:?} (hash {trained_on}); this server computes {:?} (hash {}): \
                 live features would not be the numbers it learnt from",
                model.reference(),
                model.version.feature_set,
                live.set_name,
                live.set_hash
            ),
        ));
    }
    let mut row = Vec::with_capacity(model.feature_names().len());
    let mut absent = Vec::new();
    let mut warming = Vec::new();
    let mut too_far_back = 0;
    for name in model.feature_names() {
        // A window model's input `rsi_14[t-3]` is column rsi_14 three rows before the latest.
        let (column, lag) = match live.column(name) {
            Some(c) => (Some(c), 0),
            None => match parse_sequence_name(name) {
                Some((feature, lag)) => (live.column(feature), lag),
                None => (None, 0),
            },
        };
        let Some(c) = column else {
            absent.push(name.clone());
            continue;
        };
        if lag > live.history() {
            too_far_back = too_far_back.max(lag);
            continue;
        }
        let value = match lag {
            0 => Some(snapshot.row[c]),
            k => snapshot.history.len().checked_sub(k).map(|i| snapshot.history[i][c]),
        };
        match value {
            // Before the symbol's first bar, or before the column's warm-up ended.
            None => warming.push(name.clone()),
            Some(v) => {
                if !snapshot.defined[c] || (lag > 0 && v.is_nan() && !defined_at_lag(snapshot, c, lag)) {
                    warming.push(name.clone());
                }
                row.push(v);
            }
        }
    }
    if too_far_back > 0 {
        return Err(ApiError::unprocessable(
            "history_too_short",
            format!(
                "{} reads features {too_far_back} rows back, and this server keeps {} rows per symbol: set \
                 [live] history = {too_far_back} (or more) in serve.toml",
                model.reference(),
                live.history()
            ),
        ));
    }
    if !absent.is_empty() {
        return Err(ApiError::unprocessable(
            "feature_set_mismatch",
            format!(
                "{} needs {} feature(s) the live set does not compute ({})",
                model.reference(),
                absent.len(),
                preview(&absent)
            ),
        )
        .with_details(serde_json::json!({ "absent": absent })));
    }
    if !warming.is_empty() {
        return Err(ApiError::unprocessable(
            "warming_up",
            format!(
                "{} of {}'s features are not defined yet for {} after {} bar(s) ({}); push more history first",
                warming.len(),
                model.reference(),
                snapshot.symbol,
                snapshot.bars_seen,
                preview(&warming)
            ),
        )
        .with_details(serde_json::json!({ "undefined": warming, "bars_seen": snapshot.bars_seen })));
    }
    Ok(row)
}

/// Scores `inputs` (one or many rows) on an endpoint: the routed model, or the fallback.
async fn answer(
    endpoint: &Endpoint,
    routes: &Routes,
    inputs: &Inputs<'_>,
    route_hash: u64,
) -> Result<(Answer, Vec<Vec<f64>>), ApiError> {
    if let Some((slot, route)) = routes.answering(route_hash) {
        let rows = inputs.rows_for(&slot.model)?;
        let flat: Vec<f64> = rows.concat();
        if let Some(outputs) = run_model(endpoint, slot, flat).await? {
            slot.stats.predictions.fetch_add(rows.len() as u64, Relaxed);
            return Ok((Answer { outputs, slot: Some(slot.clone()), route }, rows));
        }
    }
    let Some(rule) = &endpoint.config.fallback else {
        let reason = if routes.champion.is_some() { "missed its time budget" } else { "is not loaded" };
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "model_unavailable",
            format!("the model for {:?} {reason} and the endpoint has no fallback rule", endpoint.config.name),
        ));
    };
    let mut outputs = Vec::with_capacity(inputs.len());
    for i in 0..inputs.len() {
        match rule.answer(|name| inputs.feature(i, name)) {
            Some(v) => outputs.push(v),
            None => {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "model_unavailable",
                    format!(
                        "no model is answering on {:?} and its fallback rule needs feature {:?} by name",
                        endpoint.config.name,
                        rule.feature.as_deref().unwrap_or("?")
                    ),
                ))
            }
        }
    }
    endpoint.fallbacks.fetch_add(inputs.len() as u64, Relaxed);
    Ok((Answer { outputs, slot: None, route: Route::Champion }, Vec::new()))
}

/// What one answered row leaves in the prediction log.
struct Logged<'a> {
    slot: Option<&'a Slot>,
    route: &'a str,
    /// The row the model saw (None for a fallback).
    features: Option<Vec<f64>>,
    inputs: serde_json::Value,
    latency_us: u64,
}

fn log_record(state: &AppState, endpoint: &str, output: &Prediction, logged: Logged<'_>) -> PredictionRecord {
    let Logged { slot, route, features, inputs, latency_us } = logged;
    PredictionRecord {
        id: output.id.clone(),
        scope: state.scope.clone(),
        endpoint: endpoint.to_string(),
        version_id: slot.map(|s| s.model.version.id),
        version: slot.map_or_else(|| "fallback".to_string(), |s| s.model.reference()),
        route: route.to_string(),
        source: if slot.is_some() { "model" } else { "fallback" }.to_string(),
        features,
        inputs,
        output: serde_json::json!({
            "prediction": output.prediction,
            "probability": output.probability,
            "probabilities": output.probabilities,
        }),
        latency_us: latency_us as i64,
        created_at: now_ms(),
    }
}

/// The shadow scores the same rows; its answers go to the log only. Rows are re-read by name when
/// its feature list differs from the answering model's.
async fn shadow(
    state: &AppState,
    endpoint: &Endpoint,
    routes: &Routes,
    answered: &Answer,
    inputs: &Inputs<'_>,
    rows: &[Vec<f64>],
    ids: &[String],
) {
    let Some(shadow) = &routes.shadow else { return };
    if answered.slot.as_ref().is_some_and(|s| s.model.version.id == shadow.model.version.id) {
        return;
    }
    let same_features = answered.slot.as_ref().is_some_and(|s| s.model.feature_names() == shadow.model.feature_names());
    let shadow_rows =
        if same_features && rows.len() == inputs.len() { Ok(rows.to_vec()) } else { inputs.rows_for(&shadow.model) };
    let Ok(shadow_rows) = shadow_rows else {
        shadow.stats.errors.fetch_add(1, Relaxed);
        return;
    };
    let started = Instant::now();
    let Ok(Some(outputs)) = run_model(endpoint, shadow, shadow_rows.concat()).await else { return };
    shadow.stats.predictions.fetch_add(shadow_rows.len() as u64, Relaxed);
    let latency = started.elapsed().as_micros() as u64;
    let width = shadow.model.task.outputs();
    for ((row, out), answered_id) in shadow_rows.iter().zip(outputs.chunks(width)).zip(ids) {
        let (id, _) = state.ids.next();
        let (prediction, probability, probabilities, confidence) = shape(Some(shadow.model.task), out);
        let p = Prediction { id: id.clone(), prediction, probability, probabilities, confidence };
        let logged = Logged {
            slot: Some(shadow),
            route: "shadow",
            features: Some(row.clone()),
            inputs: serde_json::json!({ "shadow_of": answered_id }),
            latency_us: latency,
        };
        state.log.push(log_record(state, &endpoint.config.name, &p, logged));
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// One prediction.
#[utoipa::path(post, path = "/predict", request_body = PredictRequest,
    params(("X-Caller-Id" = Option<String>, Header, description = "Caller key: canary routing is sticky per key")),
    responses(
        (status = 200, body = PredictResponse),
        (status = 400, description = "malformed JSON", body = ErrorBody),
        (status = 404, description = "unknown model", body = ErrorBody),
        (status = 422, description = "wrong fields, missing, unknown or non-finite features", body = ErrorBody),
        (status = 503, description = "no model and no fallback, or overloaded", body = ErrorBody),
    ))]
pub async fn predict(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<PredictRequest>,
) -> Result<JsonResponse<PredictResponse>, ApiError> {
    let started = Instant::now();
    let endpoint =
        state.endpoints.get(&request.model_name).ok_or_else(|| unknown_model(&state, &request.model_name))?;
    let routes = endpoint.routes();
    let (id, random) = state.ids.next();
    let route_hash = caller_key(&headers).map_or(random, caller_hash);
    let json_rows;
    let snapshot;
    let inputs = match (request.features, &request.symbol) {
        (Some(features), None) => {
            json_rows = [features];
            Inputs::Json(&json_rows)
        }
        (None, Some(symbol)) => {
            snapshot = live_snapshot(&state, symbol)?;
            Inputs::Live(std::slice::from_ref(&snapshot))
        }
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "give either `features` (an array or a name → value object) or `symbol` (live features), not both",
            ))
        }
    };
    let (answered, rows) = answer(&endpoint, &routes, &inputs, route_hash).await?;
    let task = answered.slot.as_ref().map(|s| s.model.task).or(routes.task);
    let (prediction, probability, probabilities, confidence) = shape(task, &answered.outputs);
    let prediction = Prediction { id: id.clone(), prediction, probability, probabilities, confidence };
    let latency_us = started.elapsed().as_micros() as u64;
    let route = if answered.slot.is_some() { answered.route.as_str() } else { "fallback" };
    let mut context = serde_json::Map::new();
    if let Some(caller) = caller_key(&headers) {
        context.insert("caller".into(), caller.into());
    }
    if let Inputs::Live([snapshot]) = &inputs {
        context.insert("symbol".into(), snapshot.symbol.clone().into());
        context.insert("bar_ts".into(), snapshot.bar_ts.into());
    }
    if rows.is_empty() {
        context.insert("request".into(), inputs.logged(0));
    }
    let logged = Logged {
        slot: answered.slot.as_ref(),
        route,
        features: rows.first().cloned(),
        inputs: serde_json::Value::Object(context),
        latency_us,
    };
    state.log.push(log_record(&state, &endpoint.config.name, &prediction, logged));
    shadow(&state, &endpoint, &routes, &answered, &inputs, &rows, std::slice::from_ref(&id)).await;
    Ok(JsonResponse(
        StatusCode::OK,
        PredictResponse {
            id: prediction.id,
            prediction: prediction.prediction,
            probability: prediction.probability,
            probabilities: prediction.probabilities,
            confidence: prediction.confidence,
            model_name: endpoint.config.name.clone(),
            model_version: answered.slot.as_ref().map(|s| s.model.reference()),
            route: route.to_string(),
            source: if answered.slot.is_some() { "model" } else { "fallback" }.to_string(),
            bar_ts: match &inputs {
                Inputs::Live([snapshot]) => Some(snapshot.bar_ts),
                _ => None,
            },
            latency_us,
        },
    ))
}

fn live_snapshot(state: &AppState, symbol: &str) -> Result<LiveSnapshot, ApiError> {
    let live = state.live.clone().ok_or_else(|| {
        ApiError::unprocessable(
            "live_features_off",
            "this server computes no live features: add [live] feature_set = \"standard\" to serve.toml, push bars \
             with POST /bars, or send `features`",
        )
    })?;
    let tracked = live.symbol(symbol).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_symbol",
            format!("no bars were pushed for {symbol:?} (POST /bars)"),
        )
    })?;
    let s = tracked.lock().unwrap_or_else(|e| e.into_inner());
    Ok(LiveSnapshot {
        symbol: symbol.to_string(),
        row: s.row.clone(),
        history: s.history.iter().cloned().collect(),
        defined: s.defined.clone(),
        bar_ts: s.last_ts.unwrap_or_default(),
        bars_seen: s.bars_seen,
        live: live.clone(),
    })
}

/// Pushes bars into a symbol's live feature state.
#[utoipa::path(post, path = "/bars", request_body = BarsRequest,
    responses(
        (status = 200, body = BarsResponse),
        (status = 413, description = "more bars than max_batch_rows", body = ErrorBody),
        (status = 422, description = "a bad bar (named by index and field) or out of time order; nothing was applied", body = ErrorBody),
    ))]
pub async fn push_bars(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<BarsRequest>,
) -> Result<JsonResponse<BarsResponse>, ApiError> {
    let live = state.live.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "live_features_off",
            "this server computes no live features: add [live] feature_set = \"standard\" to serve.toml",
        )
    })?;
    if request.symbol.is_empty() || request.symbol.len() > 64 {
        return Err(ApiError::unprocessable("invalid_request", "symbol must be 1 to 64 characters"));
    }
    if request.bars.len() > state.settings.max_batch_rows {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "{} bars in one push; the limit is {} (server.max_batch_rows)",
                request.bars.len(),
                state.settings.max_batch_rows
            ),
        ));
    }
    let bars: Vec<Bar> = request
        .bars
        .iter()
        .map(|b| Bar { ts: b.ts, open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume })
        .collect();
    let symbol = request.symbol.clone();
    // Feature kernels are CPU work: a long history goes to the blocking pool.
    let pushed = if bars.len() > 64 {
        let live = live.clone();
        tokio::task::spawn_blocking(move || live.push(&symbol, &bars))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    } else {
        live.push(&symbol, &bars)
    };
    let (bars_seen, last_ts) = pushed.map_err(|e| {
        ApiError::unprocessable(
            "invalid_bar",
            format!("bars[{}]: {}; none of this push was applied", e.index, e.message),
        )
        .with_details(serde_json::json!({ "index": e.index }))
    })?;
    let warming = live
        .symbol(&request.symbol)
        .map_or(0, |s| s.lock().unwrap_or_else(|e| e.into_inner()).defined.iter().filter(|d| !**d).count());
    Ok(JsonResponse(
        StatusCode::OK,
        BarsResponse {
            symbol: request.symbol,
            accepted: request.bars.len(),
            bars_seen,
            last_ts,
            feature_set: live.set_name.clone(),
            warming_up_features: warming,
        },
    ))
}

/// Many rows in one call, all answered by the same version.
#[utoipa::path(post, path = "/predict/batch", request_body = BatchRequest,
    responses(
        (status = 200, body = BatchResponse),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, description = "body or batch too large", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn predict_batch(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<BatchRequest>,
) -> Result<JsonResponse<BatchResponse>, ApiError> {
    let started = Instant::now();
    let count = match (&request.rows, &request.symbols) {
        (Some(rows), None) => rows.len(),
        (None, Some(symbols)) => symbols.len(),
        _ => {
            return Err(ApiError::unprocessable(
                "invalid_request",
                "give either `rows` (feature rows) or `symbols` (live features of each), not both",
            ))
        }
    };
    if count == 0 {
        let field = if request.rows.is_some() { "rows" } else { "symbols" };
        return Err(ApiError::unprocessable("invalid_request", format!("{field} is empty")));
    }
    let limit = state.settings.max_batch_rows;
    if count > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("{count} rows in one batch; the limit is {limit} (server.max_batch_rows)"),
        ));
    }
    let snapshots = match &request.symbols {
        Some(symbols) => symbols
            .iter()
            .enumerate()
            .map(|(i, symbol)| live_snapshot(&state, symbol).map_err(|e| e.prefixed(&format!("symbols[{i}]: "))))
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
    };
    let endpoint =
        state.endpoints.get(&request.model_name).ok_or_else(|| unknown_model(&state, &request.model_name))?;
    let routes = endpoint.routes();
    let ids: Vec<(String, u64)> = (0..count).map(|_| state.ids.next()).collect();
    let route_hash = caller_key(&headers).map_or(ids[0].1, caller_hash);
    let inputs = match &request.rows {
        Some(rows) => Inputs::Json(rows),
        None => Inputs::Live(&snapshots),
    };
    let (answered, rows) = answer(&endpoint, &routes, &inputs, route_hash).await?;
    let task = answered.slot.as_ref().map(|s| s.model.task).or(routes.task);
    let width = answered.outputs.len() / count;
    let latency_us = started.elapsed().as_micros() as u64;
    let route = if answered.slot.is_some() { answered.route.as_str() } else { "fallback" };
    let mut predictions = Vec::with_capacity(count);
    for (i, ((id, _), out)) in ids.iter().zip(answered.outputs.chunks(width.max(1))).enumerate() {
        let (prediction, probability, probabilities, confidence) = shape(task, out);
        let p = Prediction { id: id.clone(), prediction, probability, probabilities, confidence };
        let mut context = serde_json::Map::new();
        if let Some(caller) = caller_key(&headers) {
            context.insert("caller".into(), caller.into());
        }
        if let Some(snapshot) = snapshots.get(i) {
            context.insert("symbol".into(), snapshot.symbol.clone().into());
            context.insert("bar_ts".into(), snapshot.bar_ts.into());
        }
        if rows.is_empty() {
            context.insert("request".into(), inputs.logged(i));
        }
        let logged = Logged {
            slot: answered.slot.as_ref(),
            route,
            features: rows.get(i).cloned(),
            inputs: serde_json::Value::Object(context),
            latency_us,
        };
        state.log.push(log_record(&state, &endpoint.config.name, &p, logged));
        predictions.push(p);
    }
    let id_list: Vec<String> = ids.into_iter().map(|(id, _)| id).collect();
    shadow(&state, &endpoint, &routes, &answered, &inputs, &rows, &id_list).await;
    Ok(JsonResponse(
        StatusCode::OK,
        BatchResponse {
            model_name: endpoint.config.name.clone(),
            model_version: answered.slot.as_ref().map(|s| s.model.reference()),
            route: route.to_string(),
            source: if answered.slot.is_some() { "model" } else { "fallback" }.to_string(),
            predictions,
            latency_us,
        },
    ))
}

/// Records the realised outcome of a prediction, durably, before answering.
#[utoipa::path(post, path = "/feedback", request_body = FeedbackRequest,
    responses(
        (status = 200, body = FeedbackResponse),
        (status = 404, description = "unknown prediction id", body = ErrorBody),
        (status = 409, description = "the prediction already has an outcome", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn feedback(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<FeedbackRequest>,
) -> Result<JsonResponse<FeedbackResponse>, ApiError> {
    let id = &request.prediction_id;
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::unprocessable("invalid_request", format!("prediction_id {id:?} is not 32 hex digits")));
    }
    if !request.outcome.is_finite() {
        return Err(ApiError::unprocessable("invalid_request", "outcome must be a finite number"));
    }
    // The prediction may still be queued: write the queue first.
    state.log.flush().await;
    let recorded =
        state.registry.record_feedback(&state.scope, id, request.outcome, "api").await.map_err(registry_error)?;
    Ok(JsonResponse(
        StatusCode::OK,
        FeedbackResponse {
            prediction_id: recorded.prediction_id,
            outcome: recorded.outcome,
            recorded_at: recorded.recorded_at,
        },
    ))
}

fn endpoint_info(endpoint: &Endpoint, detailed: bool) -> EndpointInfo {
    let routes = endpoint.routes();
    let served = |slot: &Slot, route: Route, share: Option<f64>| ServedVersion {
        version: slot.model.reference(),
        version_id: slot.model.version.id,
        route: route.as_str().to_string(),
        family: slot.model.version.family.clone(),
        task: slot.model.version.task.clone(),
        stage: slot.model.version.stage.to_string(),
        traffic_share: share,
    };
    let mut loaded = Vec::new();
    if let Some(c) = &routes.champion {
        loaded.push(served(c, Route::Champion, None));
    }
    if let Some((c, share)) = &routes.canary {
        loaded.push(served(c, Route::Canary, Some(*share)));
    }
    if let Some(s) = &routes.shadow {
        loaded.push(served(s, Route::Shadow, None));
    }
    EndpointInfo {
        model_name: endpoint.config.name.clone(),
        registered_model: endpoint.config.model_name().to_string(),
        mode: match endpoint.mode() {
            crate::endpoints::Mode::FollowProduction => "following_production",
            crate::endpoints::Mode::Pinned(_) => "pinned",
            crate::endpoints::Mode::Unloaded => "unloaded",
        }
        .to_string(),
        loaded,
        has_fallback: endpoint.config.fallback.is_some(),
        feature_names: detailed.then(|| routes.champion.as_ref().map(|c| c.model.feature_names().to_vec())).flatten(),
        metrics: detailed.then(|| routes.champion.as_ref().map(|c| c.model.version.metrics.clone())).flatten(),
    }
}

/// Loaded models and the server's state.
#[utoipa::path(get, path = "/health", responses((status = 200, body = Health)))]
pub async fn health(State(state): State<Arc<AppState>>) -> JsonResponse<Health> {
    let models: Vec<EndpointInfo> = state.endpoints.all().iter().map(|e| endpoint_info(e, false)).collect();
    let all_loaded = models.iter().all(|m| m.loaded.iter().any(|v| v.route == "champion") || m.has_fallback);
    JsonResponse(
        StatusCode::OK,
        Health {
            status: if all_loaded { "ok" } else { "degraded" }.to_string(),
            scope: state.scope.to_string(),
            models,
            uptime_s: state.started.elapsed().as_secs_f64(),
            prediction_log_queued: state.log.queued(),
        },
    )
}

/// Every endpoint and what it serves.
#[utoipa::path(get, path = "/models", responses((status = 200, body = [EndpointInfo])))]
pub async fn list_models(State(state): State<Arc<AppState>>) -> JsonResponse<Vec<EndpointInfo>> {
    JsonResponse(StatusCode::OK, state.endpoints.all().iter().map(|e| endpoint_info(e, false)).collect())
}

/// One endpoint, with the champion's feature names and registry metrics.
#[utoipa::path(get, path = "/models/{name}", params(("name" = String, Path)),
    responses((status = 200, body = EndpointInfo), (status = 404, body = ErrorBody)))]
pub async fn show_model(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<JsonResponse<EndpointInfo>, ApiError> {
    let endpoint = state.endpoints.get(&name).ok_or_else(|| unknown_model(&state, &name))?;
    Ok(JsonResponse(StatusCode::OK, endpoint_info(&endpoint, true)))
}

/// Loads a version by hand (pinning it), or with no version goes back to following production.
#[utoipa::path(post, path = "/models/{name}/load", params(("name" = String, Path)), request_body(content = LoadRequest, description = "optional"),
    responses(
        (status = 200, body = EndpointInfo),
        (status = 404, description = "unknown model or version", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 500, description = "the artifact failed to load; the previous version keeps serving", body = ErrorBody),
    ))]
pub async fn load_model(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<JsonResponse<EndpointInfo>, ApiError> {
    let request: LoadRequest =
        if body.iter().all(|b| b.is_ascii_whitespace()) { LoadRequest::default() } else { parse_json(&body)? };
    quantpipe_registry::check_name(&name).map_err(|e| ApiError::unprocessable("invalid_request", e.to_string()))?;
    if state.endpoints.get(&name).is_none() && !state.endpoints.configured {
        // A new endpoint only for a model the registry knows.
        let latest =
            quantpipe_registry::VersionRef { name: name.clone(), selector: quantpipe_registry::Selector::Latest };
        state.registry.version(&state.scope, &latest).await.map_err(registry_error)?;
    }
    let endpoint =
        state.endpoints.get_or_add(&name, &state.loader.metrics).ok_or_else(|| unknown_model(&state, &name))?;
    state.loader.load_by_hand(&endpoint, request.version.as_deref()).await.map_err(|e| match e {
        LoadError::BadVersion(m) => ApiError::unprocessable("invalid_request", m),
        LoadError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
        LoadError::Failed(m) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "load_failed", m),
        LoadError::Registry(e) => registry_error(e),
    })?;
    Ok(JsonResponse(StatusCode::OK, endpoint_info(&endpoint, false)))
}

/// `POST /models/{name}/promote`: a version and the stage it goes to (production by default).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// `1.2.0`, or a stage or `latest` as in `quantpipe models promote NAME@…`.
    pub version: String,
    /// `staging`, `production` (the default), `archived` or `deprecated`.
    #[serde(default)]
    pub to: Option<String>,
}

/// The registry's stage changes, and what the endpoint serves once the server has followed them.
#[derive(Debug, Serialize, ToSchema)]
pub struct StageChangesResponse {
    #[schema(value_type = Vec<Object>)]
    pub changes: Vec<quantpipe_registry::StageChange>,
    /// The endpoint of that model after the swap (absent when this server does not serve it).
    pub endpoint: Option<EndpointInfo>,
}

/// Registry changes over HTTP need the server's admin token (constant-time comparison).
fn require_admin(state: &AppState, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.settings.admin_token else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "registry changes over HTTP are off: start `quantpipe serve` with QUANTPIPE_ADMIN_TOKEN set, \
             and send it as `Authorization: Bearer TOKEN` (or use `quantpipe models promote|rollback`)",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same =
        given.len() == token.len() && given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if !same {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this endpoint needs `Authorization: Bearer TOKEN` with the server's admin token",
        ));
    }
    Ok(())
}

/// After a registry change: follow it now rather than at the next poll, and describe the endpoint.
async fn followed(state: &AppState, name: &str) -> Option<EndpointInfo> {
    let outcome = state.loader.poll(&state.endpoints).await;
    for failure in outcome.failures {
        eprintln!("quantpipe serve: {failure}");
    }
    state.endpoints.get(name).map(|e| endpoint_info(&e, false))
}

/// Moves a version to a stage in the registry (production by default; the version it replaces is
/// archived), as `quantpipe models promote` does, then swaps it in. Needs the admin token.
#[utoipa::path(post, path = "/models/{name}/promote", params(("name" = String, Path)), request_body = PromoteRequest,
    responses(
        (status = 200, body = StageChangesResponse),
        (status = 401, description = "missing or wrong admin token", body = ErrorBody),
        (status = 403, description = "the server has no admin token: registry changes are off", body = ErrorBody),
        (status = 404, description = "unknown model or version", body = ErrorBody),
        (status = 409, description = "the stage change is not allowed from the version's stage", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn promote_model(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    JsonBody(request): JsonBody<PromoteRequest>,
) -> Result<JsonResponse<StageChangesResponse>, ApiError> {
    require_admin(&state, &headers)?;
    quantpipe_registry::check_name(&name).map_err(|e| ApiError::unprocessable("invalid_request", e.to_string()))?;
    let reference = quantpipe_registry::VersionRef::parse(&format!("{name}@{}", request.version))
        .map_err(|e| ApiError::unprocessable("invalid_request", format!("version: {e}")))?;
    let to = match request.to.as_deref() {
        None => quantpipe_registry::Stage::Production,
        Some(raw) => raw.parse().map_err(|e: quantpipe_registry::RegistryError| {
            ApiError::unprocessable("invalid_request", format!("to: {e}"))
        })?,
    };
    let changes = state.registry.promote(&state.scope, &reference, to, None, "api").await.map_err(registry_error)?;
    let endpoint = followed(&state, &name).await;
    Ok(JsonResponse(StatusCode::OK, StageChangesResponse { changes, endpoint }))
}

/// Puts back the version that was production before the current one, as `quantpipe models
/// rollback` does, then swaps it in. Needs the admin token.
#[utoipa::path(post, path = "/models/{name}/rollback", params(("name" = String, Path)),
    responses(
        (status = 200, body = StageChangesResponse),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "no earlier production version to go back to", body = ErrorBody),
    ))]
pub async fn rollback_model(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<JsonResponse<StageChangesResponse>, ApiError> {
    require_admin(&state, &headers)?;
    quantpipe_registry::check_name(&name).map_err(|e| ApiError::unprocessable("invalid_request", e.to_string()))?;
    let changes = state.registry.rollback(&state.scope, &name, "api").await.map_err(registry_error)?;
    let endpoint = followed(&state, &name).await;
    Ok(JsonResponse(StatusCode::OK, StageChangesResponse { changes, endpoint }))
}

/// Stops serving an endpoint (requests get its fallback, or 503) until it is loaded again.
#[utoipa::path(delete, path = "/models/{name}", params(("name" = String, Path)),
    responses((status = 200, body = EndpointInfo), (status = 404, body = ErrorBody)))]
pub async fn unload_model(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<JsonResponse<EndpointInfo>, ApiError> {
    let endpoint = state.endpoints.get(&name).ok_or_else(|| unknown_model(&state, &name))?;
    state.loader.unload(&endpoint).await.map_err(registry_error)?;
    Ok(JsonResponse(StatusCode::OK, endpoint_info(&endpoint, false)))
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let endpoints = state.endpoints.all();
    let loaded = endpoints.iter().filter(|e| e.routes().champion.is_some()).count();
    let text = state.loader.metrics.render(&[
        ("quantpipe_prediction_log_queue_depth", "Predictions waiting to be written.", state.log.queued() as f64),
        ("quantpipe_endpoints", "Endpoints served.", endpoints.len() as f64),
        ("quantpipe_endpoints_loaded", "Endpoints with a champion loaded.", loaded as f64),
    ]);
    let mut response = text.into_response();
    response.headers_mut().insert("content-type", HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}

pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route {}; see GET /openapi.json", uri.path()))
}

pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
