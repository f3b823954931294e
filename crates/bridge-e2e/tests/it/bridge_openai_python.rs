//! The official OpenAI Python SDK (pinned in scripts/install-clients.sh) drives Chat Completions through the
//! real `codex-bridge serve` binary to the emulator: a whole answer, the same conversation again (served
//! from the prompt cache), a stream with `include_usage`, and a tool-call round trip. The script
//! (`openai_chat.py`) prints what the SDK parsed; this test asserts it.

use std::process::Stdio;

use serde_json::Value;
use tokio::process::Command;

use crate::support::bridge::BridgeHome;
use crate::support::gate;
use crate::support::process::{self, CLIENT_TIMEOUT};
use crate::support::upstream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_sdk_streams_calls_tools_and_reads_cached_tokens() {
    let Some((_clients, sdk)) = gate::python_sdk() else { return };
    let emulator = upstream::start_emulator().await;
    let home = BridgeHome::new();
    let bridge = home.serve(&upstream::api_base(&emulator), "passthrough", "", &[]).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/openai_chat.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(bridge.responses_base())
        .env_clear()
        .env("PYTHONPATH", &sdk)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("OPENAI_API_KEY", "sk-dummy-e2e-key")
        .env("NO_PROXY", "*")
        .stdin(Stdio::null());
    let run = process::run("python3 openai_chat.py", cmd, CLIENT_TIMEOUT).await;
    run.assert_success();
    let report: &Value = run.events.last().expect("the script prints its report as JSON");
    assert!(bridge.stop().await.success());

    let whole = &report["whole"];
    assert_eq!(whole["object"], "chat.completion");
    assert_eq!(whole["content"], "pong");
    assert_eq!(whole["finish_reason"], "stop");
    assert_eq!(whole["cached_tokens"], 0, "turn 1 on a fresh emulator");
    assert!(report["again"]["cached_tokens"].as_u64().unwrap() > 0, "turn 2 is served from the cache: {report}");

    let stream = &report["stream"];
    assert_eq!(stream["first_role"], "assistant");
    assert_eq!(stream["content"], "pong");
    assert_eq!(stream["finish_reason"], "stop");
    assert_eq!(stream["usage_chunk_choices"], 0, "the usage chunk has choices: []");
    assert!(stream["cached_tokens"].as_u64().unwrap() > 0, "{report}");

    let tool = &report["tool"];
    assert_eq!(tool["finish_reason"], "tool_calls");
    assert_eq!(tool["name"], "bash");
    assert!(tool["arguments"].as_str().unwrap().contains("echo emulator-tool-ok"));
    assert_eq!(tool["after_finish_reason"], "stop");
    assert_eq!(tool["after_content"], "pong");
    assert!(tool["after_cached_tokens"].as_u64().unwrap() > 0, "{report}");

    let calls = upstream::calls(&emulator);
    assert!(calls.iter().all(|c| c.path == "/v1/responses" && c.served), "{calls:#?}");
    let outputs: Vec<_> = calls
        .iter()
        .flat_map(|c| c.input().to_vec())
        .filter(|i| i.get("type").and_then(Value::as_str) == Some("function_call_output"))
        .collect();
    assert!(!outputs.is_empty(), "the tool result went upstream as a function_call_output");
    emulator.shutdown().await;
}
