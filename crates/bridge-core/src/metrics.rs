//! The bridge's metrics, on `prometheus-client`: one registry per bridge, one typed family per metric,
//! no global lock (each family shards its label sets behind a read-mostly lock; the counters themselves
//! are atomics), rendered as OpenMetrics text at `/metrics`.
//!
//! Names keep the `_total` (counters; the encoder adds the suffix) and `_seconds` conventions. Labels come
//! from closed sets (route templates, status codes, token kinds, reasons); model names are capped at
//! [`MAX_MODELS`] distinct values, after which they count as `other`.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Distinct model label values kept before folding into `other`.
pub const MAX_MODELS: usize = 64;

const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// `route`: a route template.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: &'static str,
}

/// `route` and `status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub status: u16,
}

/// The client `transport` (`http`, `ws`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabel {
    pub transport: &'static str,
}

/// `reason`, from a closed set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// `reason` of a cache outcome (`hit`, `partial`, miss reasons with the field that changed).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeReasonLabel {
    pub reason: String,
}

/// `outcome`: hit or miss.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// Token `kind` and `model` (capped, see [`Metrics::model_label`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub kind: &'static str,
    pub model: String,
}

/// A usage `field` the upstream did not report.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FieldLabel {
    pub field: &'static str,
}

/// A git drift `kind`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

/// How one turn reached the upstream: `transport` (`http`, `ws`, `bridged`), `socket` (`new`, `reused`,
/// `one-shot`, `none`) and `frame` (`delta`, `full`, `none`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamTurnLabels {
    pub transport: &'static str,
    pub socket: &'static str,
    pub frame: &'static str,
}

/// A store `op`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS.iter().copied())
}

/// The registry and its metrics; one per bridge, shared by every task.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub exchanges: Family<RouteLabel, Counter>,
    pub exchanges_by_transport: Family<TransportLabel, Counter>,
    pub ws_sockets: Gauge,
    pub ws_frames: Family<ReasonLabel, Counter>,
    pub upstream_latency: Histograms<RouteLabel>,
    pub overhead: Histograms<RouteLabel>,
    pub ttfb: Histograms<RouteLabel>,
    pub tokens: Family<TokenLabels, Counter>,
    pub usage_missing: Family<FieldLabel, Counter>,
    pub upstream_retries: Family<ReasonLabel, Counter>,
    pub stream_errors: Family<ReasonLabel, Counter>,
    pub connections_closed: Family<ReasonLabel, Counter>,
    pub connections_refused: Family<ReasonLabel, Counter>,
    pub client_stalls: Counter,
    pub requests_shed: Family<ReasonLabel, Counter>,
    pub active_streams: Gauge,
    pub cache_outcomes: Family<OutcomeLabel, Counter>,
    pub cache_outcome_reasons: Family<OutcomeReasonLabel, Counter>,
    pub cache_key_warnings: Counter,
    pub tracked_sessions: Gauge,
    pub tracker_evictions: Counter,
    pub git_drift: Family<KindLabel, Counter>,
    pub prewarm_tokens: Family<KindLabel, Counter>,
    pub store_up: Gauge,
    pub store_outages: Counter,
    pub store_read_fallbacks: Family<OpLabel, Counter>,
    pub store_writes_dropped: Family<ReasonLabel, Counter>,
    pub upstream_turns: Family<UpstreamTurnLabels, Counter>,
    pub upstream_socket_events: Family<ReasonLabel, Counter>,
    pub upstream_idle_sockets: Gauge,
    /// Model label values in use (bounded by [`MAX_MODELS`]; touched once per exchange).
    models: Mutex<BTreeSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        macro_rules! metric {
            ($value:expr, $name:literal, $help:literal) => {{
                let metric = $value;
                registry.register($name, $help, metric.clone());
                metric
            }};
        }
        let histograms = || Histograms::<RouteLabel>::new_with_constructor(histogram as fn() -> Histogram);
        Self {
            requests: metric!(Family::default(), "codex_bridge_requests", "Requests by route template and status."),
            exchanges: metric!(
                Family::default(),
                "codex_bridge_exchanges",
                "Exchanges finished (one usage row each), by route template."
            ),
            exchanges_by_transport: metric!(
                Family::default(),
                "codex_bridge_exchanges_by_transport",
                "Exchanges finished, by client transport (http, ws)."
            ),
            ws_sockets: metric!(Gauge::default(), "codex_bridge_ws_sockets", "Client WebSocket connections open."),
            ws_frames: metric!(
                Family::default(),
                "codex_bridge_ws_frames",
                "Client WebSocket frames by what they were (create, delta, prewarm = answered by the bridge, prewarm_upstream = sent over the lineage's upstream socket, processed, busy, invalid, unknown_previous)."
            ),
            upstream_latency: metric!(
                histograms(),
                "codex_bridge_upstream_latency_seconds",
                "Time from sending upstream to its response headers."
            ),
            overhead: metric!(
                histograms(),
                "codex_bridge_overhead_seconds",
                "Time spent in the bridge itself, excluding waits for the upstream."
            ),
            ttfb: metric!(
                histograms(),
                "codex_bridge_ttfb_seconds",
                "Time from request arrival to the first response byte being ready."
            ),
            tokens: metric!(
                Family::default(),
                "codex_bridge_tokens",
                "Tokens reported by the upstream, by kind and model."
            ),
            usage_missing: metric!(
                Family::default(),
                "codex_bridge_usage_missing",
                "Usage fields the upstream did not report."
            ),
            upstream_retries: metric!(
                Family::default(),
                "codex_bridge_upstream_retries",
                "Upstream retries before the first byte, by reason."
            ),
            stream_errors: metric!(
                Family::default(),
                "codex_bridge_stream_errors",
                "Streams that ended abnormally, by reason."
            ),
            connections_closed: metric!(
                Family::default(),
                "codex_bridge_connections_closed",
                "Client connections closed by a limit, by reason."
            ),
            connections_refused: metric!(
                Family::default(),
                "codex_bridge_connections_refused",
                "Client connections refused with a 503 at the connection cap."
            ),
            client_stalls: metric!(
                Counter::default(),
                "codex_bridge_client_stalls",
                "Streaming clients cut for leaving events unread too long."
            ),
            requests_shed: metric!(
                Family::default(),
                "codex_bridge_requests_shed",
                "Requests refused with a 503 because a budget was spent, by reason."
            ),
            active_streams: metric!(Gauge::default(), "codex_bridge_active_streams", "Upstream streams in flight."),
            cache_outcomes: metric!(
                Family::default(),
                "codex_bridge_cache_outcomes",
                "Tracked requests whose usage was a cache hit or a miss."
            ),
            cache_outcome_reasons: metric!(
                Family::default(),
                "codex_bridge_cache_outcome_reasons",
                "Cache outcomes by reason (hit, partial, miss reasons)."
            ),
            cache_key_warnings: metric!(
                Counter::default(),
                "codex_bridge_cache_key_warnings",
                "Fallback keys used although session-like hints were present."
            ),
            tracked_sessions: metric!(
                Gauge::default(),
                "codex_bridge_tracked_sessions",
                "Sessions held in memory by the session tracker."
            ),
            tracker_evictions: metric!(
                Counter::default(),
                "codex_bridge_tracker_evictions",
                "Sessions dropped from the tracker's memory (idle or over capacity)."
            ),
            git_drift: metric!(
                Family::default(),
                "codex_bridge_git_drift",
                "Git drift seen before a turn, by kind (branch-switch, new-commits, reset, rebase)."
            ),
            prewarm_tokens: metric!(
                Family::default(),
                "codex_bridge_prewarm_tokens",
                "Tokens the upstream reported for generate:false prewarms sent over an upstream socket, by kind (input, cached); a prewarm is not a turn and has no usage row."
            ),
            store_up: metric!(
                Gauge::default(),
                "codex_bridge_store_up",
                "1 while the store answers, 0 during an outage."
            ),
            store_outages: metric!(
                Counter::default(),
                "codex_bridge_store_outages",
                "Times the store went down (a failed or timed-out call)."
            ),
            store_read_fallbacks: metric!(
                Family::default(),
                "codex_bridge_store_read_fallbacks",
                "Store calls that failed or were not sent (store down); the caller fell back as if the value were absent."
            ),
            store_writes_dropped: metric!(
                Family::default(),
                "codex_bridge_store_writes_dropped",
                "Queued store writes dropped, by reason (queue_full, store_error, stopped)."
            ),
            upstream_turns: metric!(
                Family::default(),
                "codex_bridge_upstream_turns",
                "Turns sent upstream, by transport (http, ws, bridged), socket (new, reused, one-shot) and frame (delta, full)."
            ),
            upstream_socket_events: metric!(
                Family::default(),
                "codex_bridge_upstream_socket_events",
                "Upstream socket events: opened, busy_bypass, busy_member, retired_age, evicted_credential, evicted_liveness, evicted_lru, evicted_abort, refused_upgrade, handshake_failed, connection_limit, anchor_lost, closed_mid_stream."
            ),
            upstream_idle_sockets: metric!(
                Gauge::default(),
                "codex_bridge_upstream_idle_sockets",
                "Idle upstream sockets in the pool."
            ),
            models: Mutex::default(),
            registry,
        }
    }
}

impl Metrics {
    /// Records a duration in a route histogram.
    pub fn observe(histograms: &Histograms<RouteLabel>, route: &'static str, value: Duration) {
        histograms.get_or_create(&RouteLabel { route }).observe(value.as_secs_f64());
    }

    /// Adds to a counter family with a `reason` label.
    pub fn count(family: &Family<ReasonLabel, Counter>, reason: &'static str, by: u64) {
        family.get_or_create(&ReasonLabel { reason }).inc_by(by);
    }

    /// A model name safe to use as a label value.
    pub fn model_label(&self, model: Option<&str>) -> String {
        let Some(model) = model else { return "unknown".to_owned() };
        let clean: String = model
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':' | '/'))
            .take(64)
            .collect();
        let mut models = self.models.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if models.contains(&clean) {
            return clean;
        }
        if models.len() < MAX_MODELS {
            models.insert(clean.clone());
            return clean;
        }
        "other".to_owned()
    }

    /// Marks a stream as started; the guard marks it finished when dropped.
    pub fn stream_started(&self) -> StreamGuard<'_> {
        self.active_streams.inc();
        StreamGuard(self)
    }

    /// OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "could not render the metrics");
        }
        out
    }

    /// The sum of one metric's samples whose labels include `labels`, read from the rendered text (tests and
    /// `stats` read what a scraper would). `name` is the sample name (`codex_bridge_requests_total`).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let text = self.render();
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (sample, set) = match series.split_once('{') {
                    Some((sample, rest)) => (sample, rest.strip_suffix('}').unwrap_or(rest)),
                    None => (series, ""),
                };
                let matches = sample == name
                    && labels.iter().all(|(k, v)| set.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
                matches.then(|| value.parse::<f64>().ok()).flatten()
            })
            .map(|v| v as u64)
            .sum()
    }
}

/// Decrements the active stream gauge on drop.
pub struct StreamGuard<'a>(&'a Metrics);

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        self.0.active_streams.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.requests.get_or_create(&RequestLabels { route: "/v1/responses", status: 200 }).inc_by(2);
        Metrics::observe(&m.ttfb, "/v1/responses", Duration::from_millis(3));
        let _g = m.stream_started();
        let text = m.render();
        assert!(text.contains("codex_bridge_requests_total{route=\"/v1/responses\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("codex_bridge_ttfb_seconds_bucket{le=\"0.005\",route=\"/v1/responses\"} 1"), "{text}");
        assert!(text.contains("codex_bridge_ttfb_seconds_count{route=\"/v1/responses\"} 1"), "{text}");
        assert!(text.contains("codex_bridge_active_streams 1"), "{text}");
        assert!(text.contains("# TYPE codex_bridge_requests counter"), "{text}");
        assert_eq!(m.counter("codex_bridge_requests_total", &[("status", "200")]), 2);
        assert_eq!(m.counter("codex_bridge_requests_total", &[("status", "500")]), 0);
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
