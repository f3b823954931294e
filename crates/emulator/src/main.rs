//! `codex-emulator` binary: serve the emulator (`listening on http://HOST:PORT` on stdout once the socket
//! accepts connections; stops on SIGINT/SIGTERM) or compute the cache limit of a trace
//! (`codex-emulator limit TRACE.jsonl`).

use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use codex_emulator::{CacheRules, EmulatorConfig, FaultSpec, RoutingMode, TokenizerMode};

#[derive(Debug, Parser)]
#[command(name = "codex-emulator", version, about = "Faithful Codex backend emulator")]
struct Cli {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Number of cache machines.
    #[arg(long, default_value_t = 16)]
    machines: usize,
    /// Routing model: docs | session-header.
    #[arg(long, default_value = "docs")]
    routing: RoutingMode,
    /// Tokenizer: exact (o200k_base) | fast (estimate, bytes/4).
    #[arg(long, default_value = "exact")]
    tokenizer: TokenizerMode,
    /// Fault spec applied to Responses requests (repeatable), e.g. `status=429;retry_after=2;times=1`.
    #[arg(long = "fault")]
    faults: Vec<FaultSpec>,
    /// Idle TTL of cached prefixes, seconds.
    #[arg(long, default_value_t = 300)]
    ttl_secs: u64,
    /// Maximum age of cached prefixes, seconds.
    #[arg(long, default_value_t = 3600)]
    max_age_secs: u64,
    /// Minimum cacheable prompt, tokens.
    #[arg(long, default_value_t = 1024)]
    min_tokens: usize,
    /// Cache block size, tokens.
    #[arg(long, default_value_t = 128)]
    block_tokens: usize,
    /// Requests per minute per prefix+key before overflow.
    #[arg(long, default_value_t = 15)]
    overflow_rpm: usize,
    /// Per-machine capacity in tokens (0 = unbounded).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    capacity_tokens: usize,
    /// Omit `cache_write_tokens` from usage (models before GPT-5.6).
    #[arg(long)]
    no_cache_writes: bool,
    /// Start with a virtual clock at this unix time in ms.
    #[arg(long)]
    virtual_clock: Option<u64>,
    /// Assistant reply text.
    #[arg(long, default_value = "pong")]
    reply_text: String,
    /// Bearer token always accepted in ChatGPT flavour (repeatable).
    #[arg(long = "accept-token")]
    accept_tokens: Vec<String>,
    /// Accept any non-empty bearer token in ChatGPT flavour.
    #[arg(long)]
    accept_any_token: bool,
    /// Lifetime of issued access tokens, seconds.
    #[arg(long, default_value_t = 3600)]
    access_token_ttl_secs: u64,
    /// Request-log capacity.
    #[arg(long, default_value_t = 1000)]
    log_capacity: usize,
    /// Probability that an HTTP request (or a WebSocket handshake) reaches its routing mode's machine;
    /// otherwise the front door picks one. 1.0 = always (default); 0.37 = calibrated (README).
    #[arg(long, default_value_t = 1.0)]
    http_affinity: f64,
    /// Seed of the front door's picks and of turn-state tokens.
    #[arg(long, default_value_t = 0)]
    routing_seed: u64,
    /// Plan budget, tokens per 5-hour window (default unlimited).
    #[arg(long)]
    budget_5h_tokens: Option<u64>,
    /// Plan budget, tokens per weekly window (default unlimited).
    #[arg(long)]
    budget_weekly_tokens: Option<u64>,
    /// Largest WebSocket message read; bigger ones get close 1009.
    #[arg(long, default_value_t = codex_emulator::MAX_BODY_BYTES)]
    ws_max_message_bytes: usize,
    /// WebSocket connection age limit in seconds (emulator clock).
    #[arg(long, default_value_t = 3600)]
    ws_max_age_secs: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the cache limit (JSON) of a JSONL trace.
    Limit {
        /// Trace file: one `{"ts_ms", "headers", "body"}` object per line.
        trace: std::path::PathBuf,
    },
}

impl Cli {
    fn config(&self) -> EmulatorConfig {
        EmulatorConfig {
            listen: self.listen,
            machines: self.machines.max(1),
            routing: self.routing,
            tokenizer: self.tokenizer,
            cache: CacheRules {
                min_tokens: self.min_tokens,
                block_tokens: self.block_tokens.max(1),
                idle_ttl_ms: self.ttl_secs.saturating_mul(1000),
                max_age_ms: self.max_age_secs.saturating_mul(1000),
            },
            overflow_rpm: self.overflow_rpm,
            machine_capacity_tokens: (self.capacity_tokens > 0).then_some(self.capacity_tokens),
            report_cache_writes: !self.no_cache_writes,
            virtual_clock_ms: self.virtual_clock,
            faults: self.faults.clone(),
            reply_text: self.reply_text.clone(),
            accepted_tokens: self.accept_tokens.clone(),
            accept_any_token: self.accept_any_token,
            access_token_ttl_secs: self.access_token_ttl_secs,
            log_capacity: self.log_capacity,
            http_affinity: self.http_affinity.clamp(0.0, 1.0),
            routing_seed: self.routing_seed,
            budget_5h_tokens: self.budget_5h_tokens,
            budget_weekly_tokens: self.budget_weekly_tokens,
            ws_max_message_bytes: self.ws_max_message_bytes,
            ws_max_age_ms: self.ws_max_age_secs.saturating_mul(1000),
            ..EmulatorConfig::default()
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let config = cli.config();
    if let Some(Command::Limit { trace }) = &cli.command {
        let text = std::fs::read_to_string(trace).with_context(|| format!("reading {}", trace.display()))?;
        let tokenizer = codex_emulator::tokenizer::Tokenizer::new(config.tokenizer).map_err(anyhow::Error::msg)?;
        let requests = codex_emulator::parse_trace(&text, &tokenizer).map_err(anyhow::Error::msg)?;
        let report = codex_emulator::limit_for_tokens(&requests, &config.cache);
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let running = codex_emulator::spawn(config).await.context("starting the emulator")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {}", running.base_url())?;
    out.flush()?;
    drop(out);
    wait_for_signal().await;
    running.shutdown().await;
    Ok(())
}
