//! Real git repositories for tests: commands run with a fixed identity, and fail the test when git does.

use std::path::Path;
use std::process::Command;

/// Runs git in `dir` and returns its trimmed stdout; a failing command fails the test with git's stderr.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t.invalid")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Writes `text` to `file` under `root` and commits it (message `text`); returns the new HEAD.
pub fn commit(root: &Path, file: &str, text: &str) -> String {
    std::fs::write(root.join(file), text).unwrap();
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", text]);
    git(root, &["rev-parse", "HEAD"])
}

/// `git init` on branch `main` at `root` (created if missing) with one commit of `a.txt`.
pub fn init(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    git(root, &["init", "-q", "-b", "main"]);
    commit(root, "a.txt", "one");
}
