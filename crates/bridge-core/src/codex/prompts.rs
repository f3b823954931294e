//! Edits to the system-side messages of a request in Codex mode: the bridge prompt about tool names, the
//! volatile environment blocks (`<env>`, `<files>`), and recognition of OpenCode's own Codex prompt.
//!
//! Invariants: only `developer`/`system` messages are touched (assistant history never is); every edit is
//! a pure function of the request and the cached prompt text, so the same request always gives the same
//! bytes, and the bridge prompt is never present twice.

use serde_json::{Value, json};

/// The bridge prompt: Codex instructions name Codex's tools; the client's tools are what exist.
pub const BRIDGE_PROMPT: &str = "# codex-bridge: tools\n\
The tools you can call are exactly the ones listed in this request, with the names and argument schemas \
given there. The instructions above may mention tools of the Codex CLI (such as `shell`, `apply_patch` or \
`update_plan`) that do not exist here: use the listed tool that does the same job instead (for example the \
client's shell, edit or todo tool), and never call a tool that is not listed.";

/// The sentence OpenCode puts before its `<env>` block.
const ENV_HEADER: &str = "Here is some useful information about the environment you are running in:";
const BLOCKS: &[(&str, &str)] = &[("<env>", "</env>"), ("<files>", "</files>")];

/// A developer message with one `input_text` part.
pub fn developer_message(text: &str) -> Value {
    json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": text}]})
}

/// Whether `item` is a developer or system message.
pub fn is_system_side(item: &Value) -> bool {
    matches!(item.get("role").and_then(Value::as_str), Some("developer" | "system"))
        && item.get("type").and_then(Value::as_str).is_none_or(|t| t == "message")
}

/// The text of a message: string content, or its text parts joined with `\n`.
pub fn text_of(item: &Value) -> Option<String> {
    match item.get("content")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
        _ => None,
    }
}

/// Whether `items` already hold the bridge prompt.
pub fn has_bridge_prompt(items: &[Value]) -> bool {
    items.iter().any(|i| is_system_side(i) && text_of(i).is_some_and(|t| t.trim() == BRIDGE_PROMPT))
}

/// Applies `edit` to each text of a message (string content or each text part); returns whether any
/// text changed.
fn edit_texts(item: &mut Value, mut edit: impl FnMut(&str) -> Option<String>) -> bool {
    let mut changed = false;
    match item.get_mut("content") {
        Some(Value::String(s)) => {
            if let Some(new) = edit(s) {
                *s = new;
                changed = true;
            }
        }
        Some(Value::Array(parts)) => {
            for part in parts.iter_mut() {
                if let Some(Value::String(s)) = part.get_mut("text")
                    && let Some(new) = edit(s)
                {
                    *s = new;
                    changed = true;
                }
            }
        }
        _ => {}
    }
    changed
}

/// Whether a message has no text left.
pub fn is_empty_message(item: &Value) -> bool {
    text_of(item).is_none_or(|t| t.trim().is_empty())
}

/// Removes the environment header and blocks from a developer/system message; returns the removed blocks
/// (trimmed, in order).
pub fn take_env_blocks(item: &mut Value) -> Vec<String> {
    let mut taken = Vec::new();
    edit_texts(item, |text| {
        let (rest, blocks) = split_env(text);
        if blocks.is_empty() {
            return None;
        }
        taken.extend(blocks);
        Some(rest)
    });
    taken
}

/// `text` without the env header and blocks, and the blocks.
fn split_env(text: &str) -> (String, Vec<String>) {
    let mut rest = text.to_owned();
    let mut blocks = Vec::new();
    for (open, close) in BLOCKS {
        while let Some(start) = rest.find(open) {
            let Some(end) = rest[start..].find(close).map(|e| start + e + close.len()) else { break };
            blocks.push(rest[start..end].trim().to_owned());
            let after = if rest[end..].starts_with('\n') { end + 1 } else { end };
            rest.replace_range(start..after, "");
        }
    }
    if !blocks.is_empty()
        && let Some(pos) = rest.find(ENV_HEADER)
    {
        let mut end = pos + ENV_HEADER.len();
        while rest[end..].starts_with(['\n', ' ']) {
            end += 1;
        }
        rest.replace_range(pos..end, "");
    }
    (rest, blocks)
}

/// Removes OpenCode's Codex prompt from the start of a developer/system message (compared after trimming);
/// returns whether it was there. What follows it (model line, environment, skills) stays.
pub fn remove_opencode_prompt(item: &mut Value, prompt: &str) -> bool {
    let prompt = prompt.trim();
    if prompt.is_empty() {
        return false;
    }
    let mut first = true;
    edit_texts(item, |text| {
        if !std::mem::take(&mut first) {
            return None;
        }
        let rest = text.trim_start().strip_prefix(prompt)?;
        Some(rest.trim_start().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENCODE: &str = "You are OpenCode.\n\nBe useful.\nYou are powered by gpt-5.5\n\
Here is some useful information about the environment you are running in:\n<env>\n  Today's date: Mon Nov 23 2026\n</env>\n\
Skills provide specialized instructions.";

    #[test]
    fn env_blocks_move_out_and_the_rest_stays() {
        let mut m = json!({"role": "developer", "content": OPENCODE});
        let blocks = take_env_blocks(&mut m);
        assert_eq!(blocks, ["<env>\n  Today's date: Mon Nov 23 2026\n</env>"]);
        assert_eq!(
            m["content"],
            "You are OpenCode.\n\nBe useful.\nYou are powered by gpt-5.5\nSkills provide specialized instructions."
        );
        let mut again = m.clone();
        assert!(take_env_blocks(&mut again).is_empty());
        assert_eq!(again, m);
    }

    #[test]
    fn opencode_prompt_is_removed_only_at_the_start() {
        let mut m = json!({"role": "developer", "content": [{"type": "input_text", "text": OPENCODE}]});
        assert!(remove_opencode_prompt(&mut m, "You are OpenCode.\n\nBe useful.\n"));
        assert!(text_of(&m).unwrap().starts_with("You are powered by gpt-5.5"));
        let mut other = json!({"role": "developer", "content": "Intro. You are OpenCode.\n\nBe useful."});
        assert!(!remove_opencode_prompt(&mut other, "You are OpenCode.\n\nBe useful."));
    }

    #[test]
    fn bridge_prompt_detection() {
        let items = vec![developer_message(BRIDGE_PROMPT), json!({"role": "user", "content": "hi"})];
        assert!(has_bridge_prompt(&items));
        assert!(!has_bridge_prompt(&items[1..]));
        assert!(!is_system_side(&json!({"role": "assistant", "content": "x"})));
    }
}
