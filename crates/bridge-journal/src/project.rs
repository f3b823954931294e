//! Layered project state, kept in the data directory (never inside the user's repository):
//! `<data>/projects/<name>-<hash>/project_state.json` (long-term: milestones, task graph, git checkpoints,
//! drift events, roll-ups) and `<data>/projects/<name>-<hash>/sessions/<stamp>_<branch>.json` (short-term:
//! turn summaries, pending actions, the last plan, session events).
//!
//! Invariants:
//! - The project is the git root of the client's working directory; `<hash>` is derived from its path.
//! - Every read-modify-write of `project_state.json` holds the project's directory lock and ends in an
//!   atomic rewrite, so the bridge and the CLI never lose each other's edits.
//! - Short-term files are rewritten atomically after each turn.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::JournalError;
use crate::fsutil::{DirLock, write_atomic};
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
        let mut state = self.load()?;
        state.root = self.root.to_string_lossy().into_owned();
        let result = edit(&mut state);
        let bytes = serde_json::to_vec_pretty(&state).map_err(JournalError::Json)?;
        write_atomic(&self.long_term_path(), &bytes)?;
        Ok(result)
    }

    /// The path of a new short-term file.
    pub fn short_term_path(&self, stamp: &str, branch: Option<&str>) -> PathBuf {
        self.sessions_dir().join(format!("{stamp}_{}.json", branch_slug(branch)))
    }

    /// Every short-term file with its state, oldest first (by name).
    pub fn short_term_files(&self) -> Vec<(PathBuf, SessionState)> {
        let Ok(entries) = std::fs::read_dir(self.sessions_dir()) else { return Vec::new() };
        let mut files: Vec<(PathBuf, SessionState)> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| read_json::<SessionState>(&p).ok().flatten().map(|s| (p, s)))
            .collect();
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

/// Writes a short-term file atomically.
pub fn save_short_term(path: &Path, state: &SessionState) -> Result<(), JournalError> {
    let bytes = serde_json::to_vec_pretty(state).map_err(JournalError::Json)?;
    write_atomic(path, &bytes)
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
