//! OpenCode through codex-bridge (`serve --upstream-auth passthrough`) to the emulator: `run`,
//! `run --session` served from the prompt cache, a tool turn (`--auto`, the emulator calls `bash`), and a
//! second session in the same project.
//!
//! Main turns keep OpenCode's key (the session id) verbatim. A session's first run also sends a title
//! request without a key but with the session headers: the bridge derives `cache_<session id>` from the
//! `session-id` header (README "Cache identity"), so the title routes apart from the main turns, and it
//! must not appear among the session's tracked turns (`codex-bridge sessions show`).

use serde_json::Value;

use crate::support::bridge::BridgeHome;
use crate::support::gate;
use crate::support::opencode::{self, OPENCODE_CLIENT_KEY, OPENCODE_MODEL, OPENCODE_SMALL_MODEL, OpencodeSession};
use crate::support::upstream::{self, Call, TOOL_MARKER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_sessions_and_a_tool_turn_through_the_bridge() {
    let Some(clients) = gate::clients() else { return };
    let emulator = upstream::start_emulator().await;
    let home = BridgeHome::new();
    let bridge = home.serve(&upstream::api_base(&emulator), "passthrough", "", &[]).await;
    let mut session = OpencodeSession::new(&clients, &bridge.responses_base());
    let (sid, [first, second, tool]) = opencode::three_turns(&mut session).await;
    let calls_s1 = upstream::calls(&emulator);

    session.new_session();
    let other = session.turn(&["A", "second", "session,", "say", "pong"]).await;
    other.assert_success();
    let sid2 = session.session_id().expect("the second session's events carry a sessionID").to_owned();
    assert_ne!(sid, sid2, "a new session");
    assert_eq!(opencode::texts(&other), ["pong"]);
    assert!(bridge.stop().await.success(), "the bridge exits cleanly on SIGTERM");

    let calls = upstream::calls(&emulator);
    assert_eq!(calls_s1.len(), 5, "title, turn 1, turn 2, tool call, tool follow-up: {calls_s1:#?}");
    assert_eq!(calls.len(), 7, "the second session adds its title and its turn: {calls:#?}");
    let (titles, mains): (Vec<&Call>, Vec<&Call>) = calls.iter().partition(|c| is_title(c));
    assert_eq!(titles.len(), 2, "one title request per session: {calls:#?}");
    for (title, id) in titles.iter().zip([&sid, &sid2]) {
        assert_title_identity(title, id);
    }
    for (call, id) in mains.iter().zip([&sid, &sid, &sid, &sid, &sid2]) {
        assert_main_identity(call, id);
    }
    let follow_up = mains[3].input();
    let output = follow_up.iter().find(|i| i.get("type").and_then(Value::as_str) == Some("function_call_output"));
    let output = output.expect("the tool follow-up carries the function_call_output");
    assert!(output.to_string().contains(TOOL_MARKER), "{output}");

    let stats = upstream::key_stats(&emulator, &sid).expect("emulator stats for the session's key");
    assert_eq!(stats.requests, 4, "only the main turns use the session's key: {stats:?}");
    let client_reads = [&first, &second, &tool].map(|r| opencode::step_tokens(r).cache_read).iter().sum::<u64>();
    assert_eq!(stats.cached_tokens, client_reads, "client and emulator agree");

    let shown = home.run(&["sessions", "show", &sid, "--json"]).await;
    shown.assert_success();
    let detail: Value = serde_json::from_str(shown.stdout.trim()).expect("sessions show --json prints JSON");
    let turns = detail["turns"].as_array().expect("the session's turns");
    let keys: Vec<&str> = turns.iter().filter_map(|t| t.get("key")?.as_str()).collect();
    assert_eq!(keys, [sid.as_str(); 4], "the session's tracked turns are its main turns only: {turns:#?}");
    emulator.shutdown().await;
}

/// A title request: OpenCode's small model and no tools.
fn is_title(call: &Call) -> bool {
    call.model.as_deref() == Some(OPENCODE_SMALL_MODEL)
}

/// Both kinds of request: a served POST to the emulator's Responses API with the client's own key.
fn assert_forwarded(call: &Call) {
    assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", "/v1/responses"), "{call:?}");
    assert!(call.served, "the emulator accepted the request: {call:?}");
    let auth = format!("Bearer {OPENCODE_CLIENT_KEY}");
    assert_eq!(call.header("authorization"), Some(auth.as_str()), "passthrough forwards the client's key");
    assert_eq!(call.header("originator"), Some("opencode"));
}

/// A main turn keeps OpenCode's key verbatim and every session header agrees with it.
fn assert_main_identity(call: &Call, sid: &str) {
    assert_forwarded(call);
    assert_eq!(call.model.as_deref(), Some(OPENCODE_MODEL));
    assert_eq!(call.prompt_cache_key.as_deref(), Some(sid), "host key verbatim");
    for name in ["session-id", "thread-id", "x-client-request-id", "x-session-id", "x-session-affinity"] {
        assert_eq!(call.header(name), Some(sid), "header {name}");
    }
}

/// A title request gets the key derived from its `session-id` header, with affinity headers that agree,
/// while OpenCode's own session headers pass unchanged.
fn assert_title_identity(call: &Call, sid: &str) {
    assert_forwarded(call);
    assert!(call.body.get("tools").is_none(), "title requests carry no tools");
    let derived = format!("cache_{sid}");
    assert_eq!(call.prompt_cache_key.as_deref(), Some(derived.as_str()), "documented key for a keyless request");
    for name in ["session-id", "thread-id", "x-client-request-id"] {
        assert_eq!(call.header(name), Some(derived.as_str()), "affinity header {name}");
    }
    for name in ["x-session-id", "x-session-affinity"] {
        assert_eq!(call.header(name), Some(sid), "client header {name} passes unchanged");
    }
}
