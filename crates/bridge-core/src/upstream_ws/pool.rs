//! The pool of idle upstream sockets, keyed by (conversation lineage, account, connection profile).
//!
//! A key is either idle (its socket waits in an LRU of idle sockets), leased (one turn in flight on it) or
//! absent. Strictly one response in flight per socket: a turn whose key is leased gets no pooled socket
//! (bypass, no queue: a queue would make a parallel request wait for another's whole answer); the caller
//! then uses a member's own key ([`PoolKey::member`]) or a one-shot socket. A lease ends exactly once ([`Lease`]'s drop), giving the socket back
//! only when its turn completed cleanly; beyond `max_idle` the least recently used idle socket is closed.
//!
//! Invariants: a leased key is never handed out twice; the pool holds at most `max_idle` sockets; no lock
//! is held across an await.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use crate::identity::prefix::Digest;
use crate::metrics::Metrics;
use crate::upstream_ws::losses::Losses;
use crate::upstream_ws::socket::Socket;

/// What a pooled socket is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// The conversation lineage (the `session-id` sent upstream: the lineage root under `[cache] affinity =
    /// "lineage"`).
    pub lineage: String,
    /// The account the credential belongs to.
    pub account: Digest,
    /// Handshake-scoped headers (originator, user agent, beta features, routing hint).
    pub profile: Digest,
}

impl PoolKey {
    /// The key of `member`'s own socket in this lineage (a fork or subagent whose `thread-id` differs from
    /// the lineage's `session-id`), for when the lineage's socket is busy; `None` for the lineage itself.
    pub fn member(&self, member: &str) -> Option<PoolKey> {
        (member != self.lineage).then(|| PoolKey { lineage: format!("{}#{member}", self.lineage), ..self.clone() })
    }
}

struct Inner {
    idle: lru::LruCache<PoolKey, Box<Socket>>,
    leased: HashSet<PoolKey>,
}

/// The pool (module docs).
pub struct Pool {
    inner: Mutex<Inner>,
    /// Where an LRU eviction is noted for the lineage that lost its socket.
    losses: Arc<Losses>,
    metrics: Arc<Metrics>,
}

/// The outcome of asking for a key's socket.
pub enum Checkout {
    /// The key's idle socket (the caller checks its age, credential and liveness).
    Idle(Box<Socket>),
    /// Nothing pooled: the caller opens a socket for the key.
    Empty,
    /// A turn is in flight on the key's socket: the caller uses a one-shot socket.
    Busy,
}

impl Pool {
    /// An empty pool keeping at most `max_idle` idle sockets.
    pub fn new(max_idle: usize, losses: Arc<Losses>, metrics: Arc<Metrics>) -> Arc<Self> {
        let cap = NonZeroUsize::new(max_idle.max(1)).unwrap_or(NonZeroUsize::MIN);
        let inner = Mutex::new(Inner { idle: lru::LruCache::new(cap), leased: HashSet::new() });
        Arc::new(Self { inner, losses, metrics })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leases `key` (unless it is busy) and hands over its idle socket if there is one.
    pub fn checkout(self: &Arc<Self>, key: &PoolKey) -> (Checkout, Lease) {
        let mut inner = self.lock();
        if inner.leased.contains(key) {
            return (Checkout::Busy, Lease { pool: self.clone(), key: None });
        }
        inner.leased.insert(key.clone());
        let socket = inner.idle.pop(key);
        self.metrics.upstream_idle_sockets.set(inner.idle.len() as i64);
        let checkout = socket.map_or(Checkout::Empty, Checkout::Idle);
        (checkout, Lease { pool: self.clone(), key: Some(key.clone()) })
    }

    /// Leases `key` and hands over its idle socket, only when it has one and is not busy.
    pub fn checkout_idle(self: &Arc<Self>, key: &PoolKey) -> Option<(Box<Socket>, Lease)> {
        let mut inner = self.lock();
        if inner.leased.contains(key) {
            return None;
        }
        let socket = inner.idle.pop(key)?;
        inner.leased.insert(key.clone());
        self.metrics.upstream_idle_sockets.set(inner.idle.len() as i64);
        Some((socket, Lease { pool: self.clone(), key: Some(key.clone()) }))
    }

    /// Idle sockets now.
    pub fn idle(&self) -> usize {
        self.lock().idle.len()
    }

    fn end(&self, key: &PoolKey, socket: Option<Box<Socket>>) {
        let evicted = {
            let mut inner = self.lock();
            inner.leased.remove(key);
            let evicted = socket.and_then(|s| inner.idle.push(key.clone(), s)).filter(|(k, _)| k != key);
            self.metrics.upstream_idle_sockets.set(inner.idle.len() as i64);
            evicted
        };
        if let Some((evicted_key, socket)) = evicted {
            Metrics::count(&self.metrics.upstream_socket_events, "evicted_lru", 1);
            self.losses.remember(&evicted_key.lineage, "evicted_lru", None);
            drop(socket);
        }
    }
}

/// A key's lease: ends when dropped; [`Lease::give_back`] returns the socket to the pool. A one-shot
/// lease (a busy key, or a request without a conversation) has no key and pools nothing.
pub struct Lease {
    pool: Arc<Pool>,
    key: Option<PoolKey>,
}

impl Lease {
    /// A lease that pools nothing (a request without a conversation).
    pub fn one_shot(pool: &Arc<Pool>) -> Self {
        Self { pool: pool.clone(), key: None }
    }

    /// Whether the socket goes back to the pool at the end (false for a one-shot socket).
    pub fn pooled(&self) -> bool {
        self.key.is_some()
    }

    /// Ends the lease, pooling `socket` (a one-shot lease closes it).
    pub fn give_back(mut self, socket: Box<Socket>) {
        if let Some(key) = self.key.take() {
            self.pool.end(&key, Some(socket));
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.pool.end(&key, None);
        }
    }
}
