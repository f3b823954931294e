//! `codex-bridge login | status | logout` as processes against the emulator's OAuth endpoints (the test
//! plays the browser), then `serve --upstream-auth chatgpt` with the stored login.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::support::*;

fn oauth_env(cmd: &mut std::process::Command, emu: &str, port: u16) {
    cmd.env("CODEX_BRIDGE_OAUTH_AUTHORIZE_URL", format!("{emu}/oauth/authorize"))
        .env("CODEX_BRIDGE_OAUTH_TOKEN_URL", format!("{emu}/oauth/token"))
        .env("CODEX_BRIDGE_OAUTH_CALLBACK_PORT", port.to_string())
        .env("CODEX_BRIDGE_RELEASES_URL", format!("{emu}/repos/openai/codex/releases/latest"))
        .env("CODEX_BRIDGE_RAW_BASE_URL", format!("{emu}/openai/codex"));
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_login_status_serve_and_logout() {
    let emu = codex_emulator::spawn(codex_emulator::EmulatorConfig::default()).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = command(home.path());
    cmd.args(["login", "--no-browser", "--data-dir", data.to_str().unwrap()]).stdout(Stdio::piped());
    oauth_env(&mut cmd, &emu.base_url(), port);
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().unwrap().unwrap();
        if line.starts_with("http") {
            break line;
        }
    };
    assert!(url.contains("code_challenge_method=S256") && url.contains(&format!("localhost%3A{port}")));
    // The browser: the emulator consents and redirects to the bridge's callback on localhost.
    let page = reqwest::Client::builder().no_proxy().build().unwrap().get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success());
    let account = codex_emulator::EmulatorConfig::default().account_id;
    assert!(rest[0].contains(&account) && rest[0].contains("plan plus"), "{rest:?}");
    let auth = data.join("auth.json");
    #[cfg(unix)]
    assert_eq!(mode(&auth), 0o600);
    let stored: Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    let access = stored["access_token"].as_str().unwrap().to_owned();
    let refresh = stored["refresh_token"].as_str().unwrap().to_owned();

    // status: account, plan, expiry; never a token; no network call.
    let before = emu.state().requests().len();
    let out = run(home.path(), &["status", "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&account) && text.contains("plan plus") && text.contains("expires 20"), "{text}");
    assert!(!text.contains(&access) && !text.contains(&refresh));
    assert_eq!(emu.state().requests().len(), before, "status made no network call");

    // serve with the stored login talks ChatGPT flavour to the emulator.
    let upstream = format!("{}/backend-api/codex", emu.base_url());
    let serve = Serve::local(home.path(), &upstream, "chatgpt", &data, &[]);
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/responses", serve.url))
        .json(&json!({"model": "gpt-5.5", "input": "hi", "max_output_tokens": 100, "stream": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "completed");
    drop(serve);

    let out = run(home.path(), &["logout", "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(!auth.exists());
    emu.shutdown().await;
}

#[test]
fn import_from_a_codex_auth_json_and_api_key_login() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let claims = json!({"https://api.openai.com/auth": {"chatgpt_account_id": "acc-imported", "chatgpt_plan_type": "pro"},
                        "exp": 4_102_444_800_i64, "email": "dev@example.invalid"});
    let jwt = codex_emulator::oauth::unsigned_jwt(&claims);
    let codex_home = home.path().join("codexhome");
    std::fs::create_dir_all(&codex_home).unwrap();
    let auth_json = json!({"auth_mode": "chatgpt", "OPENAI_API_KEY": null,
        "tokens": {"id_token": jwt, "access_token": jwt, "refresh_token": "rt-secret-value", "account_id": "acc-imported"},
        "last_refresh": "2026-11-23T06:00:00.000000Z"});
    std::fs::write(codex_home.join("auth.json"), auth_json.to_string()).unwrap();
    let out = command(home.path())
        .env("CODEX_HOME", &codex_home)
        .args(["login", "--from-codex", "--data-dir", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    #[cfg(unix)]
    assert_eq!(mode(&data.join("auth.json")), 0o600);
    let out = run(home.path(), &["status", "--json", "--data-dir", data.to_str().unwrap()]);
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["login"]["account_id"], "acc-imported");
    assert_eq!(status["login"]["plan"], "pro");
    assert_eq!(status["login"]["email"], "dev@example.invalid");
    assert_eq!(status["login"]["expires_at_ms"], 4_102_444_800_000_i64);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("rt-secret-value"));

    let mut child = command(home.path())
        .args(["login", "--with-api-key", "--data-dir", data.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"sk-typed-on-stdin\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("API key") && !text.contains("sk-typed-on-stdin"), "{text}");
}
