//! Running the binary: a `serve` child process that is killed on drop, and one-shot commands.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_codex-bridge");

/// A `codex-bridge` command with a clean environment (no inherited CODEX_BRIDGE_* settings).
pub fn command(home: &Path) -> Command {
    clean(Command::new(BIN), home)
}

/// `codex-bridge ARGS` started by `sh` under `ulimit -n nofile`, with the same clean environment.
pub fn command_with_fd_limit(home: &Path, nofile: u32) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("ulimit -n {nofile} && exec \"$0\" \"$@\""), BIN]);
    clean(cmd, home)
}

fn clean(mut cmd: Command, home: &Path) -> Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("CODEX_BRIDGE_") || k == "OPENAI_API_KEY" {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home).env("RUST_LOG", "warn").stdin(Stdio::null());
    cmd
}

/// A running `codex-bridge serve`.
pub struct Serve {
    pub child: Child,
    pub url: String,
}

impl Serve {
    /// Starts `serve` with `args` and waits (at most 20 s) for its listening line.
    pub fn start(home: &Path, args: &[&str]) -> Self {
        Self::start_command(command(home), args)
    }

    /// Starts `cmd serve ARGS` (see [`command_with_fd_limit`]) and waits for its listening line.
    pub fn start_command(mut cmd: Command, args: &[&str]) -> Self {
        let mut child = cmd.arg("serve").args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(20)).expect("no listening line within 20 s");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Self { child, url }
    }

    /// Starts `serve` on a free loopback port against `upstream` with `--upstream-auth auth`, its data in
    /// `data`, plus `extra` arguments.
    pub fn local(home: &Path, upstream: &str, auth: &str, data: &Path, extra: &[&str]) -> Self {
        let data = data.to_str().unwrap();
        let mut args =
            vec!["--listen", "127.0.0.1:0", "--upstream", upstream, "--upstream-auth", auth, "--data-dir", data];
        args.extend_from_slice(extra);
        Self::start(home, &args)
    }

    /// Sends SIGTERM and waits (at most 20 s) for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("serve did not exit within 20 s of SIGTERM");
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a one-shot command and returns its output.
pub fn run(home: &Path, args: &[&str]) -> Output {
    command(home).args(args).output().unwrap()
}

/// The `body` of a capture file from fixtures/captures as compact JSON bytes.
pub fn capture_body(name: &str) -> Vec<u8> {
    let path = format!("{}/../../fixtures/captures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    serde_json::to_vec(&v["body"]).unwrap()
}
