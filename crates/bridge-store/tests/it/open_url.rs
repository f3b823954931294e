//! `bridge_store::open`: which URL opens which backend, and what a bad one says.

use std::net::TcpListener;
use std::path::Path;

use bridge_store::{StoreError, open};

#[tokio::test]
async fn urls_pick_backends() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(open(Some("memory://"), dir.path()).await.unwrap().kind(), "memory");
    assert_eq!(open(None, dir.path()).await.unwrap().kind(), "sqlite");
    assert!(dir.path().join("bridge.db").is_file());
    let url = format!("sqlite://{}", dir.path().join("x/other.db").display());
    assert_eq!(open(Some(&url), Path::new("/nonexistent")).await.unwrap().kind(), "sqlite");
    let plain = dir.path().join("plain.sqlite");
    assert_eq!(open(Some(plain.to_str().unwrap()), dir.path()).await.unwrap().kind(), "sqlite");
    assert!(plain.is_file());
    let err = open(Some("ftp://example"), dir.path()).await.err().unwrap();
    assert!(matches!(err, StoreError::BadUrl { .. }), "{err}");
}

#[tokio::test]
async fn redis_connect_failure_names_url_without_password() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://user:hunter2@127.0.0.1:{port}/0");
    let err = open(Some(&url), Path::new(".")).await.err().unwrap();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Redis(_)), "{msg}");
    assert!(msg.contains(&format!("redis://127.0.0.1:{port}/0")), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");
}
