//! Configuration: defaults, then the TOML file, then environment and command line ([`Settings`]).
//!
//! The raw file struct denies unknown fields so a typo is an error, not a silent default. [`Config`] is the
//! validated result; it holds the upstream API key, whose `Debug` output is redacted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub mod cache;
pub mod chat;
pub mod codex;
pub mod defaults;

/// Default bound on one request-path store call (`store_timeout_ms`).
pub const DEFAULT_STORE_TIMEOUT: Duration = defaults::STORE_TIMEOUT;

/// How the bridge authenticates to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpstreamAuth {
    /// The bridge sends its own API key (`OPENAI_API_KEY` or `upstream.api_key_env`).
    ApiKey,
    /// The client's `Authorization` header is forwarded unchanged.
    Passthrough,
    /// ChatGPT OAuth tokens from `codex-bridge login` (refreshed ahead of expiry).
    Chatgpt,
}

impl std::str::FromStr for UpstreamAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "api-key" => Ok(Self::ApiKey),
            "passthrough" => Ok(Self::Passthrough),
            "chatgpt" => Ok(Self::Chatgpt),
            other => Err(format!("unknown upstream auth {other:?}: expected api-key, passthrough or chatgpt")),
        }
    }
}

/// A secret string whose `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: String) -> Self {
        Self(value)
    }
    /// The secret itself; call only where it is sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// Values from the command line and environment; `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub upstream_auth: Option<UpstreamAuth>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    /// Comma-separated bridge access tokens (from `CODEX_BRIDGE_ACCESS_TOKENS`).
    pub access_tokens: Option<String>,
    /// The value of the environment variable named by `upstream.api_key_env` (looked up by the caller).
    pub env_api_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    store: Option<String>,
    store_timeout_ms: Option<u64>,
    access_tokens: Option<Vec<String>>,
    body_limit_bytes: Option<usize>,
    models: Option<Vec<String>>,
    shutdown_grace_ms: Option<u64>,
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    upstream: FileUpstream,
    #[serde(default)]
    cache: crate::config::cache::FileCache,
    #[serde(default)]
    chat: crate::config::chat::FileChat,
    chatgpt: Option<crate::config::codex::FileChatgpt>,
    #[serde(default)]
    history: FileHistory,
    #[serde(default)]
    journal: FileJournal,
    #[serde(default)]
    websocket: FileWebsocket,
}

/// `[websocket]`: the client-facing WebSocket ingress (`GET /v1/responses` with `Upgrade: websocket`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWebsocket {
    ingress: Option<bool>,
    idle_timeout_ms: Option<u64>,
    max_sockets: Option<usize>,
}

/// Validated `[websocket]` settings.
#[derive(Debug, Clone)]
pub struct WebsocketConfig {
    /// Whether WebSocket upgrades are accepted; when false they get 426 (clients fall back to HTTP).
    pub ingress: bool,
    /// A client socket with no response in flight and no frame for this long is closed (1000).
    pub idle_timeout: Duration,
    /// Client sockets open at once; an upgrade beyond it gets 426, so the client uses HTTP.
    pub max_sockets: usize,
}

impl Default for WebsocketConfig {
    fn default() -> Self {
        Self {
            ingress: defaults::WS_INGRESS,
            idle_timeout: defaults::WS_IDLE_TIMEOUT,
            max_sockets: defaults::WS_MAX_SOCKETS,
        }
    }
}

fn websocket_config(file: &FileWebsocket) -> Result<WebsocketConfig, ConfigError> {
    let d = WebsocketConfig::default();
    let config = WebsocketConfig {
        ingress: file.ingress.unwrap_or(d.ingress),
        idle_timeout: file.idle_timeout_ms.map_or(d.idle_timeout, Duration::from_millis),
        max_sockets: file.max_sockets.unwrap_or(d.max_sockets),
    };
    for (key, value) in [
        ("websocket.idle_timeout_ms", config.idle_timeout.as_millis() as u64),
        ("websocket.max_sockets", config.max_sockets as u64),
    ] {
        if value == 0 {
            return Err(ConfigError::Invalid { key, reason: "must be greater than 0".into() });
        }
    }
    Ok(config)
}

/// `[history]`: the `history.jsonl` cap (Codex's `history.max_bytes`); absent: 10 MiB
/// (`bridge_journal::history::DEFAULT_MAX_BYTES`), 0: no cap.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileHistory {
    max_bytes: Option<u64>,
}

/// `[journal]`: session persistence and project memory (bridge-journal).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJournal {
    enabled: Option<bool>,
    drift_note: Option<bool>,
    git_timeout_ms: Option<u64>,
    git_cache_ms: Option<u64>,
    /// Directories git may run under (default: the home directory; `[]`: never).
    project_roots: Option<Vec<PathBuf>>,
}

/// `[server]`: what one client connection or request may hold, and for how long.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    max_connections: Option<usize>,
    header_read_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    body_read_timeout_ms: Option<u64>,
    body_min_bytes_per_sec: Option<u64>,
    client_stall_timeout_ms: Option<u64>,
    max_inflight_body_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUpstream {
    url: Option<String>,
    auth: Option<UpstreamAuth>,
    api_key_env: Option<String>,
    connect_timeout_ms: Option<u64>,
    response_head_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_retries: Option<u32>,
    retry_budget_ms: Option<u64>,
    max_retry_after_ms: Option<u64>,
    force_stream: Option<bool>,
    codex: Option<crate::config::codex::FileCodex>,
}

/// Validated upstream settings.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Base URL without trailing slash; the bridge appends `/responses` and `/models`.
    pub url: String,
    pub auth: UpstreamAuth,
    pub api_key: Option<Secret>,
    pub connect_timeout: Duration,
    /// Longest wait for the response head of one attempt (504 `upstream_timeout` after it).
    pub response_head_timeout: Duration,
    /// Longest wait for the next bytes of a response before giving up (504 before the first byte, an SSE
    /// `error` event after it). There is no total timeout on streams.
    pub idle_timeout: Duration,
    /// Retries before the first byte (connect errors, 429 with `Retry-After`, 5xx).
    pub max_retries: u32,
    /// Total time the retries of one request may take (waits and attempts after the first); no retry starts
    /// past it, and a retried attempt is cut when it runs out.
    pub retry_budget: Duration,
    /// A `Retry-After` longer than this is not waited for; the 429 goes to the client.
    pub max_retry_after: Duration,
    /// Always ask the upstream for a stream and aggregate for `stream:false` clients (the Codex backend
    /// only streams).
    pub force_stream: bool,
    /// Codex-backend request shaping (on by default for the ChatGPT upstream).
    pub codex: Option<crate::config::codex::CodexShaping>,
}

impl UpstreamConfig {
    /// The base URL as it may be shown (logs, errors): no userinfo, no secret-looking query values.
    pub fn shown_url(&self) -> String {
        redact_url(&self.url)
    }
}

/// A URL fit to show: `user:password@` becomes `***@`, and the value of any query parameter whose name
/// looks like a credential (`key`, `api_key`, `token`, `secret`, `password`, `sig`, `auth`, ...) becomes `***`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("***@{}", &authority[at + 1..]),
        None => authority.to_owned(),
    };
    let (path, fragment) = tail.split_once('#').map_or((tail, None), |(p, f)| (p, Some(f)));
    let tail = match path.split_once('?') {
        Some((path, query)) => {
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if looks_secret(name) => format!("{name}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", pairs.join("&"))
        }
        None => path.to_owned(),
    };
    let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
    if scheme.is_empty() {
        format!("{authority}{tail}{fragment}")
    } else {
        format!("{scheme}://{authority}{tail}{fragment}")
    }
}

fn looks_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["key", "token", "secret", "password", "passwd", "pwd", "sig", "auth", "credential"]
        .iter()
        .any(|w| name.contains(w))
}

/// Validated `[server]` limits: every connection and request is bounded in time and memory.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Open client connections at most (lowered to fit the open-file limit at startup). At the cap, the
    /// connection idle the longest is closed for a new one; with none idle, the new one gets a 503.
    pub max_connections: usize,
    /// A request's headers must be complete this long after its first byte.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight is closed after this long (keep-alive idle, or never used).
    pub idle_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub body_read_timeout: Duration,
    /// Slowest average rate a body may arrive at, beyond the first `body_read_timeout`.
    pub body_min_bytes_per_sec: u64,
    /// Longest a streaming client may leave the bridge's events unread before its connection is cut.
    pub client_stall_timeout: Duration,
    /// Request bodies held at once (reading, streaming, bookkeeping); past it new requests get a 503.
    pub max_inflight_body_bytes: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: defaults::MAX_CONNECTIONS,
            header_read_timeout: defaults::HEADER_READ_TIMEOUT,
            idle_timeout: defaults::IDLE_TIMEOUT,
            body_read_timeout: defaults::BODY_READ_TIMEOUT,
            body_min_bytes_per_sec: defaults::BODY_MIN_BYTES_PER_SEC,
            client_stall_timeout: defaults::CLIENT_STALL_TIMEOUT,
            max_inflight_body_bytes: defaults::MAX_INFLIGHT_BODY_BYTES,
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Store URL (`sqlite://`, `redis://`, `memory://`); `None` is SQLite in the data directory.
    pub store: Option<String>,
    /// Bound on one store call on the request path (`store_timeout_ms`, see `store_guard`).
    pub store_timeout: Duration,
    pub access_tokens: Vec<Secret>,
    pub body_limit_bytes: usize,
    /// Models listed at `/v1/models`; empty means "ask the upstream".
    pub models: Vec<String>,
    /// Longest wait for in-flight streams at shutdown.
    pub shutdown_grace: Duration,
    /// Connection and request limits (`[server]`).
    pub server: ServerLimits,
    pub upstream: UpstreamConfig,
    /// The `[cache]` section: cache identity and session tracker.
    pub cache: crate::config::cache::CacheConfig,
    /// The `[chat]` section: the Chat Completions ingress.
    pub chat: crate::config::chat::ChatConfig,
    /// ChatGPT login endpoints, credential file and instruction sources.
    pub chatgpt: crate::config::codex::ChatgptSettings,
    /// Rollouts, history, project state and git drift (`[journal]`, `[history]`).
    pub journal: bridge_journal::JournalOptions,
    /// The WebSocket ingress (`[websocket]`).
    pub websocket: WebsocketConfig,
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid listen address {0:?}: expected HOST:PORT such as 127.0.0.1:8787")]
    Listen(String),
    #[error("invalid upstream URL {0:?}: expected an http:// or https:// base URL such as https://api.openai.com/v1")]
    UpstreamUrl(String),
    #[error(
        "refusing to listen on {0}, which is not a loopback address, without access tokens: set access_tokens in the config file or CODEX_BRIDGE_ACCESS_TOKENS"
    )]
    OpenWithoutTokens(SocketAddr),
    #[error("--upstream-auth api-key needs an API key: set {0} in the environment")]
    MissingApiKey(String),
    #[error("access token #{0} is empty or only whitespace: every bridge access token must be a real secret")]
    EmptyAccessToken(usize),
    #[error("invalid setting {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// Default `body_limit_bytes` ([`defaults::BODY_LIMIT_BYTES`]).
pub const DEFAULT_BODY_LIMIT: usize = defaults::BODY_LIMIT_BYTES;
/// Default listen address ([`defaults::LISTEN`]).
pub const DEFAULT_LISTEN: &str = defaults::LISTEN;
/// Default upstream base URL ([`defaults::UPSTREAM`]).
pub const DEFAULT_UPSTREAM: &str = defaults::UPSTREAM;

impl Config {
    /// The environment variable holding the upstream API key, from the file (default `OPENAI_API_KEY`).
    pub fn api_key_env(file_text: Option<&str>) -> String {
        file_text
            .and_then(|t| toml::from_str::<FileConfig>(t).ok())
            .and_then(|f| f.upstream.api_key_env)
            .unwrap_or_else(|| defaults::API_KEY_ENV.to_owned())
    }

    /// Reads the file (if any) and merges it under `settings`.
    pub fn load(settings: Settings, file: Option<&Path>, default_data_dir: PathBuf) -> Result<Self, ConfigError> {
        let text = match file {
            Some(path) => Some(
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?,
            ),
            None => None,
        };
        Self::resolve(settings, text.as_deref(), file.unwrap_or(Path::new("<none>")), default_data_dir)
    }

    /// Merges defaults, the file text and `settings` (highest precedence) and validates the result.
    pub fn resolve(
        settings: Settings,
        file_text: Option<&str>,
        file_name: &Path,
        default_data_dir: PathBuf,
    ) -> Result<Self, ConfigError> {
        let file: FileConfig = match file_text {
            Some(t) => toml::from_str(t)
                .map_err(|e| ConfigError::Parse { path: file_name.to_owned(), message: e.to_string() })?,
            None => FileConfig::default(),
        };
        let listen_text = settings.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen: SocketAddr = listen_text.parse().map_err(|_| ConfigError::Listen(listen_text.clone()))?;
        let auth = settings.upstream_auth.or(file.upstream.auth).unwrap_or(UpstreamAuth::ApiKey);
        let default_url =
            if auth == UpstreamAuth::Chatgpt { crate::config::codex::CHATGPT_UPSTREAM } else { DEFAULT_UPSTREAM };
        let url = settings.upstream.or(file.upstream.url).unwrap_or_else(|| default_url.to_owned());
        let url = url.trim_end_matches('/').to_owned();
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() <= "https://".len() {
            return Err(ConfigError::UpstreamUrl(redact_url(&url)));
        }
        let api_key_env = file.upstream.api_key_env.unwrap_or_else(|| defaults::API_KEY_ENV.to_owned());
        let api_key = settings.env_api_key.filter(|k| !k.trim().is_empty()).map(Secret::new);
        match auth {
            UpstreamAuth::ApiKey if api_key.is_none() => return Err(ConfigError::MissingApiKey(api_key_env)),
            _ => {}
        }
        // An empty list in the environment means "no tokens"; an empty item inside a list is a mistake.
        let tokens: Vec<String> = match settings.access_tokens.filter(|l| !l.trim().is_empty()) {
            Some(list) => list.split(',').map(|t| t.trim().to_owned()).collect(),
            None => file.access_tokens.unwrap_or_default(),
        };
        if let Some(i) = tokens.iter().position(|t| t.trim().is_empty()) {
            return Err(ConfigError::EmptyAccessToken(i + 1));
        }
        let access_tokens: Vec<Secret> = tokens.into_iter().map(Secret::new).collect();
        if access_tokens.is_empty() && !listen.ip().is_loopback() {
            return Err(ConfigError::OpenWithoutTokens(listen));
        }
        let data_dir = settings.data_dir.or(file.data_dir).unwrap_or(default_data_dir);
        let body_limit_bytes = file.body_limit_bytes.unwrap_or(DEFAULT_BODY_LIMIT);
        let server = server_limits(&file.server, body_limit_bytes)?;
        let idle_timeout = file.upstream.idle_timeout_ms.map_or(defaults::UPSTREAM_IDLE_TIMEOUT, Duration::from_millis);
        Ok(Self {
            listen,
            chatgpt: crate::config::codex::resolve_chatgpt(file.chatgpt, &data_dir),
            data_dir,
            store: settings.store.or(file.store),
            store_timeout: file.store_timeout_ms.map_or(DEFAULT_STORE_TIMEOUT, Duration::from_millis),
            access_tokens,
            body_limit_bytes,
            models: file.models.unwrap_or_default(),
            shutdown_grace: file.shutdown_grace_ms.map_or(defaults::SHUTDOWN_GRACE, Duration::from_millis),
            server,
            upstream: UpstreamConfig {
                url,
                auth,
                api_key: if auth == UpstreamAuth::ApiKey { api_key } else { None },
                connect_timeout: file
                    .upstream
                    .connect_timeout_ms
                    .map_or(defaults::CONNECT_TIMEOUT, Duration::from_millis),
                response_head_timeout: file
                    .upstream
                    .response_head_timeout_ms
                    .map_or(idle_timeout, Duration::from_millis),
                idle_timeout,
                max_retries: file.upstream.max_retries.unwrap_or(defaults::MAX_RETRIES),
                retry_budget: file.upstream.retry_budget_ms.map_or(defaults::RETRY_BUDGET, Duration::from_millis),
                max_retry_after: file
                    .upstream
                    .max_retry_after_ms
                    .map_or(defaults::MAX_RETRY_AFTER, Duration::from_millis),
                force_stream: file.upstream.force_stream.unwrap_or(defaults::FORCE_STREAM),
                codex: crate::config::codex::resolve_shaping(file.upstream.codex, auth == UpstreamAuth::Chatgpt),
            },
            cache: file.cache.resolve(),
            chat: file.chat.resolve(),
            journal: journal_options(&file.journal, &file.history),
            websocket: websocket_config(&file.websocket)?,
        })
    }
}

fn server_limits(file: &FileServer, body_limit_bytes: usize) -> Result<ServerLimits, ConfigError> {
    let d = ServerLimits::default();
    let ms = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_millis);
    let limits = ServerLimits {
        max_connections: file.max_connections.unwrap_or(d.max_connections),
        header_read_timeout: ms(file.header_read_timeout_ms, d.header_read_timeout),
        idle_timeout: ms(file.idle_timeout_ms, d.idle_timeout),
        body_read_timeout: ms(file.body_read_timeout_ms, d.body_read_timeout),
        body_min_bytes_per_sec: file.body_min_bytes_per_sec.unwrap_or(d.body_min_bytes_per_sec),
        client_stall_timeout: ms(file.client_stall_timeout_ms, d.client_stall_timeout),
        max_inflight_body_bytes: file.max_inflight_body_bytes.unwrap_or(d.max_inflight_body_bytes),
    };
    let positive = [
        ("server.max_connections", limits.max_connections as u64),
        ("server.header_read_timeout_ms", limits.header_read_timeout.as_millis() as u64),
        ("server.idle_timeout_ms", limits.idle_timeout.as_millis() as u64),
        ("server.body_read_timeout_ms", limits.body_read_timeout.as_millis() as u64),
        ("server.body_min_bytes_per_sec", limits.body_min_bytes_per_sec),
        ("server.client_stall_timeout_ms", limits.client_stall_timeout.as_millis() as u64),
    ];
    if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
        return Err(ConfigError::Invalid { key, reason: "must be greater than 0".into() });
    }
    if limits.max_inflight_body_bytes < body_limit_bytes {
        return Err(ConfigError::Invalid {
            key: "server.max_inflight_body_bytes",
            reason: format!(
                "{} is smaller than body_limit_bytes ({body_limit_bytes}): no request of the largest allowed size could be admitted",
                limits.max_inflight_body_bytes
            ),
        });
    }
    Ok(limits)
}

fn journal_options(journal: &FileJournal, history: &FileHistory) -> bridge_journal::JournalOptions {
    let defaults = bridge_journal::JournalOptions::default();
    bridge_journal::JournalOptions {
        enabled: journal.enabled.unwrap_or(defaults.enabled),
        history_max_bytes: history.max_bytes.map_or(defaults.history_max_bytes, |m| Some(m).filter(|m| *m > 0)),
        drift_note: journal.drift_note.unwrap_or(defaults.drift_note),
        git_timeout: journal.git_timeout_ms.map_or(defaults.git_timeout, Duration::from_millis),
        git_cache: journal.git_cache_ms.map_or(defaults.git_cache, Duration::from_millis),
        project_roots: journal.project_roots.clone().unwrap_or(defaults.project_roots),
    }
}

#[cfg(test)]
mod tests;
