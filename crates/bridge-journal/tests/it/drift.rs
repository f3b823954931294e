//! Drift detection against a real repository: branch switch, new commit, reset, rebase.

use std::time::Duration;

use bridge_journal::{DriftKind, Journal, JournalOptions};

use crate::support::{commit, git, repo};

fn options() -> JournalOptions {
    JournalOptions { git_cache: Duration::ZERO, git_timeout: Duration::from_secs(5), ..JournalOptions::default() }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_kind_of_drift_is_reported_once() {
    let (_tmp, root) = repo();
    let data = tempfile::tempdir().unwrap();
    let journal = Journal::start(data.path(), options());
    let cwd = root.join("sub");
    std::fs::create_dir_all(&cwd).unwrap();
    let cwd = cwd.to_string_lossy().into_owned();
    let first = journal.check_git(&cwd).await.unwrap();
    assert_eq!(first.root, root);
    assert!(first.drift.is_none(), "first sight records, no drift");
    assert!(journal.check_git(&cwd).await.unwrap().drift.is_none());

    let base = git(&root, &["rev-parse", "HEAD"]);
    commit(&root, "b.txt", "two");
    let d = journal.check_git(&cwd).await.unwrap().drift.unwrap();
    assert_eq!(d.kind, DriftKind::NewCommits);
    assert!(d.header_value().starts_with("new-commits; from=main@"));
    assert!(journal.check_git(&cwd).await.unwrap().drift.is_none(), "reported once");

    git(&root, &["reset", "-q", "--hard", &base]);
    assert_eq!(journal.check_git(&cwd).await.unwrap().drift.unwrap().kind, DriftKind::Reset);

    commit(&root, "c.txt", "three");
    journal.check_git(&cwd).await.unwrap();
    git(&root, &["commit", "-q", "--amend", "-m", "rewritten"]);
    assert_eq!(journal.check_git(&cwd).await.unwrap().drift.unwrap().kind, DriftKind::Rebase);

    git(&root, &["checkout", "-q", "-b", "other"]);
    let d = journal.check_git(&cwd).await.unwrap().drift.unwrap();
    assert_eq!(d.kind, DriftKind::BranchSwitch);
    assert_eq!(d.to.branch.as_deref(), Some("other"));
    assert!(journal.check_git("/").await.is_none(), "no repository, no check");
}
