//! Branch and HEAD of a working tree read in-process from its git directory, without running git:
//! `.git` as a directory or as a `gitdir: <path>` file (linked worktrees, submodules), `commondir`, `HEAD`,
//! loose refs and `packed-refs`.
//!
//! Invariants:
//! - Only small files are read (`HEAD`, a ref, a `.git` file: at most [`MAX_SMALL`] bytes each;
//!   `packed-refs` line by line); nothing is written, locked or executed.
//! - A ref name taken from a file is followed only when it is a plain relative path under `refs/` (no `..`,
//!   no empty or dot component), and symbolic refs are followed at most [`MAX_DEPTH`] times, so a crafted
//!   repository cannot make the reader leave its git directories or loop.
//! - Whatever this reader does not understand (a reftable repository, a malformed file) is
//!   [`Unsupported`], never a guess: the caller falls back to running git.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Longest `HEAD`, loose ref or `.git` file read.
const MAX_SMALL: u64 = 4096;
/// Symbolic refs followed at most.
const MAX_DEPTH: usize = 5;

/// What `HEAD` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The branch HEAD is on (`refs/heads/` stripped); `None` when detached.
    pub branch: Option<String>,
    /// The commit HEAD resolves to; `None` on an unborn branch.
    pub oid: Option<String>,
}

/// The repository uses something this reader does not read; run git instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

/// The per-worktree git directory and the common one (equal outside linked worktrees).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitDirs {
    pub git_dir: PathBuf,
    pub common_dir: PathBuf,
}

/// Finds the git directories of the working tree rooted at `root` (the directory holding `.git`).
pub fn dirs(root: &Path) -> Result<GitDirs, Unsupported> {
    let dot_git = root.join(".git");
    let meta = std::fs::metadata(&dot_git).map_err(|e| Unsupported(format!("{}: {e}", dot_git.display())))?;
    let git_dir = if meta.is_dir() {
        dot_git
    } else {
        let text = read_small(&dot_git)?;
        let target = text
            .strip_prefix("gitdir:")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Unsupported(format!("{}: no gitdir line", dot_git.display())))?;
        root.join(target)
    };
    let common_dir = match read_small(&git_dir.join("commondir")) {
        Ok(text) if !text.trim().is_empty() => git_dir.join(text.trim()),
        _ => git_dir.clone(),
    };
    if common_dir.join("reftable").is_dir() {
        return Err(Unsupported("reftable ref storage".into()));
    }
    Ok(GitDirs { git_dir, common_dir })
}

/// Reads branch and HEAD of the working tree rooted at `root`.
pub fn read_head(root: &Path) -> Result<Head, Unsupported> {
    let dirs = dirs(root)?;
    let head = read_small(&dirs.git_dir.join("HEAD"))?;
    let head = head.trim();
    if let Some(target) = head.strip_prefix("ref:") {
        let target = target.trim();
        if target == "refs/heads/.invalid" {
            return Err(Unsupported("HEAD is a reftable placeholder".into()));
        }
        let branch = Some(target.strip_prefix("refs/heads/").unwrap_or(target).to_owned());
        return Ok(Head { branch, oid: resolve(&dirs, target, 0)? });
    }
    if is_oid(head) {
        return Ok(Head { branch: None, oid: Some(head.to_owned()) });
    }
    Err(Unsupported(format!("HEAD of {} does not parse", root.display())))
}

/// The commit `name` resolves to (`None`: the ref does not exist, an unborn branch).
fn resolve(dirs: &GitDirs, name: &str, depth: usize) -> Result<Option<String>, Unsupported> {
    if depth >= MAX_DEPTH {
        return Err(Unsupported(format!("symbolic ref chain too deep at {name}")));
    }
    if !is_safe_ref(name) {
        return Err(Unsupported(format!("ref name {name:?} not followed")));
    }
    // Per-worktree refs live in the worktree's git directory, every other ref in the common one.
    let per_worktree = ["refs/bisect/", "refs/worktree/", "refs/rewritten/"].iter().any(|p| name.starts_with(p));
    let base = if per_worktree { &dirs.git_dir } else { &dirs.common_dir };
    match read_small(&base.join(name)) {
        Ok(text) => {
            let text = text.trim();
            if let Some(next) = text.strip_prefix("ref:") {
                return resolve(dirs, next.trim(), depth + 1);
            }
            if is_oid(text) {
                return Ok(Some(text.to_owned()));
            }
            Err(Unsupported(format!("ref {name} does not parse")))
        }
        Err(_) if !base.join(name).exists() => packed(&dirs.common_dir, name),
        Err(e) => Err(e),
    }
}

/// `name` in `packed-refs` (`<oid> <name>` lines; `#` header and `^` peeled lines skipped).
fn packed(common: &Path, name: &str) -> Result<Option<String>, Unsupported> {
    let path = common.join("packed-refs");
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Unsupported(format!("{}: {e}", path.display()))),
    };
    for line in BufReader::new(file).split(b'\n') {
        let line = line.map_err(|e| Unsupported(format!("{}: {e}", path.display())))?;
        let Ok(line) = std::str::from_utf8(&line) else { continue };
        let Some((oid, refname)) = line.trim_end().split_once(' ') else { continue };
        if refname == name && is_oid(oid) {
            return Ok(Some(oid.to_owned()));
        }
    }
    Ok(None)
}

/// A SHA-1 or SHA-256 object id in lowercase hex.
fn is_oid(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A ref name safe to join to a git directory: `refs/…`, relative, no empty, `.` or `..` component.
fn is_safe_ref(name: &str) -> bool {
    name.starts_with("refs/")
        && !name.contains('\\')
        && !name.contains('\0')
        && name.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

fn read_small(path: &Path) -> Result<String, Unsupported> {
    let file = std::fs::File::open(path).map_err(|e| Unsupported(format!("{}: {e}", path.display())))?;
    let mut text = String::new();
    file.take(MAX_SMALL).read_to_string(&mut text).map_err(|e| Unsupported(format!("{}: {e}", path.display())))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_loose_packed_detached_unborn_and_linked_worktrees() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("r");
        let git = root.join(".git");
        write(&git.join("HEAD"), "ref: refs/heads/main\n");
        write(&git.join("refs/heads/main"), &format!("{A}\n"));
        assert_eq!(read_head(&root).unwrap(), Head { branch: Some("main".into()), oid: Some(A.into()) });
        // Packed only, with the header and a peeled line.
        std::fs::remove_file(git.join("refs/heads/main")).unwrap();
        write(
            &git.join("packed-refs"),
            &format!("# pack-refs with: peeled\n{B} refs/tags/v1\n^{A}\n{B} refs/heads/main\n"),
        );
        assert_eq!(read_head(&root).unwrap().oid.as_deref(), Some(B));
        // A symbolic ref to a symbolic ref; an unborn branch.
        write(&git.join("HEAD"), "ref: refs/heads/alias\n");
        write(&git.join("refs/heads/alias"), "ref: refs/heads/main\n");
        assert_eq!(read_head(&root).unwrap(), Head { branch: Some("alias".into()), oid: Some(B.into()) });
        write(&git.join("HEAD"), "ref: refs/heads/new\n");
        assert_eq!(read_head(&root).unwrap(), Head { branch: Some("new".into()), oid: None });
        write(&git.join("HEAD"), &format!("{A}\n"));
        assert_eq!(read_head(&root).unwrap(), Head { branch: None, oid: Some(A.into()) });

        // A linked worktree: `.git` file, own HEAD, branch refs in the common directory.
        let wt = tmp.path().join("wt");
        write(&wt.join(".git"), &format!("gitdir: {}\n", git.join("worktrees/wt").display()));
        write(&git.join("worktrees/wt/HEAD"), "ref: refs/heads/feature\n");
        write(&git.join("worktrees/wt/commondir"), "../..\n");
        write(&git.join("refs/heads/feature"), &format!("{B}\n"));
        assert_eq!(read_head(&wt).unwrap(), Head { branch: Some("feature".into()), oid: Some(B.into()) });
        // A submodule: a relative `gitdir:` and no commondir.
        let sub = root.join("sub");
        write(&sub.join(".git"), "gitdir: ../.git/modules/sub\n");
        write(&git.join("modules/sub/HEAD"), &format!("{A}\n"));
        assert_eq!(read_head(&sub).unwrap(), Head { branch: None, oid: Some(A.into()) });
    }

    #[test]
    fn what_it_does_not_understand_is_unsupported() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("r");
        let git = root.join(".git");
        write(&git.join("HEAD"), "garbage\n");
        assert!(read_head(&root).is_err());
        write(&git.join("HEAD"), "ref: refs/heads/../../../../etc/passwd\n");
        assert!(read_head(&root).is_err(), "no escape from the git directory");
        write(&git.join("HEAD"), "ref: refs/heads/a\n");
        write(&git.join("refs/heads/a"), "ref: refs/heads/a\n");
        assert!(read_head(&root).is_err(), "a loop ends");
        write(&git.join("HEAD"), "ref: refs/heads/.invalid\n");
        std::fs::create_dir_all(git.join("reftable")).unwrap();
        assert!(read_head(&root).is_err(), "reftable falls back to git");
        assert!(read_head(&tmp.path().join("none")).is_err());
        write(&tmp.path().join("f/.git"), "not a gitdir line");
        assert!(read_head(&tmp.path().join("f")).is_err());
    }
}
