//! The stream pump: reads upstream SSE events one at a time and hands each to its sink the moment it is
//! complete, taps usage, and records the exchange when the stream ends.
//!
//! Invariants:
//! - No buffering beyond one incomplete event: an event's raw bytes are forwarded as soon as its blank
//!   line arrives, byte for byte.
//! - Every read waits at most the idle timeout; there is no total timeout.
//! - Every write to a streaming client waits at most the client stall timeout; a client that leaves events
//!   unread longer has its connection cut, and the pump goes on draining the upstream so the turn is still
//!   recorded. A stuck client so costs bounded time and at most [`crate::proxy`]'s queue of events.
//! - The pump runs in its own tracked task, so a client that disconnects stops nothing: the pump keeps
//!   reading until the upstream finishes and the usage row is still written.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bridge_sse::{SseDecoder, SseEvent};
use bridge_store::UsageRecord;
use bridge_types::{ApiError, ErrorKind, Usage};
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::state::AppState;

/// Why reading the upstream stream stopped early.
#[derive(Debug)]
pub enum StreamFailure {
    Idle(Duration),
    Transport(String),
    TooLarge(usize),
}

impl StreamFailure {
    /// A short metric label.
    pub fn label(&self) -> &'static str {
        match self {
            StreamFailure::Idle(_) => "idle_timeout",
            StreamFailure::Transport(_) => "transport",
            StreamFailure::TooLarge(_) => "event_too_large",
        }
    }

    /// The OpenAI-shaped error for a client that has not received anything yet.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            StreamFailure::Idle(d) => crate::errors::gateway_timeout(*d),
            StreamFailure::Transport(m) => crate::errors::bad_gateway(format!("upstream stream broke: {m}")),
            StreamFailure::TooLarge(limit) => {
                crate::errors::bad_gateway(format!("upstream sent an SSE event larger than {limit} bytes"))
            }
        }
    }
}

/// Upstream SSE events with an idle timeout on every read.
pub struct UpstreamEvents {
    response: reqwest::Response,
    decoder: SseDecoder,
    idle: Duration,
    ended: bool,
}

impl UpstreamEvents {
    /// Wraps a streaming upstream response.
    pub fn new(response: reqwest::Response, idle: Duration) -> Self {
        Self { response, decoder: SseDecoder::new(), idle, ended: false }
    }

    /// The next complete event already received, without waiting for more input.
    pub fn buffered(&mut self) -> Result<Option<SseEvent>, StreamFailure> {
        match self.decoder.next_event() {
            Ok(event) => Ok(event),
            Err(bridge_sse::SseError::EventTooLarge { limit }) => Err(StreamFailure::TooLarge(limit)),
        }
    }

    /// The next complete event; `Ok(None)` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, StreamFailure> {
        loop {
            if let Some(event) = self.buffered()? {
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(self.decoder.finish());
            }
            match tokio::time::timeout(self.idle, self.response.chunk()).await {
                Err(_) => return Err(StreamFailure::Idle(self.idle)),
                Ok(Err(e)) => return Err(StreamFailure::Transport(e.without_url().to_string())),
                Ok(Ok(None)) => self.ended = true,
                Ok(Ok(Some(chunk))) => self.decoder.feed(&chunk),
            }
        }
    }
}

/// How the stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    Completed,
    Incomplete,
    Failed,
}

/// What the pump learned from the events it saw.
#[derive(Debug, Default)]
pub struct Tap {
    pub usage: Option<Usage>,
    pub terminal: Option<Terminal>,
    pub events: u64,
    /// Aggregation only: the `response` object of the terminal event.
    pub final_response: Option<Value>,
    /// Items from `response.output_item.done`, in order (when aggregating or journaling).
    pub output_items: Vec<Value>,
    /// Collect output items even for streaming clients (the journal records them).
    pub collect_items: bool,
}

impl Tap {
    /// Looks at one event. Only terminal events (and, when aggregating or journaling, finished output items)
    /// are parsed; deltas pass without JSON decoding.
    pub fn inspect(&mut self, event: &SseEvent, aggregate: bool) {
        self.events += 1;
        let interesting = |name: &str| {
            matches!(name, "response.completed" | "response.incomplete" | "response.failed")
                || ((aggregate || self.collect_items) && name == "response.output_item.done")
        };
        let named = event.event.as_deref().map(interesting);
        let worth_parsing = match named {
            Some(yes) => yes,
            None => {
                aggregate
                    || self.collect_items
                    || event.data.contains("\"response.completed\"")
                    || event.data.contains("\"response.failed\"")
                    || event.data.contains("\"response.incomplete\"")
            }
        };
        if !worth_parsing {
            return;
        }
        let Ok(value) = serde_json::from_str::<Value>(&event.data) else { return };
        let kind = value.get("type").and_then(Value::as_str).or(event.event.as_deref()).unwrap_or_default().to_owned();
        let terminal = match kind.as_str() {
            "response.completed" => Terminal::Completed,
            "response.incomplete" => Terminal::Incomplete,
            "response.failed" => Terminal::Failed,
            "response.output_item.done" => {
                if let Some(item) = value.get("item") {
                    self.output_items.push(item.clone());
                }
                return;
            }
            _ => return,
        };
        self.terminal = Some(terminal);
        self.usage = Usage::from_event(&value);
        if aggregate {
            self.final_response = value.get("response").cloned();
        }
    }
}

/// A streaming client's side of the pump.
pub struct ClientSink {
    /// Raw event bytes to the client's response body.
    pub tx: mpsc::Sender<Result<Bytes, Infallible>>,
    /// Longest wait for room in the client's queue.
    pub stall: Duration,
    /// The client's connection, cut when it stalls (absent outside a real connection, e.g. in-process calls).
    pub connection: Option<crate::connection::ConnectionHandle>,
}

/// Where events go.
pub enum Sink {
    /// Raw event bytes to a streaming client.
    Client(ClientSink),
    /// One aggregated result for a `stream:false` client.
    Aggregate(oneshot::Sender<Aggregated>),
}

/// The result for a `stream:false` client.
#[derive(Debug)]
pub enum Aggregated {
    /// HTTP status and the Responses JSON object.
    Response(u16, Value),
    Error(ApiError),
}

/// Facts about the exchange needed to record it.
pub struct Exchange {
    pub state: AppState,
    pub record: UsageRecord,
    pub route: &'static str,
    pub started: Instant,
    /// Bridge time spent before the upstream was called.
    pub overhead: Duration,
    /// What the session tracker needs once usage is known.
    pub turn: Option<crate::tracker::Turn>,
    /// The turn to journal when the stream ends (journal on and a session known).
    pub journal: Option<crate::journal_hook::PendingTurn>,
    /// Output items for the journal.
    pub items: Vec<Value>,
    /// A slot among the exchanges whose bookkeeping is unfinished ([`crate::state::MAX_OPEN_EXCHANGES`]);
    /// released when the exchange is recorded, so a store slower than the traffic slows new requests
    /// instead of piling up memory.
    pub slot: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The request body's share of the in-flight body budget, released when the exchange is recorded.
    pub body_permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Runs the pump to the end of the upstream stream. `first` is the event the handler already read.
pub async fn run(mut events: UpstreamEvents, first: SseEvent, sink: Sink, mut exchange: Exchange) {
    let state = exchange.state.clone();
    let _active = state.metrics.stream_started();
    // The sink is taken apart here so that no sender outlives the stream: the client's response ends as soon
    // as the last event is written, before the bookkeeping in `finish` (tracker, journal, recorder).
    let (mut client, aggregate_to) = match sink {
        Sink::Client(tx) => (Some(tx), None),
        Sink::Aggregate(done) => (None, Some(done)),
    };
    let aggregate = aggregate_to.is_some();
    let mut tap = Tap { collect_items: exchange.journal.is_some(), ..Tap::default() };
    let mut next = Some(first);
    let mut failure = None;
    while let Some(event) = next.take() {
        let t = Instant::now();
        tap.inspect(&event, aggregate);
        // Events that arrived together leave together: one write to the client instead of one per event,
        // and nothing ever waits for input that has not arrived.
        let mut joined: Option<bytes::BytesMut> = None;
        loop {
            match events.buffered() {
                Ok(Some(more)) => {
                    tap.inspect(&more, aggregate);
                    joined.get_or_insert_with(|| bytes::BytesMut::from(&event.raw[..])).extend_from_slice(&more.raw);
                }
                Ok(None) => break,
                Err(f) => {
                    failure = Some(f);
                    break;
                }
            }
        }
        let out = joined.map_or(event.raw, bytes::BytesMut::freeze);
        exchange.overhead += t.elapsed();
        if let Some(sink) = &client {
            match tokio::time::timeout(sink.stall, sink.tx.send(Ok(out))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    tracing::debug!(request_id = %exchange.record.request_id, "client went away; draining the upstream stream");
                    client = None;
                }
                Err(_) => {
                    tracing::warn!(
                        request_id = %exchange.record.request_id,
                        stall_ms = sink.stall.as_millis() as u64,
                        "client stopped reading; cutting its connection and draining the upstream stream"
                    );
                    state.metrics.inc("codex_bridge_client_stalls_total", &[], 1);
                    if let Some(connection) = &sink.connection {
                        connection.cut();
                    }
                    client = None;
                }
            }
        }
        if failure.is_some() {
            break;
        }
        match events.next().await {
            Ok(e) => next = e,
            Err(f) => failure = Some(f),
        }
    }
    if exchange.journal.is_some() {
        exchange.items = tap.output_items.clone();
    }
    if tap.terminal.is_none() {
        let reason = failure.as_ref().map_or("closed_early", StreamFailure::label);
        state.metrics.inc("codex_bridge_stream_errors_total", &[("reason", reason)], 1);
        let message = match &failure {
            Some(f) => f.to_api_error().message,
            None => "upstream closed the stream before response.completed".to_owned(),
        };
        tracing::warn!(request_id = %exchange.record.request_id, reason, "upstream stream ended abnormally");
        if let Some(sink) = &client {
            let _ = tokio::time::timeout(sink.stall, sink.tx.send(Ok(error_event(reason, &message)))).await;
        }
        if let Some(done) = aggregate_to {
            let err = failure.map_or_else(|| crate::errors::bad_gateway(message), |f| f.to_api_error());
            exchange.record.status = err.status;
            let _ = done.send(Aggregated::Error(err));
        }
    } else if let Some(done) = aggregate_to {
        let result = aggregate_result(&mut tap);
        exchange.record.status = match &result {
            Aggregated::Response(s, _) => *s,
            Aggregated::Error(e) => e.status,
        };
        let _ = done.send(result);
    } else if tap.terminal == Some(Terminal::Failed) {
        state.metrics.inc("codex_bridge_stream_errors_total", &[("reason", "response_failed")], 1);
        exchange.record.status = 502;
    }
    drop(client);
    // Dropping the sender woke the client's connection task, most likely into this worker's LIFO slot, where
    // no other worker can steal it: yield so that it writes the end of the response before the bookkeeping
    // below takes this worker for a while (it delayed the end of every stream by the bookkeeping's CPU time).
    tokio::task::yield_now().await;
    finish(exchange, tap.usage).await;
}

fn aggregate_result(tap: &mut Tap) -> Aggregated {
    let Some(mut response) = tap.final_response.take() else {
        return Aggregated::Error(crate::errors::bad_gateway("upstream terminal event had no response object"));
    };
    let has_output = response.get("output").and_then(Value::as_array).is_some_and(|o| !o.is_empty());
    if !has_output
        && !tap.output_items.is_empty()
        && let Some(obj) = response.as_object_mut()
    {
        obj.insert("output".to_owned(), Value::Array(std::mem::take(&mut tap.output_items)));
    }
    if tap.terminal == Some(Terminal::Failed) {
        let error = response.get("error").cloned().unwrap_or(Value::Null);
        let message =
            error.get("message").and_then(Value::as_str).unwrap_or("the upstream reported response.failed").to_owned();
        let mut err = ApiError::new(500, ErrorKind::ServerError, message);
        if let Some(code) = error.get("code").and_then(Value::as_str) {
            err = err.with_code(code);
        }
        return Aggregated::Error(err);
    }
    Aggregated::Response(200, response)
}

/// An SSE `error` event in the Responses API shape.
pub fn error_event(code: &str, message: &str) -> Bytes {
    let data = serde_json::json!({"type": "error", "code": code, "message": message, "param": null});
    bridge_sse::encode_event(Some("error"), &data.to_string())
}

/// Records usage, metrics and the exchange row.
pub async fn finish(exchange: Exchange, usage: Option<Usage>) {
    let Exchange { state, mut record, route, started, overhead, turn, journal, items, slot, body_permit } = exchange;
    let metrics = &state.metrics;
    metrics.observe("codex_bridge_overhead_seconds", &[("route", route)], overhead);
    let model = metrics.model_label(record.model.as_deref());
    let reported = usage;
    let usage = reported.unwrap_or_default();
    for (kind, value) in [
        ("input", usage.input_tokens),
        ("cached", usage.cached_tokens),
        ("cache_write", usage.cache_write_tokens),
        ("output", usage.output_tokens),
        ("reasoning", usage.reasoning_tokens),
    ] {
        match value {
            Some(v) => metrics.inc("codex_bridge_tokens_total", &[("kind", kind), ("model", &model)], v),
            None => metrics.inc("codex_bridge_usage_missing_total", &[("field", kind)], 1),
        }
    }
    record.input_tokens = usage.input_tokens;
    record.cached_tokens = usage.cached_tokens;
    record.cache_write_tokens = usage.cache_write_tokens;
    record.output_tokens = usage.output_tokens;
    record.reasoning_tokens = usage.reasoning_tokens;
    record.total_tokens = usage.total_tokens;
    // The usage row is queued first: it never waits behind the journal writer's back-pressure, so a crash
    // loses only what the recorder had not yet committed (docs/BENCHMARKS.md, crash loss).
    let ok = (200..300).contains(&record.status);
    tracing::debug!(request_id = %record.request_id, elapsed_ms = started.elapsed().as_millis() as u64, "exchange finished");
    state.recorder.record(record).await;
    if let Some(turn) = journal.filter(|_| ok) {
        crate::journal_hook::finish(&state, turn, items, reported.as_ref()).await;
    }
    if let Some(turn) = turn.filter(|_| ok) {
        let cx = crate::tracker::Context {
            store: state.store.as_ref(),
            recorder: &state.recorder,
            metrics,
            lineages: state.identity.lineages(),
        };
        state.tracker.observe(&cx, turn, &usage).await;
    }
    drop(slot);
    drop(body_permit);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: Option<&str>, data: &str) -> SseEvent {
        let mut decoder = SseDecoder::new();
        decoder.feed(&bridge_sse::encode_event(name, data));
        decoder.next_event().unwrap().unwrap()
    }

    #[test]
    fn taps_usage_from_completed_with_or_without_event_names() {
        let data = r#"{"type":"response.completed","response":{"usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":2}}}"#;
        for name in [Some("response.completed"), None] {
            let mut tap = Tap::default();
            tap.inspect(
                &event(Some("response.output_text.delta"), r#"{"type":"response.output_text.delta","delta":"x"}"#),
                false,
            );
            tap.inspect(&event(name, data), false);
            let usage = tap.usage.unwrap();
            assert_eq!(usage.input_tokens, Some(10));
            assert_eq!(usage.cached_tokens, Some(4));
            assert_eq!(usage.cache_write_tokens, None);
            assert_eq!(usage.reasoning_tokens, None);
            assert_eq!(tap.terminal, Some(Terminal::Completed));
        }
    }

    #[test]
    fn aggregation_fills_output_from_items() {
        let mut tap = Tap::default();
        tap.inspect(
            &event(
                Some("response.output_item.done"),
                r#"{"type":"response.output_item.done","item":{"id":"m1","type":"message"}}"#,
            ),
            true,
        );
        tap.inspect(
            &event(Some("response.completed"), r#"{"type":"response.completed","response":{"id":"r","output":[]}}"#),
            true,
        );
        let Aggregated::Response(200, v) = aggregate_result(&mut tap) else { panic!("expected a response") };
        assert_eq!(v["output"][0]["id"], "m1");
    }
}
