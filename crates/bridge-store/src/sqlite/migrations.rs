//! The SQLite schema as numbered migrations, tracked with `PRAGMA user_version`.
//!
//! Invariants: `user_version` is the number of migrations applied; migrations only ever get
//! appended to [`MIGRATIONS`], never edited; a database whose version is newer than this list is
//! refused untouched (an older binary must not write a schema it does not understand); migrating
//! runs in one `BEGIN IMMEDIATE` transaction, so two processes opening a fresh file at once apply
//! each migration exactly once.

use rusqlite::{Connection, TransactionBehavior};

use super::Failure;
use crate::StoreError;

/// Migration `n` (1-based) is `MIGRATIONS[n - 1]`.
const MIGRATIONS: &[&str] = &[
    // 1: key-value, ordinals, logs, usage.
    "CREATE TABLE kv (
         ns            TEXT    NOT NULL,
         key           TEXT    NOT NULL,
         value         BLOB    NOT NULL,
         expires_at_ms INTEGER,
         PRIMARY KEY (ns, key)
     ) WITHOUT ROWID;
     CREATE INDEX kv_expiry ON kv (expires_at_ms) WHERE expires_at_ms IS NOT NULL;

     CREATE TABLE ordinals (
         scope   TEXT    NOT NULL,
         member  TEXT    NOT NULL,
         ordinal INTEGER NOT NULL,
         PRIMARY KEY (scope, member),
         UNIQUE (scope, ordinal)
     ) WITHOUT ROWID;

     CREATE TABLE log_entries (
         log   TEXT    NOT NULL,
         seq   INTEGER NOT NULL,
         ts_ms INTEGER NOT NULL,
         body  TEXT    NOT NULL,
         PRIMARY KEY (log, seq)
     ) WITHOUT ROWID;

     CREATE TABLE usage (
         id                 INTEGER PRIMARY KEY AUTOINCREMENT,
         request_id         TEXT    NOT NULL,
         ts_ms              INTEGER NOT NULL,
         route              TEXT    NOT NULL,
         status             INTEGER NOT NULL,
         streamed           INTEGER NOT NULL,
         model              TEXT,
         session_id         TEXT,
         cache_key          TEXT,
         client             TEXT,
         input_tokens       INTEGER,
         cached_tokens      INTEGER,
         cache_write_tokens INTEGER,
         output_tokens      INTEGER,
         reasoning_tokens   INTEGER,
         total_tokens       INTEGER
     );
     CREATE INDEX usage_by_time ON usage (ts_ms, id);
     CREATE INDEX usage_by_session ON usage (session_id, ts_ms, id);",
];

/// Brings the schema up to date, or refuses a database from a newer binary.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), Failure> {
    let known = MIGRATIONS.len();
    if check_version(conn, known)? == known {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Read again under the write lock: another process may have migrated meanwhile.
    let current = check_version(&tx, known)?;
    for sql in &MIGRATIONS[current..] {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", known)?;
    tx.commit()?;
    Ok(())
}

/// The applied version, or an error if it is newer than `known`.
fn check_version(conn: &Connection, known: usize) -> Result<usize, Failure> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    match usize::try_from(version) {
        Ok(v) if v <= known => Ok(v),
        _ => Err(StoreError::Sqlite(format!(
            "database schema version {version} is newer than this codex-bridge supports ({known}); \
             upgrade codex-bridge or use another database file"
        ))
        .into()),
    }
}
