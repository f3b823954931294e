//! `history.jsonl`: one `{session_id, ts, text}` line per user prompt, shared by every bridge process and
//! the CLI (codex-wire.md §11.2).
//!
//! Invariants:
//! - The file is mode 0600 and every append happens under an exclusive advisory lock on the file.
//! - With `max_bytes` set (non-zero; [`DEFAULT_MAX_BYTES`] unless configured), no line is longer than an
//!   eighth of the cap: a longer prompt's text is cut at a character boundary and ends in
//!   `…[codex-bridge: cut from N bytes]` (only a cap too small for an entry holding just that marker, under
//!   a few hundred bytes, lets the line be longer). So one huge prompt can neither blow past the cap nor
//!   push every other prompt out.
//! - With `max_bytes` set, after every append the file is at most `max_bytes` long: when it grows past the
//!   cap the oldest whole lines are dropped until it is at most 80% of the cap (never dropping the newest
//!   line), in an atomic rewrite (temporary file + rename) done while the lock is held.
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

/// The `[history] max_bytes` when the configuration does not set one: 10 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// The share of the cap a trim shrinks the file to (Codex's `HISTORY_SOFT_CAP_RATIO`).
const SOFT_CAP_PERCENT: u64 = 80;
/// One line may take at most `1 / ENTRY_SHARE` of the cap (1.25 MiB of the default 10 MiB).
const ENTRY_SHARE: u64 = 8;
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

    /// The longest line an entry may take (newline included); `None` without a cap.
    pub fn max_line_bytes(&self) -> Option<u64> {
        self.max_bytes.map(|max| max / ENTRY_SHARE)
    }

    /// The line `entry` is written as: its text cut to fit [`Self::max_line_bytes`].
    fn line(&self, entry: &HistoryEntry) -> Result<String, JournalError> {
        let empty = HistoryEntry { session_id: entry.session_id.clone(), ts: entry.ts, text: String::new() };
        // The JSON line without text, plus the newline; the text adds its escaped length.
        let overhead = serde_json::to_string(&empty).map_err(JournalError::Json)?.len() + 1;
        let fits = |budget: u64| (overhead + escaped_len(&entry.text)) as u64 <= budget;
        let mut line = match self.max_line_bytes() {
            Some(budget) if !fits(budget) => {
                let marker = format!("…[codex-bridge: cut from {} bytes]", entry.text.len());
                let room = (budget as usize).saturating_sub(overhead + escaped_len(&marker));
                let text = format!("{}{marker}", escaped_prefix(&entry.text, room));
                serde_json::to_string(&HistoryEntry { text, ..empty }).map_err(JournalError::Json)?
            }
            _ => serde_json::to_string(entry).map_err(JournalError::Json)?,
        };
        line.push('\n');
        Ok(line)
    }

    /// Appends one entry under the exclusive lock, then enforces `max_bytes`.
    pub fn append(&self, entry: &HistoryEntry) -> Result<(), JournalError> {
        let line = self.line(entry)?;
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

/// How many bytes a JSON string encoder (serde_json) writes for `c`, quotes excluded.
fn escaped_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// The length of `text` as a JSON string, quotes excluded.
fn escaped_len(text: &str) -> usize {
    text.chars().map(escaped_char_len).sum()
}

/// The longest prefix of `text` whose JSON-escaped form takes at most `room` bytes.
fn escaped_prefix(text: &str, room: usize) -> &str {
    let mut used = 0;
    for (at, c) in text.char_indices() {
        used += escaped_char_len(c);
        if used > room {
            return text.get(..at).unwrap_or_default();
        }
    }
    text
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

    #[test]
    fn escaped_lengths_match_serde_json() {
        for text in ["plain", "quote \" back \\ nl \n tab \t", "\u{1} \u{1f} \u{7f} é 🦀", "\u{8}\u{c}\r"] {
            assert_eq!(escaped_len(text) + 2, serde_json::to_string(text).unwrap().len(), "{text:?}");
        }
        assert_eq!(escaped_prefix("ab\ncd", 3), "ab");
        assert_eq!(escaped_prefix("ab\ncd", 4), "ab\n");
        assert_eq!(escaped_prefix("é🦀x", 5), "é");
        assert_eq!(escaped_prefix("abc", 10), "abc");
    }

    #[test]
    fn a_long_entry_is_cut_to_an_eighth_of_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::new(dir.path(), Some(8_000));
        for text in ["x".repeat(5_000), "\n\"\u{1}🦀".repeat(1_000)] {
            let entry = HistoryEntry { session_id: "s".into(), ts: 1, text };
            let line = history.line(&entry).unwrap();
            assert!(line.len() <= 1_000 && line.len() > 950, "{} bytes", line.len());
            let back: HistoryEntry = serde_json::from_str(&line).unwrap();
            assert!(back.text.ends_with(&format!("…[codex-bridge: cut from {} bytes]", entry.text.len())));
            assert!(entry.text.starts_with(back.text.split('…').next().unwrap()));
        }
        let short = HistoryEntry { session_id: "s".into(), ts: 1, text: "short".into() };
        assert_eq!(history.line(&short).unwrap(), format!("{}\n", serde_json::to_string(&short).unwrap()));
        let uncapped = History::new(dir.path(), None);
        let long = HistoryEntry { session_id: "s".into(), ts: 1, text: "x".repeat(5_000) };
        assert!(uncapped.line(&long).unwrap().len() > 5_000, "no cap, no cut");
    }
}
