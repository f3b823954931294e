//! `--upstream-auth chatgpt` against the emulator: bearer token and account id, refresh ahead of expiry
//! with single flight, one refresh and one retry after a 401, and the documented 401 for a revoked login.

use bridge_auth::{Credentials, file};
use serde_json::{Value, json};

use crate::codex_support::*;

/// These tests hold the HTTP path's policy (refresh and retry after a 401, retries, headers on the POST);
/// the upstream socket's are in upstream_ws.rs.
const HTTP_PATH: &str = "[upstream]\ntransport = \"http\"";

fn small_request() -> Value {
    json!({"model": "gpt-5.5", "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}], "stream": false})
}

#[tokio::test]
async fn hundred_concurrent_requests_across_an_expiry_cause_one_refresh() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let mut tokens = login(&emu, dir.path()).await;
    // The stored token has expired (for the bridge and, one hour later, for the emulator too).
    tokens.expires_at_ms = Some(bridge_auth::now_ms() - 1_000);
    file::save(&file::credentials_path(dir.path()), &Credentials::Chatgpt(tokens.clone())).unwrap();
    emu.state().clock.advance_ms(3_601_000);
    let bridge = chatgpt_bridge(&emu, dir.path(), HTTP_PATH).await;
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let url = bridge.url("/v1/responses");
            tokio::spawn(async move {
                crate::support::client().post(url).json(&small_request()).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    for r in requests {
        assert_eq!(r.await.unwrap(), 200);
    }
    assert_eq!(emu.state().oauth.counters().refresh_calls, 1);
    let Some(Credentials::Chatgpt(saved)) = file::load(&file::credentials_path(dir.path())).unwrap() else {
        panic!("chatgpt credentials expected")
    };
    assert_ne!(saved.refresh_token, tokens.refresh_token, "the rotated refresh token is saved");
    let sent: Vec<_> = upstream_bodies(&emu);
    assert_eq!(sent.len(), 100);
    let bearer = format!("Bearer {}", saved.access_token);
    assert!(sent.iter().all(|r| header(r, "authorization") == Some(bearer.as_str())));
    bridge.stop().await;
}

#[tokio::test]
async fn an_upstream_401_gets_one_refresh_and_one_retry() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = login(&emu, dir.path()).await;
    let bridge = chatgpt_bridge(&emu, dir.path(), HTTP_PATH).await;
    // The emulator now judges the token expired; the bridge still thinks it is valid.
    emu.state().clock.advance_ms(3_601_000);
    let (status, _, body) = post(&bridge, &small_request(), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(emu.state().oauth.counters().refresh_calls, 1);
    let sent = upstream_bodies(&emu);
    assert_eq!(sent.len(), 2);
    assert_eq!(header(&sent[0], "authorization"), Some(format!("Bearer {}", tokens.access_token).as_str()));
    assert_ne!(header(&sent[1], "authorization"), header(&sent[0], "authorization"));
    assert_eq!(header(&sent[1], "chatgpt-account-id"), tokens.account_id.as_deref());
    bridge.stop().await;
}

#[tokio::test]
async fn a_revoked_login_is_the_documented_401_after_one_refresh_attempt() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    login(&emu, dir.path()).await;
    let bridge = chatgpt_bridge(&emu, dir.path(), HTTP_PATH).await;
    emu.state().oauth.revoke(None);
    for _ in 0..2 {
        let (status, headers, body) = post(&bridge, &small_request(), &[]).await;
        assert_eq!(status, 401);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(
            body,
            r#"{"error":{"message":"ChatGPT login is no longer valid (token refresh refused: HTTP 401 refresh_token_invalidated): run `codex-bridge login` on the bridge host","type":"authentication_error","code":"chatgpt_login_required","param":null}}"#
        );
    }
    assert_eq!(emu.state().oauth.counters().refresh_calls, 1);
    bridge.stop().await;
}

#[tokio::test]
async fn identification_headers_per_client() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    login(&emu, dir.path()).await;
    let bridge = chatgpt_bridge(&emu, dir.path(), "[upstream]\ntransport = \"http\"\n[upstream.codex]\noriginator = \"codex_cli_rs\"\nversion = \"0.169.0\"\nuser_agent = \"codex_cli_rs/0.169.0 (test)\"").await;
    let opencode =
        [("originator", "opencode"), ("user-agent", "opencode/1.18.33"), ("authorization", "Bearer client-key")];
    assert_eq!(post(&bridge, &small_request(), &opencode).await.0, 200);
    let codex = [("originator", "codex_exec"), ("user-agent", "codex_exec/0.169.0 (Debian)")];
    assert_eq!(post(&bridge, &small_request(), &codex).await.0, 200);
    let sent = upstream_bodies(&emu);
    assert_eq!(header(&sent[0], "originator"), Some("codex_cli_rs"));
    assert_eq!(header(&sent[0], "user-agent"), Some("codex_cli_rs/0.169.0 (test)"));
    assert_eq!(header(&sent[0], "version"), Some("0.169.0"));
    assert_ne!(header(&sent[0], "authorization"), Some("Bearer client-key"));
    assert_eq!(header(&sent[1], "originator"), Some("codex_exec"));
    assert_eq!(header(&sent[1], "user-agent"), Some("codex_exec/0.169.0 (Debian)"));
    bridge.stop().await;
}
