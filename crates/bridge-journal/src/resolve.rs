//! Ways forward after a git drift, offered by `codex-bridge doctor` (the seed's options):
//! fork the session state onto the new branch/HEAD, fast-forward the checkpoint, or rebuild from scratch.
//!
//! Invariant: every action marks the project's open drift events resolved (with the action's name) and
//! records the current git state as the newest checkpoint, under the project lock.

use serde::{Deserialize, Serialize};

use crate::JournalError;
use crate::clock::Utc;
use crate::git::GitSnapshot;
use crate::project::{Checkpoint, ProjectDir, SessionEvent, SessionState, save_short_term};

/// A way forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Resolution {
    /// Copy the newest short-term state of the old branch/HEAD to the current one, so the next session
    /// starts from it.
    Fork,
    /// Accept the new state: the checkpoint moves to the current HEAD; short-term state stays as it is.
    FastForward,
    /// Start clean: an empty short-term state for the current branch/HEAD becomes the newest.
    Rebuild,
}

impl Resolution {
    /// The kebab-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fork => "fork",
            Self::FastForward => "fast-forward",
            Self::Rebuild => "rebuild",
        }
    }
}

/// Applies `action` for the project at its `current` git state; returns how many events were resolved.
pub fn resolve(dir: &ProjectDir, action: Resolution, current: &GitSnapshot) -> Result<usize, JournalError> {
    let now = Utc::now();
    let open = dir.load()?.drift_events.into_iter().filter(|e| e.resolved.is_none()).collect::<Vec<_>>();
    if matches!(action, Resolution::Fork | Resolution::Rebuild) {
        let source = match (action, open.first()) {
            (Resolution::Fork, Some(event)) => {
                dir.newest_short_term(event.drift.from.branch.as_deref(), event.drift.from.head.as_deref())
            }
            _ => None,
        };
        let mut state =
            SessionState::seeded(format!("doctor-{}", action.as_str()), String::new(), current, now.iso(), source);
        state.events.push(SessionEvent {
            ts: now.iso(),
            kind: format!("doctor-{}", action.as_str()),
            detail: serde_json::json!({"from": state.bootstrapped_from}),
        });
        let stamp = format!("{}-{:03}", now.file_stamp(), now.millis);
        save_short_term(&dir.short_term_path(&stamp, current.branch.as_deref()), &state)?;
    }
    dir.update(|state| {
        let mut n = 0;
        for event in state.drift_events.iter_mut().filter(|e| e.resolved.is_none()) {
            event.resolved = Some(action.as_str().to_owned());
            n += 1;
        }
        if state.last_git() != Some(current) {
            state.checkpoints.push(Checkpoint { ts: now.iso(), git: current.clone(), session: None });
        }
        n
    })
}
