//! `codex-bridge connect` then the real clients (issue 18, acceptance 4): a bridge holding the upstream key
//! (`--upstream-auth api-key`), `connect codex` into an empty `CODEX_HOME` and `connect opencode --project`
//! into an empty project, and nothing else configured: each client completes a turn through the bridge.

use crate::support::bridge::{BridgeHome, binary};
use crate::support::codex::{self, CodexSession};
use crate::support::gate;
use crate::support::opencode::{self, OpencodeSession};
use crate::support::process;
use crate::support::upstream;

/// Runs `codex-bridge connect ARGS` with `env` and asserts it succeeded.
async fn connect(args: &[&str], env: &[(&str, &std::path::Path)]) {
    let mut cmd = tokio::process::Command::new(binary());
    cmd.arg("connect").args(args).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let run = process::run(&format!("codex-bridge connect {}", args.join(" ")), cmd, process::CLIENT_TIMEOUT).await;
    run.assert_success();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_and_opencode_complete_a_turn_after_connect() {
    let Some(clients) = gate::clients() else { return };
    let emulator = upstream::start_emulator().await;
    let home = BridgeHome::new();
    let bridge =
        home.serve(&upstream::api_base(&emulator), "api-key", "", &[("OPENAI_API_KEY", "sk-bridge-e2e")]).await;
    let url = bridge.responses_base().trim_end_matches("/v1").to_owned();

    let mut codex_session = CodexSession::configured_by(&clients, |codex_home| async move {
        connect(
            &["codex", "--bridge-url", &url.clone()],
            &[("CODEX_HOME", codex_home.as_path()), ("HOME", codex_home.as_path())],
        )
        .await;
    })
    .await;
    let run = codex_session.turn("Say pong").await;
    run.assert_success();
    assert_eq!(codex::agent_messages(&run), ["pong"], "Codex answered through the bridge");

    let url = bridge.responses_base().trim_end_matches("/v1").to_owned();
    let mut oc = OpencodeSession::configured_by(&clients, |project| async move {
        let dir = project.to_str().unwrap().to_owned();
        connect(&["opencode", "--project", &dir, "--bridge-url", &url], &[("HOME", project.as_path())]).await;
    })
    .await;
    let run = oc.turn(&["Say", "pong"]).await;
    run.assert_success();
    assert_eq!(opencode::texts(&run), ["pong"], "OpenCode answered through the bridge");

    let calls = upstream::calls(&emulator);
    assert!(calls.iter().all(|c| c.header("authorization") == Some("Bearer sk-bridge-e2e")), "{calls:#?}");
    assert!(calls.iter().any(|c| c.header("originator") == Some("codex_exec")), "Codex's turn reached the emulator");
    assert!(bridge.stop().await.success());
    emulator.shutdown().await;
}
