//! Lineage stability and namespace selection through the HTTP interface, found by mutation testing
//! (docs/MUTATION.md): a decided key never changes (across a restart, or when a session's later history
//! repeats another session's), and namespace rules and `auto` look at the request's real startup prefix.

use bridge_core::identity::Fingerprint;
use bridge_core::identity::prefix::hex;
use bridge_types::ResponsesRequest;
use serde_json::{Value, json};

use crate::identity::{conversation, seen_identity, send};
use crate::support::{Options, ScriptedUpstream, TestBridge};

fn turn(session: &str, turns: usize) -> Value {
    json!({"model": "m", "input": conversation(turns), "metadata": {"conversation_id": session}})
}

#[tokio::test]
async fn a_root_keeps_its_key_after_a_restart_and_forks_are_still_detected() {
    let upstream = ScriptedUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("bridge.db").display());
    let options = || Options { store: Some(store.clone()), ..Options::default() };
    let bridge = TestBridge::with(&upstream.url(), options()).await;
    for turns in 0..3 {
        send(&bridge, &turn("root-R", turns), &[]).await;
        bridge.settle().await;
    }
    bridge.stop().await;
    let restarted = TestBridge::with(&upstream.url(), options()).await;
    // The root's own indexed history must not make it a fork of itself.
    send(&restarted, &turn("root-R", 3), &[]).await;
    restarted.settle().await;
    let mut history = conversation(2);
    history.pop();
    history.push(json!({"type": "message", "role": "user", "content": "a different question"}));
    send(&restarted, &json!({"model": "m", "input": history, "metadata": {"conversation_id": "fork-F"}}), &[]).await;
    assert_eq!(seen_identity(&upstream, 3), ("cache_root-R".into(), "cache_root-R".into(), "cache_root-R".into()));
    assert_eq!(
        seen_identity(&upstream, 4),
        ("cache_root-R-fork-1".into(), "cache_root-R".into(), "cache_root-R-fork-1".into())
    );
    restarted.stop().await;
}

#[tokio::test]
async fn a_root_stays_a_root_when_its_later_history_repeats_another_session() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    // Q is indexed first; S starts with the same question and, later, the same answer (a deterministic model);
    // an unrelated session R arrives in between.
    for body in [turn("Q", 1), turn("S", 0), turn("R-other", 0), turn("S", 1)] {
        send(&bridge, &body, &[]).await;
        bridge.settle().await;
    }
    assert_eq!(seen_identity(&upstream, 1).0, "cache_S");
    assert_eq!(seen_identity(&upstream, 3), ("cache_S".into(), "cache_S".into(), "cache_S".into()));
    bridge.stop().await;
}

#[tokio::test]
async fn a_root_stays_a_root_across_a_restart_when_its_later_history_repeats_another_session() {
    // As above, with the bridge restarted between S's turns: the root's lineage must come from the store.
    let upstream = ScriptedUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}", dir.path().join("bridge.db").display());
    let options = || Options { store: Some(store.clone()), ..Options::default() };
    let bridge = TestBridge::with(&upstream.url(), options()).await;
    for body in [turn("Q", 1), turn("S", 0), turn("R-other", 0)] {
        send(&bridge, &body, &[]).await;
        bridge.settle().await;
    }
    bridge.stop().await;
    let restarted = TestBridge::with(&upstream.url(), options()).await;
    send(&restarted, &turn("S", 1), &[]).await;
    restarted.settle().await;
    assert_eq!(seen_identity(&upstream, 1).0, "cache_S");
    assert_eq!(seen_identity(&upstream, 3), ("cache_S".into(), "cache_S".into(), "cache_S".into()));
    restarted.stop().await;
}

#[tokio::test]
async fn auto_namespaces_follow_the_startup_prefix() {
    let upstream = ScriptedUpstream::start().await;
    let options = Options { file: "[cache]\nnamespace_auto = true".into(), ..Options::default() };
    let bridge = TestBridge::with(&upstream.url(), options).await;
    let startup = |session: &str, instructions: &str| json!({"model": "m", "instructions": instructions, "input": "start", "metadata": {"conversation_id": session}});
    send(&bridge, &startup("a1", "agent prompt"), &[]).await;
    send(&bridge, &startup("a2", "agent prompt"), &[]).await;
    send(&bridge, &startup("b1", "another prompt"), &[]).await;
    let keys: Vec<String> = (0..3).map(|i| seen_identity(&upstream, i).0).collect();
    assert!(keys[0].starts_with("cache_ns-auto-") && keys[0].ends_with("-p0"), "{keys:?}");
    assert_eq!(keys[0], keys[1], "identical startup prefixes share a namespace");
    assert_ne!(keys[0], keys[2], "different startup prefixes do not");
    bridge.stop().await;
}

#[tokio::test]
async fn namespace_rules_match_instructions_hash_and_model() {
    let body = |model: &str, instructions: &str, session: &str| json!({"model": model, "instructions": instructions, "input": "go", "metadata": {"conversation_id": session}});
    let parsed = ResponsesRequest::parse(&serde_json::to_vec(&body("m", "team prompt", "x")).unwrap()).unwrap();
    let hash = hex(&Fingerprint::of(&parsed).instructions);
    let file = format!(
        "[cache]\n[[cache.namespace_rules]]\nname = \"team\"\ninstructions_hash = \"{}\"\n\
         [[cache.namespace_rules]]\nname = \"mini\"\nmodel = \"gpt-5-mini\"\n",
        &hash[..8]
    );
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::with(&upstream.url(), Options { file, ..Options::default() }).await;
    send(&bridge, &body("gpt-5", "team prompt", "s1"), &[]).await;
    send(&bridge, &body("gpt-5", "other prompt", "s2"), &[]).await;
    send(&bridge, &body("gpt-5-mini", "other prompt", "s3"), &[]).await;
    let keys: Vec<String> = (0..3).map(|i| seen_identity(&upstream, i).0).collect();
    assert_eq!(keys, ["cache_ns-team-p0", "cache_s2", "cache_ns-mini-p0"]);
    bridge.stop().await;
}
