//! Helpers: a real git repository in a temp directory, synthetic turns, the Codex example files.

use std::path::PathBuf;

use bridge_journal::TurnRecord;
use bridge_journal::lines::TokenUsage;
use serde_json::{Value, json};

pub const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/captures/examples/");

pub use bridge_test_support::git::{commit, git};

/// A repository with one commit on `main`.
pub fn repo() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("proj");
    std::fs::create_dir_all(&root).unwrap();
    git(&root, &["init", "-q", "-b", "main"]);
    commit(&root, "a.txt", "one");
    (dir, root)
}

pub fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

pub fn assistant(text: &str) -> Value {
    json!({"type": "message", "role": "assistant", "id": "msg_x", "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

pub fn plan_call(tool: &str, steps: &[(&str, &str)]) -> Value {
    let args = if tool == "todowrite" {
        json!({"todos": steps.iter().map(|(s, st)| json!({"content": s, "status": st, "priority": "high"})).collect::<Vec<_>>()})
    } else {
        json!({"plan": steps.iter().map(|(s, st)| json!({"step": s, "status": st})).collect::<Vec<_>>()})
    };
    json!({"type": "function_call", "id": "fc_1", "status": "completed", "name": tool, "call_id": "call_1", "arguments": args.to_string()})
}

/// A turn whose request input is `input` and whose response is `output`.
pub fn turn(
    session: &str,
    input: &[Value],
    output: Vec<Value>,
    git: Option<(PathBuf, bridge_journal::GitSnapshot)>,
) -> TurnRecord {
    let body = json!({"model": "gpt-5.5", "stream": true, "input": input});
    TurnRecord {
        session: session.to_owned(),
        originator: Some("codex_exec".into()),
        cwd: git.as_ref().map(|(r, _)| r.to_string_lossy().into_owned()).or(Some("/tmp/x".into())),
        git,
        drift: None,
        request: std::sync::Arc::new(bridge_journal::ParsedBody::parse(&serde_json::to_vec(&body).unwrap()).unwrap()),
        output_items: output,
        usage: Some(TokenUsage {
            input: Some(100),
            cached: Some(0),
            output: Some(2),
            total: Some(102),
            ..TokenUsage::default()
        }),
        started_ms: 1_795_413_804_000,
    }
}
