//! The journal through the bridge, against the emulator and a real git repository: rollouts and history,
//! plan calls into the task graph, drift headers and events, the opt-in tail note, restarts.

use std::path::{Path, PathBuf};

use bridge_journal::project::ProjectDir;
use bridge_journal::rollout::{all, read_lines};
use bridge_journal::tasks::TaskStatus;
use bridge_test_support::git::git;
use serde_json::{Value, json};

use crate::support::{Options, Reply, ScriptedUpstream, TestBridge, client, sse_reply};

/// The journal settings a config file text resolves to.
fn journal_config(file: &str) -> bridge_journal::JournalOptions {
    let settings = bridge_core::Settings {
        upstream_auth: Some(bridge_core::UpstreamAuth::Passthrough),
        ..bridge_core::Settings::default()
    };
    bridge_core::Config::resolve(settings, Some(file), Path::new("t.toml"), PathBuf::from("/d")).unwrap().journal
}

#[test]
fn history_is_capped_unless_the_cap_is_zero() {
    assert_eq!(journal_config("").history_max_bytes, Some(10 * 1024 * 1024), "absent: 10 MiB");
    assert_eq!(journal_config("[history]\n").history_max_bytes, Some(10 * 1024 * 1024));
    assert_eq!(journal_config("[history]\nmax_bytes = 5000\n").history_max_bytes, Some(5000));
    assert_eq!(journal_config("[history]\nmax_bytes = 0\n").history_max_bytes, None, "0 keeps everything");
}

/// Commits `file` (its own name as content and message).
fn commit(root: &Path, file: &str) {
    bridge_test_support::git::commit(root, file, file);
}

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("repo");
    std::fs::create_dir_all(&root).unwrap();
    git(&root, &["init", "-q", "-b", "main"]);
    commit(&root, "a.txt");
    let data = tmp.path().join("data");
    Fixture { _tmp: tmp, root, data }
}

/// A bridge on `data` whose `[journal] project_roots` is `data`'s parent (the fixture's temporary
/// directory: test repositories are under /tmp, not the home directory of the default).
async fn bridge(upstream: &str, data: &Path, file: &str) -> TestBridge {
    bridge_with_roots(upstream, data, &[data.parent().unwrap()], file).await
}

async fn bridge_with_roots(upstream: &str, data: &Path, roots: &[&Path], file: &str) -> TestBridge {
    let roots: Vec<String> = roots.iter().map(|r| toml_string(&r.to_string_lossy())).collect();
    let file = format!("[journal]\ngit_cache_ms = 0\nproject_roots = [{}]\n{file}", roots.join(", "));
    TestBridge::with(upstream, Options { file, data_dir: Some(data.to_owned()), ..Options::default() }).await
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

/// Posts a streaming turn; returns the drift header and the body text.
async fn turn(
    bridge: &TestBridge,
    session: &str,
    cwd: &Path,
    input: &[Value],
    extra: &[(&str, &str)],
) -> (Option<String>, String) {
    let body = json!({"model": "gpt-5.5", "stream": true, "store": false, "prompt_cache_key": session, "input": input});
    let mut req = client()
        .post(bridge.url("/v1/responses"))
        .bearer_auth("sk-test")
        .header("originator", "codex_exec")
        .header("x-codex-bridge-cwd", cwd.to_string_lossy().as_ref())
        .json(&body);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let drift = resp.headers().get("x-codex-bridge-git-drift").map(|v| v.to_str().unwrap().to_owned());
    (drift, resp.text().await.unwrap())
}

async fn settle(bridge: &TestBridge) {
    // The exchange hands its turn to the journal after the client's response has ended: wait for it first.
    bridge.settle().await;
    bridge.state.journal.as_ref().unwrap().flush().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_leaves_a_rollout_history_and_project_state() {
    let fx = fixture();
    let emu = codex_emulator::spawn(codex_emulator::EmulatorConfig::default()).await.unwrap();
    let b = bridge(&format!("{}/v1", emu.base_url()), &fx.data, "").await;
    let mut input = vec![user("Say pong")];
    let (drift, text) = turn(&b, "ses_one", &fx.root, &input, &[]).await;
    assert!(drift.is_none());
    assert!(text.contains("response.completed"));
    settle(&b).await;
    input.extend([
        json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "pong"}]}),
        user("Say pong again"),
    ]);
    turn(&b, "ses_one", &fx.root, &input, &[]).await;
    b.stop().await;

    let files = all(&fx.data);
    assert_eq!(files.len(), 1);
    let lines = read_lines(&files[0]).unwrap();
    assert_eq!(lines.len(), std::fs::read_to_string(&files[0]).unwrap().lines().count(), "every line parses");
    assert_eq!(lines[0]["type"], "session_meta");
    assert_eq!(lines[0]["payload"]["cwd"], fx.root.to_string_lossy().as_ref());
    assert_eq!(lines[0]["payload"]["git"]["branch"], "main");
    assert_eq!(lines[0]["payload"]["originator"], "codex_exec");
    let items: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["type"] == "response_item")
        .map(|l| (l["payload"]["role"].as_str().unwrap(), l["payload"]["content"][0]["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        items,
        [("user", "Say pong"), ("assistant", "pong"), ("user", "Say pong again"), ("assistant", "pong")],
        "each item once"
    );
    assert_eq!(lines.iter().filter(|l| l["payload"]["type"] == "token_count").count(), 2);
    let history = std::fs::read_to_string(fx.data.join("history.jsonl")).unwrap();
    let prompts: Vec<String> = history
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(prompts, ["Say pong", "Say pong again"]);
    let short = ProjectDir::new(&fx.data, &fx.root).short_term_files();
    assert_eq!(short.len(), 1);
    assert_eq!(short[0].1.turns.len(), 2);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_calls_from_both_clients_feed_the_task_graph() {
    let fx = fixture();
    let emu = codex_emulator::spawn(codex_emulator::EmulatorConfig::default()).await.unwrap();
    let b = bridge(&format!("{}/v1", emu.base_url()), &fx.data, "").await;
    let codex = r#"update_plan {"explanation":"start","plan":[{"step":"Parse config","status":"in_progress"},{"step":"Write tests","status":"pending"}]}"#;
    turn(&b, "ses_codex", &fx.root, &[user("plan")], &[("x-emulator-call", codex)]).await;
    let oc = r#"todowrite {"todos":[{"content":"Parse config","status":"completed","priority":"high"},{"content":"Ship it","status":"pending","priority":"low"}]}"#;
    turn(&b, "ses_oc", &fx.root, &[user("plan")], &[("x-emulator-call", oc)]).await;
    settle(&b).await;
    let state = ProjectDir::new(&fx.data, &fx.root).load().unwrap();
    let titles: Vec<(&str, TaskStatus)> = state.tasks.tasks.iter().map(|t| (t.title.as_str(), t.status)).collect();
    assert_eq!(
        titles,
        [
            ("Parse config", TaskStatus::Completed),
            ("Write tests", TaskStatus::Pending),
            ("Ship it", TaskStatus::Pending)
        ]
    );
    let head = git(&fx.root, &["rev-parse", "HEAD"]);
    assert_eq!(state.tasks.get("t1").unwrap().evidence, std::slice::from_ref(&head));
    assert_eq!(state.milestones[0].commit.as_deref(), Some(head.as_str()));
    assert_eq!(state.rollups[0].reason, "tasks-completed");
    b.stop().await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_of_each_kind_gives_header_and_events_and_survives_restart() {
    let fx = fixture();
    let emu = codex_emulator::spawn(codex_emulator::EmulatorConfig::default()).await.unwrap();
    let upstream = format!("{}/v1", emu.base_url());
    let b = bridge(&upstream, &fx.data, "").await;
    let mut kinds = Vec::new();
    assert!(turn(&b, "ses_d", &fx.root, &[user("one")], &[]).await.0.is_none());
    let base = git(&fx.root, &["rev-parse", "HEAD"]);
    commit(&fx.root, "b.txt");
    kinds.push(turn(&b, "ses_d", &fx.root, &[user("two")], &[]).await.0.unwrap());
    git(&fx.root, &["reset", "-q", "--hard", &base]);
    kinds.push(turn(&b, "ses_d", &fx.root, &[user("three")], &[]).await.0.unwrap());
    commit(&fx.root, "c.txt");
    kinds.push(turn(&b, "ses_d", &fx.root, &[user("four")], &[]).await.0.unwrap());
    git(&fx.root, &["commit", "-q", "--amend", "-m", "rewritten"]);
    kinds.push(turn(&b, "ses_d", &fx.root, &[user("five")], &[]).await.0.unwrap());
    b.stop().await;

    // Restart, then a branch switch made while the bridge was down is still seen.
    git(&fx.root, &["checkout", "-q", "-b", "feature"]);
    let b = bridge(&upstream, &fx.data, "").await;
    kinds.push(turn(&b, "ses_d", &fx.root, &[user("six")], &[]).await.0.unwrap());
    let metrics = client().get(b.url("/metrics")).bearer_auth("x").send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("codex_bridge_git_drift_total{kind=\"branch-switch\"} 1"), "{metrics}");
    b.stop().await;

    let prefixes: Vec<&str> = kinds.iter().map(|k| k.split(';').next().unwrap()).collect();
    assert_eq!(prefixes, ["new-commits", "reset", "new-commits", "rebase", "branch-switch"]);
    assert!(kinds[4].contains("from=main@") && kinds[4].contains("to=feature@"), "{}", kinds[4]);
    let dir = ProjectDir::new(&fx.data, &fx.root);
    let events: Vec<String> =
        dir.load().unwrap().drift_events.iter().map(|e| e.drift.kind.as_str().to_owned()).collect();
    assert_eq!(events, prefixes);
    let session_events: usize = dir
        .short_term_files()
        .iter()
        .filter(|(_, s)| s.session_id == "ses_d")
        .map(|(_, s)| s.events.iter().filter(|e| e.kind == "git-drift").count())
        .sum();
    assert_eq!(session_events, 5);
    assert_eq!(all(&fx.data).len(), 1, "the session kept one rollout across the restart");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_opt_in_drift_note_is_appended_after_unchanged_items() {
    let fx = fixture();
    let upstream = ScriptedUpstream::start().await;
    let b = bridge(&upstream.url(), &fx.data, "drift_note = true\n").await;
    upstream.push(Reply::Sse(sse_reply("a", 10, Some(0))));
    upstream.push(Reply::Sse(sse_reply("b", 10, Some(0))));
    let input = vec![
        user("first"),
        json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a"}]}),
        user("second"),
    ];
    turn(&b, "ses_n", &fx.root, &input[..1], &[]).await;
    commit(&fx.root, "b.txt");
    let (drift, _) = turn(&b, "ses_n", &fx.root, &input, &[]).await;
    assert!(drift.unwrap().starts_with("new-commits"));
    b.stop().await;
    let seen = upstream.seen();
    assert!(seen.iter().all(|r| !r.headers.contains_key("x-codex-bridge-cwd")), "the bridge-only header stays local");
    let sent: Value = serde_json::from_slice(&seen[1].body).unwrap();
    let sent_items = sent["input"].as_array().unwrap();
    assert_eq!(sent_items.len(), input.len() + 1);
    let chain = |items: &[Value]| {
        items.iter().fold(blake3::Hash::from([0u8; 32]), |h, item| {
            blake3::hash(&[h.as_bytes().as_slice(), serde_json::to_vec(item).unwrap().as_slice()].concat())
        })
    };
    assert_eq!(chain(&sent_items[..input.len()]), chain(&input), "the chain hash of the earlier items is unchanged");
    let client_raw = serde_json::to_string(&json!({"input": input})).unwrap();
    let raw = String::from_utf8(seen[1].body.to_vec()).unwrap();
    let client_items = &client_raw[client_raw.find('[').unwrap()..client_raw.rfind(']').unwrap()];
    assert!(raw.contains(client_items), "earlier items byte for byte");
    let note = &sent_items[input.len()];
    assert_eq!(note["role"], "developer");
    assert!(note["content"][0]["text"].as_str().unwrap().starts_with("<git_drift>"));
    // Without a drift, nothing is appended.
    assert_eq!(serde_json::from_slice::<Value>(&seen[0].body).unwrap()["input"].as_array().unwrap().len(), 1);
}

#[test]
fn project_roots_default_to_home_and_can_be_set() {
    let home: Vec<PathBuf> = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h != Path::new("/") && !h.as_os_str().is_empty())
        .into_iter()
        .collect();
    assert_eq!(journal_config("").project_roots, home);
    assert_eq!(journal_config("[journal]\nproject_roots = []\n").project_roots, Vec::<PathBuf>::new());
    let set = journal_config("[journal]\nproject_roots = [\"/srv/a\", \"~/code\"]\n").project_roots;
    assert_eq!(set, [PathBuf::from("/srv/a"), PathBuf::from("~/code")]);
}

/// A working directory outside `[journal] project_roots` (named directly, or through `..` from inside a
/// root) runs no git: the turns are journaled without git state and no drift header comes back, however
/// the repository changes.
#[tokio::test(flavor = "multi_thread")]
async fn a_cwd_outside_the_project_roots_runs_no_git() {
    let fx = fixture();
    let allowed = fx.data.parent().unwrap().join("allowed");
    std::fs::create_dir_all(&allowed).unwrap();
    let upstream = ScriptedUpstream::start().await;
    let b = bridge_with_roots(&upstream.url(), &fx.data, &[&allowed], "").await;
    let escape = allowed.join("..").join("repo");
    for (n, cwd) in [&fx.root, &fx.root, &escape, &escape].into_iter().enumerate() {
        upstream.push(Reply::Sse(sse_reply("ok", 10, Some(0))));
        let (drift, _) = turn(&b, "ses_out", cwd, &[user(&format!("turn {n}"))], &[]).await;
        assert!(drift.is_none(), "turn {n} in {}: {drift:?}", cwd.display());
        commit(&fx.root, &format!("f{n}.txt"));
    }
    settle(&b).await;
    b.stop().await;
    let files = all(&fx.data);
    assert_eq!(files.len(), 1, "the session is journaled");
    let lines = read_lines(&files[0]).unwrap();
    assert_eq!(lines.iter().filter(|l| l["payload"]["type"] == "task_started").count(), 4);
    assert!(lines[0]["payload"].get("git").is_none(), "no git state: {}", lines[0]["payload"]);
    assert!(!fx.data.join("projects").exists(), "no project state for a directory outside the roots");
}

/// Session B, naming project Y, never receives project X's branch or commit, and a session naming X for the
/// first time is not compared with what another session recorded there.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_never_receives_another_projects_git_state() {
    let fx = fixture(); // X = fx.root, on main
    git(&fx.root, &["checkout", "-q", "-b", "secret-x"]);
    let y = fx.data.parent().unwrap().join("y");
    std::fs::create_dir_all(&y).unwrap();
    git(&y, &["init", "-q", "-b", "main"]);
    commit(&y, "y.txt");
    let upstream = ScriptedUpstream::start().await;
    let b = bridge(&upstream.url(), &fx.data, "").await;
    let go = async |session: &str, cwd: &Path, text: &str| {
        upstream.push(Reply::Sse(sse_reply("ok", 10, Some(0))));
        turn(&b, session, cwd, &[user(text)], &[]).await.0
    };
    assert!(go("ses_a", &fx.root, "a1").await.is_none());
    commit(&fx.root, "x1.txt");
    let own = go("ses_a", &fx.root, "a2").await.unwrap();
    assert!(own.starts_with("new-commits; from=secret-x@"), "a session is told about its own project: {own}");
    commit(&fx.root, "x2.txt");

    assert!(go("ses_b", &y, "b1").await.is_none(), "a first turn in Y reports nothing");
    commit(&fx.root, "x3.txt");
    commit(&y, "y2.txt");
    let theirs = go("ses_b", &y, "b2").await.unwrap();
    assert!(theirs.starts_with("new-commits; from=main@") && theirs.contains("to=main@"), "{theirs}");
    let x_head = git(&fx.root, &["rev-parse", "HEAD"]);
    assert!(!theirs.contains("secret-x") && !theirs.contains(&x_head[..7]), "{theirs}");
    // Session c names X for the first time: ses_a's recorded state is not its baseline.
    assert!(go("ses_c", &fx.root, "c1").await.is_none());
    settle(&b).await;
    b.stop().await;

    let sessions = |root: &Path| -> Vec<String> {
        let mut ids: Vec<String> =
            ProjectDir::new(&fx.data, root).short_term_files().into_iter().map(|(_, s)| s.session_id).collect();
        ids.sort();
        ids
    };
    let (x, y) = (fx.root.canonicalize().unwrap(), y.canonicalize().unwrap());
    assert_eq!(sessions(&x), ["ses_a", "ses_c"]);
    assert_eq!(sessions(&y), ["ses_b"]);
    let events = ProjectDir::new(&fx.data, &y).load().unwrap().drift_events;
    assert!(events.iter().all(|e| e.drift.from.branch.as_deref() == Some("main")), "{events:?}");
}
