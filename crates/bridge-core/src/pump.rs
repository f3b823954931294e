//! The stream pump: reads upstream SSE events one at a time and hands each, the moment it is complete, to
//! its [`Sink`] (the egress: an SSE client, an aggregated `stream:false` answer; other transports add
//! theirs), taps usage, and finishes the exchange when the stream ends.
//!
//! Invariants:
//! - No buffering beyond one incomplete event: an event's raw bytes are forwarded as soon as its blank
//!   line arrives, byte for byte.
//! - Every read waits at most the idle timeout; there is no total timeout.
//! - Every write to a streaming client waits at most the client stall timeout; a client that leaves events
//!   unread longer has its connection cut, and the pump goes on draining the upstream so the turn is still
//!   recorded. A stuck client so costs bounded time and at most its queue of events.
//! - The pump runs in its own tracked task, so a client that disconnects stops nothing: the pump keeps
//!   reading until the upstream finishes and the usage row is still written.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_sse::{SseDecoder, SseEvent};
use bridge_types::{ApiError, ErrorKind, Usage};
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::exchange::{Exchange, Outcome};
use crate::metrics::Metrics;

/// Why reading the upstream stream stopped early.
#[derive(Debug)]
pub enum StreamFailure {
    Idle(Duration),
    Transport(String),
    TooLarge(usize),
    /// The upstream socket closed (its close code; `None`: no close frame, 1006) before the terminal event.
    SocketClosed(Option<u16>),
    /// The upstream sent an error frame mid-response.
    Upstream {
        code: Option<String>,
        message: String,
    },
}

impl StreamFailure {
    /// A short metric label.
    pub fn label(&self) -> &'static str {
        match self {
            StreamFailure::Idle(_) => "idle_timeout",
            StreamFailure::Transport(_) => "transport",
            StreamFailure::TooLarge(_) => "event_too_large",
            StreamFailure::SocketClosed(_) => "socket_closed",
            StreamFailure::Upstream { .. } => "upstream_error",
        }
    }

    /// The close code a WebSocket client's socket gets instead of an error frame: the upstream socket's
    /// own 1009/1012/1013 ([`crate::upstream_ws::propagated_close`]).
    pub fn client_close_code(&self) -> Option<u16> {
        match self {
            StreamFailure::SocketClosed(code) => crate::upstream_ws::propagated_close(*code),
            _ => None,
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
            StreamFailure::SocketClosed(code) => crate::errors::bad_gateway(format!(
                "the upstream WebSocket closed ({}) before response.completed; the request was sent, so it is not replayed: retry",
                code.map_or_else(|| "1006".to_owned(), |c| c.to_string())
            )),
            StreamFailure::Upstream { code, message } => {
                let e = crate::errors::bad_gateway(format!("the upstream failed mid-response: {message}"));
                match code {
                    Some(c) => e.with_code(c.clone()),
                    None => e,
                }
            }
        }
    }
}

/// Upstream events with an idle timeout on every read, from an HTTP SSE body or from the frames of an
/// upstream WebSocket ([`crate::upstream_ws::WsEvents`]); the pump and the sinks see the same events.
pub struct UpstreamEvents {
    source: Source,
}

#[expect(clippy::large_enum_variant, reason = "one per stream, created once and never moved in a loop")]
enum Source {
    Http { response: reqwest::Response, decoder: SseDecoder, idle: Duration, ended: bool },
    Socket(Box<crate::upstream_ws::WsEvents>),
}

impl UpstreamEvents {
    /// Wraps a streaming upstream response.
    pub fn new(response: reqwest::Response, idle: Duration) -> Self {
        Self { source: Source::Http { response, decoder: SseDecoder::new(), idle, ended: false } }
    }

    /// Wraps a response on an upstream socket.
    pub fn socket(events: Box<crate::upstream_ws::WsEvents>) -> Self {
        Self { source: Source::Socket(events) }
    }

    /// The client is gone: an upstream socket is closed at the end of the response, not pooled.
    pub fn client_left(&mut self) {
        if let Source::Socket(events) = &mut self.source {
            events.client_left();
        }
    }

    /// The next complete event already received, without waiting for more input (a socket's events are
    /// read one frame at a time: none is ever buffered).
    pub fn buffered(&mut self) -> Result<Option<SseEvent>, StreamFailure> {
        match &mut self.source {
            Source::Http { decoder, .. } => match decoder.next_event() {
                Ok(event) => Ok(event),
                Err(bridge_sse::SseError::EventTooLarge { limit }) => Err(StreamFailure::TooLarge(limit)),
            },
            Source::Socket(_) => Ok(None),
        }
    }

    /// The next complete event; `Ok(None)` at the end of the stream.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, StreamFailure> {
        if let Source::Socket(events) = &mut self.source {
            return events.next().await.map_err(StreamFailure::from);
        }
        loop {
            if let Some(event) = self.buffered()? {
                return Ok(Some(event));
            }
            let Source::Http { response, decoder, idle, ended } = &mut self.source else { return Ok(None) };
            if *ended {
                return Ok(decoder.finish());
            }
            match tokio::time::timeout(*idle, response.chunk()).await {
                Err(_) => return Err(StreamFailure::Idle(*idle)),
                Ok(Err(e)) => return Err(StreamFailure::Transport(e.without_url().to_string())),
                Ok(Ok(None)) => *ended = true,
                Ok(Ok(Some(chunk))) => decoder.feed(&chunk),
            }
        }
    }
}

impl From<crate::upstream_ws::WsFailure> for StreamFailure {
    fn from(f: crate::upstream_ws::WsFailure) -> Self {
        use crate::upstream_ws::WsFailure;
        match f {
            WsFailure::Idle(d) => StreamFailure::Idle(d),
            WsFailure::Closed(code) => StreamFailure::SocketClosed(code),
            WsFailure::Upstream { code, message } => StreamFailure::Upstream { code, message },
            WsFailure::Protocol(m) => StreamFailure::Transport(m),
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

/// Where the events of one exchange go: the egress side of a transport.
pub trait Sink: Send + 'static {
    /// Whether the sink needs the terminal event's `response` and the output items (aggregation).
    fn aggregates(&self) -> bool;
    /// Delivers raw event bytes (the events that arrived together, joined). False when the receiver is
    /// gone or was cut off: the pump then drains the upstream without it.
    fn deliver(&mut self, bytes: Bytes, request_id: &str, metrics: &Metrics) -> impl Future<Output = bool> + Send;
    /// The stream ended (`tap.terminal` is `None` when it ended early, with `failure` saying why when it
    /// broke). Returns the status to record.
    fn end(self, tap: &mut Tap, failure: Option<StreamFailure>) -> impl Future<Output = u16> + Send;
}

/// A streaming HTTP client: raw SSE bytes into its response body.
pub struct SseSink {
    /// Raw event bytes to the client's response body.
    pub tx: mpsc::Sender<Result<Bytes, Infallible>>,
    /// Longest wait for room in the client's queue.
    pub stall: Duration,
    /// The client's connection, cut when it stalls (absent outside a real connection, e.g. in-process calls).
    pub connection: Option<crate::connection::ConnectionHandle>,
    /// False once the client is gone.
    pub live: bool,
}

impl Sink for SseSink {
    fn aggregates(&self) -> bool {
        false
    }

    async fn deliver(&mut self, bytes: Bytes, request_id: &str, metrics: &Metrics) -> bool {
        if !self.live {
            return false;
        }
        match tokio::time::timeout(self.stall, self.tx.send(Ok(bytes))).await {
            Ok(Ok(())) => return true,
            Ok(Err(_)) => {
                tracing::debug!(request_id, "client went away; draining the upstream stream");
            }
            Err(_) => {
                tracing::warn!(
                    request_id,
                    stall_ms = self.stall.as_millis() as u64,
                    "client stopped reading; cutting its connection and draining the upstream stream"
                );
                metrics.client_stalls.inc();
                if let Some(connection) = &self.connection {
                    connection.cut();
                }
            }
        }
        self.live = false;
        false
    }

    async fn end(self, tap: &mut Tap, failure: Option<StreamFailure>) -> u16 {
        if tap.terminal.is_none() {
            if self.live {
                let (reason, message) = early_end(failure.as_ref());
                let _ = tokio::time::timeout(self.stall, self.tx.send(Ok(error_event(reason, &message)))).await;
            }
            return 200;
        }
        if tap.terminal == Some(Terminal::Failed) { 502 } else { 200 }
    }
}

/// A `stream:false` client: one aggregated Responses object (or error) through a oneshot.
pub struct AggregateSink(pub oneshot::Sender<Aggregated>);

impl Sink for AggregateSink {
    fn aggregates(&self) -> bool {
        true
    }

    async fn deliver(&mut self, _bytes: Bytes, _request_id: &str, _metrics: &Metrics) -> bool {
        true
    }

    async fn end(self, tap: &mut Tap, failure: Option<StreamFailure>) -> u16 {
        let result = if tap.terminal.is_none() {
            let (_, message) = early_end(failure.as_ref());
            Aggregated::Error(failure.map_or_else(|| crate::errors::bad_gateway(message), |f| f.to_api_error()))
        } else {
            aggregate_result(tap)
        };
        let status = match &result {
            Aggregated::Response(s, _) => *s,
            Aggregated::Error(e) => e.status,
        };
        let _ = self.0.send(result);
        status
    }
}

/// The result for a `stream:false` client.
#[derive(Debug)]
pub enum Aggregated {
    /// HTTP status and the Responses JSON object.
    Response(u16, Value),
    Error(ApiError),
}

/// The reason label and message of a stream that ended before its terminal event.
fn early_end(failure: Option<&StreamFailure>) -> (&'static str, String) {
    match failure {
        Some(f) => (f.label(), f.to_api_error().message),
        None => ("closed_early", "upstream closed the stream before response.completed".to_owned()),
    }
}

/// Runs the pump to the end of the upstream stream, then finishes the exchange. `first` is the event the
/// pipeline already read.
pub async fn run(
    mut events: UpstreamEvents,
    first: SseEvent,
    mut sink: impl Sink,
    mut exchange: Exchange,
    metrics: Arc<Metrics>,
) {
    let _active = metrics.stream_started();
    let aggregate = sink.aggregates();
    let request_id = exchange.cx().request_id.clone();
    let mut tap = Tap { collect_items: exchange.cx().journal.is_some(), ..Tap::default() };
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
        exchange.cx_mut().overhead += t.elapsed();
        if !sink.deliver(out, &request_id, &metrics).await {
            events.client_left();
        }
        if failure.is_some() {
            break;
        }
        match events.next().await {
            Ok(e) => next = e,
            Err(f) => failure = Some(f),
        }
    }
    if tap.terminal.is_none() {
        let reason = failure.as_ref().map_or("closed_early", StreamFailure::label);
        Metrics::count(&metrics.stream_errors, reason, 1);
        tracing::warn!(request_id = %request_id, reason, "upstream stream ended abnormally");
    } else if tap.terminal == Some(Terminal::Failed) && !aggregate {
        Metrics::count(&metrics.stream_errors, "response_failed", 1);
    }
    // Ending the sink drops its sender, so the client's response ends before the bookkeeping below.
    let status = sink.end(&mut tap, failure).await;
    // Dropping the sender woke the client's connection task, most likely into this worker's LIFO slot, where
    // no other worker can steal it: yield so that it writes the end of the response before the bookkeeping
    // below takes this worker for a while (it delayed the end of every stream by the bookkeeping's CPU time).
    tokio::task::yield_now().await;
    let output_items = if exchange.cx().journal.is_some() { std::mem::take(&mut tap.output_items) } else { Vec::new() };
    exchange.finish(Outcome { status, usage: tap.usage, output_items }).await;
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
