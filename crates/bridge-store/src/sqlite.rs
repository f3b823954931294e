//! SQLite backend: one file (WAL mode) holding every namespace, log and usage row.
//!
//! Invariants:
//! - Every read-modify-write (`put_if_absent`, `incr`, `assign_ordinal`, `append`) runs in a
//!   `BEGIN IMMEDIATE` transaction, so it is atomic also against other processes or other
//!   [`SqliteStore`] handles on the same file (`busy_timeout` makes them wait, up to 5 s).
//! - A batch ([`Store::write_batch`]) is one such transaction: all of it commits, or none.
//! - Rows whose `expires_at_ms` has passed read as absent; writes purge them lazily.
//! - Blocking SQLite calls run on `spawn_blocking`. Writes go through one connection, one at a time per
//!   handle (it sits behind a mutex); reads (`get`, `keys`, `read_log`, `logs`, `usage`) use their own
//!   read-only connections ([`READERS`] per handle), which in WAL mode read the last committed state
//!   while a write transaction is open, so a long write batch never delays a read.
//! - A new file is created with mode 0600 on Unix; SQLite gives its `-wal`/`-shm` files the same mode.

mod migrations;
mod usage;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::clock::{deadline_ms, now_ms};
use crate::{LogEntry, Store, StoreError, StoreResult, UsageQuery, UsageRecord, WriteOp, parse_counter};

/// How long a write waits for another writer's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read connections per handle (two: a read that scans a long log does not hold up a `get`).
const READERS: usize = 2;

/// The SQLite store. Cloning shares the connections.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// `query_only` connections for reads, never behind the write connection's mutex.
    readers: Arc<[Mutex<Connection>]>,
    /// Round-robin start for picking a reader.
    next_reader: Arc<AtomicUsize>,
}

/// Why a blocking operation failed; becomes a [`StoreError`] when it leaves the blocking task.
#[derive(Debug)]
enum Failure {
    Db(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<Failure> for StoreError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Db(e) => StoreError::Sqlite(e.to_string()),
            Failure::Store(e) => e,
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed, with parent directories) the database at `path` and brings its
    /// schema up to date. Fails if the file was written by a newer codex-bridge.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let owned = path.to_owned();
        let (conn, readers) = tokio::task::spawn_blocking(move || {
            // The write connection migrates the schema first; readers open on the result.
            let conn = open_connection(&owned)?;
            let readers = (0..READERS).map(|_| open_reader(&owned).map(Mutex::new)).collect::<Result<Vec<_>, _>>()?;
            Ok::<_, Failure>((conn, readers))
        })
        .await
        .map_err(|e| StoreError::Sqlite(format!("blocking task failed: {e}")))?
        .map_err(|e| StoreError::Sqlite(format!("{}: {}", path.display(), detail(e))))?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)), readers: readers.into(), next_reader: Arc::default() })
    }

    /// Runs the read-only `op` on a read connection in the blocking pool: a free one if there is one,
    /// else the next in turn.
    async fn read<T, F>(&self, op: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, Failure> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let n = readers.len();
            let free = (0..n).find_map(|i| readers.get((start + i) % n)?.try_lock().ok());
            let conn = match free {
                Some(conn) => conn,
                None => {
                    let Some(reader) = readers.get(start % n.max(1)) else {
                        return Err(StoreError::Sqlite("no read connection".into()));
                    };
                    reader.lock().unwrap_or_else(PoisonError::into_inner)
                }
            };
            op(&conn).map_err(StoreError::from)
        })
        .await
        .map_err(|e| StoreError::Sqlite(format!("blocking task failed: {e}")))?
    }

    /// Runs `op` on the connection in the blocking pool.
    async fn run<T, F>(&self, op: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, Failure> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panicking `op` rolled its transaction back while unwinding, so the connection is fine.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            op(&mut conn).map_err(StoreError::from)
        })
        .await
        .map_err(|e| StoreError::Sqlite(format!("blocking task failed: {e}")))?
    }
}

/// The message of a failure without the "sqlite store:" prefix, for wrapping with the path.
fn detail(f: Failure) -> String {
    match f {
        Failure::Db(e) => e.to_string(),
        Failure::Store(StoreError::Sqlite(msg)) => msg,
        Failure::Store(e) => e.to_string(),
    }
}

fn open_connection(path: &Path) -> Result<Connection, Failure> {
    let io = |e: std::io::Error| StoreError::Sqlite(e.to_string());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io)?;
    }
    create_private(path).map_err(io)?;
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "SQLite refused WAL mode; using its journal mode instead");
    }
    conn.execute_batch("PRAGMA synchronous=NORMAL;")?;
    // Every statement on the write path is prepared once per connection (preparing was ~6% of the bridge's
    // CPU under load).
    conn.set_prepared_statement_cache_capacity(32);
    migrations::migrate(&mut conn)?;
    Ok(conn)
}

/// A connection for reads only (`query_only`: a write through it is an error), on the database the write
/// connection opened and migrated.
fn open_reader(path: &Path) -> Result<Connection, Failure> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA query_only=1;")?;
    conn.set_prepared_statement_cache_capacity(16);
    Ok(conn)
}

/// Creates an empty file readable only by its owner, unless it exists (SQLite accepts an empty file).
#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

#[cfg(not(unix))]
fn create_private(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Starts a transaction that holds the write lock from its first statement.
fn write_tx(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// Deletes every expired key-value row.
fn purge_expired(tx: &Transaction<'_>, now: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("DELETE FROM kv WHERE expires_at_ms IS NOT NULL AND expires_at_ms <= ?1")?.execute([now])?;
    Ok(())
}

/// `put` inside a write transaction.
fn put_tx(tx: &Transaction<'_>, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT OR REPLACE INTO kv (ns, key, value, expires_at_ms) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![ns, key, value, deadline_ms(ttl)])?;
    Ok(())
}

/// `put_if_absent` inside a write transaction that already purged expired rows; true if it wrote.
fn put_if_absent_tx(
    tx: &Transaction<'_>,
    ns: &str,
    key: &str,
    value: &[u8],
    ttl: Option<Duration>,
) -> rusqlite::Result<bool> {
    let written = tx
        .prepare_cached("INSERT OR IGNORE INTO kv (ns, key, value, expires_at_ms) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![ns, key, value, deadline_ms(ttl)])?;
    Ok(written == 1)
}

/// `append` inside a write transaction; returns the entry's `seq`.
fn append_tx(tx: &Transaction<'_>, log: &str, ts_ms: i64, body: &str) -> rusqlite::Result<u64> {
    let seq: u64 = tx
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM log_entries WHERE log = ?1")?
        .query_row([log], |row| row.get(0))?;
    tx.prepare_cached("INSERT INTO log_entries (log, seq, ts_ms, body) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![log, seq, ts_ms, body])?;
    Ok(seq)
}

/// SQLite's `LIMIT` for our "0 = no limit".
fn sql_limit(limit: usize) -> i64 {
    if limit == 0 { -1 } else { i64::try_from(limit).unwrap_or(i64::MAX) }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn get(&self, ns: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let (ns, key) = (ns.to_owned(), key.to_owned());
        self.read(move |conn| {
            let sql = "SELECT value FROM kv
                       WHERE ns = ?1 AND key = ?2 AND (expires_at_ms IS NULL OR expires_at_ms > ?3)";
            Ok(conn.prepare_cached(sql)?.query_row(params![ns, key, now_ms()], |row| row.get(0)).optional()?)
        })
        .await
    }

    async fn put(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<()> {
        let (ns, key, value) = (ns.to_owned(), key.to_owned(), value.to_vec());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            purge_expired(&tx, now_ms())?;
            put_tx(&tx, &ns, &key, &value, ttl)?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn put_if_absent(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<bool> {
        let (ns, key, value) = (ns.to_owned(), key.to_owned(), value.to_vec());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            purge_expired(&tx, now_ms())?;
            let written = put_if_absent_tx(&tx, &ns, &key, &value, ttl)?;
            tx.commit()?;
            Ok(written)
        })
        .await
    }

    async fn delete(&self, ns: &str, key: &str) -> StoreResult<()> {
        let (ns, key) = (ns.to_owned(), key.to_owned());
        self.run(move |conn| {
            conn.prepare_cached("DELETE FROM kv WHERE ns = ?1 AND key = ?2")?.execute(params![ns, key])?;
            Ok(())
        })
        .await
    }

    async fn keys(&self, ns: &str, prefix: &str, limit: usize) -> StoreResult<Vec<String>> {
        let (ns, prefix) = (ns.to_owned(), prefix.to_owned());
        self.read(move |conn| {
            // Keys compare bytewise, so the ones starting with `prefix` are contiguous from `prefix` on.
            let mut stmt = conn.prepare_cached(
                "SELECT key FROM kv
                 WHERE ns = ?1 AND key >= ?2 AND (expires_at_ms IS NULL OR expires_at_ms > ?3)
                 ORDER BY key",
            )?;
            let mut rows = stmt.query(params![ns, prefix, now_ms()])?;
            let mut keys = Vec::new();
            while let Some(row) = rows.next()? {
                let key: String = row.get(0)?;
                if !key.starts_with(&prefix) {
                    break;
                }
                keys.push(key);
                if keys.len() == limit {
                    break;
                }
            }
            Ok(keys)
        })
        .await
    }

    async fn incr(&self, ns: &str, key: &str, by: i64) -> StoreResult<i64> {
        let (ns, key) = (ns.to_owned(), key.to_owned());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            purge_expired(&tx, now_ms())?;
            let current: Option<(Vec<u8>, Option<i64>)> = tx
                .prepare_cached("SELECT value, expires_at_ms FROM kv WHERE ns = ?1 AND key = ?2")?
                .query_row(params![ns, key], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let (old, expires_at_ms) = match current {
                Some((value, expires)) => (parse_counter(&value, &ns)?, expires),
                None => (0, None),
            };
            let new = old
                .checked_add(by)
                .ok_or_else(|| StoreError::Corrupt(format!("counter in namespace {ns:?} would overflow")))?;
            tx.prepare_cached("INSERT OR REPLACE INTO kv (ns, key, value, expires_at_ms) VALUES (?1, ?2, ?3, ?4)")?
                .execute(params![ns, key, new.to_string().into_bytes(), expires_at_ms])?;
            tx.commit()?;
            Ok(new)
        })
        .await
    }

    async fn assign_ordinal(&self, scope: &str, member: &str) -> StoreResult<u64> {
        let (scope, member) = (scope.to_owned(), member.to_owned());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let existing: Option<u64> = tx
                .prepare_cached("SELECT ordinal FROM ordinals WHERE scope = ?1 AND member = ?2")?
                .query_row(params![scope, member], |row| row.get(0))
                .optional()?;
            if let Some(ordinal) = existing {
                return Ok(ordinal);
            }
            let next: u64 = tx
                .prepare_cached("SELECT COALESCE(MAX(ordinal), 0) + 1 FROM ordinals WHERE scope = ?1")?
                .query_row([&scope], |row| row.get(0))?;
            tx.prepare_cached("INSERT INTO ordinals (scope, member, ordinal) VALUES (?1, ?2, ?3)")?
                .execute(params![scope, member, next])?;
            tx.commit()?;
            Ok(next)
        })
        .await
    }

    async fn append(&self, log: &str, ts_ms: i64, body: &str) -> StoreResult<u64> {
        let (log, body) = (log.to_owned(), body.to_owned());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let seq = append_tx(&tx, &log, ts_ms, &body)?;
            tx.commit()?;
            Ok(seq)
        })
        .await
    }

    async fn read_log(&self, log: &str, after: u64, limit: usize) -> StoreResult<Vec<LogEntry>> {
        let log = log.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, ts_ms, body FROM log_entries WHERE log = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![log, after, sql_limit(limit)], |row| {
                Ok(LogEntry { seq: row.get(0)?, ts_ms: row.get(1)?, body: row.get(2)? })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn logs(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let prefix = prefix.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT DISTINCT log FROM log_entries WHERE log >= ?1 ORDER BY log")?;
            let mut rows = stmt.query([&prefix])?;
            let mut names = Vec::new();
            while let Some(row) = rows.next()? {
                let name: String = row.get(0)?;
                if !name.starts_with(&prefix) {
                    break;
                }
                names.push(name);
            }
            Ok(names)
        })
        .await
    }

    async fn record_usage(&self, record: &UsageRecord) -> StoreResult<()> {
        let record = record.clone();
        self.run(move |conn| usage::insert(conn, &record)).await
    }

    async fn usage(&self, query: &UsageQuery) -> StoreResult<Vec<UsageRecord>> {
        let query = query.clone();
        self.read(move |conn| usage::select(conn, &query, sql_limit(query.limit))).await
    }

    async fn write_batch(&self, ops: &[WriteOp]) -> StoreResult<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let ops = ops.to_vec();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            if ops.iter().any(|op| matches!(op, WriteOp::Put { .. } | WriteOp::PutIfAbsent { .. })) {
                purge_expired(&tx, now_ms())?;
            }
            for op in &ops {
                match op {
                    WriteOp::Put { ns, key, value, ttl } => put_tx(&tx, ns, key, value, *ttl)?,
                    WriteOp::PutIfAbsent { ns, key, value, ttl } => {
                        put_if_absent_tx(&tx, ns, key, value, *ttl)?;
                    }
                    WriteOp::Append { log, ts_ms, body } => {
                        append_tx(&tx, log, *ts_ms, body)?;
                    }
                    WriteOp::Usage(record) => usage::insert(&tx, record)?,
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}
