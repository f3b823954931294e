//! `codex-bridge sessions` and `stats` read what a separate `serve` process tracked (issue 4, item 8).

use serde_json::{Value, json};

use crate::support::*;

fn long_text(label: &str) -> String {
    (0..120).map(|i| format!("{label} line {i}: the quick brown fox jumps over it.\n")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_show_explains_an_edited_early_message() {
    let emulator = codex_emulator::spawn(codex_emulator::EmulatorConfig {
        virtual_clock_ms: Some(1_800_000_000_000),
        ..codex_emulator::EmulatorConfig::default()
    })
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let upstream = format!("{}/v1", emulator.base_url());
    let serve = Serve::local(home.path(), &upstream, "passthrough", &data, &[]);
    let http = reqwest::Client::new();
    let mut input = vec![json!({"role": "developer", "content": long_text("startup")})];
    for turn in 0..4 {
        if turn == 3 {
            input[1] = json!({"role": "user", "content": "an edited first question"});
        }
        input.push(json!({"role": "user", "content": long_text(&format!("turn {turn}"))}));
        let body =
            json!({"model": "gpt-5", "stream": false, "input": input, "metadata": {"conversation_id": "cli-edit"}});
        let resp = http
            .post(format!("{}/v1/responses", serve.url))
            .header("authorization", "Bearer sk-test")
            .header("x-emulator-time", (1_800_000_000_000u64 + turn * 10_000).to_string())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let _ = resp.bytes().await;
        input.push(json!({"role": "assistant", "content": "pong"}));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(serve.terminate().success());
    let dir = data.to_str().unwrap();
    let out = run(home.path(), &["sessions", "show", "cli-edit", "--json", "--data-dir", dir]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let detail: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(detail["lineage"]["root_key"], "cache_cli-edit");
    assert_eq!(detail["lineage"]["members"][0]["role"], "root");
    let turns = detail["turns"].as_array().unwrap();
    let shown: Vec<(&str, &str)> =
        turns.iter().map(|t| (t["classification"].as_str().unwrap(), t["outcome"].as_str().unwrap())).collect();
    assert_eq!(
        shown,
        [("new", "new-identity"), ("append", "hit"), ("append", "hit"), ("rewrite@1", "prefix-changed@1:input")]
    );
    assert!(turns.iter().all(|t| t["key"] == "cache_cli-edit"));
    let table = run(home.path(), &["sessions", "show", "cli-edit", "--data-dir", dir]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("prefix-changed@1:input"));
    let list = run(home.path(), &["sessions", "list", "--json", "--data-dir", dir]);
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list[0]["session"], "cli-edit");
    assert_eq!(list[0]["turns"], 4);
    let stats = run(home.path(), &["stats", "--json", "--data-dir", dir]);
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["outcomes"]["hit"], 2);
    assert_eq!(stats["outcomes"]["prefix-changed:input"], 1);
    assert_eq!(stats["by_model"]["gpt-5"]["requests"], 4);
    let missing = run(home.path(), &["sessions", "show", "nope", "--data-dir", dir]);
    assert!(!missing.status.success());
    emulator.shutdown().await;
}
