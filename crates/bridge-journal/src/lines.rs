//! The records one turn adds to a rollout, in the Codex 0.169.0 shapes (`session_meta`, `event_msg`
//! `task_started` / `user_message` / `token_count` / `task_complete`, `turn_context`, `response_item`,
//! `compacted`), and the text helpers the journal needs from items.
//!
//! Invariant: a prompt's text is stored once per rollout. The `response_item` (or `compacted`) line holds
//! it in full, as the model saw it, and is what `codex resume` rebuilds the conversation from; the
//! `user_message` event only repeats it up to [`USER_MESSAGE_MAX_BYTES`] and then ends in a marker
//! ([`user_message`]), because Codex needs that event to list the rollout but only shows it.

use serde_json::{Map, Value, json};

use crate::clock::Utc;
use crate::git::GitSnapshot;

/// Token counts of one response; absent fields stay absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub input: Option<u64>,
    pub cached: Option<u64>,
    pub cache_write: Option<u64>,
    pub output: Option<u64>,
    pub reasoning: Option<u64>,
    pub total: Option<u64>,
}

impl TokenUsage {
    /// Codex's `TokenUsage` object (fields the upstream did not report are left out).
    pub fn to_codex(self) -> Value {
        let mut map = Map::new();
        for (key, value) in [
            ("input_tokens", self.input),
            ("cached_input_tokens", self.cached),
            ("cache_write_input_tokens", self.cache_write),
            ("output_tokens", self.output),
            ("reasoning_output_tokens", self.reasoning),
            ("total_tokens", self.total),
        ] {
            if let Some(v) = value {
                map.insert(key.to_owned(), v.into());
            }
        }
        Value::Object(map)
    }
}

/// Adds `last` into the running `total` field by field.
pub fn add_usage(total: Option<&Value>, last: &Value) -> Value {
    let mut sum = total.and_then(Value::as_object).cloned().unwrap_or_default();
    for (key, value) in last.as_object().into_iter().flatten() {
        let before = sum.get(key).and_then(Value::as_u64).unwrap_or(0);
        sum.insert(key.clone(), (before + value.as_u64().unwrap_or(0)).into());
    }
    Value::Object(sum)
}

/// The `session_meta` payload.
pub fn session_meta(
    thread: &str,
    at: &Utc,
    cwd: &str,
    originator: &str,
    base: Option<&str>,
    git: Option<&GitSnapshot>,
) -> Value {
    let source = if originator == "codex_exec" { "exec" } else { "cli" };
    let mut meta = json!({
        "session_id": thread, "id": thread, "timestamp": at.iso(), "cwd": cwd, "originator": originator,
        "cli_version": concat!("codex-bridge-", env!("CARGO_PKG_VERSION")), "source": source,
        "model_provider": "openai",
    });
    if let Some(text) = base {
        meta["base_instructions"] = json!({"text": text});
    }
    if let Some(g) = git {
        meta["git"] = json!({"commit_hash": g.head, "branch": g.branch});
    }
    meta
}

/// How much of a prompt the `user_message` event repeats. Typed prompts fit whole; a pasted 30 MB prompt
/// costs 4 KiB here instead of a second 30 MB.
pub const USER_MESSAGE_MAX_BYTES: usize = 4096;

/// The `event_msg` `user_message` payload (`{type, message, images}`): Codex lists a rollout (`resume
/// --last`, the picker) only if its head has one, and shows its text as the thread's preview. A text longer
/// than [`USER_MESSAGE_MAX_BYTES`] is cut at a character boundary and ends in
/// `…[codex-bridge: N of M bytes; the full prompt is in the turn's message item]`.
pub fn user_message(text: &str) -> Value {
    let message = if text.len() <= USER_MESSAGE_MAX_BYTES {
        text.to_owned()
    } else {
        let kept = text.get(..text.floor_char_boundary(USER_MESSAGE_MAX_BYTES)).unwrap_or_default();
        format!(
            "{kept}…[codex-bridge: {} of {} bytes; the full prompt is in the turn's message item]",
            kept.len(),
            text.len()
        )
    };
    json!({"type": "user_message", "message": message, "images": null})
}

/// The `turn_context` payload. The bridge does not know the client's approval and sandbox settings; it
/// writes the most restrictive values so a resumed session never gains permissions.
pub fn turn_context(turn_id: &str, cwd: &str, model: &str) -> Value {
    json!({"turn_id": turn_id, "cwd": cwd, "approval_policy": "never",
        "sandbox_policy": {"type": "read-only"}, "model": model, "summary": "none"})
}

/// The text of a message item (`content` string or parts with `text`).
pub fn message_text(item: &Value) -> String {
    match item.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

fn is_message(item: &Value, role: &str) -> bool {
    item.get("role").and_then(Value::as_str) == Some(role)
        && item.get("type").and_then(Value::as_str).is_none_or(|t| t == "message")
}

/// The last prompt a person typed among `items`: a user message that is not injected context
/// (`<environment_context>`, AGENTS.md instructions and other `<tag>` blocks).
pub fn user_prompt(items: &[Value]) -> Option<String> {
    items.iter().rev().filter(|i| is_message(i, "user")).map(message_text).find(|t| {
        let t = t.trim_start();
        !t.is_empty() && !t.starts_with('<') && !t.starts_with("# AGENTS.md instructions")
    })
}

/// The text of the last assistant message among `items`.
pub fn assistant_text(items: &[Value]) -> Option<String> {
    items.iter().rev().find(|i| is_message(i, "assistant")).map(message_text)
}

/// The first developer message's text when it is the leading input item (Codex sends its base
/// instructions there; the rollout keeps them in `session_meta`).
pub fn leading_developer_text(items: &[Value]) -> Option<String> {
    items.first().filter(|i| is_message(i, "developer")).map(message_text)
}

/// The working directory named in a request body: `<cwd>…</cwd>` (Codex environment context) or
/// `Working directory: …` (OpenCode's `<env>` block). A byte search, no JSON parse.
pub fn cwd_in_body(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let raw = if let Some(start) = text.find("<cwd>") {
        let rest = &text[start + 5..];
        &rest[..rest.find("</cwd>")?]
    } else {
        let start = text.find("Working directory: ")? + "Working directory: ".len();
        let rest = &text[start..];
        &rest[..rest.find("\\n").or_else(|| rest.find('"'))?]
    };
    let cwd: String = serde_json::from_str(&format!("\"{raw}\"")).ok()?;
    cwd.starts_with('/').then_some(cwd)
}

/// Shortens `text` to at most `max` characters on one line.
pub fn shorten(text: &str, max: usize) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut out: String = one_line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cwd_in_codex_and_opencode_bodies() {
        let codex = br#"{"input":[{"content":[{"text":"<environment_context>\n  <cwd>/work/repo</cwd>\n"}]}]}"#;
        assert_eq!(cwd_in_body(codex).as_deref(), Some("/work/repo"));
        let oc = br#"{"input":[{"content":"<env>\n  Working directory: /work/oc\n  Workspace root folder: /work"}]}"#;
        assert_eq!(cwd_in_body(oc).as_deref(), Some("/work/oc"));
        assert_eq!(cwd_in_body(b"{}"), None);
    }

    #[test]
    fn prompts_skip_injected_context() {
        let items = vec![
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix the bug"}]}),
            json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<environment_context>x"}]}),
        ];
        assert_eq!(user_prompt(&items).as_deref(), Some("fix the bug"));
        assert_eq!(shorten("a  b\nc", 10), "a b c");
        assert_eq!(shorten("abcdef", 4), "abc…");
    }
}
