//! Codex CLI 0.169 with its built-in `openai` provider, `openai_base_url` at codex-bridge (passthrough) in
//! front of the emulator: `codex exec`, `codex exec resume` and a tool turn complete over the bridge's
//! WebSocket ingress with no `error` event and no HTTP fallback (the bridge counts WebSocket upgrades and no
//! HTTP exchange), and the emulator receives each turn as one whole HTTP request (the bridge rebuilt the
//! `previous_response_id` deltas). With `[websocket] ingress = false` the upgrade gets one 426 and Codex's
//! first turn completes over HTTP at once. OpenCode's experimental WebSocket completes its turns through the
//! bridge's ingress too, and so does Codex's custom provider with `supports_websockets = true` against a
//! bridge that holds a ChatGPT login (the bridge's Codex shaping applies to the rebuilt turns).

use serde_json::Value;

use crate::support::bridge::{BridgeHome, UpstreamTransport};
use crate::support::codex::CODEX_CLIENT_KEY;
use crate::support::codex::{self, CodexSession};
use crate::support::opencode::{self, OpencodeSession};
use crate::support::process::ClientRun;
use crate::support::upstream;
use crate::support::{chatgpt, gate};

/// A clean run within 5 s: no retry or fallback delay.
fn assert_quick(run: &ClientRun) {
    run.assert_clean();
    assert!(run.elapsed.as_secs_f64() < 5.0, "{} took {:.1?}: a retry or fallback delay", run.what, run.elapsed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_exec_resume_and_a_tool_turn_over_the_bridges_websocket() {
    let Some(clients) = gate::clients() else { return };
    let emulator = upstream::start_emulator().await;
    let home = BridgeHome::new();
    let bridge = home.serve(&upstream::api_base(&emulator), "passthrough", "", &[]).await;
    let mut session = CodexSession::builtin(&clients, &bridge.responses_base()).await;
    let (thread_id, [first, second, third]) = codex::three_turns(&mut session, Some(&bridge)).await;
    [&first, &second, &third].into_iter().for_each(assert_quick);
    let usage2 = codex::usage(&second).expect("turn 2 usage");
    assert!(usage2.cached_input_tokens > 0, "turn 2 is served from the cache: {usage2:?}");

    // The bridge: one WebSocket per process, every turn a ws exchange, no HTTP fallback.
    let upgrades = bridge.counter("codex_bridge_requests_total", &[("status", "101")]).await;
    assert_eq!(upgrades, 3, "one upgrade per codex process");
    assert_eq!(bridge.counter("codex_bridge_requests_total", &[("status", "426")]).await, 0);
    let http = bridge.counter("codex_bridge_exchanges_by_transport_total", &[("transport", "http")]).await;
    assert_eq!(http, 0, "no POST /v1/responses: no HTTP fallback");
    let ws = bridge.counter("codex_bridge_exchanges_by_transport_total", &[("transport", "ws")]).await;
    assert_eq!(ws, 4, "turns 1 and 2, the tool call and its follow-up");
    let prewarms = bridge.counter("codex_bridge_ws_frames_total", &[("reason", "prewarm")]).await;
    assert_eq!(prewarms, 3, "each socket starts with a prewarm, answered by the bridge");
    let deltas = bridge.counter("codex_bridge_ws_frames_total", &[("reason", "delta")]).await;
    assert_eq!(deltas, 4, "every turn chained from the socket's last response");
    assert_eq!(bridge.counter("codex_bridge_ws_frames_total", &[("reason", "unknown_previous")]).await, 0);

    // The emulator: whole HTTP requests, the tool follow-up carrying the call and its output.
    let calls = upstream::calls(&emulator);
    assert_eq!(calls.len(), 4, "{calls:#?}");
    for call in &calls {
        assert!(call.is_responses() && call.served, "{call:?}");
        assert_eq!(call.prompt_cache_key.as_deref(), Some(thread_id.as_str()));
        assert!(call.body.get("previous_response_id").is_none() && call.body.get("type").is_none());
        assert_eq!(call.header("session-id"), Some(thread_id.as_str()));
    }
    let items = |i: usize| calls[i].input().len();
    assert!(items(1) > items(0), "turn 2 carries turn 1's history: {} then {}", items(0), items(1));
    let follow_up = calls[3].input();
    let has = |ty: &str| follow_up.iter().any(|item| item.get("type").and_then(Value::as_str) == Some(ty));
    assert!(has("function_call") && has("function_call_output"), "the follow-up is whole: {follow_up:#?}");
    let stats = upstream::key_stats(&emulator, &thread_id).expect("emulator stats for the thread's key");
    let usage3 = codex::usage(&third).expect("turn 3 usage");
    assert_eq!(stats.cached_tokens, usage3.cached_input_tokens, "client (cumulative) and emulator agree");

    // sessions show labels the turns ws
    assert!(bridge.stop().await.success(), "the bridge exits cleanly on SIGTERM");
    let show = home.run(&["sessions", "show", &thread_id, "--json"]).await;
    let shown: Value = serde_json::from_str(show.stdout.trim()).unwrap_or_default();
    let rows: Vec<Value> = shown["turns"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 4, "{}\n{}", show.stdout, show.stderr);
    assert!(rows.iter().all(|r| r["transport"] == "ws"), "{rows:#?}");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_ingress_off_codex_falls_back_to_http_at_once() {
    let Some(clients) = gate::clients() else { return };
    let emulator = upstream::start_emulator().await;
    let home = BridgeHome::new();
    let bridge = home.serve(&upstream::api_base(&emulator), "passthrough", "[websocket]\ningress = false\n", &[]).await;
    let mut session = CodexSession::builtin(&clients, &bridge.responses_base()).await;
    let first = session.turn("Say pong").await;
    assert_quick(&first);
    assert_eq!(codex::agent_messages(&first), ["pong"]);
    assert_eq!(bridge.counter("codex_bridge_requests_total", &[("status", "426")]).await, 1, "one 426");
    assert_eq!(bridge.counter("codex_bridge_requests_total", &[("status", "405")]).await, 0, "never 405");
    assert_eq!(bridge.counter("codex_bridge_exchanges_by_transport_total", &[("transport", "ws")]).await, 0);
    let http = bridge.counter("codex_bridge_exchanges_by_transport_total", &[("transport", "http")]).await;
    assert_eq!(http, 1, "the turn went over HTTP");
    assert!(bridge.stop().await.success());
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_experimental_websocket_turns_complete_through_the_bridge() {
    let Some(clients) = gate::clients() else { return };
    let emulator = upstream::start_emulator().await;
    let home = BridgeHome::new();
    let bridge = home.serve(&upstream::api_base(&emulator), "passthrough", "", &[]).await;
    let mut session = OpencodeSession::new(&clients, &bridge.responses_base()).experimental_websocket();
    let first = session.turn(&["Say", "pong"]).await;
    first.assert_success();
    assert_eq!(opencode::texts(&first), ["pong"], "turn 1 answer\n{}", first.stderr);
    let second = session.turn(&["Say", "pong", "again"]).await;
    second.assert_success();
    assert_eq!(opencode::texts(&second), ["pong"], "turn 2 answer\n{}", second.stderr);
    for run in [&first, &second] {
        let errors: Vec<&Value> = run.events_of_type("error").collect();
        assert!(errors.is_empty(), "{}: error events {errors:#?}", run.what);
    }
    let upgrades = bridge.counter("codex_bridge_requests_total", &[("status", "101")]).await;
    assert!(upgrades >= 2, "one WebSocket per opencode process at least: {upgrades}");
    let ws = bridge.counter("codex_bridge_exchanges_by_transport_total", &[("transport", "ws")]).await;
    assert_eq!(ws, 2, "both turns over the WebSocket (the title goes over HTTP)");
    let tokens2 = opencode::step_tokens(&second);
    assert!(tokens2.cache_read > 0, "turn 2 is served from the cache: {tokens2:?}");
    assert!(bridge.stop().await.success());
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_custom_provider_over_websocket_to_a_chatgpt_bridge() {
    let Some(clients) = gate::clients() else { return };
    let emulator = upstream::start_emulator().await;
    let home = BridgeHome::new();
    let (account, bridge, base) = chatgpt::codex_bridge(&home, &emulator, UpstreamTransport::Http).await;
    let mut session = CodexSession::custom_websocket(&clients, &base);
    let first = session.turn("Say pong").await;
    assert_quick(&first);
    assert_eq!(codex::agent_messages(&first), ["pong"], "turn 1; bridge stderr:\n{}", bridge.stderr());
    let thread_id = session.thread_id().expect("thread.started").to_owned();
    let second = session.turn("Say pong again").await;
    assert_quick(&second);
    assert_eq!(codex::agent_messages(&second), ["pong"]);
    let usage2 = codex::usage(&second).expect("turn 2 usage");
    assert!(usage2.cached_input_tokens > 0, "turn 2 is served from the cache: {usage2:?}");

    let upgrades = bridge.counter("codex_bridge_requests_total", &[("status", "101")]).await;
    assert_eq!(upgrades, 2, "one upgrade per codex process");
    let ws = bridge.counter("codex_bridge_exchanges_by_transport_total", &[("transport", "ws")]).await;
    let http = bridge.counter("codex_bridge_exchanges_by_transport_total", &[("transport", "http")]).await;
    assert_eq!((ws, http), (2, 0), "both turns over the WebSocket, no HTTP fallback");
    let calls = upstream::calls(&emulator);
    let turns: Vec<_> = calls.iter().filter(|c| c.is_responses()).collect();
    assert_eq!(turns.len(), 2, "{calls:#?}");
    for call in &turns {
        assert!(call.served, "{call:?}");
        assert_eq!(call.path, "/backend-api/codex/responses");
        assert_eq!(call.header("chatgpt-account-id"), Some(account.account_id.as_str()), "the bridge's account");
        assert_ne!(call.header("authorization"), Some(format!("Bearer {CODEX_CLIENT_KEY}").as_str()));
        assert_eq!(call.body["store"], false);
        assert_eq!(call.prompt_cache_key.as_deref(), Some(thread_id.as_str()));
    }
    assert!(turns[1].input().len() > turns[0].input().len(), "turn 2 is whole");
    assert!(bridge.stop().await.success());
    emulator.shutdown().await;
}
