//! Real-client end-to-end tests: the pinned Codex CLI and OpenCode complete real turns against the
//! in-process emulator, directly (`codex_exec`, `opencode_run`) and through the real `codex-bridge serve`
//! binary (`bridge_*`), and each test asserts what the emulator received and what the client reported.
//!
//! Every test is gated by `support::gate::clients()`: without `CODEX_BRIDGE_CLIENTS_BIN`, or outside a
//! loopback-only network namespace, it skips (or fails when `CODEX_BRIDGE_REQUIRE_CLIENTS=1`). Run the suite
//! with `scripts/e2e.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bridge_chatgpt_opencode;
mod bridge_codex_appserver;
mod bridge_codex_exec;
mod bridge_codex_ws;
mod bridge_connect;
mod bridge_openai_python;
mod bridge_opencode;
mod bridge_opencode_chat;
mod bridge_upstream_socket;
mod codex_exec;
mod codex_exec_ws;
mod opencode_run;
mod support;
