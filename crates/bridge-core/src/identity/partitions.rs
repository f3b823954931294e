//! Partition assignment and per-partition request rates for groups of lineages that share routing: a
//! shared startup namespace (its member lineages), or a lineage whose forks route with their root
//! (`[cache] fork_key = "root"`, its member sessions). Kept in the store, so every replica sharing it (one
//! Redis, one SQLite file) assigns a member to the same partition, and a restart keeps it.
//!
//! Invariants:
//! - An assignment is written once, first writer wins (`put_if_absent`), and never changes: memory holds a
//!   bounded cache in front of the store (idle entries are evicted, never cleared all at once), and an
//!   evicted member reads its assignment back. A member never changes key while it is active.
//! - A new member joins the lowest partition whose rate is under `max_rpm`; a partition over the rate takes
//!   no new members, and nobody is moved off it (a group has at most [`MAX_PARTITIONS`]). A member whose
//!   own rate alone exceeds `max_rpm` is reported ([`Routed::over_rate`]), not moved.
//! - Rates are minute buckets in the store (`rate` namespace, a few minutes' TTL), read as a sliding window
//!   (the current bucket plus the previous one weighted by the part of it still inside the last minute).
//!   Counts are added in memory and flushed to the store at most once a second, so the request path writes
//!   nothing; a rate read adds this process's unflushed counts, so it is exact for one process and at most
//!   a second late for the others.
//! - The store is read only for members this process has not seen (and for the rates of a new member's
//!   candidate partitions); a store error fails the resolution, which then degrades like any store outage.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bridge_store::{Store, StoreResult};

use super::prefix::{Digest, digest};

/// Store namespace of partition assignments (`<group>\n<member>` → partition).
pub const ASSIGN_NS: &str = "partition";
/// Store namespace of the namespace each lineage joined first (lineage → namespace name).
pub const JOINED_NS: &str = "ns-joined";
/// Store namespace of rate buckets (`<group>\n<partition>\n<minute>` → requests).
pub const RATE_NS: &str = "rate";

const WINDOW_MS: i64 = 60_000;
/// How long a rate bucket outlives its minute.
const BUCKET_TTL: Duration = Duration::from_secs(180);
/// Unflushed counts are written to the store at most this often.
const FLUSH_EVERY_MS: i64 = 1_000;
/// Partitions a group may have: a new member examines at most this many (two store reads each), and when
/// all are over the rate it joins the last one (64 × 12 requests per minute is far beyond one account).
pub const MAX_PARTITIONS: u32 = 64;

/// A member's partition and what routing it tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Routed {
    pub partition: u32,
    /// The member's own rate alone exceeds the per-key rate (reported, not moved).
    pub over_rate: bool,
}

/// One minute bucket of one partition of one group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bucket {
    group: Box<str>,
    partition: u32,
    minute: i64,
}

impl Bucket {
    fn key(&self) -> String {
        format!("{}\n{}\n{}", self.group, self.partition, self.minute)
    }
}

/// A member's own rate (this process's view): requests in the current and previous minute.
#[derive(Debug, Default)]
struct OwnRate {
    minute: AtomicI64,
    current: AtomicU32,
    previous: AtomicU32,
}

impl OwnRate {
    /// Counts a request at `now_ms` and returns the sliding-window rate including it.
    fn count(&self, now_ms: i64) -> f64 {
        let minute = now_ms.div_euclid(WINDOW_MS);
        let seen = self.minute.swap(minute, Ordering::Relaxed);
        if seen != minute {
            let carried = if seen == minute - 1 { self.current.load(Ordering::Relaxed) } else { 0 };
            self.previous.store(carried, Ordering::Relaxed);
            self.current.store(0, Ordering::Relaxed);
        }
        let current = self.current.fetch_add(1, Ordering::Relaxed) + 1;
        window(current as f64, self.previous.load(Ordering::Relaxed) as f64, now_ms)
    }
}

/// The sliding-window rate from a current and a previous minute bucket.
fn window(current: f64, previous: f64, now_ms: i64) -> f64 {
    let into = now_ms.rem_euclid(WINDOW_MS) as f64 / WINDOW_MS as f64;
    current + previous * (1.0 - into)
}

/// A member's cached assignment.
#[derive(Debug, Clone)]
struct Member {
    partition: u32,
    rate: Arc<OwnRate>,
}

/// Partition assignments and rates, shared by every request of a bridge.
pub struct PartitionBook {
    store: Arc<dyn Store>,
    members: quick_cache::sync::Cache<Digest, Member>,
    /// The namespace each lineage joined (`None`: looked up, none).
    joined: quick_cache::sync::Cache<Digest, Option<Arc<str>>>,
    /// Counts not yet in the store (pending, or being flushed).
    unflushed: Arc<Mutex<HashMap<Bucket, i64>>>,
    last_flush_ms: AtomicI64,
    flushing: Arc<AtomicBool>,
}

impl PartitionBook {
    /// An empty book over `store`, remembering at most `capacity` members and lineages in memory.
    pub fn new(store: Arc<dyn Store>, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            store,
            members: quick_cache::sync::Cache::new(capacity),
            joined: quick_cache::sync::Cache::new(capacity),
            unflushed: Arc::default(),
            last_flush_ms: AtomicI64::new(0),
            flushing: Arc::default(),
        }
    }

    /// The namespace `lineage` joined, if any: memory, else the store (once per process and lineage).
    pub async fn joined(&self, lineage: &str) -> StoreResult<Option<String>> {
        let d = digest(lineage.as_bytes());
        if let Some(cached) = self.joined.get(&d) {
            return Ok(cached.map(|n| n.to_string()));
        }
        let stored = self.store.get(JOINED_NS, lineage).await?.and_then(|b| String::from_utf8(b).ok());
        self.joined.insert(d, stored.as_deref().map(Arc::from));
        Ok(stored)
    }

    /// Records that `lineage` joined `namespace` (first writer wins) and returns the namespace it is in.
    pub async fn join(&self, lineage: &str, namespace: &str) -> StoreResult<String> {
        let d = digest(lineage.as_bytes());
        if let Some(Some(name)) = self.joined.get(&d) {
            return Ok(name.to_string());
        }
        let name = if self.store.put_if_absent(JOINED_NS, lineage, namespace.as_bytes(), None).await? {
            namespace.to_owned()
        } else {
            let stored = self.store.get(JOINED_NS, lineage).await?.and_then(|b| String::from_utf8(b).ok());
            stored.unwrap_or_else(|| namespace.to_owned())
        };
        self.joined.insert(d, Some(Arc::from(name.as_str())));
        Ok(name)
    }

    /// The partition of `member` in `group`, counting this request at `now_ms`. `fixed` pins a member to a
    /// partition without an assignment record (a lineage root is always partition 0 of its own group).
    pub async fn route(
        &self,
        group: &str,
        member: &str,
        now_ms: i64,
        max_rpm: u32,
        fixed: Option<u32>,
    ) -> StoreResult<Routed> {
        let d = digest(format!("{group}\n{member}").as_bytes());
        let cached = match self.members.get(&d) {
            Some(m) => m,
            None => {
                let partition = match fixed {
                    Some(p) => p,
                    None => self.assign(group, member, now_ms, max_rpm).await?,
                };
                let m = Member { partition, rate: Arc::default() };
                self.members.insert(d, m.clone());
                m
            }
        };
        let own = cached.rate.count(now_ms);
        self.count(group, cached.partition, now_ms);
        Ok(Routed { partition: cached.partition, over_rate: own > f64::from(max_rpm) })
    }

    /// The stored assignment of a member, else a new one (first writer wins).
    async fn assign(&self, group: &str, member: &str, now_ms: i64, max_rpm: u32) -> StoreResult<u32> {
        let key = format!("{group}\n{member}");
        if let Some(p) = self.stored_assignment(&key).await? {
            return Ok(p);
        }
        let mut partition = 0;
        while partition + 1 < MAX_PARTITIONS && self.rate(group, partition, now_ms).await? >= f64::from(max_rpm) {
            partition += 1;
        }
        if self.store.put_if_absent(ASSIGN_NS, &key, partition.to_string().as_bytes(), None).await? {
            return Ok(partition);
        }
        Ok(self.stored_assignment(&key).await?.unwrap_or(partition))
    }

    async fn stored_assignment(&self, key: &str) -> StoreResult<Option<u32>> {
        let bytes = self.store.get(ASSIGN_NS, key).await?;
        Ok(bytes.and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok()))
    }

    /// The sliding-window rate of one partition: the store's buckets plus this process's unflushed counts.
    async fn rate(&self, group: &str, partition: u32, now_ms: i64) -> StoreResult<f64> {
        let minute = now_ms.div_euclid(WINDOW_MS);
        let mut counts = [0i64; 2];
        for (slot, m) in counts.iter_mut().zip([minute, minute - 1]) {
            let bucket = Bucket { group: group.into(), partition, minute: m };
            let stored = self.store.get(RATE_NS, &bucket.key()).await?;
            let stored = stored.and_then(|b| std::str::from_utf8(&b).ok()?.parse::<i64>().ok()).unwrap_or(0);
            let local = self.unflushed.lock().map(|u| u.get(&bucket).copied().unwrap_or(0)).unwrap_or(0);
            *slot = stored + local;
        }
        Ok(window(counts[0] as f64, counts[1] as f64, now_ms))
    }

    /// Adds one request to a partition's bucket in memory, and starts a flush when one is due.
    fn count(&self, group: &str, partition: u32, now_ms: i64) {
        let minute = now_ms.div_euclid(WINDOW_MS);
        if let Ok(mut u) = self.unflushed.lock() {
            *u.entry(Bucket { group: group.into(), partition, minute }).or_default() += 1;
        }
        let last = self.last_flush_ms.load(Ordering::Relaxed);
        if now_ms - last < FLUSH_EVERY_MS || self.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.last_flush_ms.store(now_ms, Ordering::Relaxed);
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.flushing.store(false, Ordering::Release);
            return;
        };
        let (store, unflushed, flushing) = (self.store.clone(), self.unflushed.clone(), self.flushing.clone());
        handle.spawn(async move {
            flush(&*store, &unflushed, minute).await;
            flushing.store(false, Ordering::Release);
        });
    }
}

impl PartitionBook {
    /// Writes every unflushed count to the store now (tests; a clean shutdown may call it too).
    pub async fn flush_now(&self, now_ms: i64) {
        while self.flushing.swap(true, Ordering::AcqRel) {
            tokio::task::yield_now().await;
        }
        flush(&*self.store, &self.unflushed, now_ms.div_euclid(WINDOW_MS)).await;
        self.flushing.store(false, Ordering::Release);
    }
}

/// Writes the unflushed counts to the store; a count leaves memory only once the store has it. Buckets
/// older than the window are dropped (they no longer matter).
async fn flush(store: &dyn Store, unflushed: &Mutex<HashMap<Bucket, i64>>, minute: i64) {
    let snapshot: Vec<(Bucket, i64)> = match unflushed.lock() {
        Ok(mut u) => {
            u.retain(|b, _| b.minute >= minute - 1);
            u.iter().map(|(b, n)| (b.clone(), *n)).collect()
        }
        Err(_) => return,
    };
    for (bucket, n) in snapshot {
        let key = bucket.key();
        let written = match store.put_if_absent(RATE_NS, &key, b"0", Some(BUCKET_TTL)).await {
            Ok(_) => store.incr(RATE_NS, &key, n).await.is_ok(),
            Err(_) => false,
        };
        if !written {
            continue;
        }
        if let Ok(mut u) = unflushed.lock()
            && let Some(left) = u.get_mut(&bucket)
        {
            *left -= n;
            if *left <= 0 {
                u.remove(&bucket);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_store::MemoryStore;

    const T0: i64 = 1_760_000_000_000 / WINDOW_MS * WINDOW_MS; // a minute boundary, epoch milliseconds

    fn book(store: Arc<dyn Store>) -> PartitionBook {
        PartitionBook::new(store, 1_000)
    }

    #[tokio::test]
    async fn members_stick_and_spill_over_at_the_rate() {
        let p = book(Arc::new(MemoryStore::default()));
        for i in 0..3 {
            assert_eq!(p.route("ns", &format!("s{i}"), T0, 3, None).await.unwrap().partition, 0);
        }
        assert_eq!(p.route("ns", "s3", T0, 3, None).await.unwrap().partition, 1);
        assert_eq!(p.route("ns", "s0", T0, 3, None).await.unwrap().partition, 0, "a member keeps its partition");
        assert_eq!(p.route("ns", "s4", T0 + 120_000, 3, None).await.unwrap().partition, 0, "the window slides");
    }

    #[tokio::test]
    async fn the_window_slides_over_the_previous_minute() {
        let p = book(Arc::new(MemoryStore::default()));
        for i in 0..4 {
            p.route("ns", &format!("s{i}"), T0 + 50_000, 4, None).await.unwrap();
        }
        // 15 s into the next minute, 3/4 of the previous bucket still counts: 4 × 0.75 = 3 < 4.
        assert_eq!(p.route("ns", "late", T0 + 75_000, 4, None).await.unwrap().partition, 0);
        // Early in the next minute the previous bucket still fills partition 0: 4 × 0.9 + 1 ≥ 4.
        assert_eq!(p.route("ns", "early", T0 + 66_000, 4, None).await.unwrap().partition, 1);
    }

    #[tokio::test]
    async fn a_fixed_member_is_never_assigned_and_over_rate_is_reported_not_moved() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let p = book(store.clone());
        let mut last = None;
        for i in 0..5 {
            last = Some(p.route("root", "root", T0 + i, 3, Some(0)).await.unwrap());
        }
        assert_eq!(last, Some(Routed { partition: 0, over_rate: true }));
        assert_eq!(store.get(ASSIGN_NS, "root\nroot").await.unwrap(), None, "a fixed member writes nothing");
        let fork = p.route("root", "fork", T0 + 10, 3, None).await.unwrap();
        assert_eq!(fork, Routed { partition: 1, over_rate: false }, "a partition over the rate takes no one new");
    }

    #[tokio::test]
    async fn a_members_own_rate_carries_the_previous_minute() {
        let p = book(Arc::new(MemoryStore::default()));
        for _ in 0..3 {
            assert!(!p.route("ns", "s", T0 + 59_000, 3, None).await.unwrap().over_rate, "3 in a minute is the rate");
        }
        // One second into the next minute, 59/60 of the previous minute's 3 requests still count: 1 + 2.95 > 3.
        assert!(p.route("ns", "s", T0 + 61_000, 3, None).await.unwrap().over_rate);
        // Two minutes later nothing carries over.
        assert!(!p.route("ns", "s", T0 + 181_000, 3, None).await.unwrap().over_rate);
    }

    /// The store value of one bucket, 0 when absent.
    async fn stored(store: &dyn Store, bucket: &str) -> i64 {
        let bytes = store.get(RATE_NS, bucket).await.unwrap();
        bytes.map_or(0, |b| std::str::from_utf8(&b).unwrap().parse().unwrap())
    }

    /// Lets spawned flushes run.
    async fn settle() {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn counts_are_flushed_at_most_once_a_second_and_leave_memory_once_stored() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let p = book(store.clone());
        let bucket = format!("ns\n0\n{}", T0 / WINDOW_MS);
        p.route("ns", "a", T0, 100, None).await.unwrap(); // the first count starts a flush
        settle().await;
        assert_eq!(stored(&*store, &bucket).await, 1);
        p.route("ns", "b", T0 + 500, 100, None).await.unwrap(); // within the second: no flush
        settle().await;
        assert_eq!(stored(&*store, &bucket).await, 1);
        assert_eq!(
            p.unflushed.lock().unwrap().get(&Bucket { group: "ns".into(), partition: 0, minute: T0 / WINDOW_MS }),
            Some(&1)
        );
        p.route("ns", "c", T0 + 1_000, 100, None).await.unwrap(); // a second later: flushed
        settle().await;
        assert_eq!(stored(&*store, &bucket).await, 3);
        assert!(p.unflushed.lock().unwrap().is_empty(), "flushed counts leave memory");
    }

    #[tokio::test]
    async fn a_flush_in_the_next_minute_still_writes_the_previous_minutes_counts() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let p = book(store.clone());
        p.route("ns", "a", T0 + 59_000, 100, None).await.unwrap();
        settle().await;
        p.route("ns", "b", T0 + 59_500, 100, None).await.unwrap(); // not flushed yet
        p.flush_now(T0 + 61_000).await;
        assert_eq!(stored(&*store, &format!("ns\n0\n{}", T0 / WINDOW_MS)).await, 2);
        p.route("ns", "c", T0 + 200_000, 100, None).await.unwrap();
        p.flush_now(T0 + 200_000).await;
        assert!(p.unflushed.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_saturated_group_puts_new_members_on_its_last_partition() {
        let p = book(Arc::new(MemoryStore::default()));
        for i in 0..MAX_PARTITIONS + 2 {
            let got = p.route("ns", &format!("s{i}"), T0, 1, None).await.unwrap().partition;
            assert_eq!(got, i.min(MAX_PARTITIONS - 1), "member {i}");
        }
    }

    #[tokio::test]
    async fn replicas_sharing_a_store_agree_and_evicted_members_read_their_partition_back() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let (a, b) = (PartitionBook::new(store.clone(), 1), book(store.clone()));
        for i in 0..3 {
            a.route("ns", &format!("s{i}"), T0, 3, None).await.unwrap();
        }
        let first = a.route("ns", "s3", T0, 3, None).await.unwrap().partition;
        assert_eq!(first, 1);
        assert_eq!(b.route("ns", "s3", T0 + 5, 3, None).await.unwrap().partition, 1, "the other replica agrees");
        // `a` remembers one member; s0..s2 were evicted and read their assignment back from the store.
        for i in 0..3 {
            assert_eq!(a.route("ns", &format!("s{i}"), T0 + 10, 3, None).await.unwrap().partition, 0);
        }
        assert_eq!(a.join("lineage", "ns-a").await.unwrap(), "ns-a");
        assert_eq!(b.join("lineage", "ns-b").await.unwrap(), "ns-a", "the first writer wins");
        assert_eq!(b.joined("lineage").await.unwrap().as_deref(), Some("ns-a"));
        assert_eq!(b.joined("other").await.unwrap(), None);
    }

    #[tokio::test]
    async fn counts_reach_the_store_and_other_replicas_see_them() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
        let a = book(store.clone());
        for i in 0..3 {
            a.route("ns", &format!("s{i}"), T0 + i * 1_000, 3, None).await.unwrap();
        }
        a.flush_now(T0 + 3_000).await;
        let stored = store.get(RATE_NS, &format!("ns\n0\n{}", T0 / WINDOW_MS)).await.unwrap();
        assert_eq!(stored.as_deref(), Some(&b"3"[..]), "the first minute's three requests are in the store");
        let b = book(store);
        assert_eq!(b.route("ns", "new", T0 + 3_000, 3, None).await.unwrap().partition, 1, "seen by a replica");
    }
}
