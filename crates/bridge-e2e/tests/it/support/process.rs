//! Bounded client processes: stdin from /dev/null, their own process group, a timeout, and JSONL events.
//!
//! Invariant: when [`run`] returns (or its future is dropped), the client and everything it started in its
//! process group have been sent SIGKILL, so a hung or misbehaving client never outlives its test.

use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// Upper bound for one client process (a turn takes 0.5-6 s). Two turns stay within nextest's default
/// 120 s test limit, so this timeout, not nextest, reports a hung client.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(55);

/// How long to wait for the output pipes to close after the process group was killed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The outcome of one client process.
#[derive(Debug)]
pub struct ClientRun {
    /// What ran (for messages), e.g. `codex exec (turn 1)`.
    pub what: String,
    /// The exit status; `None` when the process timed out and was killed.
    pub status: Option<ExitStatus>,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
    /// The stdout lines that are JSON objects, in order.
    pub events: Vec<Value>,
    /// Wall time of the process.
    pub elapsed: Duration,
}

impl ClientRun {
    /// Panics with the client's output unless it exited with status 0.
    pub fn assert_success(&self) {
        if self.status.is_some_and(|s| s.success()) {
            return;
        }
        let status = self.status.map_or_else(|| "timed out and was killed".to_owned(), |s| s.to_string());
        panic!(
            "{} failed ({status}) after {:.1?}\n--- stdout\n{}\n--- stderr (last 4000 bytes)\n{}",
            self.what,
            self.elapsed,
            self.stdout,
            tail(&self.stderr, 4000)
        );
    }

    /// [`Self::assert_success`], and no `error` event.
    pub fn assert_clean(&self) {
        self.assert_success();
        let errors: Vec<&Value> = self.events_of_type("error").collect();
        assert!(errors.is_empty(), "{}: error events {errors:#?}\n--- stderr\n{}", self.what, self.stderr);
    }

    /// The events whose `type` is `ty`.
    pub fn events_of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.events.iter().filter(move |e| e.get("type").and_then(Value::as_str) == Some(ty))
    }
}

/// Run `cmd` with stdin from /dev/null, in its own process group, killing the group after `timeout`.
pub async fn run(what: &str, mut cmd: Command, timeout: Duration) -> ClientRun {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let group = child.id().map(GroupKill);
    let stdout = tokio::spawn(read_all(child.stdout.take()));
    let stderr = tokio::spawn(read_all(child.stderr.take()));
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => Some(status),
        Ok(Err(e)) => panic!("waiting for {what} failed: {e}"),
        Err(_elapsed) => None,
    };
    let elapsed = start.elapsed();
    drop(group);
    let stdout = drain(stdout).await;
    let stderr = drain(stderr).await;
    let events = parse_jsonl(&stdout);
    ClientRun { what: what.to_owned(), status, stdout, stderr, events, elapsed }
}

/// The lines of `text` that parse as JSON objects.
pub fn parse_jsonl(text: &str) -> Vec<Value> {
    text.lines().filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok()).filter(Value::is_object).collect()
}

async fn read_all<R: AsyncRead + Unpin>(pipe: Option<R>) -> String {
    let mut buf = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut buf).await;
    }
    String::from_utf8_lossy(&buf).into_owned()
}

async fn drain(task: tokio::task::JoinHandle<String>) -> String {
    match tokio::time::timeout(DRAIN_TIMEOUT, task).await {
        Ok(Ok(text)) => text,
        Ok(Err(e)) => format!("<reader task failed: {e}>"),
        Err(_) => "<output pipe still open: a process escaped the client's process group>".to_owned(),
    }
}

fn tail(text: &str, max: usize) -> &str {
    let mut cut = text.len().saturating_sub(max);
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    &text[cut..]
}

/// Sends SIGKILL to the process group whose id it holds when dropped (no-op if the group is already empty).
#[derive(Debug)]
pub struct GroupKill(pub u32);

impl Drop for GroupKill {
    fn drop(&mut self) {
        // The shell's `kill` takes `-PGID` for a group; no libc binding is needed.
        let _ = std::process::Command::new("sh")
            .args(["-c", "kill -KILL \"-$1\" 2>/dev/null", "sh", &self.0.to_string()])
            .stdin(Stdio::null())
            .status();
    }
}

#[test]
fn parse_jsonl_keeps_object_lines() {
    let events = parse_jsonl("{\"type\":\"a\"}\nnot json\n\n[1]\n  {\"type\":\"b\"}  \n");
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["type"], "b");
}

#[tokio::test]
async fn run_kills_a_hung_process_group() {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo '{\"type\":\"started\"}'; sleep 30 & sleep 30"]);
    let run = run("sleeper", cmd, Duration::from_millis(500)).await;
    assert!(run.status.is_none());
    assert_eq!(run.events.len(), 1);
    assert!(run.elapsed < Duration::from_secs(5));
}
