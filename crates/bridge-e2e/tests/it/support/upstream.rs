//! The upstream the clients talk to: an in-process emulator on 127.0.0.1, and a compact view of its request
//! log (method, path, model, `prompt_cache_key`, headers, body) for assertions.

use codex_emulator::{EmulatorConfig, RunningEmulator};
use serde_json::Value;

/// Start an emulator with the default configuration on a free loopback port.
pub async fn start_emulator() -> RunningEmulator {
    codex_emulator::spawn(EmulatorConfig::default()).await.expect("start the emulator")
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
