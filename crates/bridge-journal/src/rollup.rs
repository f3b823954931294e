//! The long-term side of a turn: plans into the task graph, git checkpoints, drift events, and the
//! roll-up of short-term turns when tasks complete or HEAD moves to a new commit.
//!
//! Invariant: one locked read-modify-write of `project_state.json` per turn; the short-term state's
//! `rolled_up_turns` only grows.

use crate::JournalError;
use crate::clock::Utc;
use crate::git::{Drift, GitSnapshot};
use crate::lines::shorten;
use crate::plan::Plan;
use crate::project::{Checkpoint, DriftEvent, Milestone, ProjectDir, Rollup, SessionState};

/// Applies one turn to the long-term state of `dir`.
pub fn apply_to_project(
    dir: &ProjectDir,
    session: &mut SessionState,
    plan: Option<&Plan>,
    drift: Option<&Drift>,
    git: &GitSnapshot,
    head_moved: bool,
    now: &Utc,
) -> Result<(), JournalError> {
    let session_id = session.session_id.clone();
    let rolled = dir.update(|state| {
        if let Some(d) = drift {
            state.drift_events.push(DriftEvent {
                ts: now.iso(),
                session: Some(session_id.clone()),
                drift: d.clone(),
                resolved: None,
            });
        }
        let completed = match plan {
            Some(p) => state.tasks.apply_plan(&p.items, &session_id, git.head.as_deref()).completed,
            None => Vec::new(),
        };
        for id in &completed {
            let title = state.tasks.get(id).map(|t| t.title.clone()).unwrap_or_default();
            state.milestones.push(Milestone {
                ts: now.iso(),
                title,
                task: Some(id.clone()),
                commit: git.head.clone(),
                session: Some(session_id.clone()),
            });
        }
        if state.last_git() != Some(git) {
            state.checkpoints.push(Checkpoint { ts: now.iso(), git: git.clone(), session: Some(session_id.clone()) });
        }
        let reason = if !completed.is_empty() {
            "tasks-completed"
        } else if head_moved {
            "new-commit"
        } else {
            return false;
        };
        let pending = session.turns.get(session.rolled_up_turns..).unwrap_or_default();
        state.rollups.push(Rollup {
            ts: now.iso(),
            session: session_id.clone(),
            reason: reason.to_owned(),
            head: git.head.clone(),
            turns: pending.len(),
            prompts: pending.iter().map(|t| shorten(&t.prompt, 120)).filter(|p| !p.is_empty()).collect(),
        });
        true
    })?;
    if rolled {
        session.rolled_up_turns = session.turns.len();
    }
    Ok(())
}
