//! Environment overrides of the `[chatgpt]` settings, applied after the config file (so tests and unusual
//! setups can point login, refresh and the instruction sources elsewhere without a file), and the config
//! that the credential commands (`login`, `logout`, `status`) read.
//!
//! Variables: `CODEX_BRIDGE_OAUTH_AUTHORIZE_URL`, `CODEX_BRIDGE_OAUTH_TOKEN_URL`,
//! `CODEX_BRIDGE_OAUTH_CALLBACK_PORT` (also sets the redirect URI to `http://localhost:PORT/auth/callback`),
//! `CODEX_BRIDGE_OAUTH_REDIRECT_URI`, `CODEX_BRIDGE_RELEASES_URL`, `CODEX_BRIDGE_RAW_BASE_URL`,
//! `CODEX_BRIDGE_OPENCODE_PROMPT_URL`.

use std::net::SocketAddr;

use anyhow::Context as _;
use bridge_core::{Config, Settings, UpstreamAuth};

use crate::cli::StoreArgs;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Applies the variables that are set.
pub fn apply(config: &mut Config) -> anyhow::Result<()> {
    let c = &mut config.chatgpt;
    if let Some(v) = var("CODEX_BRIDGE_OAUTH_AUTHORIZE_URL") {
        c.oauth.authorize_url = v;
    }
    if let Some(v) = var("CODEX_BRIDGE_OAUTH_TOKEN_URL") {
        c.oauth.token_url = v;
    }
    if let Some(v) = var("CODEX_BRIDGE_OAUTH_CALLBACK_PORT") {
        let port: u16 = v.parse().with_context(|| format!("CODEX_BRIDGE_OAUTH_CALLBACK_PORT={v:?} is not a port"))?;
        c.oauth.callback_addr = SocketAddr::from(([127, 0, 0, 1], port));
        c.oauth.redirect_uri = format!("http://localhost:{port}/auth/callback");
    }
    if let Some(v) = var("CODEX_BRIDGE_OAUTH_REDIRECT_URI") {
        c.oauth.redirect_uri = v;
    }
    if let Some(v) = var("CODEX_BRIDGE_RELEASES_URL") {
        c.sources.releases_url = v;
    }
    if let Some(v) = var("CODEX_BRIDGE_RAW_BASE_URL") {
        c.sources.raw_base_url = v.trim_end_matches('/').to_owned();
    }
    if let Some(v) = var("CODEX_BRIDGE_OPENCODE_PROMPT_URL") {
        c.sources.opencode_prompt_url = v;
    }
    Ok(())
}

/// The config as the credential commands need it: the file and environment, without the checks that only
/// `serve` needs (an API key for `api-key` mode).
pub fn credential_config(store: &StoreArgs) -> anyhow::Result<Config> {
    let settings = Settings {
        upstream_auth: Some(UpstreamAuth::Passthrough),
        data_dir: store.data_dir.clone(),
        store: store.store.clone(),
        ..Settings::default()
    };
    let mut config = Config::load(settings, store.config.as_deref(), super::default_data_dir())?;
    apply(&mut config)?;
    Ok(config)
}
