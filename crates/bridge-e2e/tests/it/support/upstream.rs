//! The upstream the clients talk to: an in-process emulator on 127.0.0.1, and a compact view of its request
//! log (method, path, model, `prompt_cache_key`, headers, body) for assertions.

use codex_emulator::{EmulatorConfig, RunningEmulator};
use serde_json::Value;

/// What the emulator's tool call prints (`codex_emulator::reply::TOOL_COMMAND` echoes it).
pub const TOOL_MARKER: &str = "emulator-tool-ok";

/// Start an emulator with the default configuration on a free loopback port.
pub async fn start_emulator() -> RunningEmulator {
    codex_emulator::spawn(EmulatorConfig::default()).await.expect("start the emulator")
}

/// Start an emulator whose front door routes like the real one's: an HTTP request or a new WebSocket
/// reaches its affinity machine with the calibrated probability (emulator README, "Transport-aware
/// routing"), seeded, so a replay is deterministic.
pub async fn start_calibrated_emulator() -> RunningEmulator {
    let config =
        EmulatorConfig { http_affinity: codex_emulator::config::CALIBRATED_HTTP_AFFINITY, ..Default::default() };
    codex_emulator::spawn(config).await.expect("start the emulator")
}

/// The Responses base URL of the emulator's API flavour (clients append `/responses`).
pub fn api_base(emulator: &RunningEmulator) -> String {
    format!("{}/v1", emulator.base_url())
}

/// One logged request, reduced to what the tests assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The body's `model`.
    pub model: Option<String>,
    /// The body's `prompt_cache_key`.
    pub prompt_cache_key: Option<String>,
    /// Whether the request reached the cache model (passed validation, no immediate fault).
    pub served: bool,
    /// The headers as received, `[name, value]` with lowercase names, in order.
    pub headers: Vec<(String, String)>,
    /// The parsed JSON body.
    pub body: Value,
}

impl Call {
    /// The value of header `name` (lowercase), if it was sent exactly once; panics when it was sent twice.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let first = values.next();
        assert!(values.next().is_none(), "header {name} sent more than once: {:?}", self.headers);
        first
    }

    /// The `input` items of the body.
    pub fn input(&self) -> &[Value] {
        self.body.get("input").and_then(Value::as_array).map_or(&[], Vec::as_slice)
    }

    /// Whether the request is a `POST` to a Responses endpoint.
    pub fn is_responses(&self) -> bool {
        self.method == "POST" && self.path.ends_with("/responses")
    }
}

/// The usage the emulator reported for `key` (requests, input and cached tokens), if it saw that key.
pub fn key_stats(emulator: &RunningEmulator, key: &str) -> Option<codex_emulator::stats::Counters> {
    emulator.state().stats().per_key.get(key).cloned()
}

/// Every request in the emulator's log, oldest first.
pub fn calls(emulator: &RunningEmulator) -> Vec<Call> {
    let text = |body: &Value, key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    emulator
        .state()
        .requests()
        .into_iter()
        .map(|r| Call {
            model: text(&r.body, "model"),
            prompt_cache_key: text(&r.body, "prompt_cache_key"),
            method: r.method,
            path: r.path,
            served: r.served,
            headers: r.headers,
            body: r.body,
        })
        .collect()
}

/// One WebSocket the emulator accepted: its handshake's headers and the `response.create` frames it served,
/// in order.
#[derive(Debug, Clone)]
pub struct SocketLog {
    /// The emulator's connection number.
    pub connection: u64,
    /// The handshake's path.
    pub path: String,
    /// The handshake's headers, lowercase names, in order.
    pub headers: Vec<(String, String)>,
    /// The frames on this connection, oldest first.
    pub frames: Vec<codex_emulator::log::LoggedRequest>,
}

impl SocketLog {
    /// The handshake's value of header `name` (lowercase), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The frames that asked for a response (not `generate: false` prewarms).
    pub fn turns(&self) -> Vec<&codex_emulator::log::LoggedRequest> {
        self.frames.iter().filter(|f| !f.prewarm).collect()
    }
}

/// Every WebSocket in the emulator's log with its frames, by connection number.
pub fn sockets(emulator: &RunningEmulator) -> Vec<SocketLog> {
    let log = emulator.state().requests();
    let mut sockets: Vec<SocketLog> = log
        .iter()
        .filter(|e| e.method == "GET" && e.transport == "ws")
        .filter_map(|e| {
            Some(SocketLog {
                connection: e.connection?,
                path: e.path.clone(),
                headers: e.headers.clone(),
                frames: Vec::new(),
            })
        })
        .collect();
    for frame in log.into_iter().filter(|e| e.method == "WS") {
        if let Some(socket) = sockets.iter_mut().find(|s| Some(s.connection) == frame.connection) {
            socket.frames.push(frame);
        }
    }
    sockets
}

/// The number of HTTP `POST …/responses` the emulator received.
pub fn responses_posts(emulator: &RunningEmulator) -> usize {
    calls(emulator).iter().filter(|c| c.is_responses()).count()
}
