//! Real-client end-to-end tests: the pinned Codex CLI and OpenCode complete real turns against an upstream
//! (today the in-process emulator; later codex-bridge in front of it).
//!
//! Every test is gated by `support::gate::clients()`: without `CODEX_BRIDGE_CLIENTS_BIN`, or outside a
//! loopback-only network namespace, it skips (or fails when `CODEX_BRIDGE_REQUIRE_CLIENTS=1`). Run the suite
//! with `scripts/e2e.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod codex_exec;
mod opencode_run;
mod support;
