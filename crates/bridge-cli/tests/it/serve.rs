//! `codex-bridge serve` and `stats` as separate processes against the emulator.

use serde_json::Value;

use crate::redis_server::RedisServer;
use crate::support::*;

async fn turn(bridge: &str, body: Vec<u8>) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{bridge}/v1/responses"))
        .header("authorization", "Bearer sk-test")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_prints_the_listening_line_proxies_and_a_second_process_reads_the_store() {
    let emulator = codex_emulator::spawn(codex_emulator::EmulatorConfig::default()).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let upstream = format!("{}/v1", emulator.base_url());
    let serve = Serve::local(home.path(), &upstream, "passthrough", &data, &[]);
    let body = capture_body("codex-exec__s1-t1__r01__POST-v1-responses.json");
    let sse = turn(&serve.url, body).await;
    assert!(sse.contains("event: response.completed"), "{sse}");
    let status = serve.terminate();
    assert!(status.success(), "serve exited with {status}");

    let out = run(home.path(), &["stats", "--json", "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["requests"], 1);
    assert!(stats["input_tokens"].as_u64().unwrap() > 1000, "{stats}");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_redis_store() {
    let Some(redis) = RedisServer::start() else { return };
    let emulator = codex_emulator::spawn(codex_emulator::EmulatorConfig::default()).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let upstream = format!("{}/v1", emulator.base_url());
    let args =
        ["--listen", "127.0.0.1:0", "--upstream", &upstream, "--upstream-auth", "passthrough", "--store", &redis.url()];
    let a = Serve::start(home.path(), &args);
    let b = Serve::start(home.path(), &args);
    let body = capture_body("opencode-openai-builtin__s1-t1__r02__POST-v1-responses.json");
    turn(&a.url, body.clone()).await;
    turn(&b.url, body).await;
    // Fork ordinals agree across the two processes: fork f1 via a, f2 via b, f1 again via b.
    let fork = |f: &str| {
        serde_json::to_vec(
            &serde_json::json!({"model": "gpt-5.5", "stream": true, "input": [{"role": "user", "content": "hi"}],
            "metadata": {"conversation_id": "conv-shared", "forkId": f}}),
        )
        .unwrap()
    };
    turn(&a.url, fork("f1")).await;
    turn(&b.url, fork("f2")).await;
    turn(&b.url, fork("f1")).await;
    // The same keyless body through either process gets the same fallback key.
    let keyless = serde_json::to_vec(&serde_json::json!({"model": "gpt-5.5", "stream": true,
        "input": [{"role": "developer", "content": "be brief"}, {"role": "user", "content": "no session here"}]}))
    .unwrap();
    turn(&a.url, keyless.clone()).await;
    turn(&b.url, keyless).await;
    let keys: Vec<String> = emulator
        .state()
        .requests()
        .iter()
        // Turns, over HTTP or as frames on an upstream socket (a handshake carries no body).
        .filter(|r| r.method != "GET")
        .map(|r| r.body["prompt_cache_key"].as_str().unwrap_or_default().to_owned())
        .collect();
    // Forks send their root's key (`fork_key = "root"`) and carry their own numbered identity as thread-id.
    assert_eq!(keys[2..5], ["cache_conv-shared", "cache_conv-shared", "cache_conv-shared"]);
    assert!(keys[5].starts_with("cache_") && keys[5] == keys[6], "{keys:?}");
    assert!(a.terminate().success());
    assert!(b.terminate().success());
    let out = run(home.path(), &["stats", "--json", "--store", &redis.url()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["requests"], 7, "{stats}");
    // Each fork is tracked under its own numbered identity, the same on both replicas.
    for (session, key) in
        [("conv-shared-fork-f1", "cache_conv-shared-fork-1"), ("conv-shared-fork-f2", "cache_conv-shared-fork-2")]
    {
        let out = run(home.path(), &["sessions", "show", session, "--json", "--store", &redis.url()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
        let rows = shown.get("turns").unwrap_or(&shown).as_array().unwrap().clone();
        assert!(!rows.is_empty() && rows.iter().all(|r| r["key"] == key), "{session}: {shown}");
    }
    emulator.shutdown().await;
}

#[test]
fn a_public_listen_address_without_tokens_refuses_to_start() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["serve", "--listen", "0.0.0.0:0", "--upstream-auth", "passthrough"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a loopback address") && stderr.contains("access tokens"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout: no listening line");
}

#[test]
fn api_key_mode_without_a_key_says_which_variable_to_set() {
    let home = tempfile::tempdir().unwrap();
    let out = run(home.path(), &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("OPENAI_API_KEY"));
}

#[test]
fn config_file_and_environment_are_read() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("bridge.toml");
    std::fs::write(&file, "listen = \"0.0.0.0:0\"\n[upstream]\nauth = \"passthrough\"\n").unwrap();
    let out = command(home.path()).args(["serve"]).env("CODEX_BRIDGE_CONFIG", &file).output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a loopback address"),
        "the file's listen address was used"
    );
    std::fs::write(&file, "lisen = 1\n").unwrap();
    let out = command(home.path()).args(["serve", "--config", file.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("bridge.toml") && stderr.contains("lisen"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_with_600_idle_sockets_under_a_512_descriptor_limit() {
    let emulator = codex_emulator::spawn(codex_emulator::EmulatorConfig::default()).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let upstream = format!("{}/v1", emulator.base_url());
    let args = ["--listen", "127.0.0.1:0", "--upstream", &upstream, "--upstream-auth", "passthrough"];
    let data_arg = ["--data-dir", data.to_str().unwrap()];
    let serve = Serve::start_command(command_with_fd_limit(home.path(), 512), &[&args[..], &data_arg[..]].concat());
    let addr = serve.url.trim_start_matches("http://").to_owned();
    // This test process needs its own 600 descriptors.
    let _ = rlimit::increase_nofile_limit(4096);
    let mut idle = Vec::new();
    for _ in 0..600 {
        match tokio::time::timeout(std::time::Duration::from_secs(2), tokio::net::TcpStream::connect(&addr)).await {
            Ok(Ok(s)) => idle.push(s),
            other => panic!("connect {} failed: {other:?}", idle.len()),
        }
    }
    // Before the cap, accept() failed with EMFILE from here on and /health never answered.
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            reqwest::Client::new().get(format!("{}/health", serve.url)).send(),
        )
        .await
        .expect("/health must answer under the descriptor limit")
        .unwrap();
        assert_eq!(r.status(), 200);
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }
    // And a real turn still goes through.
    let sse = turn(&serve.url, capture_body("codex-exec__s1-t1__r01__POST-v1-responses.json")).await;
    assert!(sse.contains("event: response.completed"));
    drop(idle);
    let status = serve.terminate();
    assert!(status.success(), "serve exited with {status}");
    emulator.shutdown().await;
}

#[test]
fn the_startup_line_never_shows_upstream_credentials_and_the_data_dir_is_private() {
    use std::io::{BufRead, BufReader};
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("fresh").join("data");
    let mut child = command(home.path())
        .env("RUST_LOG", "info")
        .args(["serve", "--listen", "127.0.0.1:0", "--upstream-auth", "passthrough", "--data-dir"])
        .arg(&data)
        .args(["--upstream", "http://alice:hunter2secret@127.0.0.1:9/v1?api_key=zzz-query-secret"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let ready = line.contains("codex-bridge ready");
            let _ = tx.send(line);
            if ready {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(std::time::Duration::from_secs(20)) {
        let ready = line.contains("codex-bridge ready");
        seen.push(line);
        if ready {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = seen.join("\n");
    assert!(text.contains("codex-bridge ready"), "{text}");
    assert!(text.contains("***@127.0.0.1:9"), "{text}");
    for secret in ["hunter2secret", "alice", "zzz-query-secret"] {
        assert!(!text.contains(secret), "{secret} in the log: {text}");
    }
    use std::os::unix::fs::PermissionsExt as _;
    for dir in [&data, &data.parent().unwrap().to_owned()] {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} has mode {mode:o}", dir.display());
    }
}
