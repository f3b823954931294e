//! Tests of the `codex-bridge` binary as a user runs it: real processes, real stores, the emulator upstream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// The throwaway `redis-server` (Redis tests skip without it unless `CODEX_BRIDGE_REQUIRE_REDIS=1`).
use bridge_test_support::redis_server;
mod support;

mod connect;
mod journal;
mod login;
mod serve;
mod sessions;
