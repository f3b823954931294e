//! Integration tests of bridge-store: one conformance suite run against every backend, plus
//! backend-specific checks (SQLite durability and migrations, Redis key layout, URL parsing).
//!
//! Redis tests start their own `redis-server` on a free 127.0.0.1 port and skip (with a message
//! on stderr) when it is not installed, unless `CODEX_BRIDGE_REQUIRE_REDIS=1`.

// The workspace's `allow-*-in-tests` only covers `#[test]` functions; the shared checks and
// fixtures here are test code too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod conformance;
mod fixtures;
mod open_url;
use bridge_test_support::redis_server;
mod redis_specific;
mod sqlite_specific;

/// One `#[tokio::test]` per conformance check for backend `$backend` (a function in `fixtures`).
macro_rules! conformance_for {
    ($backend:ident) => {
        mod $backend {
            conformance_for!(@single $backend: get_put_overwrite_delete, ttl_expiry, put_if_absent,
                keys_prefix_limit_order, incr, assign_ordinal, append_read_log, logs_by_prefix, usage, batch);
            conformance_for!(@pair $backend: handles_see_each_other, concurrent_ordinals,
                concurrent_append_incr_put_if_absent, concurrent_batches);
        }
    };
    (@single $backend:ident: $($check:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let Some(backend) = crate::fixtures::$backend().await else { return };
            crate::conformance::$check(backend.a.as_ref()).await;
        }
    )*};
    (@pair $backend:ident: $($check:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            let Some(backend) = crate::fixtures::$backend().await else { return };
            crate::conformance::$check(backend.a.clone(), backend.b.clone()).await;
        }
    )*};
}

/// A usage row for tests that only need one.
fn conformance_row() -> bridge_store::UsageRecord {
    conformance::usage_row("req", 1, None)
}

conformance_for!(memory);
conformance_for!(sqlite);
conformance_for!(redis);
