//! Cache identity through the HTTP interface: what the upstream receives (`prompt_cache_key`, affinity
//! headers) for host keys, session hints, forks, fallbacks and soft overrides (issue 4, items 1-5).

use serde_json::{Value, json};

use crate::support::{Options, ScriptedUpstream, TestBridge, client};

/// Sends one request and returns the upstream's view of it: (prompt_cache_key, session-id, thread-id).
pub async fn send(bridge: &TestBridge, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().post(bridge.url("/v1/responses")).json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    resp
}

/// The key and affinity headers of the `i`-th request the upstream saw.
pub fn seen_identity(upstream: &ScriptedUpstream, i: usize) -> (String, String, String) {
    let seen = &upstream.seen()[i];
    let body: Value = serde_json::from_slice(&seen.body).unwrap();
    let h = |n: &str| seen.headers.get(n).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (body["prompt_cache_key"].as_str().unwrap_or_default().to_owned(), h("session-id"), h("thread-id"))
}

/// A bridge data directory on SQLite that survives bridge restarts.
pub struct Persistent {
    pub dir: tempfile::TempDir,
}

impl Persistent {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap() }
    }

    pub fn store(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("bridge.db").display())
    }

    pub fn options(&self) -> Options {
        Options { store: Some(self.store()), ..Options::default() }
    }

    /// Sends `bodies` one at a time through a bridge on this data, then stops it.
    pub async fn run(&self, upstream: &ScriptedUpstream, bodies: &[Value]) {
        let bridge = TestBridge::with(&upstream.url(), self.options()).await;
        for body in bodies {
            send(&bridge, body, &[]).await;
            bridge.settle().await;
        }
        bridge.stop().await;
    }
}

/// A developer item, then `turns` user/assistant pairs and a final user question.
pub fn conversation(turns: usize) -> Vec<Value> {
    let mut items = vec![json!({"role": "developer", "content": "You are a coding agent."})];
    for t in 0..turns {
        items.push(json!({"type": "message", "role": "user", "content": format!("question {t}")}));
        items.push(json!({"type": "message", "role": "assistant", "content": format!("answer {t}")}));
    }
    items.push(json!({"type": "message", "role": "user", "content": format!("question {turns}")}));
    items
}

#[tokio::test]
async fn key_is_constant_across_soft_overrides_model_switch_and_50_turns() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let base = json!({"model": "gpt-5", "metadata": {"conversation_id": "conv-soft"}, "input": conversation(0), "tools": [{"type": "function", "name": "t"}]});
    let overrides: Vec<(&str, Value)> = vec![
        ("temperature", json!(0.2)),
        ("top_p", json!(0.5)),
        ("max_output_tokens", json!(100)),
        ("reasoning", json!({"effort": "high"})),
        ("reasoning", json!({"summary": "detailed"})),
        ("text", json!({"verbosity": "low"})),
        ("tool_choice", json!("none")),
        ("parallel_tool_calls", json!(false)),
        ("service_tier", json!("priority")),
        ("model", json!("gpt-5-mini")),
    ];
    send(&bridge, &base, &[]).await;
    for (field, value) in &overrides {
        let mut body = base.clone();
        body[*field] = value.clone();
        send(&bridge, &body, &[]).await;
    }
    for turn in 1..=50 {
        let mut body = base.clone();
        body["input"] = Value::Array(conversation(turn));
        send(&bridge, &body, &[]).await;
    }
    let seen = upstream.seen().len();
    assert_eq!(seen, 1 + overrides.len() + 50);
    for i in 0..seen {
        assert_eq!(
            seen_identity(&upstream, i),
            ("cache_conv-soft".into(), "cache_conv-soft".into(), "cache_conv-soft".into()),
            "request {i}"
        );
    }
    bridge.stop().await;
}

#[tokio::test]
async fn host_keys_are_preserved_byte_for_byte() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let body = br#"{"model":"gpt-5","stream":true,"prompt_cache_key":"ses_host","metadata":{"conversation_id":"other"},"input":"hi"}"#;
    let resp = client()
        .post(bridge.url("/v1/responses"))
        .body(&body[..])
        .header("content-type", "application/json")
        .header("session-id", "hdr")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let _ = resp.bytes().await;
    assert_eq!(&upstream.seen()[0].body[..], &body[..], "the host key body reaches the upstream unchanged");
    assert_eq!(seen_identity(&upstream, 0), ("ses_host".into(), "ses_host".into(), "ses_host".into()));
    send(&bridge, &json!({"model": "m", "promptCacheKey": "ses_camel", "input": "hi"}), &[]).await;
    let camel: Value = serde_json::from_slice(&upstream.seen()[1].body).unwrap();
    assert_eq!(camel["prompt_cache_key"], "ses_camel");
    assert!(camel.get("promptCacheKey").is_none());
    send(&bridge, &json!({"model": "m", "promptCacheKey": "camel", "prompt_cache_key": "snake", "input": "hi"}), &[])
        .await;
    assert_eq!(seen_identity(&upstream, 2).0, "snake");
    bridge.stop().await;
}

#[tokio::test]
async fn each_hint_yields_its_documented_key_in_precedence() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let mut expected = Vec::new();
    for field in ["conversation_id", "conversationId", "session_id", "sessionId"] {
        send(&bridge, &json!({"model": "m", "input": "hi", "metadata": {(field): format!("m {field}")}}), &[]).await;
        expected.push(format!("cache_m-{field}"));
        send(&bridge, &json!({"model": "m", "input": "hi", (field): format!("r-{field}")}), &[]).await;
        expected.push(format!("cache_r-{field}"));
    }
    for header in [
        "session-id",
        "thread-id",
        "x-session-id",
        "x-session-affinity",
        "x-opencode-session",
        "conversation_id",
        "session_id",
    ] {
        send(&bridge, &json!({"model": "m", "input": "hi"}), &[(header, &format!("h-{header}"))]).await;
        expected.push(format!("cache_h-{header}"));
    }
    // Precedence: metadata over root over headers; earlier names first.
    send(
        &bridge,
        &json!({"model": "m", "input": "hi", "sessionId": "root", "metadata": {"session_id": "meta"}}),
        &[("session-id", "hdr")],
    )
    .await;
    expected.push("cache_meta".into());
    send(
        &bridge,
        &json!({"model": "m", "input": "hi", "metadata": {"sessionId": "late", "conversation_id": "early"}}),
        &[],
    )
    .await;
    expected.push("cache_early".into());
    send(&bridge, &json!({"model": "m", "input": "hi"}), &[("x-opencode-session", "late"), ("thread-id", "early")])
        .await;
    expected.push("cache_early".into());
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(&seen_identity(&upstream, i).0, want, "request {i}");
    }
    bridge.stop().await;
}

#[tokio::test]
async fn fallback_is_stable_and_warns_only_when_hints_were_unusable() {
    let upstream = ScriptedUpstream::start().await;
    let first = TestBridge::start(&upstream.url()).await;
    let second = TestBridge::start(&upstream.url()).await;
    let body =
        json!({"model": "m", "instructions": "be brief", "input": [{"id": "a", "role": "user", "content": "hello"}]});
    let mut transforms = vec![body.clone()];
    let mut renamed = body.clone();
    renamed["input"][0]["id"] = json!("b");
    transforms.push(renamed);
    let mut overridden = body.clone();
    overridden["temperature"] = json!(0.1);
    overridden["model"] = json!("other");
    transforms.push(overridden);
    for b in &transforms {
        let r = send(&first, b, &[]).await;
        assert!(r.headers().get("x-codex-bridge-warning").is_none());
        send(&second, b, &[]).await;
    }
    let keys: Vec<String> = (0..6).map(|i| seen_identity(&upstream, i).0).collect();
    assert!(keys[0].starts_with("cache_") && keys[0].len() == "cache_".len() + 16, "{}", keys[0]);
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    let mut hinted = body.clone();
    hinted["metadata"] = json!({"conversation_id": "  "});
    let r = send(&first, &hinted, &[("x-parent-session-id", "p")]).await;
    let warning = r.headers()["x-codex-bridge-warning"].to_str().unwrap().to_owned();
    assert!(warning.contains("metadata.conversation_id") && warning.contains("x-parent-session-id"), "{warning}");
    assert_eq!(seen_identity(&upstream, 6).0, keys[0]);
    assert_eq!(first.state.metrics.counter("codex_bridge_cache_key_warnings_total", &[]), 1);
    let usable = send(&first, &json!({"model": "m", "input": "x", "metadata": {"conversation_id": "ok"}}), &[]).await;
    assert!(usable.headers().get("x-codex-bridge-warning").is_none());
    first.stop().await;
    second.stop().await;
}

/// Explicit forks are numbered from 1 per root, in order of first sight, and keep their number after a
/// restart; under `fork_key = "distinct"` each sends its own key, under `"root"` (the default) the root's key
/// with its own identity as `thread-id`.
#[tokio::test]
async fn explicit_forks_are_numbered_and_survive_a_restart() {
    for mode in ["distinct", "root"] {
        let upstream = ScriptedUpstream::start().await;
        let data = Persistent::new();
        let options = || Options { file: format!("[cache]\nfork_key = \"{mode}\"\n"), ..data.options() };
        let fork =
            |id: &str| json!({"model": "m", "input": "hi", "metadata": {"conversation_id": "base", "forkId": id}});
        let bridge = TestBridge::with(&upstream.url(), options()).await;
        send(&bridge, &json!({"model": "m", "input": "hi", "metadata": {"conversation_id": "base"}}), &[]).await;
        send(&bridge, &fork("alpha"), &[]).await;
        send(&bridge, &fork("beta"), &[]).await;
        send(&bridge, &fork("alpha"), &[]).await;
        bridge.stop().await;
        let restarted = TestBridge::with(&upstream.url(), options()).await;
        send(&restarted, &fork("beta"), &[]).await;
        send(&restarted, &fork("gamma"), &[]).await;
        let got: Vec<(String, String, String)> = (0..6).map(|i| seen_identity(&upstream, i)).collect();
        let own = [
            "cache_base",
            "cache_base-fork-1",
            "cache_base-fork-2",
            "cache_base-fork-1",
            "cache_base-fork-2",
            "cache_base-fork-3",
        ];
        for (i, (g, own)) in got.iter().zip(own).enumerate() {
            let key = if mode == "distinct" { own } else { "cache_base" };
            assert_eq!((g.0.as_str(), g.1.as_str(), g.2.as_str()), (key, "cache_base", own), "{mode}: request {i}");
        }
        restarted.stop().await;
    }
}

use crate::redis_server;

#[tokio::test]
async fn two_bridges_sharing_redis_agree_on_fork_ordinals() {
    let Some(redis) = redis_server::RedisServer::start() else { return };
    let upstream = ScriptedUpstream::start().await;
    let options = || Options { store: Some(redis.url()), ..Options::default() };
    let a = TestBridge::with(&upstream.url(), options()).await;
    let b = TestBridge::with(&upstream.url(), options()).await;
    let fork =
        |id: &str| json!({"model": "m", "input": "hi", "metadata": {"conversation_id": "shared", "branchId": id}});
    send(&a, &fork("one"), &[]).await;
    send(&b, &fork("two"), &[]).await;
    send(&b, &fork("one"), &[]).await;
    send(&a, &fork("two"), &[]).await;
    let seen: Vec<(String, String, String)> = (0..4).map(|i| seen_identity(&upstream, i)).collect();
    let threads: Vec<&str> = seen.iter().map(|s| s.2.as_str()).collect();
    assert_eq!(threads, ["cache_shared-fork-1", "cache_shared-fork-2", "cache_shared-fork-1", "cache_shared-fork-2"]);
    assert!(seen.iter().all(|s| s.0 == "cache_shared"), "forks send their root's key: {seen:?}");
    a.stop().await;
    b.stop().await;
}

/// Issue 17, acceptance 2: a lineage started on one bridge and continued on another sharing Redis keeps one
/// upstream key and partition, forks included: a fork spilled off its root's key (the root was over the
/// per-key rate when it joined) and a namespace lineage's partition, on both replicas.
#[tokio::test]
async fn replicas_sharing_redis_keep_one_key_and_partition_per_lineage() {
    let Some(redis) = redis_server::RedisServer::start() else { return };
    let upstream = ScriptedUpstream::start().await;
    let file = "[cache]\nnamespace_max_rpm = 1\n".to_owned();
    let options = || Options { store: Some(redis.url()), file: file.clone(), ..Options::default() };
    let a = TestBridge::with(&upstream.url(), options()).await;
    let b = TestBridge::with(&upstream.url(), options()).await;
    let root = json!({"model": "m", "input": "hi", "metadata": {"conversation_id": "busy"}});
    let fork = |id: &str| json!({"model": "m", "input": "hi", "metadata": {"conversation_id": "busy", "forkId": id}});
    send(&a, &root, &[]).await; // the root alone fills its key's rate (1 per minute here)
    send(&a, &fork("x"), &[]).await; // so the fork spills to partition 1
    send(&b, &fork("x"), &[]).await; // and keeps it on the other replica
    send(&b, &root, &[]).await;
    send(&b, &root, &[]).await; // b's own view of the root: 2 requests in the minute, over the rate of 1
    let ns = [("x-codex-bridge-cache-namespace", "team")];
    let member = |c: &str| json!({"model": "m", "input": "hi", "metadata": {"conversation_id": c}});
    send(&a, &member("n1"), &ns).await; // joins team p0
    send(&a, &member("n2"), &ns).await; // p0 is at the rate: p1
    send(&b, &member("n2"), &[]).await; // the lineage keeps its namespace and partition on b, header or not
    send(&b, &member("n1"), &[]).await;
    let keys: Vec<String> = (0..9).map(|i| seen_identity(&upstream, i).0).collect();
    assert_eq!(
        keys,
        [
            "cache_busy",
            "cache_busy-p1",
            "cache_busy-p1",
            "cache_busy",
            "cache_busy",
            "cache_ns-team-p0",
            "cache_ns-team-p1",
            "cache_ns-team-p1",
            "cache_ns-team-p0"
        ]
    );
    let spilled = seen_identity(&upstream, 2);
    assert_eq!(
        (spilled.1.as_str(), spilled.2.as_str()),
        ("cache_busy-p1", "cache_busy-fork-1"),
        "session-id follows the key"
    );
    a.settle().await;
    b.settle().await;
    let rows = bridge_core::tracker::report::turns(b.state.store.as_ref(), "busy-fork-x").await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.key == "cache_busy-fork-1"), "reported under its own identity");
    let routed = rows[1].routed.as_ref().expect("routed note");
    assert_eq!((routed.how.as_str(), routed.upstream_key.as_str()), ("spilled-p1", "cache_busy-p1"));
    let root_rows = bridge_core::tracker::report::turns(b.state.store.as_ref(), "busy").await.unwrap();
    assert!(root_rows.last().unwrap().over_rate, "the root alone is over the rate: reported, not moved");
    a.stop().await;
    b.stop().await;
}

/// Issue 17, acceptance 2 on SQLite: a spilled fork's partition survives a restart.
#[tokio::test]
async fn a_spilled_fork_keeps_its_partition_across_a_restart() {
    let upstream = ScriptedUpstream::start().await;
    let data = Persistent::new();
    let options = || Options { file: "[cache]\nnamespace_max_rpm = 1\n".into(), ..data.options() };
    let root = json!({"model": "m", "input": "hi", "metadata": {"conversation_id": "r"}});
    let fork = |id: &str| json!({"model": "m", "input": "hi", "metadata": {"conversation_id": "r", "forkId": id}});
    let bridge = TestBridge::with(&upstream.url(), options()).await;
    send(&bridge, &root, &[]).await;
    send(&bridge, &fork("a"), &[]).await;
    bridge.stop().await;
    let restarted = TestBridge::with(&upstream.url(), options()).await;
    send(&restarted, &fork("a"), &[]).await;
    let keys: Vec<String> = (0..3).map(|i| seen_identity(&upstream, i).0).collect();
    assert_eq!(keys, ["cache_r", "cache_r-p1", "cache_r-p1"]);
    restarted.stop().await;
}

#[tokio::test]
async fn implicit_fork_is_detected_and_keyed_like_an_explicit_one() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    for turn in 0..3 {
        send(
            &bridge,
            &json!({"model": "m", "input": conversation(turn), "metadata": {"conversation_id": "root-A"}}),
            &[],
        )
        .await;
        bridge.settle().await;
    }
    // A new session repeating A's history beyond the startup context, then diverging.
    let mut history = conversation(2);
    history.pop();
    history.push(json!({"type": "message", "role": "user", "content": "a different question"}));
    send(&bridge, &json!({"model": "m", "input": history, "metadata": {"conversation_id": "fork-B"}}), &[]).await;
    // A fresh session sharing only the startup context and first question is not a fork.
    send(&bridge, &json!({"model": "m", "input": conversation(0), "metadata": {"conversation_id": "fresh-C"}}), &[])
        .await;
    // An OpenCode-style title request (no key, no tools, small model) neither forks nor joins a lineage.
    send(&bridge, &json!({"model": "gpt-5-nano", "input": conversation(2)}), &[]).await;
    assert_eq!(
        seen_identity(&upstream, 3),
        ("cache_root-A".into(), "cache_root-A".into(), "cache_root-A-fork-1".into()),
        "the detected fork is numbered and sends its root's key"
    );
    assert_eq!(seen_identity(&upstream, 4).0, "cache_fresh-C");
    let title = seen_identity(&upstream, 5);
    assert!(!title.0.contains("root-A") && title.1 == title.0, "{title:?}");
    bridge.settle().await;
    let (_, index_before) = bridge.state.identity.lineages().cached();
    send(&bridge, &json!({"model": "gpt-5-nano", "input": conversation(3)}), &[]).await;
    bridge.settle().await;
    assert_eq!(bridge.state.identity.lineages().cached().1, index_before, "title requests are not indexed");
    bridge.stop().await;
}

const KEY_DISTINCT: &str = "[cache]\naffinity = \"key\"\nfork_key = \"distinct\"";

#[tokio::test]
async fn key_affinity_policy_sends_the_fork_key_as_session() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::with(&upstream.url(), Options { file: KEY_DISTINCT.into(), ..Options::default() }).await;
    send(&bridge, &json!({"model": "m", "input": "hi", "metadata": {"conversation_id": "k", "forkId": "f"}}), &[])
        .await;
    assert_eq!(
        seen_identity(&upstream, 0),
        ("cache_k-fork-1".into(), "cache_k-fork-1".into(), "cache_k-fork-1".into())
    );
    bridge.stop().await;
}

/// A lineage keeps the namespace it joined: a later prefix change (OpenCode's dated system prompt at
/// midnight) does not move its key, and its forks route with it.
#[tokio::test]
async fn namespace_membership_sticks_to_the_lineage() {
    let upstream = ScriptedUpstream::start().await;
    let file = "[cache]\nnamespace_auto = true\n".to_owned();
    let bridge = TestBridge::with(&upstream.url(), Options { file, ..Options::default() }).await;
    let dated = |day: &str| {
        let mut input = conversation(1);
        input[0] = json!({"role": "developer", "content": format!("You are a coding agent. Today is {day}.")});
        input
    };
    let meta = |id: &str| json!({"conversation_id": id});
    send(&bridge, &json!({"model": "m", "metadata": meta("night"), "input": dated("2026-11-22")}), &[]).await;
    send(&bridge, &json!({"model": "m", "metadata": meta("night"), "input": dated("2026-11-23")}), &[]).await;
    let (before, s1, _) = seen_identity(&upstream, 0);
    let (after, s2, _) = seen_identity(&upstream, 1);
    assert!(before.starts_with("cache_ns-auto-"), "{before}");
    assert_eq!(before, after, "a prefix change must not move the lineage's key");
    assert_eq!(s1, s2);
    // A new lineage with the new date joins the namespace of the new prefix, not the old one.
    send(&bridge, &json!({"model": "m", "metadata": meta("morning"), "input": dated("2026-11-23")}), &[]).await;
    let (fresh, _, _) = seen_identity(&upstream, 2);
    assert_ne!(fresh, before);
    // A fork of the first lineage routes with its root: same namespace key in the body and session header.
    let fork =
        json!({"model": "m", "metadata": {"conversation_id": "night", "forkId": "f1"}, "input": dated("2026-11-23")});
    send(&bridge, &fork, &[]).await;
    let (fork_key, fork_session, _) = seen_identity(&upstream, 3);
    assert_eq!((fork_key, fork_session), (before, s1));
    bridge.stop().await;
}
