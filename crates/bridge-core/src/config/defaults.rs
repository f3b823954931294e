//! Every default of the top-level, `[server]`, `[upstream]` and `[websocket]` settings, in one place: [`Config::resolve`]
//! reads them from here, and [`documented`] is the table the README's configuration tables are tested
//! against (`config/tests.rs`), so the documentation cannot drift from the code. The `[cache]`,
//! `[upstream.codex]`, `[chatgpt]` and `[journal]` sections keep their defaults next to their types
//! (`config::cache`, `config::codex`, `bridge_journal::JournalOptions`).
//!
//! [`Config::resolve`]: super::Config::resolve

use std::time::Duration;

/// `listen`.
pub const LISTEN: &str = "127.0.0.1:8787";
/// `[upstream] url` with `--upstream-auth api-key` or `passthrough`.
pub const UPSTREAM: &str = "https://api.openai.com/v1";
/// `[upstream] api_key_env`.
pub const API_KEY_ENV: &str = "OPENAI_API_KEY";
/// `body_limit_bytes`, 32 MiB: a 400k-token conversation is about 1.6 MB of text; tool outputs and images
/// add more.
pub const BODY_LIMIT_BYTES: usize = 32 * 1024 * 1024;
/// `store_timeout_ms`: the longest a store call on the request path may take.
pub const STORE_TIMEOUT: Duration = Duration::from_millis(250);
/// `shutdown_grace_ms`.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// `[upstream] idle_timeout_ms`: the longest wait for the next upstream bytes (no total timeout on streams).
pub const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// `[upstream] connect_timeout_ms`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// `[upstream] max_retries`.
pub const MAX_RETRIES: u32 = 2;
/// `[upstream] retry_budget_ms`: all retries of one request together.
pub const RETRY_BUDGET: Duration = Duration::from_secs(15);
/// `[upstream] max_retry_after_ms`: a 429 is retried only when its `Retry-After` is at most this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// `[upstream] force_stream`.
pub const FORCE_STREAM: bool = true;

/// `[server] max_connections` (lowered to fit the open-file limit at startup).
pub const MAX_CONNECTIONS: usize = 1024;
/// `[server] header_read_timeout_ms`.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `[server] idle_timeout_ms`.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `[server] body_read_timeout_ms`.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// `[server] body_min_bytes_per_sec`.
pub const BODY_MIN_BYTES_PER_SEC: u64 = 64 * 1024;
/// `[server] client_stall_timeout_ms`.
pub const CLIENT_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// `[server] max_inflight_body_bytes`, 256 MiB.
pub const MAX_INFLIGHT_BODY_BYTES: usize = 256 * 1024 * 1024;

/// `[chat] reasoning_replay`.
pub const CHAT_REASONING_REPLAY: bool = true;
/// `[chat] replay_max_bytes`, 64 MiB of kept reasoning items (encrypted reasoning is a few KB per turn).
pub const CHAT_REPLAY_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// `[websocket] ingress`: WebSocket upgrades on the Responses routes are accepted.
pub const WS_INGRESS: bool = true;
/// `[websocket] idle_timeout_ms`: Codex's own stream idle timeout is 300 s; a socket idle between turns
/// longer than this is closed (the client reconnects and sends its next request in full).
pub const WS_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// `[websocket] max_sockets`: client sockets open at once.
pub const WS_MAX_SOCKETS: usize = 256;

/// The defaults as the README's tables show them: (`[section] key` or top-level key, value).
pub fn documented() -> Vec<(&'static str, String)> {
    let ms = |d: Duration| d.as_millis().to_string();
    vec![
        ("[server] max_connections", MAX_CONNECTIONS.to_string()),
        ("[server] idle_timeout_ms", ms(IDLE_TIMEOUT)),
        ("[server] header_read_timeout_ms", ms(HEADER_READ_TIMEOUT)),
        ("[server] body_read_timeout_ms", ms(BODY_READ_TIMEOUT)),
        ("[server] body_min_bytes_per_sec", BODY_MIN_BYTES_PER_SEC.to_string()),
        ("[server] client_stall_timeout_ms", ms(CLIENT_STALL_TIMEOUT)),
        ("[server] max_inflight_body_bytes", MAX_INFLIGHT_BODY_BYTES.to_string()),
        ("[upstream] retry_budget_ms", ms(RETRY_BUDGET)),
        ("[websocket] ingress", WS_INGRESS.to_string()),
        ("[websocket] idle_timeout_ms", ms(WS_IDLE_TIMEOUT)),
        ("[websocket] max_sockets", WS_MAX_SOCKETS.to_string()),
        ("listen", LISTEN.to_owned()),
        ("[upstream] url", UPSTREAM.to_owned()),
        ("[chat] reasoning_replay", CHAT_REASONING_REPLAY.to_string()),
        ("[chat] replay_max_bytes", CHAT_REPLAY_MAX_BYTES.to_string()),
    ]
}
