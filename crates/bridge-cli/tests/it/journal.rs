//! The journal commands as a user runs them: `serve` against the emulator in a real git repository, then
//! `doctor`, `tasks`, `history` and `sessions digest` as separate processes.

use std::path::Path;

use bridge_test_support::git::git;
use serde_json::{Value, json};

use crate::support::*;

/// Commits `file` (its own name as content and message).
fn commit(root: &Path, file: &str) {
    bridge_test_support::git::commit(root, file, file);
}

/// Runs a command and returns (success, stdout, stderr).
fn cli(home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = run(home, args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn turn(bridge: &str, root: &Path, text: &str, call: Option<&str>) -> Option<String> {
    let body = json!({"model": "gpt-5.5", "stream": true, "store": false, "prompt_cache_key": "ses_cli",
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}]});
    let mut req = reqwest::Client::new()
        .post(format!("{bridge}/v1/responses"))
        .header("authorization", "Bearer sk-test")
        .header("x-codex-bridge-cwd", root.to_str().unwrap())
        .json(&body);
    if let Some(c) = call {
        req = req.header("x-emulator-call", c);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let drift = resp.headers().get("x-codex-bridge-git-drift").map(|v| v.to_str().unwrap().to_owned());
    resp.text().await.unwrap();
    drift
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_doctor_tasks_history_and_digest() {
    let emulator = codex_emulator::spawn(codex_emulator::EmulatorConfig::default()).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let root = home.path().join("repo");
    std::fs::create_dir_all(&root).unwrap();
    git(&root, &["init", "-q", "-b", "main"]);
    commit(&root, "a.txt");
    let config = home.path().join("bridge.toml");
    std::fs::write(&config, "[journal]\ngit_cache_ms = 0\n\n[history]\nmax_bytes = 100000\n").unwrap();
    let upstream = format!("{}/v1", emulator.base_url());
    let serve = Serve::local(home.path(), &upstream, "passthrough", &data, &["--config", config.to_str().unwrap()]);
    let d = data.to_str().unwrap();
    let p = root.to_str().unwrap();
    let plan = r#"update_plan {"plan":[{"step":"Parse config","status":"in_progress"},{"step":"Write docs","status":"pending"}]}"#;
    assert!(turn(&serve.url, &root, "make a plan", Some(plan)).await.is_none());

    let base = git(&root, &["rev-parse", "HEAD"]);
    type Change<'a> = Box<dyn Fn() + 'a>;
    let steps: [(&str, Change<'_>); 4] = [
        ("new-commits", Box::new(|| commit(&root, "b.txt"))),
        (
            "reset",
            Box::new(|| {
                git(&root, &["reset", "-q", "--hard", &base]);
            }),
        ),
        (
            "rebase",
            Box::new(|| {
                git(&root, &["commit", "-q", "--amend", "-m", "rewritten"]);
            }),
        ),
        (
            "branch-switch",
            Box::new(|| {
                git(&root, &["checkout", "-q", "-b", "feature/x"]);
            }),
        ),
    ];
    for (kind, change) in steps {
        change();
        let header = turn(&serve.url, &root, &format!("after {kind}"), None)
            .await
            .unwrap_or_else(|| panic!("no header for {kind}"));
        assert!(header.starts_with(&format!("{kind};")), "{header}");
        // The journal writes after the stream; give the writer a moment (bounded poll).
        let mut doctor = String::new();
        for _ in 0..100 {
            let (ok, out, err) = cli(home.path(), &["doctor", "--data-dir", d, "--project", p]);
            assert!(ok, "{err}");
            doctor = out;
            if doctor.contains(&format!("  {kind}  ")) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(doctor.contains(&format!("  {kind}  ")), "{kind}: {doctor}");
        assert!(
            doctor.contains("--resolve fork")
                && doctor.contains("--resolve fast-forward")
                && doctor.contains("--resolve rebuild")
        );
        let (ok, out, _) = cli(home.path(), &["doctor", "--data-dir", d, "--project", p, "--resolve", "fast-forward"]);
        assert!(ok && out.contains("resolved 1 drift event(s) with fast-forward"), "{out}");
        let (_, out, _) = cli(home.path(), &["doctor", "--data-dir", d, "--project", p]);
        assert!(out.contains("drift            none"), "{out}");
    }

    // Tasks: the plan is there; the CLI edits it; cycles are refused; graphs render.
    let (ok, out, _) = cli(home.path(), &["tasks", "--data-dir", d, "--project", p, "list"]);
    assert!(
        ok && out.contains("t1    in_progress  Parse config") && out.contains("t2    pending      Write docs"),
        "{out}"
    );
    let (ok, out, _) = cli(home.path(), &["tasks", "--data-dir", d, "--project", p, "add", "Release", "--after", "t2"]);
    assert!(ok && out.trim() == "added t3", "{out}");
    let (ok, _, err) = cli(home.path(), &["tasks", "--data-dir", d, "--project", p, "depend", "t2", "--on", "t3"]);
    assert!(!ok && err.contains("cycle t3 -> t2 -> t3"), "{err}");
    let (ok, _, err) = cli(home.path(), &["tasks", "--data-dir", d, "--project", p, "add", "X", "--after", "t99"]);
    assert!(!ok && err.contains("no such task"), "{err}");
    assert!(cli(home.path(), &["tasks", "--data-dir", d, "--project", p, "done", "t1"]).0);
    assert!(cli(home.path(), &["tasks", "--data-dir", d, "--project", p, "block", "t2", "--reason", "waiting"]).0);
    let (_, out, _) = cli(home.path(), &["tasks", "--data-dir", d, "--project", p, "next"]);
    assert_eq!(out.trim(), "nothing ready", "t2 blocked, t3 waits for t2");
    assert!(cli(home.path(), &["tasks", "--data-dir", d, "--project", p, "start", "t2"]).0);
    let (_, out, _) = cli(home.path(), &["tasks", "--data-dir", d, "--project", p, "next"]);
    assert!(out.starts_with("t2 "), "{out}");
    let (ok, out, _) = cli(home.path(), &["tasks", "--data-dir", d, "--project", p, "graph", "--format", "mermaid"]);
    assert!(
        ok && out.starts_with("graph TD\n")
            && out.contains("  t2 --> t3\n")
            && out.contains("t1: Parse config (completed)"),
        "{out}"
    );
    let (_, out, _) = cli(home.path(), &["tasks", "--data-dir", d, "--project", p, "graph", "--format", "dot"]);
    assert!(out.contains("\"t2\" -> \"t3\";"), "{out}");
    let (_, out, _) = cli(home.path(), &["tasks", "--data-dir", d, "--project", p, "list", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["tasks"][0]["evidence"][0], git(&root, &["rev-parse", "HEAD"]));

    // History and digest.
    let (ok, out, _) = cli(home.path(), &["history", "--data-dir", d]);
    assert!(ok && out.contains("make a plan") && out.contains("after branch-switch"), "{out}");
    let (ok, out, err) = cli(home.path(), &["sessions", "digest", "ses_cli", "--data-dir", d, "--out", "-"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("# Session "), "{out}");
    assert!(out.contains("**Prompt:** make a plan") && out.contains("**Plan change** (`update_plan`)"), "{out}");
    assert!(out.contains("- [ ] Parse config (in_progress)") && out.contains("## Commits seen"), "{out}");
    assert!(out.contains(&format!("`{}`", &base[..7])) && out.contains("## Git drift"), "{out}");
    let (ok, out, _) = cli(home.path(), &["sessions", "digest", "ses_cli", "--data-dir", d]);
    assert!(ok && Path::new(out.trim()).exists(), "{out}");
    serve.terminate();
    emulator.shutdown().await;
}
