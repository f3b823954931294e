//! Applying one finished turn: rollout lines, the `history.jsonl` prompt, the short-term session file and
//! the long-term project state (plans into the task graph, checkpoints, drift events, roll-ups).
//!
//! Invariants: runs only on the journal's writer thread (never before the upstream call); a session's
//! files are found again after a restart (rollout by thread id, short-term file by session id).

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::JournalError;
use crate::clock::{Utc, fresh_uuid, thread_uuid};
use crate::git::{Drift, GitSnapshot};
use crate::history::{History, HistoryEntry};
use crate::lines::{self, TokenUsage};
use crate::options::JournalOptions;
use crate::project::{ProjectDir, SessionEvent, SessionState, ShortTermFile, TurnSummary};
use crate::request::{InputView, RequestView};
use crate::rollout::Rollout;
use crate::rollout_index::RolloutIndex;
use crate::rollup::apply_to_project;

/// Sessions kept in memory; past it the least recently active one is evicted (its state reloads from disk
/// on its next turn).
const MAX_SESSIONS: usize = 4096;

/// Everything the writer needs about one finished exchange.
#[derive(Debug, Clone)]
pub struct TurnRecord {
    /// The client's session id (body key or session headers).
    pub session: String,
    /// `originator` header or user-agent product.
    pub originator: Option<String>,
    pub cwd: Option<String>,
    /// The project's git state before the turn, when the cwd is inside a repository.
    pub git: Option<(PathBuf, GitSnapshot)>,
    pub drift: Option<Drift>,
    /// The request as sent upstream, parsed once by the bridge.
    pub request: Arc<dyn RequestView>,
    /// Output items from `response.output_item.done`, in order.
    pub output_items: Vec<Value>,
    pub usage: Option<TokenUsage>,
    pub started_ms: i64,
}

/// One input item: raw JSON from the body, or a value the journal made (a string input's message).
#[derive(Serialize)]
#[serde(untagged)]
enum Item<'a> {
    Raw(&'a RawValue),
    Owned(Box<Value>),
}

impl<'a> Item<'a> {
    /// A raw item, kept raw unless it spans lines (a pretty-printed body): a rollout line must be one line.
    fn from_raw(raw: &'a RawValue) -> Self {
        if memchr::memchr2(b'\n', b'\r', raw.get().as_bytes()).is_some() {
            Item::Owned(Box::new(serde_json::from_str(raw.get()).unwrap_or(Value::Null)))
        } else {
            Item::Raw(raw)
        }
    }

    /// The item decoded (a copy of one item at a time).
    fn value(&self) -> Value {
        match self {
            Item::Raw(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
            Item::Owned(v) => (**v).clone(),
        }
    }

    /// The item's JSON text.
    fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Item::Raw(raw) => std::borrow::Cow::Borrowed(raw.get()),
            Item::Owned(v) => std::borrow::Cow::Owned(v.to_string()),
        }
    }
}

/// A rollout line's payload, written without building one value tree for the whole input (small: one per
/// input item is held until the turn's lines are written).
#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    Value(Box<Value>),
    Borrowed(&'a Value),
    Item(&'a Item<'a>),
    Compacted(Compacted<'a>),
}

/// The payload of a `compacted` line (`message` is always empty, as Codex writes it).
struct Compacted<'a>(&'a [Item<'a>]);

impl Serialize for Compacted<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("message", "")?;
        map.serialize_entry("replacement_history", self.0)?;
        map.end()
    }
}

impl Payload<'_> {
    fn value(v: Value) -> Self {
        Payload::Value(Box::new(v))
    }
}

/// The prompt of a turn: the last user message among `items` with real text (see [`lines::user_prompt`]),
/// decoding items from the end only until it is found.
fn last_user_prompt(items: &[Item<'_>]) -> Option<String> {
    items.iter().rev().find_map(|item| lines::user_prompt(std::slice::from_ref(&item.value())))
}

struct ProjectCtx {
    dir: ProjectDir,
    file: ShortTermFile,
    state: SessionState,
}

#[derive(Default)]
struct SessionCtx {
    rollout: Option<Rollout>,
    project: Option<ProjectCtx>,
    /// Hash of the last turn's input: the same input again is a client retry, not a rewrite.
    last_input: Option<u64>,
}

/// The writer's state: open rollouts and session files by client session id.
pub struct Writer {
    data_dir: PathBuf,
    history: History,
    /// Bounded: the least recently active session is evicted (its state reloads from disk on its next turn).
    sessions: lru::LruCache<String, SessionCtx>,
    /// Rollout path by thread id, read from disk once (then kept up to date by this writer), so a new session
    /// does not walk `<data>/sessions` again.
    rollouts: Option<RolloutIndex>,
}

impl Writer {
    /// A writer for `data_dir`.
    pub fn new(data_dir: &Path, options: &JournalOptions) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            history: History::new(data_dir, options.history_max_bytes),
            sessions: lru::LruCache::new(NonZeroUsize::new(MAX_SESSIONS).unwrap_or(NonZeroUsize::MIN)),
            rollouts: None,
        }
    }

    /// A writer keeping at most `cap` sessions in memory.
    #[cfg(test)]
    fn with_session_cap(mut self, cap: usize) -> Self {
        self.sessions = lru::LruCache::new(NonZeroUsize::new(cap).unwrap_or(NonZeroUsize::MIN));
        self
    }

    /// The rollout file of `thread`, or a new path for it.
    fn rollout_path(&mut self, thread: &str, now: &Utc) -> PathBuf {
        let data_dir = &self.data_dir;
        let index = self.rollouts.get_or_insert_with(|| RolloutIndex::scan(data_dir));
        if let Some(path) = index.get(thread) {
            return path;
        }
        let path = Rollout::path_for(data_dir, thread, now);
        index.insert(thread, path.clone());
        path
    }

    /// Journals one turn.
    pub fn apply(&mut self, turn: TurnRecord) -> Result<(), JournalError> {
        let now = Utc::now();
        let thread = thread_uuid(&turn.session);
        // Input items stay the raw JSON the bridge parsed and are decoded one at a time where their content
        // matters, so a large input is held once (the request) rather than as value trees.
        let request = Arc::clone(&turn.request);
        let input: Vec<Item<'_>> = match request.input() {
            InputView::Items(items) => items.iter().map(|raw| Item::from_raw(raw)).collect(),
            InputView::Text(s) => {
                let message =
                    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": s}]});
                vec![Item::Owned(Box::new(message))]
            }
            InputView::Absent => Vec::new(),
        };
        let instructions = request.instructions();
        let model = request.model().unwrap_or_default();
        let cwd = turn.cwd.clone().unwrap_or_default();
        let known = self.sessions.get_mut(&turn.session).and_then(|c| c.rollout.take());
        let rollout = match known {
            Some(r) => r,
            None => Rollout::open(self.rollout_path(&thread, &now))?,
        };
        let input_hash = {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for item in &input {
                std::hash::Hash::hash(&item.text(), &mut h);
            }
            std::hash::Hasher::finish(&h)
        };
        let ctx = self.sessions.get_or_insert_mut(turn.session.clone(), SessionCtx::default);
        let retry = ctx.last_input == Some(input_hash);
        ctx.last_input = Some(input_hash);
        let mut rollout = rollout;
        let mut records: Vec<(&str, Payload<'_>)> = Vec::with_capacity(input.len() + turn.output_items.len() + 8);
        let first: Vec<Value> = input.first().map(Item::value).into_iter().collect();
        let leading = lines::leading_developer_text(&first);
        if rollout.is_empty() {
            let base = instructions.clone().or_else(|| leading.clone());
            rollout.base_instructions = base.clone();
            let originator = turn.originator.as_deref().unwrap_or("codex-bridge");
            let git = turn.git.as_ref().map(|(_, g)| g);
            records.push((
                "session_meta",
                Payload::value(lines::session_meta(&thread, &now, &cwd, originator, base.as_deref(), git)),
            ));
        }
        let skip = usize::from(leading.is_some() && leading == rollout.base_instructions && instructions.is_none());
        let turn_id = fresh_uuid(&thread);
        records.push((
            "event_msg",
            Payload::value(json!({"type": "task_started", "turn_id": turn_id, "started_at": turn.started_ms / 1000})),
        ));
        records.push(("turn_context", Payload::value(lines::turn_context(&turn_id, &cwd, model))));
        let from = skip + rollout.recorded_items;
        // The items this turn adds; after a rewrite (compaction, edit, fork) the whole input is recorded as a
        // `compacted` replacement history and the trailing user messages count as the turn's new prompt.
        let (new_items, prompt_items): (&[Item<'_>], &[Item<'_>]) = if from <= input.len() {
            (&input[from..], &input[from..])
        } else if retry {
            // The same input as the last turn (a client retry): nothing new to record, no second prompt.
            (&[], &[])
        } else {
            let history = &input[skip.min(input.len())..];
            rollout.recorded_items = history.len();
            let tail = history
                .iter()
                .rposition(|i| i.value().get("role").and_then(Value::as_str) != Some("user"))
                .map_or(0, |p| p + 1);
            records.push(("compacted", Payload::Compacted(Compacted(history))));
            (&[], &history[tail..])
        };
        for item in new_items {
            records.push(("response_item", Payload::Item(item)));
        }
        let prompt = last_user_prompt(prompt_items);
        if let Some(text) = &prompt {
            // Codex lists a rollout (`resume --last`, the picker) only if its head has a user_message event; the
            // full text is already in the response_item (or compacted) line, so the event carries a preview.
            records.push(("event_msg", Payload::value(lines::user_message(text))));
        }
        for item in &turn.output_items {
            records.push(("response_item", Payload::Borrowed(item)));
        }
        if let Some(usage) = turn.usage {
            let last = usage.to_codex();
            let total = lines::add_usage(rollout.total_usage.as_ref(), &last);
            rollout.total_usage = Some(total.clone());
            records.push((
                "event_msg",
                Payload::value(json!({"type": "token_count",
                "info": {"total_token_usage": total, "last_token_usage": last}, "rate_limits": null})),
            ));
        }
        let reply = lines::assistant_text(&turn.output_items);
        records.push((
            "event_msg",
            Payload::value(json!({"type": "task_complete", "turn_id": turn_id, "last_agent_message": reply,
            "started_at": turn.started_ms / 1000, "completed_at": now.unix_secs(),
            "duration_ms": (now.unix_ms - turn.started_ms).max(0)})),
        ));
        let added = new_items.len();
        rollout.append(&records, request.body_len(), &now)?;
        drop(records);
        rollout.recorded_items += added + turn.output_items.len();
        ctx.rollout = Some(rollout);

        if let Some(text) = &prompt {
            self.history.append(&HistoryEntry {
                session_id: thread.clone(),
                ts: now.unix_secs(),
                text: text.clone(),
            })?;
        }
        let Some((root, git)) = turn.git.clone() else { return Ok(()) };
        let project = match ctx.project.take() {
            Some(p) if p.dir.root == root => p,
            _ => open_project(&self.data_dir, &root, &turn.session, &thread, &git, &now),
        };
        let summary = TurnSummary {
            ts: now.iso(),
            turn_id,
            prompt: prompt.as_deref().map(|p| lines::shorten(p, 200)).unwrap_or_default(),
            reply: reply.as_deref().map(|r| lines::shorten(r, 200)).unwrap_or_default(),
            tool_calls: turn
                .output_items
                .iter()
                .filter_map(|i| i.get("name").and_then(Value::as_str).map(str::to_owned))
                .collect(),
            head: git.head.clone(),
            plan_changed: false,
        };
        ctx.project = Some(finish_project(project, summary, &turn, &git, &now)?);
        Ok(())
    }
}

/// Continues the session's short-term file after a restart, or starts one seeded from the newest file of
/// the same branch and HEAD.
fn open_project(data_dir: &Path, root: &Path, session: &str, thread: &str, git: &GitSnapshot, now: &Utc) -> ProjectCtx {
    let dir = ProjectDir::new(data_dir, root);
    // One read of the project's short-term files answers both questions (own file? newest to seed from?).
    let mut files = dir.short_term_files();
    if let Some(at) = files.iter().rposition(|(_, s)| s.session_id == session) {
        let (path, state) = files.swap_remove(at);
        return ProjectCtx { dir, file: ShortTermFile::existing(path, &state), state };
    }
    let seed = files
        .into_iter()
        .rev()
        .find(|(_, s)| s.branch.as_deref() == git.branch.as_deref() && s.head.as_deref() == git.head.as_deref());
    let seeded = seed.is_some();
    let mut state = SessionState::seeded(session.to_owned(), thread.to_owned(), git, now.iso(), seed);
    if seeded {
        state.events.push(SessionEvent {
            ts: now.iso(),
            kind: "bootstrap".into(),
            detail: json!({"from": state.bootstrapped_from}),
        });
    }
    let mut stamp = format!("{}-{:03}", now.file_stamp(), now.millis);
    let mut path = dir.short_term_path(&stamp, git.branch.as_deref());
    let mut n = 1;
    while path.exists() {
        n += 1;
        stamp = format!("{}-{:03}-{n}", now.file_stamp(), now.millis);
        path = dir.short_term_path(&stamp, git.branch.as_deref());
    }
    ProjectCtx { dir, file: ShortTermFile::new(path), state }
}

fn finish_project(
    mut project: ProjectCtx,
    mut summary: TurnSummary,
    turn: &TurnRecord,
    git: &GitSnapshot,
    now: &Utc,
) -> Result<ProjectCtx, JournalError> {
    let plan = turn.output_items.iter().rev().find_map(crate::plan::from_function_call);
    let state = &mut project.state;
    let head_moved = !state.turns.is_empty() && state.head != git.head && git.head.is_some();
    if let Some(drift) = &turn.drift {
        state.events.push(SessionEvent {
            ts: now.iso(),
            kind: "git-drift".into(),
            detail: serde_json::to_value(drift).map_err(JournalError::Json)?,
        });
    }
    if let Some(p) = &plan {
        summary.plan_changed = true;
        state.pending_actions = p
            .items
            .iter()
            .filter(|i| i.status != crate::tasks::TaskStatus::Completed)
            .map(|i| i.step.clone())
            .collect();
        state.last_plan = Some(p.clone());
    }
    state.branch = git.branch.clone();
    state.head = git.head.clone();
    state.turns.push(summary);
    apply_to_project(&project.dir, state, plan.as_ref(), turn.drift.as_ref(), git, head_moved, now)?;
    project.file.save(&project.state)?;
    Ok(project)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(session: &str) -> TurnRecord {
        let body = br#"{"model":"m","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}]}"#;
        TurnRecord {
            session: session.to_owned(),
            originator: None,
            cwd: None,
            git: None,
            drift: None,
            request: Arc::new(crate::ParsedBody::parse(body).unwrap()),
            output_items: Vec::new(),
            usage: None,
            started_ms: 0,
        }
    }

    /// At capacity the least recently active session leaves memory, not every session.
    #[test]
    fn sessions_evict_the_least_recent_one() {
        let data = tempfile::tempdir().unwrap();
        let mut writer = Writer::new(data.path(), &JournalOptions::default()).with_session_cap(2);
        for s in ["a", "b", "a", "c"] {
            writer.apply(turn(s)).unwrap();
        }
        assert!(writer.sessions.contains("a") && writer.sessions.contains("c"));
        assert!(!writer.sessions.contains("b"));
        // The evicted session continues from disk.
        writer.apply(turn("b")).unwrap();
        assert_eq!(writer.sessions.len(), 2);
    }
}
