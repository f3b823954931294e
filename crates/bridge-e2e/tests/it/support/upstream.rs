//! The upstream the clients talk to: an in-process emulator on 127.0.0.1, and a compact view of its request
//! log (method, path, model, `prompt_cache_key`) for assertions.

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
        })
        .collect()
}
