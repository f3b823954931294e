//! Codex CLI sessions: `codex exec --json` for the first turn, `codex exec --json resume <thread_id>` for the
//! next ones, each a new process. The custom provider speaks HTTP SSE to any Responses upstream; every
//! session has its own temporary `CODEX_HOME` and non-git working directory and a cleared environment. The
//! same home also runs `codex app-server` (see [`super::appserver`]).

use serde_json::Value;
use tempfile::TempDir;
use tokio::process::Command;

use super::bridge::Bridge;
use super::gate::Clients;
use super::process::{self, CLIENT_TIMEOUT, ClientRun};
use super::upstream::TOOL_MARKER;

/// The model slug the session's config selects.
pub const CODEX_MODEL: &str = "gpt-5.5";
/// Environment variable holding the dummy key (the provider's `env_key`), sent as the Bearer token.
const KEY_VAR: &str = "CODEX_E2E_API_KEY";
/// The dummy key Codex sends as `Authorization: Bearer`.
pub const CODEX_CLIENT_KEY: &str = "sk-dummy-e2e-key";

/// One Codex thread driven through `codex exec`.
#[derive(Debug)]
pub struct CodexSession {
    clients: Clients,
    home: TempDir,
    workdir: TempDir,
    thread_id: Option<String>,
    turns: usize,
}

impl CodexSession {
    /// A new session whose provider posts to `{responses_base}/responses` (e.g. `{emulator}/v1`).
    pub fn new(clients: &Clients, responses_base: &str) -> Self {
        Self::custom(clients, responses_base, false)
    }

    /// Like [`CodexSession::new`], the custom provider opted in to Responses over WebSocket
    /// (`supports_websockets = true`).
    pub fn custom_websocket(clients: &Clients, responses_base: &str) -> Self {
        Self::custom(clients, responses_base, true)
    }

    fn custom(clients: &Clients, responses_base: &str, websocket: bool) -> Self {
        let home = tempfile::Builder::new().prefix("e2e-codex-home-").tempdir().expect("CODEX_HOME temp dir");
        let workdir = tempfile::Builder::new().prefix("e2e-codex-work-").tempdir().expect("workdir temp dir");
        let mut config = config_toml(responses_base);
        if websocket {
            config = config.replace("stream_max_retries = 0\n", "stream_max_retries = 0\nsupports_websockets = true\n");
        }
        std::fs::write(home.path().join("config.toml"), config).expect("write config.toml");
        std::fs::create_dir(home.path().join("home")).expect("create HOME");
        Self { clients: clients.clone(), home, workdir, thread_id: None, turns: 0 }
    }

    /// A session whose custom provider uses Codex's own ChatGPT login (`requires_openai_auth = true`) and
    /// Responses over WebSocket (`supports_websockets = true`) at `{backend_api}/codex`, with
    /// `chatgpt_base_url = {backend_api}/`. Its `auth.json` is a ChatGPT-mode login for `account_id` with
    /// `access_token` (from [`chatgpt_access_token`]) and an unsigned id token, which Codex sends as the
    /// Bearer with `chatgpt-account-id`; nothing is refreshed.
    pub fn chatgpt_websocket(clients: &Clients, backend_api: &str, account_id: &str, access_token: &str) -> Self {
        let home = tempfile::Builder::new().prefix("e2e-codex-home-").tempdir().expect("CODEX_HOME temp dir");
        let workdir = tempfile::Builder::new().prefix("e2e-codex-work-").tempdir().expect("workdir temp dir");
        let config = config_toml(&format!("{backend_api}/codex"))
            .replace("env_key = \"CODEX_E2E_API_KEY\"\n", "requires_openai_auth = true\nsupports_websockets = true\n")
            .replace(
                "check_for_update_on_startup = false\n",
                &format!("check_for_update_on_startup = false\nchatgpt_base_url = \"{backend_api}/\"\ncli_auth_credentials_store = \"file\"\n"),
            );
        assert!(config.contains("requires_openai_auth") && config.contains("chatgpt_base_url"), "{config}");
        std::fs::write(home.path().join("config.toml"), config).expect("write config.toml");
        let auth = serde_json::json!({
            "auth_mode": "chatgpt",
            "OPENAI_API_KEY": null,
            "tokens": {
                "id_token": chatgpt_jwt(account_id, "app_e2e"),
                "access_token": access_token,
                "refresh_token": "rt_e2e_unused",
                "account_id": account_id,
            },
            "last_refresh": "2099-01-01T00:00:00.000000Z",
        });
        std::fs::write(home.path().join("auth.json"), auth.to_string()).expect("write auth.json");
        std::fs::create_dir(home.path().join("home")).expect("create HOME");
        Self { clients: clients.clone(), home, workdir, thread_id: None, turns: 0 }
    }

    /// A session whose `CODEX_HOME` holds only what `configure(codex_home)` writes (e.g. `codex-bridge connect`).
    pub async fn configured_by<F: std::future::Future<Output = ()>>(
        clients: &Clients,
        configure: impl FnOnce(std::path::PathBuf) -> F,
    ) -> Self {
        let home = tempfile::Builder::new().prefix("e2e-codex-home-").tempdir().expect("CODEX_HOME temp dir");
        let workdir = tempfile::Builder::new().prefix("e2e-codex-work-").tempdir().expect("workdir temp dir");
        std::fs::create_dir(home.path().join("home")).expect("create HOME");
        configure(home.path().to_owned()).await;
        Self { clients: clients.clone(), home, workdir, thread_id: None, turns: 0 }
    }

    /// A session with Codex's built-in `openai` provider re-pointed with `openai_base_url` (it speaks
    /// Responses over WebSocket first) and the dummy key stored by `codex login --with-api-key`.
    pub async fn builtin(clients: &Clients, openai_base_url: &str) -> Self {
        let home = tempfile::Builder::new().prefix("e2e-codex-home-").tempdir().expect("CODEX_HOME temp dir");
        let workdir = tempfile::Builder::new().prefix("e2e-codex-work-").tempdir().expect("workdir temp dir");
        std::fs::write(home.path().join("config.toml"), builtin_config_toml(openai_base_url))
            .expect("write config.toml");
        std::fs::create_dir(home.path().join("home")).expect("create HOME");
        let session = Self { clients: clients.clone(), home, workdir, thread_id: None, turns: 0 };
        let mut login = session.command(&["login", "--with-api-key"]);
        login
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        login.kill_on_drop(true);
        let mut child = login.spawn().expect("spawn codex login");
        {
            use tokio::io::AsyncWriteExt;
            let mut stdin = child.stdin.take().expect("login stdin");
            stdin.write_all(CODEX_CLIENT_KEY.as_bytes()).await.expect("write the key");
        }
        let out = tokio::time::timeout(CLIENT_TIMEOUT, child.wait_with_output())
            .await
            .expect("codex login finished in time")
            .expect("codex login ran");
        assert!(
            out.status.success(),
            "codex login --with-api-key failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        session
    }

    /// The thread id reported by the first turn's `thread.started` event.
    pub fn thread_id(&self) -> Option<&str> {
        self.thread_id.as_deref()
    }

    /// The working directory of the session's processes (a non-git temporary directory).
    pub fn workdir(&self) -> &std::path::Path {
        self.workdir.path()
    }

    /// `codex ARGS` in the session's working directory, `CODEX_HOME` and cleared environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.clients.codex());
        cmd.args(args)
            .current_dir(self.workdir.path())
            .env_clear()
            .env("PATH", self.clients.path_env())
            .env("HOME", self.home.path().join("home"))
            .env("CODEX_HOME", self.home.path())
            .env(KEY_VAR, CODEX_CLIENT_KEY)
            .env("LANG", "C.UTF-8");
        cmd
    }

    /// Run one turn: `exec` the first time, `exec resume <thread_id>` afterwards. Returns the parsed events;
    /// the caller checks [`ClientRun::assert_success`].
    pub async fn turn(&mut self, prompt: &str) -> ClientRun {
        self.turns += 1;
        let mut cmd = self.command(&["exec", "--json", "--skip-git-repo-check"]);
        if let Some(id) = &self.thread_id {
            cmd.args(["resume", id]);
        }
        cmd.arg(prompt);
        let what = format!("codex exec (turn {})", self.turns);
        let run = process::run(&what, cmd, CLIENT_TIMEOUT).await;
        if self.thread_id.is_none() {
            self.thread_id = thread_started(&run);
        }
        run
    }
}

/// Token usage from `turn.completed`. Codex reports it cumulatively over the thread, also after `resume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodexUsage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Prompt tokens served from the upstream's cache.
    pub cached_input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

/// The usage of the run's last `turn.completed` event.
pub fn usage(run: &ClientRun) -> Option<CodexUsage> {
    let usage = run.events_of_type("turn.completed").last()?.get("usage")?;
    let field = |name: &str| usage.get(name).and_then(Value::as_u64);
    Some(CodexUsage {
        input_tokens: field("input_tokens")?,
        cached_input_tokens: field("cached_input_tokens")?,
        output_tokens: field("output_tokens")?,
    })
}

/// The `thread_id` of the run's `thread.started` event.
pub fn thread_started(run: &ClientRun) -> Option<String> {
    run.events_of_type("thread.started").find_map(|e| e.get("thread_id")?.as_str().map(str::to_owned))
}

/// The texts of the run's completed `agent_message` items.
pub fn agent_messages(run: &ClientRun) -> Vec<String> {
    run.events_of_type("item.completed")
        .filter_map(|e| e.get("item"))
        .filter(|item| item.get("type").and_then(Value::as_str) == Some("agent_message"))
        .filter_map(|item| item.get("text").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// A custom-provider config (docs/reference/clients.md, the `codex-custom` variant), pointed at `responses_base`.
fn config_toml(responses_base: &str) -> String {
    format!(
        r#"model = "{CODEX_MODEL}"
model_provider = "e2e"
approval_policy = "never"
sandbox_mode = "read-only"
check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false

[history]
persistence = "save-all"

[model_providers.e2e]
name = "E2E upstream"
base_url = "{responses_base}"
wire_api = "responses"
env_key = "{KEY_VAR}"
request_max_retries = 0
stream_max_retries = 0

[tui]
screen_reader_detection_done = true
"#
    )
}

/// The built-in provider's config (docs/reference/clients.md, the `codex-builtin-apikey` variant).
fn builtin_config_toml(openai_base_url: &str) -> String {
    format!(
        r#"model = "{CODEX_MODEL}"
approval_policy = "never"
sandbox_mode = "read-only"
check_for_update_on_startup = false
openai_base_url = "{openai_base_url}"
cli_auth_credentials_store = "file"

[analytics]
enabled = false

[feedback]
enabled = false

[history]
persistence = "save-all"

[tui]
screen_reader_detection_done = true
"#
    )
}

/// The `aggregated_output` of the run's completed `command_execution` items (commands Codex ran).
pub fn command_outputs(run: &ClientRun) -> Vec<String> {
    run.events_of_type("item.completed")
        .filter_map(|e| e.get("item"))
        .filter(|item| item.get("type").and_then(Value::as_str) == Some("command_execution"))
        .map(|item| item.get("aggregated_output").and_then(Value::as_str).unwrap_or_default().to_owned())
        .collect()
}

/// Three Codex processes on `session`: `Say pong`, `Say pong again`, then a tool turn (the emulator calls
/// `exec_command`, Codex runs it and sends the output back). Each must exit 0 with no `error` event and
/// answer `pong`, and the tool turn must have run the emulator's command; on a failure of turn 1 the
/// bridge's stderr is shown. Returns the thread id and the three runs.
pub async fn three_turns(session: &mut CodexSession, bridge: Option<&Bridge>) -> (String, [ClientRun; 3]) {
    let first = session.turn("Say pong").await;
    first.assert_clean();
    let stderr = bridge.map(Bridge::stderr).unwrap_or_default();
    assert_eq!(agent_messages(&first), ["pong"], "turn 1; bridge stderr:\n{stderr}");
    let thread_id = session.thread_id().expect("turn 1 reports thread.started").to_owned();
    let second = session.turn("Say pong again").await;
    second.assert_clean();
    assert_eq!(agent_messages(&second), ["pong"], "turn 2 answer");
    let third = session.turn("TOOLTEST please run the marker command").await;
    third.assert_clean();
    let outputs = command_outputs(&third);
    assert!(outputs.iter().any(|o| o.contains(TOOL_MARKER)), "Codex ran the emulator's command: {outputs:?}");
    assert_eq!(agent_messages(&third), ["pong"], "turn 3 ends with the answer after the tool output");
    (thread_id, [first, second, third])
}

/// An access token for [`CodexSession::chatgpt_websocket`]'s login for `account_id` (an unsigned JWT, valid
/// for 30 days).
pub fn chatgpt_access_token(account_id: &str) -> String {
    chatgpt_jwt(account_id, "https://api.openai.com/v1")
}

/// An unsigned ChatGPT-style JWT for `account_id` with audience `aud`, valid for 30 days.
fn chatgpt_jwt(account_id: &str, aud: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let claims = serde_json::json!({"chatgpt_plan_type": "plus", "chatgpt_user_id": "user-e2e", "user_id": "user-e2e",
        "chatgpt_account_id": account_id});
    codex_emulator::oauth::unsigned_jwt(&serde_json::json!({
        "iss": "https://auth.openai.com", "aud": [aud], "sub": "auth0|e2e", "email": "e2e@example.invalid",
        "email_verified": true, "iat": now, "exp": now + 30 * 86_400, "https://api.openai.com/auth": claims,
    }))
}
