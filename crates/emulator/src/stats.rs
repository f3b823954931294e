//! Counters for assertions and benchmarks: totals, per `prompt_cache_key`, per machine.
//!
//! Invariants: every Responses request that reaches the cache model is counted exactly once in
//! `totals`, once under its key and once under its machine; counters only grow until reset.

use std::collections::BTreeMap;

use serde::Serialize;

/// Token counters of a group of requests.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counters {
    /// Requests served.
    pub requests: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Tokens served from the cache.
    pub cached_tokens: u64,
    /// Tokens written to the cache.
    pub write_tokens: u64,
}

impl Counters {
    /// Add one request.
    pub fn add(&mut self, input: u64, cached: u64, write: u64) {
        self.requests += 1;
        self.input_tokens += input;
        self.cached_tokens += cached;
        self.write_tokens += write;
    }
}

/// Per-machine counters plus the machine's stored block count.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MachineStats {
    /// Machine index.
    pub machine: usize,
    /// Token counters.
    #[serde(flatten)]
    pub counters: Counters,
    /// Blocks currently stored.
    pub stored_blocks: usize,
    /// Requests routed here because their primary machine was over the overflow rate.
    pub overflow_in: u64,
}

/// WebSocket connection and frame counters.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct WsCounters {
    /// Connections upgraded.
    pub connections: u64,
    /// `response.create` frames received.
    pub creates: u64,
    /// Creates with `generate: false`.
    pub prewarms: u64,
    /// Creates with `previous_response_id`.
    pub with_previous_response_id: u64,
    /// Wrapped `error` frames sent.
    pub errors: u64,
}

/// A snapshot of all statistics (`GET /emulator/stats`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatsSnapshot {
    /// `exact` or `fast (estimate: bytes/4 per item, not real token counts)`.
    pub tokenizer: String,
    /// `docs` or `session-header`.
    pub routing: String,
    /// All cache-model requests.
    pub totals: Counters,
    /// Requests that overflowed to a non-primary machine.
    pub overflowed: u64,
    /// By `prompt_cache_key` (`""` = none).
    pub per_key: BTreeMap<String, Counters>,
    /// By transport (`http`, `ws`).
    pub per_transport: BTreeMap<String, Counters>,
    /// WebSocket counters.
    pub ws: WsCounters,
    /// By machine.
    pub per_machine: Vec<MachineStats>,
    /// Responses requests received (including rejected and faulted ones).
    pub responses_requests: u64,
    /// Requests rejected by validation.
    pub rejected: u64,
    /// Requests that got an injected fault.
    pub faulted: u64,
}
