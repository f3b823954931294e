//! The Chat-Completions OpenCode scenario of `bench cache` (`chat-opencode`): OpenCode with
//! `@ai-sdk/openai-compatible`, 10 turns with `reasoning_effort`, no `prompt_cache_key`, only the
//! `x-session-affinity` / `x-session-id` headers, each turn's history holding the previous answers.
//!
//! Unlike the generated scenarios it is played live (each turn sends the answers the emulator gave), three
//! ways: client-direct is what a translating peer sends (the same translation, no key, no reasoning
//! replay) straight to the emulator's `/v1/responses`; the bridge's `/v1/chat/completions` with reasoning
//! replay on; and again with `[chat] reasoning_replay = false`. The limit is the emulator's for the
//! client-direct trace.

use std::path::Path;

use bridge_sse::SseDecoder;
use bridge_types::Usage;
use codex_emulator::{EmulatorConfig, RoutingMode};
use serde_json::{Value, json};

use crate::BenchError;
use crate::cache::{InProcessBridge, ScenarioResult, routing_name};
use crate::workload::{Gen, T0_MS};

/// The scenario's name.
pub const NAME: &str = "chat-opencode";
const TURNS: usize = 10;
const SESSION: &str = "ses_chat_bench";

/// Where one conversation goes.
#[derive(Clone, Copy)]
enum Target<'a> {
    /// Translated here, posted to the emulator's Responses API without key or replay.
    Direct(&'a str),
    /// The bridge's Chat route.
    Bridge(&'a str),
}

/// Runs the scenario under each routing mode: rows `chat-opencode` (replay on) and `chat-noreplay`.
pub async fn run(routings: &[RoutingMode], data_dir: &Path, seed: u64) -> Result<Vec<ScenarioResult>, BenchError> {
    let client = crate::load::client(2)?;
    let mut results = Vec::new();
    for &routing in routings {
        let config = EmulatorConfig { routing, log_capacity: 10_000, ..EmulatorConfig::default() };
        let http_affinity = config.http_affinity;
        let emulator = codex_emulator::spawn(config)
            .await
            .map_err(|e| BenchError::Start { what: "emulator", message: e.to_string() })?;
        let upstream = format!("{}/v1", emulator.base_url());
        emulator.state().reset();
        let direct = converse(&client, Target::Direct(&format!("{upstream}/responses")), seed).await?;
        let limit = emulator.state().limit();
        for (name, replay) in [(NAME, true), ("chat-noreplay", false)] {
            let dir = data_dir.join(format!("chat-{}-{replay}", routing_name(routing)));
            let toml = format!("[chat]\nreasoning_replay = {replay}\n");
            let bridge = InProcessBridge::start(&upstream, &dir, &toml).await?;
            emulator.state().reset();
            let via = converse(&client, Target::Bridge(&format!("{}/v1/chat/completions", bridge.url)), seed).await?;
            bridge.stop().await;
            results.push(ScenarioResult {
                scenario: name.to_owned(),
                routing: routing_name(routing).to_owned(),
                transport: "http".to_owned(),
                http_affinity,
                routing_seed: 0,
                bridge_reached: true,
                requests: via.len(),
                input_tokens: direct.iter().filter_map(|u| u.input_tokens).sum(),
                direct_cached: direct.iter().filter_map(|u| u.cached_tokens).sum(),
                bridge_cached: via.iter().filter_map(|u| u.cached_tokens).sum(),
                limit_cached: limit.cached_tokens,
            });
        }
        emulator.shutdown().await;
    }
    Ok(results)
}

fn chat_tools() -> Value {
    let mut g = Gen::new(0x7001_5EED);
    let tool = |name: &str, g: &mut Gen| {
        json!({"type": "function", "function": {"name": name, "description": g.text(300),
            "parameters": {"type": "object", "properties": {"command": {"type": "string"},
            "description": {"type": "string"}}, "required": ["command"]}}})
    };
    json!([tool("bash", &mut g), tool("read", &mut g), tool("edit", &mut g), tool("glob", &mut g)])
}

/// One 10-turn conversation; returns each turn's usage.
async fn converse(client: &reqwest::Client, target: Target<'_>, seed: u64) -> Result<Vec<Usage>, BenchError> {
    let mut g = Gen::new(seed ^ 0xC4A7);
    let system =
        format!("You are OpenCode, the best coding agent.\n{}\nWorking directory: /workspace\n", g.text(9_000));
    let mut messages = vec![json!({"role": "system", "content": system})];
    let tools = chat_tools();
    let mut usages = Vec::with_capacity(TURNS);
    for turn in 0..TURNS {
        messages.push(json!({"role": "user", "content": g.text_in(200, 2000)}));
        let body = json!({"model": "gpt-5.5", "max_tokens": 32000, "reasoning_effort": "medium",
            "messages": messages, "tools": tools, "tool_choice": "auto", "stream": true,
            "stream_options": {"include_usage": true}});
        let at = (T0_MS + turn as u64 * 45_000).to_string();
        let (url, payload) = match target {
            Target::Direct(url) => {
                let bytes = serde_json::to_vec(&body).map_err(|e| request_error(e.to_string()))?;
                let t = bridge_core::chat::translate_in::translate(&bytes).map_err(|e| request_error(e.message))?;
                (url, t.body)
            }
            Target::Bridge(url) => (url, serde_json::to_vec(&body).map_err(|e| request_error(e.to_string()))?),
        };
        let resp = client
            .post(url)
            .header("authorization", "Bearer bench")
            .header("content-type", "application/json")
            .header("user-agent", "opencode/1.18.33 ai-sdk/provider-utils/4.0.23 runtime/bun/1.3.14")
            .header("x-session-affinity", SESSION)
            .header("x-session-id", SESSION)
            .header("x-emulator-time", at)
            .body(payload)
            .send()
            .await
            .map_err(|e| request_error(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| request_error(e.to_string()))?;
        if status != 200 {
            return Err(request_error(format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes))));
        }
        let (text, usage) = match target {
            Target::Direct(_) => responses_answer(&bytes),
            Target::Bridge(_) => chat_answer(&bytes),
        };
        usages.push(usage.unwrap_or_default());
        messages.push(json!({"role": "assistant", "content": text}));
    }
    Ok(usages)
}

fn request_error(message: String) -> BenchError {
    BenchError::Request { target: "chat replay", message }
}

fn events(sse: &[u8]) -> Vec<String> {
    let mut decoder = SseDecoder::new();
    decoder.feed(sse);
    let mut out = Vec::new();
    while let Ok(Some(event)) = decoder.next_event() {
        out.push(event.data);
    }
    out
}

/// The assistant text and usage of a Responses SSE body.
fn responses_answer(sse: &[u8]) -> (String, Option<Usage>) {
    let (mut text, mut usage) = (String::new(), None);
    for data in events(sse) {
        let Ok(v) = serde_json::from_str::<Value>(&data) else { continue };
        match v.get("type").and_then(Value::as_str) {
            Some("response.output_text.delta") => text.push_str(v["delta"].as_str().unwrap_or_default()),
            Some("response.completed") => usage = Usage::from_event(&v),
            _ => {}
        }
    }
    (text, usage)
}

/// The assistant text and usage of a Chat chunk stream.
fn chat_answer(sse: &[u8]) -> (String, Option<Usage>) {
    let (mut text, mut usage) = (String::new(), None);
    for data in events(sse) {
        let Ok(v) = serde_json::from_str::<Value>(&data) else { continue };
        if let Some(d) = v.pointer("/choices/0/delta/content").and_then(Value::as_str) {
            text.push_str(d);
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            let num = |p: &str| u.pointer(p).and_then(Value::as_u64);
            usage = Some(Usage {
                input_tokens: num("/prompt_tokens"),
                cached_tokens: num("/prompt_tokens_details/cached_tokens"),
                cache_write_tokens: num("/prompt_tokens_details/cache_write_tokens"),
                output_tokens: num("/completion_tokens"),
                reasoning_tokens: num("/completion_tokens_details/reasoning_tokens"),
                total_tokens: num("/total_tokens"),
            });
        }
    }
    (text, usage)
}
