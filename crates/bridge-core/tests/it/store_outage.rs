//! A real redis-server killed while the bridge serves requests (issue 12, finding 7): requests keep completing
//! promptly, the dropped writes are counted, and writes resume after Redis restarts, with the same bridge.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_store::{RedisStore, Store, UsageQuery};
use serde_json::json;

use crate::redis_server;
use crate::support::{Options, ScriptedUpstream, TestBridge, client};

/// No request may take longer than this while Redis is down (before the fix they took 3-10 s).
const BOUND: Duration = Duration::from_secs(2);

/// One streaming request of `session`; returns how long it took to the end of the stream.
async fn request(http: &reqwest::Client, bridge: &TestBridge, session: &str) -> Duration {
    let started = Instant::now();
    let body = json!({"model": "m", "stream": true, "prompt_cache_key": session, "input": "hi"});
    let resp = http.post(bridge.url("/v1/responses")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("response.completed"), "{text}");
    started.elapsed()
}

/// Usage rows as another process sees them (straight from Redis, not through the bridge).
async fn rows(url: &str) -> usize {
    let store = RedisStore::connect(url).await.unwrap();
    store.usage(&UsageQuery::default()).await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_redis_under_load_keeps_requests_fast_and_writes_resume_after_restart() {
    let Some(mut redis) = redis_server::RedisServer::start() else { return };
    let upstream = ScriptedUpstream::start().await;
    let options = Options { store: Some(redis.url()), file: "store_timeout_ms = 250".to_owned(), ..Options::default() };
    let bridge = Arc::new(TestBridge::with(&upstream.url(), options).await);
    let http = client();
    for i in 0..16 {
        request(&http, &bridge, &format!("known-{}", i % 8)).await;
    }
    bridge.settle().await;
    assert_eq!(rows(&redis.url()).await, 16);

    redis.kill();
    // Known sessions need no store read; new ones find the store down and fall back to their own key.
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..8 {
        let (http, bridge) = (http.clone(), bridge.clone());
        workers.push(tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            for i in 0..25 {
                let session = if i % 5 == 4 { format!("new-{w}-{i}") } else { format!("known-{w}") };
                slowest = slowest.max(request(&http, &bridge, &session).await);
            }
            slowest
        }));
    }
    let mut slowest = Duration::ZERO;
    for w in workers {
        slowest = slowest.max(w.await.unwrap());
    }
    assert!(slowest < BOUND, "a request took {slowest:?} while Redis was down");
    tokio::time::timeout(Duration::from_secs(10), bridge.settle()).await.expect("flush waited on the dead store");
    let elapsed = started.elapsed();
    let metrics = &bridge.state.metrics;
    let dropped = metrics.counter("codex_bridge_store_writes_dropped_total", &[]);
    assert!(dropped >= 200, "200 usage rows (and their session writes) were dropped, counted {dropped} in {elapsed:?}");
    assert_eq!(metrics.counter("codex_bridge_store_outages_total", &[]), 1, "one outage, one warning");
    let text = client().get(bridge.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("codex_bridge_store_writes_dropped_total{reason="), "{text}");
    assert!(text.contains("codex_bridge_store_up 0"), "{text}");

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(request(&http, &bridge, "after-restart").await < BOUND);
        bridge.settle().await;
        if rows(&redis.url()).await > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "writes did not resume after Redis came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = client().get(bridge.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("codex_bridge_store_up 1"), "{text}");
    assert_eq!(metrics.counter("codex_bridge_store_outages_total", &[]), 1);
    match Arc::try_unwrap(bridge) {
        Ok(bridge) => bridge.stop().await,
        Err(_) => panic!("bridge still shared"),
    }
}
