//! Recorder tests over the guard's [`Flaky`] store.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bridge_store::UsageQuery;

use super::*;
use crate::store_guard::tests::{Flaky, Mode};

fn row(n: usize) -> UsageRecord {
    UsageRecord {
        request_id: format!("r{n}"),
        ts_ms: 1,
        route: "/v1/responses".to_owned(),
        status: 200,
        streamed: true,
        model: None,
        session_id: None,
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

fn recorder(flaky: &Arc<Flaky>) -> (Recorder, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let guarded = Arc::new(GuardedStore::new(flaky.clone(), Duration::from_millis(50), metrics.clone()));
    (Recorder::start(guarded, metrics.clone()), metrics)
}

#[tokio::test]
async fn queuing_never_waits_on_a_hanging_store_and_counts_what_it_drops() {
    let flaky = Arc::new(Flaky::default());
    flaky.set(Mode::Hang);
    let (recorder, metrics) = recorder(&flaky);
    let queue_all = async {
        for n in 0..3 * QUEUE {
            recorder.record(row(n)).await;
            recorder.write(StoreWrite::Put { ns: "ns", key: n.to_string(), value: Vec::new() }).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), queue_all).await.expect("queuing waited for the store");
    recorder.flush().await;
    let full = metrics.counter("codex_bridge_store_writes_dropped_total", &[("reason", "queue_full")]);
    let refused = metrics.counter("codex_bridge_store_writes_dropped_total", &[("reason", "store_error")]);
    assert!(full + refused == (6 * QUEUE) as u64, "every write is either dropped or refused: {full} + {refused}");
    assert!(refused > 0, "the writer's batches against the hanging store count as dropped");

    // Writes resume once the store answers (a probe within the guard's interval).
    flaky.set(Mode::Ok);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        recorder.record(row(0)).await;
        recorder.flush().await;
        if !flaky.inner.usage(&UsageQuery::default()).await.unwrap().is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "writes did not resume");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_writer_applies_everything_queued_as_one_batch_in_order() {
    let flaky = Arc::new(Flaky { gate: Some(tokio::sync::Semaphore::new(0)), ..Flaky::default() });
    let (recorder, _) = recorder(&flaky);
    recorder.record(row(0)).await;
    // The writer holds row 0 at the gate; everything queued meanwhile must go in the next single batch.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for n in 1..=2000 {
        recorder.record(row(n)).await;
    }
    let gate = flaky.gate.as_ref().unwrap();
    gate.add_permits(10);
    recorder.flush().await;
    assert_eq!(flaky.batches.load(Ordering::SeqCst), 2, "one batch for row 0, one for the 2000 queued behind it");
    let rows = flaky.inner.usage(&UsageQuery::default()).await.unwrap();
    let ids: Vec<String> = rows.into_iter().rev().map(|r| r.request_id).collect();
    assert_eq!(ids, (0..=2000).map(|n| format!("r{n}")).collect::<Vec<_>>(), "applied in the order queued");
}
