//! Git facts about a project: its root, a snapshot (branch, HEAD, dirty) and the kind of drift between a
//! recorded snapshot and the current one.
//!
//! Invariants:
//! - A snapshot is one `git status --porcelain=v2 --branch --untracked-files=no` call; every call runs with
//!   a timeout and its process is killed when the timeout fires.
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
/// nearest ancestor (or itself) holding `.git`.
pub fn find_root(cwd: &Path) -> Option<PathBuf> {
    let cwd = cwd.canonicalize().ok()?;
    cwd.ancestors().find(|dir| dir.join(".git").exists()).map(Path::to_path_buf)
}

/// Runs `git -C root args…` with a timeout; returns the exit code and stdout.
async fn git(root: &Path, args: &[&str], timeout: Duration) -> Result<(i32, String), JournalError> {
    let child = tokio::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .env("GIT_OPTIONAL_LOCKS", "0")
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
