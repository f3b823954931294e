//! The `codex-emulator` binary: the `listening on` line, serving, SIGTERM, and `limit TRACE.jsonl`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_codex-emulator");

#[tokio::test]
async fn serves_and_stops_on_sigterm() {
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--tokenizer", "fast", "--fault", "status=503;times=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("listening on ").unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"), "{line}");
    let c = reqwest::Client::new();
    let send =
        || c.post(format!("{url}/v1/responses")).bearer_auth("k").json(&json!({"model": "m", "input": "hi"})).send();
    assert_eq!(send().await.unwrap().status(), 503);
    let v: Value = send().await.unwrap().json().await.unwrap();
    assert_eq!(v["output"][0]["content"][0]["text"], "pong");
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn limit_subcommand() {
    let path = std::env::temp_dir().join(format!("codex-emulator-trace-{}.jsonl", std::process::id()));
    let tokens: Vec<u32> = (0..1300).collect();
    let line = json!({"ts_ms": 0, "model": "m", "tokens": tokens}).to_string();
    std::fs::write(&path, format!("{line}\n{line}\n")).unwrap();
    let out = Command::new(BIN).args(["--tokenizer", "fast", "limit"]).arg(&path).output().unwrap();
    std::fs::remove_file(&path).ok();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cached_tokens"], 1280);
    assert_eq!(v["per_request"], json!([0, 1280]));
}
