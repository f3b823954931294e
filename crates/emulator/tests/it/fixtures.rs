//! Real captured requests (Codex CLI 0.169.0, OpenCode 1.18.33): a second turn gets cached tokens.

use codex_emulator::EmulatorConfig;
use serde_json::Value;

use crate::common::{post_api, read_sse, start};

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/captures/");

fn fixture(name: &str) -> (Value, Vec<(String, String)>) {
    let text = std::fs::read_to_string(format!("{CAPTURES}{name}")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let headers = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h[0].as_str().unwrap().to_owned(), h[1].as_str().unwrap().to_owned()))
        .filter(|(k, _)| ["session-id", "session_id"].contains(&k.to_ascii_lowercase().as_str()))
        .collect();
    (v["body"].clone(), headers)
}

async fn second_turn_hits(first: &str, second: &str) {
    let emu = start(EmulatorConfig::default()).await;
    let mut usages = Vec::new();
    for name in [first, second] {
        let (body, headers) = fixture(name);
        let extra: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        usages.push(read_sse(post_api(&emu, &body, &extra).await).await.usage());
    }
    let input1 = usages[0]["input_tokens"].as_u64().unwrap();
    assert!(input1 > 1024, "{first}: {input1} tokens");
    assert_eq!(usages[0]["input_tokens_details"]["cached_tokens"], 0);
    let cached = usages[1]["input_tokens_details"]["cached_tokens"].as_u64().unwrap();
    assert!(cached >= 1024 && cached % 128 == 0, "{second}: cached {cached}");
    assert!(cached <= input1);
    let limit = emu.state().limit();
    assert_eq!(limit.requests, 2);
    assert!(limit.cached_tokens >= cached);
    emu.shutdown().await;
}

#[tokio::test]
async fn codex_exec_resume_is_cached() {
    second_turn_hits(
        "codex-exec__s1-t1__r01__POST-v1-responses.json",
        "codex-exec__s1-t2-resume__r01__POST-v1-responses.json",
    )
    .await;
}

#[tokio::test]
async fn opencode_continue_is_cached() {
    second_turn_hits(
        "opencode-openai-builtin__s1-t1__r02__POST-v1-responses.json",
        "opencode-openai-builtin__s1-t2-continue__r01__POST-v1-responses.json",
    )
    .await;
}

/// Every captured Codex `POST …/responses` body passes ChatGPT-flavour validation and streams to
/// completion; OpenCode bodies carrying `max_output_tokens` (AI-SDK provider) or `temperature` (title
/// requests) get the backend's `Unsupported parameter` answer, so the bridge must strip them.
#[tokio::test]
async fn every_captured_post_passes_chatgpt_validation() {
    let emu = start(EmulatorConfig { accept_any_token: true, ..crate::common::fast() }).await;
    let mut names: Vec<String> = std::fs::read_dir(CAPTURES)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("__POST-") && n.ends_with("-responses.json"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "{names:?}");
    for name in names {
        let (body, _) = fixture(&name);
        let resp = crate::common::client()
            .post(format!("{}/backend-api/codex/responses", emu.base_url()))
            .bearer_auth("any")
            .header("chatgpt-account-id", "acct")
            .json(&body)
            .send()
            .await
            .unwrap();
        let rejected = ["max_output_tokens", "temperature"].into_iter().find(|p| body.get(*p).is_some());
        if let Some(param) = rejected {
            assert!(name.starts_with("opencode-"), "{name}");
            assert_eq!(resp.status(), 400, "{name}");
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["detail"], format!("Unsupported parameter: {param}"), "{name}");
            continue;
        }
        assert_eq!(resp.status(), 200, "{name}");
        let sse = read_sse(resp).await;
        assert_eq!(sse.names().last(), Some(&"response.completed"), "{name}");
    }
    emu.shutdown().await;
}
