//! The upstream side of WebSocket: one upstream socket per conversation, turns as deltas on it.
//!
//! The pipeline always carries a whole turn (the full input). [`UpstreamSockets::call`] decides whether it
//! goes over HTTP or over the conversation's socket (`[upstream] transport`: `auto` and `websocket` use the
//! socket of the lineage the affinity headers name; `auto` falls back to HTTP, `websocket` does not), and on a socket computes the delta itself against what that socket
//! last sent and received ([`delta`]). It then reads the socket up to the first event a client sees, which
//! is where recovery happens, invisibly to the client:
//! - `websocket_connection_limit_reached` → a new socket and the turn again in full (once);
//! - `previous_response_not_found` on a delta → the same turn in full (once): the frame is self-contained
//!   because the bridge holds the whole input;
//! - an upgrade answered 426/404/405 → the upstream is remembered as HTTP-only and the turn goes over HTTP;
//! - any other handshake failure → this turn goes over HTTP (which has the retry policy);
//! - a reused socket whose frame could not even be written → once more on a new socket.
//!
//! A client's prewarm ([`TurnRequest::prewarm`]) takes the same path with the frame made `generate:false`;
//! its response becomes the socket's anchor like a turn's.
//!
//! Everything after a frame was written and the upstream started answering is never replayed: a socket
//! that closes or fails then ends the stream with a retryable error ([`WsEvents`]). The stream hands the
//! socket back to the pool only after `response.completed` (with the response as the next delta's anchor),
//! `response.incomplete` or `response.failed` (no anchor); anything else closes it.
//!
//! A conversation's socket that is lost (closed, failed, retired, evicted, replaced at the connection
//! limit) is noted in [`losses`]; the next turn that opens a new socket for it carries the loss
//! ([`UpstreamTurn::previous_loss`]) for the tracker's `new-socket` explanation.
//!
//! Invariants: one response in flight per socket ([`pool`]); a socket is retired between turns at
//! `websocket_max_age_ms`, re-checked with a ping after `websocket_ping_after_ms` idle, and replaced when
//! the credential (token refresh, account) differs from the one it was opened with; `codex.*` and
//! `response.metadata` frames are consumed here (turn state, headers), never forwarded to an HTTP client;
//! `response.done` is forwarded as `response.completed`.

pub mod delta;
pub mod losses;
pub mod pool;
pub mod socket;
pub mod turn_states;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bridge_sse::SseEvent;
use bridge_types::ResponsesRequest;
use bytes::Bytes;
use serde_json::Value;

use crate::config::{Transport, UpstreamConfig, WebsocketSettings};
use crate::errors::BridgeError;
use crate::identity::Identity;
use crate::identity::prefix::{Digest, digest};
use crate::metrics::{Metrics, UpstreamTurnLabels};
use crate::upstream::Upstream;
use delta::{Anchor, Plan, Shape};
use losses::{Losses, SocketLoss};
use pool::{Checkout, Lease, Pool, PoolKey};
use socket::{HandshakeError, Incoming, ReadError, Socket};
use turn_states::TurnStates;

/// The beta header value of the Responses WebSocket protocol.
pub const BETA: &str = "responses_websockets=2026-02-06";
/// The rebuilt routing hint header.
pub const ROUTING_HINT: &str = "x-codex-routing-hint";

/// Close codes of an upstream socket a WebSocket client sees as they are, not as a JSON error: 1009
/// (message too big: Codex falls back to HTTP on it), 1012 (service restart) and 1013 (try again later).
pub const PROPAGATED_CLOSE_CODES: [u16; 3] = [1009, 1012, 1013];

/// `code` if a WebSocket client is closed with it ([`PROPAGATED_CLOSE_CODES`]).
pub fn propagated_close(code: Option<u16>) -> Option<u16> {
    code.filter(|c| PROPAGATED_CLOSE_CODES.contains(c))
}

/// The short close reason a WebSocket client gets with a propagated code.
pub fn close_reason(code: u16) -> &'static str {
    match code {
        1009 => "upstream: message too big",
        1012 => "upstream: service restart",
        1013 => "upstream: try again later",
        _ => "upstream closed its socket",
    }
}

/// How one turn reached the upstream (metrics, the tracker's row and its miss explanations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamTurn {
    /// `http` (HTTP upstream), `ws` (WebSocket client, upstream socket), `bridged` (HTTP client, socket).
    pub transport: &'static str,
    /// `new`, `reused` or `one-shot`; `None` over HTTP.
    pub socket: Option<&'static str>,
    /// `delta` or `full`; `None` over HTTP.
    pub frame: Option<&'static str>,
    /// The delta's anchor was gone upstream and the turn was resent in full.
    pub anchor_lost: bool,
    /// On a new socket: why the lineage's previous socket was lost, if that happened lately ([`losses`]).
    pub previous_loss: Option<SocketLoss>,
}

impl UpstreamTurn {
    /// A turn sent over HTTP.
    pub fn http() -> Self {
        Self { transport: "http", socket: None, frame: None, anchor_lost: false, previous_loss: None }
    }

    /// `bridged/reused/delta`, `http`: the short form in `sessions show`.
    pub fn summary(&self) -> String {
        let mut s = self.transport.to_owned();
        for part in [self.socket, self.frame].into_iter().flatten() {
            s.push('/');
            s.push_str(part);
        }
        if self.anchor_lost {
            s.push_str("/anchor-lost");
        }
        s
    }
}

/// What [`UpstreamSockets::call`] needs about the turn.
pub struct TurnRequest<'a> {
    /// The headers the HTTP path would send (affinity headers included, no credential yet).
    pub headers: HeaderMap,
    /// The final request (the whole turn).
    pub request: &'a ResponsesRequest,
    pub identity: Option<&'a Identity>,
    /// The client itself is on a WebSocket (the label `ws` rather than `bridged`).
    pub client_on_socket: bool,
    /// A client's `generate: false` prewarm: the turn's frame with `generate: false`; never over HTTP
    /// (the caller answers it locally when told [`Called::Http`]).
    pub prewarm: bool,
}

/// The answer of [`UpstreamSockets::call`].
pub enum Called {
    /// Send over HTTP with these headers (turn state added when the turn has one).
    Http { headers: HeaderMap, turn: TurnKey },
    /// A stream whose first client-visible event has arrived (it is the stream's first `next`).
    Stream { events: Box<WsEvents>, headers: HeaderMap, turn: UpstreamTurn },
    /// The upstream answered the frame with a wrapped error before any event: its status, the error body
    /// (`{"error":{...}}`) and the headers the frame carried.
    Refused { status: u16, body: Bytes, headers: HeaderMap, turn: UpstreamTurn },
}

/// Where a turn's turn state is filed (conversation, account, logical turn); empty when the turn has none.
#[derive(Debug, Clone, Default)]
pub struct TurnKey(Option<(String, Digest, Digest)>);

/// The pool, the policy and the memory of upstreams that refuse WebSocket; one per bridge.
pub struct UpstreamSockets {
    pool: Arc<Pool>,
    url: String,
    transport: Transport,
    settings: WebsocketSettings,
    connect_timeout: Duration,
    response_head_timeout: Duration,
    idle_timeout: Duration,
    /// The upstream refused the upgrade once: HTTP from then on.
    refused: AtomicBool,
    turn_states: Arc<TurnStates>,
    losses: Arc<Losses>,
    metrics: Arc<Metrics>,
}

impl UpstreamSockets {
    /// The pool for the configured upstream.
    pub fn new(config: &UpstreamConfig, metrics: Arc<Metrics>) -> Self {
        let base = &config.url;
        let url = if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}/responses")
        } else {
            format!("ws://{}/responses", base.trim_start_matches("http://"))
        };
        let losses = Arc::new(Losses::default());
        Self {
            pool: Pool::new(config.websocket.max_idle_sockets, losses.clone(), metrics.clone()),
            url,
            transport: config.transport,
            settings: config.websocket.clone(),
            connect_timeout: config.connect_timeout,
            response_head_timeout: config.response_head_timeout,
            idle_timeout: config.idle_timeout,
            refused: AtomicBool::new(false),
            turn_states: Arc::new(TurnStates::default()),
            losses,
            metrics,
        }
    }

    /// Idle sockets in the pool.
    pub fn idle_sockets(&self) -> usize {
        self.pool.idle()
    }

    /// True once the upstream refused a WebSocket upgrade (it is served over HTTP from then on).
    pub fn upstream_refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    /// Whether a turn may go over an upstream socket at all: `[upstream] transport` is not `http`, and under
    /// `auto` the upstream has not refused the upgrade.
    pub fn may_use_sockets(&self) -> bool {
        match self.transport {
            Transport::Http => false,
            Transport::Websocket => true,
            Transport::Auto => !self.refused.load(Ordering::Relaxed),
        }
    }

    /// Counts one turn's transport in the metrics.
    pub fn count(&self, turn: &UpstreamTurn) {
        let labels = UpstreamTurnLabels {
            transport: turn.transport,
            socket: turn.socket.unwrap_or("none"),
            frame: turn.frame.unwrap_or("none"),
        };
        self.metrics.upstream_turns.get_or_create(&labels).inc();
    }

    /// After an HTTP answer: its `x-codex-turn-state`, first value of the turn wins.
    pub fn capture_http(&self, turn: &TurnKey, headers: &reqwest::header::HeaderMap) {
        if let (Some((conversation, account, marker)), Some(value)) =
            (&turn.0, headers.get(crate::turn_state::TURN_STATE).and_then(|v| v.to_str().ok()))
        {
            self.turn_states.capture(conversation, account, marker, value);
        }
    }

    /// Sends the turn over the conversation's socket or tells the caller to use HTTP (module docs).
    pub async fn call(&self, upstream: &Upstream, turn: TurnRequest<'_>) -> Result<Called, BridgeError> {
        let TurnRequest { mut headers, request, identity, client_on_socket, prewarm } = turn;
        let shape = Shape::of(request);
        let client_turn_state = headers.contains_key(crate::turn_state::TURN_STATE);
        // The conversation: the lineage the affinity headers name. Every identity has one, a keyless
        // request's derived key included: a keyless conversation's first turn cannot be told from a one-shot
        // request, and sending it over HTTP costs its second turn the cache (a new socket lands on another
        // machine; docs/BENCHMARKS.md, `no-key`: 92% of the limit that way, 100% from the first turn).
        let conversation =
            identity.and_then(|_| headers.get("session-id").and_then(|v| v.to_str().ok()).map(str::to_owned));
        // The account, from the credential as the HTTP path would apply it (a clone: `send` applies it itself).
        let mut authorized = headers.clone();
        let applied = upstream.authorize(&mut authorized).await?;
        let account = account_of(&authorized);
        let key = match (&conversation, shape.turn_marker()) {
            (Some(c), Some(marker)) => TurnKey(Some((c.clone(), account, marker))),
            _ => TurnKey(None),
        };
        let replay = match (&key.0, client_turn_state) {
            (Some((c, a, m)), false) => self.turn_states.replay(c, a, m),
            _ => None,
        };
        let strict = self.transport == Transport::Websocket;
        let socket_wanted = self.may_use_sockets()
            // A client's own `previous_response_id` or background mode is the HTTP API's business.
            && !request.contains("previous_response_id")
            && request.get::<bool>("background").ok().flatten() != Some(true);
        if !socket_wanted {
            if let Some(v) = replay.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.insert(crate::turn_state::TURN_STATE, v);
            }
            return Ok(Called::Http { headers, turn: key });
        }
        let mut handshake = handshake_headers(authorized, request);
        let profile = profile_of(&handshake);
        let credential = credential_of(&handshake);
        let pool_key = conversation.as_ref().map(|lineage| PoolKey { lineage: lineage.clone(), account, profile });
        let label = if client_on_socket { "ws" } else { "bridged" };

        let member = pool_key.as_ref().and_then(|k| {
            let thread = headers.get("thread-id").and_then(|v| v.to_str().ok())?;
            k.member(thread)
        });
        let (mut socket, lease, mut socket_kind, pool_key) = self.lease(pool_key, member, credential).await;
        let mut lease = Some(lease);
        let mut reconnects = 0u32;
        let mut anchor_lost = false;
        let mut force_full = false;
        let mut previous_loss = None;
        loop {
            let mut s = match socket.take() {
                Some(s) => s,
                None => match self.open(upstream, &mut handshake, &applied, credential).await {
                    Ok(s) => s,
                    Err(Unopened::Silent) => {
                        // The upstream accepts and says nothing: HTTP would wait as long again.
                        return Err(crate::upstream::head_timeout(self.handshake_timeout()).into());
                    }
                    Err(Unopened::Fallback(why)) if strict => {
                        return Err(crate::errors::bad_gateway(format!(
                            "no upstream WebSocket ([upstream] transport = \"websocket\"): {why}"
                        ))
                        .into());
                    }
                    Err(Unopened::Fallback(why)) => {
                        drop(lease);
                        tracing::debug!(why, "upstream socket unavailable; this turn goes over HTTP");
                        if let Some(v) = replay.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                            headers.insert(crate::turn_state::TURN_STATE, v);
                        }
                        return Ok(Called::Http { headers, turn: key });
                    }
                },
            };
            let plan = if force_full { Plan::Full } else { delta::plan(s.anchor.as_ref(), &shape) };
            // The anchor is spent: whatever happens now, the socket's next anchor is this turn's response.
            s.anchor = None;
            let turn_state = replay.clone().or_else(|| s.handshake_turn_state.clone());
            let mut frame = delta::frame(request, &plan, turn_state.as_deref());
            if prewarm {
                frame = delta::prewarm(frame);
            }
            if let Err(e) = s.send(frame).await {
                // Nothing reached the upstream: once more on a new socket.
                tracing::debug!(error = %e, "upstream socket failed before the frame was written");
                if socket_kind == "reused" && reconnects == 0 {
                    reconnects += 1;
                    socket_kind = "new";
                    continue;
                }
                // A new socket the upstream closed at once (1012 at the handshake): its code, if it said one.
                let error = crate::errors::bad_gateway("the upstream WebSocket failed before the request was sent");
                return Err(match propagated_close(s.pending_close().await) {
                    Some(code) => BridgeError::UpstreamClosed { code, error },
                    None => error.into(),
                });
            }
            if socket_kind == "new"
                && previous_loss.is_none()
                && let Some(k) = &pool_key
            {
                previous_loss = self.losses.take(&k.lineage);
            }
            let turn = UpstreamTurn {
                transport: label,
                socket: Some(socket_kind),
                frame: Some(plan.label()),
                anchor_lost,
                previous_loss,
            };
            let lineage = match (&pool_key, lease.as_ref().is_some_and(Lease::pooled)) {
                (Some(k), true) => Some(k.lineage.clone()),
                _ => None,
            };
            let mut events = Box::new(WsEvents {
                socket: Some(s),
                lease: lease.take(),
                idle: self.idle_timeout,
                peeked: None,
                anchor_items: shape.items.clone().unwrap_or_default(),
                fields: shape.fields,
                ended: false,
                evict_at_end: false,
                turn_states: self.turn_states.clone(),
                turn_key: key.clone(),
                metrics: self.metrics.clone(),
                rate_limits: None,
                lineage,
                losses: self.losses.clone(),
            });
            let mut response_headers = HeaderMap::new();
            match events.first(&mut response_headers).await {
                First::Event(event) => {
                    events.peeked = Some(event);
                    return Ok(Called::Stream { events, headers: response_headers, turn });
                }
                First::Error { status, code, body, headers: frame_headers } => {
                    let (s, l) = events.take_socket();
                    lease = l;
                    if code.as_deref() == Some("websocket_connection_limit_reached") && reconnects == 0 {
                        // The socket reached its age cap: a new one, and the turn in full.
                        Metrics::count(&self.metrics.upstream_socket_events, "connection_limit", 1);
                        if let Some(k) = &pool_key {
                            self.losses.remember(&k.lineage, "connection_limit", None);
                        }
                        reconnects += 1;
                        socket_kind = "new";
                        force_full = true;
                        if let Some(s) = s {
                            tokio::spawn(s.close());
                        }
                        continue;
                    }
                    if matches!(plan, Plan::Delta { .. }) && !anchor_lost && is_anchor_error(code.as_deref(), &body) {
                        // The upstream lost the anchor: the same turn in full (the bridge holds all of it).
                        Metrics::count(&self.metrics.upstream_socket_events, "anchor_lost", 1);
                        anchor_lost = true;
                        force_full = true;
                        socket = s;
                        continue;
                    }
                    // A clean refusal: the socket stays usable (without an anchor).
                    if let (Some(s), Some(l)) = (s, lease.take()) {
                        l.give_back(s);
                    }
                    return Ok(Called::Refused { status, body, headers: frame_headers, turn });
                }
                First::Failed(e) => return Err(e),
            }
        }
    }

    /// A socket for a turn of `key`'s lineage, by `member` (the turn's own member key, for a fork or
    /// subagent):
    /// 1. the member's own idle socket, when it has one (its history is on that socket's machine);
    /// 2. else the lineage's socket: idle (reused when still good) or none yet (a new one);
    /// 3. the lineage's socket is busy: a member opens or reuses its own pooled socket, so its next turns
    ///    stay on one machine; the lineage itself (a parallel request of one conversation) gets a one-shot.
    ///
    /// Returns the socket (if one is to be reused), its lease, how it was got and the key leased.
    async fn lease(
        &self,
        key: Option<PoolKey>,
        member: Option<PoolKey>,
        credential: Digest,
    ) -> (Option<Box<Socket>>, Lease, &'static str, Option<PoolKey>) {
        let Some(key) = key else { return (None, Lease::one_shot(&self.pool), "one-shot", None) };
        if let Some(m) = &member
            && let Some((s, lease)) = self.pool.checkout_idle(m)
        {
            let s = self.still_good(s, credential, &m.lineage).await;
            let kind = if s.is_some() { "reused" } else { "new" };
            return (s, lease, kind, member);
        }
        let (checkout, lease, leased) = match self.pool.checkout(&key) {
            (Checkout::Busy, _) => match member {
                Some(m) => {
                    Metrics::count(&self.metrics.upstream_socket_events, "busy_member", 1);
                    let (checkout, lease) = self.pool.checkout(&m);
                    (checkout, lease, m)
                }
                None => (Checkout::Busy, Lease::one_shot(&self.pool), key),
            },
            (checkout, lease) => (checkout, lease, key),
        };
        match checkout {
            Checkout::Idle(s) => {
                let s = self.still_good(s, credential, &leased.lineage).await;
                let kind = if s.is_some() { "reused" } else { "new" };
                (s, lease, kind, Some(leased))
            }
            Checkout::Empty => (None, lease, "new", Some(leased)),
            Checkout::Busy => {
                Metrics::count(&self.metrics.upstream_socket_events, "busy_bypass", 1);
                (None, Lease::one_shot(&self.pool), "one-shot", Some(leased))
            }
        }
    }

    /// The bound on one handshake (TCP, TLS and the upgrade's answer): the connect timeout, or the response
    /// head timeout when that is shorter.
    fn handshake_timeout(&self) -> Duration {
        self.connect_timeout.min(self.response_head_timeout)
    }

    /// The pooled socket if it is young enough, carries the current credential and (after a long idle)
    /// answers a ping; else it is closed and `None`.
    async fn still_good(&self, mut s: Box<Socket>, credential: Digest, lineage: &str) -> Option<Box<Socket>> {
        let reason = if s.opened.elapsed() >= self.settings.max_age {
            "retired_age"
        } else if s.credential != credential {
            "evicted_credential"
        } else if s.last_used.elapsed() >= self.settings.ping_after && !s.alive(self.settings.pong_timeout).await {
            "evicted_liveness"
        } else {
            return Some(s);
        };
        Metrics::count(&self.metrics.upstream_socket_events, reason, 1);
        self.losses.remember(lineage, reason, None);
        tokio::spawn(s.close());
        None
    }

    /// Opens a socket with one token refresh after a 401; `Err` says why the turn must go over HTTP.
    async fn open(
        &self,
        upstream: &Upstream,
        handshake: &mut HeaderMap,
        applied: &crate::credentials::Applied,
        credential: Digest,
    ) -> Result<Box<Socket>, Unopened> {
        let mut refreshed = false;
        let mut credential = credential;
        loop {
            match Socket::connect(&self.url, handshake, credential, self.handshake_timeout()).await {
                Ok(s) => {
                    Metrics::count(&self.metrics.upstream_socket_events, "opened", 1);
                    return Ok(s);
                }
                Err(HandshakeError::Status(401)) if !refreshed => {
                    refreshed = true;
                    match upstream.reauthorize(applied, handshake).await {
                        Ok(Some(_)) => credential = credential_of(handshake),
                        _ => return Err(Unopened::Fallback("the upgrade was refused with 401")),
                    }
                }
                Err(HandshakeError::Status(status @ (404 | 405 | 426))) => {
                    self.refused.store(true, Ordering::Relaxed);
                    Metrics::count(&self.metrics.upstream_socket_events, "refused_upgrade", 1);
                    tracing::info!(
                        status,
                        "the upstream refused the WebSocket upgrade; it is served over HTTP from now on"
                    );
                    return Err(Unopened::Fallback("the upstream refused the upgrade"));
                }
                Err(HandshakeError::Timeout) => {
                    Metrics::count(&self.metrics.upstream_socket_events, "handshake_failed", 1);
                    return Err(Unopened::Silent);
                }
                Err(e) => {
                    Metrics::count(&self.metrics.upstream_socket_events, "handshake_failed", 1);
                    tracing::debug!(error = ?e, "upstream WebSocket handshake failed");
                    return Err(Unopened::Fallback("the handshake failed"));
                }
            }
        }
    }
}

/// Why no socket could be opened.
enum Unopened {
    /// Refused or failed: the turn may go over HTTP.
    Fallback(&'static str),
    /// No answer within the handshake's bound: a 504 (HTTP would wait as long again).
    Silent,
}

/// Whether a wrapped error says the `previous_response_id` is unknown (the coded form, or the
/// parameterless ``Invalid `previous_response_id`.``).
fn is_anchor_error(code: Option<&str>, body: &[u8]) -> bool {
    if code == Some("previous_response_not_found") {
        return true;
    }
    code.is_none() && std::str::from_utf8(body).is_ok_and(|b| b.contains("previous_response_id"))
}

/// The handshake's headers: the HTTP path's (credential applied) minus body headers, with the protocol's
/// beta header and the routing hint rebuilt from the final model and tier.
fn handshake_headers(mut headers: HeaderMap, request: &ResponsesRequest) -> HeaderMap {
    for name in ["content-type", "accept", "content-length", crate::turn_state::TURN_STATE, ROUTING_HINT] {
        headers.remove(name);
    }
    let websocket_headers: Vec<HeaderName> =
        headers.keys().filter(|k| k.as_str().starts_with("sec-websocket-")).cloned().collect();
    for name in websocket_headers {
        headers.remove(name);
    }
    let beta = match headers.get("openai-beta").and_then(|v| v.to_str().ok()) {
        Some(existing) if existing.contains(BETA) => existing.to_owned(),
        Some(existing) => format!("{existing},{BETA}"),
        None => BETA.to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&beta) {
        headers.insert("openai-beta", v);
    }
    if let Some(hint) = routing_hint(request).and_then(|h| HeaderValue::from_str(&h).ok()) {
        headers.insert(ROUTING_HINT, hint);
    }
    headers
}

/// `model=<slug>[;tier=<service_tier>]` from the request as sent.
pub fn routing_hint(request: &ResponsesRequest) -> Option<String> {
    let model = request.model()?;
    Some(match request.get_str("service_tier") {
        Some(tier) if !tier.is_empty() => format!("model={model};tier={tier}"),
        _ => format!("model={model}"),
    })
}

fn header_digest(headers: &HeaderMap, names: &[&str]) -> Digest {
    let mut h = blake3::Hasher::new();
    for name in names {
        for v in headers.get_all(*name) {
            h.update(name.as_bytes());
            h.update(&(v.len() as u64).to_le_bytes());
            h.update(v.as_bytes());
        }
        h.update(b"\0");
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// The account a credential belongs to: the ChatGPT account id, else the bearer itself (an API key or a
/// client's own token), as a digest only.
fn account_of(headers: &HeaderMap) -> Digest {
    match headers.get("chatgpt-account-id") {
        Some(id) => digest(id.as_bytes()),
        None => header_digest(headers, &["authorization"]),
    }
}

/// The credential itself (a refreshed token differs), as a digest only.
fn credential_of(headers: &HeaderMap) -> Digest {
    header_digest(headers, &["authorization", "chatgpt-account-id"])
}

/// The connection profile: the handshake-scoped headers a socket keeps for its life. The routing hint is
/// not part of it: like Codex, a reused socket keeps its first hint (a model or tier change alone does not
/// move the conversation to a new socket, and so to another cache machine).
fn profile_of(headers: &HeaderMap) -> Digest {
    header_digest(headers, &["originator", "user-agent", "version", "openai-beta", "x-codex-beta-features"])
}

/// What the first frames of an answer were.
enum First {
    /// The first event a client sees.
    Event(SseEvent),
    /// A wrapped error frame: status, `error.code`, the `{"error":{...}}` body and the frame's headers.
    Error { status: u16, code: Option<String>, body: Bytes, headers: HeaderMap },
    /// The socket failed before answering: never replayed (a propagated close code kept for a WebSocket
    /// client).
    Failed(BridgeError),
}

/// Why reading a socket stream failed after it started.
#[derive(Debug)]
pub enum WsFailure {
    Idle(Duration),
    /// Closed (close code, `None` = no close frame, 1006) or broke before the terminal event.
    Closed(Option<u16>),
    /// A wrapped error frame in the middle of a response.
    Upstream {
        code: Option<String>,
        message: String,
    },
    /// A binary frame or a protocol error.
    Protocol(String),
}

/// The events of one response on an upstream socket, as SSE events (each text frame becomes one event
/// named by its `type`); the source behind [`crate::pump::UpstreamEvents`] for a socket.
pub struct WsEvents {
    socket: Option<Box<Socket>>,
    lease: Option<Lease>,
    idle: Duration,
    peeked: Option<SseEvent>,
    /// The request's input digests, then each added output item's: the next turn's anchor.
    anchor_items: Vec<Digest>,
    fields: Digest,
    ended: bool,
    evict_at_end: bool,
    turn_states: Arc<TurnStates>,
    turn_key: TurnKey,
    metrics: Arc<Metrics>,
    /// The last `codex.rate_limits` frame before the response started (the plan's quota).
    rate_limits: Option<Value>,
    /// The conversation whose pooled socket this is (`None` for a one-shot socket): a loss is noted for it.
    lineage: Option<String>,
    losses: Arc<Losses>,
}

/// What one text frame is.
enum Kind<'a> {
    /// Consumed here: `codex.response.metadata`, `response.metadata`, `codex.rate_limits`, timing.
    Meta(&'a str),
    Error,
    Event(&'a str),
}

/// The `type` of a frame: read from its start when it begins with `{"type":"`, else parsed.
fn frame_type(text: &str) -> Option<std::borrow::Cow<'_, str>> {
    if let Some(rest) = text.strip_prefix(r#"{"type":""#)
        && let Some(end) = rest.find('"')
        && !rest[..end].contains('\\')
    {
        return Some(std::borrow::Cow::Borrowed(&rest[..end]));
    }
    let v: Value = serde_json::from_str(text).ok()?;
    v.get("type").and_then(Value::as_str).map(|t| std::borrow::Cow::Owned(t.to_owned()))
}

fn classify(kind: &str) -> Kind<'_> {
    match kind {
        "error" => Kind::Error,
        "codex.response.metadata" | "response.metadata" | "codex.rate_limits" | "responsesapi.websocket_timing" => {
            Kind::Meta(kind)
        }
        other => Kind::Event(other),
    }
}

/// A wrapped error frame as (status, code, `{"error":{...}}` body, headers).
fn wrapped_error(text: &str) -> (u16, Option<String>, Bytes, HeaderMap) {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let status = v
        .get("status")
        .or_else(|| v.get("status_code"))
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|s| (400..600).contains(s))
        .unwrap_or(502);
    let mut error = match v.get("error") {
        Some(Value::Object(e)) => e.clone(),
        _ => serde_json::Map::new(),
    };
    for (from, to) in [("code", "code"), ("message", "message"), ("param", "param"), ("error_type", "type")] {
        if !error.contains_key(to)
            && let Some(x) = v.get(from)
        {
            error.insert(to.to_owned(), x.clone());
        }
    }
    let code = error.get("code").and_then(Value::as_str).map(str::to_owned);
    let mut headers = HeaderMap::new();
    if let Some(Value::Object(h)) = v.get("headers") {
        for (k, x) in h {
            let text = match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let (Ok(n), Ok(val)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(&text)) {
                headers.insert(n, val);
            }
        }
    }
    let body = serde_json::json!({ "error": Value::Object(error) }).to_string();
    (status, code, Bytes::from(body), headers)
}

/// One frame as the SSE event an HTTP upstream would have sent.
fn as_event(kind: &str, text: &str) -> SseEvent {
    SseEvent {
        raw: bridge_sse::encode_event(Some(kind), text),
        event: Some(kind.to_owned()),
        data: text.to_owned(),
        id: None,
        retry: None,
    }
}

impl WsEvents {
    /// Reads up to the first client-visible event; metadata frames fill `headers` (turn state, model).
    async fn first(&mut self, headers: &mut HeaderMap) -> First {
        loop {
            let Some(socket) = self.socket.as_mut() else {
                return First::Failed(crate::errors::bad_gateway("the upstream WebSocket is gone").into());
            };
            let text = match socket.recv(self.idle).await {
                Ok(Incoming::Text(t)) => t,
                Ok(Incoming::Closed(code)) => {
                    self.socket = None;
                    self.lost("closed_before_start", Some(code.unwrap_or(1006)));
                    let shown = code.map_or_else(|| "1006".to_owned(), |c| c.to_string());
                    let error = crate::errors::bad_gateway(format!(
                        "the upstream WebSocket closed ({shown}) before the response started; the request was sent, so it is not replayed: retry"
                    ));
                    return First::Failed(match propagated_close(code) {
                        Some(code) => BridgeError::UpstreamClosed { code, error },
                        None => error.into(),
                    });
                }
                Ok(Incoming::Binary) => {
                    self.socket = None;
                    return First::Failed(
                        crate::errors::bad_gateway("the upstream sent a binary WebSocket frame").into(),
                    );
                }
                Err(ReadError::Idle(d)) => {
                    self.socket = None;
                    return First::Failed(crate::errors::gateway_timeout(d).into());
                }
                Err(ReadError::Protocol(m)) => {
                    self.socket = None;
                    return First::Failed(crate::errors::bad_gateway(format!("upstream WebSocket error: {m}")).into());
                }
            };
            let Some(kind) = frame_type(text.as_str()) else { continue };
            match classify(&kind) {
                Kind::Meta(meta) => self.meta(meta, text.as_str(), Some(headers)),
                Kind::Error => {
                    let (status, code, body, headers) = wrapped_error(text.as_str());
                    return First::Error { status, code, body, headers };
                }
                Kind::Event(name) => match self.event(name, text.as_str()) {
                    Some(event) => return First::Event(event),
                    None => continue,
                },
            }
        }
    }

    /// The `codex.rate_limits` frame that came before the response, once.
    pub fn take_rate_limits(&mut self) -> Option<Value> {
        self.rate_limits.take()
    }

    /// A metadata frame: turn state (first value of the turn wins) and, before the stream, the headers;
    /// a rate-limits frame before the stream is kept for [`WsEvents::take_rate_limits`].
    fn meta(&mut self, kind: &str, text: &str, headers: Option<&mut HeaderMap>) {
        if kind == "codex.rate_limits" && headers.is_some() {
            self.rate_limits = serde_json::from_str(text).ok();
            return;
        }
        if kind != "codex.response.metadata" && kind != "response.metadata" {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(text) else { return };
        let Some(Value::Object(map)) = v.get("headers") else { return };
        if let (Some(Value::String(state)), Some((c, a, m))) =
            (map.get(crate::turn_state::TURN_STATE), &self.turn_key.0)
        {
            self.turn_states.capture(c, a, m, state);
        }
        if let Some(out) = headers {
            for (k, x) in map {
                if let (Some(text), Ok(n)) = (x.as_str(), HeaderName::from_bytes(k.as_bytes()))
                    && let Ok(val) = HeaderValue::from_str(text)
                {
                    out.insert(n, val);
                }
            }
        }
    }

    /// A client-visible frame as an event (`response.done` renamed), noting output items and the end.
    fn event(&mut self, kind: &str, text: &str) -> Option<SseEvent> {
        match kind {
            "response.output_item.done" => {
                if let Ok(v) = serde_json::from_str::<Value>(text)
                    && let Some(item) = v.get("item")
                {
                    self.anchor_items.push(delta::item_digest(&item.to_string()));
                }
                Some(as_event(kind, text))
            }
            "response.completed" | "response.done" => {
                let mut v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
                let id = v.get("response").and_then(|r| r.get("id")).and_then(Value::as_str).map(str::to_owned);
                let event = if kind == "response.done" {
                    v["type"] = Value::String("response.completed".into());
                    as_event("response.completed", &v.to_string())
                } else {
                    as_event(kind, text)
                };
                self.finish(id);
                Some(event)
            }
            "response.incomplete" | "response.failed" => {
                self.finish(None);
                Some(as_event(kind, text))
            }
            _ => Some(as_event(kind, text)),
        }
    }

    /// The response ended: the socket goes back to the pool (with the response as the next anchor when it
    /// completed), unless the client left mid-stream.
    fn finish(&mut self, response_id: Option<String>) {
        self.ended = true;
        let (Some(mut socket), Some(lease)) = (self.socket.take(), self.lease.take()) else { return };
        if self.evict_at_end || !lease.pooled() {
            if self.evict_at_end {
                Metrics::count(&self.metrics.upstream_socket_events, "evicted_abort", 1);
                self.lost("evicted_abort", None);
            }
            drop(lease);
            tokio::spawn(socket.close());
            return;
        }
        socket.anchor = response_id.map(|response_id| Anchor {
            response_id,
            fields: self.fields,
            items: std::mem::take(&mut self.anchor_items),
        });
        socket.last_used = Instant::now();
        lease.give_back(socket);
    }

    /// Notes that the conversation's pooled socket is lost ([`losses`]).
    fn lost(&self, reason: &'static str, code: Option<u16>) {
        if let Some(lineage) = &self.lineage {
            self.losses.remember(lineage, reason, code);
        }
    }

    fn take_socket(&mut self) -> (Option<Box<Socket>>, Option<Lease>) {
        (self.socket.take(), self.lease.take())
    }

    /// The client left mid-stream: the socket is closed at the end of the response instead of pooled.
    pub fn client_left(&mut self) {
        self.evict_at_end = true;
    }

    /// The next event; `Ok(None)` after the terminal event.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, WsFailure> {
        if let Some(e) = self.peeked.take() {
            return Ok(Some(e));
        }
        loop {
            if self.ended {
                return Ok(None);
            }
            let Some(socket) = self.socket.as_mut() else { return Err(WsFailure::Closed(None)) };
            let text = match socket.recv(self.idle).await {
                Ok(Incoming::Text(t)) => t,
                Ok(Incoming::Closed(code)) => {
                    self.socket = None;
                    Metrics::count(&self.metrics.upstream_socket_events, "closed_mid_stream", 1);
                    self.lost("closed_mid_stream", Some(code.unwrap_or(1006)));
                    return Err(WsFailure::Closed(code));
                }
                Ok(Incoming::Binary) => {
                    self.socket = None;
                    self.lost("failed_mid_stream", None);
                    return Err(WsFailure::Protocol("the upstream sent a binary WebSocket frame".into()));
                }
                Err(ReadError::Idle(d)) => {
                    self.socket = None;
                    self.lost("failed_mid_stream", None);
                    return Err(WsFailure::Idle(d));
                }
                Err(ReadError::Protocol(m)) => {
                    self.socket = None;
                    self.lost("failed_mid_stream", None);
                    return Err(WsFailure::Protocol(m));
                }
            };
            let Some(kind) = frame_type(text.as_str()) else { continue };
            match classify(&kind) {
                Kind::Meta(meta) => self.meta(meta, text.as_str(), None),
                Kind::Error => {
                    // The response broke after it started: the socket is not trusted again.
                    self.socket = None;
                    self.lost("failed_mid_stream", None);
                    let (_, code, body, _) = wrapped_error(text.as_str());
                    let message = serde_json::from_slice::<Value>(&body)
                        .ok()
                        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                        .unwrap_or_else(|| "the upstream reported an error".to_owned());
                    return Err(WsFailure::Upstream { code, message });
                }
                Kind::Event(name) => {
                    if let Some(event) = self.event(name, text.as_str()) {
                        return Ok(Some(event));
                    }
                }
            }
        }
    }
}
