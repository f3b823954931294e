//! Settings of the Codex-backend features: the `[upstream.codex]` table (request shaping, instructions,
//! identification headers) and the `[chatgpt]` table (OAuth endpoints, refresh margin, instruction sources).
//!
//! Invariants: both tables deny unknown keys; every URL has a production default from the reference
//! (codex-wire.md §12.1, plugin-behaviors.md §4) and can be pointed elsewhere (the emulator in tests).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bridge_auth::OAuthEndpoints;
use serde::Deserialize;

/// The Codex backend base URL used with `--upstream-auth chatgpt` when no `--upstream` is given.
pub const CHATGPT_UPSTREAM: &str = "https://chatgpt.com/backend-api/codex";
/// Parameters the Codex backend rejects (prompt-caching.md §2.1), removed by default.
pub const REJECTED_PARAMS: &[&str] = &[
    "max_output_tokens",
    "max_completion_tokens",
    "prompt_cache_retention",
    "prompt_cache_options",
    "temperature",
    "top_p",
];

/// Where `instructions` come from in Codex mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstructionsMode {
    /// The client's `instructions` pass unchanged (Codex clients carry their own base prompt).
    Passthrough,
    /// The official Codex base instructions for the model family; the client's system prompt becomes a
    /// developer message (for OpenCode).
    Codex,
}

/// What happens to volatile environment blocks (`<env>`, `<files>`) in developer/system messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvContext {
    Keep,
    Strip,
    /// Moved into one developer message at the end of `input`, so the prefix stays byte-stable.
    Tail,
}

/// What happens to OpenCode's own Codex system prompt in `codex` instructions mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpencodePrompt {
    Keep,
    /// Removed, since the official instructions replace it (no two stacked sets of instructions).
    Replace,
}

/// `[upstream.codex]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCodex {
    enabled: Option<bool>,
    rejected_params: Option<Vec<String>>,
    instructions: Option<InstructionsMode>,
    env_context: Option<EnvContext>,
    opencode_prompt: Option<OpencodePrompt>,
    bridge_prompt: Option<bool>,
    model_aliases: Option<BTreeMap<String, String>>,
    originator: Option<String>,
    user_agent: Option<String>,
    version: Option<String>,
}

/// `[chatgpt]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileChatgpt {
    client_id: Option<String>,
    authorize_url: Option<String>,
    token_url: Option<String>,
    redirect_uri: Option<String>,
    callback_port: Option<u16>,
    refresh_margin_secs: Option<u64>,
    releases_url: Option<String>,
    raw_base_url: Option<String>,
    opencode_prompt_url: Option<String>,
    instructions_fresh_secs: Option<u64>,
    instructions_check_secs: Option<u64>,
}

/// Validated Codex-backend shaping (present on the upstream config when shaping is on).
#[derive(Debug, Clone)]
pub struct CodexShaping {
    pub rejected_params: Vec<String>,
    pub instructions: InstructionsMode,
    pub env_context: EnvContext,
    pub opencode_prompt: OpencodePrompt,
    /// Insert the bridge prompt about tool names (codex instructions mode, requests with tools).
    pub bridge_prompt: bool,
    /// Extra model aliases over the built-in table (exact names).
    pub model_aliases: BTreeMap<String, String>,
    pub identity: Identity,
}

/// The Codex identification headers sent upstream (codex-wire.md §3).
#[derive(Debug, Clone)]
pub struct Identity {
    pub originator: String,
    pub user_agent: String,
    pub version: String,
}

/// Where the instruction files come from and how fresh they must be.
#[derive(Debug, Clone)]
pub struct InstructionSources {
    /// GitHub API "latest release" URL (`tag_name` is read).
    pub releases_url: String,
    /// Raw file base: `{raw_base_url}/{tag}/codex-rs/core/{file}`.
    pub raw_base_url: String,
    /// OpenCode's Codex system prompt (`codex.txt`).
    pub opencode_prompt_url: String,
    /// A copy younger than this is not revalidated (15 minutes).
    pub fresh_for: Duration,
    /// How often the background task looks for stale copies; zero disables the background task.
    pub check_every: Duration,
    /// On-disk cache directory.
    pub cache_dir: PathBuf,
}

/// Validated `[chatgpt]`.
#[derive(Debug, Clone)]
pub struct ChatgptSettings {
    pub oauth: OAuthEndpoints,
    /// Refresh this long before the access token expires.
    pub refresh_margin: Duration,
    /// The credential file.
    pub credentials: PathBuf,
    pub sources: InstructionSources,
}

/// Shaping settings: on when `enabled` says so, else on exactly for the ChatGPT upstream.
pub fn resolve_shaping(file: Option<FileCodex>, chatgpt_upstream: bool) -> Option<CodexShaping> {
    let f = file.unwrap_or_default();
    if !f.enabled.unwrap_or(chatgpt_upstream) {
        return None;
    }
    let version = f.version.unwrap_or_else(|| "0.169.0".to_owned());
    let originator = f.originator.unwrap_or_else(|| "codex_cli_rs".to_owned());
    let user_agent = f.user_agent.unwrap_or_else(|| {
        let (os, arch, own) = (std::env::consts::OS, std::env::consts::ARCH, env!("CARGO_PKG_VERSION"));
        format!("{originator}/{version} ({os}; {arch}) codex-bridge/{own}")
    });
    Some(CodexShaping {
        rejected_params: f.rejected_params.unwrap_or_else(|| REJECTED_PARAMS.iter().map(|s| (*s).to_owned()).collect()),
        instructions: f.instructions.unwrap_or(InstructionsMode::Passthrough),
        env_context: f.env_context.unwrap_or(EnvContext::Keep),
        opencode_prompt: f.opencode_prompt.unwrap_or(OpencodePrompt::Replace),
        bridge_prompt: f.bridge_prompt.unwrap_or(true),
        model_aliases: f.model_aliases.unwrap_or_default(),
        identity: Identity { originator, user_agent, version },
    })
}

/// `[chatgpt]` with defaults; files live in `data_dir`.
pub fn resolve_chatgpt(file: Option<FileChatgpt>, data_dir: &Path) -> ChatgptSettings {
    let f = file.unwrap_or_default();
    let defaults = OAuthEndpoints::default();
    let callback_addr = f.callback_port.map_or(defaults.callback_addr, |p| SocketAddr::from(([127, 0, 0, 1], p)));
    let redirect_uri = f.redirect_uri.unwrap_or_else(|| match f.callback_port {
        Some(p) => format!("http://localhost:{p}/auth/callback"),
        None => defaults.redirect_uri.clone(),
    });
    ChatgptSettings {
        oauth: OAuthEndpoints {
            client_id: f.client_id.unwrap_or(defaults.client_id),
            authorize_url: f.authorize_url.unwrap_or(defaults.authorize_url),
            token_url: f.token_url.unwrap_or(defaults.token_url),
            redirect_uri,
            callback_addr,
        },
        refresh_margin: Duration::from_secs(f.refresh_margin_secs.unwrap_or(300)),
        credentials: bridge_auth::file::credentials_path(data_dir),
        sources: InstructionSources {
            releases_url: f
                .releases_url
                .unwrap_or_else(|| "https://api.github.com/repos/openai/codex/releases/latest".to_owned()),
            raw_base_url: f
                .raw_base_url
                .unwrap_or_else(|| "https://raw.githubusercontent.com/openai/codex".to_owned())
                .trim_end_matches('/')
                .to_owned(),
            opencode_prompt_url: f.opencode_prompt_url.unwrap_or_else(|| {
                "https://raw.githubusercontent.com/sst/opencode/dev/packages/opencode/src/session/prompt/codex.txt"
                    .to_owned()
            }),
            fresh_for: Duration::from_secs(f.instructions_fresh_secs.unwrap_or(15 * 60)),
            check_every: Duration::from_secs(f.instructions_check_secs.unwrap_or(60)),
            cache_dir: data_dir.join("cache").join("instructions"),
        },
    }
}
