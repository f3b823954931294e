//! Hooks the gateway into bridge-journal: the bounded git drift check around the upstream call, the
//! opt-in drift note at the tail of the input, and the hand-off of a finished turn to the journal writer.
//!
//! Invariants:
//! - Before the upstream call the only work is reading the session id and working directory (a header,
//!   or a byte search of the body). The git check ([`bridge_journal::Journal::check_git`], bounded and
//!   cached) runs alongside the upstream call, and is awaited before the client's response head (which
//!   may carry the drift header); only with the drift note on is it awaited before the upstream call, since
//!   the note changes the input. No store or journal file is touched before the upstream call.
//! - The working directory a client names is only a hint: git runs for it only when it resolves under
//!   `[journal] project_roots`, and the drift header and note only compare the session with what that same
//!   session saw of that same project (bridge-journal's runtime), so no session learns another project's
//!   branch or commit.
//! - The drift note is appended after the last input item; the bytes of every earlier item are unchanged,
//!   so the cached prefix stays the same.
//! - Finished turns go to the journal's bounded channel from the exchange's finish, after the stream ended.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue};
use bridge_journal::lines::{TokenUsage, cwd_in_body};
use bridge_journal::{Drift, Journal, TurnGit, TurnRecord};
use bridge_types::{ResponsesRequest, Usage};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::task::JoinHandle;

use crate::metrics::{KindLabel, Metrics};
use crate::sent::SentRequest;

/// The header a client can set to name its working directory.
pub const CWD_HEADER: &str = "x-codex-bridge-cwd";
/// The response header that reports a git drift.
pub const DRIFT_HEADER: &str = "x-codex-bridge-git-drift";

/// The git check of a turn: done, or running alongside the upstream call.
#[derive(Debug)]
enum GitCheck {
    Done(Option<TurnGit>),
    Running(JoinHandle<Option<TurnGit>>),
}

/// What the journal needs from a request, carried to the end of its stream.
#[derive(Debug)]
pub struct PendingTurn {
    session: String,
    originator: Option<String>,
    cwd: Option<String>,
    git: GitCheck,
    started_ms: i64,
}

impl PendingTurn {
    /// Waits for the git check when it runs alongside the upstream call (its result is reported once).
    pub async fn settle_git(&mut self, metrics: &Metrics) {
        if let GitCheck::Running(task) = &mut self.git {
            let git = task.await.ok().flatten();
            report_drift(metrics, &self.session, git.as_ref());
            self.git = GitCheck::Done(git);
        }
    }

    /// The `x-codex-bridge-git-drift` value when the (settled) check found a drift.
    pub fn drift_header(&self) -> Option<HeaderValue> {
        let GitCheck::Done(Some(git)) = &self.git else { return None };
        HeaderValue::from_str(&git.drift.as_ref()?.header_value()).ok()
    }
}

fn report_drift(metrics: &Metrics, session: &str, git: Option<&TurnGit>) {
    if let Some(drift) = git.and_then(|g| g.drift.as_ref()) {
        metrics.git_drift.get_or_create(&KindLabel { kind: drift.kind.as_str() }).inc();
        tracing::warn!(session = %session, drift = %drift.header_value(), "git drift since the last turn");
    }
}

/// Runs before the upstream call: resolves the working directory of `session`, and starts the git check
/// (awaited here, and the drift note appended, only with the drift note on). `None` without a session.
pub async fn before_upstream(
    journal: &Journal,
    metrics: &Metrics,
    request: &mut ResponsesRequest,
    headers: &HeaderMap,
    original: &[u8],
    session: Option<String>,
    originator: Option<String>,
) -> Option<PendingTurn> {
    let session = session?;
    let cwd = headers
        .get(CWD_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with('/'))
        .map(str::to_owned)
        .or_else(|| cwd_in_body(original));
    let git = match &cwd {
        None => GitCheck::Done(None),
        Some(dir) if journal.options().drift_note => {
            let git = journal.check_git(&session, dir).await;
            report_drift(metrics, &session, git.as_ref());
            if let Some(drift) = git.as_ref().and_then(|g| g.drift.as_ref()) {
                append_note(request, drift);
            }
            GitCheck::Done(git)
        }
        Some(dir) => {
            let (journal, session, dir) = (journal.clone(), session.clone(), dir.clone());
            GitCheck::Running(tokio::spawn(async move { journal.check_git(&session, &dir).await }))
        }
    };
    Some(PendingTurn { session, originator, cwd, git, started_ms: crate::clock::now_ms() })
}

/// Appends the drift note as the last input item, leaving the earlier items' bytes as they were.
fn append_note(request: &mut ResponsesRequest, drift: &Drift) {
    let text = format!(
        "<git_drift>\nThe repository changed since the previous turn ({}): {} -> {}. Context from earlier turns may be stale; re-read files before relying on them.\n</git_drift>",
        drift.kind.as_str(),
        drift.from.label(),
        drift.to.label()
    );
    let note =
        serde_json::json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": text}]});
    if let Ok(note) = RawValue::from_string(note.to_string()) {
        request.push_input_item(note);
    }
}

/// Hands a finished exchange to the journal writer.
pub async fn finish(
    journal: &Journal,
    mut pending: PendingTurn,
    sent: &Arc<SentRequest>,
    output_items: Vec<Value>,
    usage: Option<&Usage>,
) {
    let usage = usage.map(|u| TokenUsage {
        input: u.input_tokens,
        cached: u.cached_tokens,
        cache_write: u.cache_write_tokens,
        output: u.output_tokens,
        reasoning: u.reasoning_tokens,
        total: u.total_tokens,
    });
    let git = match std::mem::replace(&mut pending.git, GitCheck::Done(None)) {
        GitCheck::Done(git) => git,
        // Not settled (the exchange ended before a response head): its result is still the turn's state.
        GitCheck::Running(task) => task.await.ok().flatten(),
    };
    let (git, drift) = match git {
        Some(g) => (Some((g.root, g.snapshot)), g.drift),
        None => (None, None),
    };
    let turn = TurnRecord {
        session: pending.session,
        originator: pending.originator,
        cwd: pending.cwd,
        git,
        drift,
        request: sent.clone(),
        output_items,
        usage,
        started_ms: pending.started_ms,
    };
    journal.record(turn).await;
}
