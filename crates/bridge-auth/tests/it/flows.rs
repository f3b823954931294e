//! Login, refresh and revocation against the emulator's OAuth endpoints.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bridge_auth::{BrowserLogin, Claims, Credentials, OAuthEndpoints, TokenClient, TokenManager, file};
use codex_emulator::{EmulatorConfig, RunningEmulator};

async fn emulator() -> RunningEmulator {
    codex_emulator::spawn(EmulatorConfig::default()).await.unwrap()
}

/// Endpoints on the emulator; the callback listens on a free port that the redirect URI names.
async fn client_for(emu: &RunningEmulator) -> TokenClient {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    TokenClient::new(OAuthEndpoints {
        authorize_url: format!("{}/oauth/authorize", emu.base_url()),
        token_url: format!("{}/oauth/token", emu.base_url()),
        redirect_uri: format!("http://127.0.0.1:{}/auth/callback", free.port()),
        callback_addr: free,
        ..OAuthEndpoints::default()
    })
    .unwrap()
}

/// Plays the browser: follows the authorize URL, whose 302 lands on the callback listener.
async fn play_browser(url: &str) -> reqwest::Response {
    reqwest::Client::builder().no_proxy().build().unwrap().get(url).send().await.unwrap()
}

async fn logged_in(emu: &RunningEmulator, dir: &std::path::Path) -> TokenClient {
    let client = client_for(emu).await;
    let login = BrowserLogin::start(&client).await.unwrap();
    let page = play_browser(&login.url).await;
    assert_eq!(page.status(), 200);
    let tokens = login.finish(&client, Duration::from_secs(10)).await.unwrap();
    file::save(&file::credentials_path(dir), &Credentials::Chatgpt(tokens)).unwrap();
    client
}

#[tokio::test]
async fn browser_flow_end_to_end() {
    let emu = emulator().await;
    let client = client_for(&emu).await;
    let login = BrowserLogin::start(&client).await.unwrap();
    assert!(login.url.contains("code_challenge_method=S256"));
    // A forged redirect with the wrong state is refused and does not end the login.
    let forged = play_browser(&format!("http://{}/auth/callback?code=x&state=wrong", login.callback_addr())).await;
    assert_eq!(forged.status(), 400);
    assert_eq!(forged.text().await.unwrap(), "State mismatch");
    let page = play_browser(&login.url).await;
    assert_eq!(page.status(), 200);
    let tokens = login.finish(&client, Duration::from_secs(10)).await.unwrap();
    assert_eq!(tokens.account_id.as_deref(), Some(EmulatorConfig::default().account_id.as_str()));
    assert_eq!(tokens.profile().plan_type.as_deref(), Some("plus"));
    assert!(tokens.expires_at_ms.unwrap() > bridge_auth::now_ms());
    let counters = emu.state().oauth.counters();
    assert_eq!((counters.authorize_calls, counters.code_exchanges), (1, 1));
    assert_eq!(Claims::of(&tokens.access_token).account_id, tokens.account_id);
}

#[tokio::test]
async fn hundred_concurrent_callers_across_expiry_refresh_once() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let client = logged_in(&emu, dir.path()).await;
    let now = Arc::new(AtomicI64::new(bridge_auth::now_ms()));
    let clock = now.clone();
    let manager = Arc::new(
        TokenManager::load(file::credentials_path(dir.path()), client, Duration::from_secs(60))
            .unwrap()
            .with_clock(Arc::new(move || clock.load(Ordering::SeqCst))),
    );
    let before = manager.access().await.unwrap();
    assert_eq!(emu.state().oauth.counters().refresh_calls, 0, "a fresh token is not refreshed");
    // Move past the expiry (minus the margin) and ask 100 times at once.
    now.fetch_add(3_600_000, Ordering::SeqCst);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let m = manager.clone();
            tokio::spawn(async move { m.access().await.unwrap() })
        })
        .collect();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap().token);
    }
    assert_eq!(emu.state().oauth.counters().refresh_calls, 1);
    assert!(tokens.iter().all(|t| *t == tokens[0] && *t != before.token));
    // The rotated refresh token is on disk, 0600.
    let Some(Credentials::Chatgpt(saved)) = file::load(&file::credentials_path(dir.path())).unwrap() else {
        panic!("chatgpt credentials expected")
    };
    assert_eq!(saved.access_token, tokens[0]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(file::credentials_path(dir.path())).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn revoked_login_costs_one_refresh_attempt() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let client = logged_in(&emu, dir.path()).await;
    let manager = TokenManager::load(file::credentials_path(dir.path()), client, Duration::from_secs(60)).unwrap();
    let access = manager.access().await.unwrap();
    emu.state().oauth.revoke(None);
    for _ in 0..3 {
        let err = manager.after_unauthorized(&access).await.unwrap_err();
        assert!(err.to_string().contains("codex-bridge login"), "{err}");
    }
    assert_eq!(emu.state().oauth.counters().refresh_calls, 1);
}
