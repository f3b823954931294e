//! Shared emulator state: config, clock, tokenizer, cache model, request log, faults, OAuth, releases.
//!
//! Invariants: one `EmulatorState` per emulator instance, shared by every handler through an `Arc`;
//! each mutable part has its own lock and no lock is held across an `.await`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::clock::Clock;
use crate::config::{EmulatorConfig, RoutingMode, TokenizerMode};
use crate::faults::{FaultCounters, FaultSpec};
use crate::limit::{LimitReport, limit_for_tokens, trace_from_log};
use crate::log::{LoggedRequest, RequestLog};
use crate::model::CacheModel;
use crate::oauth::OAuth;
use crate::quota::Quota;
use crate::releases::Releases;
use crate::stats::{StatsSnapshot, WsCounters};
use crate::tokenizer::Tokenizer;

/// Everything the emulator knows.
#[derive(Debug)]
pub struct EmulatorState {
    /// The configuration it was started with.
    pub config: EmulatorConfig,
    /// Real or virtual time.
    pub clock: Clock,
    /// Prompt tokenizer.
    pub tokenizer: Tokenizer,
    /// Machines, routing and cache counters.
    pub model: Mutex<CacheModel>,
    /// Request log.
    pub log: RequestLog,
    /// Per-spec fault counters.
    pub fault_counters: FaultCounters,
    /// Active faults (initially `config.faults`; replaced by `POST /emulator/faults`, cleared by reset).
    pub faults: Mutex<Vec<FaultSpec>>,
    /// OAuth server.
    pub oauth: OAuth,
    /// Release and instruction-file server.
    pub releases: Releases,
    /// Plan quota (5-hour and weekly token budgets).
    pub quota: Quota,
    pub(crate) ws: WsStats,
    pub(crate) responses_requests: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) faulted: AtomicU64,
    pub(crate) serial: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl EmulatorState {
    /// Build the state (loads the tokenizer; errors if o200k_base cannot be built).
    pub fn new(config: EmulatorConfig) -> Result<Self, String> {
        Ok(Self {
            clock: Clock::new(config.virtual_clock_ms),
            tokenizer: Tokenizer::new(config.tokenizer)?,
            model: Mutex::new(CacheModel::new(&config)),
            log: RequestLog::new(config.log_capacity),
            fault_counters: FaultCounters::default(),
            faults: Mutex::new(config.faults.clone()),
            oauth: OAuth::new(&config.account_id, &config.plan_type, config.access_token_ttl_secs),
            releases: Releases::default(),
            quota: Quota::new(&config.plan_type, config.budget_5h_tokens, config.budget_weekly_tokens),
            ws: WsStats::default(),
            responses_requests: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            faulted: AtomicU64::new(0),
            serial: AtomicU64::new(0),
            config,
        })
    }

    /// Lock the cache model.
    pub fn model(&self) -> MutexGuard<'_, CacheModel> {
        lock(&self.model)
    }

    /// The active fault list.
    pub fn faults(&self) -> Vec<FaultSpec> {
        lock(&self.faults).clone()
    }

    /// Replace the active fault list (counters restart).
    pub fn set_faults(&self, faults: Vec<FaultSpec>) {
        *lock(&self.faults) = faults;
        self.fault_counters.reset();
    }

    /// A statistics snapshot.
    pub fn stats(&self) -> StatsSnapshot {
        let mut snap = StatsSnapshot {
            tokenizer: match self.config.tokenizer {
                TokenizerMode::Exact => "exact (o200k_base)".to_owned(),
                TokenizerMode::Fast => "fast (estimate: bytes/4 per item, not real token counts)".to_owned(),
            },
            routing: match self.config.routing {
                RoutingMode::Docs => "docs".to_owned(),
                RoutingMode::SessionHeader => "session-header".to_owned(),
            },
            responses_requests: self.responses_requests.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            faulted: self.faulted.load(Ordering::Relaxed),
            ws: self.ws.snapshot(),
            ..StatsSnapshot::default()
        };
        self.model().fill_snapshot(&mut snap);
        snap
    }

    /// The request log.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.log.entries()
    }

    /// The limit over the served requests in the request log.
    pub fn limit(&self) -> LimitReport {
        let trace = trace_from_log(&self.log.entries(), &self.tokenizer);
        limit_for_tokens(&trace, &self.config.cache)
    }

    /// Clear caches, log, stats, quota usage and faults (active list and counters). Issued OAuth tokens and published
    /// releases survive (a running client may hold them); reset those with their own `reset`.
    pub fn reset(&self) {
        self.model().reset();
        self.log.clear();
        self.set_faults(Vec::new());
        self.quota.reset();
        for c in [&self.responses_requests, &self.rejected, &self.faulted] {
            c.store(0, Ordering::Relaxed);
        }
        self.ws.reset();
    }

    pub(crate) fn next_serial(&self) -> u64 {
        self.serial.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// WebSocket counters (connections are numbered from 1 for the life of the emulator; reset clears the
/// counts, not the numbering).
#[derive(Debug, Default)]
pub(crate) struct WsStats {
    pub(crate) next_connection: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) creates: AtomicU64,
    pub(crate) prewarms: AtomicU64,
    pub(crate) with_previous: AtomicU64,
    pub(crate) errors: AtomicU64,
}

impl WsStats {
    fn counters(&self) -> [&AtomicU64; 5] {
        [&self.connections, &self.creates, &self.prewarms, &self.with_previous, &self.errors]
    }

    fn snapshot(&self) -> WsCounters {
        let [connections, creates, prewarms, with_previous, errors] =
            self.counters().map(|c| c.load(Ordering::Relaxed));
        WsCounters { connections, creates, prewarms, with_previous_response_id: with_previous, errors }
    }

    fn reset(&self) {
        for c in self.counters() {
            c.store(0, Ordering::Relaxed);
        }
    }
}
