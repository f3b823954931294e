//! `codex-bridge connect codex|opencode [--project DIR] [--dry-run] [--undo]`: points a client at the bridge
//! by editing the client's own config file.
//!
//! - Codex: `$CODEX_HOME/config.toml` (default `~/.codex/config.toml`) gets `model_provider =
//!   "codex-bridge"` and a `[model_providers.codex-bridge]` table (`base_url`, `wire_api = "responses"`,
//!   `env_key` when `--api-key-env` is given, `supports_websockets = true` only when the running bridge
//!   accepts a WebSocket upgrade on `/v1/responses`, probed unless `--websocket on|off`).
//! - OpenCode: `opencode.json` (or an existing `opencode.jsonc`; global under `$XDG_CONFIG_HOME/opencode`,
//!   or in `--project DIR`) gets `provider.openai.options.baseURL` and `apiKey` (the built-in provider,
//!   re-pointed, so nothing is downloaded).
//!
//! Invariants: every other key, comment and the key order stay as they were (TOML through `toml_edit`;
//! JSON/JSONC through a concrete syntax tree, `jsonc-parser`: only the values set here are rewritten); the
//! first connect keeps a backup (`<file>.codex-bridge-backup`, or a `<file>.codex-bridge-created` marker when
//! there was no file) that later connects never overwrite, and `--undo` puts it back; `--dry-run` writes
//! nothing; writes are atomic (temporary file + rename) and keep the file's permissions.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{CstInputValue, CstObject, CstRootNode};

use crate::cli::{ConnectArgs, ConnectClient, WebsocketMode};

/// The provider id written into Codex's config.
pub const PROVIDER: &str = "codex-bridge";
/// The model set when the config names none (and `--model` is not given).
pub const DEFAULT_MODEL: &str = "gpt-5.5";
/// What OpenCode sends as its API key when no `--api-key-env` is given: any value works on a loopback bridge
/// without access tokens.
pub const PLACEHOLDER_KEY: &str = "codex-bridge";

/// What to write, whichever client.
#[derive(Debug, Clone)]
pub struct Target {
    /// The bridge's OpenAI base URL, ending in `/v1`.
    pub base_url: String,
    pub api_key_env: Option<String>,
    pub model: Option<String>,
    pub websocket: bool,
}

/// Codex's `config.toml` with the bridge as its provider.
pub fn codex_config(text: &str, target: &Target) -> anyhow::Result<String> {
    use toml_edit::{DocumentMut, Item, Table, value};
    let mut doc: DocumentMut = text.parse().context("the existing config.toml is not valid TOML")?;
    if let Some(model) = &target.model {
        doc["model"] = value(model.as_str());
    } else if !doc.contains_key("model") {
        doc["model"] = value(DEFAULT_MODEL);
    }
    doc["model_provider"] = value(PROVIDER);
    let providers = doc.entry("model_providers").or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    let Some(providers) = providers.as_table_like_mut() else {
        bail!("model_providers in config.toml is not a table");
    };
    let entry = providers.entry(PROVIDER).or_insert(Item::Table(Table::new()));
    let Some(p) = entry.as_table_like_mut() else {
        bail!("model_providers.{PROVIDER} in config.toml is not a table");
    };
    p.insert("name", value(PROVIDER));
    p.insert("base_url", value(target.base_url.as_str()));
    p.insert("wire_api", value("responses"));
    match &target.api_key_env {
        Some(var) => {
            p.insert("env_key", value(var.as_str()));
        }
        None => {
            p.remove("env_key");
        }
    }
    if target.websocket {
        p.insert("supports_websockets", value(true));
    } else {
        p.remove("supports_websockets");
    }
    Ok(doc.to_string())
}

fn set(obj: &CstObject, name: &str, v: CstInputValue) {
    match obj.get(name) {
        Some(prop) => prop.set_value(v),
        None => {
            obj.append(name, v);
        }
    }
}

/// OpenCode's `opencode.json(c)` with the built-in `openai` provider pointed at the bridge.
pub fn opencode_config(text: &str, target: &Target) -> anyhow::Result<String> {
    let fresh = text.trim().is_empty();
    let root = CstRootNode::parse(if fresh { "{}\n" } else { text }, &ParseOptions::default())
        .map_err(|e| anyhow::anyhow!("the existing OpenCode config is not valid JSON/JSONC: {e}"))?;
    let Some(obj) = root.object_value_or_create() else {
        bail!("the OpenCode config is not a JSON object");
    };
    if fresh {
        obj.append("$schema", "https://opencode.ai/config.json".into());
    }
    let model = target.model.as_ref().map(|m| format!("openai/{m}"));
    match model {
        Some(m) => set(&obj, "model", m.into()),
        None if obj.get("model").is_none() => set(&obj, "model", format!("openai/{DEFAULT_MODEL}").into()),
        None => {}
    }
    let Some(provider) = obj.object_value_or_create("provider") else { bail!("`provider` is not an object") };
    let Some(openai) = provider.object_value_or_create("openai") else { bail!("`provider.openai` is not an object") };
    let Some(options) = openai.object_value_or_create("options") else {
        bail!("`provider.openai.options` is not an object")
    };
    set(&options, "baseURL", target.base_url.as_str().into());
    let key = target.api_key_env.as_ref().map_or_else(|| PLACEHOLDER_KEY.to_owned(), |v| format!("{{env:{v}}}"));
    set(&options, "apiKey", key.into());
    let mut out = root.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// A unified diff of `old` → `new` (empty when equal).
pub fn diff(path: &Path, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let name = path.display().to_string();
    similar::TextDiff::from_lines(old, new).unified_diff().context_radius(3).header(&name, &name).to_string()
}

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from).context("HOME is not set")
}

/// Codex's config file: `$CODEX_HOME/config.toml`, else `~/.codex/config.toml`.
pub fn codex_path() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("CODEX_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => home()?.join(".codex"),
    };
    Ok(dir.join("config.toml"))
}

/// OpenCode's config file in `dir`: an existing `opencode.json`, else an existing `opencode.jsonc`, else a
/// new `opencode.json`.
fn opencode_in(dir: &Path) -> PathBuf {
    let json = dir.join("opencode.json");
    let jsonc = dir.join("opencode.jsonc");
    if !json.exists() && jsonc.exists() { jsonc } else { json }
}

/// OpenCode's config file: in `project`, else `$XDG_CONFIG_HOME/opencode/` (default `~/.config/opencode/`).
pub fn opencode_path(project: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = project {
        return Ok(opencode_in(p));
    }
    let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => home()?.join(".config"),
    };
    Ok(opencode_in(&config.join("opencode")))
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Where the first connect keeps the file as it was.
pub fn backup_path(path: &Path) -> PathBuf {
    sibling(path, ".codex-bridge-backup")
}

/// The marker saying the first connect created the file.
pub fn created_marker(path: &Path) -> PathBuf {
    sibling(path, ".codex-bridge-created")
}

/// Writes `text` to `path` atomically, keeping an existing file's permissions.
fn write_atomic(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = sibling(path, ".codex-bridge-tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(&tmp, meta.permissions())?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}

/// Whether the bridge at `bridge_url` accepts a WebSocket upgrade on `/v1/responses`. The probe sends the
/// bearer a client would (the `--api-key-env` variable's value, else the placeholder) and closes at once.
async fn probe_websocket(bridge_url: &str, api_key_env: Option<&str>) -> Result<bool, String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let ws = bridge_url.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
    let url = format!("{}/v1/responses", ws.trim_end_matches('/'));
    let mut request = url.as_str().into_client_request().map_err(|e| format!("bad bridge URL {bridge_url}: {e}"))?;
    let token = api_key_env.and_then(|v| std::env::var(v).ok()).unwrap_or_else(|| PLACEHOLDER_KEY.to_owned());
    if let Ok(mut v) = format!("Bearer {token}").parse::<tokio_tungstenite::tungstenite::http::HeaderValue>() {
        v.set_sensitive(true);
        request.headers_mut().insert("authorization", v);
    }
    match tokio::time::timeout(Duration::from_secs(3), tokio_tungstenite::connect_async(request)).await {
        Ok(Ok((mut socket, _))) => {
            let _ = socket.close(None).await;
            Ok(true)
        }
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
            if response.status() == 401 {
                Err(format!("the bridge refused the probe without a token ({})", response.status()))
            } else {
                Ok(false)
            }
        }
        Ok(Err(e)) => Err(format!("the bridge at {bridge_url} is not reachable ({e})")),
        Err(_) => Err(format!("the bridge at {bridge_url} did not answer within 3 s")),
    }
}

pub async fn run(args: ConnectArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let clients = match args.client {
        Some(c) => vec![c],
        None if args.undo => vec![ConnectClient::Codex, ConnectClient::Opencode],
        None => bail!("name the client: `codex-bridge connect codex` or `codex-bridge connect opencode`"),
    };
    for client in clients {
        let path = match client {
            ConnectClient::Codex => {
                if args.project.is_some() {
                    bail!(
                        "Codex reads its providers from CODEX_HOME, not from a project: run with \
                         CODEX_HOME=DIR for a separate Codex home"
                    );
                }
                codex_path()?
            }
            ConnectClient::Opencode => opencode_path(args.project.as_deref())?,
        };
        if args.undo {
            undo(&path, args.dry_run, &mut out)?;
            continue;
        }
        let websocket = match (client, args.websocket) {
            (ConnectClient::Opencode, _) | (_, WebsocketMode::Off) => false,
            (_, WebsocketMode::On) => true,
            (_, WebsocketMode::Auto) => match probe_websocket(&args.bridge_url, args.api_key_env.as_deref()).await {
                Ok(ws) => {
                    let verdict = if ws { "serves" } else { "does not serve" };
                    writeln!(out, "the bridge {verdict} WebSocket on /v1/responses")?;
                    ws
                }
                Err(why) => {
                    writeln!(
                        out,
                        "WebSocket left off: {why} (run connect again with the bridge up, or pass --websocket on)"
                    )?;
                    false
                }
            },
        };
        let target = Target {
            base_url: format!("{}/v1", args.bridge_url.trim_end_matches('/')),
            api_key_env: args.api_key_env.clone(),
            model: args.model.clone(),
            websocket,
        };
        let old = match std::fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let before = old.as_deref().unwrap_or_default();
        let new = match client {
            ConnectClient::Codex => codex_config(before, &target),
            ConnectClient::Opencode => opencode_config(before, &target),
        }
        .with_context(|| format!("cannot update {}", path.display()))?;
        let change = diff(&path, before, &new);
        if change.is_empty() {
            writeln!(out, "{} already points at the bridge; nothing to change", path.display())?;
            continue;
        }
        write!(out, "{change}")?;
        if args.dry_run {
            writeln!(out, "(dry run: {} not written)", path.display())?;
            continue;
        }
        let (backup, marker) = (backup_path(&path), created_marker(&path));
        if backup.exists() || marker.exists() {
            writeln!(out, "keeping the backup from the first connect")?;
        } else if old.is_some() {
            std::fs::copy(&path, &backup).with_context(|| format!("cannot back up to {}", backup.display()))?;
        } else {
            write_atomic(&marker, "created by `codex-bridge connect`; `codex-bridge connect --undo` removes it\n")?;
        }
        write_atomic(&path, &new)?;
        let undo_hint = if backup.exists() { format!("backup: {}", backup.display()) } else { "new file".to_owned() };
        writeln!(out, "updated {} ({undo_hint}; undo with `codex-bridge connect --undo`)", path.display())?;
    }
    Ok(())
}

fn undo(path: &Path, dry_run: bool, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let (backup, marker) = (backup_path(path), created_marker(path));
    let current = std::fs::read_to_string(path).unwrap_or_default();
    if backup.exists() {
        let saved = std::fs::read_to_string(&backup)?;
        write!(out, "{}", diff(path, &current, &saved))?;
        if !dry_run {
            write_atomic(path, &saved)?;
            std::fs::remove_file(&backup)?;
            writeln!(out, "restored {} from {}", path.display(), backup.display())?;
        }
    } else if marker.exists() {
        write!(out, "{}", diff(path, &current, ""))?;
        if !dry_run {
            if path.exists() {
                std::fs::remove_file(path)?;
            }
            std::fs::remove_file(&marker)?;
            writeln!(out, "removed {} (connect had created it)", path.display())?;
        }
    } else {
        writeln!(out, "{}: no connect to undo", path.display())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(ws: bool) -> Target {
        Target { base_url: "http://127.0.0.1:8787/v1".into(), api_key_env: None, model: None, websocket: ws }
    }

    #[test]
    fn codex_on_an_empty_home() {
        let out = codex_config("", &target(false)).unwrap();
        assert_eq!(
            out,
            "model = \"gpt-5.5\"\nmodel_provider = \"codex-bridge\"\n\n[model_providers.codex-bridge]\nname = \"codex-bridge\"\nbase_url = \"http://127.0.0.1:8787/v1\"\nwire_api = \"responses\"\n"
        );
        let again = codex_config(&out, &target(true)).unwrap();
        assert!(again.contains("supports_websockets = true"), "{again}");
        assert!(!codex_config(&again, &target(false)).unwrap().contains("supports_websockets"));
    }

    #[test]
    fn opencode_on_an_empty_home_and_a_non_object_refused() {
        let out = opencode_config("", &target(false)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["provider"]["openai"]["options"]["baseURL"], "http://127.0.0.1:8787/v1");
        assert_eq!(v["model"], "openai/gpt-5.5");
        assert!(opencode_config("[1]", &target(false)).is_err());
        assert!(opencode_config("{\"provider\": 3}", &target(false)).is_err());
        assert!(codex_config("model_providers = 3", &target(false)).is_err());
    }
}
