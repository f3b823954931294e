//! Redis-only behaviour: key layout under `codex-bridge:` and native TTLs.

use std::time::Duration;

use bridge_store::{RedisStore, Store};

use crate::redis_server::RedisServer;

#[tokio::test]
async fn keys_live_under_prefix_with_native_ttl() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    store.put("lineage", "k:1", b"v", Some(Duration::from_secs(60))).await.unwrap();
    store.put("prefix", "p", b"v", None).await.unwrap();
    store.assign_ordinal("scope", "m").await.unwrap();
    store.append("log", 1, "b").await.unwrap();
    store.record_usage(&crate::conformance_row()).await.unwrap();

    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pttl: i64 = redis::cmd("PTTL").arg("codex-bridge:kv:lineage:k:1").query_async(&mut conn).await.unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "PTTL {pttl}");
    let pttl: i64 = redis::cmd("PTTL").arg("codex-bridge:kv:prefix:p").query_async(&mut conn).await.unwrap();
    assert_eq!(pttl, -1, "no TTL means no expiry");
    let (_, keys): (String, Vec<String>) =
        redis::cmd("SCAN").arg(0).arg("COUNT").arg(1000).query_async(&mut conn).await.unwrap();
    assert!(keys.len() >= 6, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("codex-bridge:")), "{keys:?}");
}

/// Reads have their own connection: while the server holds back writes (`CLIENT PAUSE … WRITE`, standing
/// in for a long write pipeline on the wire), a write through the store waits, and a `get` sent after it
/// is answered at once instead of queueing behind it on a shared connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_is_not_queued_behind_a_write() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    store.put("ns", "k", b"v", None).await.unwrap();
    let client = redis::Client::open(server.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT").arg("PAUSE").arg(1500).arg("WRITE").query_async(&mut admin).await.unwrap();

    let writer = store.clone();
    let write = tokio::spawn(async move { writer.put("ns", "other", b"w", None).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!write.is_finished(), "writes are paused");
    let started = std::time::Instant::now();
    assert_eq!(store.get("ns", "k").await.unwrap().as_deref(), Some(&b"v"[..]));
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_millis(700), "the read waited {elapsed:?} behind the paused write");
    write.await.unwrap().unwrap();
    assert_eq!(store.get("ns", "other").await.unwrap().as_deref(), Some(&b"w"[..]));
}
