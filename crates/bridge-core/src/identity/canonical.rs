//! Canonical JSON written straight from the JSON text: keys sorted at every level, no whitespace, strings
//! and numbers encoded as serde_json encodes them. No value tree is built: the text is read once by a
//! serde visitor that writes scalars as they come and sorts each object's entries from one scratch buffer.
//!
//! Invariant: the output is byte for byte what serialising the parsed `serde_json::Value` with sorted keys
//! gives (the digests stored by earlier versions stay valid); a test compares the two on generated JSON.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// What the top level of an item said about itself while it was written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ItemFacts {
    /// The top-level `id` when it is a string (the key is left out of the output whatever its type).
    pub id: Option<String>,
    /// The top-level `role` is `"user"`.
    pub user: bool,
}

/// Writes the canonical form of the JSON text `raw` to `out`. With `top_level_item`, a top-level object's
/// `id` key is left out and reported in the facts with `role`. Invalid JSON writes `null`.
pub fn write(raw: &str, top_level_item: bool, out: &mut Vec<u8>) -> ItemFacts {
    write_with(raw, top_level_item, false, out)
}

/// Like [`write`] for an item, in the form in which an item a client echoes equals the output item the
/// upstream sent (the Responses API reads both the same way):
/// - object members whose value is `null` or `[]` are left out at any depth (Codex adds `"content": null`
///   to reasoning; OpenCode leaves out a text's empty `annotations` and `logprobs`);
/// - at the top level, `status` (output only) and `"type": "message"` (the default of an item with a
///   `role`, which OpenCode leaves out) are left out, and so is Codex's client-side
///   `internal_chat_message_metadata_passthrough` (Codex's own delta rule clears it before comparing,
///   docs/reference/websocket.md §1.2).
///
/// Only the upstream socket's delta rule uses it; the identity's fingerprints keep [`write`], so stored
/// chains do not change.
pub fn write_item_for_delta(raw: &str, out: &mut Vec<u8>) -> ItemFacts {
    write_with(raw, true, true, out)
}

/// Top-level item members [`write_item_for_delta`] leaves out whatever their value.
const NOT_COMPARED: &[&str] = &["status", "internal_chat_message_metadata_passthrough"];

fn write_with(raw: &str, top_level_item: bool, delta_form: bool, out: &mut Vec<u8>) -> ItemFacts {
    let start = out.len();
    let mut facts = ItemFacts::default();
    let mut de = serde_json::Deserializer::from_str(raw);
    let seed = Canon { out: &mut *out, item: top_level_item.then_some(&mut facts), delta_form };
    if seed.deserialize(&mut de).and_then(|()| de.end()).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"null");
        return ItemFacts::default();
    }
    facts
}

/// One value to write; `item` is set for the top level of an input item.
struct Canon<'a> {
    out: &'a mut Vec<u8>,
    item: Option<&'a mut ItemFacts>,
    /// The delta rule's form ([`write_item_for_delta`]), here and below.
    delta_form: bool,
}

impl<'de> DeserializeSeed<'de> for Canon<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// `"text"`, for text that needs no escapes.
fn quoted(out: &mut Vec<u8>, text: &str) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// An object key, borrowed from the text when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// A scalar as serde_json writes it (writing to a `Vec` cannot fail).
fn scalar<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = serde_json::to_writer(out, value);
}

impl<'de> Visitor<'de> for Canon<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        scalar(self.out, &v);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        scalar(self.out, &v);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        scalar(self.out, &v);
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        // As `Value` does: a non-finite float (unreachable from JSON text) is null.
        if v.is_finite() {
            scalar(self.out, &v);
        } else {
            self.out.extend_from_slice(b"null");
        }
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        scalar(self.out, v);
        Ok(())
    }
    /// A string without escapes in the text: its canonical form is its text (a JSON string with no
    /// backslash holds no character that must be escaped), so it is copied, not re-encoded.
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<(), E> {
        quoted(self.out, v);
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.out.push(b'[');
        let mut first = true;
        loop {
            let at = self.out.len();
            if !first {
                self.out.push(b',');
            }
            if seq.next_element_seed(Canon { out: &mut *self.out, item: None, delta_form: self.delta_form })?.is_none()
            {
                self.out.truncate(at);
                break;
            }
            first = false;
        }
        self.out.push(b']');
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Entries are written to a scratch buffer as they come, then copied out in key order.
        let mut scratch = Vec::new();
        let mut entries: Vec<(Cow<'de, str>, std::ops::Range<usize>)> = Vec::new();
        let mut item = self.item;
        while let Some(key) = map.next_key_seed(Key)? {
            if let Some(facts) = item.as_deref_mut() {
                match &*key {
                    "id" => {
                        facts.id = map.next_value::<serde_json::Value>()?.as_str().map(str::to_owned);
                        continue;
                    }
                    k if self.delta_form && NOT_COMPARED.contains(&k) => {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        continue;
                    }
                    "type" if self.delta_form => {
                        let start = scratch.len();
                        map.next_value_seed(Canon { out: &mut scratch, item: None, delta_form: true })?;
                        if &scratch[start..] == b"\"message\"" {
                            scratch.truncate(start);
                        } else {
                            entries.push((key, start..scratch.len()));
                        }
                        continue;
                    }
                    "role" => {
                        let start = scratch.len();
                        map.next_value_seed(Canon { out: &mut scratch, item: None, delta_form: self.delta_form })?;
                        facts.user = &scratch[start..] == b"\"user\"";
                        entries.push((key, start..scratch.len()));
                        continue;
                    }
                    _ => {}
                }
            }
            let start = scratch.len();
            map.next_value_seed(Canon { out: &mut scratch, item: None, delta_form: self.delta_form })?;
            if self.delta_form && matches!(&scratch[start..], b"null" | b"[]") {
                scratch.truncate(start);
                continue;
            }
            entries.push((key, start..scratch.len()));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        self.out.push(b'{');
        for (i, (key, range)) in entries.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            match key {
                Cow::Borrowed(text) => quoted(self.out, text),
                Cow::Owned(text) => scalar(self.out, text.as_str()),
            }
            self.out.push(b':');
            self.out.extend_from_slice(&scratch[range.clone()]);
        }
        self.out.push(b'}');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;

    /// The reference: the parsed value with sorted keys (what the fingerprint wrote before).
    fn reference(value: &Value, skip_id: bool) -> Vec<u8> {
        fn go(value: &Value, skip: Option<&str>, out: &mut Vec<u8>) {
            match value {
                Value::Object(map) => {
                    let mut entries: Vec<_> = map.iter().filter(|(k, _)| Some(k.as_str()) != skip).collect();
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                    out.push(b'{');
                    for (i, (k, v)) in entries.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        let _ = serde_json::to_writer(&mut *out, k);
                        out.push(b':');
                        go(v, None, out);
                    }
                    out.push(b'}');
                }
                Value::Array(items) => {
                    out.push(b'[');
                    for (i, v) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        go(v, None, out);
                    }
                    out.push(b']');
                }
                scalar => {
                    let _ = serde_json::to_writer(&mut *out, scalar);
                }
            }
        }
        let mut out = Vec::new();
        go(value, skip_id.then_some("id"), &mut out);
        out
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
            Just(Value::from("quote\" backslash\\ newline\n tab\t \u{1} é 🦀")),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(
                    (prop_oneof!["[a-z]{1,3}", Just("id".to_owned()), Just("role".to_owned())], inner),
                    0..6
                )
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn matches_the_value_tree_form(value in json(), skip_id in any::<bool>()) {
            // The reference reads the same text (serde_json's float parsing is not an exact round trip).
            let text = value.to_string();
            let value: Value = serde_json::from_str(&text).unwrap();
            let mut out = Vec::new();
            let facts = write(&text, skip_id, &mut out);
            let is_object = value.is_object();
            let expected = reference(&value, skip_id && is_object);
            prop_assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(&expected));
            if skip_id && is_object {
                prop_assert_eq!(facts.id.as_deref(), value.get("id").and_then(Value::as_str));
                prop_assert_eq!(facts.user, value.get("role").and_then(Value::as_str) == Some("user"));
            }
        }
    }

    #[test]
    fn pretty_text_and_nested_keys() {
        let mut out = Vec::new();
        let facts = write(
            "{ \"b\": {\"y\":1, \"x\":[{\"d\":2,\"c\":\"s\"}]},\n \"id\": \"i1\", \"role\":\"user\", \"a\":null }",
            true,
            &mut out,
        );
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"a":null,"b":{"x":[{"c":"s","d":2}],"y":1},"role":"user"}"#);
        assert_eq!(facts, ItemFacts { id: Some("i1".into()), user: true });
        let mut bad = Vec::new();
        write("{\"a\":", true, &mut bad);
        assert_eq!(bad, b"null");
    }
}
