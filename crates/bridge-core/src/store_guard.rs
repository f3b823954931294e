//! The store as the bridge uses it: every call bounded by a timeout, and outages tracked so that a store that
//! is down costs the request path nothing.
//!
//! [`GuardedStore`] wraps the configured backend and is what the bridge state holds, so the
//! identity engine, the tracker and the recorder all go through it.
//!
//! Invariants:
//! - A call on the request path (`get`, `put`, `put_if_absent`, `delete`, `incr`, `assign_ordinal`) takes at
//!   most the configured `store_timeout_ms` (default [`crate::config::DEFAULT_STORE_TIMEOUT`]); listings and batches at most
//!   [`BULK_TIMEOUT`] (or the configured timeout when that is longer).
//! - A failed or timed-out call marks the store down. While it is down, calls fail at once with
//!   [`StoreError::Unavailable`] without reaching the backend, except one probe per [`PROBE_INTERVAL`]; the
//!   first call that succeeds (probe or recorder batch) marks it up again. Recovery needs no restart.
//! - One warning line when the store goes down, one line when it is back; nothing per request in between.
//!   Failures are counted instead: `codex_bridge_store_read_fallbacks_total{op}` for calls whose caller falls
//!   back (treats the value as absent, or uses the store-free identity), `codex_bridge_store_outages_total`,
//!   and the gauge `codex_bridge_store_up`.
//! - A success or failure of a call that started before the last up/down change does not flip the state again
//!   (a slow call from before an outage cannot end it; a slow failure from before a recovery cannot start one).
//! - [`StoreError::Corrupt`] means the store answered: it is passed through and never marks an outage.
//! - Messages never contain stored values or a password (backend errors already guarantee that).

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bridge_store::{LogEntry, Store, StoreError, StoreResult, UsageQuery, UsageRecord, WriteOp};

use crate::metrics::{Metrics, OpLabel};

/// Bound on listings and write batches (they are off the request path and may carry a thousand writes).
pub const BULK_TIMEOUT: Duration = Duration::from_secs(2);
/// While the store is down, one call per interval is let through to find out whether it is back.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// The wrapper; see the module documentation.
pub struct GuardedStore {
    inner: Arc<dyn Store>,
    timeout: Duration,
    bulk_timeout: Duration,
    metrics: Arc<Metrics>,
    /// Fast check for "down"; transitions happen under `state`.
    down: AtomicBool,
    state: Mutex<Instant>,
    /// Failed calls (including refused ones) in the current outage.
    failures: AtomicU64,
    /// While down: milliseconds since `epoch` before which no probe is sent.
    next_probe_ms: AtomicU64,
    epoch: Instant,
}

impl GuardedStore {
    /// Wraps `inner`; request-path calls are bounded by `timeout`.
    pub fn new(inner: Arc<dyn Store>, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        metrics.store_up.set(1);
        let epoch = Instant::now();
        Self {
            inner,
            timeout,
            bulk_timeout: timeout.max(BULK_TIMEOUT),
            metrics,
            down: AtomicBool::new(false),
            state: Mutex::new(epoch),
            failures: AtomicU64::new(0),
            next_probe_ms: AtomicU64::new(0),
            epoch,
        }
    }

    /// True while the store is considered down.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// True when the caller may send a call while the store is down (at most one per [`PROBE_INTERVAL`]).
    fn take_probe(&self) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64;
        let next = self.next_probe_ms.load(Ordering::Acquire);
        now >= next
            && self
                .next_probe_ms
                .compare_exchange(next, now + PROBE_INTERVAL.as_millis() as u64, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Runs one backend call under `limit`, keeping the up/down state.
    async fn call<T>(
        &self,
        op: &'static str,
        limit: Duration,
        fut: impl Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        if self.is_down() && !self.take_probe() {
            self.count_failure(op);
            return Err(StoreError::Unavailable(format!("{op} not sent: the store is down")));
        }
        let started = Instant::now();
        let result = match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable(format!("{op} took longer than {} ms", limit.as_millis()))),
        };
        match &result {
            Ok(_) | Err(StoreError::Corrupt(_)) => self.mark_up(started),
            Err(e) => {
                self.count_failure(op);
                self.mark_down(started, op, e);
            }
        }
        result
    }

    fn count_failure(&self, op: &'static str) {
        if op != "write_batch" {
            self.metrics.store_read_fallbacks.get_or_create(&OpLabel { op }).inc();
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    fn mark_down(&self, started: Instant, op: &'static str, error: &StoreError) {
        if self.is_down() {
            return;
        }
        // `changed`: when the store last went down or came back.
        let Ok(mut changed) = self.state.lock() else { return };
        if self.is_down() || started < *changed {
            return;
        }
        *changed = Instant::now();
        self.failures.store(1, Ordering::Relaxed);
        self.next_probe_ms.store((self.epoch.elapsed() + PROBE_INTERVAL).as_millis() as u64, Ordering::Release);
        self.down.store(true, Ordering::Release);
        self.metrics.store_outages.inc();
        self.metrics.store_up.set(0);
        tracing::warn!(
            store = self.inner.kind(),
            op,
            error = %error,
            probe_every_ms = PROBE_INTERVAL.as_millis() as u64,
            "store unavailable: its writes are dropped and its reads fall back to 'absent' until it answers again"
        );
    }

    fn mark_up(&self, started: Instant) {
        if !self.is_down() {
            return;
        }
        let Ok(mut changed) = self.state.lock() else { return };
        if !self.is_down() || started < *changed {
            return;
        }
        let down_ms = changed.elapsed().as_millis() as u64;
        *changed = Instant::now();
        self.down.store(false, Ordering::Release);
        self.metrics.store_up.set(1);
        let failed_calls = self.failures.load(Ordering::Relaxed);
        tracing::warn!(store = self.inner.kind(), down_ms, failed_calls, "store is back");
    }
}

#[async_trait::async_trait]
impl Store for GuardedStore {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn get(&self, ns: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.call("get", self.timeout, self.inner.get(ns, key)).await
    }

    async fn put(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<()> {
        self.call("put", self.timeout, self.inner.put(ns, key, value, ttl)).await
    }

    async fn put_if_absent(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<bool> {
        self.call("put_if_absent", self.timeout, self.inner.put_if_absent(ns, key, value, ttl)).await
    }

    async fn delete(&self, ns: &str, key: &str) -> StoreResult<()> {
        self.call("delete", self.timeout, self.inner.delete(ns, key)).await
    }

    async fn keys(&self, ns: &str, prefix: &str, limit: usize) -> StoreResult<Vec<String>> {
        self.call("keys", self.bulk_timeout, self.inner.keys(ns, prefix, limit)).await
    }

    async fn incr(&self, ns: &str, key: &str, by: i64) -> StoreResult<i64> {
        self.call("incr", self.timeout, self.inner.incr(ns, key, by)).await
    }

    async fn assign_ordinal(&self, scope: &str, member: &str) -> StoreResult<u64> {
        self.call("assign_ordinal", self.timeout, self.inner.assign_ordinal(scope, member)).await
    }

    async fn append(&self, log: &str, ts_ms: i64, body: &str) -> StoreResult<u64> {
        self.call("append", self.bulk_timeout, self.inner.append(log, ts_ms, body)).await
    }

    async fn read_log(&self, log: &str, after: u64, limit: usize) -> StoreResult<Vec<LogEntry>> {
        self.call("read_log", self.bulk_timeout, self.inner.read_log(log, after, limit)).await
    }

    async fn logs(&self, prefix: &str) -> StoreResult<Vec<String>> {
        self.call("logs", self.bulk_timeout, self.inner.logs(prefix)).await
    }

    async fn record_usage(&self, record: &UsageRecord) -> StoreResult<()> {
        self.call("record_usage", self.bulk_timeout, self.inner.record_usage(record)).await
    }

    async fn usage(&self, query: &UsageQuery) -> StoreResult<Vec<UsageRecord>> {
        self.call("usage", self.bulk_timeout, self.inner.usage(query)).await
    }

    async fn write_batch(&self, ops: &[WriteOp]) -> StoreResult<()> {
        self.call("write_batch", self.bulk_timeout, self.inner.write_batch(ops)).await
    }
}

/// True when `error` is an outage the guard has already logged (the caller should not log it again).
pub fn is_outage(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(_) | StoreError::Redis(_) | StoreError::Sqlite(_))
}

#[cfg(test)]
pub(crate) mod tests;
