//! The phases of one exchange, written once for every transport. Follow one request here:
//!
//! 1. **ingress** — a transport adapter reads and parses the request once (HTTP: [`crate::proxy`]) and
//!    hands over an [`Ingress`];
//! 2. **begin** — the [`Exchange`] context and its finish guard ([`crate::exchange`]);
//! 3. **identify** — the cache identity ([`crate::identity::for_request`]);
//! 4. **shape** — the upstream's shape, then the key ([`crate::shape::for_upstream`],
//!    [`crate::identity::apply_key`]), then the journal hook, which starts the git check
//!    ([`crate::journal_hook::before_upstream`]); the final request becomes a [`SentRequest`];
//! 5. **upstream call** — HTTP or the conversation's upstream socket, delta or full
//!    ([`crate::upstream_ws::UpstreamSockets::call`]); over HTTP, credential and retries
//!    ([`crate::upstream::Upstream::send`]);
//! 6. **stream** — the first event is awaited here; the egress picks a [`crate::pump::Sink`] and
//!    [`Streaming::pump`] runs the rest in a tracked task;
//! 7. **finish** — exactly once, on every path ([`Exchange::finish`], or its drop guard).
//!
//! A WebSocket client's `generate:false` prewarm runs identify, shape and the upstream call only
//! ([`prewarm`]): the same bytes as a turn, but not an exchange.
//!
//! Invariants: the order above is the only order (shape before the key, the journal hook before the
//! bytes are final, the bytes final before the upstream call); every return path after `begin` finishes
//! the exchange or hands it to the pump, which finishes it; nothing after `ingress` parses the body.

use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue, header};
use bridge_sse::SseEvent;
use bridge_types::{ApiError, ResponsesRequest, Usage};
use bytes::{Bytes, BytesMut};
use tokio::sync::OwnedSemaphorePermit;

use crate::errors::BridgeError;
use crate::exchange::{Exchange, Outcome, Transport};
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::pump::{Sink, UpstreamEvents};
use crate::sent::SentRequest;
use crate::state::AppState;
use crate::upstream_ws::{Called, TurnRequest, UpstreamTurn};
use bridge_journal::RequestView;

/// Largest non-streaming upstream body or error body the bridge reads.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// What an ingress adapter hands the pipeline.
pub struct Ingress<'a> {
    /// The route template, for metrics and usage rows.
    pub route: &'static str,
    /// The client transport.
    pub transport: Transport,
    /// The client's request headers.
    pub headers: &'a HeaderMap,
    /// The client's body bytes (forwarded as they are when shaping changes nothing).
    pub original: Bytes,
    /// The body, parsed once.
    pub request: ResponsesRequest,
    /// When the transport received the request.
    pub started: Instant,
    /// The body's share of the in-flight body budget, held until the exchange finishes.
    pub body_permit: OwnedSemaphorePermit,
}

/// The pipeline's answer: headers the client's response carries whatever happened (identity warning, git
/// drift), and the reply.
pub struct Answer {
    pub notes: HeaderMap,
    pub reply: Result<Reply, BridgeError>,
}

/// What the upstream answered.
pub enum Reply {
    /// A whole answer (an error or a non-streaming JSON body), already mapped; the exchange is finished.
    Whole { status: u16, headers: HeaderMap, body: Bytes },
    /// A stream whose first event has arrived; the egress picks a sink and calls [`Streaming::pump`].
    Stream(Box<Streaming>),
}

/// An upstream stream ready to pump.
pub struct Streaming {
    events: UpstreamEvents,
    first: SseEvent,
    exchange: Exchange,
    state: AppState,
    /// The upstream's response headers.
    pub headers: HeaderMap,
    /// Whether the client asked for a stream (else the egress aggregates).
    pub client_streams: bool,
}

impl Streaming {
    /// Runs the rest of the stream into `sink` in a tracked task (shutdown waits for it); the exchange is
    /// finished there.
    pub fn pump(self, sink: impl Sink) {
        let Streaming { events, first, exchange, state, .. } = self;
        let metrics = state.metrics.clone();
        state.tasks.spawn(crate::pump::run(events, first, sink, exchange, metrics));
    }
}

/// Runs the phases of one exchange (module docs).
pub async fn run(state: &AppState, ingress: Ingress<'_>) -> Answer {
    let mut notes = HeaderMap::new();
    let reply = phases(state, ingress, &mut notes).await;
    Answer { notes, reply }
}

async fn phases(state: &AppState, ingress: Ingress<'_>, notes: &mut HeaderMap) -> Result<Reply, BridgeError> {
    let Ingress { route, transport, headers, original, mut request, started, body_permit } = ingress;
    let metrics = &state.metrics;
    let mut exchange = Exchange::begin(state.books.clone(), state.request_id(), route, started, vec![body_permit]);
    exchange.cx_mut().transport = transport;
    let client = client_name(headers);
    exchange.cx_mut().client = client.clone();
    // The client's model until shaping names the one sent upstream.
    exchange.cx_mut().model = request.model();

    // identify
    let identity =
        match crate::identity::for_request(&state.identity, metrics, &request, headers, client.as_deref()).await {
            Ok(identity) => identity,
            Err(e) => return fail(exchange, e.into()).await,
        };
    if let Some(v) = identity.warning.as_deref().and_then(|w| HeaderValue::from_str(w).ok()) {
        notes.insert(crate::identity::WARNING_HEADER, v);
    }

    // shape
    let client_streams = match shape(state, &mut request, &identity) {
        Ok(streams) => streams,
        Err(e) => return fail(exchange, e).await,
    };
    let journal = match &state.journal {
        Some(journal) => {
            let session = Some(identity.session.clone());
            crate::journal_hook::before_upstream(journal, metrics, &mut request, headers, &original, session, client)
                .await
        }
        None => None,
    };
    let (sent, body) = SentRequest::new(request, original);
    // The model as sent (shaping may have renamed it), decoded once by `SentRequest`.
    exchange.cx_mut().model = RequestView::model(&sent).map(str::to_owned);
    let sent = Arc::new(sent);
    let upstream_headers = upstream_headers(state, headers, &identity, client_streams);
    let cx = exchange.cx_mut();
    cx.identity = Some(identity);
    cx.client_streams = client_streams;
    cx.sent = Some(sent.clone());
    cx.journal = journal;
    // Waits only when MAX_OPEN_EXCHANGES exchanges still have bookkeeping to do (a slow store or journal).
    if let Ok(slot) = state.open_exchanges.clone().acquire_owned().await {
        exchange.hold(slot);
    }
    exchange.cx_mut().overhead = started.elapsed();

    // upstream call: over HTTP, or over the conversation's upstream socket (crate::upstream_ws)
    let sent_at = Instant::now();
    let client_on_socket = transport == crate::exchange::Transport::Ws;
    let called = {
        let turn = TurnRequest {
            headers: upstream_headers,
            request: &sent.request,
            identity: exchange.cx().identity.as_ref(),
            client_on_socket,
            prewarm: false,
        };
        state.sockets.call(&state.upstream, turn).await
    };
    let idle = state.upstream.config().idle_timeout;
    let (mut events, upstream_headers) = match called {
        Err(e) => {
            settle_git(&mut exchange, state, notes).await;
            return fail(exchange, e).await;
        }
        Ok(Called::Refused { status, body, headers: mut error_headers, turn }) => {
            settle_git(&mut exchange, state, notes).await;
            state.sockets.count(&turn);
            exchange.cx_mut().upstream_turn = Some(turn);
            Metrics::observe(&metrics.upstream_latency, route, sent_at.elapsed());
            exchange.finish(Outcome::status(status)).await;
            state.quota.observe_headers(&error_headers, crate::clock::now_ms());
            state.quota.observe_error(status, &body, crate::clock::now_ms());
            let mut extra = HeaderMap::new();
            let body = crate::codex::errors::map_upstream_error(status, &body, crate::clock::now_ms(), &mut extra);
            error_headers.extend(extra);
            return Ok(Reply::Whole { status, headers: error_headers, body: Bytes::from(body) });
        }
        Ok(Called::Stream { events, headers: response_headers, turn }) => {
            settle_git(&mut exchange, state, notes).await;
            state.sockets.count(&turn);
            exchange.cx_mut().upstream_turn = Some(turn);
            Metrics::observe(&metrics.upstream_latency, route, sent_at.elapsed());
            state.quota.observe_headers(&response_headers, crate::clock::now_ms());
            let mut events = events;
            if let Some(limits) = events.take_rate_limits() {
                state.quota.observe_event(&limits, crate::clock::now_ms());
            }
            (UpstreamEvents::socket(events), response_headers)
        }
        Ok(Called::Http { headers: http_headers, turn: turn_key }) => {
            let upstream = state.upstream.send(http_headers, body, metrics).await;
            settle_git(&mut exchange, state, notes).await;
            let upstream = match upstream {
                Ok(response) => response,
                Err(e) => return fail(exchange, e.into()).await,
            };
            let turn = UpstreamTurn::http();
            state.sockets.count(&turn);
            exchange.cx_mut().upstream_turn = Some(turn);
            state.sockets.capture_http(&turn_key, upstream.headers());
            Metrics::observe(&metrics.upstream_latency, route, sent_at.elapsed());
            let status = upstream.status().as_u16();
            let upstream_headers = upstream.headers().clone();
            state.quota.observe_headers(&upstream_headers, crate::clock::now_ms());
            let is_sse = upstream_headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));

            if !(200..300).contains(&status) || !is_sse {
                let bytes = match read_upstream_body(upstream, idle).await {
                    Ok(bytes) => bytes,
                    Err(e) => return fail(exchange, e.into()).await,
                };
                let mut headers = upstream_headers;
                if (200..300).contains(&status) {
                    let usage = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v.get("usage").map(Usage::from_json));
                    exchange.finish(Outcome { status, usage, output_items: Vec::new() }).await;
                    return Ok(Reply::Whole { status, headers, body: bytes });
                }
                exchange.finish(Outcome::status(status)).await;
                state.quota.observe_error(status, &bytes, crate::clock::now_ms());
                let mut extra = HeaderMap::new();
                let body = crate::codex::errors::map_upstream_error(status, &bytes, crate::clock::now_ms(), &mut extra);
                headers.extend(extra);
                return Ok(Reply::Whole { status, headers, body: Bytes::from(body) });
            }
            (UpstreamEvents::new(upstream, idle), upstream_headers)
        }
    };

    // stream: the first event is awaited here, so a stream that fails at once is an HTTP error
    let first = match events.next().await {
        Ok(Some(event)) => event,
        Ok(None) => {
            let e = crate::errors::bad_gateway("upstream closed the stream before sending any event");
            return fail(exchange, e.into()).await;
        }
        Err(failure) => {
            Metrics::count(&metrics.stream_errors, failure.label(), 1);
            return fail(exchange, failure.to_api_error().into()).await;
        }
    };
    Metrics::observe(&metrics.ttfb, route, started.elapsed());
    Ok(Reply::Stream(Box::new(Streaming {
        events,
        first,
        exchange,
        state: state.clone(),
        headers: upstream_headers,
        client_streams,
    })))
}

/// The shape phase: the upstream's shape, then the identity's key; whether the client streams.
fn shape(state: &AppState, request: &mut ResponsesRequest, identity: &Identity) -> Result<bool, BridgeError> {
    let force_stream = state.upstream.config().force_stream;
    crate::shape::for_upstream(request, force_stream, state.codex.as_deref())
        .and_then(|streams| crate::identity::apply_key(request, identity).map(|()| streams))
        .map_err(|e| BridgeError::Shaping(e.to_string()))
}

/// The headers the upstream call starts from: the client's forwarded ones and the identity's affinity.
fn upstream_headers(state: &AppState, headers: &HeaderMap, identity: &Identity, client_streams: bool) -> HeaderMap {
    let streams = client_streams || state.upstream.config().force_stream;
    let mut upstream_headers = state.upstream.request_headers(headers, streams);
    crate::identity::affinity_headers(&mut upstream_headers, identity, state.config.cache.affinity);
    upstream_headers
}

/// What a client's `generate: false` prewarm got ([`prewarm`]).
pub enum Prewarmed {
    /// The turn would not go over an upstream socket: the ingress answers the prewarm itself.
    Local,
    /// The upstream socket answered: its response headers, each event's `data` JSON in order (up to the
    /// terminal one) and the response id (the socket's new anchor, for the client to chain from).
    Upstream { headers: HeaderMap, events: Vec<String>, response_id: Option<String> },
    /// The upstream refused the frame: the mapped error, as for a turn.
    Refused { status: u16, headers: HeaderMap, body: Bytes },
}

/// Most events a prewarm's answer may have (the backend sends `response.created` and `response.completed`).
const MAX_PREWARM_EVENTS: usize = 64;

/// A WebSocket client's `generate: false` prewarm: identified and shaped exactly like a turn (so its bytes
/// are the ones the next turn's delta anchors on), then sent over the lineage's upstream socket with
/// `generate: false`, when the turn would go over one. Not an exchange: no usage row, no tracked turn, no
/// journal (a prewarm is not an inference turn; the tokens the upstream reports for it are counted in
/// `codex_bridge_prewarm_tokens_total`); the journal hook does not run (its drift note belongs to a turn).
/// The rate-limit headers and frames it brings are observed like a turn's.
pub async fn prewarm(state: &AppState, ingress: Ingress<'_>) -> Result<Prewarmed, BridgeError> {
    let Ingress { headers, mut request, .. } = ingress;
    let metrics = &state.metrics;
    let client = client_name(headers);
    let identity = crate::identity::for_request(&state.identity, metrics, &request, headers, client.as_deref()).await?;
    let client_streams = shape(state, &mut request, &identity)?;
    let turn = TurnRequest {
        headers: upstream_headers(state, headers, &identity, client_streams),
        request: &request,
        identity: Some(&identity),
        client_on_socket: true,
        prewarm: true,
    };
    let (mut events, headers) = match state.sockets.call(&state.upstream, turn).await? {
        Called::Http { .. } => return Ok(Prewarmed::Local),
        Called::Refused { status, body, headers: mut error_headers, .. } => {
            state.quota.observe_headers(&error_headers, crate::clock::now_ms());
            state.quota.observe_error(status, &body, crate::clock::now_ms());
            let mut extra = HeaderMap::new();
            let body = crate::codex::errors::map_upstream_error(status, &body, crate::clock::now_ms(), &mut extra);
            error_headers.extend(extra);
            return Ok(Prewarmed::Refused { status, headers: error_headers, body: Bytes::from(body) });
        }
        Called::Stream { mut events, headers, .. } => {
            state.quota.observe_headers(&headers, crate::clock::now_ms());
            if let Some(limits) = events.take_rate_limits() {
                state.quota.observe_event(&limits, crate::clock::now_ms());
            }
            (UpstreamEvents::socket(events), headers)
        }
    };
    let mut answer = Vec::new();
    let mut response_id = None;
    loop {
        match events.next().await {
            Ok(Some(event)) if answer.len() < MAX_PREWARM_EVENTS => {
                if event.event.as_deref() == Some("response.completed")
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(&event.data)
                {
                    response_id = v["response"]["id"].as_str().map(str::to_owned);
                    let usage = Usage::from_event(&v).unwrap_or_default();
                    for (kind, n) in [("input", usage.input_tokens), ("cached", usage.cached_tokens)] {
                        metrics
                            .prewarm_tokens
                            .get_or_create(&crate::metrics::KindLabel { kind })
                            .inc_by(n.unwrap_or(0));
                    }
                }
                answer.push(event.data);
            }
            // An answer longer than a prewarm's: the socket (dropped here) is not trusted again.
            Ok(Some(_)) => {
                return Err(crate::errors::bad_gateway("the upstream answered a prewarm with a whole response").into());
            }
            Ok(None) => break,
            Err(failure) => {
                Metrics::count(&metrics.stream_errors, failure.label(), 1);
                let error = failure.to_api_error();
                return Err(match failure.client_close_code() {
                    Some(code) => BridgeError::UpstreamClosed { code, error },
                    None => error.into(),
                });
            }
        }
    }
    Ok(Prewarmed::Upstream { headers, events: answer, response_id })
}

/// Finishes the exchange with the error's status and returns the error.
async fn fail(exchange: Exchange, e: BridgeError) -> Result<Reply, BridgeError> {
    exchange.finish(Outcome::status(e.status())).await;
    Err(e)
}

/// Waits for a git check that ran alongside the upstream call; a drift becomes a response header.
async fn settle_git(exchange: &mut Exchange, state: &AppState, notes: &mut HeaderMap) {
    if let Some(turn) = exchange.cx_mut().journal.as_mut() {
        turn.settle_git(&state.metrics).await;
        if let Some(value) = turn.drift_header() {
            notes.insert(crate::journal_hook::DRIFT_HEADER, value);
        }
    }
}

/// Reads a whole upstream body (error bodies, non-streaming JSON) with the idle timeout per read.
async fn read_upstream_body(mut response: reqwest::Response, idle: std::time::Duration) -> Result<Bytes, ApiError> {
    let mut chunks = Vec::new();
    let mut total = 0usize;
    loop {
        match tokio::time::timeout(idle, response.chunk()).await {
            Err(_) => return Err(crate::errors::gateway_timeout(idle)),
            Ok(Err(e)) => return Err(crate::errors::bad_gateway(format!("upstream body broke: {}", e.without_url()))),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => {
                total += chunk.len();
                if total > MAX_UPSTREAM_BODY {
                    return Err(crate::errors::bad_gateway("upstream body too large"));
                }
                chunks.push(chunk);
            }
        }
    }
    Ok(concat(chunks, total))
}

/// One buffer from the chunks read (no copy for a single chunk).
pub fn concat(mut chunks: Vec<Bytes>, total: usize) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut out = BytesMut::with_capacity(total);
    for c in chunks {
        out.extend_from_slice(&c);
    }
    out.freeze()
}

/// `originator`, else the product token of the user agent.
fn client_name(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("originator").or_else(|| headers.get(header::USER_AGENT))?.to_str().ok()?;
    let name: String = value.split(['/', ' ']).next().unwrap_or_default().chars().take(64).collect();
    (!name.is_empty()).then_some(name)
}
