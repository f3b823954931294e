//! Edge cases of cache identity through the HTTP interface, found by mutation testing (docs/MUTATION.md):
//! empty hints, the session-id length bound, string inputs in the fallback key, and the key kind each turn
//! records for `sessions show`.

use serde_json::json;

use crate::identity::{seen_identity, send};
use crate::support::{ScriptedUpstream, TestBridge, client};

const WARNING: &str = "x-codex-bridge-warning";

#[tokio::test]
async fn empty_host_keys_and_blank_session_headers_fall_back_with_a_warning() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let body = json!({"model": "m", "input": "hello"});
    let plain = send(&bridge, &body, &[]).await;
    assert!(plain.headers().get(WARNING).is_none());
    let fallback = seen_identity(&upstream, 0).0;

    let mut empty_key = body.clone();
    empty_key["prompt_cache_key"] = json!("");
    let r = send(&bridge, &empty_key, &[]).await;
    let warning = r.headers()[WARNING].to_str().unwrap().to_owned();
    assert!(warning.contains("prompt_cache_key"), "{warning}");
    assert_eq!(seen_identity(&upstream, 1).0, fallback, "an empty host key is replaced by the fallback key");

    let r = send(&bridge, &body, &[("session-id", "")]).await;
    let warning = r.headers()[WARNING].to_str().unwrap().to_owned();
    assert!(warning.contains("header session-id"), "{warning}");
    assert_eq!(seen_identity(&upstream, 2).0, fallback, "an empty session header is not an identity");

    let r = send(&bridge, &body, &[("session-id", ""), ("thread-id", "t1")]).await;
    assert!(r.headers().get(WARNING).is_none(), "a usable later header wins without a warning");
    assert_eq!(seen_identity(&upstream, 3).0, "cache_t1");
    bridge.stop().await;
}

#[tokio::test]
async fn session_ids_up_to_the_bound_are_kept_whole_and_longer_ones_shortened() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let max = bridge_core::identity::keys::MAX_BASE;
    let whole = "w".repeat(max);
    let long = "w".repeat(max + 1);
    for id in [&whole, &long] {
        send(&bridge, &json!({"model": "m", "input": "hi", "metadata": {"conversation_id": id}}), &[]).await;
    }
    assert_eq!(seen_identity(&upstream, 0).0, format!("cache_{whole}"));
    let shortened = seen_identity(&upstream, 1).0;
    assert_eq!(shortened.len(), "cache_".len() + max, "{shortened}");
    let (head, hash) = shortened.split_at(shortened.len() - 16);
    assert_eq!(head, format!("cache_{}-", "w".repeat(max - 17)));
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()), "{shortened}");
    bridge.stop().await;
}

#[tokio::test]
async fn fallback_keys_of_string_inputs_follow_their_text() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    for text in ["first question", "second question", "first question"] {
        send(&bridge, &json!({"model": "m", "instructions": "sys", "input": text}), &[]).await;
    }
    // A string input is the same single user message as its array form.
    send(
        &bridge,
        &json!({"model": "m", "instructions": "sys", "input": [{"role": "user", "content": "first question"}]}),
        &[],
    )
    .await;
    let keys: Vec<String> = (0..4).map(|i| seen_identity(&upstream, i).0).collect();
    assert_ne!(keys[0], keys[1], "different conversations never share a fallback key");
    assert_eq!(keys[0], keys[2]);
    assert_eq!(keys[0], keys[3]);
    bridge.stop().await;
}

#[tokio::test]
async fn each_turn_records_the_kind_of_its_key() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let requests = [
        (json!({"model": "m", "input": "a", "prompt_cache_key": "ses_kind"}), None, "host"),
        (json!({"model": "m", "input": "b", "metadata": {"conversation_id": "kinds"}}), None, "session"),
        (json!({"model": "m", "input": "c", "metadata": {"conversation_id": "kinds", "forkId": "f"}}), None, "fork"),
        (json!({"model": "m", "input": "only text"}), None, "fallback"),
        (json!({"model": "m", "input": "d", "metadata": {"conversation_id": "ns"}}), Some("team"), "namespace"),
    ];
    for (body, namespace, _) in &requests {
        let mut req = client().post(bridge.url("/v1/responses")).json(body);
        if let Some(name) = namespace {
            req = req.header("x-codex-bridge-cache-namespace", *name);
        }
        let _ = req.send().await.unwrap().bytes().await.unwrap();
    }
    bridge.settle().await;
    let fallback_key = seen_identity(&upstream, 3).0;
    let sessions = ["ses_kind", "kinds", "kinds-fork-f", fallback_key.as_str(), "ns"];
    for (i, (session, (_, _, kind))) in sessions.iter().zip(&requests).enumerate() {
        let rows = bridge_core::tracker::report::turns(bridge.state.store.as_ref(), session).await.unwrap();
        assert_eq!(rows.len(), 1, "{session}");
        assert_eq!(rows[0].key_kind, *kind, "{session}");
        let sent = seen_identity(&upstream, i);
        if *kind == "fork" {
            // Sent with its root's key (`fork_key = "root"`), reported under its own, which is its thread-id.
            assert_eq!(rows[0].key, sent.2, "{session}");
            let routed = rows[0].routed.as_ref().expect("a routed note");
            assert_eq!((routed.how.as_str(), routed.upstream_key.as_str()), ("with-root", sent.0.as_str()));
        } else {
            assert_eq!(rows[0].key, sent.0, "{session}");
            assert!(rows[0].routed.is_none(), "{session}");
        }
    }
    bridge.stop().await;
}
