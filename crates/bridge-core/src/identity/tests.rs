//! Unit tests of resolution against the memory store (the HTTP-level acceptance tests are in tests/it).

use super::*;
use bridge_store::MemoryStore;

fn engine() -> IdentityEngine {
    IdentityEngine::new(CacheConfig::default(), Arc::new(MemoryStore::default()))
}

async fn key(engine: &IdentityEngine, body: &str, headers: &[(&'static str, &str)]) -> Identity {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, v.parse().unwrap());
    }
    engine.resolve(&ResponsesRequest::parse(body.as_bytes()).unwrap(), &map, None, 0).await.unwrap()
}

#[tokio::test]
async fn precedence_host_then_metadata_then_headers_then_fallback() {
    let e = engine();
    let host = key(&e, r#"{"model":"m","prompt_cache_key":"ses_1","metadata":{"conversation_id":"c"}}"#, &[]).await;
    assert_eq!((host.key.as_str(), host.kind), ("ses_1", KeyKind::Host));
    let meta = key(&e, r#"{"model":"m","metadata":{"conversation_id":"c"}}"#, &[("session-id", "h")]).await;
    assert_eq!(meta.key, "cache_c");
    let header = key(&e, r#"{"model":"m"}"#, &[("x-session-affinity", "h 1")]).await;
    assert_eq!(header.key, "cache_h-1");
    let fallback = key(&e, r#"{"model":"m","input":"hi"}"#, &[]).await;
    assert_eq!(fallback.kind, KeyKind::Fallback);
    assert!(fallback.warning.is_none());
    let warned = key(&e, r#"{"model":"m","input":"hi","metadata":{"conversation_id":""}}"#, &[]).await;
    assert_eq!(warned.key, fallback.key, "the same body without usable hints gets the same key");
    assert!(warned.warning.unwrap().contains("metadata.conversation_id"));
}

fn engine_with(fork_key: ForkKey) -> IdentityEngine {
    let config = CacheConfig { fork_key, ..CacheConfig::default() };
    IdentityEngine::new(config, Arc::new(MemoryStore::default()))
}

#[tokio::test]
async fn forks_send_their_roots_key_by_default_and_keep_their_own_identity() {
    let e = engine();
    let body = |f: &str| format!(r#"{{"model":"m","metadata":{{"conversation_id":"base","forkId":"{f}"}}}}"#);
    let root = key(&e, r#"{"model":"m","metadata":{"conversation_id":"base"}}"#, &[]).await;
    assert_eq!((root.key.as_str(), root.routing), ("cache_base", Routing::Own));
    let a = key(&e, &body("a"), &[]).await;
    assert_eq!((a.key.as_str(), a.own_key.as_str(), a.kind), ("cache_base", "cache_base-fork-1", KeyKind::Fork));
    assert_eq!((a.routing, a.fork, a.routing_root()), (Routing::WithRoot, Some(1), "cache_base"));
    assert_eq!(a.session, "base-fork-a");
    let host = key(&e, r#"{"model":"m","prompt_cache_key":"ses_c"}"#, &[("x-parent-session-id", "ses_r")]).await;
    assert_eq!((host.key.as_str(), host.own_key.as_str()), ("ses_r", "ses_c"), "a host-keyed fork inherits the key");
    assert_eq!((host.kind, host.routing), (KeyKind::Host, Routing::WithRoot));
    let lone = key(&e, r#"{"model":"m","prompt_cache_key":"ses_lone"}"#, &[]).await;
    assert_eq!((lone.key.as_str(), lone.routing), ("ses_lone", Routing::Own), "a host-keyed root stays verbatim");
}

#[tokio::test]
async fn a_fork_spills_when_its_lineage_is_over_the_rate_and_keeps_its_partition() {
    let config = CacheConfig { namespace_max_rpm: 2, ..CacheConfig::default() };
    let e = IdentityEngine::new(config, Arc::new(MemoryStore::default()));
    let root = r#"{"model":"m","metadata":{"conversation_id":"hot"}}"#;
    let fork = |f: &str| format!(r#"{{"model":"m","metadata":{{"conversation_id":"hot","forkId":"{f}"}}}}"#);
    key(&e, root, &[]).await;
    assert_eq!(key(&e, &fork("a"), &[]).await.key, "cache_hot", "1 request in the window: joins the root");
    let b = key(&e, &fork("b"), &[]).await;
    assert_eq!((b.key.as_str(), b.routing, b.routing_root()), ("cache_hot-p1", Routing::Spilled(1), "cache_hot-p1"));
    assert_eq!(b.root_key, "cache_hot", "the lineage root is unchanged");
    key(&e, &fork("a"), &[]).await;
    let again = key(&e, &fork("a"), &[]).await;
    assert_eq!((again.key.as_str(), again.over_rate), ("cache_hot", true), "a member never moves; over rate is told");
}

#[tokio::test]
async fn fork_hints_number_forks_per_base() {
    let e = engine_with(ForkKey::Distinct);
    let body = |f: &str| format!(r#"{{"model":"m","metadata":{{"conversation_id":"base","forkId":"{f}"}}}}"#);
    assert_eq!(key(&e, &body("a"), &[]).await.key, "cache_base-fork-1");
    assert_eq!(key(&e, &body("b"), &[]).await.key, "cache_base-fork-2");
    assert_eq!(key(&e, &body("a"), &[]).await.key, "cache_base-fork-1");
    let parent = key(&e, r#"{"model":"m","conversation_id":"child","parentConversationId":"base"}"#, &[]).await;
    assert_eq!(parent.key, "cache_base-fork-3");
    assert_eq!(parent.root_key, "cache_base");
}

#[tokio::test]
async fn host_key_with_parent_header_keeps_key_and_routes_with_root() {
    let e = engine_with(ForkKey::Distinct);
    let child =
        key(&e, r#"{"model":"m","prompt_cache_key":"ses_child"}"#, &[("x-parent-session-id", "ses_root")]).await;
    assert_eq!(child.key, "ses_child");
    assert_eq!(child.root_key, "ses_root");
    assert_eq!(child.fork, Some(1));
    let mut headers = HeaderMap::new();
    affinity_headers(&mut headers, &child, AffinityPolicy::Lineage);
    assert_eq!(headers["session-id"], "ses_root");
    assert_eq!(headers["thread-id"], "ses_child");
    affinity_headers(&mut headers, &child, AffinityPolicy::Key);
    assert_eq!(headers["session-id"], "ses_child");
}

fn chain(n: u8) -> Vec<prefix::Digest> {
    (0..n).map(|i| [i + 1; 16]).collect()
}

fn entry(owner: &str) -> IndexEntry {
    IndexEntry { owner: owner.into(), root: format!("cache_{owner}") }
}

#[tokio::test]
async fn deepest_finds_the_last_indexed_position_from_any_start() {
    let full = chain(7);
    for depth in 0..=full.len() {
        let lineages = Lineages::new(Arc::new(MemoryStore::default()), 100);
        let _ = lineages.index(&full, 0..depth, entry("owner"));
        for from in 0..=full.len() {
            let found = lineages.deepest(&full, from).await.unwrap().map(|(p, e)| (p, e.owner.clone()));
            let want = (from < depth).then(|| (depth - 1, "owner".to_owned()));
            assert_eq!(found, want, "depth {depth}, from {from}");
        }
    }
}

#[tokio::test]
async fn index_reports_only_positions_new_to_this_process() {
    let lineages = Lineages::new(Arc::new(MemoryStore::default()), 100);
    let full = chain(4);
    let fresh = lineages.index(&full, 1..4, entry("a"));
    let keys: Vec<&str> = fresh.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, [prefix::hex(&full[1]), prefix::hex(&full[2]), prefix::hex(&full[3])]);
    let stored: IndexEntry = serde_json::from_str(&fresh[0].1).unwrap();
    assert_eq!(stored, entry("a"));
    assert!(lineages.index(&full, 0..4, entry("b")).len() == 1, "only position 0 is new");
    assert_eq!(lineages.deepest(&full, 1).await.unwrap().map(|(p, e)| (p, e.owner.clone())), Some((3, "a".into())));
    lineages.remember("s", Lineage { root: "cache_s".into(), fork: None });
    assert_eq!(lineages.cached(), (1, 4));
}

#[tokio::test]
async fn memory_caches_are_bounded_and_evict_instead_of_clearing() {
    let lineages = Lineages::new(Arc::new(MemoryStore::default()), 100);
    let full = chain(250);
    assert_eq!(lineages.index(&full, 0..250, entry("a")).len(), 250, "every position is new to the index");
    let (_, indexed) = lineages.cached();
    assert!((50..=100).contains(&indexed), "bounded and not cleared whole: {indexed}");
    for i in 0..1000 {
        lineages.remember(&format!("s{i}"), Lineage { root: format!("cache_s{i}"), fork: None });
    }
    let (sessions, _) = lineages.cached();
    assert!((50..=100).contains(&sessions), "bounded and not cleared whole: {sessions}");
    assert_eq!(lineages.get("s999").await.unwrap().map(|l| l.root), Some("cache_s999".into()), "the newest is kept");
    let mut kept = 0;
    for i in 0..1000 {
        kept += usize::from(lineages.get(&format!("s{i}")).await.unwrap().is_some());
    }
    assert!(kept <= 100, "evicted roots are gone (they are not in the store): {kept} kept");
}

#[tokio::test]
async fn the_compact_cache_gives_back_each_kind_of_lineage_exactly() {
    let lineages = Lineages::new(Arc::new(MemoryStore::default()), 100);
    let cases = [
        ("ses_own", Lineage { root: "ses_own".into(), fork: None }),
        ("ses_hdr", Lineage { root: "cache_ses_hdr".into(), fork: None }),
        ("ses_fork", Lineage { root: "ses_own".into(), fork: Some(2) }),
        ("ses_self_fork", Lineage { root: "ses_self_fork".into(), fork: Some(1) }),
    ];
    for (session, lineage) in &cases {
        lineages.remember(session, lineage.clone());
    }
    for (session, lineage) in &cases {
        assert_eq!(lineages.get(session).await.unwrap().as_ref(), Some(lineage), "{session}");
    }
    assert_eq!(lineages.get("ses_other").await.unwrap(), None);
}

/// Issue 17, acceptance 3: with more lineages than the in-memory bound, no active lineage's key changes
/// (namespace partitions and spilled forks are read back from the store, not assigned again).
#[tokio::test]
async fn more_lineages_than_the_memory_bound_keep_their_keys() {
    let config = CacheConfig { namespace_max_rpm: 3, tracker_max_sessions: 50, ..CacheConfig::default() };
    let e = IdentityEngine::new(config, Arc::new(MemoryStore::default()));
    let member = |i: usize| format!(r#"{{"model":"m","metadata":{{"conversation_id":"l{i}"}}}}"#);
    let fork = |i: usize| format!(r#"{{"model":"m","metadata":{{"conversation_id":"hot","forkId":"f{i}"}}}}"#);
    let ns = [("x-codex-bridge-cache-namespace", "team")];
    let mut first = Vec::new();
    for i in 0..300 {
        first.push((key(&e, &member(i), &ns).await.key, key(&e, &fork(i), &[]).await.key));
    }
    let partitions: std::collections::BTreeSet<&str> = first.iter().map(|(k, _)| k.as_str()).collect();
    assert!(partitions.len() > 50, "the namespace spread over many partitions: {}", partitions.len());
    assert!(first.iter().any(|(_, f)| f.contains("-p")), "some forks spilled");
    for (i, (ns_key, fork_key)) in first.iter().enumerate() {
        assert_eq!(&key(&e, &member(i), &[]).await.key, ns_key, "lineage l{i} kept its namespace partition");
        assert_eq!(&key(&e, &fork(i), &[]).await.key, fork_key, "fork f{i} kept its partition");
    }
}
