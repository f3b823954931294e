//! Writes usage rows and session state to the store off the request path, in batches.
//!
//! Stream tasks hand a finished [`UsageRecord`] (and the tracker its [`StoreWrite`]s) to a bounded queue and
//! move on; one background task drains everything queued and applies it with one [`Store::write_batch`]
//! (one SQLite transaction, one Redis pipeline), so the backlog, and with it what a crash can lose, stays
//! small.
//!
//! Invariants:
//! - Queuing never waits: when the queue ([`QUEUE`] messages) is full the write is dropped and counted in
//!   `codex_bridge_store_writes_dropped_total{reason="queue_full"}`; a batch the store refuses (down, timed
//!   out) is dropped and counted with `reason="store_error"`. So a slow or dead store never holds up
//!   `pump::finish`, the open-exchange slots, or new requests.
//! - Writes are applied in the order queued; a batch never spans a [`Recorder::flush`].
//! - [`Recorder::flush`] waits until everything queued before it was applied (or dropped).
//! - Logging: one warning when queue-full drops start (unless the store guard already reported an outage),
//!   one line when they stop; store outages are logged by [`crate::store_guard`], not per batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bridge_store::{Store, UsageRecord, WriteOp};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::store_guard::GuardedStore;

/// Capacity of the queue in front of the writer, in messages (a turn queues about five).
pub const QUEUE: usize = 8192;

/// A store write queued off the request path.
#[derive(Debug)]
pub enum StoreWrite {
    /// [`Store::put`] without TTL.
    Put { ns: &'static str, key: String, value: Vec<u8> },
    /// [`Store::put_if_absent`] without TTL.
    PutIfAbsent { ns: &'static str, key: String, value: Vec<u8> },
    /// [`Store::append`].
    Append { log: String, ts_ms: i64, body: String },
}

impl From<StoreWrite> for WriteOp {
    fn from(write: StoreWrite) -> Self {
        match write {
            StoreWrite::Put { ns, key, value } => WriteOp::Put { ns: ns.to_owned(), key, value, ttl: None },
            StoreWrite::PutIfAbsent { ns, key, value } => {
                WriteOp::PutIfAbsent { ns: ns.to_owned(), key, value, ttl: None }
            }
            StoreWrite::Append { log, ts_ms, body } => WriteOp::Append { log, ts_ms, body },
        }
    }
}

enum Message {
    Write(WriteOp),
    Flush(oneshot::Sender<()>),
}

/// Handle to the writer task.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Message>,
    shared: Arc<Shared>,
}

struct Shared {
    store: Arc<GuardedStore>,
    metrics: Arc<Metrics>,
    /// Set while queue-full drops are happening (for the one warning per episode).
    dropping: AtomicBool,
}

impl Recorder {
    /// Starts the writer task.
    pub fn start(store: Arc<GuardedStore>, metrics: Arc<Metrics>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
        let shared = Arc::new(Shared { store, metrics, dropping: AtomicBool::new(false) });
        let writer = shared.clone();
        tokio::spawn(async move {
            let mut messages = Vec::with_capacity(QUEUE);
            let mut batch = Vec::with_capacity(QUEUE);
            while rx.recv_many(&mut messages, QUEUE).await > 0 {
                for message in messages.drain(..) {
                    match message {
                        Message::Write(op) => batch.push(op),
                        Message::Flush(done) => {
                            writer.apply(&mut batch).await;
                            let _ = done.send(());
                        }
                    }
                }
                writer.apply(&mut batch).await;
            }
        });
        Self { tx, shared }
    }

    /// Queues a usage row; never waits (a full queue drops and counts it).
    pub async fn record(&self, record: UsageRecord) {
        self.queue(WriteOp::Usage(Box::new(record)));
    }

    /// Queues a store write; never waits (a full queue drops and counts it).
    pub async fn write(&self, write: StoreWrite) {
        self.queue(write.into());
    }

    fn queue(&self, op: WriteOp) {
        match self.tx.try_send(Message::Write(op)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                Metrics::count(&self.shared.metrics.store_writes_dropped, "queue_full", 1);
                if !self.shared.dropping.swap(true, Ordering::AcqRel) && !self.shared.store.is_down() {
                    tracing::warn!(
                        queue = QUEUE,
                        "store writes are being dropped: the store is slower than the traffic"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Metrics::count(&self.shared.metrics.store_writes_dropped, "stopped", 1);
                tracing::error!("store writer stopped; a store write was lost");
            }
        }
    }

    /// Waits until every write queued before this call is applied (or dropped).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

impl Shared {
    /// Applies and empties `batch` (nothing to do when it is empty).
    async fn apply(&self, batch: &mut Vec<WriteOp>) {
        if batch.is_empty() {
            return;
        }
        match self.store.write_batch(batch).await {
            Ok(()) => {
                if self.dropping.swap(false, Ordering::AcqRel) {
                    tracing::info!("store writes are no longer dropped");
                }
            }
            Err(e) => {
                Metrics::count(&self.metrics.store_writes_dropped, "store_error", batch.len() as u64);
                if !crate::store_guard::is_outage(&e) {
                    tracing::error!(error = %e, writes = batch.len(), "could not write to the store");
                }
            }
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests;
