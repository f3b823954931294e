//! Session persistence and project memory for codex-bridge:
//!
//! - [`rollout`]: rollouts in the Codex layout and line schema (`sessions/YYYY/MM/DD/rollout-*.jsonl`), and
//!   [`rollout_index`], the writer's compact index of them by thread id;
//! - [`history`]: `history.jsonl` with `max_bytes` trimming under an exclusive lock;
//! - [`project`] and [`rollup`]: layered project state (`project_state.json` plus short-term
//!   `sessions/<stamp>_<branch>.jsonl`, appended per turn);
//! - [`tasks`], [`plan`], [`render`]: the task graph fed by `update_plan` / `todowrite`;
//! - [`git`]: project roots (bounded by the configured `project_roots`), snapshots and drift classification;
//! - [`request`]: the journal's read-only view of the request the bridge parsed ([`RequestView`]);
//! - [`runtime`] and [`turn`]: the background writer the bridge hands finished turns to, and the bounded,
//!   cached git check it runs before the upstream call;
//! - [`digest`]: Markdown journals of sessions; [`resolve`]: the ways forward `doctor` offers after a drift.
//!
//! Invariants: appends never leave a torn line; rewrites are atomic; files holding prompts are 0600;
//! nothing here runs on the request path except [`runtime::Journal::check_git`], which runs git only under
//! the configured project roots and compares a session only with what that session saw of that project.

pub mod clock;
pub mod digest;
mod fsutil;
pub mod git;
pub mod gitdir;
pub mod history;
pub mod lines;
mod options;
pub mod plan;
pub mod project;
pub mod render;
pub mod request;
pub mod resolve;
pub mod rollout;
pub mod rollout_index;
pub mod rollup;
pub mod runtime;
pub mod tasks;
pub mod turn;

use std::path::{Path, PathBuf};

pub use git::{Drift, DriftKind, GitSnapshot};
pub use request::{InputView, ParsedBody, RequestView};
pub use runtime::{Journal, JournalOptions, TurnGit};
pub use turn::TurnRecord;

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("invalid JSON: {0}")]
    Json(serde_json::Error),
    #[error("{0}")]
    Git(String),
    #[error("{0} kept being replaced while waiting for its lock")]
    Busy(PathBuf),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Task(#[from] tasks::TaskError),
}

impl JournalError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }
}
