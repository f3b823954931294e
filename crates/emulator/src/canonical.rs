//! Canonical JSON: object keys sorted recursively, no whitespace.
//!
//! Invariant: two JSON values that differ only in object key order give identical bytes (Codex's
//! `client_metadata` key order changes between requests; see clients/README.md §5 item 10).

use serde_json::Value;

/// Append the canonical encoding of `value` to `out`.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                if let Some(v) = map.get(*key) {
                    write_canonical(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_string(s, out),
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // serde_json's string encoding is deterministic; writing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Canonical bytes of `value`.
pub fn canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

/// Canonical bytes of an input item with its top-level `id` removed (ids differ across threads for
/// identical content; codex-wire.md §2.3).
pub fn canonical_item(item: &Value) -> Vec<u8> {
    match item {
        Value::Object(map) if map.contains_key("id") => {
            let mut m = map.clone();
            m.remove("id");
            canonical(&Value::Object(m))
        }
        other => canonical(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_and_ids_do_not_matter() {
        let a = json!({"b":1,"a":{"y":[1,"x"],"x":null},"id":"msg_1"});
        let b = json!({"a":{"x":null,"y":[1,"x"]},"id":"msg_2","b":1});
        assert_eq!(canonical_item(&a), canonical_item(&b));
        assert_eq!(canonical(&json!({"b":1,"a":"é"})), r#"{"a":"é","b":1}"#.as_bytes().to_vec());
    }
}
