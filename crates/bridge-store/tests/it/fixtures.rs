//! One fresh store per test for each backend, as two handles on the same data, plus whatever
//! must live as long as the handles (temp dir, Redis server).

use std::any::Any;
use std::sync::Arc;

use bridge_store::{MemoryStore, RedisStore, SqliteStore, Store};

use crate::redis_server::RedisServer;

/// Two handles on one store. For SQLite and Redis they are separate connections, like two
/// processes; for memory they are the same object.
pub struct Backend {
    pub a: Arc<dyn Store>,
    pub b: Arc<dyn Store>,
    _keep_alive: Box<dyn Any + Send>,
}

pub async fn memory() -> Option<Backend> {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::default());
    Some(Backend { a: Arc::clone(&store), b: store, _keep_alive: Box::new(()) })
}

pub async fn sqlite() -> Option<Backend> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.db");
    let a = SqliteStore::open(&path).await.expect("open a");
    let b = SqliteStore::open(&path).await.expect("open b");
    Some(Backend { a: Arc::new(a), b: Arc::new(b), _keep_alive: Box::new(dir) })
}

/// `None` when `redis-server` is missing and not required (the test is skipped).
pub async fn redis() -> Option<Backend> {
    let server = RedisServer::start()?;
    let a = RedisStore::connect(&server.url()).await.expect("connect a");
    let b = RedisStore::connect(&server.url()).await.expect("connect b");
    Some(Backend { a: Arc::new(a), b: Arc::new(b), _keep_alive: Box::new(server) })
}
