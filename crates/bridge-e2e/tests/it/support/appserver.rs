//! A driver for `codex app-server`: JSONL JSON-RPC over stdio without the `"jsonrpc"` field, as
//! Codex 0.169's app-server speaks it (docs/reference/codex-wire.md) (`initialize`, `initialized`, `thread/start`,
//! `turn/start`, then wait for the `turn/completed` notification; server requests are declined).
//!
//! Invariants: every wait is bounded ([`RPC_TIMEOUT`]); the app-server runs in its own process group and
//! the whole group is killed when the driver is dropped; every message both ways is kept in a transcript
//! that failure messages print.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;

use super::codex::CodexSession;
use super::process::GroupKill;

/// Upper bound for one request and for one turn.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(60);
/// The `clientInfo.name`: Codex sends it upstream as `originator` and as the User-Agent prefix.
pub const CLIENT_NAME: &str = "codex_bridge_e2e";

/// One finished turn: its notifications, in order.
#[derive(Debug)]
pub struct Turn {
    /// Every notification from `turn/start`'s answer to `turn/completed` (inclusive).
    pub notifications: Vec<Value>,
}

impl Turn {
    /// The `status` of `turn/completed`'s turn.
    pub fn status(&self) -> Option<&str> {
        self.completed()?.pointer("/params/turn/status")?.as_str()
    }

    /// The texts of the turn's completed `agentMessage` items.
    pub fn agent_messages(&self) -> Vec<String> {
        self.of("item/completed")
            .filter_map(|n| n.pointer("/params/item"))
            .filter(|item| item.get("type").and_then(Value::as_str) == Some("agentMessage"))
            .filter_map(|item| item.get("text")?.as_str().map(str::to_owned))
            .collect()
    }

    /// `cachedInputTokens` of the last `thread/tokenUsage/updated` (`last`: the turn's latest request).
    pub fn last_cached_input_tokens(&self) -> Option<u64> {
        self.of("thread/tokenUsage/updated").last()?.pointer("/params/tokenUsage/last/cachedInputTokens")?.as_u64()
    }

    fn completed(&self) -> Option<&Value> {
        self.of("turn/completed").last()
    }

    fn of<'a>(&'a self, method: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.notifications.iter().filter(move |n| n.get("method").and_then(Value::as_str) == Some(method))
    }
}

/// A running `codex app-server` and its JSON-RPC state.
#[derive(Debug)]
pub struct AppServer {
    child: Child,
    stdin: ChildStdin,
    incoming: mpsc::UnboundedReceiver<Value>,
    next_id: u64,
    transcript: Vec<String>,
    stderr_log: tempfile::NamedTempFile,
    _group: Option<GroupKill>,
}

impl AppServer {
    /// Starts `codex app-server` in `session`'s home and working directory and completes the handshake
    /// (`initialize`, then the `initialized` notification).
    pub async fn start(session: &CodexSession) -> Self {
        let stderr_log = tempfile::NamedTempFile::new().expect("app-server stderr file");
        let stderr = stderr_log.reopen().expect("reopen the stderr file");
        let mut cmd = session.command(&["app-server"]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .process_group(0);
        let mut child = cmd.spawn().expect("start codex app-server");
        let group = child.id().map(GroupKill);
        let stdin = child.stdin.take().expect("app-server stdin");
        let stdout = child.stdout.take().expect("app-server stdout");
        let (tx, incoming) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let message = serde_json::from_str::<Value>(line.trim()).unwrap_or(Value::String(line));
                if tx.send(message).is_err() {
                    break;
                }
            }
        });
        let mut server = Self { child, stdin, incoming, next_id: 0, transcript: Vec::new(), stderr_log, _group: group };
        let info = json!({"clientInfo": {"name": CLIENT_NAME, "title": "codex-bridge e2e", "version": "0.0.1"}});
        server.request("initialize", info).await;
        server.send(json!({"method": "initialized"})).await;
        server
    }

    /// `thread/start` in `cwd`; returns the thread id.
    pub async fn start_thread(&mut self, cwd: &std::path::Path) -> String {
        let result = self.request("thread/start", json!({"cwd": cwd})).await;
        match result.pointer("/thread/id").and_then(Value::as_str) {
            Some(id) => id.to_owned(),
            None => self.fail(&format!("thread/start answered without a thread id: {result}")),
        }
    }

    /// `turn/start` with one text input; waits for the thread's `turn/completed`.
    pub async fn turn(&mut self, thread_id: &str, text: &str) -> Turn {
        let params = json!({"threadId": thread_id, "input": [{"type": "text", "text": text}]});
        self.request("turn/start", params).await;
        let mut notifications = Vec::new();
        loop {
            let message = self.next_message().await;
            let method = message.get("method").and_then(Value::as_str).unwrap_or_default().to_owned();
            let done = method == "turn/completed"
                && message.pointer("/params/threadId").and_then(Value::as_str) == Some(thread_id);
            notifications.push(message);
            if done {
                return Turn { notifications };
            }
        }
    }

    /// Closes stdin and waits (bounded) for the app-server to exit.
    pub async fn shutdown(mut self) {
        let _ = self.stdin.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    /// Sends a request and returns its `result`; panics with the transcript on an error or a timeout.
    async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"id": id, "method": method, "params": params})).await;
        loop {
            let message = self.next_message().await;
            if message.get("id").and_then(Value::as_u64) != Some(id) || message.get("method").is_some() {
                continue;
            }
            if let Some(result) = message.get("result") {
                return result.clone();
            }
            self.fail(&format!("{method} failed: {message}"));
        }
    }

    /// The next message that is not a server request (those are declined here).
    async fn next_message(&mut self) -> Value {
        loop {
            let message = match tokio::time::timeout(RPC_TIMEOUT, self.incoming.recv()).await {
                Ok(Some(message)) => message,
                Ok(None) => self.fail("the app-server closed its stdout"),
                Err(_) => self.fail(&format!("no message from the app-server within {RPC_TIMEOUT:?}")),
            };
            self.transcript.push(format!("<- {message}"));
            if let (Some(id), Some(_)) = (message.get("id").cloned(), message.get("method")) {
                self.send(json!({"id": id, "result": {"decision": "decline"}})).await;
                continue;
            }
            return message;
        }
    }

    async fn send(&mut self, message: Value) {
        self.transcript.push(format!("-> {message}"));
        let mut line = message.to_string();
        line.push('\n');
        if let Err(e) = self.stdin.write_all(line.as_bytes()).await {
            self.fail(&format!("cannot write to the app-server: {e}"));
        }
    }

    fn fail(&self, why: &str) -> ! {
        let stderr = std::fs::read_to_string(self.stderr_log.path()).unwrap_or_default();
        let tail: String = stderr.chars().rev().take(4000).collect::<Vec<_>>().into_iter().rev().collect();
        panic!("codex app-server: {why}\n--- transcript\n{}\n--- stderr (tail)\n{tail}", self.transcript.join("\n"));
    }
}
