//! The request log: every request the emulator received (except `/emulator/*`), bounded in size.
//!
//! Invariants: entries are in arrival order with increasing `seq`; at most `capacity` entries are kept
//! (the oldest are dropped first); an entry is also a valid limit-calculator trace line (`ts_ms`,
//! `headers`, `body`). Bodies are kept as received and parsed only when the log is read, so logging costs
//! the request path a reference count (the body's `Bytes` are shared), not a copy or a second JSON parse.
//! A WebSocket `response.create` is one entry (method `WS`, the handshake's path and headers, the frame as
//! body) that also keeps the reconstructed request (`reconstructed_body`) as a [`Reconstructed`]: the
//! frame's fields plus an [`InputChain`] whose segments are shared with the connection's earlier turns, so
//! logging a delta turn copies nothing and the limit calculator still counts its whole input (the body is
//! materialized when the log is read).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One logged request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct LoggedRequest {
    /// Arrival number, from 1.
    pub seq: u64,
    /// Emulator time (unix ms) of the request.
    pub ts_ms: u64,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers in the order the server saw them (names lowercased by the HTTP stack).
    pub headers: Vec<(String, String)>,
    /// Parsed JSON body, a string for non-JSON bodies, `null` when empty.
    pub body: Value,
    /// True once a Responses request passed validation and reached the cache model.
    #[serde(default)]
    pub served: bool,
    /// `http` or `ws`.
    #[serde(default = "http")]
    pub transport: String,
    /// The WebSocket connection number (from 1), for `ws` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<u64>,
    /// A `generate: false` prewarm.
    #[serde(default)]
    pub prewarm: bool,
    /// The `previous_response_id` the request carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_response_id: Option<String>,
    /// Number of `input` items the request carried (for a delta: the delta only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_items: Option<usize>,
    /// The request carried `x-codex-turn-state` (header or `client_metadata`).
    #[serde(default)]
    pub turn_state: bool,
    /// The `x-codex-routing-hint` header (for `ws`: the handshake's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_hint: Option<String>,
    /// For a WebSocket create: the request as served (previous response's input and output, then this
    /// frame's input; no `previous_response_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconstructed_body: Option<Value>,
}

fn http() -> String {
    "http".to_owned()
}

/// The input of a WebSocket turn: this turn's new items after the previous turn's chain.
#[derive(Debug)]
pub struct InputChain {
    prev: Option<Arc<InputChain>>,
    items: Vec<Value>,
    len: usize,
}

impl InputChain {
    /// `items` after `prev` (none: the start of a connection's conversation).
    pub fn new(prev: Option<Arc<InputChain>>, items: Vec<Value>) -> Arc<Self> {
        let len = prev.as_ref().map_or(0, |p| p.len) + items.len();
        Arc::new(Self { prev, items, len })
    }

    /// Number of items in the whole input.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the whole input is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn segments(&self) -> Vec<&[Value]> {
        let mut segs = Vec::new();
        let mut node = Some(self);
        while let Some(n) = node {
            segs.push(n.items.as_slice());
            node = n.prev.as_deref();
        }
        segs.reverse();
        segs
    }

    /// The items this turn added (the last segment).
    pub fn items_of_this_turn(&self) -> &[Value] {
        &self.items
    }

    /// The whole input, cloned.
    pub fn to_vec(&self) -> Vec<Value> {
        let mut out = Vec::with_capacity(self.len);
        for seg in self.segments() {
            out.extend(seg.iter().cloned());
        }
        out
    }

    /// The items from the last user message on (all of them when there is none): what the reply plan
    /// looks at, without copying the history before it.
    pub fn from_last_user(&self) -> Vec<Value> {
        let is_user = |v: &Value| v.get("role").and_then(Value::as_str) == Some("user");
        let mut tail: Vec<&[Value]> = Vec::new();
        let mut node = Some(self);
        while let Some(n) = node {
            if let Some(i) = n.items.iter().rposition(is_user) {
                tail.push(&n.items[i..]);
                break;
            }
            tail.push(&n.items);
            node = n.prev.as_deref();
        }
        tail.iter().rev().flat_map(|s| s.iter().cloned()).collect()
    }
}

/// A WebSocket turn's request as served: the body without `input`, and the input chain.
#[derive(Debug, Clone)]
pub struct Reconstructed {
    /// The request's fields except `input`.
    pub template: Arc<Value>,
    /// The whole input.
    pub input: Arc<InputChain>,
}

impl Reconstructed {
    /// The whole body.
    pub fn body(&self) -> Value {
        let mut body = (*self.template).clone();
        if let Some(o) = body.as_object_mut() {
            o.insert("input".to_owned(), Value::Array(self.input.to_vec()));
        }
        body
    }
}

type Stored = (LoggedRequest, bytes::Bytes, Option<Reconstructed>);

/// Bounded request log.
#[derive(Debug)]
pub struct RequestLog {
    capacity: usize,
    inner: Mutex<(u64, VecDeque<Stored>)>,
}

impl RequestLog {
    /// An empty log keeping at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), inner: Mutex::new((0, VecDeque::new())) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, VecDeque<Stored>)> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Append an entry with its raw body (its `seq` and `body` are set here) and return the seq.
    pub fn push(&self, entry: LoggedRequest, raw: &bytes::Bytes) -> u64 {
        self.push_with(entry, raw, None)
    }

    /// [`RequestLog::push`] with the reconstructed request of a WebSocket create.
    pub fn push_with(&self, mut entry: LoggedRequest, raw: &bytes::Bytes, reconstructed: Option<Reconstructed>) -> u64 {
        let raw = raw.clone();
        let mut g = self.lock();
        g.0 += 1;
        entry.seq = g.0;
        entry.body = Value::Null;
        entry.reconstructed_body = None;
        g.1.push_back((entry, raw, reconstructed));
        while g.1.len() > self.capacity {
            g.1.pop_front();
        }
        g.0
    }

    /// Mark entry `seq` as served by the cache model.
    pub fn mark_served(&self, seq: u64) {
        let mut g = self.lock();
        if let Ok(i) = g.1.binary_search_by_key(&seq, |(e, _, _)| e.seq) {
            g.1[i].0.served = true;
        }
    }

    /// Mark entry `seq` (a WebSocket handshake) as the opening of connection `connection`.
    pub fn set_connection(&self, seq: u64, connection: u64) {
        let mut g = self.lock();
        if let Ok(i) = g.1.binary_search_by_key(&seq, |(e, _, _)| e.seq) {
            g.1[i].0.transport = "ws".to_owned();
            g.1[i].0.connection = Some(connection);
        }
    }

    /// Attach the reconstructed request to entry `seq` (a WebSocket create, once it was resolved).
    pub fn set_reconstructed(&self, seq: u64, body: Reconstructed) {
        let mut g = self.lock();
        if let Ok(i) = g.1.binary_search_by_key(&seq, |(e, _, _)| e.seq) {
            g.1[i].2 = Some(body);
        }
    }

    /// A copy of all entries, bodies parsed.
    pub fn entries(&self) -> Vec<LoggedRequest> {
        let stored: Vec<Stored> = self.lock().1.iter().cloned().collect();
        stored
            .into_iter()
            .map(|(entry, raw, reconstructed)| {
                let body = body_value(&raw);
                let input_items =
                    entry.input_items.or_else(|| body.get("input").and_then(Value::as_array).map(Vec::len));
                LoggedRequest { body, input_items, reconstructed_body: reconstructed.map(|r| r.body()), ..entry }
            })
            .collect()
    }

    /// Drop all entries (seq keeps counting).
    pub fn clear(&self) {
        self.lock().1.clear();
    }
}

/// Headers as ordered `(name, value)` pairs (non-UTF-8 values lossily decoded).
pub fn header_pairs(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers.iter().map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

/// Parse a body for the log: JSON, else a UTF-8 string, else `null`.
pub fn body_value(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}
