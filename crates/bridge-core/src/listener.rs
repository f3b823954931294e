//! The accept loop: a cap on open client connections, fitted to the process's open-file limit.
//!
//! Invariants:
//! - At most [`Listener::capacity`] client connections are open; the cap leaves room under `ulimit -n` for
//!   as many upstream connections plus files, so accepting never fails for lack of descriptors.
//! - At the cap, the connection idle the longest is closed to make room (as nginx reuses keep-alive
//!   connections); when none is idle within [`ADMIT_WAIT`], the newcomer gets an OpenAI-shaped 503 and is
//!   closed. So idle sockets can never lock clients out.
//! - Accept errors never end the loop; the loop ends when `shutdown` is cancelled.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ServerLimits;
use crate::connection::Activity;
use crate::metrics::Metrics;

/// How long a new connection waits at the cap for an evicted or finished one to free its slot.
pub const ADMIT_WAIT: Duration = Duration::from_millis(500);
/// Descriptors kept free for the store, the journal, logs and the instruction cache.
const RESERVED_FDS: u64 = 64;

/// The connection cap for `configured`, lowered to fit the open-file limit (raised to its hard limit
/// first). Each client connection may hold one upstream connection, hence the halving.
pub fn fitted_capacity(configured: usize) -> usize {
    let soft = rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft))
        .unwrap_or(u64::MAX);
    let fit = (soft.saturating_sub(RESERVED_FDS) / 2).max(1);
    let capacity = configured.min(usize::try_from(fit).unwrap_or(usize::MAX));
    if capacity < configured {
        tracing::info!(
            configured,
            capacity,
            open_file_limit = soft,
            "server.max_connections lowered to fit the open-file limit (ulimit -n)"
        );
    }
    capacity
}

/// Open connections, for eviction.
#[derive(Default)]
struct Registry {
    live: Mutex<HashMap<u64, Arc<Activity>>>,
    next: AtomicU64,
}

impl Registry {
    fn add(&self, activity: Arc<Activity>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut live) = self.live.lock() {
            live.insert(id, activity);
        }
        id
    }

    fn remove(&self, id: u64) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&id);
        }
    }

    /// Asks the connection idle the longest to close; false when none is idle.
    fn evict_longest_idle(&self) -> bool {
        let Ok(live) = self.live.lock() else { return false };
        let oldest = live.values().filter_map(|a| a.idle_for().map(|idle| (idle, a))).max_by_key(|(idle, _)| *idle);
        match oldest {
            Some((_, activity)) => {
                activity.evict();
                true
            }
            None => false,
        }
    }
}

/// Removes a connection from the registry and frees its slot when its task ends.
struct Slot {
    registry: Arc<Registry>,
    id: u64,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

/// A bound socket with its connection cap.
pub struct Listener {
    tcp: TcpListener,
    permits: Arc<Semaphore>,
    registry: Arc<Registry>,
    capacity: usize,
}

impl Listener {
    /// Wraps a bound socket; `capacity` from [`fitted_capacity`].
    pub fn new(tcp: TcpListener, capacity: usize) -> Self {
        Self { tcp, permits: Arc::new(Semaphore::new(capacity)), registry: Arc::default(), capacity }
    }

    /// The connection cap in force.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.tcp.local_addr()
    }

    /// Accepts until `shutdown` is cancelled; every connection task is spawned on `tasks`.
    pub async fn run(
        self,
        router: Router,
        limits: Arc<ServerLimits>,
        metrics: Arc<Metrics>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
        abort: CancellationToken,
    ) {
        let mut accept_errors: u64 = 0;
        loop {
            let accepted = tokio::select! {
                accepted = self.tcp.accept() => accepted,
                () = shutdown.cancelled() => return,
            };
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of descriptors or a connection reset before accept: wait a little, never stop.
                    accept_errors += 1;
                    if accept_errors.is_power_of_two() {
                        tracing::warn!(error = %e, count = accept_errors, "cannot accept a connection");
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            // SSE events are small writes: without TCP_NODELAY, Nagle holds each one back until the client's
            // delayed ACK (about 40 ms).
            let _ = tcp.set_nodelay(true);
            let Some(permit) = self.admit().await else {
                Metrics::count(&metrics.connections_refused, "at_capacity", 1);
                tasks.spawn(refuse(tcp, self.capacity));
                continue;
            };
            let activity = Arc::new(Activity::new());
            let slot =
                Slot { registry: self.registry.clone(), id: self.registry.add(activity.clone()), _permit: permit };
            let connection = crate::connection::serve(
                tcp,
                router.clone(),
                limits.clone(),
                activity,
                metrics.clone(),
                shutdown.clone(),
                abort.clone(),
            );
            tasks.spawn(async move {
                connection.await;
                drop(slot);
            });
        }
    }

    /// A slot for a new connection: a free one, or one freed by evicting the longest-idle connection.
    async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Some(permit);
        }
        self.registry.evict_longest_idle();
        tokio::time::timeout(ADMIT_WAIT, self.permits.clone().acquire_owned()).await.ok()?.ok()
    }
}

/// Answers a connection over the cap with a 503 and closes it.
async fn refuse(mut tcp: TcpStream, capacity: usize) {
    let body = bridge_types::ApiError::new(
        503,
        bridge_types::ErrorKind::ServerError,
        format!("codex-bridge is at its limit of {capacity} open connections (server.max_connections); retry shortly"),
    )
    .with_code("too_many_connections")
    .to_json();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let write = async {
        tcp.write_all(head.as_bytes()).await?;
        tcp.write_all(body.as_bytes()).await?;
        tcp.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}
