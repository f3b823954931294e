//! Git facts about a project: its root, a snapshot (branch, HEAD, dirty) and the kind of drift between a
//! recorded snapshot and the current one.
//!
//! Invariants:
//! - For a working directory a client names, [`find_root_within`] canonicalises it first (no `..` or symlink
//!   escape) and only accepts a git root at or under one of the allowed project roots; the bridge runs no
//!   git anywhere else.
//! - git never looks above the root it runs in (`GIT_CEILING_DIRECTORIES` is the root's parent) and runs
//!   with `core.fsmonitor` off, so a repository's configuration cannot make `git status` start a program.
//! - Branch and HEAD are read in-process from the git directory ([`read_branch_head`], [`crate::gitdir`]);
//!   git runs only for the dirty flag ([`dirty`]), for repositories the reader does not understand, and for
//!   the CLI's [`snapshot`] (one `git status --porcelain=v2 --branch --untracked-files=no` call). Every git
//!   call runs with a timeout and its process is killed when the timeout fires.
//! - Classifying a drift costs at most two extra `git merge-base --is-ancestor` calls, and only when the
//!   HEAD moved on the same branch.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::JournalError;

/// Branch, HEAD and dirty flag of a working tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitSnapshot {
    /// `None` when HEAD is detached.
    pub branch: Option<String>,
    /// `None` before the first commit.
    pub head: Option<String>,
    pub dirty: bool,
}

impl GitSnapshot {
    /// `main@1a2b3c4` (`detached`, `no-commit` when missing).
    pub fn label(&self) -> String {
        let head = self.head.as_deref().map_or("no-commit", |h| h.get(..7).unwrap_or(h));
        format!("{}@{head}", self.branch.as_deref().unwrap_or("detached"))
    }
}

/// What changed between the recorded snapshot and the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftKind {
    /// Another branch is checked out.
    BranchSwitch,
    /// HEAD moved forward (the recorded HEAD is an ancestor).
    NewCommits,
    /// HEAD moved back to an ancestor of the recorded HEAD.
    Reset,
    /// HEAD moved to a commit that neither contains nor is contained in the recorded one (rebase, amend,
    /// or a reset to an unrelated commit).
    Rebase,
}

impl DriftKind {
    /// The kebab-case name used in headers, events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BranchSwitch => "branch-switch",
            Self::NewCommits => "new-commits",
            Self::Reset => "reset",
            Self::Rebase => "rebase",
        }
    }
}

/// A detected drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub kind: DriftKind,
    pub from: GitSnapshot,
    pub to: GitSnapshot,
}

impl Drift {
    /// The `x-codex-bridge-git-drift` header value: `kind; from=main@1a2b3c4; to=main@5d6e7f8`.
    pub fn header_value(&self) -> String {
        format!("{}; from={}; to={}", self.kind.as_str(), self.from.label(), self.to.label())
    }
}

/// The git root of `cwd` (canonicalized, so the bridge and the CLI name a project the same way): the
/// nearest ancestor (or itself) holding `.git`. For a directory the user chose (the CLI's `--project`);
/// a directory a client names goes through [`find_root_within`].
pub fn find_root(cwd: &Path) -> Option<PathBuf> {
    let cwd = cwd.canonicalize().ok()?;
    cwd.ancestors().find(|dir| dir.join(".git").exists()).map(Path::to_path_buf)
}

/// Why a working directory has no project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoot {
    /// The path does not exist or cannot be resolved.
    Unresolvable,
    /// The resolved path is not under any allowed project root.
    OutsideRoots(PathBuf),
    /// No `.git` between the directory and the project root that contains it.
    NotARepository(PathBuf),
}

/// The git root of `cwd` when it lies inside `roots` (canonical paths, see [`canonical_roots`]): `cwd` is
/// canonicalised (resolving `..` and symlinks), must be at or under one of `roots`, and the nearest
/// ancestor holding `.git` is searched only up to that root, so a repository above the roots (a home
/// directory kept in git, say) is never used either.
pub fn find_root_within(cwd: &Path, roots: &[PathBuf]) -> Result<PathBuf, NoRoot> {
    let cwd = cwd.canonicalize().map_err(|_| NoRoot::Unresolvable)?;
    // The outermost root containing cwd bounds the search (roots may nest).
    let Some(bound) = roots.iter().filter(|r| cwd.starts_with(r)).min_by_key(|r| r.components().count()) else {
        return Err(NoRoot::OutsideRoots(cwd));
    };
    cwd.ancestors()
        .take_while(|dir| dir.starts_with(bound))
        .find(|dir| dir.join(".git").exists())
        .map(Path::to_path_buf)
        .ok_or(NoRoot::NotARepository(cwd))
}

/// `roots` made absolute and canonical: a leading `~` is the home directory (`home`); roots that are
/// relative or do not exist are left out with a warning (a root that does not exist yet counts after the
/// next start).
pub fn canonical_roots(roots: &[PathBuf], home: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for root in roots {
        let expanded = match (root.strip_prefix("~"), home) {
            (Ok(rest), Some(home)) => home.join(rest),
            _ => root.clone(),
        };
        if !expanded.is_absolute() {
            tracing::warn!(root = %root.display(), "[journal] project_roots entry is not absolute; ignored");
            continue;
        }
        match expanded.canonicalize() {
            Ok(canonical) => out.push(canonical),
            Err(e) => tracing::warn!(root = %root.display(), error = %e, "[journal] project_roots entry ignored"),
        }
    }
    out
}

/// Runs `git -C root args…` with a timeout; returns the exit code and stdout.
async fn git(root: &Path, args: &[&str], timeout: Duration) -> Result<(i32, String), JournalError> {
    let mut command = tokio::process::Command::new("git");
    command.arg("-C").arg(root).args(["-c", "core.fsmonitor=false"]).args(args).env("GIT_OPTIONAL_LOCKS", "0");
    if let Some(parent) = root.parent() {
        command.env("GIT_CEILING_DIRECTORIES", parent);
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| JournalError::Git(format!("cannot run git: {e}")))?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| JournalError::Git(format!("git {} timed out after {} ms", args.join(" "), timeout.as_millis())))?
        .map_err(|e| JournalError::Git(format!("git failed: {e}")))?;
    let code = output.status.code().unwrap_or(-1);
    Ok((code, String::from_utf8_lossy(&output.stdout).into_owned()))
}

/// Branch and HEAD read in-process, without running git (`dirty` is not known here: `false`). An error
/// when the repository is one the reader does not understand (then use [`snapshot`]).
pub fn read_branch_head(root: &Path) -> Result<GitSnapshot, JournalError> {
    let head = crate::gitdir::read_head(root).map_err(|e| JournalError::Git(e.0))?;
    Ok(GitSnapshot { branch: head.branch, head: head.oid, dirty: false })
}

/// Whether tracked files differ from HEAD (staged or not; untracked files do not count), with one bounded
/// `git status --porcelain=v2 --untracked-files=no` call.
pub async fn dirty(root: &Path, timeout: Duration) -> Result<bool, JournalError> {
    snapshot(root, timeout).await.map(|s| s.dirty)
}

/// Takes a snapshot with one bounded `git status` call.
pub async fn snapshot(root: &Path, timeout: Duration) -> Result<GitSnapshot, JournalError> {
    let args = ["status", "--porcelain=v2", "--branch", "--untracked-files=no"];
    let (0, out) = git(root, &args, timeout).await? else {
        return Err(JournalError::Git(format!("git status failed in {}", root.display())));
    };
    Ok(parse_status(&out))
}

fn parse_status(out: &str) -> GitSnapshot {
    let mut snap = GitSnapshot { branch: None, head: None, dirty: false };
    for line in out.lines() {
        if let Some(oid) = line.strip_prefix("# branch.oid ") {
            snap.head = (oid != "(initial)").then(|| oid.to_owned());
        } else if let Some(head) = line.strip_prefix("# branch.head ") {
            snap.branch = (head != "(detached)").then(|| head.to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            snap.dirty = true;
        }
    }
    snap
}

/// Compares `recorded` with `current`; `None` when branch and HEAD are the same (a dirty flag alone is not
/// drift).
pub async fn classify(root: &Path, recorded: &GitSnapshot, current: &GitSnapshot, timeout: Duration) -> Option<Drift> {
    let kind = if recorded.branch != current.branch {
        DriftKind::BranchSwitch
    } else if recorded.head == current.head {
        return None;
    } else {
        match (&recorded.head, &current.head) {
            (Some(old), Some(new)) if is_ancestor(root, old, new, timeout).await => DriftKind::NewCommits,
            (Some(old), Some(new)) if is_ancestor(root, new, old, timeout).await => DriftKind::Reset,
            (None, Some(_)) => DriftKind::NewCommits,
            _ => DriftKind::Rebase,
        }
    };
    Some(Drift { kind, from: recorded.clone(), to: current.clone() })
}

async fn is_ancestor(root: &Path, a: &str, b: &str, timeout: Duration) -> bool {
    matches!(git(root, &["merge-base", "--is-ancestor", a, b], timeout).await, Ok((0, _)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_bound_the_search_for_a_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let allowed = base.join("home");
        let repo = allowed.join("repo");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(repo.join("src")).unwrap();
        std::fs::create_dir_all(allowed.join("plain")).unwrap();
        std::fs::create_dir_all(base.join("outside/.git")).unwrap();
        std::fs::create_dir_all(base.join(".git")).unwrap(); // a repository above the root
        let roots = canonical_roots(&[allowed.clone(), PathBuf::from("relative"), base.join("missing")], None);
        assert_eq!(roots, std::slice::from_ref(&allowed));

        assert_eq!(find_root_within(&repo.join("src"), &roots), Ok(repo.clone()));
        assert_eq!(find_root_within(&repo.join("src/../src"), &roots), Ok(repo.clone()));
        assert_eq!(
            find_root_within(&allowed.join("repo/../../outside"), &roots),
            Err(NoRoot::OutsideRoots(base.join("outside"))),
            "`..` out of the root"
        );
        std::os::unix::fs::symlink(base.join("outside"), allowed.join("link")).unwrap();
        assert_eq!(find_root_within(&allowed.join("link"), &roots), Err(NoRoot::OutsideRoots(base.join("outside"))));
        assert_eq!(
            find_root_within(&allowed.join("plain"), &roots),
            Err(NoRoot::NotARepository(allowed.join("plain"))),
            "the repository above the root is not used"
        );
        assert_eq!(find_root_within(&allowed.join("nope"), &roots), Err(NoRoot::Unresolvable));
        assert!(find_root_within(&repo, &[]).is_err(), "no roots, no git");
        // A sibling whose name starts like the root is not under it.
        std::fs::create_dir_all(base.join("home2/r/.git")).unwrap();
        assert!(matches!(find_root_within(&base.join("home2/r"), &roots), Err(NoRoot::OutsideRoots(_))));
        let home = canonical_roots(&[PathBuf::from("~/repo")], Some(&allowed));
        assert_eq!(home, [repo]);
    }

    #[test]
    fn parses_porcelain_v2() {
        let out = "# branch.oid 1234567890abcdef\n# branch.head feature/x\n1 .M N... 100644 100644 100644 a b f.rs\n";
        let s = parse_status(out);
        assert_eq!(s.branch.as_deref(), Some("feature/x"));
        assert_eq!(s.label(), "feature/x@1234567");
        assert!(s.dirty);
        let s = parse_status("# branch.oid (initial)\n# branch.head (detached)\n");
        assert_eq!(s, GitSnapshot { branch: None, head: None, dirty: false });
    }
}
