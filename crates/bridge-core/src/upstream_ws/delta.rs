//! Codex's delta rule for a lineage's upstream socket, and the `response.create` frame it produces.
//!
//! A request is summarised once ([`Shape::of`]): a digest of every non-input field and one digest per
//! input item (canonical JSON in [`canonical::write_item_for_delta`]'s form: without the top-level `id`,
//! `status` and client-side metadata, `null` and `[]` members, and a default `"type": "message"`, so an
//! output item echoed by Codex or OpenCode, each in its own spelling, is still the same item). On a socket whose last turn completed ([`Anchor`]), the next request goes
//! as a delta (`previous_response_id` + only the new items) iff its non-input fields equal the previous
//! request's and its input starts with the previous input followed by the items the previous response
//! added; anything else is a full `response.create`.
//!
//! Invariants: a delta is sent only when the upstream's reconstruction (previous input, then previous
//! output, then the new items) is item for item the client's whole input, so a delta never changes the
//! turn; the fields ignored by the comparison are exactly the ones the WebSocket frame does not carry or
//! that do not change the prompt (`input`, `stream`, `stream_options`, `background`, `client_metadata`,
//! `previous_response_id`); all of it is linear in the request's size.

use bridge_types::ResponsesRequest;

use crate::identity::canonical;
use crate::identity::prefix::{Digest, digest};

/// Top-level fields the comparison ignores (`input` is compared item by item).
const IGNORED: &[&str] =
    &["input", "stream", "stream_options", "background", "client_metadata", "previous_response_id"];
/// Fields the WebSocket frame never carries.
const NOT_IN_FRAME: &[&str] = &["stream", "background", "previous_response_id", "type"];

/// One request's summary for the delta rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    /// Digest of the non-input fields (keys sorted, values canonical).
    pub fields: Digest,
    /// One digest per input item; `None` when `input` is not an array (a string input is never a delta).
    pub items: Option<Vec<Digest>>,
    /// Position of the last `role: user` item (the logical turn it belongs to).
    pub last_user: Option<usize>,
}

impl Shape {
    /// Summarises a request (each field and item read once from its JSON text).
    pub fn of(request: &ResponsesRequest) -> Self {
        let mut keys: Vec<&str> = request.keys().filter(|k| !IGNORED.contains(k)).collect();
        keys.sort_unstable();
        let mut fields = blake3::Hasher::new();
        let mut bytes = Vec::new();
        for key in keys {
            bytes.clear();
            if let Some(raw) = request.raw(key) {
                canonical::write(raw.get(), false, &mut bytes);
            }
            fields.update(&(key.len() as u64).to_le_bytes());
            fields.update(key.as_bytes());
            fields.update(&(bytes.len() as u64).to_le_bytes());
            fields.update(&bytes);
        }
        let mut last_user = None;
        let items = request.input_items().map(|items| {
            items
                .iter()
                .enumerate()
                .map(|(i, raw)| {
                    bytes.clear();
                    if canonical::write_item_for_delta(raw.get(), &mut bytes).user {
                        last_user = Some(i);
                    }
                    digest(&bytes)
                })
                .collect()
        });
        let mut out = [0u8; 16];
        out.copy_from_slice(&fields.finalize().as_bytes()[..16]);
        Shape { fields: out, items, last_user }
    }

    /// The digest of the logical turn: the input up to and including its last user message. Requests of
    /// one turn (the user message, then tool outputs and continuations) share it; a new user message
    /// starts another.
    pub fn turn_marker(&self) -> Option<Digest> {
        let items = self.items.as_ref()?;
        let last = self.last_user?;
        let mut h = blake3::Hasher::new();
        for d in &items[..=last] {
            h.update(d);
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&h.finalize().as_bytes()[..16]);
        Some(out)
    }
}

/// Digest of one output item (a `response.output_item.done` item), as [`Shape`] digests input items.
pub fn item_digest(item_json: &str) -> Digest {
    let mut bytes = Vec::new();
    canonical::write_item_for_delta(item_json, &mut bytes);
    digest(&bytes)
}

/// What a socket's last completed turn leaves for the next: its response id, the request's fields, and
/// its input followed by the items the response added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub response_id: String,
    pub fields: Digest,
    pub items: Vec<Digest>,
}

/// How a request goes out on a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// A full `response.create` (no anchor, or the rule does not hold).
    Full,
    /// `previous_response_id` and the input items from `skip` on.
    Delta { previous: String, skip: usize },
}

impl Plan {
    /// `delta` or `full`, for metrics and rows.
    pub fn label(&self) -> &'static str {
        match self {
            Plan::Full => "full",
            Plan::Delta { .. } => "delta",
        }
    }
}

/// Codex's delta rule (module docs).
pub fn plan(anchor: Option<&Anchor>, shape: &Shape) -> Plan {
    let (Some(anchor), Some(items)) = (anchor, shape.items.as_ref()) else { return Plan::Full };
    if anchor.fields != shape.fields
        || items.len() < anchor.items.len()
        || items[..anchor.items.len()] != anchor.items[..]
    {
        return Plan::Full;
    }
    Plan::Delta { previous: anchor.response_id.clone(), skip: anchor.items.len() }
}

/// The `response.create` frame for `request` under `plan`, with `turn_state` put into `client_metadata`.
/// The request's own fields keep their bytes; only `client_metadata` is rebuilt when turn state is added.
pub fn frame(request: &ResponsesRequest, plan: &Plan, turn_state: Option<&str>) -> String {
    let mut out = String::with_capacity(256 + request.keys().map(|k| request.text_len(k) + k.len() + 4).sum::<usize>());
    out.push_str(CREATE_START);
    let push_key = |out: &mut String, key: &str| {
        out.push(',');
        out.push_str(&serde_json::to_string(key).unwrap_or_else(|_| format!("\"{key}\"")));
        out.push(':');
    };
    let mut metadata_done = false;
    for key in request.keys() {
        if NOT_IN_FRAME.contains(&key) {
            continue;
        }
        if key == "input" {
            push_key(&mut out, key);
            match (request.input_items(), plan) {
                (Some(items), _) => {
                    let skip = match plan {
                        Plan::Delta { skip, .. } => (*skip).min(items.len()),
                        Plan::Full => 0,
                    };
                    out.push('[');
                    for (i, item) in items[skip..].iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(item.get());
                    }
                    out.push(']');
                }
                (None, _) => out.push_str(request.raw("input").map_or("null", |r| r.get())),
            }
            continue;
        }
        if key == "client_metadata" {
            metadata_done = true;
            push_key(&mut out, key);
            out.push_str(&metadata(request.raw(key).map(|r| r.get()), turn_state));
            continue;
        }
        if let Some(raw) = request.raw(key) {
            push_key(&mut out, key);
            out.push_str(raw.get());
        }
    }
    if !metadata_done && turn_state.is_some() {
        push_key(&mut out, "client_metadata");
        out.push_str(&metadata(None, turn_state));
    }
    if let Plan::Delta { previous, .. } = plan {
        push_key(&mut out, "previous_response_id");
        out.push_str(&serde_json::Value::String(previous.clone()).to_string());
    }
    out.push('}');
    out
}

/// A `response.create` frame made a `generate: false` prewarm (the upstream prepares the prompt's state and
/// answers with a response id to chain from, no output); every other byte is the turn's own.
pub fn prewarm(frame: String) -> String {
    match frame.strip_prefix(CREATE_START) {
        Some(rest) => format!(r#"{CREATE_START},"generate":false{rest}"#),
        None => frame,
    }
}

const CREATE_START: &str = r#"{"type":"response.create""#;

/// `client_metadata` with the turn state added (a non-object value is replaced by an object).
fn metadata(raw: Option<&str>, turn_state: Option<&str>) -> String {
    let Some(state) = turn_state else { return raw.unwrap_or("{}").to_owned() };
    let mut map = raw
        .and_then(|r| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(r).ok())
        .unwrap_or_default();
    map.insert(crate::turn_state::TURN_STATE.to_owned(), serde_json::Value::String(state.to_owned()));
    serde_json::Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    fn request(v: Value) -> ResponsesRequest {
        ResponsesRequest::parse(v.to_string().as_bytes()).unwrap()
    }

    fn user(text: &str) -> Value {
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
    }

    fn reply(text: &str) -> Value {
        json!({"id": format!("msg_{text}"), "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]})
    }

    fn anchor_after(req: &ResponsesRequest, output: &[Value]) -> Anchor {
        let shape = Shape::of(req);
        let mut items = shape.items.unwrap();
        items.extend(output.iter().map(|o| item_digest(&o.to_string())));
        Anchor { response_id: "resp_1".into(), fields: shape.fields, items }
    }

    #[test]
    fn an_extension_of_input_plus_output_is_a_delta_of_the_new_items() {
        let first = request(json!({"model": "m", "stream": true, "input": [user("a")]}));
        let anchor = anchor_after(&first, &[reply("x")]);
        // The client echoes the output item without its id, and reorders keys: still the same item.
        let echoed = json!({"content": [{"text": "x", "type": "output_text"}], "role": "assistant", "type": "message"});
        let second = request(json!({"stream": true, "model": "m", "input": [user("a"), echoed, user("b")]}));
        let plan = plan(Some(&anchor), &Shape::of(&second));
        assert_eq!(plan, Plan::Delta { previous: "resp_1".into(), skip: 2 });
        let frame: Value = serde_json::from_str(&frame(&second, &plan, None)).unwrap();
        assert_eq!(frame["type"], "response.create");
        assert_eq!(frame["previous_response_id"], "resp_1");
        assert_eq!(frame["input"], json!([user("b")]));
        assert!(frame.get("stream").is_none());
    }

    #[test]
    fn an_echoed_item_with_nulls_or_client_metadata_added_is_the_same_item() {
        // What Codex 0.169 sends back for the emulator's reasoning item: `"content": null` added.
        let reasoning = json!({"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "t"}],
            "encrypted_content": "gAAA"});
        let first = request(json!({"model": "m", "input": [user("a")]}));
        let anchor = anchor_after(&first, &[reasoning.clone(), reply("x")]);
        let mut echoed = reasoning.clone();
        echoed["content"] = Value::Null;
        let second = request(json!({"model": "m", "input": [user("a"), echoed, reply("x"), user("b")]}));
        assert_eq!(plan(Some(&anchor), &Shape::of(&second)), Plan::Delta { previous: "resp_1".into(), skip: 3 });
        // Codex's built-in provider also adds its item metadata: still the same item.
        let mut tagged = reasoning.clone();
        tagged["internal_chat_message_metadata_passthrough"] = json!({"turn_id": "t1"});
        let second = request(json!({"model": "m", "input": [user("a"), tagged, reply("x"), user("b")]}));
        assert!(matches!(plan(Some(&anchor), &Shape::of(&second)), Plan::Delta { skip: 3, .. }));
        // OpenCode's spelling of the emulator's message: no type, status, id or empty lists.
        let message = json!({"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": "x", "annotations": [], "logprobs": []}]});
        let anchor2 = anchor_after(&first, &[message]);
        let opencode = json!({"role": "assistant", "content": [{"type": "output_text", "text": "x"}]});
        let second = request(json!({"model": "m", "input": [user("a"), opencode, user("b")]}));
        assert!(matches!(plan(Some(&anchor2), &Shape::of(&second)), Plan::Delta { skip: 2, .. }));
        // A member with a value is not dropped: another summary is another item.
        let mut changed = reasoning;
        changed["summary"] = json!([]);
        let third = request(json!({"model": "m", "input": [user("a"), changed, reply("x"), user("b")]}));
        assert_eq!(plan(Some(&anchor), &Shape::of(&third)), Plan::Full);
    }

    #[test]
    fn a_changed_non_input_field_or_a_rewritten_history_sends_full() {
        let first = request(json!({"model": "m", "instructions": "i", "input": [user("a")]}));
        let anchor = anchor_after(&first, &[reply("x")]);
        for second in [
            json!({"model": "m", "instructions": "j", "input": [user("a"), reply("x"), user("b")]}),
            json!({"model": "m2", "instructions": "i", "input": [user("a"), reply("x"), user("b")]}),
            json!({"model": "m", "instructions": "i", "tools": [], "input": [user("a"), reply("x"), user("b")]}),
            json!({"model": "m", "instructions": "i", "input": [user("a"), reply("other"), user("b")]}),
            json!({"model": "m", "instructions": "i", "input": [user("a")]}),
            json!({"model": "m", "instructions": "i", "input": "a string"}),
        ] {
            assert_eq!(plan(Some(&anchor), &Shape::of(&request(second.clone()))), Plan::Full, "{second}");
        }
        // Fields the frame does not carry do not matter.
        let second = json!({"model": "m", "instructions": "i", "stream": false, "client_metadata": {"k": "v"},
            "input": [user("a"), reply("x"), user("b")]});
        assert!(matches!(plan(Some(&anchor), &Shape::of(&request(second))), Plan::Delta { skip: 2, .. }));
        assert_eq!(plan(None, &Shape::of(&first)), Plan::Full);
    }

    #[test]
    fn turn_state_goes_into_client_metadata_and_the_marker_follows_the_last_user_message() {
        let req = request(json!({"model": "m", "client_metadata": {"a": "b"}, "input": [user("a")]}));
        let frame: Value = serde_json::from_str(&frame(&req, &Plan::Full, Some("ts1"))).unwrap();
        assert_eq!(frame["client_metadata"], json!({"a": "b", "x-codex-turn-state": "ts1"}));
        let tool = json!({"type": "function_call_output", "call_id": "c", "output": "ok"});
        let a = Shape::of(&request(json!({"model": "m", "input": [user("a")]})));
        let b = Shape::of(&request(json!({"model": "m", "input": [user("a"), reply("x"), tool]})));
        let c = Shape::of(&request(json!({"model": "m", "input": [user("a"), reply("x"), user("b")]})));
        assert_eq!(a.turn_marker(), b.turn_marker());
        assert_ne!(a.turn_marker(), c.turn_marker());
    }

    fn item() -> impl Strategy<Value = Value> {
        (0u8..4, "[a-c]{0,3}").prop_map(|(role, text)| match role {
            0 => user(&text),
            1 => reply(&text),
            2 => json!({"type": "function_call_output", "call_id": text, "output": "o"}),
            _ => json!({"type": "reasoning", "summary": [], "encrypted_content": text}),
        })
    }

    proptest! {
        /// Whatever the histories: a delta is planned exactly when the new input extends input + output
        /// item for item (ids aside) with the same fields, and the upstream's reconstruction of the frame
        /// (previous input + output + the frame's items) is then the whole new input.
        #[test]
        fn a_delta_reconstructs_the_whole_input(
            prev in prop::collection::vec(item(), 0..5),
            output in prop::collection::vec(item(), 0..3),
            tail in prop::collection::vec(item(), 0..4),
            diverge in any::<bool>(),
            same_fields in any::<bool>(),
        ) {
            let first = request(json!({"model": "m", "input": prev}));
            let anchor = anchor_after(&first, &output);
            let mut input: Vec<Value> = prev.iter().chain(output.iter()).cloned().collect();
            if diverge && !input.is_empty() {
                input[0] = json!({"type": "message", "role": "user", "content": "changed"});
            }
            input.extend(tail.iter().cloned());
            let model = if same_fields { "m" } else { "m2" };
            let second = request(json!({"model": model, "input": input}));
            let p = plan(Some(&anchor), &Shape::of(&second));
            let strip = |v: &Value| { let mut v = v.clone(); if let Some(o) = v.as_object_mut() { o.remove("id"); } v };
            let extends = same_fields && input.len() >= prev.len() + output.len()
                && input.iter().zip(prev.iter().chain(output.iter())).all(|(a, b)| strip(a) == strip(b));
            prop_assert_eq!(matches!(p, Plan::Delta { .. }), extends);
            if extends {
                let f: Value = serde_json::from_str(&frame(&second, &p, None)).unwrap();
                let mut rebuilt: Vec<Value> = prev.iter().chain(output.iter()).cloned().collect();
                rebuilt.extend(f["input"].as_array().unwrap().iter().cloned());
                prop_assert_eq!(rebuilt.iter().map(strip).collect::<Vec<_>>(), input.iter().map(strip).collect::<Vec<_>>());
            }
        }
    }
}
