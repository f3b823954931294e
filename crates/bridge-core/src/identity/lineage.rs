//! Lineages in memory and in the store: each session's root key and fork ordinal, fork ordinals via
//! [`Store::assign_ordinal`], and the prefix index used to detect implicit forks.
//!
//! Invariants:
//! - Fork ordinals come only from `Store::assign_ordinal(root_key, member)`: the same member always gets the
//!   same `n`, across restarts and across replicas sharing the store.
//! - A fork's lineage is written to the store (namespace `lineage`) when it is first decided, and a root's by
//!   the tracker the first time a process tracks it (first writer wins), so a restarted bridge routes both
//!   the same way without searching again.
//! - The prefix index (namespace `prefix`) maps a shared chain hash to the first session that sent it; the
//!   first writer wins (`put_if_absent`). Only positions beyond the startup context are indexed.
//! - The in-memory maps are caches in front of the store, bounded by clearing when full, keyed by digests
//!   (sessions) so that an idle session allocates nothing on the heap here.

use std::sync::Arc;

use bridge_store::{Store, StoreResult};
use serde::{Deserialize, Serialize};

use super::prefix::{Digest, digest, hex};

/// Store namespace of persisted lineages.
pub const LINEAGE_NS: &str = "lineage";
/// Store namespace of the prefix index.
pub const PREFIX_NS: &str = "prefix";

/// Where a session sits in its lineage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// The root session's cache key.
    pub root: String,
    /// The fork ordinal under that root, `None` for the root itself.
    pub fork: Option<u64>,
}

/// Who first sent a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The session id that sent it first.
    pub owner: String,
    /// That session's lineage root key.
    pub root: String,
}

/// A lineage as the memory cache holds it: keyed by the digest of the session id, and with no string at
/// all in the common case of a root whose key is its session id, so an idle session costs a few dozen
/// bytes here.
#[derive(Debug, Clone)]
enum Cached {
    /// A root whose root key equals its session id.
    OwnRoot,
    /// Anything else.
    Other { root: Box<str>, fork: Option<u64> },
}

impl Cached {
    fn new(session: &str, lineage: Lineage) -> Self {
        match lineage {
            Lineage { root, fork: None } if root == session => Self::OwnRoot,
            Lineage { root, fork } => Self::Other { root: root.into_boxed_str(), fork },
        }
    }

    fn lineage(&self, session: &str) -> Lineage {
        match self {
            Self::OwnRoot => Lineage { root: session.to_owned(), fork: None },
            Self::Other { root, fork } => Lineage { root: root.to_string(), fork: *fork },
        }
    }
}

/// Lineage and prefix-index access with memory caches.
pub struct Lineages {
    store: Arc<dyn Store>,
    /// Bounded; the least useful entries are evicted (S3-FIFO), never the whole cache at once.
    sessions: quick_cache::sync::Cache<Digest, Cached>,
    index: quick_cache::sync::Cache<Digest, Arc<IndexEntry>>,
}

impl Lineages {
    /// Empty caches over `store`, each holding at most `capacity` entries.
    pub fn new(store: Arc<dyn Store>, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            store,
            sessions: quick_cache::sync::Cache::new(capacity),
            index: quick_cache::sync::Cache::new(capacity),
        }
    }

    /// The lineage of a session: memory, else the store.
    pub async fn get(&self, session: &str) -> StoreResult<Option<Lineage>> {
        let cached = self.sessions.get(&digest(session.as_bytes())).map(|c| c.lineage(session));
        if let Some(l) = cached {
            return Ok(Some(l));
        }
        let Some(bytes) = self.store.get(LINEAGE_NS, session).await? else { return Ok(None) };
        let lineage: Lineage = serde_json::from_slice(&bytes)
            .map_err(|e| bridge_store::StoreError::Corrupt(format!("lineage record: {e}")))?;
        self.remember(session, lineage.clone());
        Ok(Some(lineage))
    }

    /// Remembers a lineage in memory only (roots, which are recomputed identically after a restart).
    pub fn remember(&self, session: &str, lineage: Lineage) {
        self.sessions.insert(digest(session.as_bytes()), Cached::new(session, lineage));
    }

    /// Decides a fork of `root` for `member` (ordinal from the store) and persists the session's lineage.
    pub async fn fork(&self, session: &str, root: &str, member: &str) -> StoreResult<Lineage> {
        let n = self.store.assign_ordinal(root, member).await?;
        let lineage = Lineage { root: root.to_owned(), fork: Some(n) };
        let bytes = serde_json::to_vec(&lineage).map_err(|e| bridge_store::StoreError::Corrupt(e.to_string()))?;
        self.store.put(LINEAGE_NS, session, &bytes, None).await?;
        self.remember(session, lineage.clone());
        Ok(lineage)
    }

    /// The deepest indexed position of `chain` within `from..chain.len()`, with its entry. Binary search:
    /// positions are indexed as whole prefixes, so if position p is indexed every earlier one is too.
    pub async fn deepest(&self, chain: &[Digest], from: usize) -> StoreResult<Option<(usize, Arc<IndexEntry>)>> {
        let (mut lo, mut hi) = (from, chain.len());
        let mut best = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.lookup(&chain[mid]).await? {
                Some(entry) => {
                    best = Some((mid, entry));
                    lo = mid + 1;
                }
                None => hi = mid,
            }
        }
        Ok(best)
    }

    async fn lookup(&self, digest: &Digest) -> StoreResult<Option<Arc<IndexEntry>>> {
        if let Some(e) = self.index.get(digest) {
            return Ok(Some(e));
        }
        let Some(bytes) = self.store.get(PREFIX_NS, &hex(digest)).await? else { return Ok(None) };
        let entry: IndexEntry = serde_json::from_slice(&bytes)
            .map_err(|e| bridge_store::StoreError::Corrupt(format!("prefix index record: {e}")))?;
        let entry = Arc::new(entry);
        self.cache_index(*digest, entry.clone());
        Ok(Some(entry))
    }

    /// Indexes `positions` of `chain` for `entry` in memory; returns the (digest, JSON) pairs new to this
    /// process, for the caller to write to the store off the request path.
    pub fn index(
        &self,
        chain: &[Digest],
        positions: std::ops::Range<usize>,
        entry: IndexEntry,
    ) -> Vec<(String, String)> {
        let entry = Arc::new(entry);
        let Ok(json) = serde_json::to_string(&*entry) else { return Vec::new() };
        let mut fresh = Vec::new();
        for d in chain.get(positions).unwrap_or_default() {
            let known = self.index.get(d).is_some();
            if !known {
                self.cache_index(*d, entry.clone());
                fresh.push((hex(d), json.clone()));
            }
        }
        fresh
    }

    fn cache_index(&self, digest: Digest, entry: Arc<IndexEntry>) {
        if self.index.get(&digest).is_none() {
            self.index.insert(digest, entry);
        }
    }

    /// Entries in the memory caches (sessions, index), for the memory benchmark and metrics.
    pub fn cached(&self) -> (usize, usize) {
        (self.sessions.len(), self.index.len())
    }
}
