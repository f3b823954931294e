//! `codex-bridge connect` on homes with existing configs (golden files under tests/fixtures/connect: set
//! CODEX_BRIDGE_UPDATE_GOLDEN=1 to rewrite them, then review the diff), `--dry-run`, `--undo`, the
//! WebSocket probe, and `completions`.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/connect").join(name)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compares `actual` with the golden file `name` (or rewrites it when asked to).
fn golden(name: &str, actual: &str) {
    let path = fixture(name);
    if std::env::var_os("CODEX_BRIDGE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    assert_eq!(actual, read(&path), "golden file {name} differs");
}

fn connect(home: &Path, args: &[&str]) -> Output {
    let out = support::command(home)
        .env("CODEX_HOME", home.join(".codex"))
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .arg("connect")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "connect {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A JSONC text as a JSON value (comments and trailing commas removed by the same parser connect uses).
fn jsonc(text: &str) -> Value {
    jsonc_parser::parse_to_serde_value::<Value>(text, &Default::default()).unwrap()
}

/// `value` without the paths connect is allowed to change.
fn without(mut value: Value, paths: &[&[&str]]) -> Value {
    for path in paths {
        let (last, parents) = path.split_last().unwrap();
        let mut v = &mut value;
        for p in parents {
            v = &mut v[*p];
        }
        if let Some(o) = v.as_object_mut() {
            o.remove(*last);
        }
    }
    value
}

#[test]
fn codex_keeps_every_unrelated_key_and_comment_and_undo_restores_it() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join(".codex/config.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let before = read(&fixture("codex.before.toml"));
    std::fs::write(&config, &before).unwrap();
    let args = ["codex", "--bridge-url", "http://127.0.0.1:8787", "--websocket", "off"];

    let dry = connect(home.path(), &[&args[..], &["--dry-run"]].concat());
    assert!(stdout(&dry).contains("+model_provider = \"codex-bridge\""), "{}", stdout(&dry));
    assert!(stdout(&dry).contains("(dry run:"));
    assert_eq!(read(&config), before, "--dry-run wrote nothing");

    let out = connect(home.path(), &args);
    assert!(stdout(&out).contains("+base_url = \"http://127.0.0.1:8787/v1\""), "{}", stdout(&out));
    let after = read(&config);
    golden("codex.after.toml", &after);
    for comment in before.lines().filter(|l| l.contains('#')) {
        assert!(after.contains(comment), "comment line kept: {comment}");
    }
    let (b, a): (toml::Table, toml::Table) = (toml::from_str(&before).unwrap(), toml::from_str(&after).unwrap());
    let mut a_rest = a.clone();
    a_rest.remove("model_provider");
    a_rest["model_providers"].as_table_mut().unwrap().remove("codex-bridge");
    assert_eq!(a_rest, b, "everything but the bridge's provider is as it was");
    assert_eq!(a["model"].as_str(), Some("gpt-5.4"), "the user's model is kept");
    assert!(a["model_providers"]["codex-bridge"].get("supports_websockets").is_none());

    let again = connect(home.path(), &args);
    assert!(stdout(&again).contains("nothing to change"), "{}", stdout(&again));

    let undo = connect(home.path(), &["--undo"]);
    assert!(stdout(&undo).contains("restored"), "{}", stdout(&undo));
    assert_eq!(read(&config), before, "--undo restores the file byte for byte");
    assert!(!home.path().join(".codex/config.toml.codex-bridge-backup").exists());
}

#[test]
fn opencode_jsonc_keeps_comments_order_and_other_providers() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join(".config/opencode/opencode.jsonc");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let before = read(&fixture("opencode.before.jsonc"));
    std::fs::write(&config, &before).unwrap();
    let out = connect(home.path(), &["opencode", "--bridge-url", "http://127.0.0.1:8787/", "--api-key-env", "CB_KEY"]);
    assert!(stdout(&out).contains("updated"), "{}", stdout(&out));
    assert!(!home.path().join(".config/opencode/opencode.json").exists(), "the existing .jsonc was edited");
    let after = read(&config);
    golden("opencode.after.jsonc", &after);
    for comment in ["// my OpenCode config", "// five minutes"] {
        assert!(after.contains(comment), "comment kept: {comment}");
    }
    let a = jsonc(&after);
    assert_eq!(a["provider"]["openai"]["options"]["baseURL"], "http://127.0.0.1:8787/v1");
    assert_eq!(a["provider"]["openai"]["options"]["apiKey"], "{env:CB_KEY}");
    let changed: &[&[&str]] =
        &[&["provider", "openai", "options", "baseURL"], &["provider", "openai", "options", "apiKey"]];
    assert_eq!(without(a.clone(), changed), without(jsonc(&before), changed), "nothing else changed");
    let keys: Vec<&String> = a.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["$schema", "theme", "model", "provider", "mcp", "autoupdate"], "key order kept");

    connect(home.path(), &["opencode", "--undo"]);
    assert_eq!(read(&config), before);
}

#[test]
fn opencode_project_file_is_created_then_removed_by_undo() {
    let home = tempfile::tempdir().unwrap();
    let project = tempfile::tempdir().unwrap();
    let dir = project.path().to_str().unwrap();
    let file = project.path().join("opencode.json");
    connect(home.path(), &["opencode", "--project", dir, "--model", "gpt-5.5-high"]);
    let created = jsonc(&read(&file));
    assert_eq!(created["model"], "openai/gpt-5.5-high");
    assert_eq!(created["provider"]["openai"]["options"]["apiKey"], "codex-bridge");
    connect(home.path(), &["opencode", "--project", dir, "--undo"]);
    assert!(!file.exists(), "undo removes the file connect created");

    let before = read(&fixture("opencode.project.before.json"));
    std::fs::write(&file, &before).unwrap();
    connect(home.path(), &["opencode", "--project", dir]);
    let after = read(&file);
    golden("opencode.project.after.json", &after);
    assert_eq!(jsonc(&after)["agent"], jsonc(&before)["agent"]);
    assert!(!home.path().join(".config/opencode").exists(), "the global config was not touched");
}

#[tokio::test]
async fn the_websocket_probe_decides_supports_websockets() {
    // The emulator accepts WebSocket on /v1/responses; a port with nothing on it does not answer.
    let emulator = codex_emulator::spawn(codex_emulator::EmulatorConfig::default()).await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let url = emulator.base_url();
    let h = home.path().to_owned();
    let out = tokio::task::spawn_blocking(move || connect(&h, &["codex", "--bridge-url", &url])).await.unwrap();
    assert!(stdout(&out).contains("serves WebSocket"), "{}", stdout(&out));
    let config = read(&home.path().join(".codex/config.toml"));
    assert!(config.contains("supports_websockets = true"), "{config}");
    emulator.shutdown().await;

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let h = home.path().to_owned();
    let out = tokio::task::spawn_blocking(move || connect(&h, &["codex", "--bridge-url", &dead])).await.unwrap();
    assert!(stdout(&out).contains("WebSocket left off"), "{}", stdout(&out));
    assert!(!read(&home.path().join(".codex/config.toml")).contains("supports_websockets"));
}

#[test]
fn completions_for_each_shell() {
    let home = tempfile::tempdir().unwrap();
    for (shell, marker) in
        [("bash", "complete -F"), ("zsh", "#compdef codex-bridge"), ("fish", "complete -c codex-bridge")]
    {
        let out = support::run(home.path(), &["completions", shell]);
        assert!(out.status.success());
        let text = stdout(&out);
        assert!(text.contains(marker), "{shell}: {text:.200}");
        assert!(text.contains("connect"), "{shell} completes the connect command");
    }
}
