//! Canonical JSON: object keys sorted recursively, no whitespace.
//!
//! Invariant: two JSON values that differ only in object key order give identical bytes (Codex's
//! `client_metadata` key order changes between requests; see clients/README.md §5 item 10).

use serde_json::Value;

/// Append the canonical encoding of `value` to `out`.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    write_value(value, false, out);
}

/// `value` canonically; with `rendered`, without the object members that do not render ([`renders`]).
fn write_value(value: &Value, rendered: bool, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let members = map.iter().filter(|(_, v)| !rendered || renders(v)).map(|(k, v)| (k.as_str(), v));
            write_members(members, rendered, out);
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, rendered, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_string(s, out),
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

/// An object's members in key order, each value written by [`write_value`].
fn write_members<'a>(members: impl Iterator<Item = (&'a str, &'a Value)>, rendered: bool, out: &mut Vec<u8>) {
    let mut members: Vec<(&str, &Value)> = members.collect();
    members.sort_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        write_value(value, rendered, out);
    }
    out.push(b'}');
}

/// Appends `s` as a JSON string, byte for byte what `serde_json` writes: `"` and `\\` escaped, the short
/// escapes for backspace, form feed, newline, carriage return and tab, `\u00xx` (lower-case hex) for the other
/// control characters, everything else (DEL and non-ASCII included) as is. Runs without any such byte are
/// found eight bytes at a time: long prompts are mostly such runs.
fn write_string(s: &str, out: &mut Vec<u8>) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS != 0;
    let needs_escape = |w: u64| {
        w.wrapping_sub(ONES * 0x20) & !w & HIGHS != 0 || has_zero(w ^ (ONES * 0x22)) || has_zero(w ^ (ONES * 0x5c))
    };
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            if !needs_escape(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escaped: Option<&[u8]> = match b {
            b'"' => Some(b"\\\""),
            b'\\' => Some(b"\\\\"),
            0x08 => Some(b"\\b"),
            0x0c => Some(b"\\f"),
            b'\n' => Some(b"\\n"),
            b'\r' => Some(b"\\r"),
            b'\t' => Some(b"\\t"),
            _ => None,
        };
        if let Some(e) = escaped {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(e);
            start = i + 1;
        } else if b < 0x20 {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Canonical bytes of `value`.
pub fn canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

/// Canonical bytes of an input item as the model reads it: what does not render in the prompt is left out,
/// so the spellings of one item by different clients (or by the emulator's own output) give the same bytes:
/// - the top-level `id` (ids differ across threads for identical content; codex-wire.md §2.3), `status`
///   (output only) and `internal_chat_message_metadata_passthrough` (Codex's client-side metadata);
/// - object members whose value is `null` or `[]`, at any depth (Codex echoes reasoning with
///   `"content": null`; OpenCode leaves out a text's empty `annotations` and `logprobs`);
/// - an item with a `role` and no `type` is written with `"type": "message"`, its default (OpenCode's
///   spelling of messages).
///
/// codex-bridge's upstream delta rule treats the same spellings as one item, so a delta and the same turn
/// sent whole make the same prompt here.
pub fn canonical_item(item: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match item {
        Value::Object(map) => {
            let default_type = (map.contains_key("role") && !map.contains_key("type")).then_some(("type", &*MESSAGE));
            let kept = map
                .iter()
                .filter(|(k, v)| !NOT_RENDERED.contains(&k.as_str()) && renders(v))
                .map(|(k, v)| (k.as_str(), v))
                .chain(default_type);
            write_members(kept, true, &mut out);
        }
        other => write_value(other, true, &mut out),
    }
    out
}

/// Top-level item members that never render in the prompt.
const NOT_RENDERED: &[&str] = &["id", "status", "internal_chat_message_metadata_passthrough"];
/// The default `type` of an item with a `role`.
static MESSAGE: std::sync::LazyLock<Value> = std::sync::LazyLock::new(|| Value::String("message".to_owned()));

/// Whether an object member renders at all (`null` and `[]` do not).
fn renders(value: &Value) -> bool {
    !matches!(value, Value::Null) && !matches!(value, Value::Array(items) if items.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_are_written_exactly_as_serde_json_writes_them() {
        let mut samples: Vec<String> = (0u32..0x80).filter_map(char::from_u32).map(String::from).collect();
        samples.extend(
            [
                "",
                "plain ascii text that is longer than eight bytes",
                "tab\there, quote \" and backslash \\ at odd offsets\u{1}\u{1f}\u{7f}",
                "héllo — ünïcode ✓ 🎉 mixed with \n newlines \r\n and \u{0c}\u{08}",
                "\"\"\"\"\"\"\"\"\"",
                "abcdefg\\",
            ]
            .map(String::from),
        );
        let long: String = (0..2000u32).map(|i| char::from_u32(i % 0x500).unwrap_or('x')).collect();
        samples.push(long);
        for s in samples {
            let mut ours = Vec::new();
            write_string(&s, &mut ours);
            assert_eq!(String::from_utf8(ours).unwrap(), serde_json::to_string(&s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn spellings_that_do_not_render_give_the_same_item() {
        let emulator = json!({"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "pong", "annotations": [], "logprobs": []}]});
        let opencode = json!({"role": "assistant", "content": [{"type": "output_text", "text": "pong"}]});
        let codex = json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "pong",
            "annotations": [], "logprobs": []}], "internal_chat_message_metadata_passthrough": {"turn_id": "t"}});
        assert_eq!(canonical_item(&emulator), canonical_item(&opencode));
        assert_eq!(canonical_item(&codex), canonical_item(&opencode));
        assert_eq!(
            String::from_utf8(canonical_item(&opencode)).unwrap(),
            r#"{"content":[{"text":"pong","type":"output_text"}],"role":"assistant","type":"message"}"#
        );
        let reasoning =
            json!({"type": "reasoning", "summary": [{"type": "summary_text", "text": "t"}], "encrypted_content": "e"});
        let mut echoed = reasoning.clone();
        echoed["content"] = Value::Null;
        assert_eq!(canonical_item(&reasoning), canonical_item(&echoed));
        // What renders still counts.
        assert_ne!(
            canonical_item(&opencode),
            canonical_item(&json!({"role": "user", "content": [{"type": "output_text", "text": "pong"}]}))
        );
        assert_ne!(
            canonical_item(&reasoning),
            canonical_item(&json!({"type": "reasoning", "summary": [], "encrypted_content": "e"}))
        );
    }

    #[test]
    fn key_order_and_ids_do_not_matter() {
        let a = json!({"b":1,"a":{"y":[1,"x"],"x":null},"id":"msg_1"});
        let b = json!({"a":{"x":null,"y":[1,"x"]},"id":"msg_2","b":1});
        assert_eq!(canonical_item(&a), canonical_item(&b));
        assert_eq!(canonical(&json!({"b":1,"a":"é"})), r#"{"a":"é","b":1}"#.as_bytes().to_vec());
    }
}
