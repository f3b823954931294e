//! The deterministic reply: which output items a request gets.
//!
//! Rules (the same as the capture server the real clients were verified against,
//! clients/capture_server.py `plan`): a reasoning item with `encrypted_content` first when the request
//! has a non-null `reasoning`; then, if the last user message contains [`TOOL_TRIGGER`] and no
//! `function_call_output`/`custom_tool_call_output` follows the last item mentioning it, one
//! `function_call` to the request's shell-like tool; otherwise one assistant message with the reply text.
//! A request header [`CALL_HEADER`] (`NAME {json args}`) forces one `function_call` to `NAME` with those
//! arguments instead, unless the last input item is already a tool output (so a client loop ends).
//! Invariants: the plan depends only on the request body, the reply text and the id seed (no state
//! survives between requests, so keep-alive reuse cannot leak a plan; clients/README.md §2).

use serde_json::{Map, Value, json};

/// The trigger word in the last user message that asks for a tool call.
pub const TOOL_TRIGGER: &str = "TOOLTEST";
/// The shell command the emulated tool call runs.
pub const TOOL_COMMAND: &str = "echo emulator-tool-ok";
/// Request header that forces a function call: `NAME` or `NAME {json arguments}` (for plan-tool tests).
pub const CALL_HEADER: &str = "x-emulator-call";
/// Reasoning tokens reported when a reasoning item is produced.
pub const REASONING_TOKENS: u64 = 8;
/// Preferred tools, in order; otherwise the first `function` tool is called.
const PREFERRED_TOOLS: &[&str] = &["exec_command", "shell", "bash", "shell_command"];

fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" ")
        }
        _ => String::new(),
    }
}

/// Whether the request asks for a tool call (trigger in the last user message, not yet answered).
pub fn wants_tool_call(body: &Value) -> bool {
    let last_user = match body.get("input") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .rev()
            .find(|it| it.get("role").and_then(Value::as_str) == Some("user"))
            .map(|it| text_of(it.get("content")))
            .unwrap_or_default(),
        _ => String::new(),
    };
    if !last_user.contains(TOOL_TRIGGER) {
        return false;
    }
    let Some(items) = body.get("input").and_then(Value::as_array) else { return true };
    let last_mention = items.iter().rposition(|it| it.to_string().contains(TOOL_TRIGGER)).map_or(0, |i| i + 1);
    !items.get(last_mention..).unwrap_or_default().iter().any(|it| {
        matches!(it.get("type").and_then(Value::as_str), Some("function_call_output" | "custom_tool_call_output"))
    })
}

/// The tool to call and its JSON arguments, matched to the tool's parameter schema.
pub fn tool_call(body: &Value) -> Option<(String, String)> {
    let tools: Vec<&Value> = body
        .get("tools")
        .and_then(Value::as_array)?
        .iter()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("function") && t.get("name").is_some())
        .collect();
    let tool = PREFERRED_TOOLS
        .iter()
        .find_map(|p| tools.iter().find(|t| t.get("name").and_then(Value::as_str) == Some(p)))
        .or_else(|| tools.first())?;
    let name = tool.get("name").and_then(Value::as_str)?.to_owned();
    let params = tool.get("parameters").cloned().unwrap_or(Value::Null);
    let props = params.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
    let is_array = |key: &str| props.get(key).and_then(|p| p.get("type")).and_then(Value::as_str) == Some("array");
    let mut args = Map::new();
    let command_value = |key: &str| {
        if is_array(key) { json!(["bash", "-lc", TOOL_COMMAND]) } else { json!(TOOL_COMMAND) }
    };
    if props.contains_key("cmd") {
        args.insert("cmd".into(), command_value("cmd"));
    } else if props.contains_key("command") {
        args.insert("command".into(), command_value("command"));
    }
    if props.contains_key("description") {
        args.insert("description".into(), json!("Echo a marker"));
    }
    for req in params.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if !args.contains_key(req)
            && props.get(req).and_then(|p| p.get("type")).and_then(Value::as_str) == Some("string")
        {
            args.insert(req.into(), json!("marker"));
        }
    }
    Some((name, Value::Object(args).to_string()))
}

/// Parses a [`CALL_HEADER`] value into the tool name and its JSON arguments (`{}` when absent); `None`
/// when the arguments are not a JSON object.
pub fn forced_call(header: &str) -> Option<(String, String)> {
    let header = header.trim();
    let (name, args) = header.split_once(char::is_whitespace).unwrap_or((header, "{}"));
    let args: Value = serde_json::from_str(args.trim()).ok()?;
    (!name.is_empty() && args.is_object()).then(|| (name.to_owned(), args.to_string()))
}

/// Whether the last input item is a tool output (a forced call was already answered).
fn last_is_tool_output(body: &Value) -> bool {
    body.get("input").and_then(Value::as_array).and_then(|items| items.last()).is_some_and(|it| {
        matches!(it.get("type").and_then(Value::as_str), Some("function_call_output" | "custom_tool_call_output"))
    })
}

/// Output items for `body` (final form, as in `response.output_item.done`); `forced` comes from
/// [`CALL_HEADER`].
pub fn plan(body: &Value, reply_text: &str, seed: &str, forced: Option<(String, String)>) -> Vec<Value> {
    let id = |prefix: &str| format!("{prefix}_{}", &blake3::hash(format!("{seed}:{prefix}").as_bytes()).to_hex()[..32]);
    let mut items = Vec::new();
    if body.get("reasoning").is_some_and(|r| !r.is_null()) {
        items.push(json!({"id": id("rs"), "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "**Thinking** emulator reasoning summary"}],
            "encrypted_content": format!("gAAAAA-emulator-encrypted-{}", &id("enc")[4..])}));
    }
    let call = match forced {
        Some(call) if !last_is_tool_output(body) => Some(call),
        Some(_) => None,
        None if wants_tool_call(body) => tool_call(body),
        None => None,
    };
    if let Some((name, arguments)) = call {
        items.push(json!({"id": id("fc"), "type": "function_call", "status": "completed",
            "arguments": arguments, "call_id": format!("call_{}", &id("call")[5..29]), "name": name}));
        return items;
    }
    items.push(json!({"id": id("msg"), "type": "message", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": reply_text, "annotations": [], "logprobs": []}]}));
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_and_schema_matching() {
        let codex = json!({"tools": [{"type": "function", "name": "write_stdin", "parameters": {}},
            {"type": "function", "name": "exec_command", "parameters": {"properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}],
            "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "run TOOLTEST"}]}]});
        assert!(wants_tool_call(&codex));
        assert_eq!(tool_call(&codex).unwrap(), ("exec_command".into(), r#"{"cmd":"echo emulator-tool-ok"}"#.into()));
        let mut answered = codex;
        answered["input"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "function_call_output", "call_id": "c", "output": "ok"}));
        assert!(!wants_tool_call(&answered));
        let oc = json!({"tools": [{"type": "function", "name": "apply_patch", "parameters": {}},
            {"type": "function", "name": "bash", "parameters": {"properties": {"command": {"type": "string"}, "description": {"type": "string"}}, "required": ["command", "description"]}}]});
        assert_eq!(tool_call(&oc).unwrap().1, r#"{"command":"echo emulator-tool-ok","description":"Echo a marker"}"#);
        let shell = json!({"tools": [{"type": "function", "name": "shell", "parameters": {"properties": {"command": {"type": "array"}}}}]});
        assert_eq!(tool_call(&shell).unwrap().1, r#"{"command":["bash","-lc","echo emulator-tool-ok"]}"#);
    }

    #[test]
    fn forced_call_header() {
        let forced = forced_call(r#"update_plan {"plan":[{"step":"a","status":"pending"}]}"#).unwrap();
        assert_eq!(forced.0, "update_plan");
        let body = json!({"input": [{"type": "message", "role": "user", "content": "hi"}]});
        let items = plan(&body, "pong", "s", Some(forced.clone()));
        assert_eq!(items[0]["name"], "update_plan");
        assert_eq!(
            serde_json::from_str::<Value>(items[0]["arguments"].as_str().unwrap()).unwrap()["plan"][0]["step"],
            "a"
        );
        let answered = json!({"input": [{"type": "function_call_output", "call_id": "c", "output": "ok"}]});
        assert_eq!(plan(&answered, "pong", "s", Some(forced))[0]["type"], "message");
        assert_eq!(forced_call("todowrite").unwrap().1, "{}");
        assert!(forced_call("x [1]").is_none());
    }
}
