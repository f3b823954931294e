//! Codex CLI against the emulator: `codex exec` then `codex exec resume <thread_id>` complete real turns, and
//! the second turn is served from the prompt cache (seen by the client and by the emulator).

use crate::support::codex::{self, CODEX_MODEL, CodexSession};
use crate::support::{gate, upstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_exec_resume_hits_the_prompt_cache() {
    let Some(clients) = gate::clients() else { return };
    let emulator = upstream::start_emulator().await;
    let mut session = CodexSession::new(&clients, &upstream::api_base(&emulator));

    let first = session.turn("Say pong").await;
    first.assert_success();
    let thread_id = session.thread_id().expect("turn 1 reports thread.started").to_owned();
    assert_eq!(codex::agent_messages(&first), ["pong"], "turn 1 answer");
    let usage1 = codex::usage(&first).expect("turn 1 reports turn.completed with usage");

    let second = session.turn("Say pong again").await;
    second.assert_success();
    assert_eq!(codex::thread_started(&second).as_deref(), Some(thread_id.as_str()), "resume keeps the thread");
    assert_eq!(codex::agent_messages(&second), ["pong"], "turn 2 answer");
    let usage2 = codex::usage(&second).expect("turn 2 reports turn.completed with usage");

    // The client's usage is cumulative over the thread: turn 2's share is the difference.
    let cached2 = usage2.cached_input_tokens - usage1.cached_input_tokens;
    assert_eq!(usage1.cached_input_tokens, 0, "a fresh emulator has nothing cached for turn 1");
    assert!(cached2 > 0, "turn 2 must report cached tokens: {usage1:?} then {usage2:?}");

    let calls = upstream::calls(&emulator);
    assert_eq!(calls.len(), 2, "one request per turn: {calls:#?}");
    for call in &calls {
        assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", "/v1/responses"), "{call:?}");
        assert_eq!(call.model.as_deref(), Some(CODEX_MODEL), "{call:?}");
        assert_eq!(call.prompt_cache_key.as_deref(), Some(thread_id.as_str()), "{call:?}");
        assert!(call.served, "{call:?}");
    }

    let stats = emulator.state().stats();
    let per_thread = stats.per_key.get(&thread_id).expect("emulator stats for the thread's cache key");
    assert_eq!(per_thread.requests, 2);
    assert!(per_thread.cached_tokens > 0, "emulator served no cached tokens: {per_thread:?}");
    assert_eq!(per_thread.cached_tokens, usage2.cached_input_tokens, "client and emulator agree");
    assert_eq!(per_thread.input_tokens, usage2.input_tokens, "client and emulator agree");
    emulator.shutdown().await;
}
