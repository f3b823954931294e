//! `history.jsonl`: one `{session_id, ts, text}` line per user prompt, shared by every bridge process and
//! the CLI (codex-wire.md §11.2).
//!
//! Invariants:
//! - The file is mode 0600 and every append happens under an exclusive advisory lock on the file.
//! - With `max_bytes` set (non-zero), after every append the file is at most `max_bytes` long (unless the
//!   newest line alone is longer): when it grows past the cap the oldest whole lines are dropped until it
//!   is at most 80% of the cap (never dropping the newest line), in an atomic rewrite (temporary file +
//!   rename) done while the lock is held.
//! - A writer or reader that waited for the lock re-checks that the path still names the file it locked (a trim
//!   replaces the file), so no line goes into an unlinked file.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::JournalError;
use crate::fsutil::{append_durably, open_append, repair_tail, restrict, write_atomic};

/// One prompt, as Codex writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub session_id: String,
    /// Unix seconds.
    pub ts: i64,
    pub text: String,
}

/// The share of the cap a trim shrinks the file to (Codex's `HISTORY_SOFT_CAP_RATIO`).
const SOFT_CAP_PERCENT: u64 = 80;
/// How often a writer re-opens after finding the file replaced under it before giving up.
const MAX_REOPENS: usize = 64;

/// `history.jsonl` in a data directory.
#[derive(Debug, Clone)]
pub struct History {
    path: PathBuf,
    max_bytes: Option<u64>,
}

impl History {
    /// The history file of `data_dir`; `max_bytes` of `None` or 0 disables trimming.
    pub fn new(data_dir: &Path, max_bytes: Option<u64>) -> Self {
        Self { path: data_dir.join("history.jsonl"), max_bytes: max_bytes.filter(|m| *m > 0) }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry under the exclusive lock, then enforces `max_bytes`.
    pub fn append(&self, entry: &HistoryEntry) -> Result<(), JournalError> {
        let mut line = serde_json::to_string(entry).map_err(JournalError::Json)?;
        line.push('\n');
        for _ in 0..MAX_REOPENS {
            let mut file = open_append(&self.path)?;
            file.lock().map_err(|e| JournalError::io(&self.path, e))?;
            if !self.still_current(&file)? {
                continue;
            }
            restrict(&self.path)?;
            repair_tail(&mut file, &self.path)?;
            append_durably(&mut file, &self.path, line.as_bytes())?;
            return self.enforce_limit(&mut file);
        }
        Err(JournalError::Busy(self.path.clone()))
    }

    /// Whether the path still names the locked file (a trim may have replaced it while we waited).
    fn still_current(&self, file: &std::fs::File) -> Result<bool, JournalError> {
        let locked = file.metadata().map_err(|e| JournalError::io(&self.path, e))?;
        let current = std::fs::metadata(&self.path).ok();
        Ok(current.is_some_and(|m| m.ino() == locked.ino() && m.dev() == locked.dev()))
    }

    /// Drops the oldest lines when the file is over the cap (the caller holds the lock).
    fn enforce_limit(&self, file: &mut std::fs::File) -> Result<(), JournalError> {
        let Some(max) = self.max_bytes else { return Ok(()) };
        let len = file.metadata().map_err(|e| JournalError::io(&self.path, e))?.len();
        if len <= max {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(len as usize);
        std::fs::File::open(&self.path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| JournalError::io(&self.path, e))?;
        let keep_from = trim_start(&bytes, max);
        write_atomic(&self.path, bytes.get(keep_from..).unwrap_or_default())
    }

    /// Every entry that parses, oldest first, read under a shared lock; the second value counts lines
    /// that did not parse.
    pub fn read(&self) -> Result<(Vec<HistoryEntry>, usize), JournalError> {
        let mut file = None;
        for _ in 0..MAX_REOPENS {
            let f = match std::fs::File::open(&self.path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
                Err(e) => return Err(JournalError::io(&self.path, e)),
            };
            f.lock_shared().map_err(|e| JournalError::io(&self.path, e))?;
            if self.still_current(&f)? {
                file = Some(f);
                break;
            }
        }
        let mut file = file.ok_or_else(|| JournalError::Busy(self.path.clone()))?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(|e| JournalError::io(&self.path, e))?;
        let mut bad = 0;
        let entries = text
            .lines()
            .filter_map(|l| {
                let parsed = serde_json::from_str::<HistoryEntry>(l).ok();
                bad += usize::from(parsed.is_none());
                parsed
            })
            .collect();
        Ok((entries, bad))
    }
}

/// Where the kept tail starts: drop whole lines from the front until at most
/// `max(max * 80%, newest line)` bytes remain.
fn trim_start(bytes: &[u8], max: u64) -> usize {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let newest_start = body.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let newest_len = (bytes.len() - newest_start) as u64;
    let target = (max * SOFT_CAP_PERCENT / 100).max(newest_len);
    let mut start = 0usize;
    while (bytes.len() - start) as u64 > target {
        match bytes.get(start..).and_then(|rest| rest.iter().position(|b| *b == b'\n')) {
            Some(p) if start + p < newest_start => start += p + 1,
            _ => break,
        }
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_keeps_newest_and_lands_under_soft_cap() {
        let text = b"aaaa\nbbbb\ncccc\ndddd\n";
        let start = trim_start(text, 12);
        assert_eq!(&text[start..], b"dddd\n");
        assert_eq!(trim_start(text, 100), 0);
        let long = b"a\nbbbbbbbbbbbbbbbbbbbb\n";
        assert_eq!(&long[trim_start(long, 10)..], b"bbbbbbbbbbbbbbbbbbbb\n");
    }
}
