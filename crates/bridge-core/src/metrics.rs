//! A small Prometheus registry: counters, one gauge and fixed-bucket histograms, rendered as text.
//!
//! Labels come from closed sets (route templates, status codes, token kinds); model names are capped at
//! [`MAX_MODELS`] distinct values, after which they count as `other`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Distinct model label values kept before folding into `other`.
pub const MAX_MODELS: usize = 64;

const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
    gauges: BTreeMap<&'static str, i64>,
    models: BTreeSet<String>,
}

/// The registry. Cheap to update from many tasks.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
    active_streams: AtomicI64,
}

const HELP: &[(&str, &str, &str)] = &[
    ("codex_bridge_requests_total", "counter", "Requests by route template and status."),
    ("codex_bridge_upstream_latency_seconds", "histogram", "Time from sending upstream to its response headers."),
    (
        "codex_bridge_overhead_seconds",
        "histogram",
        "Time spent in the bridge itself, excluding waits for the upstream.",
    ),
    ("codex_bridge_ttfb_seconds", "histogram", "Time from request arrival to the first response byte being ready."),
    ("codex_bridge_tokens_total", "counter", "Tokens reported by the upstream, by kind and model."),
    ("codex_bridge_usage_missing_total", "counter", "Usage fields the upstream did not report."),
    ("codex_bridge_upstream_retries_total", "counter", "Upstream retries before the first byte, by reason."),
    ("codex_bridge_stream_errors_total", "counter", "Streams that ended abnormally, by reason."),
    ("codex_bridge_connections_closed_total", "counter", "Client connections closed by a limit, by reason."),
    (
        "codex_bridge_connections_refused_total",
        "counter",
        "Client connections refused with a 503 at the connection cap.",
    ),
    ("codex_bridge_client_stalls_total", "counter", "Streaming clients cut for leaving events unread too long."),
    (
        "codex_bridge_requests_shed_total",
        "counter",
        "Requests refused with a 503 because a budget was spent, by reason.",
    ),
    ("codex_bridge_active_streams", "gauge", "Upstream streams in flight."),
    ("codex_bridge_cache_outcomes_total", "counter", "Tracked requests whose usage was a cache hit or a miss."),
    ("codex_bridge_cache_outcome_reasons_total", "counter", "Cache outcomes by reason (hit, partial, miss reasons)."),
    (
        "codex_bridge_cache_key_warnings_total",
        "counter",
        "Fallback keys used although session-like hints were present.",
    ),
    ("codex_bridge_tracked_sessions", "gauge", "Sessions held in memory by the session tracker."),
    (
        "codex_bridge_tracker_evictions_total",
        "counter",
        "Sessions dropped from the tracker's memory (idle or over capacity).",
    ),
    (
        "codex_bridge_git_drift_total",
        "counter",
        "Git drift seen before a turn, by kind (branch-switch, new-commits, reset, rebase).",
    ),
    ("codex_bridge_store_up", "gauge", "1 while the store answers, 0 during an outage."),
    ("codex_bridge_store_outages_total", "counter", "Times the store went down (a failed or timed-out call)."),
    (
        "codex_bridge_store_read_fallbacks_total",
        "counter",
        "Store calls that failed or were not sent (store down); the caller fell back as if the value were absent.",
    ),
    (
        "codex_bridge_store_writes_dropped_total",
        "counter",
        "Queued store writes dropped, by reason (queue_full, store_error, stopped).",
    ),
];

impl Metrics {
    /// Adds to a counter.
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)], by: u64) {
        let key = (name, labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect());
        if let Ok(mut inner) = self.inner.lock() {
            *inner.counters.entry(key).or_default() += by;
        }
    }

    /// Sets a gauge without labels.
    pub fn set_gauge(&self, name: &'static str, value: i64) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.gauges.insert(name, value);
        }
    }

    /// Records a duration in a histogram.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], value: Duration) {
        let secs = value.as_secs_f64();
        let key = (name, labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect());
        if let Ok(mut inner) = self.inner.lock() {
            let h = inner.histograms.entry(key).or_default();
            if h.counts.is_empty() {
                h.counts = vec![0; BUCKETS.len()];
            }
            for (i, bound) in BUCKETS.iter().enumerate() {
                if secs <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.sum += secs;
            h.count += 1;
        }
    }

    /// A model name safe to use as a label value.
    pub fn model_label(&self, model: Option<&str>) -> String {
        let Some(model) = model else { return "unknown".to_owned() };
        let clean: String = model
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':' | '/'))
            .take(64)
            .collect();
        let Ok(mut inner) = self.inner.lock() else { return "other".to_owned() };
        if inner.models.contains(&clean) {
            return clean;
        }
        if inner.models.len() < MAX_MODELS {
            inner.models.insert(clean.clone());
            return clean;
        }
        "other".to_owned()
    }

    /// Marks a stream as started; the guard marks it finished when dropped.
    pub fn stream_started(&self) -> StreamGuard<'_> {
        self.active_streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self)
    }

    /// The value of one counter (tests and `stats`).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let Ok(inner) = self.inner.lock() else { return 0 };
        inner
            .counters
            .iter()
            .filter(|((n, l), _)| *n == name && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v)))
            .map(|(_, v)| *v)
            .sum()
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(inner) = self.inner.lock() else { return out };
        for (name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            if *name == "codex_bridge_active_streams" {
                let _ = writeln!(out, "{name} {}", self.active_streams.load(Ordering::Relaxed));
            }
            if let Some(v) = inner.gauges.get(name) {
                let _ = writeln!(out, "{name} {v}");
            }
            for ((n, labels), v) in &inner.counters {
                if n == name {
                    let _ = writeln!(out, "{name}{} {v}", fmt_labels(labels, None));
                }
            }
            for ((n, labels), h) in &inner.histograms {
                if n != name {
                    continue;
                }
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let _ =
                        writeln!(out, "{name}_bucket{} {}", fmt_labels(labels, Some(&bound.to_string())), h.counts[i]);
                }
                let _ = writeln!(out, "{name}_bucket{} {}", fmt_labels(labels, Some("+Inf")), h.count);
                let _ = writeln!(out, "{name}_sum{} {}", fmt_labels(labels, None), h.sum);
                let _ = writeln!(out, "{name}_count{} {}", fmt_labels(labels, None), h.count);
            }
        }
        out
    }
}

/// Decrements the active stream gauge on drop.
pub struct StreamGuard<'a>(&'a Metrics);

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        self.0.active_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

fn fmt_labels(labels: &Labels, le: Option<&str>) -> String {
    if labels.is_empty() && le.is_none() {
        return String::new();
    }
    let mut parts: Vec<String> =
        labels.iter().map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))).collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    format!("{{{}}}", parts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.inc("codex_bridge_requests_total", &[("route", "/v1/responses"), ("status", "200")], 2);
        m.observe("codex_bridge_ttfb_seconds", &[("route", "/v1/responses")], Duration::from_millis(3));
        let _g = m.stream_started();
        let text = m.render();
        assert!(text.contains("codex_bridge_requests_total{route=\"/v1/responses\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("codex_bridge_ttfb_seconds_bucket{route=\"/v1/responses\",le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("codex_bridge_ttfb_seconds_count{route=\"/v1/responses\"} 1"), "{text}");
        assert!(text.contains("codex_bridge_active_streams 1"), "{text}");
    }

    #[test]
    fn model_labels_are_capped() {
        let m = Metrics::default();
        for i in 0..MAX_MODELS {
            assert_eq!(m.model_label(Some(&format!("m{i}"))), format!("m{i}"));
        }
        assert_eq!(m.model_label(Some("one-too-many")), "other");
        assert_eq!(m.model_label(Some("m1")), "m1");
        assert_eq!(Metrics::default().model_label(Some("a\"b{c}")), "abc");
    }
}
