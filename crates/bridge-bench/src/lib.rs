//! Measurement for codex-bridge: the overhead benchmark (the same requests straight to the emulator and
//! through the bridge, interleaved, and multi-turn conversations over WebSocket and HTTP per turn), the emulator capacity check, the workload generator, the cache
//! benchmark (client-direct vs bridge vs limit) and the demo built on it; the store-outage benchmark (Redis up vs
//! killed) and the crash-loss harness (SIGKILLs under load against the usage store); the transport
//! benchmarks (one conversation over HTTP vs one WebSocket, and the emulator's turns per second on each).
//!
//! Everything runs on loopback with bounded request counts and stops by itself. Numbers are only
//! meaningful from a release build (`cargo run --release -p codex-bridge -- bench ...`).

pub mod amplification;
pub mod cache;
pub mod chart;
pub mod chat;
pub mod crash_loss;
pub mod floor;
pub mod load;
pub mod overhead;
pub mod progress;
pub mod redis;
pub mod stats;
pub mod store_outage;
pub mod trace;
pub mod transport;
pub mod turn_overhead;
pub mod workload;

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("could not start {what}: {message}")]
    Start { what: &'static str, message: String },
    #[error("request to {target} failed: {message}")]
    Request { target: &'static str, message: String },
    #[error("{0}")]
    Other(String),
}

/// The emulator every overhead-style benchmark measures against: fast tokenizer (the bridge's cost is the
/// subject, not tokenizing), a request log of `log_capacity` entries, on a free loopback port.
pub async fn fast_emulator(log_capacity: usize) -> Result<codex_emulator::RunningEmulator, BenchError> {
    let config = codex_emulator::EmulatorConfig {
        tokenizer: codex_emulator::TokenizerMode::Fast,
        log_capacity,
        ..Default::default()
    };
    codex_emulator::spawn(config).await.map_err(|e| BenchError::Start { what: "emulator", message: e.to_string() })
}
