//! Prometheus text exposition, kept lock-free on the request path: each served (endpoint, version,
//! route) owns its counters and latency histogram as atomics; `/metrics` walks them.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Latency bucket upper bounds in seconds (Prometheus `le`), dense below 2 ms where the goal is.
const LATENCY_BUCKETS: [f64; 14] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, seconds: f64) {
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&le| seconds <= le) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_ns.fetch_add((seconds * 1e9) as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (le, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum_ns.load(Relaxed) as f64 / 1e9);
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Counters of one (endpoint, version, route).
#[derive(Debug)]
pub struct ModelStats {
    pub endpoint: String,
    pub version: String,
    pub route: &'static str,
    pub predictions: AtomicU64,
    pub errors: AtomicU64,
    pub latency: Histogram,
}

/// Server-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    models: Mutex<Vec<Arc<ModelStats>>>,
    /// Per endpoint: answers given by the fallback rule.
    fallbacks: Mutex<Vec<(String, Arc<AtomicU64>)>>,
    pub http: HttpCounters,
    pub swaps: AtomicU64,
    pub swap_failures: AtomicU64,
    pub log_written: AtomicU64,
    pub log_dropped: AtomicU64,
    pub log_write_errors: AtomicU64,
}

/// HTTP responses by class, and overload refusals.
#[derive(Debug, Default)]
pub struct HttpCounters {
    pub by_status: [AtomicU64; 6],
    pub overloaded: AtomicU64,
    pub timed_out: AtomicU64,
    pub in_flight: AtomicU64,
    pub latency: Histogram,
}

impl Metrics {
    /// The stats of `(endpoint, version, route)`, created on first use and kept for the server's
    /// life so counters never go backwards after a swap.
    pub fn model(&self, endpoint: &str, version: &str, route: &'static str) -> Arc<ModelStats> {
        let mut models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = models.iter().find(|s| s.endpoint == endpoint && s.version == version && s.route == route) {
            return s.clone();
        }
        let stats = Arc::new(ModelStats {
            endpoint: endpoint.to_string(),
            version: version.to_string(),
            route,
            predictions: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency: Histogram::default(),
        });
        models.push(stats.clone());
        stats
    }

    pub fn fallback_counter(&self, endpoint: &str) -> Arc<AtomicU64> {
        let mut all = self.fallbacks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, c)) = all.iter().find(|(e, _)| e == endpoint) {
            return c.clone();
        }
        let c = Arc::new(AtomicU64::new(0));
        all.push((endpoint.to_string(), c.clone()));
        c
    }

    pub fn record_status(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize;
        self.http.by_status[class].fetch_add(1, Relaxed);
    }

    /// The exposition text. `gauges` are sampled by the caller (queue depth, loaded models).
    pub fn render(&self, gauges: &[(&str, &str, f64)]) -> String {
        let mut out = String::with_capacity(8192);
        let header = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let models = self.models.lock().unwrap_or_else(|e| e.into_inner()).clone();
        header(&mut out, "quantpipe_predictions_total", "counter", "Rows predicted, per endpoint, version and route.");
        for s in &models {
            let _ = writeln!(out, "quantpipe_predictions_total{{{}}} {}", labels(s), s.predictions.load(Relaxed));
        }
        header(&mut out, "quantpipe_prediction_errors_total", "counter", "Model calls that failed.");
        for s in &models {
            let _ = writeln!(out, "quantpipe_prediction_errors_total{{{}}} {}", labels(s), s.errors.load(Relaxed));
        }
        header(
            &mut out,
            "quantpipe_prediction_latency_seconds",
            "histogram",
            "Time spent in the model per call, per endpoint, version and route.",
        );
        for s in &models {
            s.latency.render(&mut out, "quantpipe_prediction_latency_seconds", &labels(s));
        }
        header(&mut out, "quantpipe_fallbacks_total", "counter", "Answers given by an endpoint's fallback rule.");
        for (endpoint, c) in self.fallbacks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "quantpipe_fallbacks_total{{endpoint=\"{}\"}} {}", escape(endpoint), c.load(Relaxed));
        }
        header(&mut out, "quantpipe_http_responses_total", "counter", "HTTP responses by status class.");
        for (class, c) in self.http.by_status.iter().enumerate().skip(1) {
            let _ = writeln!(out, "quantpipe_http_responses_total{{class=\"{class}xx\"}} {}", c.load(Relaxed));
        }
        self.http.latency.render(&mut out, "quantpipe_http_request_duration_seconds", "server=\"quantpipe\"");
        let counters: [(&str, &str, &AtomicU64); 7] = [
            (
                "quantpipe_overload_rejections_total",
                "Requests refused with 503 because max_concurrency were in flight.",
                &self.http.overloaded,
            ),
            ("quantpipe_request_timeouts_total", "Requests that ran past request_timeout_ms.", &self.http.timed_out),
            ("quantpipe_model_swaps_total", "Model versions swapped in.", &self.swaps),
            (
                "quantpipe_model_swap_failures_total",
                "Versions that failed to load (the previous one kept serving).",
                &self.swap_failures,
            ),
            (
                "quantpipe_prediction_log_written_total",
                "Prediction log rows committed to the registry database.",
                &self.log_written,
            ),
            (
                "quantpipe_prediction_log_dropped_total",
                "Prediction log rows dropped because the queue was full.",
                &self.log_dropped,
            ),
            (
                "quantpipe_prediction_log_write_errors_total",
                "Failed prediction log writes (retried).",
                &self.log_write_errors,
            ),
        ];
        for (name, help, c) in counters {
            header(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", c.load(Relaxed));
        }
        header(&mut out, "quantpipe_http_in_flight", "gauge", "Requests being handled now.");
        let _ = writeln!(out, "quantpipe_http_in_flight {}", self.http.in_flight.load(Relaxed));
        for (name, help, value) in gauges {
            header(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

fn labels(s: &ModelStats) -> String {
    format!("endpoint=\"{}\",version=\"{}\",route=\"{}\"", escape(&s.endpoint), escape(&s.version), s.route)
}

/// Label values escape backslash, quote and newline (names are restricted already; this is for safety).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        for s in [0.00004, 0.0003, 0.0003, 2.0] {
            h.observe(s);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.00005\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.0005\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"1\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 4\n"), "{out}");
    }
}
