//! Writes usage rows to the store off the request path.
//!
//! Stream tasks hand a finished [`UsageRecord`] to a bounded channel and move on; one background task
//! writes rows in order. The channel applies back-pressure (the stream task waits) rather than dropping a
//! row. [`Recorder::flush`] waits until everything sent before it is written (shutdown, tests).
//! Other off-path store writes (session turn rows, tracker state, the prefix index) use the same queue
//! ([`StoreWrite`]), so one flush covers them too.

use std::sync::Arc;

use bridge_store::{Store, UsageRecord};
use tokio::sync::{mpsc, oneshot};

/// Capacity of the channel in front of the writer.
const QUEUE: usize = 1024;

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

enum Message {
    Usage(Box<UsageRecord>),
    Write(StoreWrite),
    Flush(oneshot::Sender<()>),
}

/// Handle to the writer task.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Message>,
}

impl Recorder {
    /// Starts the writer task.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
        tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                match message {
                    Message::Usage(record) => {
                        if let Err(e) = store.record_usage(&record).await {
                            tracing::error!(request_id = %record.request_id, error = %e, "could not record usage");
                        }
                    }
                    Message::Write(write) => {
                        let result = match &write {
                            StoreWrite::Put { ns, key, value } => store.put(ns, key, value, None).await,
                            StoreWrite::PutIfAbsent { ns, key, value } => {
                                store.put_if_absent(ns, key, value, None).await.map(|_| ())
                            }
                            StoreWrite::Append { log, ts_ms, body } => {
                                store.append(log, *ts_ms, body).await.map(|_| ())
                            }
                        };
                        if let Err(e) = result {
                            tracing::error!(error = %e, "could not write session state");
                        }
                    }
                    Message::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        Self { tx }
    }

    /// Queues a row (waits if the queue is full).
    pub async fn record(&self, record: UsageRecord) {
        if self.tx.send(Message::Usage(Box::new(record))).await.is_err() {
            tracing::error!("usage recorder stopped; a usage row was not written");
        }
    }

    /// Queues a store write (waits if the queue is full).
    pub async fn write(&self, write: StoreWrite) {
        if self.tx.send(Message::Write(write)).await.is_err() {
            tracing::error!("usage recorder stopped; a session write was lost");
        }
    }

    /// Waits until every row queued before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}
