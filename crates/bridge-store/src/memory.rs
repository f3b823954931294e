//! In-memory backend: every map behind one `Mutex`, gone when the process exits. Meant for tests
//! and throwaway runs.
//!
//! Invariants: each trait call takes the lock once, so every operation (a whole batch too) is atomic; expired entries
//! read as absent and are dropped when touched, plus a full sweep every [`SWEEP_EVERY`] writes so
//! keys never read again do not pile up.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::clock::{deadline_ms, now_ms};
use crate::{LogEntry, Store, StoreError, StoreResult, UsageQuery, UsageRecord, WriteOp, parse_counter};

/// Number of key-value writes between two sweeps of expired entries.
const SWEEP_EVERY: u32 = 256;

/// The in-memory store. Cheap to create; share it through an `Arc`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// `(ns, key)` to value and optional deadline in Unix ms.
    kv: BTreeMap<(String, String), Entry>,
    writes_since_sweep: u32,
    /// scope to (member to ordinal).
    ordinals: HashMap<String, HashMap<String, u64>>,
    /// log name to its entries, `seq` = index + 1.
    logs: BTreeMap<String, Vec<LogEntry>>,
    /// In the order recorded.
    usage: Vec<UsageRecord>,
}

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expires_at_ms: Option<i64>,
}

impl Entry {
    fn is_live(&self, now: i64) -> bool {
        self.expires_at_ms.is_none_or(|at| at > now)
    }
}

impl MemoryStore {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the maps half-updated (no call panics mid-update), so a
        // poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Inner {
    /// The live entry of `(ns, key)`, dropping it first if it expired.
    fn live_entry(&mut self, ns: &str, key: &str) -> Option<&mut Entry> {
        let id = (ns.to_owned(), key.to_owned());
        if self.kv.get(&id).is_some_and(|e| !e.is_live(now_ms())) {
            self.kv.remove(&id);
        }
        self.kv.get_mut(&id)
    }

    fn write(&mut self, ns: &str, key: &str, entry: Entry) {
        self.kv.insert((ns.to_owned(), key.to_owned()), entry);
        self.writes_since_sweep += 1;
        if self.writes_since_sweep >= SWEEP_EVERY {
            self.writes_since_sweep = 0;
            let now = now_ms();
            self.kv.retain(|_, e| e.is_live(now));
        }
    }

    fn put(&mut self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) {
        self.write(ns, key, Entry { value: value.to_vec(), expires_at_ms: deadline_ms(ttl) });
    }

    fn put_if_absent(&mut self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> bool {
        if self.live_entry(ns, key).is_some() {
            return false;
        }
        self.put(ns, key, value, ttl);
        true
    }

    fn append(&mut self, log: &str, ts_ms: i64, body: &str) -> u64 {
        let entries = self.logs.entry(log.to_owned()).or_default();
        let seq = entries.len() as u64 + 1;
        entries.push(LogEntry { seq, ts_ms, body: body.to_owned() });
        seq
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, ns: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.lock().live_entry(ns, key).map(|e| e.value.clone()))
    }

    async fn put(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<()> {
        self.lock().put(ns, key, value, ttl);
        Ok(())
    }

    async fn put_if_absent(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<bool> {
        Ok(self.lock().put_if_absent(ns, key, value, ttl))
    }

    async fn delete(&self, ns: &str, key: &str) -> StoreResult<()> {
        self.lock().kv.remove(&(ns.to_owned(), key.to_owned()));
        Ok(())
    }

    async fn keys(&self, ns: &str, prefix: &str, limit: usize) -> StoreResult<Vec<String>> {
        let now = now_ms();
        let inner = self.lock();
        let matching = inner
            .kv
            .range((ns.to_owned(), prefix.to_owned())..)
            .take_while(|((n, k), _)| n == ns && k.starts_with(prefix))
            .filter(|(_, e)| e.is_live(now))
            .map(|((_, k), _)| k.clone());
        Ok(if limit == 0 { matching.collect() } else { matching.take(limit).collect() })
    }

    async fn incr(&self, ns: &str, key: &str, by: i64) -> StoreResult<i64> {
        let mut inner = self.lock();
        let (old, expires_at_ms) = match inner.live_entry(ns, key) {
            Some(e) => (parse_counter(&e.value, ns)?, e.expires_at_ms),
            None => (0, None),
        };
        let new = old
            .checked_add(by)
            .ok_or_else(|| StoreError::Corrupt(format!("counter in namespace {ns:?} would overflow")))?;
        inner.write(ns, key, Entry { value: new.to_string().into_bytes(), expires_at_ms });
        Ok(new)
    }

    async fn assign_ordinal(&self, scope: &str, member: &str) -> StoreResult<u64> {
        let mut inner = self.lock();
        let members = inner.ordinals.entry(scope.to_owned()).or_default();
        let next = members.len() as u64 + 1;
        Ok(*members.entry(member.to_owned()).or_insert(next))
    }

    async fn append(&self, log: &str, ts_ms: i64, body: &str) -> StoreResult<u64> {
        Ok(self.lock().append(log, ts_ms, body))
    }

    async fn read_log(&self, log: &str, after: u64, limit: usize) -> StoreResult<Vec<LogEntry>> {
        let inner = self.lock();
        let Some(entries) = inner.logs.get(log) else {
            return Ok(Vec::new());
        };
        let newer = entries.iter().filter(|e| e.seq > after).cloned();
        Ok(if limit == 0 { newer.collect() } else { newer.take(limit).collect() })
    }

    async fn logs(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let inner = self.lock();
        Ok(inner
            .logs
            .range(prefix.to_owned()..)
            .take_while(|(name, _)| name.starts_with(prefix))
            .map(|(name, _)| name.clone())
            .collect())
    }

    async fn record_usage(&self, record: &UsageRecord) -> StoreResult<()> {
        self.lock().usage.push(record.clone());
        Ok(())
    }

    async fn usage(&self, query: &UsageQuery) -> StoreResult<Vec<UsageRecord>> {
        let inner = self.lock();
        // Latest recorded first, then a stable sort by time keeps that order among equal times.
        let mut rows: Vec<&UsageRecord> = inner
            .usage
            .iter()
            .rev()
            .filter(|r| query.session_id.is_none() || r.session_id == query.session_id)
            .collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.ts_ms));
        if query.limit != 0 {
            rows.truncate(query.limit);
        }
        Ok(rows.into_iter().cloned().collect())
    }

    async fn write_batch(&self, ops: &[WriteOp]) -> StoreResult<()> {
        let mut inner = self.lock();
        for op in ops {
            match op {
                WriteOp::Put { ns, key, value, ttl } => inner.put(ns, key, value, *ttl),
                WriteOp::PutIfAbsent { ns, key, value, ttl } => {
                    inner.put_if_absent(ns, key, value, *ttl);
                }
                WriteOp::Append { log, ts_ms, body } => {
                    inner.append(log, *ts_ms, body);
                }
                WriteOp::Usage(record) => inner.usage.push((**record).clone()),
            }
        }
        Ok(())
    }
}
