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
