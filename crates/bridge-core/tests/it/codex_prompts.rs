//! `codex` instructions mode over an OpenCode conversation (acceptance 5): the official instructions
//! replace OpenCode's own Codex prompt, the bridge prompt is inserted once per request across 20 turns and
//! never duplicated, and `env_context = "tail"` keeps the leading items' chain hash across a date change.

use std::collections::BTreeMap;
use std::time::Duration;

use bridge_core::codex::prompts::BRIDGE_PROMPT;
use serde_json::{Value, json};

use crate::codex_support::*;
use crate::support::capture_body;

const OFFICIAL: &str = "You are Codex (official instructions for the test).\n";

/// A chain hash over items: each step hashes the previous digest and the item's JSON.
fn chain(items: &[Value]) -> String {
    let mut digest = blake3::hash(b"");
    for item in items {
        let mut h = blake3::Hasher::new();
        h.update(digest.as_bytes());
        h.update(item.to_string().as_bytes());
        digest = h.finalize();
    }
    digest.to_hex().to_string()
}

fn bridge_prompts(items: &[Value]) -> usize {
    items.iter().filter(|i| i["content"].to_string().contains("codex-bridge: tools")).count()
}

#[tokio::test]
async fn twenty_turns_of_opencode_in_codex_mode() {
    let emu = emulator().await;
    let base: Value =
        serde_json::from_slice(&capture_body("opencode-openai-builtin__s1-t1__r02__POST-v1-responses.json")).unwrap();
    let system = base["input"][0]["content"].as_str().unwrap().to_owned();
    let opencode_prompt = system.split("You are powered by").next().unwrap().to_owned();
    let files = BTreeMap::from([
        ("gpt_5_codex_prompt.md".to_owned(), OFFICIAL.to_owned()),
        ("opencode-codex.txt".to_owned(), opencode_prompt.clone()),
    ]);
    emu.state().releases.publish("rust-v0.169.0", files);
    let dir = tempfile::tempdir().unwrap();
    login(&emu, dir.path()).await;
    let bridge =
        chatgpt_bridge(&emu, dir.path(), "[upstream.codex]\ninstructions = \"codex\"\nenv_context = \"tail\"").await;
    let cache = bridge.state.codex.as_ref().unwrap().instructions.clone().unwrap();
    for _ in 0..100 {
        if cache.status().len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cache.status().len(), 2, "both prompts warmed at startup");

    let mut history: Vec<Value> = Vec::new();
    let mut previous_prefix: Option<Vec<Value>> = None;
    for turn in 1..=20 {
        let date = if turn <= 10 { "Mon Nov 23 2026" } else { "Tue Nov 24 2026" };
        let mut body = base.clone();
        history.push(json!({"role": "user", "content": [{"type": "input_text", "text": format!("turn {turn}")}]}));
        let mut input = vec![json!({"role": "developer", "content": system.replace("Mon Nov 23 2026", date)})];
        input.extend(history.iter().cloned());
        body["input"] = Value::Array(input);
        let (status, _, text) = post(&bridge, &body, &[]).await;
        assert_eq!(status, 200, "turn {turn}: {text}");
        let sent = upstream_bodies(&emu).pop().unwrap().body;
        let items = sent["input"].as_array().unwrap().clone();
        assert_eq!(sent["instructions"], OFFICIAL);
        assert_eq!(bridge_prompts(&items), 1, "turn {turn}");
        assert_eq!(items[0]["content"][0]["text"], BRIDGE_PROMPT);
        let kept = items[1]["content"].as_str().unwrap();
        assert!(kept.starts_with("You are powered by the model"), "OpenCode's prompt replaced: {kept:.80}");
        assert!(!kept.contains("<env>"), "env moved out of the prefix");
        let tail = items.last().unwrap();
        assert_eq!(tail["role"], "developer");
        assert!(tail["content"][0]["text"].as_str().unwrap().contains(date));
        // Everything before the tail extends the previous turn's prefix: same chain hash over the shared part.
        let prefix = items[..items.len() - 1].to_vec();
        if let Some(prev) = &previous_prefix {
            assert_eq!(chain(&prefix[..prev.len()]), chain(prev), "turn {turn}: prefix changed");
        }
        previous_prefix = Some(prefix);
        history.push(
            json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "pong"}]}),
        );
    }

    // A client that already sent the bridge prompt does not get a second one.
    let mut body = base.clone();
    body["input"].as_array_mut().unwrap().insert(0, json!({"role": "developer", "content": BRIDGE_PROMPT}));
    assert_eq!(post(&bridge, &body, &[]).await.0, 200);
    let sent = upstream_bodies(&emu).pop().unwrap().body;
    assert_eq!(bridge_prompts(sent["input"].as_array().unwrap()), 1);
    bridge.stop().await;
}
