//! Rollout files in the Codex layout: `<data>/sessions/YYYY/MM/DD/rollout-<stamp>-<thread>.jsonl`, one JSON
//! line `{timestamp, ordinal, type, payload}` per record (codex-wire.md §11.1, the 0.169.0 line shape).
//!
//! Invariants:
//! - Every line is written whole: a batch of lines goes out in one append followed by `sync_data`, and a
//!   torn tail from a crash is cut before the next append ([`crate::fsutil`]).
//! - `ordinal` counts lines from 0 and continues across restarts (the file is re-read when reopened).
//! - One thread id maps to one file; reopening finds it again by its name suffix.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::JournalError;
use crate::clock::Utc;
use crate::fsutil::{append_durably, open_append, repair_tail};

/// An open rollout: where it is and what it already holds.
#[derive(Debug, Clone)]
pub struct Rollout {
    path: PathBuf,
    next_ordinal: u64,
    /// Input positions already recorded (response items since the last `compacted`, plus that line's
    /// replacement history).
    pub recorded_items: usize,
    /// `base_instructions.text` of the `session_meta` line, if any.
    pub base_instructions: Option<String>,
    /// The last `token_count` total, to keep totals running across restarts.
    pub total_usage: Option<Value>,
}

impl Rollout {
    /// The path of a new rollout for `thread` started at `at`.
    pub fn path_for(data_dir: &Path, thread: &str, at: &Utc) -> PathBuf {
        data_dir.join("sessions").join(at.date_dirs()).join(format!("rollout-{}-{thread}.jsonl", at.file_stamp()))
    }

    /// Finds the newest rollout of `thread` under `<data>/sessions` (walks the directory: for one-off
    /// lookups; the writer keeps an index instead).
    pub fn find(data_dir: &Path, thread: &str) -> Option<PathBuf> {
        all(data_dir).into_iter().filter(|p| thread_of(p) == Some(thread)).max()
    }

    /// Opens (or creates) the rollout at `path`, repairing a torn tail and reading what it holds.
    pub fn open(path: PathBuf) -> Result<Self, JournalError> {
        let mut file = open_append(&path)?;
        repair_tail(&mut file, &path)?;
        let text = std::fs::read_to_string(&path).map_err(|e| JournalError::io(&path, e))?;
        let mut rollout = Self { path, next_ordinal: 0, recorded_items: 0, base_instructions: None, total_usage: None };
        for line in text.lines() {
            rollout.next_ordinal += 1;
            let Ok(v) = serde_json::from_str::<Value>(line) else { continue };
            let payload = &v["payload"];
            match v["type"].as_str() {
                Some("session_meta") => {
                    rollout.base_instructions =
                        payload.pointer("/base_instructions/text").and_then(Value::as_str).map(str::to_owned);
                }
                Some("response_item") => rollout.recorded_items += 1,
                Some("compacted") => {
                    rollout.recorded_items = payload["replacement_history"].as_array().map_or(0, Vec::len);
                }
                Some("event_msg") if payload["type"] == "token_count" => {
                    rollout.total_usage = payload.pointer("/info/total_token_usage").cloned();
                }
                _ => {}
            }
        }
        Ok(rollout)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether nothing has been written yet (the `session_meta` line is still due).
    pub fn is_empty(&self) -> bool {
        self.next_ordinal == 0
    }

    /// Appends `(type, payload)` records stamped `at`, as one durable write; `size_hint` is the expected size
    /// of the lines (the buffer is reserved once rather than grown by doubling).
    pub fn append<P: serde::Serialize>(
        &mut self,
        records: &[(&str, P)],
        size_hint: usize,
        at: &Utc,
    ) -> Result<(), JournalError> {
        #[derive(serde::Serialize)]
        struct Line<'a, P> {
            timestamp: &'a str,
            ordinal: u64,
            #[serde(rename = "type")]
            kind: &'a str,
            payload: &'a P,
        }
        let mut buf = Vec::with_capacity(size_hint + records.len() * 96);
        let mut ordinal = self.next_ordinal;
        let timestamp = at.iso();
        for (kind, payload) in records {
            let line = Line { timestamp: &timestamp, ordinal, kind, payload };
            serde_json::to_writer(&mut buf, &line).map_err(JournalError::Json)?;
            buf.push(b'\n');
            ordinal += 1;
        }
        let mut file = open_append(&self.path)?;
        append_durably(&mut file, &self.path, &buf)?;
        self.next_ordinal = ordinal;
        Ok(())
    }
}

/// The thread id in a rollout file name `rollout-<stamp>-<thread>.jsonl` (the thread id is a UUID, 36
/// characters).
pub fn thread_of(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?.strip_suffix(".jsonl")?;
    name.len().checked_sub(36).and_then(|start| name.get(start..)).filter(|t| t.as_bytes().get(8) == Some(&b'-'))
}

/// Every rollout file under `<data>/sessions`, in path order (oldest first; for one thread, the last is
/// the newest).
pub fn all(data_dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![data_dir.join("sessions")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("rollout-") && n.ends_with(".jsonl"))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Reads every line of a rollout that parses, in order.
pub fn read_lines(path: &Path) -> Result<Vec<Value>, JournalError> {
    let text = std::fs::read_to_string(path).map_err(|e| JournalError::io(path, e))?;
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}
