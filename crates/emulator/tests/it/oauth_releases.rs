//! OAuth (authorize, PKCE exchange, refresh rotation, expiry, revoke) and the release endpoints.

use codex_emulator::crypto::{b64url, sha256};
use codex_emulator::oauth::jwt_payload;
use serde_json::{Value, json};

use crate::common::{body, client, fast, start, user};

#[tokio::test]
async fn login_refresh_and_use_tokens() {
    let emu = start(codex_emulator::EmulatorConfig { access_token_ttl_secs: 60, ..fast() }).await;
    let base = emu.base_url();
    let c = client();
    let verifier = "a-verifier-of-sufficient-length-0123456789-abcdefghijklmnopqrstuvw";
    let challenge = b64url(&sha256(verifier.as_bytes()));
    let r = c
        .get(format!("{base}/oauth/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "app_EMoamEEZ73f0CkXaXp7hrann"),
            ("redirect_uri", "http://localhost:1455/auth/callback"),
            ("scope", "openid profile email offline_access"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("state", "abc123"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("http://localhost:1455/auth/callback?code=ac_"), "{location}");
    assert!(location.ends_with("&state=abc123"));
    let code = location.split("code=").nth(1).unwrap().split('&').next().unwrap();
    let form = format!(
        "grant_type=authorization_code&client_id=app_EMoamEEZ73f0CkXaXp7hrann&code={code}&code_verifier={verifier}&redirect_uri=http%3A%2F%2Flocalhost%3A1455%2Fauth%2Fcallback"
    );
    let r = c
        .post(format!("{base}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    assert_eq!(tokens["expires_in"], 60);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let claims = jwt_payload(&access).unwrap();
    let account = claims["https://api.openai.com/auth"]["chatgpt_account_id"].as_str().unwrap().to_owned();
    assert_eq!(claims["https://api.openai.com/auth"]["chatgpt_plan_type"], "plus");
    assert!(jwt_payload(tokens["id_token"].as_str().unwrap()).is_some());
    // the code works once
    let r = c.post(format!("{base}/oauth/token")).body(form).send().await.unwrap();
    assert_eq!(r.status(), 400);

    let turn = |token: String, time: u64| {
        let c = c.clone();
        let base = base.clone();
        let account = account.clone();
        async move {
            c.post(format!("{base}/backend-api/codex/responses"))
                .bearer_auth(token)
                .header("chatgpt-account-id", account)
                .header("x-emulator-time", time.to_string())
                .json(&body(vec![user("hi")]))
                .send()
                .await
                .unwrap()
        }
    };
    let iat_ms = claims["iat"].as_u64().unwrap() * 1000;
    assert_eq!(turn(access.clone(), iat_ms + 1000).await.status(), 200);
    let r = turn(access.clone(), iat_ms + 61_000).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "token_expired");

    // refresh with rotation (JSON body accepted too)
    let rt = tokens["refresh_token"].as_str().unwrap();
    let refresh = |rt: String| {
        let c = c.clone();
        let base = base.clone();
        async move {
            c.post(format!("{base}/oauth/token"))
                .body(format!("grant_type=refresh_token&client_id=app_EMoamEEZ73f0CkXaXp7hrann&refresh_token={rt}"))
                .send()
                .await
                .unwrap()
        }
    };
    let r = refresh(rt.to_owned()).await;
    assert_eq!(r.status(), 200);
    let fresh: Value = r.json().await.unwrap();
    let r = refresh(rt.to_owned()).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "refresh_token_reused");
    let new_access = fresh["access_token"].as_str().unwrap().to_owned();
    assert_eq!(turn(new_access.clone(), iat_ms + 62_000).await.status(), 200);
    let counters: Value = c.get(format!("{base}/emulator/oauth")).send().await.unwrap().json().await.unwrap();
    assert_eq!((counters["refresh_calls"].as_u64(), counters["refresh_ok"].as_u64()), (Some(2), Some(1)));
    // revoke → invalidated
    let r: Value = c
        .post(format!("{base}/emulator/oauth/revoke"))
        .json(&json!({"token": new_access}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["revoked"], 1);
    let r = turn(new_access, iat_ms + 63_000).await;
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "token_invalidated");
    emu.shutdown().await;
}

#[tokio::test]
async fn releases_with_etag() {
    let emu = start(fast()).await;
    let base = emu.base_url();
    let c = client();
    let latest: Value =
        c.get(format!("{base}/repos/openai/codex/releases/latest")).send().await.unwrap().json().await.unwrap();
    let tag = latest["tag_name"].as_str().unwrap().to_owned();
    assert_eq!(tag, "rust-v0.169.0");
    let url = format!("{base}/openai/codex/{tag}/codex-rs/core/gpt_5_codex_prompt.md");
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert!(r.text().await.unwrap().contains("Codex"));
    let r = c.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(
        c.get(format!("{base}/openai/codex/{tag}/codex-rs/core/missing.md")).send().await.unwrap().status(),
        404
    );
    // publish a new tag
    let r = c
        .post(format!("{base}/emulator/releases"))
        .json(&json!({"tag": "rust-v0.170.0", "files": {"gpt_5_codex_prompt.md": "new instructions"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let latest: Value =
        c.get(format!("{base}/repos/openai/codex/releases/latest")).send().await.unwrap().json().await.unwrap();
    assert_eq!(latest["tag_name"], "rust-v0.170.0");
    let r = c
        .get(format!("{base}/openai/codex/rust-v0.170.0/codex-rs/core/gpt_5_codex_prompt.md"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_ne!(r.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(r.text().await.unwrap(), "new instructions");
    let counters = emu.state().releases.counters();
    assert_eq!((counters.latest_calls, counters.file_200, counters.file_304, counters.file_404), (2, 2, 1, 1));
    emu.shutdown().await;
}
