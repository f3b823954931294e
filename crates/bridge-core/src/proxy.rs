//! The HTTP Responses transport: the ingress adapter (the body read under its size, time and budget
//! limits, then parsed once) and the egress (SSE to a streaming client, one aggregated object for
//! `stream:false`). The phases between are [`crate::pipeline`]'s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Extension, MatchedPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bridge_types::{ApiError, ResponsesRequest};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::connection::ConnectionHandle;
use crate::errors::{BridgeError, HttpError, json_response};
use crate::metrics::{Metrics, RequestLabels};
use crate::pipeline::{Answer, Ingress, Reply};
use crate::pump::{AggregateSink, Aggregated, SseSink};
use crate::state::AppState;
use crate::upstream::copy_response_headers;

/// Events buffered between the pump and a slow client before the pump waits.
pub const CLIENT_QUEUE: usize = 64;
/// Bodies larger than this are parsed on the blocking pool, so a big parse never delays other connections.
const PARSE_OFF_WORKER_BYTES: usize = 256 * 1024;

/// `POST /v1/responses` and `POST /backend-api/codex/responses`.
pub async fn responses(
    State(state): State<AppState>,
    path: Option<MatchedPath>,
    connection: Option<Extension<ConnectionHandle>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let route: &'static str = match path.as_ref().map(MatchedPath::as_str) {
        Some("/backend-api/codex/responses") => "/backend-api/codex/responses",
        _ => "/v1/responses",
    };
    let connection = connection.map(|Extension(c)| c);
    let ingress = ingress(&state, route, &headers, body, started).await.map(|ingress| (ingress, ()));
    answer(&state, route, ingress, |reply, ()| egress(&state, reply, connection)).await
}

/// The frame every HTTP ingress shares (Responses here, Chat Completions in [`crate::chat_ingress`]): the
/// pipeline on what the ingress produced (with the egress's `context`), the egress on its reply, the
/// pipeline's notes on the response, and the request counted under `route`.
pub async fn answer<'a, C, Egress>(
    state: &AppState,
    route: &'static str,
    ingress: Result<(Ingress<'a>, C), BridgeError>,
    egress: impl FnOnce(Reply, C) -> Egress,
) -> Response
where
    Egress: std::future::Future<Output = Response>,
{
    let response = match ingress {
        Ok((ingress, context)) => {
            let Answer { notes, reply } = crate::pipeline::run(state, ingress).await;
            let mut response = match reply {
                Ok(reply) => egress(reply, context).await,
                Err(e) => e.into_response(),
            };
            response.headers_mut().extend(notes);
            response
        }
        Err(e) => e.into_response(),
    };
    state.metrics.requests.get_or_create(&RequestLabels { route, status: response.status().as_u16() }).inc();
    response
}

/// The HTTP ingress: the body read under its limits, parsed once.
async fn ingress<'a>(
    state: &AppState,
    route: &'static str,
    headers: &'a HeaderMap,
    body: Body,
    started: Instant,
) -> Result<Ingress<'a>, BridgeError> {
    let (original, body_permit) = read_limited(state, headers, body).await?;
    let request = parse(&original).await?;
    Ok(Ingress { route, transport: crate::exchange::Transport::Http, headers, original, request, started, body_permit })
}

/// Reads a request body under the limits every HTTP ingress shares ([`read_body`]); the Chat ingress
/// ([`crate::chat_ingress`]) uses it too.
pub async fn read_limited(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, OwnedSemaphorePermit), BridgeError> {
    let limit = state.config.body_limit_bytes;
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BridgeError::BodyTooLarge { limit });
    }
    read_body(body, declared, state).await
}

/// The HTTP egress: a whole answer as is; a stream as SSE to a streaming client, else aggregated into one
/// Responses object.
async fn egress(state: &AppState, reply: Reply, connection: Option<ConnectionHandle>) -> Response {
    let (streaming, upstream_headers) = match reply {
        Reply::Whole { status, headers, body } => {
            let mut response = json_response(status, String::new());
            *response.body_mut() = Body::from(body);
            copy_response_headers(&headers, response.headers_mut());
            return response;
        }
        Reply::Stream(mut streaming) => {
            let headers = std::mem::take(&mut streaming.headers);
            (streaming, headers)
        }
    };
    if streaming.client_streams {
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        streaming.pump(SseSink { tx, stall: state.config.server.client_stall_timeout, connection, live: true });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
        let mut response = Response::new(Body::from_stream(stream));
        copy_response_headers(&upstream_headers, response.headers_mut());
        let h = response.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return response;
    }
    let (done, wait) = oneshot::channel();
    streaming.pump(AggregateSink(done));
    match wait.await {
        Ok(Aggregated::Response(status, value)) => {
            let mut response = json_response(status, value.to_string());
            copy_response_headers(&upstream_headers, response.headers_mut());
            response
        }
        Ok(Aggregated::Error(e)) => BridgeError::from(e).into_response(),
        Err(_) => BridgeError::Api(ApiError::new(
            500,
            bridge_types::ErrorKind::ServerError,
            "stream aggregation stopped unexpectedly",
        ))
        .into_response(),
    }
}

/// Parses the body; a large one on the blocking pool.
async fn parse(original: &Bytes) -> Result<ResponsesRequest, BridgeError> {
    let parsed = if original.len() > PARSE_OFF_WORKER_BYTES {
        let bytes = original.clone();
        tokio::task::spawn_blocking(move || ResponsesRequest::parse(&bytes)).await.map_err(|e| {
            ApiError::new(500, bridge_types::ErrorKind::ServerError, format!("request parsing stopped: {e}"))
        })?
    } else {
        ResponsesRequest::parse(original)
    };
    parsed.map_err(BridgeError::InvalidRequest)
}

/// Reads the client body under three bounds: `body_limit_bytes` (413), the in-flight body budget (503 with
/// `Retry-After`; the permit returned holds the body's share until the exchange is recorded) and time
/// (408: each read within `body_read_timeout`, the whole body within that plus its size at
/// `body_min_bytes_per_sec`).
async fn read_body(
    body: Body,
    declared: Option<u64>,
    state: &AppState,
) -> Result<(Bytes, OwnedSemaphorePermit), BridgeError> {
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
            Err(_) => {
                return Err(BridgeError::BodyTooSlow {
                    received: total,
                    read_timeout: limits.body_read_timeout,
                    min_bytes_per_sec: limits.body_min_bytes_per_sec,
                });
            }
            Ok(None) => break,
            Ok(Some(chunk)) => chunk.map_err(|e| BridgeError::BodyUnreadable(e.to_string()))?,
        };
        total += chunk.len();
        if total > limit {
            return Err(BridgeError::BodyTooLarge { limit });
        }
        if total > held {
            permit.merge(reserve(budget, total - held, state)?);
            held = total;
        }
        chunks.push(chunk);
    }
    Ok((crate::pipeline::concat(chunks, total), permit))
}

/// Takes `bytes` (in KiB, at least one) from the in-flight body budget, or refuses with a 503.
pub fn reserve(budget: &Arc<Semaphore>, bytes: usize, state: &AppState) -> Result<OwnedSemaphorePermit, BridgeError> {
    let kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    budget.clone().try_acquire_many_owned(kib).map_err(|_| {
        Metrics::count(&state.metrics.requests_shed, "body_budget", 1);
        BridgeError::Overloaded { budget_bytes: state.config.server.max_inflight_body_bytes }
    })
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
