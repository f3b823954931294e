//! Codex CLI 0.169 with its built-in `openai` provider (`openai_base_url` at the emulator) speaks Responses
//! over WebSocket: `codex exec` then `codex exec resume <thread_id>` complete their turns on WebSocket with no
//! HTTP fallback and no `error` event, and the emulator's log shows `ws` creates with a prewarm and a
//! `previous_response_id` delta on each connection.

use serde_json::Value;

use crate::support::codex::{self, CODEX_MODEL, CodexSession};
use crate::support::{gate, upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_exec_and_resume_over_websocket_without_fallback() {
    let Some(clients) = gate::clients() else { return };
    let emulator = upstream::start_emulator().await;
    let mut session = CodexSession::builtin(&clients, &upstream::api_base(&emulator)).await;

    let first = session.turn("Say pong").await;
    first.assert_success();
    let thread_id = session.thread_id().expect("turn 1 reports thread.started").to_owned();
    assert_eq!(codex::agent_messages(&first), ["pong"], "turn 1 answer");
    let second = session.turn("Say pong again").await;
    second.assert_success();
    assert_eq!(codex::agent_messages(&second), ["pong"], "turn 2 answer");
    for run in [&first, &second] {
        let errors: Vec<&Value> = run.events_of_type("error").collect();
        assert!(errors.is_empty(), "{}: error events {errors:#?}\n--- stderr\n{}", run.what, run.stderr);
        assert!(run.elapsed.as_secs_f64() < 5.0, "{} took {:.1?}: a retry or fallback delay", run.what, run.elapsed);
    }
    let usage2 = codex::usage(&second).expect("turn 2 reports turn.completed with usage");

    let log = emulator.state().requests();
    for e in &log {
        eprintln!(
            "log: {} {} transport={} connection={:?} prewarm={} previous_response_id={} input_items={:?} turn_state={}",
            e.method,
            e.path,
            e.transport,
            e.connection,
            e.prewarm,
            e.previous_response_id.is_some(),
            e.input_items,
            e.turn_state
        );
    }
    let posts: Vec<_> = log.iter().filter(|e| e.method == "POST").collect();
    assert!(posts.is_empty(), "no HTTP fallback: {posts:#?}");
    let upgrades: Vec<_> = log.iter().filter(|e| e.method == "GET" && e.path == "/v1/responses").collect();
    assert_eq!(upgrades.len(), 2, "one WebSocket connection per process");
    assert!(upgrades.iter().all(|e| e.transport == "ws" && e.connection.is_some()), "{upgrades:#?}");
    let creates: Vec<_> = log.iter().filter(|e| e.method == "WS").collect();
    assert!(creates.iter().all(|e| e.transport == "ws" && e.served), "{creates:#?}");
    for conn in [1u64, 2] {
        let on: Vec<_> = creates.iter().filter(|e| e.connection == Some(conn)).collect();
        assert!(on.len() >= 2, "connection {conn}: {on:#?}");
        assert!(on[0].prewarm && on[0].previous_response_id.is_none(), "connection {conn} starts with a prewarm");
        let delta = on.iter().find(|e| e.previous_response_id.is_some()).expect("a previous_response_id delta");
        assert!(!delta.prewarm);
        let full = delta.reconstructed_body.as_ref().expect("the delta was reconstructed");
        let full_items = full["input"].as_array().map_or(0, Vec::len);
        assert!(delta.input_items.unwrap_or(0) < full_items, "the delta carried fewer items than it stands for");
        assert_eq!(full["model"], CODEX_MODEL);
        assert_eq!(full["prompt_cache_key"].as_str(), Some(thread_id.as_str()));
    }
    // the resumed turn is served from the cache and client and emulator agree
    let stats = emulator.state().stats();
    assert_eq!(stats.ws.connections, 2);
    assert_eq!(stats.per_transport.get("http"), None);
    assert!(usage2.cached_input_tokens > 0, "{usage2:?}");
    emulator.shutdown().await;
}
