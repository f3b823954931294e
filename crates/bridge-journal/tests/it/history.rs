//! `history.jsonl`: concurrent writers, the byte cap, 0600, and SIGKILL in the middle of appends.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use bridge_journal::history::{History, HistoryEntry};

fn entry(writer: usize, n: usize) -> HistoryEntry {
    HistoryEntry {
        session_id: format!("s{writer}"),
        ts: n as i64,
        text: format!("prompt {n} from writer {writer} {}", "x".repeat(n % 50)),
    }
}

#[test]
fn eight_concurrent_writers_leave_8000_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let threads: Vec<_> = (0..8)
        .map(|w| {
            let history = History::new(dir.path(), None);
            std::thread::spawn(move || {
                for n in 0..1000 {
                    history.append(&entry(w, n)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let history = History::new(dir.path(), None);
    let (entries, bad) = history.read().unwrap();
    assert_eq!(bad, 0);
    assert_eq!(entries.len(), 8000);
    for w in 0..8 {
        let mine: Vec<i64> = entries.iter().filter(|e| e.session_id == format!("s{w}")).map(|e| e.ts).collect();
        assert_eq!(mine, (0..1000).collect::<Vec<i64>>(), "writer {w} lines in order and complete");
    }
    let mode = std::fs::metadata(history.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn small_cap_holds_after_every_append_and_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let max = 2_000u64;
    let history = History::new(dir.path(), Some(max));
    for n in 0..500 {
        history.append(&entry(0, n)).unwrap();
        let len = std::fs::metadata(history.path()).unwrap().len();
        assert!(len <= max, "after append {n} the file is {len} bytes");
        let (entries, bad) = history.read().unwrap();
        assert_eq!(bad, 0);
        assert_eq!(entries.last().unwrap().ts, n as i64, "newest line kept");
        let ts: Vec<i64> = entries.iter().map(|e| e.ts).collect();
        assert_eq!(ts, (ts[0]..=n as i64).collect::<Vec<_>>(), "a contiguous run of the newest lines");
    }
}

#[test]
fn concurrent_writers_with_a_cap_stay_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let max = 4_096u64;
    let threads: Vec<_> = (0..4)
        .map(|w| {
            let history = History::new(dir.path(), Some(max));
            std::thread::spawn(move || {
                for n in 0..300 {
                    history.append(&entry(w, n)).unwrap();
                    // Read under the shared lock: a reader never sees the file between an append and its trim.
                    let (entries, bad) = history.read().unwrap();
                    let bytes: usize = entries.iter().map(|e| serde_json::to_string(e).unwrap().len() + 1).sum();
                    assert!(bad == 0 && bytes as u64 <= max, "{bytes} bytes, {bad} bad lines");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (entries, bad) = History::new(dir.path(), None).read().unwrap();
    assert_eq!(bad, 0);
    assert!(entries.iter().any(|e| e.ts == 299));
}

/// Child mode: append forever to the history in `JOURNAL_KILL_DIR` (run by the SIGKILL test).
#[test]
fn append_loop_child() {
    let Ok(dir) = std::env::var("JOURNAL_KILL_DIR") else { return };
    let history = History::new(std::path::Path::new(&dir), Some(64 * 1024));
    for n in 0.. {
        history.append(&entry(std::process::id() as usize, n)).unwrap();
    }
}

#[test]
fn sigkill_during_appends_never_leaves_a_broken_line() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    for round in 0..15u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "history::append_loop_child", "--nocapture", "--test-threads=1"])
            .env("JOURNAL_KILL_DIR", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(40 + round * 7));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let (entries, bad) = History::new(dir.path(), None).read().unwrap();
        assert_eq!(bad, 0, "round {round}: a line failed to parse after SIGKILL");
        let text = std::fs::read_to_string(dir.path().join("history.jsonl")).unwrap_or_default();
        assert!(text.is_empty() || text.ends_with('\n'), "round {round}: torn last line");
        assert!(!entries.is_empty() || round == 0);
    }
    let (entries, _) = History::new(dir.path(), None).read().unwrap();
    assert!(entries.len() > 15, "the children appended");
}

/// No entry can take more than an eighth of the cap: prompts far larger than the cap keep the file under
/// it and leave room for the prompts before them.
#[test]
fn entries_larger_than_the_cap_are_cut_and_the_cap_holds() {
    let dir = tempfile::tempdir().unwrap();
    let max = 64 * 1024u64;
    let history = History::new(dir.path(), Some(max));
    for n in 0..20 {
        history.append(&entry(0, n)).unwrap();
    }
    for n in 20..23 {
        let text = format!("{n} {}", "big\n".repeat(100_000));
        history.append(&HistoryEntry { session_id: "s0".into(), ts: n, text }).unwrap();
        let len = std::fs::metadata(history.path()).unwrap().len();
        assert!(len <= max, "after a 400 KB prompt the file is {len} bytes");
    }
    let (entries, bad) = history.read().unwrap();
    assert_eq!(bad, 0);
    assert_eq!(entries.iter().map(|e| e.ts).collect::<Vec<_>>(), (0..23).collect::<Vec<_>>(), "nothing dropped");
    let big = entries.last().unwrap();
    assert!(big.text.starts_with("22 big\n") && big.text.ends_with("…[codex-bridge: cut from 400003 bytes]"));
    let line = serde_json::to_string(big).unwrap().len() as u64 + 1;
    assert!(line <= max / 8, "{line} bytes");
}
