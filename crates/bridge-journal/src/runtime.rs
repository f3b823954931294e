//! The journal as the bridge runs it: a handle with the pre-upstream git drift check and a bounded
//! channel to a background writer that applies finished turns ([`crate::turn`]).
//!
//! Invariants:
//! - [`Journal::record`] only queues; all file work happens on the writer thread, after the upstream
//!   was called. The channel is bounded: a full queue makes the stream task wait, nothing is dropped.
//! - [`Journal::check_git`] is the one step allowed before the upstream call. It reads branch and HEAD
//!   in-process ([`crate::gitdir`]), once per project per `git_cache` interval however many checks run at
//!   once (single flight), and waits for no subprocess, except the ancestry checks when a drift is found
//!   and a `git status` for a repository the reader does not understand. Only for a working directory whose
//!   canonical path is under `project_roots` ([`crate::git::find_root_within`]); anywhere else nothing is
//!   read and the turn is journaled without git state.
//! - The dirty flag is `git status --untracked-files=no` (honest: an index mtime misses edits to tracked
//!   files), run once per project per interval in the background: the check reports the last known flag,
//!   and [`Journal::record`] (after the stream) gives the turn the flag of the status its interval started.
//!   Drift is classified from branch and HEAD only, so the flag never delays or changes a drift.
//! - The maps behind the check are bounded and evict their least recently used entry (`lru`), never
//!   everything at once.
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

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;

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
/// Distinct working directories (and project roots) remembered; the least recently used is evicted.
const MAX_CWDS: usize = 10_000;
/// (session, project) states remembered, least recently used evicted (each ~200 bytes; a session that lost
/// its entry records again on its next turn and misses at most one drift).
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

/// One interval's reading of a project root's git state, shared by every check of that root in the
/// interval (single flight).
struct Flight {
    at: Instant,
    /// Branch and HEAD, read once (in-process; `git status` for a repository the reader does not know).
    head: tokio::sync::OnceCell<Option<GitSnapshot>>,
    /// The dirty flag from one bounded `git status`, run in the background.
    dirty: Arc<tokio::sync::OnceCell<Option<bool>>>,
    dirty_started: AtomicBool,
    /// The dirty flag the previous flight found, reported until this one's is known.
    previous_dirty: bool,
}

impl Flight {
    fn new(previous: Option<&Flight>) -> Self {
        let previous_dirty = previous.and_then(|f| f.dirty.get().copied().flatten()).unwrap_or(false);
        Self {
            at: Instant::now(),
            head: tokio::sync::OnceCell::new(),
            dirty: Arc::new(tokio::sync::OnceCell::new()),
            dirty_started: AtomicBool::new(false),
            previous_dirty,
        }
    }
}

/// The bounded maps of the git check; each evicts its least recently used entry when full.
struct Watch {
    /// Working directory as the client named it → when it was resolved and its project root (`None`: no
    /// git for it); reused for `git_cache`.
    roots: LruCache<String, (Instant, Option<PathBuf>)>,
    /// The current reading of a project root, reused for `git_cache`.
    flights: LruCache<PathBuf, Arc<Flight>>,
    /// What each session last saw of each project: (session, root) → state.
    seen: LruCache<(String, PathBuf), GitSnapshot>,
}

impl Watch {
    /// Maps holding `cwds` working directories (and as many roots) and `seen` (session, project) states.
    fn new(cwds: usize, seen: usize) -> Self {
        let cap = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        Self { roots: LruCache::new(cap(cwds)), flights: LruCache::new(cap(cwds)), seen: LruCache::new(cap(seen)) }
    }
}

/// Handle to the running journal; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    tx: mpsc::Sender<Message>,
    options: Arc<JournalOptions>,
    /// `options.project_roots`, canonical.
    roots: Arc<[PathBuf]>,
    watch: Arc<Mutex<Watch>>,
    /// Readings of git state so far (in-process or `git status`), for tests and diagnostics.
    reads: Arc<AtomicU64>,
}

impl Journal {
    /// Loads what each session last saw of its project (the short-term files) and starts the writer thread.
    pub fn start(data_dir: &Path, options: JournalOptions) -> Self {
        Self::start_with(data_dir, options, Watch::new(MAX_CWDS, MAX_SEEN))
    }

    fn start_with(data_dir: &Path, options: JournalOptions, mut watch: Watch) -> Self {
        let roots: Arc<[PathBuf]> = git::canonical_roots(&options.project_roots, home_dir().as_deref()).into();
        for (project, _) in all_projects(data_dir) {
            // Oldest first: a session's newest file wins (and the newest sessions stay when there are more).
            for (_, state) in project.short_term_files() {
                let git = GitSnapshot { branch: state.branch, head: state.head, dirty: false };
                watch.seen.put((state.session_id, project.root.clone()), git);
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
        Self { tx, options: Arc::new(options), roots, watch: Arc::new(Mutex::new(watch)), reads: Arc::default() }
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
            let mut watch = self.watch.lock().ok()?;
            watch.roots.get(cwd).filter(|(at, _)| fresh(at)).map(|(_, root)| root.clone())
        };
        let root = match known {
            Some(root) => root,
            None => {
                // Resolved outside the lock: canonicalising and looking for `.git` are file system calls.
                let root = locate(cwd, &self.roots);
                let mut watch = self.watch.lock().ok()?;
                watch.roots.put(cwd.to_owned(), (Instant::now(), root.clone()));
                root
            }
        }?;
        let flight = {
            let mut watch = self.watch.lock().ok()?;
            match watch.flights.get(&root) {
                Some(f) if fresh(&f.at) => Arc::clone(f),
                previous => {
                    let f = Arc::new(Flight::new(previous.map(AsRef::as_ref)));
                    watch.flights.put(root.clone(), Arc::clone(&f));
                    f
                }
            }
        };
        // Every concurrent check of this root in this interval waits for the same one reading.
        let timeout = self.options.git_timeout;
        let read = flight
            .head
            .get_or_init(|| {
                self.reads.fetch_add(1, Ordering::Relaxed);
                read_state(&root, timeout, &flight.dirty)
            })
            .await;
        let mut snapshot = read.clone()?;
        if !flight.dirty_started.swap(true, Ordering::AcqRel) {
            // The dirty flag needs `git status`: it runs off the request path; the recorded turn gets it.
            let (cell, root) = (Arc::clone(&flight.dirty), root.clone());
            tokio::spawn(async move {
                cell.get_or_init(|| dirty_of(root, timeout)).await;
            });
        }
        snapshot.dirty = flight.dirty.get().copied().flatten().unwrap_or(flight.previous_dirty);
        let recorded = {
            let mut watch = self.watch.lock().ok()?;
            let key = (session.to_owned(), root.clone());
            watch.seen.put(key, snapshot.clone())
        };
        let drift = match recorded {
            Some(old) => git::classify(&root, &old, &snapshot, self.options.git_timeout).await,
            None => None,
        };
        Some(TurnGit { root, snapshot, drift })
    }

    /// The dirty flag of `root` from its current flight's `git status`, waiting for it at most
    /// `git_timeout` (`None`: unknown).
    async fn wait_dirty(&self, root: &Path) -> Option<bool> {
        let cell = {
            let mut watch = self.watch.lock().ok()?;
            Arc::clone(&watch.flights.get(root)?.dirty)
        };
        let timeout = self.options.git_timeout;
        let wait = cell.get_or_init(|| dirty_of(root.to_owned(), timeout));
        tokio::time::timeout(timeout, wait).await.ok().copied().flatten()
    }

    /// How many times git state was read (one per project per `git_cache` interval, however many checks).
    pub fn git_reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The canonical project roots git may run under.
    pub fn project_roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Queues a finished turn for the writer (waits if the queue is full). The turn's git state gets the
    /// dirty flag of the `git status` its check started (waited for at most `git_timeout`).
    pub async fn record(&self, mut turn: TurnRecord) {
        if let Some((root, snapshot)) = turn.git.as_mut()
            && let Some(dirty) = self.wait_dirty(root).await
        {
            snapshot.dirty = dirty;
        }
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

/// Branch and HEAD of `root`, read in-process; a repository the reader does not understand gets one
/// bounded `git status`, which also answers the flight's dirty flag.
async fn read_state(
    root: &Path,
    timeout: Duration,
    dirty: &tokio::sync::OnceCell<Option<bool>>,
) -> Option<GitSnapshot> {
    match git::read_branch_head(root) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!(error = %e, root = %root.display(), "git state not readable in-process; running git");
            match git::snapshot(root, timeout).await {
                Ok(s) => {
                    let _ = dirty.set(Some(s.dirty));
                    Some(s)
                }
                Err(e) => {
                    tracing::debug!(error = %e, root = %root.display(), "git check skipped");
                    None
                }
            }
        }
    }
}

/// The dirty flag from one bounded `git status` (`None` when git did not answer).
async fn dirty_of(root: PathBuf, timeout: Duration) -> Option<bool> {
    match git::dirty(&root, timeout).await {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::debug!(error = %e, root = %root.display(), "dirty flag unknown");
            None
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

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// At capacity the least recently used (session, project) state is evicted, not all of them: a
    /// session still in the map is told of a drift after other sessions came.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_seen_map_evicts_the_least_recent_session_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap().join("repo");
        std::fs::create_dir_all(&root).unwrap();
        git(&root, &["init", "-q", "-b", "main"]);
        git(&root, &["commit", "-q", "--allow-empty", "-m", "one"]);
        let data = tempfile::tempdir().unwrap();
        let options = JournalOptions {
            git_cache: Duration::ZERO,
            git_timeout: Duration::from_secs(5),
            project_roots: vec![tmp.path().to_owned()],
            ..JournalOptions::default()
        };
        let journal = Journal::start_with(data.path(), options, Watch::new(16, 2));
        let cwd = root.to_string_lossy().into_owned();
        for s in ["s1", "s2", "s1", "s3"] {
            assert!(journal.check_git(s, &cwd).await.unwrap().drift.is_none());
        }
        git(&root, &["checkout", "-q", "-b", "other"]);
        let s1 = journal.check_git("s1", &cwd).await.unwrap();
        assert_eq!(s1.drift.map(|d| d.kind), Some(crate::DriftKind::BranchSwitch), "s1 was kept");
        assert!(journal.check_git("s2", &cwd).await.unwrap().drift.is_none(), "s2 was the one evicted");
    }
}
