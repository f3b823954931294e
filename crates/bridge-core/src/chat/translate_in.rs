//! A Chat Completions request translated into a Responses request (docs/reference/chat-completions.md has
//! the table, field by field).
//!
//! Invariants:
//! - **Byte-stable**: the output is a pure function of the Chat body (fields in one fixed order, each
//!   message translated on its own, part types and tool-name shortening fixed), so the same history gives
//!   the same bytes and an append-only Chat history gives an append-only Responses `input`. The only
//!   context a message reads is the messages before it (tool-output pairing), never the ones after.
//! - Every top-level field is mapped, accepted as a no-op, or refused with a 400 naming it (`param` = the
//!   field's path); an orphan tool output is dropped with a warning. Inside a message only `role`,
//!   `content`, `tool_calls` and `tool_call_id` are read (`name`, a returned `reasoning_content` and the
//!   like are ignored: the Responses input has no place for them).
//! - Work is linear in the body's size; nothing panics on client input.

use std::collections::{BTreeMap, HashMap};

use bridge_types::{ApiError, ErrorKind};
use serde_json::{Map, Value, json};

/// The longest tool name the Responses API accepts.
pub const MAX_TOOL_NAME: usize = 64;

/// What a message of the history is anchored to, for the reasoning replay ([`super::continuity`]): the
/// assistant text the client sends back, or a tool call's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Anchor {
    /// An assistant message's whole text.
    Text(String),
    /// A `function_call` / `custom_tool_call` id.
    Call(String),
}

/// A translated request.
#[derive(Debug)]
pub struct Translated {
    /// The Responses body (always `stream: true`; the bridge aggregates for `stream: false`).
    pub body: Vec<u8>,
    /// Whether the Chat client asked for a stream.
    pub client_streams: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// The model the client named (echoed in the answer).
    pub model: String,
    /// Shortened tool name → the client's name, to restore names in the answer.
    pub tool_names: HashMap<String, String>,
    /// Input item positions that start an anchored output (reasoning items are re-inserted before them).
    pub anchors: Vec<(usize, Anchor)>,
    /// Fields accepted without effect, and orphan tool outputs dropped (for a log line).
    pub notes: Vec<String>,
}

/// A 400 naming the field.
fn refuse(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(400, ErrorKind::InvalidRequestError, message).with_param(param).with_code("unsupported_parameter")
}

fn invalid(param: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(400, ErrorKind::InvalidRequestError, message).with_param(param).with_code("invalid_value")
}

/// A tool name the upstream accepts: names over [`MAX_TOOL_NAME`] characters become their first 55
/// characters, `_` and 8 hex digits of their blake3 hash (deterministic, so the same tool list always gives
/// the same names).
pub fn short_tool_name(name: &str) -> String {
    if name.chars().count() <= MAX_TOOL_NAME {
        return name.to_owned();
    }
    let hash = blake3::hash(name.as_bytes()).to_hex();
    let head: String = name.chars().take(MAX_TOOL_NAME - 9).collect();
    format!("{head}_{}", &hash[..8])
}

/// Translates a Chat Completions body.
pub fn translate(body: &[u8]) -> Result<Translated, ApiError> {
    let chat: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(400, ErrorKind::InvalidRequestError, format!("invalid JSON body: {e}")))?;
    let mut out = Map::new();
    let mut notes = Vec::new();
    let mut names = Names::default();

    let model = match chat.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        _ => return Err(invalid("model", "`model` is required and must be a non-empty string")),
    };
    check_fields(&chat, &mut notes)?;
    out.insert("model".into(), Value::from(model.clone()));

    // Tools first: assistant tool calls in the history use the same shortened names.
    let tools = match chat.get("tools") {
        None | Some(Value::Null) => None,
        Some(Value::Array(tools)) => Some(translate_tools(tools, &mut names)?),
        Some(_) => return Err(invalid("tools", "`tools` must be an array")),
    };
    let messages = match chat.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        _ => return Err(invalid("messages", "`messages` is required and must be a non-empty array")),
    };
    let (input, anchors) = translate_messages(messages, &mut names, &mut notes)?;
    out.insert("input".into(), Value::Array(input));
    if let Some(tools) = tools {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = chat.get("tool_choice").filter(|v| !v.is_null()) {
        out.insert("tool_choice".into(), tool_choice(choice, &mut names)?);
    }
    if let Some(v) = chat.get("parallel_tool_calls").filter(|v| !v.is_null()) {
        let b = v.as_bool().ok_or_else(|| invalid("parallel_tool_calls", "`parallel_tool_calls` must be a boolean"))?;
        out.insert("parallel_tool_calls".into(), Value::from(b));
    }
    if let Some(effort) = chat.get("reasoning_effort").filter(|v| !v.is_null()) {
        let effort =
            effort.as_str().ok_or_else(|| invalid("reasoning_effort", "`reasoning_effort` must be a string"))?;
        // A summary is asked for so that `reasoning_content` deltas can be streamed.
        out.insert("reasoning".into(), json!({"effort": effort, "summary": "auto"}));
        out.insert("include".into(), json!(["reasoning.encrypted_content"]));
    }
    let mut text = Map::new();
    if let Some(format) = chat.get("response_format").filter(|v| !v.is_null()) {
        text.insert("format".into(), response_format(format)?);
    }
    if let Some(v) = chat.get("verbosity").filter(|v| !v.is_null()) {
        text.insert("verbosity".into(), v.clone());
    }
    if !text.is_empty() {
        out.insert("text".into(), Value::Object(text));
    }
    let max = ["max_completion_tokens", "max_tokens"].into_iter().find_map(|k| chat.get(k).filter(|v| !v.is_null()));
    if let Some(max) = max {
        let n = max.as_u64().ok_or_else(|| invalid("max_tokens", "`max_tokens` must be a positive integer"))?;
        out.insert("max_output_tokens".into(), Value::from(n));
    }
    for key in
        ["temperature", "top_p", "store", "metadata", "prompt_cache_key", "user", "service_tier", "safety_identifier"]
    {
        if let Some(v) = chat.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    out.insert("stream".into(), Value::Bool(true));

    let client_streams = match chat.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("stream", "`stream` must be a boolean")),
    };
    let include_usage =
        chat.get("stream_options").and_then(|o| o.get("include_usage")).and_then(Value::as_bool) == Some(true);
    let body = serde_json::to_vec(&Value::Object(out))
        .map_err(|e| ApiError::new(500, ErrorKind::ServerError, format!("could not encode the request: {e}")))?;
    Ok(Translated { body, client_streams, include_usage, model, tool_names: names.restore, anchors, notes })
}

/// Chat fields the bridge knows; everything else is refused by name.
const MAPPED: &[&str] = &[
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "response_format",
    "verbosity",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "store",
    "metadata",
    "prompt_cache_key",
    "user",
    "service_tier",
    "safety_identifier",
    "stream",
    "stream_options",
];

/// Refuses what the Responses API cannot do; notes what is accepted without effect.
fn check_fields(chat: &Map<String, Value>, notes: &mut Vec<String>) -> Result<(), ApiError> {
    for (key, value) in chat {
        if MAPPED.contains(&key.as_str()) || value.is_null() {
            continue;
        }
        let neutral = match key.as_str() {
            "n" => value.as_u64() == Some(1),
            "logprobs" => value == &Value::Bool(false),
            "frequency_penalty" | "presence_penalty" => value.as_f64() == Some(0.0),
            "logit_bias" => value.as_object().is_some_and(Map::is_empty),
            "modalities" => value.as_array().is_some_and(|m| m.iter().all(|v| v == "text")),
            _ => false,
        };
        if neutral {
            notes.push(format!("{key} accepted with its neutral value"));
            continue;
        }
        let why = match key.as_str() {
            "n" => "only n = 1 is supported: the upstream produces one choice per request",
            "logprobs" | "top_logprobs" => "log probabilities are not available through this bridge",
            "audio" | "modalities" => "audio output is not supported; only text output is",
            "stop" => "stop sequences are not supported by the Responses API",
            "seed" => "`seed` is not supported by the Responses API",
            "frequency_penalty" | "presence_penalty" | "logit_bias" => {
                "penalties and logit bias are not supported by the Responses API"
            }
            "functions" | "function_call" => {
                "the legacy `functions` / `function_call` fields are not supported; use `tools`"
            }
            "prediction" => "predicted outputs are not supported by the Responses API",
            "web_search_options" => "`web_search_options` is not supported; pass a web_search tool instead",
            _ => "unknown or unsupported parameter",
        };
        return Err(refuse(key, format!("unsupported parameter `{key}`: {why}")));
    }
    Ok(())
}

/// Tool names: shortened when too long, with the map back to the client's names.
#[derive(Default)]
struct Names {
    restore: HashMap<String, String>,
}

impl Names {
    fn short(&mut self, name: &str) -> String {
        let short = short_tool_name(name);
        if short != name {
            self.restore.insert(short.clone(), name.to_owned());
        }
        short
    }
}

fn translate_tools(tools: &[Value], names: &mut Names) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let param = format!("tools[{i}]");
        let kind = tool.get("type").and_then(Value::as_str).unwrap_or("function");
        match kind {
            "function" => {
                let f = tool.get("function").and_then(Value::as_object).ok_or_else(|| {
                    invalid(&format!("{param}.function"), "a function tool needs a `function` object")
                })?;
                let name = f.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()).ok_or_else(|| {
                    invalid(&format!("{param}.function.name"), "a function tool needs a non-empty `name`")
                })?;
                let mut t = Map::new();
                t.insert("type".into(), Value::from("function"));
                t.insert("name".into(), Value::from(names.short(name)));
                for key in ["description", "parameters", "strict"] {
                    if let Some(v) = f.get(key).filter(|v| !v.is_null()) {
                        t.insert(key.into(), v.clone());
                    }
                }
                out.push(Value::Object(t));
            }
            "custom" => {
                let c = tool
                    .get("custom")
                    .and_then(Value::as_object)
                    .ok_or_else(|| invalid(&format!("{param}.custom"), "a custom tool needs a `custom` object"))?;
                let name = c.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()).ok_or_else(|| {
                    invalid(&format!("{param}.custom.name"), "a custom tool needs a non-empty `name`")
                })?;
                let mut t = Map::new();
                t.insert("type".into(), Value::from("custom"));
                t.insert("name".into(), Value::from(names.short(name)));
                for key in ["description", "format"] {
                    if let Some(v) = c.get(key).filter(|v| !v.is_null()) {
                        t.insert(key.into(), v.clone());
                    }
                }
                out.push(Value::Object(t));
            }
            other => {
                return Err(refuse(
                    &format!("{param}.type"),
                    format!("unsupported tool type `{other}`: only `function` and `custom` tools are supported"),
                ));
            }
        }
    }
    Ok(out)
}

fn tool_choice(choice: &Value, names: &mut Names) -> Result<Value, ApiError> {
    match choice {
        Value::String(s) if matches!(s.as_str(), "none" | "auto" | "required") => Ok(choice.clone()),
        Value::Object(o) => {
            let kind = o.get("type").and_then(Value::as_str).unwrap_or_default();
            let name = o.get(kind).and_then(|f| f.get("name")).and_then(Value::as_str);
            match (kind, name) {
                ("function" | "custom", Some(name)) => Ok(json!({"type": kind, "name": names.short(name)})),
                _ => Err(refuse("tool_choice", "`tool_choice` must be none, auto, required or name one function")),
            }
        }
        _ => Err(refuse("tool_choice", "`tool_choice` must be none, auto, required or name one function")),
    }
}

fn response_format(format: &Value) -> Result<Value, ApiError> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(json!({"type": "text"})),
        Some("json_object") => Ok(json!({"type": "json_object"})),
        Some("json_schema") => {
            let schema = format.get("json_schema").and_then(Value::as_object).ok_or_else(|| {
                invalid("response_format.json_schema", "a json_schema response format needs `json_schema`")
            })?;
            let mut out = Map::new();
            out.insert("type".into(), Value::from("json_schema"));
            for key in ["name", "description", "schema", "strict"] {
                if let Some(v) = schema.get(key).filter(|v| !v.is_null()) {
                    out.insert(key.into(), v.clone());
                }
            }
            Ok(Value::Object(out))
        }
        _ => Err(refuse("response_format.type", "`response_format.type` must be text, json_object or json_schema")),
    }
}

/// The kind of a tool call seen in the history, to pair its output.
#[derive(Clone, Copy)]
enum CallKind {
    Function,
    Custom,
}

type Input = (Vec<Value>, Vec<(usize, Anchor)>);

fn translate_messages(messages: &[Value], names: &mut Names, notes: &mut Vec<String>) -> Result<Input, ApiError> {
    let mut input = Vec::with_capacity(messages.len());
    let mut anchors = Vec::new();
    let mut calls: BTreeMap<String, CallKind> = BTreeMap::new();
    for (i, message) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(&format!("{param}.role"), "every message needs a `role`"))?;
        let content = message.get("content").filter(|c| !c.is_null());
        match role {
            "system" | "developer" => {
                let parts = text_parts(content, &format!("{param}.content"), "input_text")?;
                input.push(json!({"type": "message", "role": "developer", "content": parts}));
            }
            "user" => {
                let parts = user_parts(content, &format!("{param}.content"))?;
                input.push(json!({"type": "message", "role": "user", "content": parts}));
            }
            "assistant" => {
                let text = assistant_text(content, &format!("{param}.content"))?;
                if !text.is_empty() {
                    anchors.push((input.len(), Anchor::Text(text.clone())));
                    input.push(json!({"type": "message", "role": "assistant",
                        "content": [{"type": "output_text", "text": text}]}));
                }
                let tool_calls = match message.get("tool_calls") {
                    None | Some(Value::Null) => &[][..],
                    Some(Value::Array(c)) => &c[..],
                    Some(_) => return Err(invalid(&format!("{param}.tool_calls"), "`tool_calls` must be an array")),
                };
                for (j, call) in tool_calls.iter().enumerate() {
                    let cparam = format!("{param}.tool_calls[{j}]");
                    let id = match call.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                        Some(id) => id.to_owned(),
                        None => format!("call_missing_{i}_{j}"),
                    };
                    if calls.contains_key(&id) {
                        notes.push(format!("{cparam}: duplicate tool call id dropped"));
                        continue;
                    }
                    let kind = call.get("type").and_then(Value::as_str).unwrap_or("function");
                    let item = match kind {
                        "function" => {
                            let f = call.get("function");
                            let name = f.and_then(|f| f.get("name")).and_then(Value::as_str).ok_or_else(|| {
                                invalid(&format!("{cparam}.function.name"), "a tool call needs a function name")
                            })?;
                            let arguments = match f.and_then(|f| f.get("arguments")) {
                                Some(Value::String(s)) => s.clone(),
                                None | Some(Value::Null) => String::new(),
                                Some(other) => other.to_string(),
                            };
                            calls.insert(id.clone(), CallKind::Function);
                            json!({"type": "function_call", "call_id": id, "name": names.short(name),
                                "arguments": arguments})
                        }
                        "custom" => {
                            let c = call.get("custom");
                            let name = c.and_then(|c| c.get("name")).and_then(Value::as_str).ok_or_else(|| {
                                invalid(&format!("{cparam}.custom.name"), "a custom tool call needs a name")
                            })?;
                            let input_text = c.and_then(|c| c.get("input")).and_then(Value::as_str).unwrap_or("");
                            calls.insert(id.clone(), CallKind::Custom);
                            json!({"type": "custom_tool_call", "call_id": id, "name": names.short(name),
                                "input": input_text})
                        }
                        other => {
                            return Err(refuse(
                                &format!("{cparam}.type"),
                                format!("unsupported tool call type `{other}`"),
                            ));
                        }
                    };
                    anchors.push((input.len(), Anchor::Call(id)));
                    input.push(item);
                }
            }
            "tool" => {
                let id = message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(&format!("{param}.tool_call_id"), "a tool message needs `tool_call_id`"))?;
                let Some(kind) = calls.get(id).copied() else {
                    tracing::warn!(message = i, "tool message without a matching tool call dropped");
                    notes.push(format!("{param}: orphan tool output dropped (no earlier tool call {id:?})"));
                    continue;
                };
                let output = tool_output(content, &format!("{param}.content"))?;
                let kind = match kind {
                    CallKind::Function => "function_call_output",
                    CallKind::Custom => "custom_tool_call_output",
                };
                input.push(json!({"type": kind, "call_id": id, "output": output}));
            }
            "function" => {
                return Err(refuse(
                    &format!("{param}.role"),
                    "the legacy `function` role is not supported; use `tool`",
                ));
            }
            other => return Err(invalid(&format!("{param}.role"), format!("unknown message role `{other}`"))),
        }
    }
    Ok((input, anchors))
}

/// Text content as `[{type: <kind>, text}]` (a string is one part; text parts keep their order).
fn text_parts(content: Option<&Value>, param: &str, kind: &str) -> Result<Vec<Value>, ApiError> {
    match content {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![json!({"type": kind, "text": s})]),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                (Some("text"), Some(text)) => Ok(json!({"type": kind, "text": text})),
                _ => Err(refuse(&format!("{param}[{j}]"), "only text parts are allowed here")),
            })
            .collect(),
        Some(_) => Err(invalid(param, "`content` must be a string or an array of parts")),
    }
}

fn user_parts(content: Option<&Value>, param: &str) -> Result<Vec<Value>, ApiError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => return Ok(vec![json!({"type": "input_text", "text": s})]),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err(invalid(param, "`content` must be a string or an array of parts")),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let pparam = format!("{param}[{j}]");
        match part.get("type").and_then(Value::as_str) {
            Some("text") => {
                let text = part
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(&format!("{pparam}.text"), "a text part needs `text`"))?;
                out.push(json!({"type": "input_text", "text": text}));
            }
            Some("image_url") => {
                let image = part.get("image_url");
                let (url, detail) = match image {
                    Some(Value::String(url)) => (url.as_str(), None),
                    Some(Value::Object(o)) => (
                        o.get("url").and_then(Value::as_str).unwrap_or_default(),
                        o.get("detail").and_then(Value::as_str),
                    ),
                    _ => ("", None),
                };
                if url.is_empty() {
                    return Err(invalid(&format!("{pparam}.image_url"), "an image part needs a URL"));
                }
                let mut item = Map::new();
                item.insert("type".into(), Value::from("input_image"));
                item.insert("image_url".into(), Value::from(normalize_data_url(url)));
                item.insert("detail".into(), Value::from(detail.unwrap_or("auto")));
                out.push(Value::Object(item));
            }
            Some("file") => {
                let file = part.get("file").and_then(Value::as_object);
                let mut item = Map::new();
                item.insert("type".into(), Value::from("input_file"));
                for key in ["file_id", "filename", "file_data"] {
                    if let Some(v) = file.and_then(|f| f.get(key)).filter(|v| v.is_string()) {
                        item.insert(key.into(), v.clone());
                    }
                }
                if item.len() == 1 {
                    return Err(invalid(&format!("{pparam}.file"), "a file part needs `file_data` or `file_id`"));
                }
                out.push(Value::Object(item));
            }
            Some("input_audio") => {
                return Err(refuse(&pparam, "audio input is not supported by this bridge"));
            }
            other => {
                return Err(refuse(&pparam, format!("unsupported content part type {:?}", other.unwrap_or("<none>"))));
            }
        }
    }
    Ok(out)
}

/// An assistant message's text: a string, or its text (and refusal) parts joined.
fn assistant_text(content: Option<&Value>, param: &str) -> Result<String, ApiError> {
    match content {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, p) in parts.iter().enumerate() {
                match (p.get("type").and_then(Value::as_str), p.get("text").or_else(|| p.get("refusal"))) {
                    (Some("text" | "refusal"), Some(Value::String(t))) => text.push_str(t),
                    _ => {
                        return Err(refuse(
                            &format!("{param}[{j}]"),
                            "only text parts are allowed in assistant content",
                        ));
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(invalid(param, "`content` must be a string or an array of parts")),
    }
}

/// A tool output: a string stays a string; parts become input parts.
fn tool_output(content: Option<&Value>, param: &str) -> Result<Value, ApiError> {
    match content {
        None => Ok(Value::from("")),
        Some(Value::String(s)) => Ok(Value::from(s.as_str())),
        Some(Value::Array(_)) => Ok(Value::Array(user_parts(content, param)?)),
        Some(_) => Err(invalid(param, "`content` must be a string or an array of parts")),
    }
}

/// A base64 `data:` URL with URL-safe characters or missing padding, rewritten as standard base64; any
/// other URL unchanged.
pub fn normalize_data_url(url: &str) -> String {
    let Some((head, data)) = url.split_once(',') else { return url.to_owned() };
    if !head.starts_with("data:") || !head.ends_with(";base64") {
        return url.to_owned();
    }
    let mut out = String::with_capacity(url.len() + 3);
    out.push_str(head);
    out.push(',');
    out.extend(data.chars().filter(|c| !c.is_ascii_whitespace() && *c != '=').map(|c| match c {
        '-' => '+',
        '_' => '/',
        c => c,
    }));
    let len = out.len() - head.len() - 1;
    out.extend(std::iter::repeat_n('=', (4 - len % 4) % 4));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tool_names_shorten_deterministically() {
        let long = "a".repeat(80);
        let short = short_tool_name(&long);
        assert_eq!(short.len(), 64);
        assert_eq!(short, short_tool_name(&long));
        assert_ne!(short, short_tool_name(&"a".repeat(81)));
        assert_eq!(short_tool_name("bash"), "bash");
    }

    #[test]
    fn data_urls_are_normalized() {
        assert_eq!(normalize_data_url("data:image/png;base64,ab-_c"), "data:image/png;base64,ab+/c===");
        assert_eq!(normalize_data_url("data:image/png;base64,abcd"), "data:image/png;base64,abcd");
        assert_eq!(normalize_data_url("https://x/y.png"), "https://x/y.png");
    }
}
