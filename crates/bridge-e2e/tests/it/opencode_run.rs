//! OpenCode against the emulator: `opencode run` then `opencode run --session <id>` complete real turns, and
//! the second turn is served from the prompt cache (seen by the client and by the emulator). The first run
//! also sends a title request (small model, no `prompt_cache_key`), which is not part of the cached turns.

use crate::support::gate;
use crate::support::opencode::{self, OPENCODE_MODEL, OPENCODE_SMALL_MODEL, OpencodeSession};
use crate::support::upstream::{self, Call};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_run_session_hits_the_prompt_cache() {
    let Some(clients) = gate::clients() else { return };
    let emulator = upstream::start_emulator().await;
    let mut session = OpencodeSession::new(&clients, &upstream::api_base(&emulator));

    let first = session.turn(&["Say", "pong"]).await;
    first.assert_success();
    let session_id = session.session_id().expect("turn 1 events carry a sessionID").to_owned();
    assert_eq!(opencode::texts(&first), ["pong"], "turn 1 answer");
    assert_eq!(opencode::step_count(&first), 1, "turn 1 is one step");
    let tokens1 = opencode::step_tokens(&first);
    let calls1 = upstream::calls(&emulator);

    let second = session.turn(&["Say", "pong", "again"]).await;
    second.assert_success();
    assert_eq!(opencode::session_id(&second).as_deref(), Some(session_id.as_str()), "--session keeps it");
    assert_eq!(opencode::texts(&second), ["pong"], "turn 2 answer");
    assert_eq!(opencode::step_count(&second), 1, "turn 2 is one step");
    let tokens2 = opencode::step_tokens(&second);
    assert_eq!(tokens1.cache_read, 0, "a fresh emulator has nothing cached for turn 1");
    assert!(tokens2.cache_read > 0, "turn 2 must report cache reads: {tokens1:?} then {tokens2:?}");

    let calls = upstream::calls(&emulator);
    let main_turn = |call: &Call| call.prompt_cache_key.as_deref() == Some(session_id.as_str());
    let is_title = |call: &Call| call.prompt_cache_key.is_none();
    assert_eq!(calls1.len(), 2, "turn 1 sends a title request and the turn: {calls1:#?}");
    assert_eq!(calls1.iter().filter(|c| main_turn(c)).count(), 1, "{calls1:#?}");
    assert_eq!(calls1.iter().filter(|c| is_title(c)).count(), 1, "{calls1:#?}");
    assert_eq!(calls.len(), 3, "turn 2 sends only the turn: {calls:#?}");
    assert!(main_turn(&calls[2]), "{calls:#?}");
    for call in &calls {
        assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", "/v1/responses"), "{call:?}");
        let model = if is_title(call) { OPENCODE_SMALL_MODEL } else { OPENCODE_MODEL };
        assert_eq!(call.model.as_deref(), Some(model), "{call:?}");
        assert!(call.served, "{call:?}");
    }

    let stats = emulator.state().stats();
    let per_session = stats.per_key.get(&session_id).expect("emulator stats for the session's cache key");
    assert_eq!(per_session.requests, 2, "{per_session:?}");
    assert!(per_session.cached_tokens > 0, "emulator served no cached tokens: {per_session:?}");
    assert_eq!(per_session.cached_tokens, tokens1.cache_read + tokens2.cache_read, "client and emulator agree");
    emulator.shutdown().await;
}
