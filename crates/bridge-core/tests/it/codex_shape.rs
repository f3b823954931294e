//! The Codex shape on the wire (acceptance 3): requests captured from OpenCode 1.18.33 and Codex 0.169.0
//! go through a ChatGPT-mode bridge to the emulator, whose request log must show exactly the documented
//! edits: `store:false`, `stream:true`, `include` with `reasoning.encrypted_content` when reasoning is
//! present, no rejected parameter, no `item_reference`, the bearer token and account id.

use serde_json::{Value, json};

use crate::codex_support::*;
use crate::support::capture_body;

/// The documented transformation, written out independently of the bridge's code.
fn expected(mut body: Value) -> Value {
    let o = body.as_object_mut().unwrap();
    for k in codex_emulator::config::DEFAULT_REJECTED_PARAMS {
        o.remove(*k);
    }
    o.insert("store".into(), json!(false));
    o.insert("stream".into(), json!(true));
    if o.get("reasoning").is_some_and(|r| !r.is_null()) {
        let include = o.entry("include").or_insert(json!([]));
        if !include.as_array().unwrap().contains(&json!("reasoning.encrypted_content")) {
            include.as_array_mut().unwrap().push(json!("reasoning.encrypted_content"));
        }
    }
    if let Some(Value::Array(items)) = o.get_mut("input") {
        items.retain(|i| i["type"] != "item_reference");
    }
    body
}

fn with_item_reference(mut body: Value) -> Value {
    body["input"].as_array_mut().unwrap().insert(1, json!({"type": "item_reference", "id": "msg_gone"}));
    body
}

#[tokio::test]
async fn captured_requests_reach_the_backend_in_codex_shape() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let tokens = login(&emu, dir.path()).await;
    // The HTTP body shape (the socket's frames carry the same fields, see upstream_ws.rs).
    let bridge = chatgpt_bridge(&emu, dir.path(), "[upstream]\ntransport = \"http\"").await;
    let cases = [
        "opencode-custom-aisdk-openai__s1-t1__r01__POST-v1-responses.json",
        "opencode-custom-aisdk-openai__s1-t1__r02__POST-v1-responses.json",
        "opencode-openai-builtin__s1-t1__r01__POST-v1-responses.json",
        "opencode-openai-builtin__s1-t3-session-tool__r02__POST-v1-responses.json",
        "codex-exec-chatgptauth__s1-t1__r14__POST-backend-api-codex-responses.json",
        "codex-exec__s1-t3-resume-tool__r02__POST-v1-responses.json",
    ];
    let mut bodies: Vec<Value> =
        cases.iter().map(|c| serde_json::from_slice::<Value>(&capture_body(c)).unwrap()).collect();
    bodies.push(with_item_reference(bodies[3].clone()));
    let mut stream_false = bodies[0].clone();
    stream_false["stream"] = json!(false);
    bodies.push(stream_false);
    for (i, body) in bodies.iter().enumerate() {
        let (status, _, text) = post(&bridge, body, &[]).await;
        assert_eq!(status, 200, "case {i}: {text}");
        let sent = upstream_bodies(&emu);
        let last = sent.last().unwrap();
        assert_eq!(last.path, "/backend-api/codex/responses");
        // A request without a key gets one from the identity engine (tested in identity.rs); the rest of
        // the body must be exactly the documented Codex shape.
        let mut got = last.body.clone();
        if body.get("prompt_cache_key").is_none() {
            let key = got.as_object_mut().unwrap().remove("prompt_cache_key").unwrap();
            assert!(key.as_str().unwrap().starts_with("cache_"), "case {i}: {key}");
        }
        assert_eq!(got, expected(body.clone()), "case {i}");
        assert_eq!(header(last, "authorization"), Some(format!("Bearer {}", tokens.access_token).as_str()));
        assert_eq!(header(last, "chatgpt-account-id"), tokens.account_id.as_deref());
        assert_eq!(header(last, "originator"), Some("codex_cli_rs"));
        assert_eq!(header(last, "version"), Some("0.169.0"));
        assert!(!last.body.to_string().contains("item_reference"));
        if body["stream"] == json!(false) {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["status"], "completed", "aggregated for a stream:false client");
        }
    }
    // The Codex capture was already in Codex shape: it passes unchanged.
    assert_eq!(upstream_bodies(&emu)[4].body, bodies[4]);
    bridge.stop().await;
}

#[tokio::test]
async fn effort_variants_and_unknown_models() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().unwrap();
    login(&emu, dir.path()).await;
    let bridge =
        chatgpt_bridge(&emu, dir.path(), "[upstream.codex]\nmodel_aliases = { fast = \"gpt-5.4-mini\" }").await;
    let ask =
        |model: &str| json!({"model": model, "input": "hi", "reasoning": {"effort": "medium", "summary": "auto"}});
    for (asked, model, effort) in [
        ("gpt-5.5-high", "gpt-5.5", "high"),
        ("openai/gpt-5.5", "gpt-5.5", "medium"),
        ("fast-low", "gpt-5.4-mini", "low"),
        ("gpt-9-turbo-high", "gpt-9-turbo-high", "medium"),
    ] {
        assert_eq!(post(&bridge, &ask(asked), &[]).await.0, 200);
        let last = upstream_bodies(&emu).pop().unwrap();
        assert_eq!(last.body["model"], model, "{asked}");
        assert_eq!(last.body["reasoning"], json!({"effort": effort, "summary": "auto"}), "{asked}");
    }
    let models: Value =
        crate::support::client().get(bridge.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"gpt-5.5") && ids.contains(&"gpt-5.5-high") && ids.contains(&"gpt-5.1-codex-max-xhigh"));
    bridge.stop().await;
}
