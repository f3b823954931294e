//! bridge-e2e: a test-only crate holding codex-bridge's real-client end-to-end suite.
//!
//! The library is empty on purpose. The tests live in `tests/it/`: they run the pinned Codex CLI and
//! OpenCode binaries (installed by `scripts/install-clients.sh`) against the in-process emulator, directly
//! and through the real `codex-bridge serve` binary, inside a loopback-only network namespace
//! (`scripts/e2e.sh`). See README.md for the gating variables.
