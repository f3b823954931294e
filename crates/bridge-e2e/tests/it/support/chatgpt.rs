//! ChatGPT credentials for a bridge, obtained the way a user does: `codex-bridge login --no-browser` against
//! the emulator's OAuth endpoints, with the test playing the browser (it opens the printed URL; the emulator
//! consents and redirects to the login's callback listener on 127.0.0.1).
//!
//! Invariant: the callback listens on a free loopback port, never on the default 1455, so parallel tests
//! cannot collide with each other or with a real login on the machine.

use std::process::Stdio;
use std::time::Duration;

use codex_emulator::RunningEmulator;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::bridge::{Bridge, BridgeHome, UpstreamTransport};
use super::codex::CODEX_CLIENT_KEY;

/// How long the whole login may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The logged-in account as `codex-bridge status --json` reports it.
#[derive(Debug, Clone)]
pub struct Account {
    /// `chatgpt_account_id` of the access token.
    pub account_id: String,
}

/// Logs `home`'s bridge in to the emulator and returns the account `status --json` then reports.
pub async fn login(home: &BridgeHome, emulator: &RunningEmulator) -> Account {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let base = emulator.base_url();
    let (authorize, token) = (format!("{base}/oauth/authorize"), format!("{base}/oauth/token"));
    let (port_text, redirect) = (port.to_string(), format!("http://127.0.0.1:{port}/auth/callback"));
    let env = [
        ("CODEX_BRIDGE_OAUTH_AUTHORIZE_URL", authorize.as_str()),
        ("CODEX_BRIDGE_OAUTH_TOKEN_URL", token.as_str()),
        ("CODEX_BRIDGE_OAUTH_CALLBACK_PORT", port_text.as_str()),
        ("CODEX_BRIDGE_OAUTH_REDIRECT_URI", redirect.as_str()),
    ];
    let mut cmd = home.command(&env, "login.stderr");
    cmd.args(["login", "--no-browser", "--data-dir"]).arg(home.data_dir()).stdin(Stdio::null()).stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("start codex-bridge login");
    let mut lines = BufReader::new(child.stdout.take().expect("login stdout")).lines();
    let play_browser = async {
        let url = loop {
            let line = lines.next_line().await.expect("read login stdout").expect("login printed no URL");
            if line.starts_with("http") {
                break line;
            }
        };
        let page = reqwest::Client::builder().no_proxy().build().expect("client").get(&url).send().await;
        let page = page.expect("the authorize URL and its redirect to the callback answer");
        assert_eq!(page.status(), 200, "callback page after the emulator's consent");
        while lines.next_line().await.expect("read login stdout").is_some() {}
        child.wait().await.expect("wait for login")
    };
    let status = tokio::time::timeout(LOGIN_TIMEOUT, play_browser).await.expect("login finished in time");
    assert!(status.success(), "codex-bridge login failed: {status}");
    assert_credentials_private(home);

    let out = home.run(&["status", "--json"]).await;
    out.assert_success();
    let status: Value = serde_json::from_str(out.stdout.trim()).expect("status --json prints JSON");
    assert_eq!(status.pointer("/login/kind").and_then(Value::as_str), Some("chatgpt"), "{status}");
    assert!(!out.stdout.contains("eyJ"), "status must not print a token: {}", out.stdout);
    let account_id = status.pointer("/login/account_id").and_then(Value::as_str).expect("status names the account");
    Account { account_id: account_id.to_owned() }
}

/// The bridge config that points every ChatGPT feature at the emulator (token refresh, the instruction
/// releases, OpenCode's prompt), warming the instruction caches at startup only, followed by `extra`.
pub fn config_toml(emulator: &RunningEmulator, extra: &str) -> String {
    let base = emulator.base_url();
    format!(
        "{extra}\n[chatgpt]\ntoken_url = \"{base}/oauth/token\"\n\
         releases_url = \"{base}/repos/openai/codex/releases/latest\"\n\
         raw_base_url = \"{base}/openai/codex\"\n\
         opencode_prompt_url = \"{base}/openai/codex/rust-v0.169.0/codex-rs/core/opencode-codex.txt\"\n\
         instructions_check_secs = 0\n"
    )
}

/// A bridge holding a ChatGPT login against the emulator, in front of its `/backend-api/codex`, with
/// Codex's dummy key as the one bridge access token; returns the account, the bridge and the base URL a
/// Codex custom provider points at (the bridge's `/backend-api/codex`).
pub async fn codex_bridge(
    home: &BridgeHome,
    emulator: &RunningEmulator,
    transport: UpstreamTransport,
) -> (Account, Bridge, String) {
    let account = login(home, emulator).await;
    // The client's key is a bridge access token; the bridge holds the ChatGPT credential.
    let extra = format!("access_tokens = [\"{CODEX_CLIENT_KEY}\"]\n");
    let upstream_url = format!("{}/backend-api/codex", emulator.base_url());
    let bridge = home.serve_over(transport, &upstream_url, "chatgpt", &config_toml(emulator, &extra), &[]).await;
    let base = format!("{}/backend-api/codex", bridge.responses_base().trim_end_matches("/v1"));
    (account, bridge, base)
}

fn assert_credentials_private(home: &BridgeHome) {
    use std::os::unix::fs::PermissionsExt;
    let path = home.data_dir().join("auth.json");
    let mode = std::fs::metadata(&path).expect("login wrote auth.json").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{} mode {mode:o}", path.display());
}
