//! Lineage stability and namespace selection through the HTTP interface, found by mutation testing
//! (docs/MUTATION.md): a decided key never changes (across a restart, or when a session's later history
//! repeats another session's), and namespace rules and `auto` look at the request's real startup prefix.

use bridge_core::identity::Fingerprint;
use bridge_core::identity::lineage::LINEAGE_NS;
use bridge_core::identity::prefix::hex;
use bridge_types::ResponsesRequest;
use serde_json::{Value, json};

use crate::identity::{Persistent, conversation, seen_identity, send};
use crate::support::{Options, ScriptedUpstream, TestBridge};

fn turn(session: &str, turns: usize) -> Value {
    json!({"model": "m", "input": conversation(turns), "metadata": {"conversation_id": session}})
}

#[tokio::test]
async fn a_root_keeps_its_key_after_a_restart_and_forks_are_still_detected() {
    let upstream = ScriptedUpstream::start().await;
    let data = Persistent::new();
    data.run(&upstream, &[turn("root-R", 0), turn("root-R", 1), turn("root-R", 2)]).await;
    // After the restart the root keeps its key (its lineage is on record; the next test covers a store without
    // it), and a conversation repeating its history is still its fork.
    let mut history = conversation(2);
    history.pop();
    history.push(json!({"type": "message", "role": "user", "content": "a different question"}));
    let fork = json!({"model": "m", "input": history, "metadata": {"conversation_id": "fork-F"}});
    data.run(&upstream, &[turn("root-R", 3), fork]).await;
    assert_eq!(seen_identity(&upstream, 3), ("cache_root-R".into(), "cache_root-R".into(), "cache_root-R".into()));
    assert_eq!(
        seen_identity(&upstream, 4),
        ("cache_root-R".into(), "cache_root-R".into(), "cache_root-R-fork-1".into()),
        "still its fork (numbered as thread-id), sending the root's key"
    );
}

#[tokio::test]
async fn a_root_without_a_lineage_record_is_not_taken_for_a_fork_of_its_own_history() {
    // A store written before roots recorded their lineage (or whose record write was lost): after a restart
    // the root's next turn finds its own history in the prefix index and must keep its key.
    let upstream = ScriptedUpstream::start().await;
    let data = Persistent::new();
    data.run(&upstream, &[turn("root-R", 0), turn("root-R", 1), turn("root-R", 2)]).await;
    let store = bridge_store::open(Some(&data.store()), data.dir.path()).await.unwrap();
    assert!(store.get(LINEAGE_NS, "root-R").await.unwrap().is_some(), "the root's lineage was recorded");
    store.delete(LINEAGE_NS, "root-R").await.unwrap();
    drop(store);
    data.run(&upstream, &[turn("root-R", 3)]).await;
    assert_eq!(seen_identity(&upstream, 3), ("cache_root-R".into(), "cache_root-R".into(), "cache_root-R".into()));
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
    let data = Persistent::new();
    data.run(&upstream, &[turn("Q", 1), turn("S", 0), turn("R-other", 0)]).await;
    data.run(&upstream, &[turn("S", 1)]).await;
    assert_eq!(seen_identity(&upstream, 1).0, "cache_S");
    assert_eq!(seen_identity(&upstream, 3), ("cache_S".into(), "cache_S".into(), "cache_S".into()));
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
