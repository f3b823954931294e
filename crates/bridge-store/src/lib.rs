//! Storage for codex-bridge behind one trait, [`Store`], with three backends:
//! SQLite (the embedded default), Redis (shared by several replicas) and memory (tests).
//!
//! Invariants every backend keeps (checked by the conformance suite in `tests/`):
//! - Writes are durable once the returned future resolves (SQLite: WAL commit, which with
//!   `synchronous=NORMAL` survives a process crash but may lose the last commits on power loss;
//!   Redis: the server acknowledged, durability then being the server's persistence settings).
//! - [`Store::assign_ordinal`] is atomic: concurrent callers, also in other processes sharing the store, never
//!   get the same ordinal for two members of one scope, and a member keeps its ordinal forever.
//! - Usage fields that the upstream did not report stay `None` on the way back out; they never become 0.
//! - Values are opaque bytes or JSON given by the caller; the store never interprets them
//!   (except counters written by [`Store::incr`], which are decimal ASCII).
//! - A key whose TTL has passed reads as absent everywhere (`get`, `keys`, `put_if_absent`, `incr`).
//! - [`Store::write_batch`] applies its [`WriteOp`]s in order with the same meaning as the single calls, as one
//!   unit: SQLite one `BEGIN IMMEDIATE` transaction (all or nothing), Redis one `MULTI`/`EXEC` pipeline (one
//!   round trip, no other client's command in between), memory one lock. No other writer's entries land
//!   between two entries of one batch.

mod clock;
mod memory;
mod redis_store;
mod sqlite;

pub use memory::MemoryStore;
pub use redis_store::RedisStore;
pub use sqlite::SqliteStore;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Errors from any backend. Messages never contain stored values (they may hold secrets).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SQLite backend failed (I/O, locking, schema version, ...).
    #[error("sqlite store: {0}")]
    Sqlite(String),
    /// The Redis backend failed (connection, command, script, ...). Never names a password.
    #[error("redis store: {0}")]
    Redis(String),
    /// The store did not answer in time, or is known to be down and was not asked (see bridge-core's guard).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Something read back from the store is not what this crate wrote (bad JSON, non-integer counter, ...).
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    /// [`open`] was given a URL it does not understand.
    #[error("invalid store URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Result of every store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// One upstream request as recorded after its stream ended (or failed).
/// Token fields are `None` when the upstream did not send them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Bridge-assigned unique id of the request.
    pub request_id: String,
    /// Unix time in milliseconds when the request arrived.
    pub ts_ms: i64,
    /// Route template, e.g. `/v1/responses`.
    pub route: String,
    /// HTTP status the client received.
    pub status: u16,
    /// Whether the client asked for a stream.
    pub streamed: bool,
    /// Model name sent upstream, if any.
    pub model: Option<String>,
    /// Client session id as resolved by the bridge, if any.
    pub session_id: Option<String>,
    /// The `prompt_cache_key` sent upstream, if any.
    pub cache_key: Option<String>,
    /// Client name (originator / user agent family), if known.
    pub client: Option<String>,
    /// Prompt tokens, including cached ones.
    pub input_tokens: Option<u64>,
    /// Prompt tokens served from the upstream cache.
    pub cached_tokens: Option<u64>,
    /// Prompt tokens written to the upstream cache.
    pub cache_write_tokens: Option<u64>,
    /// Completion tokens, including reasoning ones.
    pub output_tokens: Option<u64>,
    /// Reasoning tokens.
    pub reasoning_tokens: Option<u64>,
    /// Total tokens as reported by the upstream.
    pub total_tokens: Option<u64>,
}

/// Which usage rows to read back; newest first.
#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    /// Only rows of this session.
    pub session_id: Option<String>,
    /// At most this many rows (0 = no limit).
    pub limit: usize,
}

/// An event appended to a named log (session turns, drift alerts, ...). `seq` is assigned by the store,
/// strictly increasing within one log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Position in the log: 1 for the first entry, then strictly increasing.
    pub seq: u64,
    /// Unix time in milliseconds given by the appender.
    pub ts_ms: i64,
    /// The caller's payload (usually JSON), stored verbatim.
    pub body: String,
}

/// One write of a [`Store::write_batch`]; each means what the single call of the same name means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// [`Store::put`].
    Put { ns: String, key: String, value: Vec<u8>, ttl: Option<Duration> },
    /// [`Store::put_if_absent`] (whether it wrote is not reported).
    PutIfAbsent { ns: String, key: String, value: Vec<u8>, ttl: Option<Duration> },
    /// [`Store::append`] (the assigned `seq` is not reported).
    Append { log: String, ts_ms: i64, body: String },
    /// [`Store::record_usage`].
    Usage(Box<UsageRecord>),
}

/// The one storage interface. Namespaces (`ns`) are short fixed strings chosen by callers
/// (`"lineage"`, `"prefix"`, ...); keys are arbitrary UTF-8.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name for logs and `doctor`: `sqlite`, `redis`, `memory`.
    fn kind(&self) -> &'static str;

    /// Reads a value.
    async fn get(&self, ns: &str, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Writes a value, replacing any old one; with `ttl` it disappears after that long.
    async fn put(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<()>;
    /// Writes only if the key is absent (or expired). Returns true if this call wrote it.
    async fn put_if_absent(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<bool>;
    /// Deletes a key; deleting an absent key is not an error.
    async fn delete(&self, ns: &str, key: &str) -> StoreResult<()>;
    /// Keys of `ns` starting with `prefix`, sorted, at most `limit` (0 = all).
    async fn keys(&self, ns: &str, prefix: &str, limit: usize) -> StoreResult<Vec<String>>;

    /// Atomically adds `by` to an integer counter (absent = 0) and returns the new value.
    /// Counters share the key space of `get`/`put` and are stored as decimal ASCII; a counter keeps
    /// the TTL of the key it updates. A non-integer value or an overflow is an error and writes nothing.
    async fn incr(&self, ns: &str, key: &str, by: i64) -> StoreResult<i64>;

    /// The ordinal of `member` within `scope`: if it has one, that one; otherwise the next free one
    /// (1, 2, 3, ... in order of first sight). Atomic across processes sharing the store.
    async fn assign_ordinal(&self, scope: &str, member: &str) -> StoreResult<u64>;

    /// Appends to a named log and returns the entry's `seq`.
    async fn append(&self, log: &str, ts_ms: i64, body: &str) -> StoreResult<u64>;
    /// Entries of a log with `seq > after`, oldest first, at most `limit` (0 = all).
    async fn read_log(&self, log: &str, after: u64, limit: usize) -> StoreResult<Vec<LogEntry>>;
    /// Names of logs starting with `prefix`, sorted.
    async fn logs(&self, prefix: &str) -> StoreResult<Vec<String>>;

    /// Records one request's usage. Rows are append-only; the same `request_id` twice gives two rows.
    async fn record_usage(&self, record: &UsageRecord) -> StoreResult<()>;
    /// Reads usage rows, newest first (by `ts_ms`; rows with equal `ts_ms` latest recorded first).
    async fn usage(&self, query: &UsageQuery) -> StoreResult<Vec<UsageRecord>>;

    /// Applies `ops` in order as one unit (one transaction / pipeline / lock; see the crate invariants). An
    /// empty batch does nothing. On SQLite an error leaves none of the batch written; on Redis a command that
    /// fails at run time does not undo the others (Redis has no rollback).
    async fn write_batch(&self, ops: &[WriteOp]) -> StoreResult<()>;
}

/// Opens the store named by `url`:
/// - `sqlite://PATH` or a plain path ending in `.db` / `.sqlite`: SQLite at that path;
/// - `redis://HOST:PORT[/DB]`: Redis (key prefix `codex-bridge:`);
/// - `memory://`: in-memory, gone when the process exits;
/// - `None`: SQLite at `DATA_DIR/bridge.db`.
pub async fn open(url: Option<&str>, data_dir: &Path) -> StoreResult<Arc<dyn Store>> {
    match url {
        None => Ok(Arc::new(SqliteStore::open(&data_dir.join("bridge.db")).await?)),
        Some(u) if u.starts_with("redis://") || u.starts_with("rediss://") => {
            Ok(Arc::new(RedisStore::connect(u).await?))
        }
        Some(u) if u == "memory://" || u == "memory" => Ok(Arc::new(MemoryStore::default())),
        Some(u) => {
            if let Some(path) = u.strip_prefix("sqlite://") {
                Ok(Arc::new(SqliteStore::open(Path::new(path)).await?))
            } else if u.ends_with(".db") || u.ends_with(".sqlite") {
                Ok(Arc::new(SqliteStore::open(Path::new(u)).await?))
            } else {
                Err(StoreError::BadUrl {
                    url: u.to_owned(),
                    reason: "expected sqlite://PATH, redis://HOST:PORT or memory://".to_owned(),
                })
            }
        }
    }
}

/// Reads a counter written by [`Store::incr`]; the error names the namespace, never the value.
pub(crate) fn parse_counter(value: &[u8], ns: &str) -> StoreResult<i64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("value in namespace {ns:?} is not an integer counter")))
}
