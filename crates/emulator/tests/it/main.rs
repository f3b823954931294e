//! Integration tests of codex-emulator: each submodule starts its own emulator on 127.0.0.1:0.

// Test helpers outside #[test] fns may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod binary;
mod caching;
mod calibration;
mod common;
mod faults;
mod fixtures;
mod limit;
mod oauth_releases;
mod sse_shape;
mod validation;
mod ws;
