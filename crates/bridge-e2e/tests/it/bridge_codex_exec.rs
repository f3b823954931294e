//! Codex CLI through codex-bridge (`serve --upstream-auth passthrough`) to the emulator: `codex exec`,
//! `codex exec resume` served from the prompt cache, and a tool turn (the emulator calls `exec_command`,
//! Codex runs it and sends the output back). The emulator must see Codex's own key, identity and headers
//! on every request, exactly as Codex sent them (the bridge's identity engine keeps host keys verbatim).

use serde_json::Value;

use crate::support::bridge::BridgeHome;
use crate::support::codex::{self, CODEX_CLIENT_KEY, CODEX_MODEL, CodexSession};
use crate::support::gate;
use crate::support::upstream::{self, Call, TOOL_MARKER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_exec_resume_and_a_tool_turn_through_the_bridge() {
    let Some(clients) = gate::clients() else { return };
    let emulator = upstream::start_emulator().await;
    let home = BridgeHome::new();
    let bridge = home.serve(&upstream::api_base(&emulator), "passthrough", "", &[]).await;
    let mut session = CodexSession::new(&clients, &bridge.responses_base());
    let (thread_id, [first, second, third]) = codex::three_turns(&mut session, Some(&bridge)).await;
    let usage1 = codex::usage(&first).expect("turn 1 usage");
    assert_eq!(usage1.cached_input_tokens, 0, "a fresh emulator has nothing cached for turn 1");
    let usage2 = codex::usage(&second).expect("turn 2 usage");
    assert!(usage2.cached_input_tokens > 0, "turn 2 must report cached tokens: {usage1:?} then {usage2:?}");
    let usage3 = codex::usage(&third).expect("turn 3 usage");

    let calls = upstream::calls(&emulator);
    assert_eq!(calls.len(), 4, "turns 1 and 2, then the tool call and its follow-up: {calls:#?}");
    for call in &calls {
        assert_codex_identity(call, &thread_id);
    }
    assert!(function_call_outputs(&calls[2]).is_empty(), "the tool turn's first request has no output yet");
    let (call_id, output) = function_call_outputs(&calls[3]).pop().expect("the follow-up carries the tool output");
    assert!(output.contains(TOOL_MARKER), "function_call_output {output:?}");
    let called = calls[3].input().iter().any(|item| {
        item.get("type").and_then(Value::as_str) == Some("function_call")
            && item.get("name").and_then(Value::as_str) == Some("exec_command")
            && item.get("call_id").and_then(Value::as_str) == Some(call_id.as_str())
    });
    assert!(called, "the follow-up replays the exec_command call {call_id}");

    let stats = upstream::key_stats(&emulator, &thread_id).expect("emulator stats for the thread's key");
    assert_eq!(stats.requests, 4, "{stats:?}");
    assert_eq!(stats.cached_tokens, usage3.cached_input_tokens, "client (cumulative) and emulator agree");
    assert_eq!(stats.input_tokens, usage3.input_tokens, "client (cumulative) and emulator agree");
    assert!(bridge.stop().await.success(), "the bridge exits cleanly on SIGTERM");
    emulator.shutdown().await;
}

/// What the emulator must see from Codex through a passthrough bridge: the client's own key, the thread id
/// as `prompt_cache_key` and in every affinity header, Codex's originator, and a served request.
fn assert_codex_identity(call: &Call, thread_id: &str) {
    assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", "/v1/responses"), "{call:?}");
    assert!(call.served, "the emulator accepted the request: {call:?}");
    assert_eq!(call.model.as_deref(), Some(CODEX_MODEL));
    assert_eq!(call.prompt_cache_key.as_deref(), Some(thread_id), "host key verbatim");
    let expected_auth = format!("Bearer {CODEX_CLIENT_KEY}");
    assert_eq!(call.header("authorization"), Some(expected_auth.as_str()), "passthrough forwards the client's key");
    for name in ["session-id", "thread-id", "x-client-request-id"] {
        assert_eq!(call.header(name), Some(thread_id), "affinity header {name}");
    }
    assert_eq!(call.header("originator"), Some("codex_exec"));
    assert_eq!(call.body.pointer("/client_metadata/thread_id").and_then(Value::as_str), Some(thread_id));
    for name in ["x-codex-bridge-token", "x-codex-bridge-cwd", "session_id"] {
        assert_eq!(call.header(name), None, "{name} must not reach the upstream");
    }
}

/// `(call_id, output)` of the request's `function_call_output` items; the output as text (string or JSON).
fn function_call_outputs(call: &Call) -> Vec<(String, String)> {
    call.input()
        .iter()
        .filter(|item| item.get("type").and_then(Value::as_str) == Some("function_call_output"))
        .map(|item| {
            let id = item.get("call_id").and_then(Value::as_str).unwrap_or_default().to_owned();
            let output = match item.get("output") {
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            (id, output)
        })
        .collect()
}
