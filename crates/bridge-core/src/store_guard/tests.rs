//! Unit tests of the guard, over [`Flaky`]: a memory store that can be switched to fail or hang.

use std::sync::atomic::{AtomicU8, AtomicUsize};

use bridge_store::MemoryStore;

use super::*;

/// How [`Flaky`] answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(crate) enum Mode {
    Ok = 0,
    Fail = 1,
    Hang = 2,
}

/// A memory store whose every call can be made to fail or hang; counts the calls that reached it.
#[derive(Default)]
pub(crate) struct Flaky {
    pub inner: MemoryStore,
    pub mode: AtomicU8,
    pub calls: AtomicUsize,
    pub batches: AtomicUsize,
    /// While set, `write_batch` waits for this gate to open (one permit per batch).
    pub gate: Option<tokio::sync::Semaphore>,
}

impl Flaky {
    pub fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    async fn enter(&self) -> StoreResult<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.mode.load(Ordering::SeqCst) {
            0 => Ok(()),
            1 => Err(StoreError::Redis("connection refused (test)".to_owned())),
            _ => std::future::pending().await,
        }
    }
}

#[async_trait::async_trait]
impl Store for Flaky {
    fn kind(&self) -> &'static str {
        "flaky"
    }
    async fn get(&self, ns: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.enter().await?;
        self.inner.get(ns, key).await
    }
    async fn put(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<()> {
        self.enter().await?;
        self.inner.put(ns, key, value, ttl).await
    }
    async fn put_if_absent(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<bool> {
        self.enter().await?;
        self.inner.put_if_absent(ns, key, value, ttl).await
    }
    async fn delete(&self, ns: &str, key: &str) -> StoreResult<()> {
        self.enter().await?;
        self.inner.delete(ns, key).await
    }
    async fn keys(&self, ns: &str, prefix: &str, limit: usize) -> StoreResult<Vec<String>> {
        self.enter().await?;
        self.inner.keys(ns, prefix, limit).await
    }
    async fn incr(&self, ns: &str, key: &str, by: i64) -> StoreResult<i64> {
        self.enter().await?;
        self.inner.incr(ns, key, by).await
    }
    async fn assign_ordinal(&self, scope: &str, member: &str) -> StoreResult<u64> {
        self.enter().await?;
        self.inner.assign_ordinal(scope, member).await
    }
    async fn append(&self, log: &str, ts_ms: i64, body: &str) -> StoreResult<u64> {
        self.enter().await?;
        self.inner.append(log, ts_ms, body).await
    }
    async fn read_log(&self, log: &str, after: u64, limit: usize) -> StoreResult<Vec<LogEntry>> {
        self.enter().await?;
        self.inner.read_log(log, after, limit).await
    }
    async fn logs(&self, prefix: &str) -> StoreResult<Vec<String>> {
        self.enter().await?;
        self.inner.logs(prefix).await
    }
    async fn record_usage(&self, record: &UsageRecord) -> StoreResult<()> {
        self.enter().await?;
        self.inner.record_usage(record).await
    }
    async fn usage(&self, query: &UsageQuery) -> StoreResult<Vec<UsageRecord>> {
        self.enter().await?;
        self.inner.usage(query).await
    }
    async fn write_batch(&self, ops: &[WriteOp]) -> StoreResult<()> {
        if let Some(gate) = &self.gate {
            gate.acquire().await.map_err(|_| StoreError::Redis("gate closed".to_owned()))?.forget();
        }
        self.enter().await?;
        self.batches.fetch_add(1, Ordering::SeqCst);
        self.inner.write_batch(ops).await
    }
}

const SHORT: Duration = Duration::from_millis(30);

fn guarded(flaky: &Arc<Flaky>) -> (GuardedStore, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    (GuardedStore::new(flaky.clone(), SHORT, metrics.clone()), metrics)
}

#[tokio::test]
async fn a_hanging_store_times_out_then_fails_fast_until_a_probe_finds_it_back() {
    let flaky = Arc::new(Flaky::default());
    let (store, metrics) = guarded(&flaky);
    store.put("ns", "k", b"v", None).await.unwrap();
    assert_eq!(metrics.counter("codex_bridge_store_outages_total", &[]), 0);

    flaky.set(Mode::Hang);
    let err = store.get("ns", "k").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(store.is_down());
    let reached = flaky.calls.load(Ordering::SeqCst);
    // While down, calls are refused without reaching the backend (no wait at all: a hang would block here).
    for _ in 0..100 {
        assert!(matches!(store.get("ns", "k").await, Err(StoreError::Unavailable(_))));
    }
    assert_eq!(flaky.calls.load(Ordering::SeqCst), reached, "calls reached a store known to be down");
    assert_eq!(metrics.counter("codex_bridge_store_outages_total", &[]), 1, "one outage, however many failures");
    assert_eq!(metrics.counter("codex_bridge_store_read_fallbacks_total", &[("op", "get")]), 101);
    assert!(metrics.render().contains("codex_bridge_store_up 0"));

    flaky.set(Mode::Ok);
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.get("ns", "k").await.is_err() {
        assert!(Instant::now() < deadline, "no probe went through");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!store.is_down());
    assert_eq!(store.get("ns", "k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert!(metrics.render().contains("codex_bridge_store_up 1"));

    flaky.set(Mode::Fail);
    assert!(matches!(store.put("ns", "k", b"w", None).await, Err(StoreError::Redis(_))));
    assert_eq!(metrics.counter("codex_bridge_store_outages_total", &[]), 2, "a new outage after the recovery");
}

#[tokio::test]
async fn corrupt_data_is_not_an_outage() {
    let flaky = Arc::new(Flaky::default());
    let (store, metrics) = guarded(&flaky);
    store.put("ns", "text", b"not a number", None).await.unwrap();
    assert!(matches!(store.incr("ns", "text", 1).await, Err(StoreError::Corrupt(_))));
    assert!(!store.is_down());
    assert_eq!(metrics.counter("codex_bridge_store_outages_total", &[]), 0);
}

#[tokio::test]
async fn a_slow_success_from_before_the_outage_does_not_end_it() {
    let flaky = Arc::new(Flaky::default());
    let (store, _) = guarded(&flaky);
    let started = Instant::now();
    flaky.set(Mode::Fail);
    assert!(store.get("ns", "k").await.is_err());
    assert!(store.is_down());
    store.mark_up(started);
    assert!(store.is_down(), "a call that started before the outage ended it");
    store.mark_up(Instant::now());
    assert!(!store.is_down());
    store.mark_down(started, "get", &StoreError::Redis("late".to_owned()));
    assert!(!store.is_down(), "a failure that started before the recovery began a new outage");
}
