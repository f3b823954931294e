//! SQLite-only behaviour: durability across reopen, schema versioning, file mode, WAL.

use std::path::Path;

use bridge_store::{SqliteStore, Store, UsageQuery};

fn user_version(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap()
}

#[tokio::test]
async fn reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.db");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        store.put("ns", "k", b"v", None).await.unwrap();
        store.incr("ns", "n", 7).await.unwrap();
        store.assign_ordinal("scope", "m1").await.unwrap();
        store.append("log", 5, "body").await.unwrap();
        let mut row = crate::conformance_row();
        row.session_id = Some("s".to_owned());
        store.record_usage(&row).await.unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.get("ns", "k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(store.incr("ns", "n", 0).await.unwrap(), 7);
    assert_eq!(store.assign_ordinal("scope", "m2").await.unwrap(), 2);
    assert_eq!(store.append("log", 6, "next").await.unwrap(), 2);
    assert_eq!(store.usage(&UsageQuery::default()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn schema_version_is_tracked_and_newer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.db");
    drop(SqliteStore::open(&path).await.unwrap());
    assert_eq!(user_version(&path), 1);
    rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", 999).unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err().to_string();
    assert!(err.contains("schema version 999 is newer"), "{err}");
    assert!(err.contains("bridge.db"), "message should name the file: {err}");
    assert_eq!(user_version(&path), 999, "a refused database is left untouched");
}

#[tokio::test]
async fn creates_parent_dirs_private_file_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/bridge.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.put("ns", "k", b"v", None).await.unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "data file mode is {mode:o}");
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let journal: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0)).unwrap();
    assert_eq!(journal, "wal");
}

/// A read never queues behind a write: while another connection holds the write lock (a long batch, or
/// another process), a write through the store waits for it, and a `get` still answers at once with the
/// last committed value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_completes_while_a_write_transaction_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.put("ns", "k", b"committed", None).await.unwrap();

    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE; UPDATE kv SET value = x'00' WHERE ns = 'ns';").unwrap();
    // This write now waits for the lock (busy_timeout), holding the store's write connection.
    let writer = store.clone();
    let write = tokio::spawn(async move { writer.put("ns", "other", b"v", None).await });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert!(!write.is_finished(), "the write waits for the open transaction");

    let started = std::time::Instant::now();
    let read = tokio::time::timeout(std::time::Duration::from_secs(2), store.get("ns", "k")).await;
    let elapsed = started.elapsed();
    assert_eq!(read.expect("the read did not wait for the write").unwrap().as_deref(), Some(&b"committed"[..]));
    assert!(elapsed < std::time::Duration::from_millis(500), "read took {elapsed:?}");
    let keys = store.keys("ns", "", 0).await.unwrap();
    assert_eq!(keys, ["k"]);

    holder.execute_batch("ROLLBACK").unwrap();
    write.await.unwrap().unwrap();
    assert_eq!(store.get("ns", "other").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert!(store.get("ns", "k").await.unwrap().is_some(), "the rolled-back update left the value");
}
