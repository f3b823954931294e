//! Tests of the `codex-bridge` binary as a user runs it: real processes, real stores, the emulator upstream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../bridge-store/tests/it/redis_server.rs"]
mod redis_server;
mod support;

mod journal;
mod login;
mod serve;
mod sessions;
