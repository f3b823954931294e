//! The journal's settings (the `[journal]` and `[history]` config sections), below both the runtime that
//! checks git and the writer that applies turns.
//!
//! Invariant: the defaults here are the ones the bridge documents; a `HOME` of `/` gives no default root.

use std::path::PathBuf;
use std::time::Duration;

/// Journal settings (the `[journal]` and `[history]` config sections).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalOptions {
    /// Record sessions at all (rollouts, history, project state).
    pub enabled: bool,
    /// `[history] max_bytes` ([`crate::history::DEFAULT_MAX_BYTES`] by default); `None` or 0 keeps
    /// everything.
    pub history_max_bytes: Option<u64>,
    /// Append a drift note for the model at the tail of the input (opt-in).
    pub drift_note: bool,
    /// Longest a `git` call may take.
    pub git_timeout: Duration,
    /// How long a git snapshot is reused.
    pub git_cache: Duration,
    /// `[journal] project_roots`: git runs only in repositories at or under one of these (a leading `~` is
    /// the home directory). Default: the home directory (`$HOME`, unless it is `/`); empty: git never runs.
    pub project_roots: Vec<PathBuf>,
}

impl Default for JournalOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            history_max_bytes: Some(crate::history::DEFAULT_MAX_BYTES),
            drift_note: false,
            git_timeout: Duration::from_millis(500),
            git_cache: Duration::from_millis(1000),
            // A service account's `HOME=/` would allow every directory: no default root then.
            project_roots: home_dir().filter(|h| h.parent().is_some()).into_iter().collect(),
        }
    }
}

/// The invoking user's home directory (`$HOME`), if set.
pub(crate) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}
