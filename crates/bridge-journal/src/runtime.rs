//! The journal as the bridge runs it: a handle with the pre-upstream git drift check and a bounded
//! channel to a background writer that applies finished turns ([`crate::turn`]).
//!
//! Invariants:
//! - [`Journal::record`] only queues; all file work happens on the writer thread, after the upstream
//!   was called. The channel is bounded: a full queue makes the stream task wait, nothing is dropped.
//! - [`Journal::check_git`] is the one step allowed before the upstream call: at most one bounded `git`
//!   call per project per `git_cache` interval (plus the ancestry checks when a drift is found), and only
//!   for a working directory whose canonical path is under `project_roots`
//!   ([`crate::git::find_root_within`]); anywhere else no git runs and the turn is journaled without git
//!   state.
//! - A client-named path is resolved to its project again after `git_cache`, so a path that now leads to
//!   another repository never keeps the old project's state.
//! - A session is only ever compared with what that same session saw of that same project: the recorded
//!   state is kept per (session, project root), in memory, loaded at start from the sessions' short-term
//!   files. A session's first turn in a project records and reports nothing, so a session never receives
//!   branch or commit names recorded by another session or for another project.
//! - A drift is reported once per session: the check adopts the new state as that session's recorded one.
//! - The writer applies everything queued as one batch and never waits for a disk sync: a syncer thread
//!   syncs each file the batch appended to once (coalescing batches), and [`Journal::flush`] returns only
//!   after the turns queued before it are written and synced. A process crash loses the turns not yet
//!   written (measured by `bench crash-loss`); a power loss may also lose those not yet synced.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::git::{self, Drift, GitSnapshot, NoRoot};
pub use crate::options::JournalOptions;
use crate::options::home_dir;
use crate::project::all_projects;
use crate::turn::{TurnRecord, Writer};

/// Capacity of the queue in front of the writer. A queued turn holds its whole request body, so the queue
/// is short: at 64 turns of 1 MiB it holds 64 MiB (at 1024 it let the bridge reach 1.2 GiB of RSS under
/// `bench overhead`'s 1 MiB case).
const QUEUE: usize = 64;
/// Turns applied in one batch at most.
const MAX_BATCH: usize = 256;
/// Batches of files waiting for the syncer (its coalescing keeps this short).
const SYNC_QUEUE: usize = 8;
/// Distinct working directories remembered before the cwd → root map is cleared.
const MAX_CWDS: usize = 10_000;
/// (session, project) states remembered before the map is cleared (each ~200 bytes; a session that lost its
/// entry records again on its next turn and misses at most one drift).
const MAX_SEEN: usize = 100_000;

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
    /// Working directory as the client named it → when it was resolved and its project root (`None`: no
    /// git for it); reused for `git_cache`.
    roots: HashMap<String, (Instant, Option<PathBuf>)>,
    /// The current state of a project root, reused for `git_cache`.
    snapshots: HashMap<PathBuf, (Instant, GitSnapshot)>,
    /// What each session last saw of each project: (session, root) → state.
    seen: HashMap<(String, PathBuf), GitSnapshot>,
}

/// Handle to the running journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Message>,
    options: Arc<JournalOptions>,
    /// `options.project_roots`, canonical.
    roots: Arc<[PathBuf]>,
    watch: Arc<Mutex<Watch>>,
}

impl Journal {
    /// Loads what each session last saw of its project (the short-term files) and starts the writer thread.
    pub fn start(data_dir: &Path, options: JournalOptions) -> Self {
        let roots: Arc<[PathBuf]> = git::canonical_roots(&options.project_roots, home_dir().as_deref()).into();
        let mut watch = Watch::default();
        for (project, _) in all_projects(data_dir) {
            // Oldest first: a session's newest file wins.
            for (_, state) in project.short_term_files() {
                if watch.seen.len() >= MAX_SEEN {
                    break;
                }
                let git = GitSnapshot { branch: state.branch, head: state.head, dirty: false };
                watch.seen.insert((state.session_id, project.root.clone()), git);
            }
        }
        let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
        let mut writer = Writer::new(data_dir, &options);
        // The writer applies everything queued as one batch and hands the files it appended to to the syncer,
        // so a crash loses only the turns not yet written (the backlog stays as short as the writes), and no
        // turn waits for a disk sync. A flush is answered by the syncer, once what came before it is synced.
        let (sync_tx, mut sync_rx) = mpsc::channel::<(BTreeSet<PathBuf>, Vec<oneshot::Sender<()>>)>(SYNC_QUEUE);
        tokio::task::spawn_blocking(move || {
            while let Some((mut paths, mut flushed)) = sync_rx.blocking_recv() {
                while let Ok((more, done)) = sync_rx.try_recv() {
                    paths.extend(more);
                    flushed.extend(done);
                }
                if let Err(e) = crate::fsutil::sync_files(&paths) {
                    tracing::error!(error = %e, "could not sync a journal file");
                }
                for done in flushed {
                    let _ = done.send(());
                }
            }
        });
        tokio::task::spawn_blocking(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(message) => batch.push(message),
                        Err(_) => break,
                    }
                }
                let mut flushed = Vec::new();
                let ((), paths) = crate::fsutil::with_deferred_syncs(|| {
                    for message in batch {
                        match message {
                            Message::Turn(turn) => {
                                if let Err(e) = writer.apply(*turn) {
                                    tracing::error!(error = %e, "could not journal a turn");
                                }
                            }
                            Message::Flush(done) => flushed.push(done),
                        }
                    }
                });
                if sync_tx.blocking_send((paths, flushed)).is_err() {
                    tracing::error!("the journal syncer stopped");
                }
            }
        });
        Self { tx, options: Arc::new(options), roots, watch: Arc::new(Mutex::new(watch)) }
    }

    /// The settings.
    pub fn options(&self) -> &JournalOptions {
        &self.options
    }

    /// Resolves the project of `cwd` and compares its git state with what `session` last saw of that
    /// project (bounded, cached). `None` when `cwd` is outside `project_roots`, not inside a git repository,
    /// or git did not answer in time. `drift` is `None` on the session's first turn in the project.
    pub async fn check_git(&self, session: &str, cwd: &str) -> Option<TurnGit> {
        let fresh = |at: &Instant| at.elapsed() < self.options.git_cache;
        // The path → root answer expires like a snapshot: a path that now leads elsewhere (a moved symlink, a
        // replaced directory) must not keep serving the project it led to before.
        let known = {
            let watch = self.watch.lock().ok()?;
            watch.roots.get(cwd).filter(|(at, _)| fresh(at)).map(|(_, root)| root.clone())
        };
        let root = match known {
            Some(root) => root,
            None => {
                // Resolved outside the lock: canonicalising and looking for `.git` are file system calls.
                let root = locate(cwd, &self.roots);
                let mut watch = self.watch.lock().ok()?;
                if watch.roots.len() >= MAX_CWDS && !watch.roots.contains_key(cwd) {
                    watch.roots.clear();
                    watch.snapshots.clear();
                }
                watch.roots.insert(cwd.to_owned(), (Instant::now(), root.clone()));
                root
            }
        }?;
        let cached = {
            let watch = self.watch.lock().ok()?;
            watch.snapshots.get(&root).filter(|(at, _)| fresh(at)).map(|(_, s)| s.clone())
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
            let key = (session.to_owned(), root.clone());
            if watch.seen.len() >= MAX_SEEN && !watch.seen.contains_key(&key) {
                watch.seen.clear();
            }
            watch.seen.insert(key, snapshot.clone())
        };
        let drift = match recorded {
            Some(old) => git::classify(&root, &old, &snapshot, self.options.git_timeout).await,
            None => None,
        };
        Some(TurnGit { root, snapshot, drift })
    }

    /// The canonical project roots git may run under.
    pub fn project_roots(&self) -> &[PathBuf] {
        &self.roots
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

/// The project root of a client-named `cwd`, or `None` (with a debug line saying why) when git must not
/// run for it.
fn locate(cwd: &str, roots: &[PathBuf]) -> Option<PathBuf> {
    match git::find_root_within(Path::new(cwd), roots) {
        Ok(root) => Some(root),
        Err(NoRoot::OutsideRoots(resolved)) => {
            tracing::debug!(cwd, resolved = %resolved.display(),
                "working directory outside [journal] project_roots: no git runs, turns are journaled without git state");
            None
        }
        Err(NoRoot::NotARepository(_)) => None,
        Err(NoRoot::Unresolvable) => {
            tracing::debug!(cwd, "working directory does not resolve: turns are journaled without git state");
            None
        }
    }
}
