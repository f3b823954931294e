//! OpenCode sessions: `opencode run --format json <words…>` for the first turn and
//! `opencode run --format json --session <id> <words…>` for the next ones, each a new process. The built-in
//! `openai` provider (config variant A) is re-pointed at any Responses upstream. Each session has its own
//! HOME and XDG directories, the `OPENCODE_DISABLE_*` flags of `ocenv.sh`, a cleared environment, and the
//! config in the project directory, in `OPENCODE_CONFIG` and as a user-level copy, with `PWD` set, so
//! OpenCode never falls back to its default endpoint.

use std::path::PathBuf;

use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::Command;

use super::gate::Clients;
use super::process::{self, CLIENT_TIMEOUT, ClientRun};
use super::upstream::TOOL_MARKER;

/// The main model (`model`).
pub const OPENCODE_MODEL: &str = "gpt-5.5";
/// The model of the title request (`small_model`).
pub const OPENCODE_SMALL_MODEL: &str = "gpt-5.4-mini";
/// The dummy API key OpenCode sends as `Authorization: Bearer` unless a session is given another one.
pub const OPENCODE_CLIENT_KEY: &str = "sk-dummy-e2e-key";
const DISABLE_FLAGS: [&str; 5] = [
    "OPENCODE_DISABLE_AUTOUPDATE",
    "OPENCODE_DISABLE_SHARE",
    "OPENCODE_DISABLE_MODELS_FETCH",
    "OPENCODE_DISABLE_LSP_DOWNLOAD",
    "OPENCODE_DISABLE_CLAUDE_CODE",
];

/// One OpenCode session driven through `opencode run`.
#[derive(Debug)]
pub struct OpencodeSession {
    clients: Clients,
    home: TempDir,
    project: TempDir,
    api_key: String,
    session_id: Option<String>,
    turns: usize,
    /// `OPENCODE_EXPERIMENTAL_WEBSOCKETS=1` (see [`OpencodeSession::experimental_websocket`]).
    websocket: bool,
}

impl OpencodeSession {
    /// A new session whose provider posts to `{responses_base}/responses` (e.g. `{emulator}/v1`).
    pub fn new(clients: &Clients, responses_base: &str) -> Self {
        Self::with_key(clients, responses_base, OPENCODE_CLIENT_KEY)
    }

    /// Like [`OpencodeSession::new`], with `api_key` as the provider's API key (`OPENAI_API_KEY`).
    pub fn with_key(clients: &Clients, responses_base: &str, api_key: &str) -> Self {
        Self::with_config(clients, &config_json(responses_base), api_key)
    }

    /// A session whose models come from a custom `@ai-sdk/openai-compatible` provider (config variant C):
    /// it posts Chat Completions to `{chat_base}/chat/completions`.
    pub fn chat(clients: &Clients, chat_base: &str) -> Self {
        Self::with_config(clients, &chat_config_json(chat_base), OPENCODE_CLIENT_KEY)
    }

    fn with_config(clients: &Clients, config: &Value, api_key: &str) -> Self {
        let home = tempfile::Builder::new().prefix("e2e-oc-home-").tempdir().expect("HOME temp dir");
        let project = tempfile::Builder::new().prefix("e2e-oc-proj-").tempdir().expect("project temp dir");
        let config = serde_json::to_string_pretty(config).expect("serialize opencode.json");
        let user_config = home.path().join(".config/opencode");
        std::fs::create_dir_all(&user_config).expect("create user config dir");
        std::fs::write(user_config.join("opencode.json"), &config).expect("write user opencode.json");
        std::fs::write(project.path().join("opencode.json"), &config).expect("write project opencode.json");
        Self {
            clients: clients.clone(),
            home,
            project,
            api_key: api_key.to_owned(),
            session_id: None,
            turns: 0,
            websocket: false,
        }
    }

    /// Turns on OpenCode's experimental Responses WebSocket: `OPENCODE_EXPERIMENTAL_WEBSOCKETS=1` and the key
    /// stored in `$XDG_DATA_HOME/opencode/auth.json` (the flag alone changes nothing).
    pub fn experimental_websocket(mut self) -> Self {
        let dir = self.home.path().join(".local/share/opencode");
        std::fs::create_dir_all(&dir).expect("create the opencode data dir");
        let auth = json!({"openai": {"type": "api", "key": self.api_key}});
        std::fs::write(dir.join("auth.json"), auth.to_string()).expect("write auth.json");
        self.websocket = true;
        self
    }

    /// A session whose project directory holds only what `configure(project)` writes (e.g. `codex-bridge
    /// connect opencode --project`); no user-level config.
    pub async fn configured_by<F: std::future::Future<Output = ()>>(
        clients: &Clients,
        configure: impl FnOnce(PathBuf) -> F,
    ) -> Self {
        let home = tempfile::Builder::new().prefix("e2e-oc-home-").tempdir().expect("HOME temp dir");
        let project = tempfile::Builder::new().prefix("e2e-oc-proj-").tempdir().expect("project temp dir");
        configure(project.path().to_owned()).await;
        let api_key = OPENCODE_CLIENT_KEY.to_owned();
        Self { clients: clients.clone(), home, project, api_key, session_id: None, turns: 0, websocket: false }
    }

    /// The session id (`ses_…`) reported by the first turn's events.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// Forgets the current session: the next turn starts a new session in the same project and HOME.
    /// Returns the id of the session left.
    pub fn new_session(&mut self) -> Option<String> {
        self.session_id.take()
    }

    /// Run one turn; pass the prompt as separate words (OpenCode re-quotes an argument with spaces). Returns
    /// the parsed events; the caller checks [`ClientRun::assert_success`].
    pub async fn turn(&mut self, words: &[&str]) -> ClientRun {
        self.turn_with(&[], words).await
    }

    /// Like [`OpencodeSession::turn`], with extra `opencode run` flags (`--auto` approves tool calls).
    pub async fn turn_with(&mut self, flags: &[&str], words: &[&str]) -> ClientRun {
        self.turns += 1;
        let mut cmd = Command::new(self.clients.opencode());
        cmd.args(["run", "--format", "json"]).args(flags);
        if let Some(id) = &self.session_id {
            cmd.args(["--session", id]);
        }
        cmd.args(words).current_dir(self.project.path()).env_clear();
        for (name, value) in self.env() {
            cmd.env(name, value);
        }
        let what = format!("opencode run (turn {})", self.turns);
        let run = process::run(&what, cmd, CLIENT_TIMEOUT).await;
        if self.session_id.is_none() {
            self.session_id = session_id(&run);
        }
        run
    }

    fn env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        let home = self.home.path();
        let dir = |sub: &str| home.join(sub).into_os_string();
        let mut env = vec![
            ("PATH", self.clients.path_env()),
            ("HOME", home.as_os_str().to_owned()),
            ("XDG_CONFIG_HOME", dir(".config")),
            ("XDG_DATA_HOME", dir(".local/share")),
            ("XDG_CACHE_HOME", dir(".cache")),
            ("XDG_STATE_HOME", dir(".local/state")),
            ("PWD", self.project.path().as_os_str().to_owned()),
            ("OPENCODE_CONFIG", self.config_path().into_os_string()),
            ("OPENAI_API_KEY", self.api_key.clone().into()),
            ("LANG", "C.UTF-8".into()),
        ];
        env.extend(DISABLE_FLAGS.iter().map(|&flag| (flag, "1".into())));
        if self.websocket {
            env.push(("OPENCODE_EXPERIMENTAL_WEBSOCKETS", "1".into()));
        }
        env
    }

    fn config_path(&self) -> PathBuf {
        self.project.path().join("opencode.json")
    }
}

/// Tokens of a run, summed over its `step_finish` events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepTokens {
    /// Uncached prompt tokens (OpenCode subtracts the cache reads).
    pub input: u64,
    /// Output tokens.
    pub output: u64,
    /// Prompt tokens read from the upstream's cache.
    pub cache_read: u64,
    /// Prompt tokens the upstream reported as written to its cache.
    pub cache_write: u64,
}

/// Sum the token counts of the run's `step_finish` events.
pub fn step_tokens(run: &ClientRun) -> StepTokens {
    let mut sum = StepTokens::default();
    for tokens in run.events_of_type("step_finish").filter_map(|e| e.pointer("/part/tokens")) {
        let get = |p: &str| tokens.pointer(p).and_then(Value::as_u64).unwrap_or(0);
        sum.input += get("/input");
        sum.output += get("/output");
        sum.cache_read += get("/cache/read");
        sum.cache_write += get("/cache/write");
    }
    sum
}

/// The number of `step_finish` events of the run.
pub fn step_count(run: &ClientRun) -> usize {
    run.events_of_type("step_finish").count()
}

/// The `sessionID` of the run's first event that has one.
pub fn session_id(run: &ClientRun) -> Option<String> {
    run.events.iter().find_map(|e| e.get("sessionID")?.as_str().map(str::to_owned))
}

/// The texts of the run's `text` events.
pub fn texts(run: &ClientRun) -> Vec<String> {
    run.events_of_type("text").filter_map(|e| e.pointer("/part/text")?.as_str().map(str::to_owned)).collect()
}

/// Config variant A (docs/reference/clients.md): the built-in `openai` provider re-pointed.
fn config_json(responses_base: &str) -> Value {
    json!({
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": false,
        "share": "disabled",
        "model": format!("openai/{OPENCODE_MODEL}"),
        "small_model": format!("openai/{OPENCODE_SMALL_MODEL}"),
        "provider": {
            "openai": { "options": { "baseURL": responses_base, "apiKey": "{env:OPENAI_API_KEY}" } }
        }
    })
}

/// The provider name of config variant C in these tests.
pub const CHAT_PROVIDER: &str = "bridgechat";

/// Config variant C (docs/clients.md): a custom provider on `@ai-sdk/openai-compatible` (bundled with
/// OpenCode 1.18.33), both models declared with tool calls.
fn chat_config_json(chat_base: &str) -> Value {
    let model = json!({ "name": "via codex-bridge (chat)", "tool_call": true, "reasoning": true,
        "limit": { "context": 400000, "output": 128000 } });
    json!({
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": false,
        "share": "disabled",
        "model": format!("{CHAT_PROVIDER}/{OPENCODE_MODEL}"),
        "small_model": format!("{CHAT_PROVIDER}/{OPENCODE_SMALL_MODEL}"),
        "provider": {
            CHAT_PROVIDER: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "codex-bridge (chat completions)",
                "options": { "baseURL": chat_base, "apiKey": "{env:OPENAI_API_KEY}" },
                "models": { OPENCODE_MODEL: model, OPENCODE_SMALL_MODEL: model }
            }
        }
    })
}

/// The outputs of the run's completed `tool_use` events (tools OpenCode ran).
pub fn tool_outputs(run: &ClientRun) -> Vec<String> {
    run.events_of_type("tool_use")
        .filter(|e| e.pointer("/part/state/status").and_then(Value::as_str) == Some("completed"))
        .map(|e| e.pointer("/part/state/output").and_then(Value::as_str).unwrap_or_default().to_owned())
        .collect()
}

/// Three OpenCode runs on `session`: `Say pong`, `Say pong again` (`--session`), then a tool turn with
/// `--auto` (the emulator calls `bash`, OpenCode runs it and sends the output back). Each must exit 0 and
/// answer `pong`; turn 1 reads nothing from a fresh emulator's cache and turn 2 reads something; the tool
/// turn ran the emulator's command in two steps. Returns the session id and the three runs.
pub async fn three_turns(session: &mut OpencodeSession) -> (String, [ClientRun; 3]) {
    let first = session.turn(&["Say", "pong"]).await;
    first.assert_success();
    let sid = session.session_id().expect("turn 1 events carry a sessionID").to_owned();
    assert_eq!(texts(&first), ["pong"], "turn 1 answer");
    let second = session.turn(&["Say", "pong", "again"]).await;
    second.assert_success();
    assert_eq!(texts(&second), ["pong"], "turn 2 answer");
    let (tokens1, tokens2) = (step_tokens(&first), step_tokens(&second));
    assert_eq!(tokens1.cache_read, 0, "a fresh emulator has nothing cached for turn 1");
    assert!(tokens2.cache_read > 0, "turn 2 must report cache reads: {tokens1:?} then {tokens2:?}");
    let tool = session.turn_with(&["--auto"], &["TOOLTEST", "please", "run", "the", "marker", "command"]).await;
    tool.assert_success();
    let outputs = tool_outputs(&tool);
    assert!(outputs.iter().any(|o| o.contains(TOOL_MARKER)), "OpenCode ran the emulator's command: {outputs:?}");
    assert_eq!(step_count(&tool), 2, "the tool step, then the answer step");
    (sid, [first, second, tool])
}
