//! codex-emulator: a faithful stand-in for OpenAI's Codex backend, used by every test and benchmark of
//! codex-bridge (no test may reach OpenAI).
//!
//! It serves the Responses endpoints in API and ChatGPT flavour (SSE with the real event names and a
//! deterministic reply), models prompt caching (o200k_base tokens, N machines, routing, 1024-token
//! minimum, 128-token blocks, overflow, TTL, LRU, virtual clock), injects faults, emulates OAuth and a
//! GitHub-release source of instruction files, and exposes stats, a request log and a limit calculator.
//! The Responses endpoints also speak WebSocket (`ws`), routing is transport-aware (`--http-affinity`,
//! connections pinned at the handshake, turn state) and a plan quota is reported and enforced (`quota`).
//! See README.md for every rule and its source. Invariant: the library never panics on client input.

pub mod admin;
pub mod cache;
pub mod canonical;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod errors;
pub mod faults;
pub mod limit;
pub mod log;
pub mod model;
pub mod oauth;
pub mod quota;
pub mod releases;
pub mod reply;
pub mod responses;
pub mod sse;
pub mod state;
pub mod stats;
pub mod tokenizer;
pub mod turnstate;
pub mod validation;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

pub use clock::Clock;
pub use config::{CacheRules, EmulatorConfig, RoutingMode, TokenizerMode};
pub use faults::FaultSpec;
pub use limit::{LimitReport, TraceRequest, limit_for_tokens, parse_trace};
pub use log::LoggedRequest;
pub use state::EmulatorState;
pub use stats::StatsSnapshot;

/// The HTTP router over a shared state.
pub fn router(state: Arc<EmulatorState>) -> Router {
    Router::new()
        .route("/v1/responses", post(responses::api).get(ws::api))
        .route("/backend-api/codex/responses", post(responses::chatgpt).get(ws::chatgpt))
        .route("/backend-api/wham/usage", get(admin::wham_usage))
        .route("/api/codex/usage", get(admin::wham_usage))
        .route("/oauth/authorize", get(admin::authorize))
        .route("/oauth/token", post(admin::token))
        .route("/repos/openai/codex/releases/latest", get(admin::latest_release))
        .route("/openai/codex/{tag}/codex-rs/core/{*file}", get(admin::raw_file))
        .route("/emulator/stats", get(admin::stats))
        .route("/emulator/requests", get(admin::requests))
        .route("/emulator/reset", post(admin::reset))
        .route("/emulator/limit", get(admin::limit))
        .route("/emulator/faults", get(admin::get_faults).post(admin::set_faults))
        .route("/emulator/clock", post(admin::clock))
        .route("/emulator/oauth", get(admin::oauth_counters))
        .route("/emulator/oauth/revoke", post(admin::revoke))
        .route("/emulator/releases", post(admin::publish))
        .fallback(admin::fallback)
        // Large prompts (tens of MB) must reach the validation and the model, not axum's 2 MB default.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Largest request body the emulator reads (the bridge's default limit is 32 MiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// A running emulator (from [`spawn`]).
#[derive(Debug)]
pub struct RunningEmulator {
    addr: SocketAddr,
    state: Arc<EmulatorState>,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningEmulator {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state (stats, log, clock, cache model, OAuth, releases).
    pub fn state(&self) -> &Arc<EmulatorState> {
        &self.state
    }

    /// Stop accepting connections and wait up to 2 s for open requests; then drop what is left.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(());
        if tokio::time::timeout(std::time::Duration::from_secs(2), &mut self.task).await.is_err() {
            self.task.abort();
            let _ = self.task.await;
        }
    }
}

/// Bind `config.listen` and serve in the background. The socket accepts connections when this returns.
pub async fn spawn(config: EmulatorConfig) -> std::io::Result<RunningEmulator> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    spawn_on(listener, config).await
}

/// Serve on an already bound listener.
pub async fn spawn_on(listener: tokio::net::TcpListener, config: EmulatorConfig) -> std::io::Result<RunningEmulator> {
    let addr = listener.local_addr()?;
    let state = tokio::task::spawn_blocking(move || EmulatorState::new(config))
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
    let state = Arc::new(state);
    let app = router(Arc::clone(&state));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        // Like the real backend's HTTP stack, send small SSE writes at once (no Nagle delay).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "emulator server stopped");
        }
    });
    Ok(RunningEmulator { addr, state, shutdown: tx, task })
}
