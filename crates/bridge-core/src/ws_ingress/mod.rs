//! The WebSocket ingress: `GET /v1/responses` and `GET /backend-api/codex/responses` with
//! `Upgrade: websocket` (Responses over WebSocket, `responses_websockets=2026-02-06`, the v2 protocol).
//!
//! The upgrade passes the same access check as HTTP (the router's layer). With `[websocket] ingress =
//! false`, or at `[websocket] max_sockets`, it gets `426 Upgrade Required`, which Codex takes as "use HTTP"
//! at once (never 405). Then, per socket ([`session`] holds the rules):
//! - `response.create` → the frame resolved into a whole request (a `previous_response_id` delta rebuilt
//!   into the full input) → [`crate::pipeline::run`] with an [`Ingress`] of transport `ws`, so identity,
//!   shaping, the upstream call and the bookkeeping (usage, tracker, journal) are HTTP's, turn for turn;
//!   the events come back through [`sink::WsSink`], each SSE event's `data` as one text frame, after a
//!   `codex.response.metadata` frame with the response headers (turn state, first value wins);
//! - `generate:false` → when the turn would go over an upstream socket, [`crate::pipeline::prewarm`]: shaped
//!   like a turn and sent over the lineage's socket with `generate:false`, the upstream's answer passed on;
//!   else answered here: `response.created` + `response.completed`, fresh id, zero usage. Either way no
//!   exchange (no usage row, no tracked turn), and the prewarm's id and input become the anchor the first
//!   turn chains from;
//! - an unknown `previous_response_id` → `previous_response_not_found`, so the client resends in full;
//! - `response.processed` → dropped; a second `response.create` while one is in flight →
//!   `response_already_in_flight` (409), as the backend answers; bad JSON, binary frames, unknown types →
//!   a wrapped OpenAI-shaped error, and the socket stays usable; upstream errors → the wrapped error frame
//!   with the upstream's status and rate-limit headers.
//!
//! Hardening: a message is at most `body_limit_bytes` (larger: close 1009), and so is a rebuilt request
//! (413 error frame); a socket idle between turns for `[websocket] idle_timeout_ms` is closed (1000);
//! every write waits at most `client_stall_timeout_ms`, after which the socket is dropped while the pump
//! drains the upstream and records the turn; at shutdown an idle socket is closed at once (1001) and a
//! busy one after its turn.
//!
//! Invariants: strictly one response in flight per socket; the socket's state dies with it; a client
//! frame never panics the socket task.

mod frames;
pub mod session;
pub mod sink;

use std::time::Instant;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bridge_types::{ApiError, ErrorKind, ResponsesRequest};
use bytes::Bytes;
use futures_util::SinkExt;
use serde_json::value::RawValue;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;

use crate::errors::{BridgeError, HttpError};
use crate::exchange::Transport;
use crate::metrics::{Metrics, ReasonLabel, RequestLabels};
use crate::pipeline::{Answer, Ingress, Prewarmed, Reply};
use crate::state::AppState;
use session::{Conversation, Frame, Resolved};
use sink::{Completed, Outbound, WsSink, hand_off};

/// Turn hand-offs queued between a turn and its socket task before the turn waits.
const QUEUE: usize = 64;
/// WebSocket framing allowed above `body_limit_bytes`, so a message just over the limit still arrives
/// whole and gets a clean 1009 instead of a protocol error.
const FRAME_SLACK: usize = 64 * 1024;

/// `GET` on a Responses route: a WebSocket upgrade, or 405 for a plain `GET`.
pub async fn upgrade(
    State(state): State<AppState>,
    path: Option<MatchedPath>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let route: &'static str = match path.as_ref().map(MatchedPath::as_str) {
        Some("/backend-api/codex/responses") => "/backend-api/codex/responses",
        _ => "/v1/responses",
    };
    let wants_websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    if !wants_websocket {
        return crate::proxy::method_not_allowed();
    }
    let response = handshake(&state, route, headers, ws);
    state.metrics.requests.get_or_create(&RequestLabels { route, status: response.status().as_u16() }).inc();
    response
}

fn handshake(
    state: &AppState,
    route: &'static str,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !state.config.websocket.ingress {
        return upgrade_required(
            "WebSocket ingress is off on this bridge ([websocket] ingress = false); use HTTP POST",
        );
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return HttpError(ApiError::new(400, ErrorKind::InvalidRequestError, rejection.body_text()))
                .into_response();
        }
    };
    let Ok(slot) = state.ws_sockets.clone().try_acquire_owned() else {
        Metrics::count(&state.metrics.requests_shed, "ws_sockets", 1);
        return upgrade_required(
            "this bridge holds its limit of WebSocket connections ([websocket] max_sockets); use HTTP POST",
        );
    };
    let cap = state.config.body_limit_bytes.saturating_add(FRAME_SLACK);
    let state = state.clone();
    ws.max_message_size(cap)
        .max_frame_size(cap)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| Socket::new(state, socket, route, headers, slot).run())
}

/// 426: Codex falls back to HTTP for the rest of its session at once.
fn upgrade_required(message: &str) -> Response {
    let mut response =
        HttpError(ApiError::new(426, ErrorKind::InvalidRequestError, message).with_code("websocket_not_available"))
            .into_response();
    *response.status_mut() = StatusCode::UPGRADE_REQUIRED;
    response
}

enum Control {
    Continue,
    End,
}

/// One client socket's task.
struct Socket {
    state: AppState,
    socket: WebSocket,
    route: &'static str,
    handshake: HeaderMap,
    conversation: Conversation,
    /// The full input of the turn in flight (it becomes the anchor when the turn completes).
    flight: Option<Vec<Box<RawValue>>>,
    tx: mpsc::Sender<Outbound>,
    rx: mpsc::Receiver<Outbound>,
    /// Cancelled when the client stopped reading: the socket is dropped.
    cut: CancellationToken,
    _slot: OwnedSemaphorePermit,
}

impl Socket {
    fn new(
        state: AppState,
        socket: WebSocket,
        route: &'static str,
        handshake: HeaderMap,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            state,
            socket,
            route,
            handshake,
            conversation: Conversation::default(),
            flight: None,
            tx,
            rx,
            cut: CancellationToken::new(),
            _slot: slot,
        }
    }

    async fn run(mut self) {
        let metrics = self.state.metrics.clone();
        metrics.ws_sockets.inc();
        let shutdown = self.state.shutdown.clone();
        let idle = self.state.config.websocket.idle_timeout;
        let mut idle_deadline = tokio::time::Instant::now() + idle;
        loop {
            let busy = self.flight.is_some();
            let control = tokio::select! {
                biased;
                () = self.cut.cancelled() => Control::End,
                out = self.rx.recv(), if busy => match out {
                    Some(out) => self.outbound(out).await,
                    None => Control::End,
                },
                incoming = self.socket.recv() => self.incoming(incoming).await,
                () = tokio::time::sleep_until(idle_deadline), if !busy => {
                    self.close(1000, "idle timeout").await
                }
                () = shutdown.cancelled(), if !busy => self.close(1001, "codex-bridge is shutting down").await,
            };
            if let Control::End = control {
                break;
            }
            if busy && self.flight.is_none() {
                // a turn just ended
                if shutdown.is_cancelled() {
                    self.close(1001, "codex-bridge is shutting down").await;
                    break;
                }
            }
            if self.flight.is_none() {
                idle_deadline = tokio::time::Instant::now() + idle;
            }
        }
        metrics.ws_sockets.dec();
    }

    async fn incoming(&mut self, incoming: Option<Result<Message, axum::Error>>) -> Control {
        match incoming {
            None | Some(Ok(Message::Close(_))) => Control::End,
            Some(Err(e)) => {
                if is_capacity(e) {
                    self.close(1009, "message too big").await;
                }
                Control::End
            }
            Some(Ok(Message::Text(text))) => {
                if text.len() > self.state.config.body_limit_bytes {
                    return self.close(1009, "message too big").await;
                }
                self.on_text(text.as_bytes()).await
            }
            Some(Ok(Message::Binary(_))) => {
                let err = ApiError::new(
                    400,
                    ErrorKind::InvalidRequestError,
                    "Binary WebSocket frames are not supported; send JSON text frames.",
                )
                .with_code("unsupported_frame");
                self.count("invalid");
                self.error(&err).await
            }
            Some(Ok(_)) => Control::Continue,
        }
    }

    async fn on_text(&mut self, raw: &[u8]) -> Control {
        let request = match session::parse_frame(raw) {
            Ok(Frame::Create(request)) => request,
            Ok(Frame::Processed) => {
                self.count("processed");
                return Control::Continue;
            }
            Err(e) => {
                self.count("invalid");
                return self.error(&e).await;
            }
        };
        if self.flight.is_some() {
            self.count("busy");
            let err = ApiError::new(
                409,
                ErrorKind::InvalidRequestError,
                "A response is already in progress on this connection; wait for response.completed before sending another response.create.",
            )
            .with_code("response_already_in_flight");
            return self.error(&err).await;
        }
        let started = Instant::now();
        let resolved = match self.conversation.resolve(*request) {
            Ok(resolved) => resolved,
            Err(e) => {
                self.count(if e.code.as_deref() == Some("previous_response_not_found") {
                    "unknown_previous"
                } else {
                    "invalid"
                });
                return self.error(&e).await;
            }
        };
        let mut resolved = resolved;
        let headers = session::turn_headers(&self.handshake, &resolved.request);
        session::strip_ws_only_metadata(&mut resolved.request);
        match crate::turn_state::from_headers(&headers) {
            // The client replays the turn's state: the same logical turn.
            Some(replayed) => {
                self.conversation.turn_state.capture(Some(replayed));
            }
            None => self.conversation.turn_state.clear(),
        }
        if !resolved.generate && !self.state.sockets.may_use_sockets() {
            // The upstream is HTTP: no upstream socket to warm.
            self.count("prewarm");
            return self.prewarm(resolved).await;
        }
        if resolved.generate {
            self.count(if resolved.delta { "delta" } else { "create" });
        }
        self.start_turn(resolved, headers, started).await
    }

    /// Answers a `generate:false` prewarm locally; its input becomes the anchor.
    async fn prewarm(&mut self, resolved: Resolved) -> Control {
        let (frames, completed) = local_prewarm(&self.state, resolved.request.model().as_deref());
        let control = self.write(frames).await;
        if let Control::Continue = control {
            let budget = self.state.body_budget.clone();
            self.conversation.completed(completed.id, resolved.input, Vec::new(), |bytes| reserve_kib(&budget, bytes));
        }
        control
    }

    /// Hands a whole turn (or a prewarm that may go over an upstream socket) to the pipeline in its own
    /// task; its frames come back through `rx`.
    async fn start_turn(&mut self, resolved: Resolved, headers: HeaderMap, started: Instant) -> Control {
        let Resolved { request, input, generate, .. } = resolved;
        let original = Bytes::from(request.to_bytes());
        let limit = self.state.config.body_limit_bytes;
        if original.len() > limit {
            return self.error(&BridgeError::BodyTooLarge { limit }.to_api_error()).await;
        }
        let permit = match crate::proxy::reserve(&self.state.body_budget, original.len(), &self.state) {
            Ok(permit) => permit,
            Err(e) => return self.error(&e.to_api_error()).await,
        };
        self.flight = Some(input);
        let turn = Turn {
            state: self.state.clone(),
            route: self.route,
            headers,
            original,
            request,
            started,
            permit,
            tx: self.tx.clone(),
            cut: self.cut.clone(),
        };
        if generate {
            self.state.tasks.spawn(turn.run());
        } else {
            self.state.tasks.spawn(turn.prewarm());
        }
        Control::Continue
    }

    async fn outbound(&mut self, out: Outbound) -> Control {
        match out {
            Outbound::Head(headers) => {
                let turn_state = self.conversation.turn_state.capture(crate::turn_state::from_headers(&headers));
                let mut shown = frames::shown_headers(&headers);
                if let Some(ts) = turn_state {
                    shown.insert(crate::turn_state::TURN_STATE.to_owned(), ts.into());
                }
                if shown.is_empty() {
                    return Control::Continue;
                }
                let event = crate::turn_state::metadata_event(shown).to_string();
                self.write(vec![Utf8Bytes::from(event)]).await
            }
            Outbound::Frames(frames) => self.write(frames).await,
            Outbound::Ended { completed } => {
                let input = self.flight.take().unwrap_or_default();
                if let Some(Completed { id, output }) = completed {
                    let budget = self.state.body_budget.clone();
                    self.conversation.completed(id, input, output, |bytes| reserve_kib(&budget, bytes));
                }
                Control::Continue
            }
            Outbound::Close { code, reason } => self.close(code, &reason).await,
        }
    }

    /// Writes frames in one flush, within the stall timeout.
    async fn write(&mut self, frames: Vec<Utf8Bytes>) -> Control {
        let stall = self.state.config.server.client_stall_timeout;
        let socket = &mut self.socket;
        let written = tokio::time::timeout(stall, async {
            for frame in frames {
                socket.feed(Message::Text(frame)).await?;
            }
            socket.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Control::Continue,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "WebSocket client went away");
                Control::End
            }
            Err(_) => {
                tracing::warn!(stall_ms = stall.as_millis() as u64, "WebSocket client stopped reading; dropping it");
                self.state.metrics.client_stalls.inc();
                self.cut.cancel();
                Control::End
            }
        }
    }

    async fn error(&mut self, err: &ApiError) -> Control {
        self.write(vec![Utf8Bytes::from(frames::wrapped_error(err, serde_json::Map::new()))]).await
    }

    async fn close(&mut self, code: u16, reason: &str) -> Control {
        let frame = Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from(reason.to_owned()) }));
        let stall = self.state.config.server.client_stall_timeout;
        let _ = tokio::time::timeout(stall, self.socket.send(frame)).await;
        Control::End
    }

    fn count(&self, what: &'static str) {
        self.state.metrics.ws_frames.get_or_create(&ReasonLabel { reason: what }).inc();
    }
}

/// `bytes` (in KiB, at least one) from the body budget, if it has them.
fn reserve_kib(budget: &std::sync::Arc<tokio::sync::Semaphore>, bytes: usize) -> Option<OwnedSemaphorePermit> {
    let kib = u32::try_from(bytes.div_ceil(1024).max(1)).ok()?;
    budget.clone().try_acquire_many_owned(kib).ok()
}

fn is_capacity(e: axum::Error) -> bool {
    e.into_inner()
        .downcast_ref::<tokio_tungstenite::tungstenite::Error>()
        .is_some_and(|e| matches!(e, tokio_tungstenite::tungstenite::Error::Capacity(_)))
}

/// One turn on its way through the pipeline.
struct Turn {
    state: AppState,
    route: &'static str,
    headers: HeaderMap,
    original: Bytes,
    request: ResponsesRequest,
    started: Instant,
    permit: OwnedSemaphorePermit,
    tx: mpsc::Sender<Outbound>,
    cut: CancellationToken,
}

impl Turn {
    async fn run(self) {
        let Turn { state, route, headers, original, request, started, permit, tx, cut } = self;
        let stall = state.config.server.client_stall_timeout;
        let ingress = Ingress {
            route,
            transport: Transport::Ws,
            headers: &headers,
            original,
            request,
            started,
            body_permit: permit,
        };
        let Answer { notes, reply } = crate::pipeline::run(&state, ingress).await;
        let (frames, completed) = match reply {
            Ok(Reply::Stream(mut streaming)) => {
                let mut head = std::mem::take(&mut streaming.headers);
                head.extend(notes);
                hand_off(&tx, Outbound::Head(head), stall, &cut).await;
                streaming.pump(WsSink::new(tx, stall, cut));
                return;
            }
            Ok(Reply::Whole { status, headers, body }) => {
                let mut shown = frames::shown_headers(&headers);
                shown.extend(frames::shown_headers(&notes));
                if (200..300).contains(&status) {
                    whole_response(&body)
                } else {
                    (frames::wrapped_upstream_error(status, &body, shown), None)
                }
            }
            Err(e) => match e.client_close_code() {
                // The upstream socket closed with 1009/1012/1013: the client's socket closes the same way.
                Some(code) => {
                    let reason = crate::upstream_ws::close_reason(code).to_owned();
                    hand_off(&tx, Outbound::Close { code, reason }, stall, &cut).await;
                    return;
                }
                None => (frames::wrapped_error(&e.to_api_error(), frames::shown_headers(&notes)), None),
            },
        };
        if hand_off(&tx, Outbound::Frames(vec![Utf8Bytes::from(frames)]), stall, &cut).await {
            hand_off(&tx, Outbound::Ended { completed }, stall, &cut).await;
        }
    }
}

/// A locally answered prewarm: `response.created` + `response.completed` with a fresh `resp_prewarm_…` id,
/// no output and zero usage.
fn local_prewarm(state: &AppState, model: Option<&str>) -> (Vec<Utf8Bytes>, Completed) {
    let request_id = state.request_id();
    let id = format!("resp_prewarm_{}", request_id.trim_start_matches("req_"));
    let frames = frames::prewarm_events(&id, model, crate::clock::now_ms() / 1000);
    (frames.into_iter().map(Utf8Bytes::from).collect(), Completed { id, output: Vec::new() })
}

impl Turn {
    /// A `generate:false` prewarm: over the lineage's upstream socket when the turn would go over one
    /// ([`crate::pipeline::prewarm`]), else answered locally; either way its response id becomes the
    /// anchor the first turn chains from. Not an exchange (no usage row, no tracked turn).
    async fn prewarm(self) {
        let Turn { state, route, headers, original, request, started, permit, tx, cut } = self;
        let stall = state.config.server.client_stall_timeout;
        let model = request.model();
        let ingress = Ingress {
            route,
            transport: Transport::Ws,
            headers: &headers,
            original,
            request,
            started,
            body_permit: permit,
        };
        let count = |reason: &'static str| state.metrics.ws_frames.get_or_create(&ReasonLabel { reason }).inc();
        let (frames, completed) = match crate::pipeline::prewarm(&state, ingress).await {
            Ok(Prewarmed::Local) => {
                count("prewarm");
                let (frames, completed) = local_prewarm(&state, model.as_deref());
                (frames, Some(completed))
            }
            Ok(Prewarmed::Upstream { headers, events, response_id }) => {
                count("prewarm_upstream");
                if !hand_off(&tx, Outbound::Head(headers), stall, &cut).await {
                    return;
                }
                let completed = response_id.map(|id| Completed { id, output: Vec::new() });
                (events.into_iter().map(Utf8Bytes::from).collect(), completed)
            }
            Ok(Prewarmed::Refused { status, headers, body }) => {
                count("prewarm_upstream");
                (
                    vec![Utf8Bytes::from(frames::wrapped_upstream_error(
                        status,
                        &body,
                        frames::shown_headers(&headers),
                    ))],
                    None,
                )
            }
            Err(e) => {
                count("prewarm_upstream");
                if let Some(code) = e.client_close_code() {
                    let reason = crate::upstream_ws::close_reason(code).to_owned();
                    hand_off(&tx, Outbound::Close { code, reason }, stall, &cut).await;
                    return;
                }
                (vec![Utf8Bytes::from(frames::wrapped_error(&e.to_api_error(), serde_json::Map::new()))], None)
            }
        };
        if hand_off(&tx, Outbound::Frames(frames), stall, &cut).await {
            hand_off(&tx, Outbound::Ended { completed }, stall, &cut).await;
        }
    }
}

/// A whole (non-streamed) 2xx Responses object as a `response.completed` frame, with its id and output
/// items for the anchor.
fn whole_response(body: &[u8]) -> (String, Option<Completed>) {
    #[derive(serde::Deserialize)]
    struct Whole<'a> {
        id: Option<String>,
        #[serde(borrow, default)]
        output: Vec<&'a RawValue>,
    }
    let frame = match std::str::from_utf8(body).ok().and_then(|t| RawValue::from_string(t.to_owned()).ok()) {
        Some(response) => format!(r#"{{"type":"response.completed","response":{}}}"#, response.get()),
        None => {
            let err = crate::errors::bad_gateway("upstream sent a non-JSON response");
            return (frames::wrapped_error(&err, serde_json::Map::new()), None);
        }
    };
    let completed = serde_json::from_slice::<Whole<'_>>(body)
        .ok()
        .and_then(|w| Some(Completed { id: w.id?, output: w.output.into_iter().map(ToOwned::to_owned).collect() }));
    (frame, completed)
}
