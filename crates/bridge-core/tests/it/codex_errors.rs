//! Error mapping on the Codex route (acceptance 6), each with its exact status, headers and body:
//! usage limit → 429 naming the plan and reset time with `Retry-After`; 429 and 5xx retried before the
//! first byte; `response.failed` mid-stream reaches the client as the same event and is recorded; upstream
//! error bodies keep their message.

use serde_json::{Value, json};

use crate::codex_support::*;

/// These tests hold the HTTP path's policy (refresh and retry after a 401, retries, headers on the POST);
/// the upstream socket's are in upstream_ws.rs.
const HTTP_PATH: &str = "[upstream]\ntransport = \"http\"";

fn request(stream: bool) -> Value {
    json!({"model": "gpt-5.5", "input": "hi", "store": false, "stream": stream})
}

/// What the emulator answers to `body` with `headers` when asked directly (ChatGPT flavour, valid token).
async fn direct(
    emu: &codex_emulator::RunningEmulator,
    token: &str,
    account: &str,
    body: &Value,
    fault: &str,
) -> (u16, String) {
    let r = crate::support::client()
        .post(format!("{}/backend-api/codex/responses", emu.base_url()))
        .bearer_auth(token)
        .header("chatgpt-account-id", account)
        .header("x-emulator-fault", fault)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn usage_limit_is_a_429_with_plan_reset_time_and_retry_after() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    login(&emu, dir.path()).await;
    let bridge = chatgpt_bridge(&emu, dir.path(), HTTP_PATH).await;
    let (status, headers, body) =
        post(&bridge, &request(true), &[("x-emulator-fault", "usage_limit;resets_in=3600;plan=pro")]).await;
    assert_eq!(status, 429);
    assert_eq!(headers["content-type"], "application/json");
    let retry_after: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((3599..=3600).contains(&retry_after), "{retry_after}");
    let resets_at = serde_json::from_str::<Value>(&body).unwrap()["error"]["resets_at"].as_i64().unwrap();
    let expected = json!({"error": {
        "type": "usage_limit_reached",
        "plan_type": "pro",
        "resets_at": resets_at,
        "message": format!(
            "You have hit your ChatGPT usage limit (pro plan). It resets at {} (in about 60 min).",
            bridge_core::codex::errors::utc(resets_at)
        ),
        "code": "usage_limit_reached",
        "param": null
    }});
    assert_eq!(body, expected.to_string());
    assert_eq!(upstream_bodies(&emu).len(), 1, "a usage limit is not retried");
    bridge.stop().await;
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried_before_the_first_byte() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = login(&emu, dir.path()).await;
    let bridge = chatgpt_bridge(&emu, dir.path(), HTTP_PATH).await;
    // One 429 with Retry-After: 0, then success.
    let (status, _, body) =
        post(&bridge, &request(true), &[("x-emulator-fault", "status=429;retry_after=0;times=1")]).await;
    assert_eq!(status, 200);
    assert!(body.contains("event: response.completed"));
    assert_eq!(upstream_bodies(&emu).len(), 2);
    // A 503 that persists: three attempts (max_retries = 2), then the upstream's status and body.
    let fault = "status=503;code=server_is_overloaded";
    let (status, headers, body) = post(&bridge, &request(true), &[("x-emulator-fault", fault)]).await;
    assert_eq!(status, 503);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(upstream_bodies(&emu).len(), 5);
    let account = tokens.account_id.clone().unwrap();
    let (direct_status, direct_body) = direct(&emu, &tokens.access_token, &account, &request(true), fault).await;
    assert_eq!(
        (status, body.clone()),
        (direct_status, serde_json::from_str::<Value>(&direct_body).unwrap().to_string())
    );
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["code"], "server_is_overloaded");
    assert_eq!(bridge.state.metrics.counter("codex_bridge_upstream_retries_total", &[("reason", "429")]), 1);
    assert_eq!(bridge.state.metrics.counter("codex_bridge_upstream_retries_total", &[("reason", "5xx")]), 2);
    bridge.stop().await;
}

#[tokio::test]
async fn response_failed_mid_stream_reaches_the_client_and_is_recorded() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = login(&emu, dir.path()).await;
    let bridge = chatgpt_bridge(&emu, dir.path(), HTTP_PATH).await;
    let fault = "fail_at=3;code=server_error;message=backend fell over";
    let (status, headers, body) = post(&bridge, &request(true), &[("x-emulator-fault", fault)]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    let (_, direct_body) =
        direct(&emu, &tokens.access_token, tokens.account_id.as_deref().unwrap(), &request(true), fault).await;
    // The same events as the backend sends (ids differ per request), ending with the same response.failed.
    let events = |text: &str| -> Vec<(String, Value)> {
        text.split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(|e| {
                let (name, data) = e.split_once('\n').unwrap();
                let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                (name.to_owned(), data)
            })
            .collect()
    };
    let (got, want) = (events(&body), events(&direct_body));
    assert_eq!(got.iter().map(|e| &e.0).collect::<Vec<_>>(), want.iter().map(|e| &e.0).collect::<Vec<_>>());
    let (name, failed) = got.last().unwrap();
    assert_eq!(name, "event: response.failed");
    assert_eq!(failed["response"]["error"], json!({"code": "server_error", "message": "backend fell over"}));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(bridge.state.metrics.counter("codex_bridge_stream_errors_total", &[("reason", "response_failed")]), 1);
    // A stream:false client gets the failure as an error object with the upstream's message.
    let (status, _, body) = post(&bridge, &request(false), &[("x-emulator-fault", fault)]).await;
    assert_eq!(status, 500);
    assert_eq!(
        body,
        r#"{"error":{"message":"backend fell over","type":"server_error","code":"server_error","param":null}}"#
    );
    bridge.stop().await;
}

#[tokio::test]
async fn upstream_error_bodies_keep_their_message() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = login(&emu, dir.path()).await;
    let bridge = chatgpt_bridge(&emu, dir.path(), HTTP_PATH).await;
    let mut body = request(true);
    body["previous_response_id"] = json!("resp_gone");
    let (status, _, got) = post(&bridge, &body, &[]).await;
    let (direct_status, direct_body) =
        direct(&emu, &tokens.access_token, tokens.account_id.as_deref().unwrap(), &body, "").await;
    assert_eq!(status, direct_status);
    assert_eq!(status, 400);
    assert_eq!(got, serde_json::from_str::<Value>(&direct_body).unwrap().to_string());
    bridge.stop().await;
}
