//! `codex-bridge login`: the ChatGPT browser flow (PKCE; prints the URL and opens a browser when it can),
//! `--from-codex [PATH]` (import a Codex auth.json) or `--with-api-key` (a key on stdin). The result is
//! saved to `<data dir>/auth.json` with mode 0600; only a summary without secrets is printed.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use bridge_auth::{BrowserLogin, Credentials, TokenClient, file};

use crate::cli::LoginArgs;

pub async fn run(args: LoginArgs) -> anyhow::Result<()> {
    let config = super::chatgpt_env::credential_config(&args.store)?;
    let credentials = if args.with_api_key {
        let mut key = String::new();
        std::io::stdin().lock().read_line(&mut key).context("cannot read the API key from stdin")?;
        let key = key.trim().to_owned();
        anyhow::ensure!(
            !key.is_empty(),
            "no API key on stdin (try: printf %s \"$OPENAI_API_KEY\" | codex-bridge login --with-api-key)"
        );
        Credentials::ApiKey { api_key: key }
    } else if let Some(path) = args.from_codex {
        let path = path.unwrap_or_else(codex_auth_path);
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        bridge_auth::from_codex_auth_json(&text, bridge_auth::now_ms())
            .with_context(|| format!("cannot import {}", path.display()))?
    } else {
        let client = TokenClient::new(config.chatgpt.oauth.clone())?;
        let login = BrowserLogin::start(&client).await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "Open this URL in a browser to log in to ChatGPT:\n{}", login.url)?;
        out.flush()?;
        drop(out);
        if !args.no_browser && !open_browser(&login.url) {
            eprintln!("(no browser could be opened; open the URL above yourself)");
        }
        let tokens = login.finish(&client, Duration::from_secs(args.timeout_secs)).await?;
        Credentials::Chatgpt(tokens)
    };
    file::save(&config.chatgpt.credentials, &credentials)?;
    println!("{}", super::status::describe(&credentials));
    println!("saved to {}", config.chatgpt.credentials.display());
    Ok(())
}

/// `$CODEX_HOME/auth.json`, else `~/.codex/auth.json`.
fn codex_auth_path() -> PathBuf {
    std::env::var_os("CODEX_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".codex")))
        .unwrap_or_else(|| PathBuf::from(".codex"))
        .join("auth.json")
}

/// Tries the platform's URL opener; false when there is none or no display.
fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some() {
        "xdg-open"
    } else {
        return false;
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}
