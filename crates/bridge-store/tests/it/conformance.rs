//! The behaviour every backend must share. Single-handle checks take `&dyn Store`; cross-handle
//! checks take two handles on the same data (two connections for SQLite and Redis).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bridge_store::{LogEntry, Store, UsageQuery, UsageRecord, WriteOp};

const SHORT_TTL: Duration = Duration::from_millis(80);
/// Sleep long enough for [`SHORT_TTL`] to have passed, with margin for a busy machine.
const PAST_SHORT_TTL: Duration = Duration::from_millis(300);
const LONG_TTL: Duration = Duration::from_secs(600);

pub async fn get_put_overwrite_delete(s: &dyn Store) {
    assert_eq!(s.get("ns", "k").await.unwrap(), None);
    s.put("ns", "k", b"one", None).await.unwrap();
    assert_eq!(s.get("ns", "k").await.unwrap().as_deref(), Some(&b"one"[..]));
    s.put("ns", "k", b"two", None).await.unwrap();
    assert_eq!(s.get("ns", "k").await.unwrap().as_deref(), Some(&b"two"[..]));
    // Namespaces are separate, also when a `:` could make names collide.
    assert_eq!(s.get("other", "k").await.unwrap(), None);
    s.put("a:b", "c", b"x", None).await.unwrap();
    assert_eq!(s.get("a", "b:c").await.unwrap(), None);
    // Arbitrary bytes survive.
    let binary = [0u8, 255, 10, 13, 0];
    s.put("ns", "bin", &binary, None).await.unwrap();
    assert_eq!(s.get("ns", "bin").await.unwrap().as_deref(), Some(&binary[..]));
    s.delete("ns", "k").await.unwrap();
    assert_eq!(s.get("ns", "k").await.unwrap(), None);
    s.delete("ns", "k").await.unwrap(); // absent: not an error
}

pub async fn ttl_expiry(s: &dyn Store) {
    s.put("ttl", "long", b"v", Some(LONG_TTL)).await.unwrap();
    s.put("ttl", "short", b"v", Some(SHORT_TTL)).await.unwrap();
    s.put("ttl", "counter", b"41", Some(SHORT_TTL)).await.unwrap();
    s.put("ttl", "replaced", b"v", Some(SHORT_TTL)).await.unwrap();
    s.put("ttl", "replaced", b"w", None).await.unwrap(); // a put without TTL clears it
    tokio::time::sleep(PAST_SHORT_TTL).await;
    assert_eq!(s.get("ttl", "short").await.unwrap(), None);
    assert_eq!(s.get("ttl", "long").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(s.get("ttl", "replaced").await.unwrap().as_deref(), Some(&b"w"[..]));
    assert_eq!(s.keys("ttl", "", 0).await.unwrap(), ["long", "replaced"]);
    assert!(s.put_if_absent("ttl", "short", b"again", None).await.unwrap());
    assert_eq!(s.get("ttl", "short").await.unwrap().as_deref(), Some(&b"again"[..]));
    assert_eq!(s.incr("ttl", "counter", 1).await.unwrap(), 1, "an expired counter restarts from 0");
}

pub async fn put_if_absent(s: &dyn Store) {
    assert!(s.put_if_absent("pia", "k", b"first", None).await.unwrap());
    assert!(!s.put_if_absent("pia", "k", b"second", None).await.unwrap());
    assert_eq!(s.get("pia", "k").await.unwrap().as_deref(), Some(&b"first"[..]));
    s.delete("pia", "k").await.unwrap();
    assert!(s.put_if_absent("pia", "k", b"third", Some(LONG_TTL)).await.unwrap());
    assert!(!s.put_if_absent("pia", "k", b"fourth", None).await.unwrap());
    assert_eq!(s.get("pia", "k").await.unwrap().as_deref(), Some(&b"third"[..]));
}

pub async fn keys_prefix_limit_order(s: &dyn Store) {
    for key in ["b/2", "a/3", "a/1", "ab", "a/2", "c", "we*rd", "we?x", "we[a]", "wexyz", "we\\"] {
        s.put("keys", key, b"v", None).await.unwrap();
    }
    s.put("keys-other", "a/9", b"v", None).await.unwrap();
    s.put("keys:x", "a/8", b"v", None).await.unwrap();
    assert_eq!(s.keys("keys", "a/", 0).await.unwrap(), ["a/1", "a/2", "a/3"]);
    assert_eq!(s.keys("keys", "a/", 2).await.unwrap(), ["a/1", "a/2"]);
    assert_eq!(s.keys("keys", "a", 0).await.unwrap(), ["a/1", "a/2", "a/3", "ab"]);
    assert_eq!(s.keys("keys", "", 3).await.unwrap(), ["a/1", "a/2", "a/3"]);
    assert_eq!(s.keys("keys", "", 0).await.unwrap().len(), 11);
    assert!(s.keys("keys", "zzz", 0).await.unwrap().is_empty());
    assert!(s.keys("nothing", "", 0).await.unwrap().is_empty());
    // Glob metacharacters in a prefix are literal.
    assert_eq!(s.keys("keys", "we*", 0).await.unwrap(), ["we*rd"]);
    assert_eq!(s.keys("keys", "we?", 0).await.unwrap(), ["we?x"]);
    assert_eq!(s.keys("keys", "we[", 0).await.unwrap(), ["we[a]"]);
    assert_eq!(s.keys("keys", "we\\", 0).await.unwrap(), ["we\\"]);
    assert_eq!(s.keys("keys:x", "", 0).await.unwrap(), ["a/8"]);
}

pub async fn incr(s: &dyn Store) {
    assert_eq!(s.incr("ctr", "n", 5).await.unwrap(), 5);
    assert_eq!(s.incr("ctr", "n", 1).await.unwrap(), 6);
    assert_eq!(s.incr("ctr", "n", -10).await.unwrap(), -4);
    assert_eq!(s.get("ctr", "n").await.unwrap().as_deref(), Some(&b"-4"[..]));
    assert_eq!(s.incr("ctr", "other", 1).await.unwrap(), 1);
    s.put("ctr", "text", b"s3cret-value", None).await.unwrap();
    let err = s.incr("ctr", "text", 1).await.unwrap_err().to_string();
    assert!(!err.contains("s3cret"), "error leaks the stored value: {err}");
    assert_eq!(s.get("ctr", "text").await.unwrap().as_deref(), Some(&b"s3cret-value"[..]));
}

pub async fn assign_ordinal(s: &dyn Store) {
    assert_eq!(s.assign_ordinal("scope", "m1").await.unwrap(), 1);
    assert_eq!(s.assign_ordinal("scope", "m2").await.unwrap(), 2);
    assert_eq!(s.assign_ordinal("scope", "m1").await.unwrap(), 1);
    assert_eq!(s.assign_ordinal("scope", "m3").await.unwrap(), 3);
    assert_eq!(s.assign_ordinal("scope", "m2").await.unwrap(), 2);
    assert_eq!(s.assign_ordinal("other", "m3").await.unwrap(), 1);
    assert_eq!(s.assign_ordinal("other", "m1").await.unwrap(), 2);
}

pub async fn append_read_log(s: &dyn Store) {
    let bodies = ["one", "two: with colon", "three\nline", "{\"json\":true}", "ünï"];
    for (i, body) in bodies.iter().enumerate() {
        let seq = s.append("sess/a", 1_000 + i as i64, body).await.unwrap();
        assert_eq!(seq, i as u64 + 1);
    }
    let all = s.read_log("sess/a", 0, 0).await.unwrap();
    let expected: Vec<LogEntry> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| LogEntry { seq: i as u64 + 1, ts_ms: 1_000 + i as i64, body: (*b).to_owned() })
        .collect();
    assert_eq!(all, expected);
    let page = s.read_log("sess/a", 2, 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(s.read_log("sess/a", 3, 0).await.unwrap().len(), 2);
    assert!(s.read_log("sess/a", 5, 0).await.unwrap().is_empty());
    assert!(s.read_log("missing", 0, 0).await.unwrap().is_empty());
    assert_eq!(s.append("sess/b", -5, "").await.unwrap(), 1, "each log numbers on its own");
    assert_eq!(s.read_log("sess/b", 0, 0).await.unwrap(), [LogEntry { seq: 1, ts_ms: -5, body: String::new() }]);
}

pub async fn logs_by_prefix(s: &dyn Store) {
    for log in ["sess/b", "sess/a", "other/x", "sess/a", "sess*/y"] {
        s.append(log, 1, "x").await.unwrap();
    }
    assert_eq!(s.logs("sess/").await.unwrap(), ["sess/a", "sess/b"]);
    assert_eq!(s.logs("sess*").await.unwrap(), ["sess*/y"]);
    assert_eq!(s.logs("").await.unwrap(), ["other/x", "sess*/y", "sess/a", "sess/b"]);
    assert!(s.logs("none").await.unwrap().is_empty());
}

pub fn usage_row(id: &str, ts_ms: i64, session: Option<&str>) -> UsageRecord {
    UsageRecord {
        request_id: id.to_owned(),
        ts_ms,
        route: "/v1/responses".to_owned(),
        status: 200,
        streamed: true,
        model: None,
        session_id: session.map(str::to_owned),
        cache_key: None,
        client: None,
        input_tokens: None,
        cached_tokens: None,
        cache_write_tokens: None,
        output_tokens: None,
        reasoning_tokens: None,
        total_tokens: None,
    }
}

pub async fn usage(s: &dyn Store) {
    assert!(s.usage(&UsageQuery::default()).await.unwrap().is_empty());
    let full = UsageRecord {
        model: Some("gpt-5".to_owned()),
        cache_key: Some("ck".to_owned()),
        client: Some("codex".to_owned()),
        input_tokens: Some(1200),
        cached_tokens: Some(0), // a real zero stays a zero
        cache_write_tokens: None,
        output_tokens: Some(u64::from(u32::MAX) * 4),
        reasoning_tokens: None,
        total_tokens: Some(1300),
        status: 502,
        streamed: false,
        ..usage_row("r2", 2_000, Some("s1"))
    };
    let rows = [
        usage_row("r1", 1_000, Some("s1")),
        full.clone(),
        usage_row("r4", 4_000, None),
        usage_row("r3", 3_000, Some("s2")),  // recorded out of time order
        usage_row("r3b", 3_000, Some("s1")), // same time as r3, recorded later
    ];
    for row in &rows {
        s.record_usage(row).await.unwrap();
    }
    let ids = |rows: Vec<UsageRecord>| rows.into_iter().map(|r| r.request_id).collect::<Vec<_>>();
    let all = s.usage(&UsageQuery::default()).await.unwrap();
    assert_eq!(ids(all.clone()), ["r4", "r3b", "r3", "r2", "r1"]);
    assert_eq!(all[3], full);
    assert_eq!(all[0], rows[2], "None fields stay None");
    let limited = s.usage(&UsageQuery { session_id: None, limit: 2 }).await.unwrap();
    assert_eq!(ids(limited), ["r4", "r3b"]);
    let s1 = s.usage(&UsageQuery { session_id: Some("s1".to_owned()), limit: 0 }).await.unwrap();
    assert_eq!(ids(s1), ["r3b", "r2", "r1"]);
    let s1_limited = s.usage(&UsageQuery { session_id: Some("s1".to_owned()), limit: 1 }).await.unwrap();
    assert_eq!(ids(s1_limited), ["r3b"]);
    assert!(s.usage(&UsageQuery { session_id: Some("none".to_owned()), limit: 0 }).await.unwrap().is_empty());
}

fn put_op(ns: &str, key: &str, value: &[u8], ttl: Option<Duration>, only_if_absent: bool) -> WriteOp {
    let (ns, key, value) = (ns.to_owned(), key.to_owned(), value.to_vec());
    if only_if_absent { WriteOp::PutIfAbsent { ns, key, value, ttl } } else { WriteOp::Put { ns, key, value, ttl } }
}

fn append_op(log: &str, ts_ms: i64, body: &str) -> WriteOp {
    WriteOp::Append { log: log.to_owned(), ts_ms, body: body.to_owned() }
}

pub async fn batch(s: &dyn Store) {
    s.write_batch(&[]).await.unwrap();
    s.put("b", "kept", b"old", None).await.unwrap();
    s.append("blog", 1, "before").await.unwrap();
    s.record_usage(&usage_row("u0", 5, Some("s"))).await.unwrap();
    let full = UsageRecord { input_tokens: Some(7), cached_tokens: Some(0), ..usage_row("u2", 5, Some("s")) };
    let ops = [
        put_op("b", "k", b"one", None, false),
        put_op("b", "k", b"two", None, false), // later ops see earlier ones: last put wins
        put_op("b", "kept", b"new", None, true), // present before the batch: not written
        put_op("b", "fresh", b"first", None, true),
        put_op("b", "fresh", b"second", None, true), // written earlier in this batch: not written
        put_op("b", "short", b"v", Some(SHORT_TTL), false),
        put_op("b:x", "y", b"ns", Some(LONG_TTL), false),
        append_op("blog", 2, "in: batch"),
        append_op("blog2", 3, "other log"),
        append_op("blog", 4, "last"),
        WriteOp::Usage(Box::new(usage_row("u1", 5, Some("s")))),
        WriteOp::Usage(Box::new(full.clone())),
        WriteOp::Usage(Box::new(usage_row("u3", 1, None))),
    ];
    s.write_batch(&ops).await.unwrap();
    let get = |key: &'static str| async move { s.get("b", key).await.unwrap() };
    assert_eq!(get("k").await.as_deref(), Some(&b"two"[..]));
    assert_eq!(get("kept").await.as_deref(), Some(&b"old"[..]));
    assert_eq!(get("fresh").await.as_deref(), Some(&b"first"[..]));
    assert_eq!(get("short").await.as_deref(), Some(&b"v"[..]));
    assert_eq!(s.get("b:x", "y").await.unwrap().as_deref(), Some(&b"ns"[..]));
    assert_eq!(s.get("b", "x:y").await.unwrap(), None);
    let log = s.read_log("blog", 0, 0).await.unwrap();
    let entries: Vec<(u64, i64, &str)> = log.iter().map(|e| (e.seq, e.ts_ms, e.body.as_str())).collect();
    assert_eq!(entries, [(1, 1, "before"), (2, 2, "in: batch"), (3, 4, "last")]);
    assert_eq!(s.read_log("blog2", 0, 0).await.unwrap().len(), 1);
    let ids = |rows: Vec<UsageRecord>| rows.into_iter().map(|r| r.request_id).collect::<Vec<_>>();
    let rows = s.usage(&UsageQuery::default()).await.unwrap();
    assert_eq!(ids(rows.clone()), ["u2", "u1", "u0", "u3"], "recording order kept among equal times");
    assert_eq!(rows[0], full);
    let session = s.usage(&UsageQuery { session_id: Some("s".to_owned()), limit: 0 }).await.unwrap();
    assert_eq!(ids(session), ["u2", "u1", "u0"]);
    tokio::time::sleep(PAST_SHORT_TTL).await;
    assert_eq!(get("short").await, None, "a batch put keeps its TTL");
    // Expired keys are absent for a batch's put_if_absent too.
    s.write_batch(&[put_op("b", "short", b"again", None, true)]).await.unwrap();
    assert_eq!(get("short").await.as_deref(), Some(&b"again"[..]));
}

/// Batches from two handles racing on one log: seqs stay dense and each batch's entries are contiguous.
pub async fn concurrent_batches(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let (tasks, batches, per_batch) = (4, 10, 5);
    on_both(&a, &b, tasks, |store, t| async move {
        for i in 0..batches {
            let ops: Vec<WriteOp> = (0..per_batch).map(|j| append_op("race", 0, &format!("{t}/{i}/{j}"))).collect();
            store.write_batch(&ops).await.unwrap();
        }
    })
    .await;
    let log = a.read_log("race", 0, 0).await.unwrap();
    assert_eq!(
        log.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=(tasks * batches * per_batch) as u64).collect::<Vec<_>>()
    );
    for chunk in log.chunks(per_batch) {
        let batch_of = |e: &LogEntry| e.body.rsplit_once('/').map(|(batch, _)| batch.to_owned()).unwrap();
        let first = batch_of(&chunk[0]);
        assert!(chunk.iter().all(|e| batch_of(e) == first), "another batch interleaved: {chunk:?}");
        let order: Vec<String> = chunk.iter().map(|e| e.body.rsplit_once('/').unwrap().1.to_owned()).collect();
        assert_eq!(order, ["0", "1", "2", "3", "4"]);
    }
}

pub async fn handles_see_each_other(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    a.put("x", "k", b"from a", None).await.unwrap();
    assert_eq!(b.get("x", "k").await.unwrap().as_deref(), Some(&b"from a"[..]));
    b.delete("x", "k").await.unwrap();
    assert_eq!(a.get("x", "k").await.unwrap(), None);
    assert_eq!(b.append("log", 1, "b").await.unwrap(), 1);
    assert_eq!(a.append("log", 2, "a").await.unwrap(), 2);
    assert_eq!(b.read_log("log", 0, 0).await.unwrap().len(), 2);
    assert_eq!(a.assign_ordinal("sc", "m").await.unwrap(), 1);
    assert_eq!(b.assign_ordinal("sc", "m").await.unwrap(), 1);
    assert_eq!(b.assign_ordinal("sc", "n").await.unwrap(), 2);
    a.record_usage(&usage_row("r", 1, Some("s"))).await.unwrap();
    assert_eq!(b.usage(&UsageQuery::default()).await.unwrap().len(), 1);
    assert_eq!(b.keys("x", "", 0).await.unwrap(), Vec::<String>::new());
}

/// Runs `tasks` tasks alternating between the handles, each calling `op(store, task)`.
async fn on_both<T, F, Fut>(a: &Arc<dyn Store>, b: &Arc<dyn Store>, tasks: usize, op: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Arc<dyn Store>, usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let handles: Vec<_> = (0..tasks).map(|t| tokio::spawn(op(Arc::clone(if t % 2 == 0 { a } else { b }), t))).collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(h.await.unwrap());
    }
    results
}

pub async fn concurrent_ordinals(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    // 8 tasks x 50 members: 25 shared by all tasks (in rotated orders) + 25 of their own.
    let results = on_both(&a, &b, 8, |store, t| async move {
        let mut got = Vec::new();
        for i in 0..50 {
            let member = if i % 2 == 0 { format!("shared-{}", (i / 2 + t * 3) % 25) } else { format!("own-{t}-{i}") };
            let ordinal = store.assign_ordinal("conc", &member).await.unwrap();
            got.push((member, ordinal));
        }
        got
    })
    .await;
    let mut by_member: HashMap<String, u64> = HashMap::new();
    for (member, ordinal) in results.into_iter().flatten() {
        let first = *by_member.entry(member.clone()).or_insert(ordinal);
        assert_eq!(first, ordinal, "{member} got two ordinals");
    }
    let n = by_member.len() as u64;
    assert_eq!(n, 25 + 8 * 25);
    let ordinals: BTreeSet<u64> = by_member.values().copied().collect();
    assert_eq!(ordinals, (1..=n).collect::<BTreeSet<_>>(), "ordinals not dense or duplicated");
    for (member, ordinal) in by_member.iter().take(20) {
        assert_eq!(a.assign_ordinal("conc", member).await.unwrap(), *ordinal);
        assert_eq!(b.assign_ordinal("conc", member).await.unwrap(), *ordinal);
    }
    assert_eq!(b.assign_ordinal("conc", "late").await.unwrap(), n + 1);
}

pub async fn concurrent_append_incr_put_if_absent(a: Arc<dyn Store>, b: Arc<dyn Store>) {
    let seqs = on_both(&a, &b, 4, |store, t| async move {
        let mut seqs = Vec::new();
        let mut wins = 0;
        for i in 0..25 {
            seqs.push(store.append("shared", 0, &format!("{t}-{i}")).await.unwrap());
            store.incr("c", "n", 1).await.unwrap();
            if store.put_if_absent("race", &format!("k{i}"), t.to_string().as_bytes(), None).await.unwrap() {
                wins += 1;
            }
        }
        (seqs, wins)
    })
    .await;
    let wins: usize = seqs.iter().map(|(_, w)| w).sum();
    assert_eq!(wins, 25, "each key must be won exactly once");
    let all: BTreeSet<u64> = seqs.into_iter().flat_map(|(s, _)| s).collect();
    assert_eq!(all, (1..=100).collect::<BTreeSet<_>>());
    assert_eq!(a.incr("c", "n", 0).await.unwrap(), 100);
    let log = b.read_log("shared", 0, 0).await.unwrap();
    assert_eq!(log.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=100).collect::<Vec<_>>());
}
