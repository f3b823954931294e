//! Hooks the gateway into bridge-journal: the bounded git drift check before the upstream call, the
//! opt-in drift note at the tail of the input, and the hand-off of a finished turn to the journal writer.
//!
//! Invariants:
//! - Before the upstream call the only work is reading the session id and working directory (a header,
//!   or a byte search of the body), and [`bridge_journal::Journal::check_git`] (bounded, cached); no store
//!   or journal file is touched.
//! - The working directory a client names is only a hint: git runs for it only when it resolves under
//!   `[journal] project_roots`, and the drift header and note only compare the session with what that same
//!   session saw of that same project (bridge-journal's runtime), so no session learns another project's
//!   branch or commit.
//! - The drift note is appended after the last input item; the bytes of every earlier item are unchanged,
//!   so the cached prefix stays the same.
//! - Finished turns go to the journal's bounded channel from the pump task, after the stream ended.

use axum::http::{HeaderMap, HeaderValue};
use bridge_journal::lines::{TokenUsage, cwd_in_body};
use bridge_journal::{Drift, TurnGit, TurnRecord};
use bridge_types::{ResponsesRequest, Usage};
use bytes::Bytes;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::state::AppState;

/// The header a client can set to name its working directory.
pub const CWD_HEADER: &str = "x-codex-bridge-cwd";
/// The response header that reports a git drift.
pub const DRIFT_HEADER: &str = "x-codex-bridge-git-drift";

/// What the journal needs from a request, carried to the end of its stream.
#[derive(Debug)]
pub struct PendingTurn {
    session: String,
    originator: Option<String>,
    cwd: Option<String>,
    git: Option<TurnGit>,
    /// The body as sent upstream (set once it is final).
    pub body: Bytes,
    started_ms: i64,
}

impl PendingTurn {
    /// The `x-codex-bridge-git-drift` value when the check found a drift.
    pub fn drift_header(&self) -> Option<HeaderValue> {
        let drift = self.git.as_ref()?.drift.as_ref()?;
        HeaderValue::from_str(&drift.header_value()).ok()
    }
}

/// Runs before the upstream call: resolves the project of `session` (from `proxy::session_hint`), checks
/// git drift (bounded, cached), and appends the opt-in drift note. `None` when the journal is off or the
/// request has no session.
pub async fn before_upstream(
    state: &AppState,
    request: &mut ResponsesRequest,
    headers: &HeaderMap,
    original: &[u8],
    (session, originator): (Option<String>, Option<String>),
) -> Option<PendingTurn> {
    let journal = state.journal.as_ref()?;
    let session = session?;
    let cwd = headers
        .get(CWD_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.starts_with('/'))
        .map(str::to_owned)
        .or_else(|| cwd_in_body(original));
    let git = match &cwd {
        Some(dir) => journal.check_git(&session, dir).await,
        None => None,
    };
    if let Some(drift) = git.as_ref().and_then(|g| g.drift.as_ref()) {
        state.metrics.inc("codex_bridge_git_drift_total", &[("kind", drift.kind.as_str())], 1);
        tracing::warn!(session = %session, drift = %drift.header_value(), "git drift since the last turn");
        if journal.options().drift_note {
            append_note(request, drift);
        }
    }
    Some(PendingTurn { session, originator, cwd, git, body: Bytes::new(), started_ms: crate::state::now_ms() })
}

/// Appends the drift note as the last input item, leaving the earlier items' bytes as they were.
fn append_note(request: &mut ResponsesRequest, drift: &Drift) {
    let Some(raw) = request.raw("input").map(RawValue::get) else { return };
    let trimmed = raw.trim_end();
    let Some(head) = trimmed.strip_suffix(']') else { return };
    let text = format!(
        "<git_drift>\nThe repository changed since the previous turn ({}): {} -> {}. Context from earlier turns may be stale; re-read files before relying on them.\n</git_drift>",
        drift.kind.as_str(),
        drift.from.label(),
        drift.to.label()
    );
    let note =
        serde_json::json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": text}]});
    let separator = if head.trim_end().ends_with('[') { "" } else { "," };
    if let Ok(new) = RawValue::from_string(format!("{head}{separator}{note}]")) {
        request.set_raw("input", new);
    }
}

/// Hands a finished exchange to the journal writer.
pub async fn finish(state: &AppState, pending: PendingTurn, output_items: Vec<Value>, usage: Option<&Usage>) {
    let Some(journal) = &state.journal else { return };
    let usage = usage.map(|u| TokenUsage {
        input: u.input_tokens,
        cached: u.cached_tokens,
        cache_write: u.cache_write_tokens,
        output: u.output_tokens,
        reasoning: u.reasoning_tokens,
        total: u.total_tokens,
    });
    let (git, drift) = match pending.git {
        Some(g) => (Some((g.root, g.snapshot)), g.drift),
        None => (None, None),
    };
    let turn = TurnRecord {
        session: pending.session,
        originator: pending.originator,
        cwd: pending.cwd,
        git,
        drift,
        request: match bridge_journal::ParsedBody::parse(&pending.body) {
            Ok(request) => std::sync::Arc::new(request),
            Err(e) => {
                return tracing::error!(error = %e, "could not read a request for the journal; turn not journaled");
            }
        },
        output_items,
        usage,
        started_ms: pending.started_ms,
    };
    journal.record(turn).await;
}
