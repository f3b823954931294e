//! Writes usage rows to the store off the request path.
//!
//! Stream tasks hand a finished [`UsageRecord`] to a bounded channel and move on; one background task
//! writes rows in order. The channel applies back-pressure (the stream task waits) rather than dropping a
//! row. [`Recorder::flush`] waits until everything sent before it is written (shutdown, tests).

use std::sync::Arc;

use bridge_store::{Store, UsageRecord};
use tokio::sync::{mpsc, oneshot};

/// Capacity of the channel in front of the writer.
const QUEUE: usize = 1024;

enum Message {
    Usage(Box<UsageRecord>),
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

    /// Waits until every row queued before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}
