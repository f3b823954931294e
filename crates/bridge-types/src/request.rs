//! [`ResponsesRequest`]: an ordered, lazily decoded view of a Responses API request body.
//!
//! Invariants:
//! - Parsing checks that the body is one JSON object without duplicate keys at any depth, and that the fields
//!   the bridge relies on have the documented types; a failure names the JSON path (`input[2]`, `stream`,
//!   `metadata.a` for a duplicate key).
//! - Parsing is linear in the body size whatever its shape (many keys, deep nesting, long strings, many items):
//!   one serde_json pass collects the top-level fields into an index map, one scan checks every object for
//!   duplicate keys ([`unique`]), and field lookups by name are hash lookups.
//! - Field order is kept. An unchanged request serialises back to the same key order and the same value bytes
//!   (only insignificant whitespace between top-level tokens may differ), and callers forward the original
//!   bytes when nothing changed ([`ResponsesRequest::is_modified`]).
//! - Unknown fields are preserved untouched.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use indexmap::IndexMap;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

mod unique;

/// Why a request body was refused. `param` is the JSON path of the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub message: String,
    pub param: Option<String>,
    pub code: &'static str,
}

impl RequestError {
    fn at(param: impl Into<String>, message: impl Into<String>, code: &'static str) -> Self {
        Self { message: message.into(), param: Some(param.into()), code }
    }
}

/// The top-level fields of a request, in order: each as raw JSON text, except an `input` array, held as its
/// items (each raw JSON text), so every consumer reads the items without parsing the array again.
#[derive(Debug, Clone)]
pub struct ResponsesRequest {
    fields: IndexMap<String, Field>,
    modified: bool,
}

/// One top-level value.
#[derive(Debug, Clone)]
enum Field {
    Raw(Box<RawValue>),
    /// `input` when it is an array.
    Items(Vec<Box<RawValue>>),
}

impl Field {
    fn raw(&self) -> Option<&RawValue> {
        match self {
            Field::Raw(raw) => Some(raw),
            Field::Items(_) => None,
        }
    }

    /// The value's JSON text length (items joined by commas inside brackets).
    fn text_len(&self) -> usize {
        match self {
            Field::Raw(raw) => raw.get().len(),
            Field::Items(items) => items.iter().map(|i| i.get().len() + 1).sum::<usize>() + 2,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Field::Raw(raw) => out.extend_from_slice(raw.get().as_bytes()),
            Field::Items(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(item.get().as_bytes());
                }
                out.push(b']');
            }
        }
    }
}

/// Calls of [`ResponsesRequest::parse`] in this process (tests show that an exchange is parsed once).
static PARSES: AtomicU64 = AtomicU64::new(0);

/// How many times [`ResponsesRequest::parse`] ran in this process.
pub fn parse_count() -> u64 {
    PARSES.load(Ordering::Relaxed)
}

/// Expected JSON type of a known top-level field.
#[derive(Clone, Copy)]
enum Kind {
    String,
    Bool,
    Number,
    Integer,
    Array,
    Object,
    StringOrArray,
}

/// Fields whose type the bridge depends on; `null` is accepted for all of them except `model` and `input`.
const KNOWN: &[(&str, Kind)] = &[
    ("model", Kind::String),
    ("input", Kind::StringOrArray),
    ("instructions", Kind::String),
    ("stream", Kind::Bool),
    ("store", Kind::Bool),
    ("parallel_tool_calls", Kind::Bool),
    ("background", Kind::Bool),
    ("prompt_cache_key", Kind::String),
    ("promptCacheKey", Kind::String),
    ("previous_response_id", Kind::String),
    ("service_tier", Kind::String),
    ("tools", Kind::Array),
    ("include", Kind::Array),
    ("metadata", Kind::Object),
    ("client_metadata", Kind::Object),
    ("reasoning", Kind::Object),
    ("text", Kind::Object),
    ("temperature", Kind::Number),
    ("top_p", Kind::Number),
    ("max_output_tokens", Kind::Integer),
];

/// The top-level fields in order, and whether a key repeated (the first value is kept; [`unique`] then reports
/// the duplicate with its path).
struct Fields {
    fields: IndexMap<String, Field>,
    duplicate: bool,
}

/// Reads `input`: an array as its raw items (one pass over the array), anything else as raw JSON text (a
/// string is re-encoded, which changes its bytes only in escapes; an unchanged request is forwarded as the
/// client's original bytes anyway).
struct InputSeed;

impl<'de> serde::de::DeserializeSeed<'de> for InputSeed {
    type Value = Field;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Field, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for InputSeed {
    type Value = Field;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an array of items")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Field, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(16));
        while let Some(item) = seq.next_element::<Box<RawValue>>()? {
            items.push(item);
        }
        Ok(Field::Items(items))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Field, E> {
        encoded(&v)
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Field, E> {
        encoded(&v)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Field, E> {
        encoded(&v)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Field, E> {
        encoded(&v)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Field, E> {
        encoded(&v)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Field, E> {
        encoded(&())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field, A::Error> {
        // Refused by `check` (an object is neither a string nor an array); only its first byte matters.
        while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
        encoded(&serde_json::Map::new())
    }
}

fn encoded<T: Serialize + ?Sized, E: serde::de::Error>(value: &T) -> Result<Field, E> {
    serde_json::value::to_raw_value(value).map(Field::Raw).map_err(E::custom)
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = IndexMap::with_capacity(map.size_hint().unwrap_or(16));
                let mut duplicate = false;
                while let Some(key) = map.next_key::<String>()? {
                    let value =
                        if key == "input" { map.next_value_seed(InputSeed)? } else { Field::Raw(map.next_value()?) };
                    if fields.contains_key(&key) {
                        duplicate = true;
                    } else {
                        fields.insert(key, value);
                    }
                }
                Ok(Fields { fields, duplicate })
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

impl ResponsesRequest {
    /// Parses and checks a request body.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        PARSES.fetch_add(1, Ordering::Relaxed);
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(RequestError {
                message: "request body is empty; expected a JSON object".into(),
                param: None,
                code: "invalid_json",
            });
        }
        let Fields { fields, duplicate } = serde_json::from_slice(body).map_err(|e| RequestError {
            message: format!("invalid JSON body: {e}"),
            param: None,
            code: "invalid_json",
        })?;
        // serde_json accepted the body, so the duplicate scan may rely on its structure.
        if let Some(dup) = unique::first_duplicate(body) {
            let unique::Duplicate { path, key, top_level, line, column } = dup;
            let at = if top_level { String::new() } else { format!(" `{path}`,") };
            return Err(RequestError::at(
                path,
                format!("invalid JSON body: duplicate key `{key}` at{at} line {line} column {column}"),
                "invalid_json",
            ));
        }
        if duplicate {
            return Err(RequestError {
                message: "invalid JSON body: duplicate top-level key".into(),
                param: None,
                code: "invalid_json",
            });
        }
        let request = Self { fields, modified: false };
        request.check()?;
        Ok(request)
    }

    fn check(&self) -> Result<(), RequestError> {
        if self.raw("model").is_none() {
            return Err(RequestError::at(
                "model",
                "Missing required parameter: 'model'.",
                "missing_required_parameter",
            ));
        }
        for (name, kind) in KNOWN {
            let Some(raw) = self.raw(name) else { continue };
            let text = raw.get();
            let first = text.as_bytes().first().copied().unwrap_or(b' ');
            let nullable = !matches!(*name, "model" | "input");
            if first == b'n' && nullable {
                continue;
            }
            let ok = match kind {
                Kind::String => first == b'"',
                Kind::Bool => first == b't' || first == b'f',
                Kind::Number => first == b'-' || first.is_ascii_digit(),
                Kind::Integer => (first == b'-' || first.is_ascii_digit()) && !text.contains(['.', 'e', 'E']),
                Kind::Array => first == b'[',
                Kind::Object => first == b'{',
                Kind::StringOrArray => first == b'"' || first == b'[',
            };
            if !ok {
                let want = match kind {
                    Kind::String => "a string",
                    Kind::Bool => "a boolean",
                    Kind::Number => "a number",
                    Kind::Integer => "an integer",
                    Kind::Array => "an array",
                    Kind::Object => "an object",
                    Kind::StringOrArray => "a string or an array of items",
                };
                return Err(RequestError::at(
                    *name,
                    format!("Invalid type for '{name}': expected {want}."),
                    "invalid_type",
                ));
            }
        }
        if let Some(items) = self.input_items() {
            for (i, item) in items.iter().enumerate() {
                if !item.get().starts_with('{') {
                    return Err(RequestError::at(
                        format!("input[{i}]"),
                        format!("Invalid type for 'input[{i}]': expected an object."),
                        "invalid_type",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The raw JSON text of a top-level field; `None` when absent and for an `input` array (read it with
    /// [`Self::input_items`]).
    pub fn raw(&self, key: &str) -> Option<&RawValue> {
        self.fields.get(key).and_then(Field::raw)
    }

    /// Whether the field is present (an `input` array included).
    pub fn contains(&self, key: &str) -> bool {
        self.fields.contains_key(key)
    }

    /// The JSON text length of a field (0 when absent).
    pub fn text_len(&self, key: &str) -> usize {
        self.fields.get(key).map_or(0, Field::text_len)
    }

    /// Decodes one top-level field; `Ok(None)` when absent or `null`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, RequestError> {
        let Some(raw) = self.raw(key) else { return Ok(None) };
        if raw.get() == "null" {
            return Ok(None);
        }
        serde_json::from_str(raw.get())
            .map(Some)
            .map_err(|e| RequestError::at(key, format!("Invalid value for '{key}': {e}"), "invalid_value"))
    }

    /// A string field, or `None` when absent, null or not a string.
    pub fn get_str(&self, key: &str) -> Option<String> {
        self.get::<String>(key).ok().flatten()
    }

    /// `model`, when it is a string.
    pub fn model(&self) -> Option<String> {
        self.get_str("model")
    }

    /// `stream`, defaulting to false as in the Responses API.
    pub fn stream(&self) -> bool {
        self.get::<bool>("stream").ok().flatten().unwrap_or(false)
    }

    /// The `input` items as raw JSON (split at parse time), or `None` when `input` is absent or not an array.
    pub fn input_items(&self) -> Option<&[Box<RawValue>]> {
        match self.fields.get("input")? {
            Field::Items(items) => Some(items),
            Field::Raw(_) => None,
        }
    }

    /// `input` when it is a string, decoded.
    pub fn input_text(&self) -> Option<String> {
        self.raw("input").filter(|r| r.get().starts_with('"')).and_then(|r| serde_json::from_str(r.get()).ok())
    }

    /// Replaces `input` by these items (in place when present, else appended at the end).
    pub fn set_input_items(&mut self, items: Vec<Box<RawValue>>) {
        match self.fields.get_mut("input") {
            Some(field) => *field = Field::Items(items),
            None => {
                self.fields.insert("input".to_owned(), Field::Items(items));
            }
        }
        self.modified = true;
    }

    /// Takes the `input` items out (leaving an empty array, a change), to move them into a new input
    /// without copying; `None` when `input` is not an array.
    pub fn take_input_items(&mut self) -> Option<Vec<Box<RawValue>>> {
        let Some(Field::Items(items)) = self.fields.get_mut("input") else { return None };
        self.modified = true;
        Some(std::mem::take(items))
    }

    /// Appends one item after the last `input` item; the earlier items keep their bytes. Returns false (and
    /// changes nothing) when `input` is not an array.
    pub fn push_input_item(&mut self, item: Box<RawValue>) -> bool {
        let Some(Field::Items(items)) = self.fields.get_mut("input") else { return false };
        items.push(item);
        self.modified = true;
        true
    }

    /// Top-level keys in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// Sets a field: replaced in place when present, appended at the end otherwise.
    pub fn set<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), serde_json::Error> {
        let raw = serde_json::value::to_raw_value(value)?;
        self.set_raw(key, raw);
        Ok(())
    }

    /// Sets a field to already-serialised JSON.
    pub fn set_raw(&mut self, key: &str, raw: Box<RawValue>) {
        match self.fields.get_mut(key) {
            Some(Field::Raw(v)) if v.get() == raw.get() => {}
            Some(v) => {
                *v = Field::Raw(raw);
                self.modified = true;
            }
            None => {
                self.fields.insert(key.to_owned(), Field::Raw(raw));
                self.modified = true;
            }
        }
    }

    /// Removes a field; true when it was present.
    pub fn remove(&mut self, key: &str) -> bool {
        let removed = self.fields.shift_remove(key).is_some();
        self.modified |= removed;
        removed
    }

    /// Renames a field in place (keeping its position), e.g. `promptCacheKey` to `prompt_cache_key`.
    /// Does nothing when `from` is absent or `to` already exists.
    pub fn rename(&mut self, from: &str, to: &str) {
        if self.fields.contains_key(to) {
            return;
        }
        if let Some(index) = self.fields.get_index_of(from)
            && self.fields.replace_index(index, to.to_owned()).is_ok()
        {
            self.modified = true;
        }
    }

    /// Whether any edit changed the request since parsing.
    pub fn is_modified(&self) -> bool {
        self.modified
    }

    /// Serialises the fields back, in order, compactly at the top level (values keep their own bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let len: usize = self.fields.iter().map(|(k, v)| k.len() + v.text_len() + 8).sum();
        let mut out = Vec::with_capacity(len + 2);
        out.push(b'{');
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Keys were decoded from JSON; re-encoding a String cannot fail.
            let key = serde_json::to_string(k).unwrap_or_else(|_| format!("\"{k}\""));
            out.extend_from_slice(key.as_bytes());
            out.push(b':');
            v.write(&mut out);
        }
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
