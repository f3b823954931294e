//! Helpers for the Codex-backend tests: an emulator, a ChatGPT login against it (the test plays the
//! browser), and a bridge in `--upstream-auth chatgpt` mode pointed at both.

use std::path::Path;
use std::time::Duration;

use bridge_auth::{BrowserLogin, ChatgptTokens, Credentials, OAuthEndpoints, TokenClient, file};
use bridge_core::UpstreamAuth;
use codex_emulator::{EmulatorConfig, RunningEmulator};
use serde_json::Value;

use crate::support::{Options, TestBridge, client};

pub async fn emulator() -> RunningEmulator {
    codex_emulator::spawn(EmulatorConfig {
        tokenizer: codex_emulator::TokenizerMode::Fast,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

/// Logs in through the emulator's authorize and token endpoints and saves the tokens in `dir`.
pub async fn login(emu: &RunningEmulator, dir: &Path) -> ChatgptTokens {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let client = TokenClient::new(OAuthEndpoints {
        authorize_url: format!("{}/oauth/authorize", emu.base_url()),
        token_url: format!("{}/oauth/token", emu.base_url()),
        redirect_uri: format!("http://127.0.0.1:{}/auth/callback", free.port()),
        callback_addr: free,
        ..OAuthEndpoints::default()
    })
    .unwrap();
    let login = BrowserLogin::start(&client).await.unwrap();
    let page = crate::support::client().get(&login.url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let tokens = login.finish(&client, Duration::from_secs(10)).await.unwrap();
    file::save(&file::credentials_path(dir), &Credentials::Chatgpt(tokens.clone())).unwrap();
    tokens
}

/// The TOML that points a bridge at the emulator (data directory, token and instruction URLs) plus `extra`.
pub fn config_toml(emu: &RunningEmulator, dir: &Path, extra: &str) -> String {
    let base = emu.base_url();
    format!(
        "data_dir = {dir:?}\n{extra}\n[chatgpt]\ntoken_url = \"{base}/oauth/token\"\nreleases_url = \"{base}/repos/openai/codex/releases/latest\"\nraw_base_url = \"{base}/openai/codex\"\nopencode_prompt_url = \"{base}/openai/codex/rust-v0.169.0/codex-rs/core/opencode-codex.txt\"\ninstructions_check_secs = 0\n",
        dir = dir.display().to_string()
    )
}

/// A bridge in ChatGPT mode on the emulator; `extra` goes before the `[chatgpt]` table.
pub async fn chatgpt_bridge(emu: &RunningEmulator, dir: &Path, extra: &str) -> TestBridge {
    TestBridge::with(
        &format!("{}/backend-api/codex", emu.base_url()),
        Options {
            auth: UpstreamAuth::Chatgpt,
            file: config_toml(emu, dir, extra),
            data_dir: Some(dir.to_owned()),
            ..Options::default()
        },
    )
    .await
}

/// POSTs `body` to the bridge's `/v1/responses`; returns status, headers and the body text.
pub async fn post(
    bridge: &TestBridge,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = client().post(bridge.url("/v1/responses")).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

/// Bodies of the Responses requests the emulator received, oldest first.
pub fn upstream_bodies(emu: &RunningEmulator) -> Vec<codex_emulator::LoggedRequest> {
    emu.state().requests().into_iter().filter(|r| r.path.ends_with("/responses")).collect()
}

/// Requests the emulator received for instruction files or release tags.
pub fn instruction_fetches(emu: &RunningEmulator) -> usize {
    emu.state().requests().iter().filter(|r| r.path.starts_with("/repos/") || r.path.starts_with("/openai/")).count()
}

/// A header of a logged request.
pub fn header<'a>(r: &'a codex_emulator::LoggedRequest, name: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}
