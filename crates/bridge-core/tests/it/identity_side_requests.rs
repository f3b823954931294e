//! Keyless side requests that carry a keyed conversation's session headers (OpenCode's title request: no
//! `prompt_cache_key`, no tools, a small model, the same `session-id` / `x-session-id` /
//! `x-session-affinity` as the main turn, sent before it): they get `cache_<id>` from the header, and they
//! neither join the conversation's lineage nor appear among its tracked turns.

use bridge_core::tracker::report;
use serde_json::json;

use crate::identity::{seen_identity, send};
use crate::support::{ScriptedUpstream, TestBridge};

#[tokio::test]
async fn a_title_request_with_session_headers_stays_out_of_the_keyed_conversation() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let headers = |id| [("session-id", id), ("x-session-id", id), ("x-session-affinity", id)];
    let title = json!({"model": "gpt-5.4-mini", "temperature": 0.5, "input": [
        {"role": "developer", "content": "You are a title generator. You output ONLY a thread title."},
        {"role": "user", "content": [{"type": "input_text", "text": "Generate a title for this conversation:\n"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "Say pong"}]}]});
    let main = json!({"model": "gpt-5.5", "prompt_cache_key": "ses_T", "tools": [{"type": "function", "name": "bash"}],
        "input": [{"role": "developer", "content": "You are OpenCode."}, {"role": "user", "content": "Say pong"}]});
    let child = json!({"model": "gpt-5.5", "prompt_cache_key": "ses_child",
        "input": [{"role": "developer", "content": "You are a subagent."}, {"role": "user", "content": "Look around"}]});
    send(&bridge, &title, &headers("ses_T")).await;
    bridge.settle().await;
    send(&bridge, &main, &headers("ses_T")).await;
    bridge.settle().await;
    let mut child_headers = headers("ses_child").to_vec();
    child_headers.push(("x-parent-session-id", "ses_T"));
    send(&bridge, &child, &child_headers).await;

    let derived = "cache_ses_T".to_owned();
    assert_eq!(seen_identity(&upstream, 0), (derived.clone(), derived.clone(), derived), "title: header key");
    assert_eq!(seen_identity(&upstream, 1), ("ses_T".into(), "ses_T".into(), "ses_T".into()), "main: host key");
    assert_eq!(
        seen_identity(&upstream, 2),
        ("ses_T".into(), "ses_T".into(), "ses_child".into()),
        "a subagent routes with (and, under fork_key = root, sends the key of) the conversation's root, not its title request"
    );

    let state = bridge.state.clone();
    bridge.stop().await;
    let conversation = report::turns(state.store.as_ref(), "ses_T").await.unwrap();
    let rows: Vec<(&str, &str)> = conversation.iter().map(|t| (t.key.as_str(), t.classification.as_str())).collect();
    assert_eq!(rows, [("ses_T", "new")], "the conversation's tracked turns are its own only");
    let titles = report::turns(state.store.as_ref(), "cache_ses_T").await.unwrap();
    assert_eq!(titles.len(), 1, "the title request is tracked as its own session");
}
