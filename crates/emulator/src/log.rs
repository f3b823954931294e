//! The request log: every request the emulator received (except `/emulator/*`), bounded in size.
//!
//! Invariants: entries are in arrival order with increasing `seq`; at most `capacity` entries are kept
//! (the oldest are dropped first); an entry is also a valid limit-calculator trace line (`ts_ms`,
//! `headers`, `body`). Bodies are kept as received and parsed only when the log is read, so logging costs
//! the request path a reference count (the body's `Bytes` are shared), not a copy or a second JSON parse.
//! A WebSocket `response.create` is one entry (method `WS`, the handshake's path and headers, the frame as
//! body) that also keeps the reconstructed request (`reconstructed_body`) behind an `Arc`, so the limit
//! calculator counts the whole input of a delta turn.

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

type Stored = (LoggedRequest, bytes::Bytes, Option<Arc<Value>>);

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
    pub fn push_with(&self, mut entry: LoggedRequest, raw: &bytes::Bytes, reconstructed: Option<Arc<Value>>) -> u64 {
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
    pub fn set_reconstructed(&self, seq: u64, body: Arc<Value>) {
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
                LoggedRequest {
                    body,
                    input_items,
                    reconstructed_body: reconstructed.map(|b| (*b).clone()),
                    ..entry
                }
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
