//! Responses over WebSocket (`responses_websockets=2026-02-06`): `GET /v1/responses` and
//! `GET /backend-api/codex/responses` with `Upgrade: websocket`.
//!
//! The handshake is logged, checks auth like HTTP, is routed once to a machine (the handshake's
//! `session-id` is its affinity key, `http_affinity` applies) and consults handshake faults
//! (`close=CODE`). Each `response.create` text frame is logged as method `WS`, then: one response in
//! flight (a create while busy gets `response_already_in_flight`), the connection age cap
//! (`websocket_connection_limit_reached`), per-create faults, `previous_response_id` resolved against the
//! connection's last completed response only (its input, then its output, then the frame's input), the
//! same validation, quota, cache model and reply as HTTP ([`crate::responses::serve_turn`]) on the
//! connection's machine, and the answer as one text frame per event: `codex.response.metadata`
//! (turn state), `codex.rate_limits`, then the `response.*` objects of the SSE `data:` lines.
//! `response.processed` is accepted and ignored; binary frames, bad JSON and unknown types get a wrapped
//! error; a message over `ws_max_message_bytes` gets close 1009.
//!
//! Invariants: nothing a client sends panics the connection task; state lives in the connection only
//! (it dies with the socket); a response that failed or was cut is never an anchor; a delta turn's
//! tokens equal the tokens of its reconstructed request (the previous prompt's tokens are reused only
//! when `instructions` and `tools` are unchanged); the history is shared between turns, never copied.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, Method, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use crate::cache::{BlockHash, block_chain_extend};
use crate::errors::{self, ApiError};
use crate::faults::{self, FaultSpec, StallAt};
use crate::log::{InputChain, LoggedRequest, Reconstructed, header_pairs};
use crate::model::{Placement, Transport};
use crate::responses::{TurnRequest, header_fault, header_str, record, serve_turn};
use crate::sse;
use crate::state::EmulatorState;
use crate::turnstate::TURN_STATE;
use crate::validation::{self, Flavour};

/// `client_metadata` key that sets the emulator time of one frame (like the `x-emulator-time` header).
pub const TIME_METADATA: &str = "x-emulator-time";

/// `GET /v1/responses` with `Upgrade: websocket`.
pub async fn api(
    State(st): State<Arc<EmulatorState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    handshake(st, Flavour::Api, &method, &uri, headers, ws)
}

/// `GET /backend-api/codex/responses` with `Upgrade: websocket`.
pub async fn chatgpt(
    State(st): State<Arc<EmulatorState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    handshake(st, Flavour::ChatGpt, &method, &uri, headers, ws)
}

/// The last completed response of a connection: the anchor for `previous_response_id`.
struct Last {
    id: String,
    /// The request as served: its fields except `input`, and the whole input as a shared chain.
    template: Arc<Value>,
    input: Arc<InputChain>,
    /// The response's output items.
    output: Vec<Value>,
    /// The prompt's tokens and chain, reused by the next delta when instructions and tools are unchanged.
    tokens: Vec<u32>,
    chain: Vec<BlockHash>,
}

/// One connection's state.
struct Conn {
    id: u64,
    flavour: Flavour,
    path: String,
    headers: HeaderMap,
    header_pairs: Vec<(String, String)>,
    routing_hint: Option<String>,
    header_fault: Option<FaultSpec>,
    started_ms: u64,
    machine: usize,
    last: Option<Last>,
}

fn handshake(
    st: Arc<EmulatorState>,
    flavour: Flavour,
    method: &Method,
    uri: &Uri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let (hs_seq, now) = record(&st, method, uri, &headers, &Bytes::new());
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    if let Err(e) = validation::check_auth(flavour, &headers, &st.config, &st.oauth, now) {
        st.rejected.fetch_add(1, Ordering::Relaxed);
        return e.into_response();
    }
    let header_fault = match header_fault(&headers) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let at_handshake =
        faults::select_where(header_fault.as_ref(), &st.faults(), &st.fault_counters, FaultSpec::at_handshake);
    let id = st.ws.next_connection.fetch_add(1, Ordering::Relaxed) + 1;
    st.ws.connections.fetch_add(1, Ordering::Relaxed);
    st.log.set_connection(hs_seq, id);
    let session = header_str(&headers, "session-id").or_else(|| header_str(&headers, "session_id"));
    let machine = st.model().route_connection(session, id);
    let conn = Conn {
        id,
        flavour,
        path: uri.path().to_owned(),
        header_pairs: header_pairs(&headers),
        routing_hint: header_str(&headers, "x-codex-routing-hint").map(str::to_owned),
        header_fault,
        started_ms: now,
        machine,
        last: None,
        headers,
    };
    let limit = st.config.ws_max_message_bytes.max(1);
    // tungstenite's own limit is a backstop well above ours, so an oversized message normally arrives
    // whole and is answered with close 1009 on a healthy socket.
    let backstop = limit.saturating_mul(2).saturating_add(1 << 16);
    let mut resp = ws
        .max_message_size(backstop)
        .max_frame_size(backstop)
        .on_upgrade(move |socket| run(st, socket, conn, at_handshake, limit));
    for (name, value) in [("x-emulator-machine", machine.to_string()), ("x-emulator-connection", id.to_string())] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

/// One scripted step of a response on the socket.
#[derive(Debug)]
enum WsStep {
    Sleep(u64),
    Text(String),
    /// Send a close frame with this code and end the connection.
    Close(u16),
    /// Drop the connection without a close frame (the client sees 1006).
    Drop,
}

/// The response being streamed.
struct Flight {
    steps: VecDeque<WsStep>,
    wake: Instant,
    /// Becomes the connection's anchor when every step was sent.
    anchor: Option<Last>,
}

enum Control {
    Continue,
    End,
}

fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from(reason.to_owned()) }))
}

async fn run(
    st: Arc<EmulatorState>,
    mut socket: WebSocket,
    mut conn: Conn,
    at_handshake: Option<FaultSpec>,
    limit: usize,
) {
    if let Some(code) = at_handshake.and_then(|f| f.close_code) {
        let _ = socket.send(close_frame(code, "emulator: injected close at the handshake")).await;
        return;
    }
    let mut flight: Option<Flight> = None;
    loop {
        let wake = flight.as_ref().map(|f| f.wake);
        tokio::select! {
            incoming = socket.recv() => {
                let control = match incoming {
                    None | Some(Ok(Message::Close(_))) => Control::End,
                    Some(Err(e)) => {
                        if is_capacity(e) {
                            let _ = socket.send(close_frame(1009, "message too big")).await;
                        }
                        Control::End
                    }
                    Some(Ok(Message::Text(text))) => {
                        if text.len() > limit {
                            let _ = socket.send(close_frame(1009, "message too big")).await;
                            Control::End
                        } else {
                            let busy = flight.is_some();
                            match on_text(&st, &mut conn, Bytes::from(text), busy) {
                                Reaction::None => Control::Continue,
                                Reaction::Error(err) => send_error(&st, &mut socket, &err).await,
                                Reaction::Start(f) => {
                                    flight = Some(f);
                                    Control::Continue
                                }
                            }
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        let err = errors::api_error(400, "Binary WebSocket frames are not supported; send JSON text frames.",
                            Some("invalid_request_error"), None, Some("unsupported_frame"));
                        send_error(&st, &mut socket, &err).await
                    }
                    Some(Ok(_)) => Control::Continue,
                };
                if let Control::End = control {
                    return;
                }
            }
            () = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                if let Some(f) = flight.as_mut() {
                    match play(&mut socket, f).await {
                        Played::Paused => {}
                        Played::Done => {
                            if let Some(anchor) = flight.take().and_then(|f| f.anchor) {
                                conn.last = Some(anchor);
                            }
                        }
                        Played::End => return,
                    }
                }
            }
        }
    }
}

fn is_capacity(e: axum::Error) -> bool {
    e.into_inner()
        .downcast_ref::<tokio_tungstenite::tungstenite::Error>()
        .is_some_and(|e| matches!(e, tokio_tungstenite::tungstenite::Error::Capacity(_)))
}

async fn send_error(st: &EmulatorState, socket: &mut WebSocket, err: &ApiError) -> Control {
    st.ws.errors.fetch_add(1, Ordering::Relaxed);
    let mut wrapped = err.wrapped();
    if err.headers.is_empty() {
        // every wrapped error carries the rate-limit headers, as HTTP answers do
        let mut headers = st.quota.snapshot(st.clock.now_ms()).headers_json();
        if let (Some(h), Some(extra)) = (headers.as_object_mut(), wrapped["headers"].as_object()) {
            h.extend(extra.clone());
        }
        wrapped["headers"] = headers;
    }
    match socket.send(Message::Text(Utf8Bytes::from(wrapped.to_string()))).await {
        Ok(()) => Control::Continue,
        Err(_) => Control::End,
    }
}

enum Played {
    Paused,
    Done,
    End,
}

/// Send steps until the next sleep (feeding frames, one flush per burst) or the end of the script.
async fn play(socket: &mut WebSocket, f: &mut Flight) -> Played {
    let mut fed = false;
    while let Some(step) = f.steps.pop_front() {
        match step {
            WsStep::Sleep(ms) => {
                let now = Instant::now();
                // a huge stall from a fault spec must not overflow the clock: cap it at a year
                f.wake = now.checked_add(Duration::from_millis(ms)).unwrap_or(now + Duration::from_secs(365 * 86_400));
                if fed && socket.flush().await.is_err() {
                    return Played::End;
                }
                return Played::Paused;
            }
            WsStep::Text(t) => {
                if socket.feed(Message::Text(Utf8Bytes::from(t))).await.is_err() {
                    return Played::End;
                }
                fed = true;
            }
            WsStep::Close(code) => {
                let _ = socket.send(close_frame(code, "emulator: injected close")).await;
                return Played::End;
            }
            WsStep::Drop => {
                let _ = socket.flush().await;
                tokio::time::sleep(Duration::from_millis(sse::ABORT_FLUSH_MS)).await;
                return Played::End;
            }
        }
    }
    if fed && socket.flush().await.is_err() {
        return Played::End;
    }
    Played::Done
}

enum Reaction {
    None,
    Error(ApiError),
    Start(Flight),
}

fn invalid(message: &str, param: Option<&str>, code: Option<&str>) -> ApiError {
    errors::api_error(400, message, Some("invalid_request_error"), param, code)
}

fn meta_str<'a>(frame: &'a Value, key: &str) -> Option<&'a str> {
    frame
        .get("client_metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// React to one text frame.
fn on_text(st: &EmulatorState, conn: &mut Conn, raw: Bytes, busy: bool) -> Reaction {
    let frame: Value = match serde_json::from_slice(&raw) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return Reaction::Error(invalid("A WebSocket message must be a JSON object.", None, None)),
        Err(e) => {
            return Reaction::Error(invalid(
                &format!("We could not parse the JSON of your message. ({e})"),
                None,
                None,
            ));
        }
    };
    match frame.get("type").and_then(Value::as_str) {
        Some("response.create") => {}
        Some("response.processed") => return Reaction::None,
        other => {
            let shown = other.unwrap_or("<missing>");
            return Reaction::Error(invalid(&format!("Unsupported message type: {shown}"), Some("type"), None));
        }
    }
    if let Some(ms) = frame
        .get("client_metadata")
        .and_then(|m| m.get(TIME_METADATA))
        .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())))
    {
        st.clock.set_ms(ms);
    }
    let now = st.clock.now_ms();
    let prewarm = frame.get("generate") == Some(&Value::Bool(false));
    let previous = frame.get("previous_response_id").and_then(Value::as_str).map(str::to_owned);
    let turn_state = meta_str(&frame, TURN_STATE).map(str::to_owned);
    let seq = st.log.push(
        LoggedRequest {
            ts_ms: now,
            method: "WS".to_owned(),
            path: conn.path.clone(),
            headers: conn.header_pairs.clone(),
            transport: Transport::Ws.name().to_owned(),
            connection: Some(conn.id),
            prewarm,
            previous_response_id: previous.clone(),
            input_items: frame.get("input").and_then(Value::as_array).map(Vec::len),
            turn_state: turn_state.is_some(),
            routing_hint: conn.routing_hint.clone(),
            ..LoggedRequest::default()
        },
        &raw,
    );
    st.responses_requests.fetch_add(1, Ordering::Relaxed);
    st.ws.creates.fetch_add(1, Ordering::Relaxed);
    if prewarm {
        st.ws.prewarms.fetch_add(1, Ordering::Relaxed);
    }
    if previous.is_some() {
        st.ws.with_previous.fetch_add(1, Ordering::Relaxed);
    }
    if busy {
        return Reaction::Error(errors::api_error(
            409,
            "A response is already in progress on this connection; wait for response.completed before sending another response.create.",
            Some("invalid_request_error"),
            None,
            Some("response_already_in_flight"),
        ));
    }
    if now.saturating_sub(conn.started_ms) >= st.config.ws_max_age_ms {
        return Reaction::Error(invalid(
            "Responses websocket connection limit reached (60 minutes). Create a new websocket connection to continue.",
            None,
            Some("websocket_connection_limit_reached"),
        ));
    }
    let fault =
        faults::select_where(conn.header_fault.as_ref(), &st.faults(), &st.fault_counters, |f| !f.at_handshake());
    if fault.as_ref().is_some_and(|f| f.stale_anchor) {
        conn.last = None;
    }
    match create(st, conn, frame, seq, now, previous, turn_state, fault) {
        Ok(f) => Reaction::Start(f),
        Err(e) => Reaction::Error(e),
    }
}

/// Resolve, validate and serve one `response.create`; returns the response's script.
#[expect(clippy::too_many_arguments)]
fn create(
    st: &EmulatorState,
    conn: &mut Conn,
    frame: Value,
    seq: u64,
    now: u64,
    previous: Option<String>,
    turn_state: Option<String>,
    fault: Option<FaultSpec>,
) -> Result<Flight, ApiError> {
    let Value::Object(mut view) = frame else {
        return Err(invalid("A WebSocket message must be a JSON object.", None, None));
    };
    view.remove("type");
    let generate = view.remove("generate") != Some(Value::Bool(false));
    view.remove("previous_response_id");
    // The WebSocket create body has no `stream`; the answer always streams.
    view.insert("stream".to_owned(), Value::Bool(true));
    let anchor = match &previous {
        None => None,
        Some(id) => match conn.last.as_ref().filter(|l| &l.id == id) {
            Some(last) => Some(last),
            None => {
                st.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(invalid(
                    &format!("Previous response with id '{id}' not found."),
                    Some("previous_response_id"),
                    Some("previous_response_not_found"),
                ));
            }
        },
    };
    let mut body = Value::Object(view);
    if let Err(e) = validation::check_body(conn.flavour, &body, &st.config) {
        st.rejected.fetch_add(1, Ordering::Relaxed);
        return Err(e);
    }
    let model = body.get("model").and_then(Value::as_str).unwrap_or_default().to_owned();
    // Split the frame into its fields and its input items; the served input is a chain that shares the
    // previous turns' items (nothing of the history is copied).
    let tail = match body.as_object_mut().and_then(|o| o.remove("input")) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(other) => vec![json!({"type": "message", "role": "user", "content": other})],
    };
    let template = Arc::new(body);
    let (input, prompt) = match anchor {
        None => (InputChain::new(None, tail), None),
        Some(last) => {
            let mut grown = last.output.clone();
            grown.extend(tail);
            let input = InputChain::new(Some(Arc::clone(&last.input)), grown);
            let same_head = ["instructions", "tools"].iter().all(|k| template.get(*k) == last.template.get(*k))
                && last.template.get("model").and_then(Value::as_str) == Some(model.as_str());
            let tokens = if same_head {
                let mut tokens = last.tokens.clone();
                st.tokenizer.append_items(input.items_of_this_turn(), &mut tokens);
                tokens
            } else {
                st.tokenizer
                    .prompt(&Reconstructed { template: Arc::clone(&template), input: Arc::clone(&input) }.body())
            };
            let prefix = if same_head { last.chain.clone() } else { Vec::new() };
            let chain = block_chain_extend(&model, &tokens, st.config.cache.block_tokens, prefix);
            st.log.set_reconstructed(seq, Reconstructed { template: Arc::clone(&template), input: Arc::clone(&input) });
            (input, Some((tokens, chain)))
        }
    };
    // The reply plan and the response object need the fields and the items from the last user message on.
    let mut body = (*template).clone();
    if let Some(o) = body.as_object_mut() {
        let items = if anchor.is_some() { input.from_last_user() } else { input.to_vec() };
        o.insert("input".to_owned(), Value::Array(items));
    }
    let turn = serve_turn(
        st,
        TurnRequest {
            seq,
            now,
            body: &body,
            headers: &conn.headers,
            session_id: header_str(&conn.headers, "session-id").or_else(|| header_str(&conn.headers, "session_id")),
            turn_state: turn_state.as_deref(),
            placement: Placement { transport: Transport::Ws, pinned: Some(conn.machine) },
            fault,
            prompt,
            generate,
            previous_response_id: previous.as_deref(),
        },
    )?;
    let mut events = if generate {
        sse::events(&turn.base, &turn.items, &turn.completed)
    } else {
        vec![
            ("response.created".to_owned(), json!({"response": turn.base})),
            ("response.completed".to_owned(), json!({"response": turn.completed})),
        ]
    };
    events = sse::with_failure(events, turn.fault.as_ref(), &turn.base);
    let failed = turn.fault.as_ref().is_some_and(|f| f.fail_at.is_some());
    let mut steps = VecDeque::with_capacity(events.len() + 4);
    let mut headers = Map::new();
    headers.insert(TURN_STATE.to_owned(), Value::String(turn.turn_state.clone()));
    headers.insert("x-emulator-machine".to_owned(), Value::String(turn.outcome.machine.to_string()));
    headers.insert("openai-model".to_owned(), Value::String(turn.model.clone()));
    steps.push_back(WsStep::Text(json!({"type": "codex.response.metadata", "headers": headers}).to_string()));
    steps.push_back(WsStep::Text(turn.quota.event().to_string()));
    let cut = turn.fault.as_ref().and_then(|f| f.cut_after).filter(|n| *n < events.len());
    let stall = turn.fault.as_ref().and_then(|f| f.stall_ms.map(|ms| (ms, f.stall_at)));
    for (i, (name, payload)) in events.iter().enumerate() {
        if cut == Some(i) {
            break;
        }
        if let Some((ms, at)) = stall
            && (at == StallAt::Each || at == StallAt::Before(i))
        {
            steps.push_back(WsStep::Sleep(ms));
        }
        steps.push_back(WsStep::Text(sse::data_json(name, i, payload)));
    }
    if cut.is_some() {
        steps.push_back(match turn.fault.as_ref().and_then(|f| f.close_code) {
            Some(code) => WsStep::Close(code),
            None => WsStep::Drop,
        });
    }
    let anchor = (cut.is_none() && !failed).then(|| Last {
        id: turn.rid.clone(),
        template,
        input,
        output: turn.items.clone(),
        tokens: turn.tokens,
        chain: turn.chain,
    });
    Ok(Flight { steps, wake: Instant::now(), anchor })
}
