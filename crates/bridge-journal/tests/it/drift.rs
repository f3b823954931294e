//! Drift detection against a real repository: branch switch, new commit, reset, rebase; git only under
//! `project_roots`; a session compared only with what it saw of the same project.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bridge_journal::{DriftKind, Journal, JournalOptions};

use crate::support::{commit, git, repo};

/// No snapshot reuse, and git allowed under `root` only (test repositories live under /tmp, not $HOME).
fn options(root: &Path) -> JournalOptions {
    JournalOptions {
        git_cache: Duration::ZERO,
        git_timeout: Duration::from_secs(5),
        project_roots: vec![root.to_owned()],
        ..JournalOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_kind_of_drift_is_reported_once() {
    let (tmp, root) = repo();
    let data = tempfile::tempdir().unwrap();
    let journal = Journal::start(data.path(), options(tmp.path()));
    let cwd = root.join("sub");
    std::fs::create_dir_all(&cwd).unwrap();
    let cwd = cwd.to_string_lossy().into_owned();
    let first = journal.check_git("s1", &cwd).await.unwrap();
    assert_eq!(first.root, root);
    assert!(first.drift.is_none(), "first sight records, no drift");
    assert!(journal.check_git("s1", &cwd).await.unwrap().drift.is_none());

    let base = git(&root, &["rev-parse", "HEAD"]);
    commit(&root, "b.txt", "two");
    let d = journal.check_git("s1", &cwd).await.unwrap().drift.unwrap();
    assert_eq!(d.kind, DriftKind::NewCommits);
    assert!(d.header_value().starts_with("new-commits; from=main@"));
    assert!(journal.check_git("s1", &cwd).await.unwrap().drift.is_none(), "reported once");

    git(&root, &["reset", "-q", "--hard", &base]);
    assert_eq!(journal.check_git("s1", &cwd).await.unwrap().drift.unwrap().kind, DriftKind::Reset);

    commit(&root, "c.txt", "three");
    journal.check_git("s1", &cwd).await.unwrap();
    git(&root, &["commit", "-q", "--amend", "-m", "rewritten"]);
    assert_eq!(journal.check_git("s1", &cwd).await.unwrap().drift.unwrap().kind, DriftKind::Rebase);

    git(&root, &["checkout", "-q", "-b", "other"]);
    let d = journal.check_git("s1", &cwd).await.unwrap().drift.unwrap();
    assert_eq!(d.kind, DriftKind::BranchSwitch);
    assert_eq!(d.to.branch.as_deref(), Some("other"));
    assert!(journal.check_git("s1", "/").await.is_none(), "no repository, no check");
}

/// `$HOME` by default, unless it is `/`.
#[test]
fn project_roots_default_to_the_home_directory() {
    let home = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h != Path::new("/") && !h.as_os_str().is_empty());
    assert_eq!(JournalOptions::default().project_roots, home.into_iter().collect::<Vec<_>>());
}

/// A repository outside the roots, or reached with `..` or a symlink out of the root, gets no git call:
/// no state, no drift, however it changes.
#[tokio::test(flavor = "multi_thread")]
async fn outside_the_roots_no_git_runs() {
    let (tmp, root) = repo();
    let allowed = tmp.path().join("allowed");
    std::fs::create_dir_all(&allowed).unwrap();
    let data = tempfile::tempdir().unwrap();
    let journal = Journal::start(data.path(), options(&allowed));
    assert_eq!(journal.project_roots(), [allowed.canonicalize().unwrap()]);
    std::os::unix::fs::symlink(&root, allowed.join("link")).unwrap();
    let escapes = [
        root.to_string_lossy().into_owned(),
        format!("{}/../proj", allowed.display()),
        format!("{}/link", allowed.display()),
        format!("{}/link/../proj", allowed.display()),
    ];
    for round in 0..2 {
        for cwd in &escapes {
            assert!(journal.check_git("s1", cwd).await.is_none(), "{cwd}: no git outside the roots");
        }
        commit(&root, &format!("f{round}.txt"), "changed");
    }
    let nothing = Journal::start(data.path(), JournalOptions { project_roots: Vec::new(), ..options(&allowed) });
    assert!(nothing.check_git("s1", &root.to_string_lossy()).await.is_none(), "no roots, no git");
    let inside = Journal::start(data.path(), options(tmp.path()));
    let found = inside.check_git("s1", &escapes[1]).await.unwrap().root;
    assert_eq!(found, root.canonicalize().unwrap(), "the same path inside the roots");
}

/// Each session is compared only with what it saw itself of the same project: another session's recorded
/// state, and the state of the project a path led to before, never reach it.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_only_sees_drift_of_what_it_saw() {
    let tmp = tempfile::tempdir().unwrap();
    let mk = |name: &str, branch: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        git(&dir, &["init", "-q", "-b", branch]);
        commit(&dir, "a.txt", name);
        dir.canonicalize().unwrap()
    };
    let (x, y) = (mk("x", "secret-x"), mk("y", "main"));
    let data = tempfile::tempdir().unwrap();
    let journal = Journal::start(data.path(), options(tmp.path()));
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&x, &link).unwrap();
    let link = link.to_string_lossy().into_owned();
    assert!(journal.check_git("a", &link).await.unwrap().drift.is_none());
    commit(&x, "b.txt", "x moved");

    // Session c names X itself: its first turn records; what session a recorded is not compared with.
    let c = journal.check_git("c", &x.to_string_lossy()).await.unwrap();
    assert!(c.drift.is_none(), "another session's state is not compared with: {:?}", c.drift);
    // The path now leads to Y: session b gets Y, not X's state.
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&y, &link).unwrap();
    let b = journal.check_git("b", &link).await.unwrap();
    assert_eq!(b.root, y);
    assert!(b.drift.is_none());
    commit(&y, "b.txt", "y moved");
    let d = journal.check_git("b", &link).await.unwrap().drift.unwrap();
    assert!(d.header_value().starts_with("new-commits; from=main@") && !d.header_value().contains("secret-x"));
    // Session a, at the same path, sees Y for the first time: nothing about X either.
    assert!(journal.check_git("a", &link).await.unwrap().drift.is_none());
    // And each session is still told about its own project's changes.
    let d = journal.check_git("c", &x.to_string_lossy()).await;
    assert!(d.unwrap().drift.is_none(), "c already saw X after the commit");
    commit(&x, "c.txt", "x again");
    let d = journal.check_git("c", &x.to_string_lossy()).await.unwrap().drift.unwrap();
    assert_eq!(d.kind, DriftKind::NewCommits);
    assert_eq!(d.to.branch.as_deref(), Some("secret-x"));
}

/// Branch and HEAD read in-process agree with `git status` in the layouts a project can have: a plain
/// repository, an unborn branch, packed refs, a detached HEAD, a linked worktree and a submodule.
#[tokio::test]
async fn in_process_reads_agree_with_git_status() {
    async fn agree(root: &Path) {
        let status = bridge_journal::git::snapshot(root, Duration::from_secs(5)).await.unwrap();
        let read = bridge_journal::git::read_branch_head(root).unwrap();
        assert_eq!((read.branch, read.head), (status.branch, status.head), "{}", root.display());
    }
    let tmp = tempfile::tempdir().unwrap();
    let unborn = tmp.path().join("unborn");
    std::fs::create_dir_all(&unborn).unwrap();
    git(&unborn, &["init", "-q", "-b", "trunk"]);
    agree(&unborn).await;

    let (_keep, root) = repo();
    agree(&root).await;
    commit(&root, "b.txt", "two");
    git(&root, &["pack-refs", "--all"]);
    assert!(!root.join(".git/refs/heads/main").exists(), "packed");
    agree(&root).await;
    git(&root, &["checkout", "-q", "-b", "feature/x"]);
    agree(&root).await;
    let head = git(&root, &["rev-parse", "HEAD"]);
    git(&root, &["checkout", "-q", "--detach", &head]);
    agree(&root).await;
    git(&root, &["checkout", "-q", "main"]);

    let wt = tmp.path().join("wt");
    git(&root, &["worktree", "add", "-q", "-b", "wt-branch", wt.to_str().unwrap()]);
    commit(&wt, "w.txt", "in the worktree");
    agree(&wt).await;
    agree(&root).await;

    let sub_src = tmp.path().join("subsrc");
    std::fs::create_dir_all(&sub_src).unwrap();
    git(&sub_src, &["init", "-q", "-b", "main"]);
    commit(&sub_src, "s.txt", "sub");
    git(&root, &["-c", "protocol.file.allow=always", "submodule", "add", "-q", sub_src.to_str().unwrap(), "sub"]);
    agree(&root.join("sub")).await;
}

/// Concurrent checks of one project share one reading of its git state (single flight), and the cached
/// reading serves the interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checks_share_one_read() {
    let (tmp, root) = repo();
    let data = tempfile::tempdir().unwrap();
    let journal =
        Journal::start(data.path(), JournalOptions { git_cache: Duration::from_secs(60), ..options(tmp.path()) });
    let cwd = root.to_string_lossy().into_owned();
    let checks: Vec<_> = (0..32)
        .map(|n| {
            let (journal, cwd) = (journal.clone(), cwd.clone());
            tokio::spawn(async move { journal.check_git(&format!("s{n}"), &cwd).await.unwrap() })
        })
        .collect();
    for check in checks {
        assert_eq!(check.await.unwrap().snapshot.branch.as_deref(), Some("main"));
    }
    assert_eq!(journal.git_reads(), 1);
}

/// The dirty flag comes from `git status` off the request path, and the recorded turn carries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dirty_flag_reaches_the_recorded_turn() {
    let (tmp, root) = repo();
    std::fs::write(root.join("a.txt"), "edited").unwrap();
    let data = tempfile::tempdir().unwrap();
    let journal =
        Journal::start(data.path(), JournalOptions { git_cache: Duration::from_secs(60), ..options(tmp.path()) });
    let cwd = root.to_string_lossy().into_owned();
    let checked = journal.check_git("s", &cwd).await.unwrap();
    let record =
        crate::support::turn("s", &[crate::support::user("hi")], vec![], Some((checked.root, checked.snapshot)));
    journal.record(record).await;
    journal.flush().await;
    let state = bridge_journal::project::ProjectDir::new(data.path(), &root).load().unwrap();
    assert!(state.last_git().unwrap().dirty, "{state:?}");
    assert!(journal.check_git("s", &cwd).await.unwrap().snapshot.dirty, "known to the next check");
}
