//! OpenCode 1.18.33 with a custom `@ai-sdk/openai-compatible` provider (config variant C) pointed at the
//! bridge's `/v1`: it speaks Chat Completions, which the bridge translates into Responses requests to the
//! emulator. `run`, `run --session` (served from the prompt cache) and a tool turn complete.
//!
//! OpenCode sends no `prompt_cache_key` on this path, only `x-session-affinity` / `x-session-id`, so the
//! bridge derives `cache_<session id>` from the header (README "Cache identity"); the title request uses the
//! same headers and so the same key.

use serde_json::Value;

use crate::support::bridge::BridgeHome;
use crate::support::gate;
use crate::support::opencode::{self, OPENCODE_CLIENT_KEY, OpencodeSession};
use crate::support::upstream::{self, TOOL_MARKER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_chat_completions_sessions_and_a_tool_turn_through_the_bridge() {
    let Some(clients) = gate::clients() else { return };
    let emulator = upstream::start_emulator().await;
    let home = BridgeHome::new();
    let bridge = home.serve(&upstream::api_base(&emulator), "passthrough", "", &[]).await;
    let mut session = OpencodeSession::chat(&clients, &bridge.responses_base());

    let (sid, [first, second, tool]) = opencode::three_turns(&mut session).await;
    assert!(bridge.stop().await.success(), "the bridge exits cleanly on SIGTERM");

    let calls = upstream::calls(&emulator);
    let key = format!("cache_{sid}");
    let mains: Vec<_> = calls.iter().filter(|c| c.body.get("tools").is_some()).collect();
    assert_eq!(mains.len(), 4, "turn 1, turn 2, tool call, tool follow-up: {calls:#?}");
    for call in &calls {
        assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", "/v1/responses"), "{call:?}");
        assert!(call.served, "{call:?}");
        let auth = format!("Bearer {OPENCODE_CLIENT_KEY}");
        assert_eq!(call.header("authorization"), Some(auth.as_str()), "passthrough forwards the client's key");
        assert_eq!(call.prompt_cache_key.as_deref(), Some(key.as_str()), "key from the session header");
        assert_eq!(call.body["stream"], true);
    }
    // The follow-up pairs the tool output with the call the emulator made.
    let follow_up = mains[3].input();
    let output = follow_up.iter().find(|i| i.get("type").and_then(Value::as_str) == Some("function_call_output"));
    let output = output.expect("the tool follow-up carries the function_call_output");
    assert!(output.to_string().contains(TOOL_MARKER), "{output}");
    // Turn 2's upstream input extends turn 1's (append-only translation, replayed reasoning included).
    let (t1, t2) = (mains[0].input(), mains[1].input());
    assert!(t2.len() > t1.len() && t2[..t1.len()] == t1[..], "turn 2 extends turn 1's input");
    if mains[0].body.get("reasoning").is_some_and(|r| !r.is_null()) {
        assert_eq!(t2[t1.len()]["type"], "reasoning", "turn 1's reasoning is replayed before its answer");
    }
    let stats = upstream::key_stats(&emulator, &key).expect("emulator stats for the session's key");
    let client_reads = [&first, &second, &tool].map(|r| opencode::step_tokens(r).cache_read).iter().sum::<u64>();
    assert!(stats.cached_tokens >= client_reads && client_reads > 0, "{stats:?} vs {client_reads}");
    emulator.shutdown().await;
}
