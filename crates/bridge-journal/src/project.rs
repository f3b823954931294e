//! Layered project state, kept in the data directory (never inside the user's repository):
//! `<data>/projects/<name>-<hash>/project_state.json` (long-term: milestones, task graph, git checkpoints,
//! drift events, roll-ups) and `<data>/projects/<name>-<hash>/sessions/<stamp>_<branch>.jsonl` (short-term:
//! turn summaries, pending actions, the last plan, session events).
//!
//! Invariants:
//! - The project is the git root of the client's working directory; `<hash>` is derived from its path.
//! - Every read-modify-write of `project_state.json` holds the project's directory lock and ends in an
//!   atomic rewrite, so the bridge and the CLI never lose each other's edits.
//! - A short-term file grows by appending: a `start` line with the whole [`SessionState`], then one `turn`
//!   line per turn holding only what the turn changed ([`ShortTermFile`]), so a session of N turns writes
//!   O(N) bytes, not O(N²). Reading folds the lines back into the state; a torn last line (a crash) is
//!   ignored and cut before the next append. Files of the former layout (`<stamp>_<branch>.json`, the whole
//!   state rewritten per turn) are still read, and continued as a `.jsonl` file with the same stamp.
//! - `project_state.json` is only rewritten when an edit changed it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::JournalError;
use crate::fsutil::{DirLock, append_durably, open_append, repair_tail, write_atomic};
use crate::git::{Drift, GitSnapshot};
use crate::plan::Plan;
use crate::tasks::TaskGraph;

/// A milestone: a task that was completed, tied to the commit it landed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Milestone {
    pub ts: String,
    pub title: String,
    pub task: Option<String>,
    pub commit: Option<String>,
    pub session: Option<String>,
}

/// A recorded git state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub ts: String,
    #[serde(flatten)]
    pub git: GitSnapshot,
    pub session: Option<String>,
}

/// A drift seen before a turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftEvent {
    pub ts: String,
    pub session: Option<String>,
    #[serde(flatten)]
    pub drift: Drift,
    /// Set by `codex-bridge doctor --resolve`.
    #[serde(default)]
    pub resolved: Option<String>,
}

/// Short-term turns folded into the long-term file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollup {
    pub ts: String,
    pub session: String,
    /// `tasks-completed` or `new-commit`.
    pub reason: String,
    pub head: Option<String>,
    pub turns: usize,
    /// The prompts of the rolled-up turns, shortened.
    pub prompts: Vec<String>,
}

/// `project_state.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectState {
    #[serde(default)]
    pub root: String,
    #[serde(default)]
    pub milestones: Vec<Milestone>,
    #[serde(default)]
    pub tasks: TaskGraph,
    #[serde(default)]
    pub checkpoints: Vec<Checkpoint>,
    #[serde(default)]
    pub drift_events: Vec<DriftEvent>,
    #[serde(default)]
    pub rollups: Vec<Rollup>,
}

impl ProjectState {
    /// The newest checkpoint's git state.
    pub fn last_git(&self) -> Option<&GitSnapshot> {
        self.checkpoints.last().map(|c| &c.git)
    }
}

/// One turn in the short-term file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnSummary {
    pub ts: String,
    pub turn_id: String,
    pub prompt: String,
    pub reply: String,
    #[serde(default)]
    pub tool_calls: Vec<String>,
    pub head: Option<String>,
    #[serde(default)]
    pub plan_changed: bool,
}

/// Something that happened to a session (a git drift, a bootstrap).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEvent {
    pub ts: String,
    pub kind: String,
    pub detail: Value,
}

/// `sessions/<stamp>_<branch>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    pub session_id: String,
    pub thread_id: String,
    pub branch: Option<String>,
    pub head: Option<String>,
    pub started: String,
    /// The short-term file this one was seeded from.
    #[serde(default)]
    pub bootstrapped_from: Option<String>,
    #[serde(default)]
    pub turns: Vec<TurnSummary>,
    /// Steps of the last plan that are not completed.
    #[serde(default)]
    pub pending_actions: Vec<String>,
    #[serde(default)]
    pub last_plan: Option<Plan>,
    #[serde(default)]
    pub events: Vec<SessionEvent>,
    /// How many of `turns` are already rolled into the long-term file.
    #[serde(default)]
    pub rolled_up_turns: usize,
}

impl SessionState {
    /// A new short-term state at `branch`/`head`, started `started`, carrying the pending actions and last plan
    /// of `seed` (a short-term file and its state) when there is one.
    pub fn seeded(
        session_id: String,
        thread_id: String,
        at: &crate::git::GitSnapshot,
        started: String,
        seed: Option<(std::path::PathBuf, SessionState)>,
    ) -> Self {
        let mut state = Self {
            session_id,
            thread_id,
            branch: at.branch.clone(),
            head: at.head.clone(),
            started,
            bootstrapped_from: None,
            turns: Vec::new(),
            pending_actions: Vec::new(),
            last_plan: None,
            events: Vec::new(),
            rolled_up_turns: 0,
        };
        if let Some((path, old)) = seed {
            state.bootstrapped_from = path.file_name().map(|n| n.to_string_lossy().into_owned());
            state.pending_actions = old.pending_actions;
            state.last_plan = old.last_plan;
        }
        state
    }
}

/// Where one project's state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectDir {
    /// The git root.
    pub root: PathBuf,
    /// `<data>/projects/<name>-<hash>`.
    pub dir: PathBuf,
}

impl ProjectDir {
    /// The state directory of the project rooted at `root`.
    pub fn new(data_dir: &Path, root: &Path) -> Self {
        let name: String = root
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
                    .collect()
            })
            .unwrap_or_else(|| "root".to_owned());
        let hash = blake3::hash(root.to_string_lossy().as_bytes()).to_hex();
        Self { root: root.to_owned(), dir: data_dir.join("projects").join(format!("{name}-{}", &hash[..12])) }
    }

    /// `project_state.json`.
    pub fn long_term_path(&self) -> PathBuf {
        self.dir.join("project_state.json")
    }

    /// The short-term files' directory.
    pub fn sessions_dir(&self) -> PathBuf {
        self.dir.join("sessions")
    }

    /// Reads the long-term state (default when absent).
    pub fn load(&self) -> Result<ProjectState, JournalError> {
        read_json(&self.long_term_path()).map(Option::unwrap_or_default)
    }

    /// Read-modify-write of the long-term state under the project lock.
    pub fn update<R>(&self, edit: impl FnOnce(&mut ProjectState) -> R) -> Result<R, JournalError> {
        crate::fsutil::create_private_dir(&self.dir).map_err(|e| JournalError::io(&self.dir, e))?;
        let _lock = DirLock::acquire(&self.dir)?;
        let path = self.long_term_path();
        let before = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(JournalError::io(&path, e)),
        };
        let mut state: ProjectState = if before.is_empty() {
            ProjectState::default()
        } else {
            serde_json::from_slice(&before).map_err(JournalError::Json)?
        };
        state.root = self.root.to_string_lossy().into_owned();
        let result = edit(&mut state);
        let bytes = serde_json::to_vec_pretty(&state).map_err(JournalError::Json)?;
        // Most turns change nothing here (no plan, no drift, the same git state): no rewrite, no sync then.
        if bytes != before {
            write_atomic(&path, &bytes)?;
        }
        Ok(result)
    }

    /// The path of a new short-term file.
    pub fn short_term_path(&self, stamp: &str, branch: Option<&str>) -> PathBuf {
        self.sessions_dir().join(format!("{stamp}_{}.jsonl", branch_slug(branch)))
    }

    /// Every short-term file with its state, oldest first (by name).
    pub fn short_term_files(&self) -> Vec<(PathBuf, SessionState)> {
        let Ok(entries) = std::fs::read_dir(self.sessions_dir()) else { return Vec::new() };
        let mut files: Vec<(PathBuf, SessionState)> =
            entries.flatten().map(|e| e.path()).filter_map(|p| read_short_term(&p).map(|s| (p, s))).collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        files
    }

    /// The newest short-term file for `branch` at `head` (what a new session starts from).
    pub fn newest_short_term(&self, branch: Option<&str>, head: Option<&str>) -> Option<(PathBuf, SessionState)> {
        self.short_term_files()
            .into_iter()
            .rev()
            .find(|(_, s)| s.branch.as_deref() == branch && s.head.as_deref() == head)
    }

    /// The short-term file a session already writes to (after a restart).
    pub fn session_file(&self, session: &str) -> Option<(PathBuf, SessionState)> {
        self.short_term_files().into_iter().rev().find(|(_, s)| s.session_id == session)
    }
}

/// Every project under `<data>/projects` with its long-term state.
pub fn all_projects(data_dir: &Path) -> Vec<(ProjectDir, ProjectState)> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("projects")) else { return Vec::new() };
    let mut out: Vec<(ProjectDir, ProjectState)> = entries
        .flatten()
        .filter_map(|e| {
            let dir = e.path();
            let state = read_json::<ProjectState>(&dir.join("project_state.json")).ok().flatten()?;
            Some((ProjectDir { root: PathBuf::from(&state.root), dir }, state))
        })
        .collect();
    out.sort_by(|a, b| a.0.root.cmp(&b.0.root));
    out
}

/// Writes a complete new short-term file atomically: its `start` line, holding all of `state`.
pub fn save_short_term(path: &Path, state: &SessionState) -> Result<(), JournalError> {
    let mut line = serde_json::to_vec(&Line::Start(std::borrow::Cow::Borrowed(state))).map_err(JournalError::Json)?;
    line.push(b'\n');
    write_atomic(path, &line)
}

/// One line of a short-term file.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Line<'a> {
    /// The state when the file was started (or converted from the former layout).
    Start(std::borrow::Cow<'a, SessionState>),
    /// What one turn changed.
    Turn(std::borrow::Cow<'a, TurnDelta>),
}

/// The part of a [`SessionState`] one turn changed: its new turns and events, and the fields it set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct TurnDelta {
    #[serde(default)]
    turns: Vec<TurnSummary>,
    #[serde(default)]
    events: Vec<SessionEvent>,
    branch: Option<String>,
    head: Option<String>,
    /// Set when the turn's plan changed them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_actions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_plan: Option<Plan>,
    rolled_up_turns: usize,
}

/// Reads a short-term file of either layout; `None` when it is unreadable or has no `start` line.
pub fn read_short_term(path: &Path) -> Option<SessionState> {
    match path.extension().and_then(|x| x.to_str()) {
        Some("json") => read_json::<SessionState>(path).ok().flatten(),
        Some("jsonl") => {
            let text = std::fs::read(path).ok()?;
            fold_lines(&text)
        }
        _ => None,
    }
}

/// Folds the complete lines of a short-term file into the state (a line that does not parse is skipped).
fn fold_lines(text: &[u8]) -> Option<SessionState> {
    // Only newline-terminated lines count: bytes after the last newline are a write a crash cut short.
    let complete = text.iter().rposition(|b| *b == b'\n').map_or(&text[..0], |end| &text[..end]);
    let mut state: Option<SessionState> = None;
    for line in complete.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<Line<'static>>(line) {
            Ok(Line::Start(start)) => state = Some(start.into_owned()),
            Ok(Line::Turn(delta)) => {
                let Some(state) = state.as_mut() else { continue };
                let delta = delta.into_owned();
                state.turns.extend(delta.turns);
                state.events.extend(delta.events);
                state.branch = delta.branch;
                state.head = delta.head;
                if let Some(pending) = delta.pending_actions {
                    state.pending_actions = pending;
                }
                if delta.last_plan.is_some() {
                    state.last_plan = delta.last_plan;
                }
                state.rolled_up_turns = delta.rolled_up_turns;
            }
            Err(e) => tracing::warn!(error = %e, "skipped a short-term line that does not parse"),
        }
    }
    state
}

/// A short-term file the writer appends to: it remembers what the file already holds, so each
/// [`ShortTermFile::save`] appends only what changed since (one line, synced with the writer's batch).
#[derive(Debug)]
pub struct ShortTermFile {
    path: PathBuf,
    /// Whether the `start` line is written.
    started: bool,
    /// Whether a torn tail was looked for (once per open, before the first append).
    repaired: bool,
    turns: usize,
    events: usize,
    pending_actions: Vec<String>,
    last_plan: Option<Plan>,
    /// A former-layout file this one continues, removed after the first save.
    replaces: Option<PathBuf>,
}

impl ShortTermFile {
    /// A file not written yet, at `path` (a `.jsonl` path from [`ProjectDir::short_term_path`]).
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            started: false,
            repaired: false,
            turns: 0,
            events: 0,
            pending_actions: Vec::new(),
            last_plan: None,
            replaces: None,
        }
    }

    /// The file found again after a restart, holding `state`. A file of the former layout is continued as
    /// a `.jsonl` file beside it (started with all of `state`), and the old file is removed once that
    /// is written.
    pub fn existing(path: PathBuf, state: &SessionState) -> Self {
        if path.extension().is_some_and(|x| x == "jsonl") {
            return Self {
                path,
                started: true,
                repaired: false,
                replaces: None,
                turns: state.turns.len(),
                events: state.events.len(),
                pending_actions: state.pending_actions.clone(),
                last_plan: state.last_plan.clone(),
            };
        }
        let mut file = Self::new(path.with_extension("jsonl"));
        file.replaces = Some(path);
        file
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends what changed in `state` since the last save (the whole state, the first time).
    pub fn save(&mut self, state: &SessionState) -> Result<(), JournalError> {
        let line = if self.started {
            let changed_plan = state.last_plan != self.last_plan;
            let changed_pending = state.pending_actions != self.pending_actions;
            Line::Turn(std::borrow::Cow::Owned(TurnDelta {
                turns: state.turns.get(self.turns..).unwrap_or_default().to_vec(),
                events: state.events.get(self.events..).unwrap_or_default().to_vec(),
                branch: state.branch.clone(),
                head: state.head.clone(),
                pending_actions: changed_pending.then(|| state.pending_actions.clone()),
                last_plan: if changed_plan { state.last_plan.clone() } else { None },
                rolled_up_turns: state.rolled_up_turns,
            }))
        } else {
            Line::Start(std::borrow::Cow::Borrowed(state))
        };
        let mut bytes = serde_json::to_vec(&line).map_err(JournalError::Json)?;
        bytes.push(b'\n');
        let mut file = open_append(&self.path)?;
        if !self.repaired {
            repair_tail(&mut file, &self.path)?;
            self.repaired = true;
        }
        append_durably(&mut file, &self.path, &bytes)?;
        self.started = true;
        self.turns = state.turns.len();
        self.events = state.events.len();
        if self.pending_actions != state.pending_actions {
            self.pending_actions = state.pending_actions.clone();
        }
        if self.last_plan != state.last_plan {
            self.last_plan = state.last_plan.clone();
        }
        if let Some(old) = self.replaces.take() {
            // The new file holds everything the old one did: the old one would only be read twice.
            if let Err(e) = std::fs::remove_file(&old) {
                tracing::warn!(path = %old.display(), error = %e, "could not remove a converted short-term file");
            }
        }
        Ok(())
    }
}

/// A branch name usable in a file name (`feature/x` → `feature-x`, detached → `detached`).
pub fn branch_slug(branch: Option<&str>) -> String {
    branch
        .map(|b| b.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '.') { c } else { '-' }).collect())
        .unwrap_or_else(|| "detached".to_owned())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, JournalError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(JournalError::Json),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(JournalError::io(path, e)),
    }
}
