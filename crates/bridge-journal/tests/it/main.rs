//! Integration tests of the journal library: history under concurrency, caps and SIGKILL, rollout shapes
//! against the Codex 0.169.0 examples, project state with a real git repository, the task graph, drift.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod drift;
mod history;
mod layering;
mod project_state;
mod rollout_shape;
mod tasks;
