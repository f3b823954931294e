//! The journal as the bridge runs it: a handle with the pre-upstream git drift check and a bounded
//! channel to a background writer that applies finished turns ([`crate::turn`]).
//!
//! Invariants:
//! - [`Journal::record`] only queues; all file work happens on the writer thread, after the upstream
//!   was called. The channel is bounded: a full queue makes the stream task wait, nothing is dropped.
//! - [`Journal::check_git`] is the one step allowed before the upstream call: at most one bounded `git`
//!   call per project per `git_cache` interval (plus the ancestry checks when a drift is found). The
//!   recorded state it compares with is held in memory, loaded from the projects' checkpoints at start.
//! - A drift is reported once: the check adopts the new state as the recorded one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::git::{self, Drift, GitSnapshot};
use crate::project::all_projects;
use crate::turn::{TurnRecord, Writer};

/// Capacity of the queue in front of the writer. A queued turn holds its whole request body, so the queue
/// is short: at 64 turns of 1 MiB it holds 64 MiB (at 1024 it let the bridge reach 1.2 GiB of RSS under
/// `bench overhead`'s 1 MiB case).
const QUEUE: usize = 64;
/// Distinct working directories remembered before the cwd → root map is cleared.
const MAX_CWDS: usize = 10_000;

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
}

impl Default for JournalOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            history_max_bytes: Some(crate::history::DEFAULT_MAX_BYTES),
            drift_note: false,
            git_timeout: Duration::from_millis(500),
            git_cache: Duration::from_millis(1000),
        }
    }
}

/// The git facts of one turn's project.
#[derive(Debug, Clone)]
pub struct TurnGit {
    pub root: PathBuf,
    pub snapshot: GitSnapshot,
    pub drift: Option<Drift>,
}

enum Message {
    Turn(Box<TurnRecord>),
    Flush(oneshot::Sender<()>),
}

#[derive(Default)]
struct Watch {
    roots: HashMap<String, Option<PathBuf>>,
    snapshots: HashMap<PathBuf, (Instant, GitSnapshot)>,
    recorded: HashMap<PathBuf, GitSnapshot>,
}

/// Handle to the running journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Message>,
    options: Arc<JournalOptions>,
    watch: Arc<Mutex<Watch>>,
}

impl Journal {
    /// Loads the recorded git checkpoints and starts the writer thread.
    pub fn start(data_dir: &Path, options: JournalOptions) -> Self {
        let mut watch = Watch::default();
        for (project, state) in all_projects(data_dir) {
            if let Some(git) = state.last_git() {
                watch.recorded.insert(project.root.clone(), git.clone());
            }
        }
        let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
        let mut writer = Writer::new(data_dir, &options);
        tokio::task::spawn_blocking(move || {
            while let Some(message) = rx.blocking_recv() {
                match message {
                    Message::Turn(turn) => {
                        if let Err(e) = writer.apply(*turn) {
                            tracing::error!(error = %e, "could not journal a turn");
                        }
                    }
                    Message::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        Self { tx, options: Arc::new(options), watch: Arc::new(Mutex::new(watch)) }
    }

    /// The settings.
    pub fn options(&self) -> &JournalOptions {
        &self.options
    }

    /// Resolves the project of `cwd` and compares its git state with the recorded one (bounded, cached).
    /// `None` when `cwd` is not inside a git repository or git did not answer in time.
    pub async fn check_git(&self, cwd: &str) -> Option<TurnGit> {
        let (root, cached) = {
            let mut watch = self.watch.lock().ok()?;
            if watch.roots.len() >= MAX_CWDS && !watch.roots.contains_key(cwd) {
                watch.roots.clear();
            }
            let root = watch.roots.entry(cwd.to_owned()).or_insert_with(|| git::find_root(Path::new(cwd))).clone()?;
            let cached = watch
                .snapshots
                .get(&root)
                .filter(|(at, _)| at.elapsed() < self.options.git_cache)
                .map(|(_, s)| s.clone());
            (root, cached)
        };
        let snapshot = match cached {
            Some(s) => s,
            None => match git::snapshot(&root, self.options.git_timeout).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, root = %root.display(), "git check skipped");
                    return None;
                }
            },
        };
        let recorded = {
            let mut watch = self.watch.lock().ok()?;
            watch.snapshots.insert(root.clone(), (Instant::now(), snapshot.clone()));
            watch.recorded.insert(root.clone(), snapshot.clone())
        };
        let drift = match recorded {
            Some(old) => git::classify(&root, &old, &snapshot, self.options.git_timeout).await,
            None => None,
        };
        Some(TurnGit { root, snapshot, drift })
    }

    /// Queues a finished turn for the writer (waits if the queue is full).
    pub async fn record(&self, turn: TurnRecord) {
        if self.tx.send(Message::Turn(Box::new(turn))).await.is_err() {
            tracing::error!("journal writer stopped; a turn was not journaled");
        }
    }

    /// Waits until every turn queued before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}
