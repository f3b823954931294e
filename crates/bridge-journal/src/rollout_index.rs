//! The writer's index of rollout files by thread id, kept compact because it holds every session the data
//! directory has ever seen.
//!
//! A rollout in the usual layout, `<data>/sessions/YYYY/MM/DD/rollout-<stamp>-<thread>.jsonl`, is fully
//! described by its thread id (a UUID, 16 bytes) and its 19-byte stamp (the date directories are the stamp's
//! first ten characters), so such an entry costs about 40 bytes and no heap allocation. A file that does
//! not follow the layout exactly (renamed or moved by hand, an upper-case id) is kept as its whole path.
//!
//! Invariants: `path` returns exactly the path that was inserted or found on disk for a thread; for a
//! thread with several files on disk the last one in path order (the newest) wins.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::rollout::{all, thread_of};

/// Length of a rollout file stamp, `2026-11-23T06-03-24`.
const STAMP_LEN: usize = 19;

/// Rollout paths by thread id.
#[derive(Debug)]
pub struct RolloutIndex {
    sessions_dir: PathBuf,
    /// Threads whose file follows the layout: the UUID as a number, the file stamp.
    regular: HashMap<u128, [u8; STAMP_LEN]>,
    /// Everything else, by thread id as written in the file name.
    other: HashMap<String, PathBuf>,
}

impl RolloutIndex {
    /// The index of every rollout under `<data_dir>/sessions` (one directory walk).
    pub fn scan(data_dir: &Path) -> Self {
        let mut index =
            Self { sessions_dir: data_dir.join("sessions"), regular: HashMap::new(), other: HashMap::new() };
        for path in all(data_dir) {
            if let Some(thread) = thread_of(&path).map(str::to_owned) {
                index.insert(&thread, path);
            }
        }
        index
    }

    /// The rollout path of `thread`, if known.
    pub fn get(&self, thread: &str) -> Option<PathBuf> {
        if let Some(p) = self.other.get(thread) {
            return Some(p.clone());
        }
        let stamp = self.regular.get(&uuid_number(thread)?)?;
        Some(self.layout_path(thread, std::str::from_utf8(stamp).ok()?))
    }

    /// Records `path` as the rollout of `thread` (replacing an earlier one).
    pub fn insert(&mut self, thread: &str, path: PathBuf) {
        if let Some((n, stamp)) = self.compact(thread, &path) {
            self.other.remove(thread);
            self.regular.insert(n, stamp);
        } else {
            if let Some(n) = uuid_number(thread) {
                self.regular.remove(&n);
            }
            self.other.insert(thread.to_owned(), path);
        }
    }

    /// Number of threads indexed.
    pub fn len(&self) -> usize {
        self.regular.len() + self.other.len()
    }

    /// True when no thread is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The compact form of `(thread, path)`, when `path` is exactly what the layout gives for it.
    fn compact(&self, thread: &str, path: &Path) -> Option<(u128, [u8; STAMP_LEN])> {
        let n = uuid_number(thread)?;
        let name = path.file_name()?.to_str()?;
        let stamp = name.strip_prefix("rollout-")?.get(..STAMP_LEN).filter(|s| s.is_ascii())?;
        let packed: [u8; STAMP_LEN] = stamp.as_bytes().try_into().ok()?;
        (self.layout_path(thread, stamp) == path).then_some((n, packed))
    }

    fn layout_path(&self, thread: &str, stamp: &str) -> PathBuf {
        let (year, month, day) = (&stamp[..4], &stamp[5..7], &stamp[8..10]);
        self.sessions_dir.join(year).join(month).join(day).join(format!("rollout-{stamp}-{thread}.jsonl"))
    }
}

/// A lower-case hyphenated UUID as a number; `None` for anything else (so that formatting the number back
/// would give the same text).
fn uuid_number(thread: &str) -> Option<u128> {
    let bytes = thread.as_bytes();
    if bytes.len() != 36 || [8, 13, 18, 23].iter().any(|&i| bytes[i] != b'-') {
        return None;
    }
    let mut n: u128 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if [8, 13, 18, 23].contains(&i) {
            continue;
        }
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        n = (n << 4) | u128::from(digit);
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREAD: &str = "0199a213-81c0-7800-8aa1-bbab2a035a53";

    fn empty(dir: &Path) -> RolloutIndex {
        RolloutIndex { sessions_dir: dir.join("sessions"), regular: HashMap::new(), other: HashMap::new() }
    }

    #[test]
    fn layout_paths_are_stored_compactly_and_given_back_exactly() {
        let dir = Path::new("/data");
        let mut index = empty(dir);
        let path = dir.join(format!("sessions/2026/11/23/rollout-2026-11-23T06-03-24-{THREAD}.jsonl"));
        index.insert(THREAD, path.clone());
        assert_eq!((index.regular.len(), index.other.len()), (1, 0));
        assert_eq!(index.get(THREAD), Some(path));
        assert_eq!(index.get("0199a213-81c0-7800-8aa1-bbab2a035a54"), None);
    }

    #[test]
    fn other_paths_and_ids_are_kept_whole() {
        let dir = Path::new("/data");
        let mut index = empty(dir);
        let moved = dir.join(format!("sessions/2026/11/24/rollout-2026-11-23T06-03-24-{THREAD}.jsonl"));
        index.insert(THREAD, moved.clone());
        let upper = THREAD.to_ascii_uppercase();
        let upper_path = dir.join(format!("sessions/2026/11/23/rollout-2026-11-23T06-03-24-{upper}.jsonl"));
        index.insert(&upper, upper_path.clone());
        assert_eq!((index.regular.len(), index.other.len()), (0, 2));
        assert_eq!(index.get(THREAD), Some(moved));
        assert_eq!(index.get(&upper), Some(upper_path));
        // A later regular file for the same thread replaces the odd one.
        let regular = dir.join(format!("sessions/2026/11/25/rollout-2026-11-25T00-00-00-{THREAD}.jsonl"));
        index.insert(THREAD, regular.clone());
        assert_eq!(index.get(THREAD), Some(regular));
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn scan_keeps_the_newest_file_of_a_thread() {
        let tmp = tempfile::tempdir().unwrap();
        let older = tmp.path().join(format!("sessions/2026/11/22/rollout-2026-11-22T01-00-00-{THREAD}.jsonl"));
        let newer = tmp.path().join(format!("sessions/2026/11/23/rollout-2026-11-23T01-00-00-{THREAD}.jsonl"));
        for p in [&older, &newer] {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        let index = RolloutIndex::scan(tmp.path());
        assert_eq!(index.get(THREAD), Some(newer));
        assert_eq!(index.len(), 1);
    }
}
