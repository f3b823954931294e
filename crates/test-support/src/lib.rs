//! Test-only helpers shared by the workspace's integration tests, so no test binary keeps its own copy:
//! [`redis_server`] (a throwaway `redis-server` on loopback) and [`git`] (real repositories in temporary
//! directories). Used only as a dev-dependency; helpers panic on setup failures, as test code does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod git;
pub mod redis_server;

pub use redis_server::RedisServer;
