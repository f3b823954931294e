//! Layered project state with a real git repository: bootstrap, flush per turn, roll-ups, restarts.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use bridge_journal::JournalOptions;
use bridge_journal::git::{self, GitSnapshot};
use bridge_journal::project::{ProjectDir, SessionState, read_short_term};
use bridge_journal::tasks::TaskStatus;
use bridge_journal::turn::Writer;

use crate::support::{assistant, commit, git as run_git, plan_call, repo, turn, user};

async fn snap(root: &Path) -> GitSnapshot {
    git::snapshot(root, Duration::from_secs(5)).await.unwrap()
}

fn session_files(data: &Path, root: &Path) -> Vec<(std::path::PathBuf, SessionState)> {
    ProjectDir::new(data, root).short_term_files()
}

#[tokio::test]
async fn bootstrap_flush_rollups_and_restart() {
    let (_tmp, root) = repo();
    let data = tempfile::tempdir().unwrap();
    let s = snap(&root).await;
    let g = || Some((root.clone(), s.clone()));
    let mut writer = Writer::new(data.path(), &JournalOptions::default());

    // Session A: two turns, a plan with two open steps. One short-term file, flushed after each turn.
    let mut input = vec![user("start the work")];
    writer.apply(turn("ses_A", &input, vec![assistant("ok")], g())).unwrap();
    assert_eq!(session_files(data.path(), &root)[0].1.turns.len(), 1);
    input.extend([assistant("ok"), user("make a plan")]);
    let plan = plan_call("todowrite", &[("Write parser", "in_progress"), ("Write tests", "pending")]);
    writer.apply(turn("ses_A", &input, vec![plan.clone()], g())).unwrap();
    let files = session_files(data.path(), &root);
    assert_eq!(files.len(), 1);
    let a = &files[0].1;
    assert_eq!(a.turns.len(), 2);
    assert_eq!(a.pending_actions, ["Write parser", "Write tests"]);
    assert_eq!(a.branch.as_deref(), Some("main"));
    let name = files[0].0.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with("_main.jsonl"), "{name}");
    let dir = ProjectDir::new(data.path(), &root);
    assert_eq!(dir.load().unwrap().tasks.tasks.len(), 2);
    assert!(dir.load().unwrap().rollups.is_empty());

    // Restart: a new writer continues session A's file.
    let mut writer = Writer::new(data.path(), &JournalOptions::default());
    input.extend([plan, serde_json::json!({"type": "function_call_output", "call_id": "call_1", "output": "ok"})]);
    let done = plan_call("todowrite", &[("Write parser", "completed"), ("Write tests", "in_progress")]);
    writer.apply(turn("ses_A", &input, vec![done], g())).unwrap();
    let files = session_files(data.path(), &root);
    assert_eq!(files.len(), 1, "same file after the restart");
    assert_eq!(files[0].1.turns.len(), 3);
    // Roll-up on task completion: milestone tied to HEAD, task completed with the commit as evidence.
    let state = dir.load().unwrap();
    assert_eq!(state.rollups.len(), 1);
    assert_eq!(state.rollups[0].reason, "tasks-completed");
    assert_eq!(state.rollups[0].turns, 3);
    assert_eq!(state.milestones[0].title, "Write parser");
    assert_eq!(state.milestones[0].commit, s.head);
    let t1 = state.tasks.get("t1").unwrap();
    assert_eq!(t1.status, TaskStatus::Completed);
    assert_eq!(t1.evidence, [s.head.clone().unwrap()]);
    assert_eq!(files[0].1.rolled_up_turns, 3);

    // Roll-up on a new commit.
    let head2 = commit(&root, "b.txt", "two");
    let s2 = snap(&root).await;
    assert_eq!(s2.head.as_deref(), Some(head2.as_str()));
    input.push(user("next"));
    writer.apply(turn("ses_A", &input, vec![assistant("ok")], Some((root.clone(), s2.clone())))).unwrap();
    let state = dir.load().unwrap();
    assert_eq!(state.rollups.last().unwrap().reason, "new-commit");
    assert_eq!(state.rollups.last().unwrap().turns, 1);
    assert_eq!(state.last_git(), Some(&s2));
    assert_eq!(state.checkpoints.len(), 2);

    // Session B on main at the new HEAD bootstraps from A's newest file (same branch and HEAD).
    let mut writer = Writer::new(data.path(), &JournalOptions::default());
    writer.apply(turn("ses_B", &[user("hello")], vec![assistant("hi")], Some((root.clone(), s2.clone())))).unwrap();
    let files = session_files(data.path(), &root);
    let b = files.iter().find(|(_, s)| s.session_id == "ses_B").unwrap();
    assert_eq!(b.1.bootstrapped_from.as_deref(), Some(name.as_str()));
    assert_eq!(b.1.pending_actions, ["Write tests"]);
    assert!(b.1.last_plan.is_some());

    // Session C on another branch starts empty.
    run_git(&root, &["checkout", "-q", "-b", "feature/x"]);
    let s3 = snap(&root).await;
    writer.apply(turn("ses_C", &[user("hello")], vec![assistant("hi")], Some((root.clone(), s3)))).unwrap();
    let files = session_files(data.path(), &root);
    let c = files.iter().find(|(_, s)| s.session_id == "ses_C").unwrap();
    assert!(c.0.to_string_lossy().ends_with("_feature-x.jsonl"));
    assert_eq!(c.1.bootstrapped_from, None);
    assert!(c.1.pending_actions.is_empty());
}

/// The short-term file grows by one small line per turn (it was rewritten whole each turn: O(turns²) bytes
/// per session), reads back the same after a restart, and a torn last line is ignored and cut.
#[tokio::test]
async fn the_short_term_file_grows_by_appending() {
    let (_tmp, root) = repo();
    let data = tempfile::tempdir().unwrap();
    let s = snap(&root).await;
    let mut writer = Writer::new(data.path(), &JournalOptions::default());
    let mut input = Vec::new();
    let (mut sizes, mut rewritten) = (Vec::new(), 0usize);
    let long_term = ProjectDir::new(data.path(), &root).long_term_path();
    let mut inode_at_50 = 0;
    for n in 0..200 {
        if n == 50 {
            inode_at_50 = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&long_term).unwrap());
        }
        input.push(user(&format!("prompt number {n}, with some words to make it a real prompt")));
        let output = if n == 10 { plan_call("update_plan", &[("Step one", "pending")]) } else { assistant("done") };
        writer.apply(turn("ses_long", &input, vec![output.clone()], Some((root.clone(), s.clone())))).unwrap();
        input.push(output);
        let files = session_files(data.path(), &root);
        assert_eq!(files.len(), 1);
        sizes.push(std::fs::metadata(&files[0].0).unwrap().len() as usize);
        // What the former layout wrote for this turn: the whole state, pretty-printed.
        rewritten += serde_json::to_vec_pretty(&files[0].1).unwrap().len();
    }
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&long_term).unwrap());
    assert_eq!(inode, inode_at_50, "turns that change nothing long-term do not rewrite project_state.json");
    let growth: Vec<usize> = sizes.windows(2).map(|w| w[1] - w[0]).collect();
    let (early, late) = (growth[20], growth[198]);
    assert!(late <= early + 16 && late < 1024, "a turn appends a bounded line: turn 22 {early} B, turn 200 {late} B");
    let appended = *sizes.last().unwrap();
    eprintln!("200 turns: {appended} bytes appended; the whole-file rewrite wrote {rewritten} bytes");
    assert!(appended * 20 < rewritten, "{appended} vs {rewritten}");

    // Read back after a restart: every turn, the plan's pending step, and the session continues the file.
    let files = session_files(data.path(), &root);
    let (path, state) = &files[0];
    assert_eq!(state.turns.len(), 200);
    assert_eq!(state.turns[199].prompt, "prompt number 199, with some words to make it a real prompt");
    assert_eq!(state.pending_actions, ["Step one"]);
    assert_eq!(state.last_plan.as_ref().unwrap().items.len(), 1);
    // A crash mid-append leaves a torn line: it is not read, and it is cut before the next append.
    std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(b"{\"kind\":\"turn\",\"tu").unwrap();
    assert_eq!(read_short_term(path).unwrap().turns.len(), 200);
    let mut writer = Writer::new(data.path(), &JournalOptions::default());
    input.push(user("after the restart"));
    writer.apply(turn("ses_long", &input, vec![assistant("ok")], Some((root.clone(), s)))).unwrap();
    let files = session_files(data.path(), &root);
    assert_eq!(files.len(), 1, "the same file continues");
    assert_eq!(files[0].1.turns.len(), 201);
    assert_eq!(files[0].1.turns[200].prompt, "after the restart");
    assert_eq!(files[0].1.pending_actions, ["Step one"], "kept across the restart");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&files[0].0).unwrap().permissions().mode() & 0o777, 0o600);
}

/// A short-term file of the former layout (the whole state as one JSON document) is read, and a session
/// that continues it after an upgrade continues in a `.jsonl` file that replaces it.
#[tokio::test]
async fn a_former_layout_file_is_read_and_continued() {
    let (_tmp, root) = repo();
    let data = tempfile::tempdir().unwrap();
    let s = snap(&root).await;
    let mut writer = Writer::new(data.path(), &JournalOptions::default());
    let input = vec![user("one")];
    writer.apply(turn("ses_old", &input, vec![assistant("a")], Some((root.clone(), s.clone())))).unwrap();
    let (path, state) = session_files(data.path(), &root).remove(0);
    let old = path.with_extension("json");
    std::fs::write(&old, serde_json::to_vec_pretty(&state).unwrap()).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(session_files(data.path(), &root)[0].1, state, "the former layout reads as before");

    let mut writer = Writer::new(data.path(), &JournalOptions::default());
    let input = vec![user("one"), assistant("a"), user("two")];
    writer.apply(turn("ses_old", &input, vec![assistant("b")], Some((root.clone(), s)))).unwrap();
    let files = session_files(data.path(), &root);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].0, path, "continued as .jsonl with the same stamp");
    assert_eq!(files[0].1.turns.len(), 2);
    assert!(!old.exists());
}
