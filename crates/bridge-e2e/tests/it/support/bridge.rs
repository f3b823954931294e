//! codex-bridge as users run it: the real `codex-bridge` binary (`serve`, `login`, `sessions`), each process
//! with a cleared environment and its own temporary HOME and data directory, on 127.0.0.1 only.
//!
//! The binary comes from `CODEX_BRIDGE_BIN` (`scripts/e2e.sh` builds it and sets it), else
//! `target/debug/codex-bridge`. Invariant: a started `serve` is killed when its [`Bridge`] is dropped, so no
//! bridge outlives its test; [`Bridge::stop`] sends SIGTERM first so the store and the journal are flushed.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::codex::CODEX_CLIENT_KEY;
use super::process::{self, ClientRun};

/// The variable naming the `codex-bridge` binary.
pub const BRIDGE_BIN_VAR: &str = "CODEX_BRIDGE_BIN";
/// How long `serve` may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a one-shot command (`sessions show`, ...) may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// The `codex-bridge` binary: `$CODEX_BRIDGE_BIN`, else the workspace's `target/debug/codex-bridge`.
pub fn binary() -> PathBuf {
    match std::env::var_os(BRIDGE_BIN_VAR).filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/codex-bridge"),
    }
}

/// How the bridge under test reaches the upstream (`[upstream] transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamTransport {
    /// `http`: every turn a POST, as the emulator's HTTP assertions expect.
    Http,
    /// The default `auto`: one upstream socket per conversation.
    Auto,
}

/// A bridge user's home: a temporary HOME holding the data directory (`data/`) and the config file.
#[derive(Debug)]
pub struct BridgeHome {
    dir: TempDir,
}

impl BridgeHome {
    /// A fresh home; panics when the binary is missing (run `cargo build -p codex-bridge`).
    pub fn new() -> Self {
        let bin = binary();
        assert!(
            bin.is_file(),
            "{} not found: run `cargo build -p codex-bridge` or set {BRIDGE_BIN_VAR}",
            bin.display()
        );
        let dir = tempfile::Builder::new().prefix("e2e-bridge-").tempdir().expect("bridge temp dir");
        std::fs::create_dir(dir.path().join("data")).expect("create the data dir");
        Self { dir }
    }

    /// The data directory (`--data-dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A `codex-bridge` command with a cleared environment plus `env`; its stderr goes to `<home>/<log>`.
    pub fn command(&self, env: &[(&str, &str)], log: &str) -> Command {
        let mut cmd = Command::new(binary());
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .current_dir(self.dir.path())
            .kill_on_drop(true);
        let stderr = std::fs::File::create(self.dir.path().join(log)).expect("create the stderr log");
        cmd.stderr(Stdio::from(stderr));
        cmd
    }

    /// Starts `codex-bridge serve --listen 127.0.0.1:0 --upstream UPSTREAM --upstream-auth AUTH --data-dir
    /// <data> --config <home>/bridge.toml` with `config` as the file and `env` added to the environment;
    /// waits for the listening line. The bridge sends every turn upstream over HTTP (`[upstream] transport =
    /// "http"` is appended): these tests assert the requests at the emulator as HTTP POSTs. [`Self::serve_auto`]
    /// keeps the default (`auto`: one upstream socket per conversation).
    pub async fn serve(&self, upstream: &str, auth: &str, config: &str, env: &[(&str, &str)]) -> Bridge {
        self.serve_over(UpstreamTransport::Http, upstream, auth, config, env).await
    }

    /// Like [`Self::serve`] with the default `[upstream] transport = "auto"`: a conversation's turns reach
    /// the upstream over one pooled WebSocket, turn 2+ as `previous_response_id` deltas.
    pub async fn serve_auto(&self, upstream: &str, auth: &str, config: &str, env: &[(&str, &str)]) -> Bridge {
        self.serve_over(UpstreamTransport::Auto, upstream, auth, config, env).await
    }

    /// [`Self::serve`] or [`Self::serve_auto`], by `transport`.
    pub async fn serve_over(
        &self,
        transport: UpstreamTransport,
        upstream: &str,
        auth: &str,
        config: &str,
        env: &[(&str, &str)],
    ) -> Bridge {
        match transport {
            UpstreamTransport::Http => {
                self.start(upstream, auth, &format!("{config}\n[upstream]\ntransport = \"http\"\n"), env).await
            }
            UpstreamTransport::Auto => self.start(upstream, auth, config, env).await,
        }
    }

    async fn start(&self, upstream: &str, auth: &str, config: &str, env: &[(&str, &str)]) -> Bridge {
        let config_path = self.dir.path().join("bridge.toml");
        std::fs::write(&config_path, config).expect("write bridge.toml");
        let data = self.data_dir();
        let mut cmd = self.command(env, "serve.stderr");
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0", "--upstream", upstream, "--upstream-auth", auth])
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", binary().display()));
        let stdout = child.stdout.take().expect("serve stdout");
        let mut line = String::new();
        let read = tokio::time::timeout(START_TIMEOUT, BufReader::new(stdout).read_line(&mut line)).await;
        let stderr_log = self.dir.path().join("serve.stderr");
        let url = match read {
            Ok(Ok(_)) => line.trim().strip_prefix("listening on ").map(str::to_owned),
            _ => None,
        };
        let Some(url) = url else {
            let _ = child.kill().await;
            panic!(
                "codex-bridge serve did not print its listening line (got {line:?}); stderr:\n{}",
                read_log(&stderr_log)
            );
        };
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Bridge { child, url, stderr_log }
    }

    /// Runs a one-shot `codex-bridge ARGS --data-dir <data>` to completion.
    pub async fn run(&self, args: &[&str]) -> ClientRun {
        let mut cmd = self.command(&[], "command.stderr");
        cmd.args(args).arg("--data-dir").arg(self.data_dir());
        // `process::run` pipes stderr itself.
        cmd.stderr(Stdio::piped());
        process::run(&format!("codex-bridge {}", args.join(" ")), cmd, COMMAND_TIMEOUT).await
    }
}

/// A running `codex-bridge serve`.
#[derive(Debug)]
pub struct Bridge {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    url: String,
    stderr_log: PathBuf,
}

impl Bridge {
    /// The Responses base URL clients are pointed at (they append `/responses`).
    pub fn responses_base(&self) -> String {
        format!("{}/v1", self.url)
    }

    /// The sum of the samples of counter `name` in the bridge's `/metrics` whose labels include `labels`
    /// (0 when absent). Sends Codex's dummy key as the bridge token, which a bridge with access tokens
    /// in these tests accepts.
    pub async fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let url = format!("{}/metrics", self.url);
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap();
        let response = client.get(url).header("x-codex-bridge-token", CODEX_CLIENT_KEY).send().await.unwrap();
        assert!(response.status().is_success(), "GET /metrics: {}", response.status());
        let text = response.text().await.unwrap();
        text.lines()
            .filter(|l| l.starts_with(name) && labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }

    /// What the bridge logged to stderr so far (for failure messages).
    pub fn stderr(&self) -> String {
        read_log(&self.stderr_log)
    }

    /// SIGTERM, then waits for the exit (in-flight streams, the recorder and the journal are flushed).
    pub async fn stop(mut self) -> ExitStatus {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(Ok(status)) => status,
            _ => panic!("codex-bridge serve did not exit within 20 s of SIGTERM; stderr:\n{}", self.stderr()),
        }
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()))
}
