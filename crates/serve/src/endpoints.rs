//! Served endpoints: which versions answer on which route, how they are loaded from the registry,
//! and how they are swapped. A request takes a snapshot (`Arc<Routes>`) and keeps it to the end, so
//! a swap never fails a request in flight: the old version lives until its last request finishes.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use quantpipe_models::{Model, Task};
use quantpipe_registry::{
    ModelVersion, Registry, RegistryError, Route, Scope, Selector, SemVer, Severity, Stage, VersionFilter, VersionRef,
};

use crate::config::EndpointConfig;
use crate::metrics::{Metrics, ModelStats};

/// A model version in memory, ready to predict.
pub struct LoadedModel {
    pub version: ModelVersion,
    pub model: Box<dyn Model>,
    pub task: Task,
    /// Feature name → column, for requests that send a name → value map.
    pub columns: HashMap<String, usize>,
}

impl LoadedModel {
    pub fn reference(&self) -> String {
        self.version.reference()
    }

    pub fn feature_names(&self) -> &[String] {
        self.model.feature_names()
    }
}

/// A loaded model on one route, with that route's counters.
#[derive(Clone)]
pub struct Slot {
    pub model: Arc<LoadedModel>,
    pub stats: Arc<ModelStats>,
}

/// What answers on an endpoint at one moment.
#[derive(Clone, Default)]
pub struct Routes {
    pub champion: Option<Slot>,
    pub canary: Option<(Slot, f64)>,
    pub shadow: Option<Slot>,
    /// The task of the registered champion even when it could not be loaded, so a fallback answer
    /// is shaped like the model's.
    pub task: Option<Task>,
}

impl Routes {
    fn ids(&self) -> (Option<i64>, Option<i64>, Option<i64>) {
        (
            self.champion.as_ref().map(|s| s.model.version.id),
            self.canary.as_ref().map(|(s, _)| s.model.version.id),
            self.shadow.as_ref().map(|s| s.model.version.id),
        )
    }

    /// The slot answering a caller: the canary for its share of caller keys (sticky: the same key
    /// always lands on the same side), the champion otherwise.
    pub fn answering(&self, caller_hash: u64) -> Option<(&Slot, Route)> {
        if let Some((canary, share)) = &self.canary {
            // The top 53 bits as a fraction in [0, 1).
            let position = (caller_hash >> 11) as f64 / (1u64 << 53) as f64;
            if position < *share || self.champion.is_none() {
                return Some((canary, Route::Canary));
            }
        }
        self.champion.as_ref().map(|c| (c, Route::Champion))
    }
}

/// Which champion an endpoint follows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// The model's production version, whatever it becomes.
    FollowProduction,
    /// One version, loaded by hand.
    Pinned(SemVer),
    /// Unloaded by hand: nothing is served until it is loaded again.
    Unloaded,
}

pub struct Endpoint {
    pub config: EndpointConfig,
    routes: RwLock<Arc<Routes>>,
    mode: Mutex<Mode>,
    /// Versions that failed to load; not retried on every poll (a new version or a manual load is).
    failed: Mutex<HashSet<i64>>,
    /// Serialises refreshes of this endpoint (the poller and a manual load).
    refreshing: tokio::sync::Mutex<()>,
    pub fallbacks: Arc<AtomicU64>,
}

impl Endpoint {
    pub fn new(config: EndpointConfig, metrics: &Metrics) -> Endpoint {
        let fallbacks = metrics.fallback_counter(&config.name);
        Endpoint {
            config,
            routes: RwLock::new(Arc::new(Routes::default())),
            mode: Mutex::new(Mode::FollowProduction),
            failed: Mutex::new(HashSet::new()),
            refreshing: tokio::sync::Mutex::new(()),
            fallbacks,
        }
    }

    /// The routes as of now; the caller keeps this snapshot for the whole request.
    pub fn routes(&self) -> Arc<Routes> {
        self.routes.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn mode(&self) -> Mode {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode;
        self.failed.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Loads versions from the registry and keeps endpoints current.
pub struct Loader {
    pub registry: Registry,
    pub scope: Scope,
    /// Where artifacts from remote stores are fetched to.
    pub cache_dir: PathBuf,
    pub metrics: Arc<Metrics>,
    pub actor: String,
}

/// What a refresh changed.
#[derive(Debug, Default)]
pub struct RefreshOutcome {
    pub swapped: Vec<String>,
    pub failures: Vec<String>,
}

pub fn parse_task(text: &str) -> Option<Task> {
    match text.split_once(':') {
        None if text == "binary" => Some(Task::Binary),
        None if text == "regression" => Some(Task::Regression),
        Some(("multiclass", n)) => n.parse().ok().map(|classes| Task::Multiclass { classes }),
        Some(("quantile", a)) => a.parse().ok().map(|alpha| Task::Quantile { alpha }),
        _ => None,
    }
}

impl Loader {
    /// Resolves a reference; a model or stage with no version is `None`, other errors are errors.
    async fn resolve(&self, reference: &VersionRef) -> Result<Option<ModelVersion>, RegistryError> {
        match self.registry.version(&self.scope, reference).await {
            Ok(v) => Ok(Some(v)),
            Err(RegistryError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a version's artifact and checks it is the model the registry describes.
    pub async fn load(&self, version: &ModelVersion) -> Result<LoadedModel, String> {
        let store = self.registry.artifacts();
        let dir = match store.local_dir(&version.artifact_uri) {
            Ok(dir) => dir,
            Err(_) => {
                let dir = self.cache_dir.join(version.id.to_string());
                if !dir.join("model.json").exists() {
                    let partial = self.cache_dir.join(format!("{}.partial", version.id));
                    let _ = std::fs::remove_dir_all(&partial);
                    store.fetch(&version.artifact_uri, &partial).await.map_err(|e| e.to_string())?;
                    std::fs::rename(&partial, &dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                }
                dir
            }
        };
        let model = tokio::task::spawn_blocking(move || quantpipe_models::load(&dir))
            .await
            .map_err(|e| format!("loading thread failed: {e}"))?
            .map_err(|e| e.to_string())?;
        if model.feature_names() != version.feature_names.as_slice() {
            return Err(format!(
                "the artifact's {} features differ from the {} the registry lists for {}",
                model.feature_names().len(),
                version.feature_names.len(),
                version.reference()
            ));
        }
        let columns = model.feature_names().iter().enumerate().map(|(i, n)| (n.clone(), i)).collect();
        let task = model.task();
        Ok(LoadedModel { version: version.clone(), model, task, columns })
    }

    /// Brings an endpoint to what the registry and its mode say it should serve. Versions already
    /// loaded are reused; a version that fails to load leaves the route's current one in place and
    /// raises an alert.
    pub async fn refresh(&self, endpoint: &Endpoint) -> Result<RefreshOutcome, RegistryError> {
        let _guard = endpoint.refreshing.lock().await;
        let config = &endpoint.config;
        let model = config.model_name().to_string();
        let champion_ref = match endpoint.mode() {
            Mode::FollowProduction => {
                Some(VersionRef { name: model.clone(), selector: Selector::Stage(Stage::Production) })
            }
            Mode::Pinned(v) => Some(VersionRef { name: model.clone(), selector: Selector::Exact(v) }),
            Mode::Unloaded => None,
        };
        let active = champion_ref.is_some();
        let want_champion = match &champion_ref {
            Some(r) => self.resolve(r).await?,
            None => None,
        };
        let want_canary = match (&config.canary, active) {
            (Some(c), true) => self.resolve(&VersionRef::parse(&c.version)?).await?.map(|v| (v, c.share)),
            _ => None,
        };
        let want_shadow = match (&config.shadow, active) {
            (Some(s), true) => self.resolve(&VersionRef::parse(s)?).await?,
            _ => None,
        };
        let current = endpoint.routes();
        let wanted_ids = (
            want_champion.as_ref().map(|v| v.id),
            want_canary.as_ref().map(|(v, _)| v.id),
            want_shadow.as_ref().map(|v| v.id),
        );
        let mut outcome = RefreshOutcome::default();
        let task_hint = want_champion.as_ref().and_then(|v| parse_task(&v.task)).or(current.task);
        if wanted_ids == current.ids() {
            return Ok(outcome);
        }
        let loaded_now: Vec<Arc<LoadedModel>> = [&current.champion, &current.shadow]
            .into_iter()
            .flatten()
            .map(|s| s.model.clone())
            .chain(current.canary.iter().map(|(s, _)| s.model.clone()))
            .collect();
        let mut fresh: Vec<Arc<LoadedModel>> = Vec::new();
        let current_slot = |route: Route| -> Option<Slot> {
            match route {
                Route::Champion => current.champion.clone(),
                Route::Canary => current.canary.as_ref().map(|(s, _)| s.clone()),
                Route::Shadow => current.shadow.clone(),
            }
        };
        let mut next = Routes { task: task_hint, ..Routes::default() };
        for (route, wanted) in [
            (Route::Champion, want_champion.clone()),
            (Route::Canary, want_canary.as_ref().map(|(v, _)| v.clone())),
            (Route::Shadow, want_shadow.clone()),
        ] {
            let slot = match wanted {
                None => None,
                Some(version) => {
                    let reuse = loaded_now.iter().chain(&fresh).find(|m| m.version.id == version.id).cloned();
                    let model = match reuse {
                        Some(m) => Some(m),
                        None if endpoint.failed.lock().unwrap_or_else(|e| e.into_inner()).contains(&version.id) => None,
                        None => match self.load(&version).await {
                            Ok(m) => {
                                let m = Arc::new(m);
                                fresh.push(m.clone());
                                Some(m)
                            }
                            Err(message) => {
                                self.load_failed(endpoint, &version, route, &message).await;
                                outcome.failures.push(format!("{}: {message}", version.reference()));
                                None
                            }
                        },
                    };
                    match model {
                        Some(model) => {
                            let stats = self.metrics.model(&config.name, &model.reference(), route.as_str());
                            Some(Slot { model, stats })
                        }
                        // Unloadable: keep whatever served this route before.
                        None => current_slot(route),
                    }
                }
            };
            match route {
                Route::Champion => next.champion = slot,
                Route::Canary => next.canary = slot.map(|s| (s, want_canary.as_ref().map_or(0.0, |(_, share)| *share))),
                Route::Shadow => next.shadow = slot,
            }
        }
        let changed: Vec<(Route, Slot, f64)> = [
            (Route::Champion, next.champion.clone(), 1.0),
            (Route::Canary, next.canary.as_ref().map(|(s, _)| s.clone()), next.canary.as_ref().map_or(0.0, |c| c.1)),
            (Route::Shadow, next.shadow.clone(), 0.0),
        ]
        .into_iter()
        .filter_map(|(route, slot, share)| {
            let slot = slot?;
            let before = current_slot(route).map(|s| s.model.version.id);
            (before != Some(slot.model.version.id)).then_some((route, slot, share))
        })
        .collect();
        *endpoint.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        for (route, slot, share) in changed {
            self.metrics.swaps.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            outcome.swapped.push(format!("{} on {} ({})", slot.model.reference(), config.name, route.as_str()));
            let exact = VersionRef {
                name: slot.model.version.name.clone(),
                selector: Selector::Exact(slot.model.version.version),
            };
            if let Err(e) = self.registry.deploy(&self.scope, &config.name, &exact, route, share, &self.actor).await {
                eprintln!("quantpipe serve: recording the deployment of {} failed: {e}", slot.model.reference());
            }
        }
        Ok(outcome)
    }

    async fn load_failed(&self, endpoint: &Endpoint, version: &ModelVersion, route: Route, message: &str) {
        self.metrics.swap_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        endpoint.failed.lock().unwrap_or_else(|e| e.into_inner()).insert(version.id);
        let text = format!(
            "{} failed to load for endpoint {} ({}): {message}; the previous version keeps serving",
            version.reference(),
            endpoint.config.name,
            route.as_str()
        );
        eprintln!("quantpipe serve: {text}");
        if let Err(e) = self
            .registry
            .raise_alert(&self.scope, "model_load_failed", Severity::Critical, &text, Some(version.id))
            .await
        {
            eprintln!("quantpipe serve: recording the alert failed: {e}");
        }
    }

    /// Names of models with a production version in the scope.
    pub async fn production_models(&self) -> Result<Vec<String>, RegistryError> {
        let filter = VersionFilter { stage: Some(Stage::Production), limit: Some(100_000), ..VersionFilter::default() };
        let mut names: Vec<String> =
            self.registry.versions(&self.scope, &filter).await?.into_iter().map(|v| v.name).collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}

/// The set of endpoints; fixed by the config, or following the registry's production models.
pub struct Endpoints {
    map: RwLock<HashMap<String, Arc<Endpoint>>>,
    /// True when the config lists the endpoints (no others are created).
    pub configured: bool,
}

impl Endpoints {
    pub fn new(configs: &[EndpointConfig], metrics: &Metrics) -> Endpoints {
        let map = configs.iter().map(|c| (c.name.clone(), Arc::new(Endpoint::new(c.clone(), metrics)))).collect();
        Endpoints { map: RwLock::new(map), configured: !configs.is_empty() }
    }

    pub fn get(&self, name: &str) -> Option<Arc<Endpoint>> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Endpoint>> {
        let mut all: Vec<_> = self.map.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        all.sort_by(|a, b| a.config.name.cmp(&b.config.name));
        all
    }

    /// Adds an endpoint unless one of that name exists already.
    fn insert(&self, endpoint: Arc<Endpoint>) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.entry(endpoint.config.name.clone()).or_insert(endpoint);
    }

    /// The endpoint for `name`, created for a registered model when endpoints are not configured.
    pub fn get_or_add(&self, name: &str, metrics: &Metrics) -> Option<Arc<Endpoint>> {
        if let Some(e) = self.get(name) {
            return Some(e);
        }
        if self.configured {
            return None;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        Some(
            map.entry(name.to_string())
                .or_insert_with(|| Arc::new(Endpoint::new(EndpointConfig::for_model(name), metrics)))
                .clone(),
        )
    }
}

impl Loader {
    /// One pass over every endpoint (and, without configured endpoints, over the registry's
    /// production models). Errors are reported and the pass goes on.
    pub async fn poll(&self, endpoints: &Endpoints) -> RefreshOutcome {
        let mut outcome = RefreshOutcome::default();
        let mut added = Vec::new();
        if !endpoints.configured {
            match self.production_models().await {
                Ok(names) => {
                    for name in names.iter().filter(|n| endpoints.get(n).is_none()) {
                        // Loaded before it is visible, so no request finds it empty.
                        let endpoint = Arc::new(Endpoint::new(EndpointConfig::for_model(name), &self.metrics));
                        match self.refresh(&endpoint).await {
                            Ok(o) => {
                                outcome.swapped.extend(o.swapped);
                                outcome.failures.extend(o.failures);
                            }
                            Err(e) => outcome.failures.push(format!("endpoint {name}: {e}")),
                        }
                        endpoints.insert(endpoint.clone());
                        added.push(endpoint.config.name.clone());
                    }
                }
                Err(e) => outcome.failures.push(format!("listing production models: {e}")),
            }
        }
        for endpoint in endpoints.all().into_iter().filter(|e| !added.contains(&e.config.name)) {
            match self.refresh(&endpoint).await {
                Ok(o) => {
                    outcome.swapped.extend(o.swapped);
                    outcome.failures.extend(o.failures);
                }
                Err(e) => outcome.failures.push(format!("endpoint {}: {e}", endpoint.config.name)),
            }
        }
        outcome
    }

    /// `POST /models/{name}/load`: pins a version (or goes back to following production) and loads it now.
    pub async fn load_by_hand(&self, endpoint: &Endpoint, version: Option<&str>) -> Result<RefreshOutcome, LoadError> {
        let model = endpoint.config.model_name();
        let mode = match version {
            None | Some("production") => Mode::FollowProduction,
            Some(raw) => {
                let reference = VersionRef::parse(&format!("{model}@{raw}")).map_err(|_| {
                    LoadError::BadVersion(format!(
                        "version {raw:?}: expected MAJOR.MINOR.PATCH, a stage (production, staging, …) or latest"
                    ))
                })?;
                match self.resolve(&reference).await.map_err(LoadError::Registry)? {
                    Some(v) => Mode::Pinned(v.version),
                    None => {
                        return Err(LoadError::NotFound(format!("{reference} does not exist in scope {}", self.scope)))
                    }
                }
            }
        };
        let previous = endpoint.mode();
        endpoint.set_mode(mode);
        let outcome = self.refresh(endpoint).await.map_err(LoadError::Registry)?;
        if !outcome.failures.is_empty() {
            // The previous version kept serving; the endpoint goes on following what it followed.
            *endpoint.mode.lock().unwrap_or_else(|e| e.into_inner()) = previous;
            return Err(LoadError::Failed(outcome.failures.join("; ")));
        }
        if endpoint.routes().champion.is_none() {
            return Err(LoadError::NotFound(format!("{model} has no production version in scope {}", self.scope)));
        }
        Ok(outcome)
    }

    /// `DELETE /models/{name}`: stops serving the endpoint until it is loaded again.
    pub async fn unload(&self, endpoint: &Endpoint) -> Result<(), RegistryError> {
        endpoint.set_mode(Mode::Unloaded);
        self.refresh(endpoint).await.map(|_| ())
    }
}

#[derive(Debug)]
pub enum LoadError {
    BadVersion(String),
    NotFound(String),
    Failed(String),
    Registry(RegistryError),
}
