//! Cache ratios against the emulator (issue 4, items 6 and 8): the bridge's identity versus the limit
//! calculator and versus client-direct traffic. Virtual time comes from the `x-emulator-time` header, so
//! every number is deterministic. Run with `--nocapture` to see the numbers recorded in docs/BENCHMARKS.md.

use codex_emulator::RunningEmulator;
use codex_emulator::config::{EmulatorConfig, RoutingMode};
use serde_json::{Value, json};

use crate::support::{Options, TestBridge, client};

const T0: u64 = 1_800_000_000_000;

async fn emulator(routing: RoutingMode) -> RunningEmulator {
    codex_emulator::spawn(EmulatorConfig { routing, virtual_clock_ms: Some(T0), ..EmulatorConfig::default() })
        .await
        .unwrap()
}

/// About `tokens` o200k tokens of distinct text.
fn text(label: &str, tokens: usize) -> String {
    (0..tokens / 12).map(|i| format!("{label} line {i}: the quick brown fox jumps over it.\n")).collect()
}

/// Posts a non-streaming request at virtual time `t_ms` (after T0) and returns (input, cached) tokens.
async fn post(url: &str, body: &Value, headers: &[(&str, &str)], t_ms: u64) -> (u64, u64) {
    let mut req = client()
        .post(url)
        .json(body)
        .header("authorization", "Bearer test")
        .header("x-emulator-time", (T0 + t_ms).to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let v: Value = resp.json().await.unwrap();
    let usage = &v["usage"];
    (usage["input_tokens"].as_u64().unwrap(), usage["input_tokens_details"]["cached_tokens"].as_u64().unwrap())
}

fn user(text: String) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

fn reply() -> Value {
    json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "pong"}]})
}

async fn bridge_to(emu: &RunningEmulator, file: &str) -> TestBridge {
    TestBridge::with(&format!("{}/v1", emu.base_url()), Options { file: file.into(), ..Options::default() }).await
}

#[tokio::test]
async fn twenty_turn_session_gets_95_percent_of_the_limit() {
    let emu = emulator(RoutingMode::Docs).await;
    let bridge = bridge_to(&emu, "").await;
    let mut input = vec![json!({"role": "developer", "content": text("startup", 2000)})];
    let mut cached = 0;
    for turn in 0..20u64 {
        input.push(user(text(&format!("turn {turn}"), 300)));
        let body = json!({"model": "gpt-5", "input": input, "metadata": {"conversation_id": "twenty"}});
        cached += post(&bridge.url("/v1/responses"), &body, &[], turn * 20_000).await.1;
        input.push(reply());
    }
    let limit = emu.state().limit();
    let ratio = cached as f64 / limit.cached_tokens as f64;
    println!("BENCH twenty-turn: bridge cached {cached} of limit {} = {:.1}%", limit.cached_tokens, ratio * 100.0);
    assert!(ratio >= 0.95, "{ratio}");
    bridge.stop().await;
    emu.shutdown().await;
}

/// Base conversation of about 30k tokens, then 3 forks by `forkId`; returns the share of the shared prefix
/// (the base's last prompt) that each fork got cached, at worst.
async fn forks(routing: RoutingMode, file: &str) -> f64 {
    let emu = emulator(routing).await;
    let bridge = bridge_to(&emu, file).await;
    let url = bridge.url("/v1/responses");
    let mut input = vec![json!({"role": "developer", "content": text("startup", 2000)})];
    let mut shared = 0;
    for turn in 0..6u64 {
        input.push(user(text(&format!("base {turn}"), 4600)));
        let body = json!({"model": "gpt-5", "input": input, "metadata": {"conversation_id": "base30k"}});
        shared = post(&url, &body, &[], turn * 30_000).await.0;
        input.push(reply());
    }
    assert!(shared >= 28_000, "{shared}");
    let mut worst = f64::MAX;
    for f in 0..3u64 {
        let mut fork = input.clone();
        fork.push(user(format!("fork {f}: try another approach")));
        let body = json!({"model": "gpt-5", "input": fork, "metadata": {"conversation_id": "base30k", "forkId": format!("f{f}")}});
        let (_, cached) = post(&url, &body, &[], 200_000 + f * 10_000).await;
        worst = worst.min(cached as f64 / shared as f64);
    }
    bridge.stop().await;
    emu.shutdown().await;
    worst
}

#[tokio::test]
async fn forks_of_a_30k_conversation_keep_90_percent_under_lineage_affinity() {
    let lineage = forks(RoutingMode::SessionHeader, "").await;
    let key = forks(RoutingMode::SessionHeader, "[cache]\naffinity = \"key\"").await;
    let lineage_docs = forks(RoutingMode::Docs, "").await;
    println!(
        "BENCH forks (worst of 3, share of the shared prefix cached): session-header+lineage {:.1}%, session-header+key {:.1}%, docs+lineage {:.1}%",
        lineage * 100.0,
        key * 100.0,
        lineage_docs * 100.0
    );
    assert!(lineage >= 0.9, "{lineage}");
}

/// 8 fresh sessions with one ~12k-token startup context, each with its own Codex-style thread id; returns
/// the worst and the mean share of the servable prefix (per the limit) cached for sessions 2 to 8.
async fn fresh_sessions(routing: RoutingMode, through_bridge: bool) -> (f64, f64) {
    let emu = emulator(routing).await;
    let bridge = bridge_to(&emu, "").await;
    let url = if through_bridge { bridge.url("/v1/responses") } else { format!("{}/v1/responses", emu.base_url()) };
    let startup = text("shared startup context", 12_000);
    let mut cached = Vec::new();
    for s in 0..8u64 {
        let thread = format!("0199aaaa-0000-7000-8000-00000000000{s}");
        let body = json!({"model": "gpt-5", "prompt_cache_key": thread, "input": [
            {"role": "developer", "content": startup},
            user(format!("session {s}: your task"))
        ]});
        let headers = [("session-id", thread.as_str()), ("x-codex-bridge-cache-namespace", "orchestrator")];
        let used = if through_bridge { &headers[..] } else { &headers[..1] };
        cached.push(post(&url, &body, used, s * 5_000).await.1);
    }
    let limit = emu.state().limit();
    let shares: Vec<f64> = (1..8).map(|i| cached[i] as f64 / limit.per_request[i] as f64).collect();
    bridge.stop().await;
    emu.shutdown().await;
    (shares.iter().copied().fold(f64::MAX, f64::min), shares.iter().sum::<f64>() / shares.len() as f64)
}

#[tokio::test]
async fn fresh_sessions_share_the_startup_prefix_in_namespace_mode() {
    let mut line = String::from("BENCH fresh sessions 2-8 (share of the servable prefix cached):");
    for routing in [RoutingMode::Docs, RoutingMode::SessionHeader] {
        let (worst, _) = fresh_sessions(routing, true).await;
        let (_, direct_mean) = fresh_sessions(routing, false).await;
        line.push_str(&format!(
            " {routing:?}: namespace worst {:.1}%, client-direct mean {:.1}%;",
            worst * 100.0,
            direct_mean * 100.0
        ));
        assert!(worst >= 0.9, "{routing:?} {worst}");
        assert!(direct_mean < 0.2, "{routing:?} {direct_mean}");
    }
    println!("{line}");
}

#[tokio::test]
async fn sessions_explain_a_forced_miss_as_prefix_changed_at_the_edited_item() {
    let emu = emulator(RoutingMode::Docs).await;
    let bridge = bridge_to(&emu, "").await;
    let url = bridge.url("/v1/responses");
    let mut input = vec![json!({"role": "developer", "content": text("startup", 200)})];
    for turn in 0..3u64 {
        input.push(user(text(&format!("turn {turn}"), 900)));
        let body = json!({"model": "gpt-5", "input": input, "metadata": {"conversation_id": "edited"}});
        post(&url, &body, &[], turn * 10_000).await;
        bridge.settle().await;
        input.push(reply());
    }
    input[3] = user("an edited early message".into());
    input.push(user("continue".into()));
    post(&url, &json!({"model": "gpt-5", "input": input, "metadata": {"conversation_id": "edited"}}), &[], 40_000)
        .await;
    bridge.settle().await;
    let rows = bridge.state.store.read_log("turns/edited", 0, 0).await.unwrap();
    let rows: Vec<Value> = rows.iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect();
    let shown: Vec<(&str, &str)> =
        rows.iter().map(|r| (r["classification"].as_str().unwrap(), r["outcome"].as_str().unwrap())).collect();
    assert_eq!(
        shown,
        [("new", "new-identity"), ("append", "hit"), ("append", "hit"), ("rewrite@3", "prefix-changed@3:input")]
    );
    assert_eq!(
        bridge.state.metrics.counter("codex_bridge_cache_outcome_reasons_total", &[("reason", "prefix-changed:input")]),
        1
    );
    bridge.stop().await;
    emu.shutdown().await;
}
