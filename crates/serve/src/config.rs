//! `serve.toml`: server limits and the endpoints to serve. Every key is optional; unknown keys are
//! errors naming the key path and line.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::ServeError;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    #[serde(default)]
    pub server: ServerSettings,
    /// Endpoints to serve. None configured: every model with a production version in the scope, each
    /// on an endpoint named after it (models promoted later are picked up too).
    #[serde(default, rename = "endpoint")]
    pub endpoints: Vec<EndpointConfig>,
    /// Live features for `POST /bars`.
    #[serde(default)]
    pub live: Option<LiveConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub addr: String,
    /// Largest request body accepted (bytes); larger ones get 413.
    pub max_body_bytes: usize,
    /// Most rows in one `POST /predict/batch`.
    pub max_batch_rows: usize,
    /// A request still running after this gets 503 (and its work is dropped).
    pub request_timeout_ms: u64,
    /// Requests handled at once; one more gets 503 with Retry-After instead of waiting in a queue.
    pub max_concurrency: usize,
    /// How often the registry is asked for promotions and rollbacks.
    pub poll_interval_ms: u64,
    /// The prediction log is written at least this often (the most a crash can lose). Short
    /// intervals keep each commit short, so under load the writer holds a core only briefly.
    pub log_flush_ms: u64,
    /// Predictions waiting to be written; when full, new ones are counted as dropped rather than
    /// slowing answers down.
    pub log_queue: usize,
    /// The bearer token that `POST /models/{name}/promote` and `/rollback` require; without one
    /// (the default) the server refuses registry changes. Set from `QUANTPIPE_ADMIN_TOKEN`, never
    /// from a file that might be committed.
    #[serde(skip)]
    pub admin_token: Option<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            addr: "127.0.0.1:8001".into(),
            max_body_bytes: 1 << 20,
            max_batch_rows: 10_000,
            request_timeout_ms: 2_000,
            max_concurrency: 512,
            poll_interval_ms: 1_000,
            log_flush_ms: 10,
            log_queue: 200_000,
            admin_token: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// What clients send as `model_name`.
    pub name: String,
    /// The registered model whose production version is the champion [default: the endpoint's name].
    #[serde(default)]
    pub model: Option<String>,
    /// A challenger answering a share of callers (sticky per `X-Caller-Id`).
    #[serde(default)]
    pub canary: Option<CanaryConfig>,
    /// A challenger that scores every request; its answers are logged, never returned.
    #[serde(default)]
    pub shadow: Option<String>,
    /// When set, the model runs under this deadline and the fallback answers if it is missed.
    #[serde(default)]
    pub time_budget_ms: Option<u64>,
    #[serde(default)]
    pub fallback: Option<FallbackRule>,
}

impl EndpointConfig {
    pub fn model_name(&self) -> &str {
        self.model.as_deref().unwrap_or(&self.name)
    }

    /// An endpoint that serves `model`'s production version, with nothing else configured.
    pub fn for_model(model: &str) -> EndpointConfig {
        EndpointConfig {
            name: model.to_string(),
            model: None,
            canary: None,
            shadow: None,
            time_budget_ms: None,
            fallback: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryConfig {
    /// `NAME@1.2.0`, `NAME@staging`, …
    pub version: String,
    /// Share of callers routed to it, 0..=1.
    pub share: f64,
}

/// What answers when no model is loaded or the model misses its time budget: a constant, or a
/// threshold rule on one input feature. The answer is the model's raw output (P(class 1) for a
/// binary classifier, the value for a regressor) and is shaped like a model's answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackRule {
    /// Answer when no rule applies (no `feature`, or the feature is absent from the request).
    #[serde(default)]
    pub value: Option<f64>,
    #[serde(default)]
    pub feature: Option<String>,
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Answer when the feature is above the threshold.
    #[serde(default)]
    pub above: Option<f64>,
    /// Answer when the feature is at or below the threshold.
    #[serde(default)]
    pub below: Option<f64>,
}

impl FallbackRule {
    fn validate(&self, endpoint: &str) -> Result<(), String> {
        let at = format!("endpoint {endpoint:?} fallback");
        match (&self.feature, self.threshold, self.above, self.below) {
            (None, None, None, None) => {
                if self.value.is_none() {
                    return Err(format!("{at}: give `value`, or `feature`, `threshold`, `above` and `below`"));
                }
            }
            (Some(_), Some(_), Some(_), Some(_)) => {}
            _ => return Err(format!("{at}: a feature rule needs all of `feature`, `threshold`, `above` and `below`")),
        }
        for v in [self.value, self.threshold, self.above, self.below].into_iter().flatten() {
            if !v.is_finite() {
                return Err(format!("{at}: {v} is not a finite number"));
            }
        }
        Ok(())
    }

    /// The rule's answer for a request whose named features are looked up by `feature_value`.
    pub fn answer(&self, feature_value: impl Fn(&str) -> Option<f64>) -> Option<f64> {
        if let (Some(feature), Some(threshold), Some(above), Some(below)) =
            (&self.feature, self.threshold, self.above, self.below)
        {
            if let Some(x) = feature_value(feature).filter(|x| x.is_finite()) {
                return Some(if x > threshold { above } else { below });
            }
        }
        self.value
    }
}

/// Live features: bars pushed to `POST /bars` update per-symbol streaming state of one feature set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveConfig {
    /// `standard` or a feature-set TOML file (relative to the config file).
    pub feature_set: String,
    /// Most symbols tracked at once (each holds its own O(1) kernel state).
    #[serde(default = "default_max_symbols")]
    pub max_symbols: usize,
    /// Feature rows kept per symbol besides the latest, for models that read a window of rows (an
    /// LSTM with `window = 16` needs 15).
    #[serde(default = "default_history")]
    pub history: usize,
}

fn default_max_symbols() -> usize {
    10_000
}

fn default_history() -> usize {
    63
}

impl ServeConfig {
    pub fn from_toml(text: &str, file: &str) -> Result<ServeConfig, ServeError> {
        let bad = |message: String| ServeError::Config { file: file.to_string(), message };
        let de = toml::Deserializer::parse(text).map_err(|e| bad(e.to_string()))?;
        let config: ServeConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.span().map(|s| 1 + text[..s.start.min(text.len())].matches('\n').count());
            match line {
                Some(line) => bad(format!("line {line}, key `{path}`: {}", inner.message())),
                None => bad(format!("key `{path}`: {}", inner.message())),
            }
        })?;
        config.validate().map_err(bad)?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        let s = &self.server;
        s.addr.parse::<SocketAddr>().map_err(|e| format!("server.addr {:?}: {e} (expected IP:PORT)", s.addr))?;
        for (key, value) in [
            ("max_body_bytes", s.max_body_bytes),
            ("max_batch_rows", s.max_batch_rows),
            ("max_concurrency", s.max_concurrency),
            ("log_queue", s.log_queue),
        ] {
            if value == 0 {
                return Err(format!("server.{key} must be at least 1"));
            }
        }
        for (key, value) in [
            ("request_timeout_ms", s.request_timeout_ms),
            ("poll_interval_ms", s.poll_interval_ms),
            ("log_flush_ms", s.log_flush_ms),
        ] {
            if value == 0 {
                return Err(format!("server.{key} must be at least 1"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for e in &self.endpoints {
            quantpipe_registry::check_name(&e.name).map_err(|err| format!("endpoint name: {err}"))?;
            quantpipe_registry::check_name(e.model_name())
                .map_err(|err| format!("endpoint {:?} model: {err}", e.name))?;
            if !seen.insert(e.name.as_str()) {
                return Err(format!("endpoint {:?} is declared twice", e.name));
            }
            if let Some(c) = &e.canary {
                if !(0.0..=1.0).contains(&c.share) {
                    return Err(format!("endpoint {:?} canary share {} is outside 0..=1", e.name, c.share));
                }
                quantpipe_registry::VersionRef::parse(&c.version)
                    .map_err(|err| format!("endpoint {:?} canary: {err}", e.name))?;
            }
            if let Some(shadow) = &e.shadow {
                quantpipe_registry::VersionRef::parse(shadow)
                    .map_err(|err| format!("endpoint {:?} shadow: {err}", e.name))?;
            }
            if e.time_budget_ms == Some(0) {
                return Err(format!("endpoint {:?} time_budget_ms must be at least 1", e.name));
            }
            if let Some(f) = &e.fallback {
                f.validate(&e.name)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_path_and_line() {
        let text = "[server]\naddr = \"127.0.0.1:0\"\n\n[[endpoint]]\nname = \"d\"\ncanary = { version = \"d@1.0.0\", shares = 0.1 }\n";
        let err = ServeConfig::from_toml(text, "serve.toml").unwrap_err().to_string();
        assert!(err.contains("serve.toml") && err.contains("line 6") && err.contains("shares"), "{err}");
    }

    #[test]
    fn bad_values_are_refused() {
        for (text, expected) in [
            ("[server]\naddr = \"localhost\"", "server.addr"),
            ("[server]\nmax_concurrency = 0", "max_concurrency"),
            ("[[endpoint]]\nname = \"a\"\n[[endpoint]]\nname = \"a\"", "twice"),
            ("[[endpoint]]\nname = \"a\"\ncanary = { version = \"a@1.0.0\", share = 1.5 }", "share"),
            ("[[endpoint]]\nname = \"a\"\nshadow = \"a@prod\"", "shadow"),
            ("[[endpoint]]\nname = \"a\"\n[endpoint.fallback]\nfeature = \"rsi\"", "needs all"),
            ("[[endpoint]]\nname = \"../a\"", "endpoint name"),
        ] {
            let err = ServeConfig::from_toml(text, "s.toml").unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    #[test]
    fn fallback_rule_answers() {
        let rule = FallbackRule {
            value: Some(0.5),
            feature: Some("rsi".into()),
            threshold: Some(70.0),
            above: Some(0.3),
            below: Some(0.6),
        };
        assert_eq!(rule.answer(|_| Some(75.0)), Some(0.3));
        assert_eq!(rule.answer(|_| Some(70.0)), Some(0.6));
        assert_eq!(rule.answer(|_| None), Some(0.5));
        assert_eq!(rule.answer(|_| Some(f64::NAN)), Some(0.5));
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../../examples/serve/serve.toml");
        let config = ServeConfig::from_toml(text, "examples/serve/serve.toml").unwrap();
        assert_eq!(config.endpoints[0].model_name(), "direction_lgbm");
        assert_eq!(config.live.unwrap().feature_set, "standard");
    }
}
