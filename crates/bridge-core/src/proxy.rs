//! The Responses handler: read, parse, shape, forward, stream back. See the crate docs for the full path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Extension, MatchedPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bridge_store::UsageRecord;
use bridge_types::{ApiError, ResponsesRequest, Usage};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::connection::ConnectionHandle;
use crate::errors::{HttpError, bad_request, json_response, too_large};
use crate::pump::{self, Aggregated, ClientSink, Exchange, Sink, UpstreamEvents};
use crate::state::{AppState, now_ms};
use crate::upstream::copy_response_headers;

/// Events buffered between the pump and a slow client before the pump waits.
const CLIENT_QUEUE: usize = 64;
/// Largest non-streaming upstream body or error body the bridge reads.
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;
/// Bodies larger than this are parsed on the blocking pool, so a big parse never delays other connections.
const PARSE_OFF_WORKER_BYTES: usize = 256 * 1024;
/// The error code of the 503 a request gets when the in-flight body budget is spent.
pub const OVERLOADED: &str = "bridge_overloaded";

/// `POST /v1/responses` and `POST /backend-api/codex/responses`.
pub async fn responses(
    State(state): State<AppState>,
    path: Option<MatchedPath>,
    connection: Option<Extension<ConnectionHandle>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let mut drift = None;
    let route: &'static str = match path.as_ref().map(MatchedPath::as_str) {
        Some("/backend-api/codex/responses") => "/backend-api/codex/responses",
        _ => "/v1/responses",
    };
    let mut warning = None;
    let connection = connection.map(|Extension(c)| c);
    let mut response = match handle(&state, route, &headers, body, connection, started, &mut warning, &mut drift).await
    {
        Ok(r) => r,
        Err(e) => {
            let overloaded = e.code.as_deref() == Some(OVERLOADED);
            let mut response = HttpError(e).into_response();
            if overloaded {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            response
        }
    };
    if let Some(value) = drift {
        response.headers_mut().insert(crate::journal_hook::DRIFT_HEADER, value);
    }
    if let Some(v) = warning.and_then(|w| HeaderValue::from_str(&w).ok()) {
        response.headers_mut().insert(crate::identity::WARNING_HEADER, v);
    }
    let status = response.status();
    state.metrics.inc("codex_bridge_requests_total", &[("route", route), ("status", status.as_str())], 1);
    response
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    state: &AppState,
    route: &'static str,
    headers: &HeaderMap,
    body: Body,
    connection: Option<ConnectionHandle>,
    started: Instant,
    warning: &mut Option<String>,
    drift: &mut Option<HeaderValue>,
) -> Result<Response, ApiError> {
    let limit = state.config.body_limit_bytes;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let (original, body_permit) = read_body(body, declared, state).await?;
    let mut request = parse(&original).await?;
    let client = client_name(headers);
    let identity = crate::identity::for_request(state, &request, headers, client.as_deref()).await?;
    *warning = identity.warning.clone();
    let client_streams = crate::shape::for_upstream(&mut request, &state.upstream)
        .and_then(|streams| crate::identity::apply_key(&mut request, &identity).map(|()| streams))
        .map_err(|e| {
            ApiError::new(500, bridge_types::ErrorKind::ServerError, format!("could not shape the request: {e}"))
        })?;
    let upstream_streams = client_streams || state.upstream.config().force_stream;
    let record = UsageRecord {
        request_id: state.request_id(),
        ts_ms: now_ms(),
        route: route.to_owned(),
        status: 200,
        streamed: client_streams,
        model: request.model(),
        session_id: Some(identity.session.clone()),
        cache_key: Some(identity.key.clone()),
        client,
        input_tokens: None,
        cached_tokens: None,
        cache_write_tokens: None,
        output_tokens: None,
        reasoning_tokens: None,
        total_tokens: None,
    };
    let hints = (record.session_id.clone(), record.client.clone());
    let mut journal = crate::journal_hook::before_upstream(state, &mut request, headers, &original, hints).await;
    let body = if request.is_modified() { Bytes::from(request.to_bytes()) } else { original };
    drop(request);
    if let Some(turn) = journal.as_mut() {
        turn.body = body.clone();
        *drift = turn.drift_header();
    }
    let mut upstream_headers = state.upstream.request_headers(headers, upstream_streams);
    crate::identity::affinity_headers(&mut upstream_headers, &identity, state.config.cache.affinity);
    let turn = crate::tracker::Turn {
        identity,
        body: body.clone(),
        request_id: record.request_id.clone(),
        ts_ms: record.ts_ms,
        model: record.model.clone(),
        client: record.client.clone(),
    };
    // Waits only when MAX_OPEN_EXCHANGES exchanges still have bookkeeping to do (a slow store or journal).
    let slot = state.open_exchanges.clone().acquire_owned().await.ok();
    let overhead = started.elapsed();
    let sent = Instant::now();
    let mut exchange = Exchange {
        state: state.clone(),
        record,
        route,
        started,
        overhead,
        turn: Some(turn),
        journal,
        items: Vec::new(),
        slot,
        body_permit: Some(body_permit),
    };
    let upstream = match state.upstream.send(upstream_headers, body, &state.metrics).await {
        Ok(r) => r,
        Err(e) => {
            exchange.record.status = e.status;
            pump::finish(exchange, None).await;
            return Err(e);
        }
    };
    state.metrics.observe("codex_bridge_upstream_latency_seconds", &[("route", route)], sent.elapsed());
    let status = upstream.status().as_u16();
    let upstream_headers = upstream.headers().clone();
    let is_sse = upstream_headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let idle = state.upstream.config().idle_timeout;

    if !(200..300).contains(&status) || !is_sse {
        let bytes = read_upstream_body(upstream, idle).await?;
        let mut extra_headers = HeaderMap::new();
        exchange.record.status = status;
        let body = if (200..300).contains(&status) {
            let usage = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("usage").map(Usage::from_json));
            pump::finish(exchange, usage).await;
            bytes
        } else {
            pump::finish(exchange, None).await;
            Bytes::from(crate::codex::errors::map_upstream_error(status, &bytes, now_ms(), &mut extra_headers))
        };
        let mut response = json_response(status, String::new());
        *response.body_mut() = Body::from(body);
        copy_response_headers(&upstream_headers, response.headers_mut());
        response.headers_mut().extend(extra_headers);
        return Ok(response);
    }

    let mut events = UpstreamEvents::new(upstream, idle);
    let first = match events.next().await {
        Ok(Some(event)) => event,
        Ok(None) => {
            let e = crate::errors::bad_gateway("upstream closed the stream before sending any event");
            exchange.record.status = e.status;
            pump::finish(exchange, None).await;
            return Err(e);
        }
        Err(failure) => {
            let e = failure.to_api_error();
            state.metrics.inc("codex_bridge_stream_errors_total", &[("reason", failure.label())], 1);
            exchange.record.status = e.status;
            pump::finish(exchange, None).await;
            return Err(e);
        }
    };
    state.metrics.observe("codex_bridge_ttfb_seconds", &[("route", route)], started.elapsed());

    if client_streams {
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        let sink = ClientSink { tx, stall: state.config.server.client_stall_timeout, connection };
        state.tasks.spawn(pump::run(events, first, Sink::Client(sink), exchange));
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        let mut response = Response::new(Body::from_stream(stream));
        copy_response_headers(&upstream_headers, response.headers_mut());
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return Ok(response);
    }

    let (done, wait) = oneshot::channel();
    state.tasks.spawn(pump::run(events, first, Sink::Aggregate(done), exchange));
    match wait.await {
        Ok(Aggregated::Response(status, value)) => {
            let mut response = json_response(status, value.to_string());
            copy_response_headers(&upstream_headers, response.headers_mut());
            Ok(response)
        }
        Ok(Aggregated::Error(e)) => Err(e),
        Err(_) => {
            Err(ApiError::new(500, bridge_types::ErrorKind::ServerError, "stream aggregation stopped unexpectedly"))
        }
    }
}

/// Parses the body; a large one on the blocking pool.
async fn parse(original: &Bytes) -> Result<ResponsesRequest, ApiError> {
    let parsed = if original.len() > PARSE_OFF_WORKER_BYTES {
        let bytes = original.clone();
        tokio::task::spawn_blocking(move || ResponsesRequest::parse(&bytes)).await.map_err(|e| {
            ApiError::new(500, bridge_types::ErrorKind::ServerError, format!("request parsing stopped: {e}"))
        })?
    } else {
        ResponsesRequest::parse(original)
    };
    parsed.map_err(|e| bad_request(&e))
}

/// Reads the client body under three bounds: `body_limit_bytes` (413), the in-flight body budget (503 with
/// `Retry-After`; the permit returned holds the body's share until the exchange is recorded) and time
/// (408: each read within `body_read_timeout`, the whole body within that plus its size at
/// `body_min_bytes_per_sec`).
async fn read_body(
    body: Body,
    declared: Option<u64>,
    state: &AppState,
) -> Result<(Bytes, OwnedSemaphorePermit), ApiError> {
    let limit = state.config.body_limit_bytes;
    let limits = &state.config.server;
    let budget = &state.body_budget;
    let mut permit = reserve(budget, declared.unwrap_or(0) as usize, state)?;
    let mut held = declared.unwrap_or(0) as usize;
    let started = tokio::time::Instant::now();
    let allowed = |bytes: usize| {
        limits.body_read_timeout + Duration::from_secs_f64(bytes as f64 / limits.body_min_bytes_per_sec as f64)
    };
    let mut stream = body.into_data_stream();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    loop {
        let deadline = started + allowed(held.max(total));
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now()).min(limits.body_read_timeout);
        let chunk = match tokio::time::timeout(wait, stream.next()).await {
            Err(_) => return Err(body_timeout(total, limits)),
            Ok(None) => break,
            Ok(Some(chunk)) => chunk.map_err(|e| {
                ApiError::new(
                    400,
                    bridge_types::ErrorKind::InvalidRequestError,
                    format!("could not read the request body: {e}"),
                )
            })?,
        };
        total += chunk.len();
        if total > limit {
            return Err(too_large(limit));
        }
        if total > held {
            permit.merge(reserve(budget, total - held, state)?);
            held = total;
        }
        chunks.push(chunk);
    }
    Ok((concat(chunks, total), permit))
}

/// Takes `bytes` (in KiB, at least one) from the in-flight body budget, or refuses with a 503.
fn reserve(budget: &Arc<Semaphore>, bytes: usize, state: &AppState) -> Result<OwnedSemaphorePermit, ApiError> {
    let kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    budget.clone().try_acquire_many_owned(kib).map_err(|_| {
        state.metrics.inc("codex_bridge_requests_shed_total", &[("reason", "body_budget")], 1);
        ApiError::new(
            503,
            bridge_types::ErrorKind::ServerError,
            format!(
                "codex-bridge is holding its limit of {} MiB of request bodies (server.max_inflight_body_bytes); retry shortly",
                state.config.server.max_inflight_body_bytes / (1024 * 1024)
            ),
        )
        .with_code(OVERLOADED)
    })
}

fn body_timeout(received: usize, limits: &crate::config::ServerLimits) -> ApiError {
    ApiError::new(
        408,
        bridge_types::ErrorKind::InvalidRequestError,
        format!(
            "the request body arrived too slowly ({received} bytes received; server.body_read_timeout_ms = {}, server.body_min_bytes_per_sec = {})",
            limits.body_read_timeout.as_millis(),
            limits.body_min_bytes_per_sec
        ),
    )
    .with_code("request_timeout")
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

fn concat(mut chunks: Vec<Bytes>, total: usize) -> Bytes {
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

/// 404 for unknown routes, OpenAI-shaped.
pub async fn not_found() -> Response {
    HttpError(ApiError::new(404, bridge_types::ErrorKind::NotFoundError, "no such route on codex-bridge"))
        .into_response()
}

/// 405 for a known path with the wrong method.
pub fn method_not_allowed() -> Response {
    let mut r = HttpError(ApiError::new(405, bridge_types::ErrorKind::InvalidRequestError, "method not allowed"))
        .into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}
