//! Emulator configuration: every knob of the emulator in one plain struct.
//!
//! Invariants: `EmulatorConfig::default()` is the documented default behaviour (see README.md);
//! every field is public so tests and the `codex-bridge demo` can build a config in code.

use std::net::SocketAddr;

use crate::faults::FaultSpec;

/// How a request is routed to one of the cache machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingMode {
    /// Documented model: hash of the first 256 prompt tokens combined with `prompt_cache_key`.
    Docs,
    /// Observed Codex-backend model: the `session-id` header (else `prompt_cache_key`) combined with the
    /// prefix hash.
    SessionHeader,
}

impl std::str::FromStr for RoutingMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "docs" => Ok(Self::Docs),
            "session-header" => Ok(Self::SessionHeader),
            other => Err(format!("unknown routing mode {other:?} (docs|session-header)")),
        }
    }
}

/// Which tokenizer counts prompt tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenizerMode {
    /// o200k_base via tiktoken-rs (exact token counts).
    Exact,
    /// An estimate: one pseudo-token per 4 bytes of canonical JSON per item. For overhead benchmarks only.
    Fast,
}

impl std::str::FromStr for TokenizerMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "exact" => Ok(Self::Exact),
            "fast" => Ok(Self::Fast),
            other => Err(format!("unknown tokenizer {other:?} (exact|fast)")),
        }
    }
}

/// Prompt-cache rules shared by the cache model and the limit calculator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRules {
    /// Prompts shorter than this are never cached, and a hit must cover at least this many tokens (1024).
    pub min_tokens: usize,
    /// Cache granularity in tokens (128).
    pub block_tokens: usize,
    /// A cached block unused for this long is gone (default 5 min, the low end of "5 to 10 minutes").
    pub idle_ttl_ms: u64,
    /// A cached block older than this (since first written) is gone (default 1 h).
    pub max_age_ms: u64,
}

impl Default for CacheRules {
    fn default() -> Self {
        Self { min_tokens: 1024, block_tokens: 128, idle_ttl_ms: 5 * 60 * 1000, max_age_ms: 60 * 60 * 1000 }
    }
}

/// All emulator settings.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to bind (default `127.0.0.1:0`, a free port).
    pub listen: SocketAddr,
    /// Number of cache machines (default 16).
    pub machines: usize,
    /// Routing model (default `Docs`).
    pub routing: RoutingMode,
    /// Tokenizer (default `Exact`).
    pub tokenizer: TokenizerMode,
    /// Block, minimum and TTL rules.
    pub cache: CacheRules,
    /// Requests per minute per prefix+key above which requests overflow to another machine (default 15).
    pub overflow_rpm: usize,
    /// Per-machine capacity in tokens (rounded down to blocks); `None` = unbounded (default 4M tokens).
    pub machine_capacity_tokens: Option<usize>,
    /// Report `cache_write_tokens` in usage (GPT-5.6+ behaviour; default true). When false the field is
    /// omitted.
    pub report_cache_writes: bool,
    /// Start the clock in virtual mode at this unix time in ms (default: real time).
    pub virtual_clock_ms: Option<u64>,
    /// Faults applied to every Responses request (in order; the first active one wins).
    pub faults: Vec<FaultSpec>,
    /// Assistant reply text (default `pong`).
    pub reply_text: String,
    /// Bearer tokens always accepted in ChatGPT flavour, besides tokens issued by `/oauth/token`.
    pub accepted_tokens: Vec<String>,
    /// Accept any non-empty bearer token in ChatGPT flavour (default false).
    pub accept_any_token: bool,
    /// Lifetime of issued access tokens in seconds (default 3600).
    pub access_token_ttl_secs: u64,
    /// ChatGPT account id put into issued tokens.
    pub account_id: String,
    /// Plan type put into issued tokens and `usage_limit_reached` errors (default `plus`).
    pub plan_type: String,
    /// Maximum number of entries in the request log (default 1000; oldest dropped first).
    pub log_capacity: usize,
    /// Body parameters the ChatGPT flavour rejects with `{"detail":"Unsupported parameter: X"}`.
    pub rejected_params: Vec<String>,
    /// Probability that an HTTP request (or a WebSocket handshake) reaches the machine its routing mode
    /// chooses; otherwise the front door picks a machine (seeded, deterministic). Default 1.0 (always the
    /// routing mode's machine, the behaviour before transport-aware routing).
    pub http_affinity: f64,
    /// Seed of the front door's picks and of the turn-state tokens (default 0).
    pub routing_seed: u64,
    /// Plan budget in tokens per 5-hour window (`None` = unlimited).
    pub budget_5h_tokens: Option<u64>,
    /// Plan budget in tokens per weekly window (`None` = unlimited).
    pub budget_weekly_tokens: Option<u64>,
    /// Largest WebSocket message the emulator reads; a bigger one gets close code 1009 (default 64 MiB,
    /// the HTTP body limit).
    pub ws_max_message_bytes: usize,
    /// Age (emulator clock) after which a WebSocket connection answers `websocket_connection_limit_reached`
    /// (default 60 minutes).
    pub ws_max_age_ms: u64,
}

/// The calibrated `--http-affinity` (README, "Transport-aware routing"): the least-squares fit of the
/// expected follow-up cached shares to icoretech/codex-pooler #171's HTTP numbers (14% / 27% / 41%) with 16
/// machines.
pub const CALIBRATED_HTTP_AFFINITY: f64 = 0.37;

/// The parameters rejected in ChatGPT flavour by default (see README, "Validation").
pub const DEFAULT_REJECTED_PARAMS: &[&str] = &[
    "max_output_tokens",
    "max_completion_tokens",
    "prompt_cache_retention",
    "prompt_cache_options",
    "temperature",
    "top_p",
];

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            machines: 16,
            routing: RoutingMode::Docs,
            tokenizer: TokenizerMode::Exact,
            cache: CacheRules::default(),
            overflow_rpm: 15,
            machine_capacity_tokens: Some(4 * 1024 * 1024),
            report_cache_writes: true,
            virtual_clock_ms: None,
            faults: Vec::new(),
            reply_text: "pong".to_owned(),
            accepted_tokens: Vec::new(),
            accept_any_token: false,
            access_token_ttl_secs: 3600,
            account_id: "11111111-2222-3333-4444-555555555555".to_owned(),
            plan_type: "plus".to_owned(),
            log_capacity: 1000,
            rejected_params: DEFAULT_REJECTED_PARAMS.iter().map(|s| (*s).to_owned()).collect(),
            http_affinity: 1.0,
            routing_seed: 0,
            budget_5h_tokens: None,
            budget_weekly_tokens: None,
            ws_max_message_bytes: crate::MAX_BODY_BYTES,
            ws_max_age_ms: 60 * 60 * 1000,
        }
    }
}
