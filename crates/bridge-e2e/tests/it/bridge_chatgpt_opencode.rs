//! Issue 5, acceptance 7: real OpenCode talks to codex-bridge with an API key of the bridge's choosing (a
//! bridge access token), and the bridge talks ChatGPT flavour to the emulator with credentials from
//! `codex-bridge login` against the emulator's OAuth endpoints, in the `codex` instructions mode that
//! docs/clients.md recommends for OpenCode. Two turns complete, the second with cached tokens.

use serde_json::Value;

use crate::support::bridge::BridgeHome;
use crate::support::opencode::{self, OPENCODE_MODEL, OpencodeSession};
use crate::support::upstream::{self, Call};
use crate::support::{chatgpt, gate};

/// The bridge access token OpenCode uses as its API key.
const BRIDGE_TOKEN: &str = "bridge-chosen-e2e-token";
/// What the emulator's ChatGPT flavour rejects (its default `rejected_params`) or cannot resolve.
const REJECTED: [&str; 7] = [
    "max_output_tokens",
    "max_completion_tokens",
    "prompt_cache_retention",
    "prompt_cache_options",
    "temperature",
    "top_p",
    "previous_response_id",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_uses_a_chatgpt_login_through_the_bridge() {
    let Some(clients) = gate::clients() else { return };
    let emulator = upstream::start_emulator().await;
    let home = BridgeHome::new();
    let account = chatgpt::login(&home, &emulator).await;
    let extra = format!(
        "access_tokens = [\"{BRIDGE_TOKEN}\"]\n[upstream.codex]\ninstructions = \"codex\"\nenv_context = \"tail\"\n"
    );
    let upstream_url = format!("{}/backend-api/codex", emulator.base_url());
    let bridge = home.serve(&upstream_url, "chatgpt", &chatgpt::config_toml(&emulator, &extra), &[]).await;

    let refused = reqwest::Client::new()
        .post(format!("{}/responses", bridge.responses_base()))
        .bearer_auth("sk-not-the-bridge-token")
        .json(&serde_json::json!({"model": OPENCODE_MODEL, "input": "hi"}))
        .send()
        .await
        .expect("the bridge answers");
    assert_eq!(refused.status(), 401, "a key the bridge did not choose is refused");
    let body: Value = refused.json().await.expect("an OpenAI-shaped error body");
    assert_eq!(body.pointer("/error/code").and_then(Value::as_str), Some("invalid_bridge_token"), "{body}");

    let mut session = OpencodeSession::with_key(&clients, &bridge.responses_base(), BRIDGE_TOKEN);
    let first = session.turn(&["Say", "pong"]).await;
    first.assert_success();
    let sid = session.session_id().expect("turn 1 events carry a sessionID").to_owned();
    assert_eq!(opencode::texts(&first), ["pong"], "turn 1 answer; bridge stderr:\n{}", bridge.stderr());
    let second = session.turn(&["Say", "pong", "again"]).await;
    second.assert_success();
    assert_eq!(opencode::texts(&second), ["pong"], "turn 2 answer");
    let (tokens1, tokens2) = (opencode::step_tokens(&first), opencode::step_tokens(&second));
    assert_eq!(tokens1.cache_read, 0, "a fresh emulator has nothing cached for turn 1");
    assert!(tokens2.cache_read > 0, "turn 2 must report cache reads: {tokens1:?} then {tokens2:?}");
    assert!(bridge.stop().await.success(), "the bridge exits cleanly on SIGTERM");

    let access_token = saved_access_token(&home);
    let calls: Vec<Call> = upstream::calls(&emulator).into_iter().filter(Call::is_responses).collect();
    assert_eq!(calls.len(), 3, "title, turn 1, turn 2: {calls:#?}");
    for call in &calls {
        assert_chatgpt_shape(call, &access_token, &account.account_id);
    }
    let mains: Vec<&Call> = calls.iter().filter(|c| c.model.as_deref() == Some(OPENCODE_MODEL)).collect();
    assert_eq!(mains.len(), 2, "{calls:#?}");
    for call in &mains {
        assert_eq!(call.prompt_cache_key.as_deref(), Some(sid.as_str()), "OpenCode's key verbatim");
        assert_eq!(call.header("session-id"), Some(sid.as_str()));
    }
    let stats = upstream::key_stats(&emulator, &sid).expect("emulator stats for the session's key");
    assert_eq!(stats.cached_tokens, tokens1.cache_read + tokens2.cache_read, "client and emulator agree");
    emulator.shutdown().await;
}

/// The Codex-backend shape with the bridge's ChatGPT credentials, never the client's token.
fn assert_chatgpt_shape(call: &Call, access_token: &str, account_id: &str) {
    assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", "/backend-api/codex/responses"), "{call:?}");
    assert!(call.served, "the emulator's ChatGPT validation accepted the request: {call:?}");
    let bearer = format!("Bearer {access_token}");
    assert_eq!(call.header("authorization"), Some(bearer.as_str()), "the bridge's ChatGPT access token");
    assert_eq!(call.header("chatgpt-account-id"), Some(account_id));
    assert_eq!(call.body.get("store"), Some(&Value::Bool(false)));
    assert_eq!(call.body.get("stream"), Some(&Value::Bool(true)));
    for param in REJECTED {
        assert!(call.body.get(param).is_none(), "{param} must be removed: {}", call.body);
    }
    let items = call.input();
    assert!(items.iter().all(|i| i.get("type").and_then(Value::as_str) != Some("item_reference")));
    assert!(call.body.get("instructions").and_then(Value::as_str).is_some_and(|i| !i.is_empty()), "codex mode");
}

/// The access token `codex-bridge login` saved (the bridge may have refreshed it; it did not in this test).
fn saved_access_token(home: &BridgeHome) -> String {
    let text = std::fs::read_to_string(home.data_dir().join("auth.json")).expect("auth.json");
    let saved: Value = serde_json::from_str(&text).expect("auth.json is JSON");
    saved.get("access_token").and_then(Value::as_str).expect("a ChatGPT access token").to_owned()
}
