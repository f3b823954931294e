//! Validation in both flavours: exact status and body.

use codex_emulator::{EmulatorConfig, RunningEmulator};
use serde_json::{Value, json};

use crate::common::{body, client, fast, post_api, read_sse, start, user};

async fn chatgpt(emu: &RunningEmulator, body: &Value, token: Option<&str>, account: Option<&str>) -> (u16, Value) {
    let mut req = client().post(format!("{}/backend-api/codex/responses", emu.base_url())).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(a) = account {
        req = req.header("chatgpt-account-id", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn accepting() -> EmulatorConfig {
    EmulatorConfig { accepted_tokens: vec!["tok-ok".into()], ..fast() }
}

#[tokio::test]
async fn api_flavour_requires_a_bearer() {
    let emu = start(fast()).await;
    let resp =
        client().post(format!("{}/v1/responses", emu.base_url())).json(&body(vec![user("hi")])).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v,
        json!({"error": {"message": "Missing bearer or basic authentication in header", "type": "invalid_request_error", "param": null, "code": null}})
    );
    // bad JSON → 400 JSON error, never a panic
    let resp = client()
        .post(format!("{}/v1/responses", emu.base_url()))
        .bearer_auth("sk")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    // missing model
    let resp = post_api(&emu, &json!({"input": "hi"}), &[]).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "missing_required_parameter");
    // previous_response_id cannot be resolved (store:false, stateless)
    let mut b = body(vec![user("hi")]);
    b["previous_response_id"] = json!("resp_x");
    let resp = post_api(&emu, &b, &[]).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "previous_response_not_found");
    assert_eq!(emu.state().stats().rejected, 4);
    emu.shutdown().await;
}

#[tokio::test]
async fn chatgpt_flavour_auth_and_account() {
    let emu = start(accepting()).await;
    let b = body(vec![user("hi")]);
    let (s, v) = chatgpt(&emu, &b, None, Some("acct")).await;
    assert_eq!((s, v["error"]["message"].as_str()), (401, Some("Missing bearer or basic authentication in header")));
    let (s, v) = chatgpt(&emu, &b, Some("unknown"), Some("acct")).await;
    assert_eq!(s, 401);
    assert_eq!(
        v,
        json!({"error": {"message": "Your authentication token has been invalidated. Please try signing in again.",
            "type": "invalid_request_error", "code": "token_invalidated", "param": null}, "status": 401})
    );
    let (s, v) = chatgpt(&emu, &b, Some("tok-ok"), None).await;
    assert_eq!((s, v), (400, json!({"detail": "Missing chatgpt-account-id header"})));
    let (s, _) = chatgpt(&emu, &b, Some("tok-ok"), Some("acct")).await;
    assert_eq!(s, 200);
    emu.shutdown().await;
}

#[tokio::test]
async fn chatgpt_flavour_body_rules() {
    let emu = start(accepting()).await;
    let ok = body(vec![user("hi")]);
    let cases: Vec<(Value, u16, Value)> = vec![
        (
            {
                let mut b = ok.clone();
                b["store"] = json!(true);
                b
            },
            400,
            json!({"detail": "Store must be set to false"}),
        ),
        (
            {
                let mut b = ok.clone();
                b.as_object_mut().unwrap().remove("store");
                b
            },
            400,
            json!({"detail": "Store must be set to false"}),
        ),
        (
            {
                let mut b = ok.clone();
                b["stream"] = json!(false);
                b
            },
            400,
            json!({"detail": "Stream must be set to true"}),
        ),
        (
            {
                let mut b = ok.clone();
                b["max_output_tokens"] = json!(100);
                b
            },
            400,
            json!({"detail": "Unsupported parameter: max_output_tokens"}),
        ),
        (
            {
                let mut b = ok.clone();
                b["temperature"] = json!(0.2);
                b
            },
            400,
            json!({"detail": "Unsupported parameter: temperature"}),
        ),
        (
            {
                let mut b = ok.clone();
                b["top_p"] = json!(0.9);
                b
            },
            400,
            json!({"detail": "Unsupported parameter: top_p"}),
        ),
        (
            {
                let mut b = ok.clone();
                b["prompt_cache_retention"] = json!("24h");
                b
            },
            400,
            json!({"detail": "Unsupported parameter: prompt_cache_retention"}),
        ),
        (
            {
                let mut b = ok.clone();
                b["max_completion_tokens"] = json!(5);
                b
            },
            400,
            json!({"detail": "Unsupported parameter: max_completion_tokens"}),
        ),
        (
            {
                let mut b = ok.clone();
                b["prompt_cache_options"] = json!({});
                b
            },
            400,
            json!({"detail": "Unsupported parameter: prompt_cache_options"}),
        ),
        (
            {
                let mut b = ok.clone();
                b["input"].as_array_mut().unwrap().push(json!({"type": "item_reference", "id": "rs_1"}));
                b
            },
            404,
            json!({"error": {"message": "Item with id 'rs_1' not found. Items are not persisted when `store` is set to false. Try again with `store` set to true, or remove this item from your input.",
                "type": "invalid_request_error", "param": "input", "code": null}}),
        ),
    ];
    for (b, status, expected) in cases {
        let (s, v) = chatgpt(&emu, &b, Some("tok-ok"), Some("acct")).await;
        assert_eq!((s, &v), (status, &expected), "body {b}");
    }
    // the same parameters pass in API flavour
    let mut b = ok.clone();
    b["temperature"] = json!(0.2);
    b["max_output_tokens"] = json!(100);
    let sse = read_sse(post_api(&emu, &b, &[]).await).await;
    assert_eq!(sse.names().last(), Some(&"response.completed"));
    emu.shutdown().await;
}
