//! Responses events translated into Chat Completions answers: a [`Sink`] that turns the upstream's SSE
//! events into `chat.completion.chunk` SSE for a streaming client, or one `chat.completion` object.
//!
//! Stream contract: the first chunk carries `role: "assistant"`; then `content` deltas, `reasoning_content`
//! deltas (reasoning summaries), `refusal` deltas, tool-call deltas by index (id, type and name first,
//! then argument deltas); a finish chunk (`stop`, `tool_calls`, `length`, `content_filter`); with
//! `stream_options.include_usage` a usage chunk with `choices: []`; then `data: [DONE]`. A failed or broken
//! stream ends with an error chunk (`{"error":{...}}`) and `data: [DONE]`.
//!
//! Invariants: usage fields the upstream did not send stay absent (never 0); tool names shortened on the
//! way in are restored; the output items are kept for the reasoning replay ([`super::continuity`]) only
//! when the response completed.

use std::collections::HashMap;
use std::sync::Arc;

use bridge_sse::SseDecoder;
use bridge_types::{ApiError, ErrorKind, Usage};
use bytes::{Bytes, BytesMut};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::continuity::{Digest, ReplayStore, Scope};
use crate::metrics::Metrics;
use crate::pump::{SseSink, StreamFailure, Tap};

/// Where the answer goes.
pub enum Egress {
    /// `stream: true`: chunks through the SSE sink.
    Stream { sse: SseSink, include_usage: bool },
    /// `stream: false`: one object (or error) through a oneshot.
    Whole(oneshot::Sender<Result<Value, ApiError>>),
}

/// What the sink needs to know about the request.
pub struct Request {
    /// The model the client named (until the upstream names its own).
    pub model: String,
    /// Shortened tool name → the client's name.
    pub tool_names: HashMap<String, String>,
    /// Where to keep the output items for the next turn, and the digest of the request's translated input
    /// (none without a session or with replay off).
    pub replay: Option<(Arc<ReplayStore>, Scope, Digest)>,
}

/// One tool call of the answer.
#[derive(Debug, Default)]
struct ToolCall {
    item_id: String,
    call_id: String,
    name: String,
    kind: &'static str,
    arguments: String,
    /// Whether any argument text was streamed (else `.done` sends the whole).
    streamed: bool,
}

/// The Chat sink (module docs).
pub struct ChatSink {
    egress: Egress,
    request: Request,
    decoder: SseDecoder,
    id: String,
    created: i64,
    model: String,
    role_sent: bool,
    content: String,
    reasoning: String,
    refusal: String,
    tool_calls: Vec<ToolCall>,
    output: Vec<Box<RawValue>>,
    usage: Option<Usage>,
    finish: Option<&'static str>,
    error: Option<ApiError>,
    finished: bool,
}

impl ChatSink {
    /// A sink for one exchange.
    pub fn new(egress: Egress, request: Request) -> Self {
        let model = request.model.clone();
        Self {
            egress,
            request,
            decoder: SseDecoder::new(),
            id: String::new(),
            created: crate::clock::now_ms() / 1000,
            model,
            role_sent: false,
            content: String::new(),
            reasoning: String::new(),
            refusal: String::new(),
            tool_calls: Vec::new(),
            output: Vec::new(),
            usage: None,
            finish: None,
            error: None,
            finished: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({"id": self.chat_id(), "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn chat_id(&self) -> String {
        if self.id.is_empty() { "chatcmpl-bridge".to_owned() } else { format!("chatcmpl-{}", self.id) }
    }

    /// A delta chunk (the first carries the role).
    fn delta(&mut self, mut delta: Map<String, Value>, out: &mut Vec<Value>) {
        if !self.role_sent {
            self.role_sent = true;
            let mut first = Map::new();
            first.insert("role".into(), Value::from("assistant"));
            first.append(&mut delta);
            delta = first;
        }
        out.push(self.chunk(Value::Object(delta), None));
    }

    fn text_delta(&mut self, key: &str, text: &str, out: &mut Vec<Value>) {
        if text.is_empty() {
            return;
        }
        let mut d = Map::new();
        d.insert(key.into(), Value::from(text));
        self.delta(d, out);
    }

    fn tool_delta(&mut self, index: usize, head: bool, arguments: &str, out: &mut Vec<Value>) {
        let Some(call) = self.tool_calls.get(index) else { return };
        let mut entry = Map::new();
        entry.insert("index".into(), Value::from(index));
        if head {
            entry.insert("id".into(), Value::from(call.call_id.as_str()));
            entry.insert("type".into(), Value::from("function"));
            entry.insert("function".into(), json!({"name": call.name, "arguments": arguments}));
        } else {
            entry.insert("function".into(), json!({"arguments": arguments}));
        }
        let mut d = Map::new();
        d.insert("tool_calls".into(), Value::Array(vec![Value::Object(entry)]));
        self.delta(d, out);
    }

    fn restore(&self, name: &str) -> String {
        self.request.tool_names.get(name).cloned().unwrap_or_else(|| name.to_owned())
    }

    fn call_index(&self, item_id: Option<&str>) -> Option<usize> {
        let item_id = item_id?;
        self.tool_calls.iter().position(|c| c.item_id == item_id)
    }

    /// Adds a tool call from its item (on `output_item.added`, or `.done` when no `.added` came).
    fn open_call(&mut self, item: &Value, out: &mut Vec<Value>) -> usize {
        let item_id = item.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        if let Some(i) = self.call_index(Some(&item_id)).filter(|_| !item_id.is_empty()) {
            return i;
        }
        let kind =
            if item.get("type").and_then(Value::as_str) == Some("custom_tool_call") { "custom" } else { "function" };
        let name = self.restore(item.get("name").and_then(Value::as_str).unwrap_or_default());
        let call_id = item.get("call_id").and_then(Value::as_str).unwrap_or(&item_id).to_owned();
        self.tool_calls.push(ToolCall { item_id, call_id, name, kind, ..ToolCall::default() });
        let index = self.tool_calls.len() - 1;
        self.tool_delta(index, true, "", out);
        index
    }

    /// Translates one upstream event into chunks.
    fn on_event(&mut self, data: &str, out: &mut Vec<Value>) {
        let Ok(event) = serde_json::from_str::<Value>(data) else { return };
        let kind = event.get("type").and_then(Value::as_str).unwrap_or_default();
        let str_of = |k: &str| event.get(k).and_then(Value::as_str).unwrap_or_default();
        match kind {
            "response.created" | "response.in_progress" => {
                let r = event.get("response");
                if let Some(id) = r.and_then(|r| r.get("id")).and_then(Value::as_str) {
                    id.clone_into(&mut self.id);
                }
                if let Some(t) = r.and_then(|r| r.get("created_at")).and_then(Value::as_i64) {
                    self.created = t;
                }
                if let Some(m) = r.and_then(|r| r.get("model")).and_then(Value::as_str) {
                    m.clone_into(&mut self.model);
                }
            }
            "response.output_text.delta" => {
                let d = str_of("delta").to_owned();
                self.content.push_str(&d);
                self.text_delta("content", &d, out);
            }
            "response.refusal.delta" => {
                let d = str_of("delta").to_owned();
                self.refusal.push_str(&d);
                self.text_delta("refusal", &d, out);
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                let d = str_of("delta").to_owned();
                self.reasoning.push_str(&d);
                self.text_delta("reasoning_content", &d, out);
            }
            "response.reasoning_summary_part.added"
                if event.get("summary_index").and_then(Value::as_u64).is_some_and(|i| i > 0) =>
            {
                self.reasoning.push_str("\n\n");
                self.text_delta("reasoning_content", "\n\n", out);
            }
            "response.output_item.added" => {
                if let Some(item) = event.get("item")
                    && matches!(item.get("type").and_then(Value::as_str), Some("function_call" | "custom_tool_call"))
                {
                    self.open_call(item, out);
                }
            }
            "response.function_call_arguments.delta" | "response.custom_tool_call_input.delta" => {
                if let Some(i) = self.call_index(event.get("item_id").and_then(Value::as_str)) {
                    let d = str_of("delta").to_owned();
                    if let Some(call) = self.tool_calls.get_mut(i) {
                        call.arguments.push_str(&d);
                        call.streamed = true;
                    }
                    self.tool_delta(i, false, &d, out);
                }
            }
            "response.output_item.done" => {
                let Some(item) = event.get("item") else { return };
                if let Ok(raw) = serde_json::value::to_raw_value(item) {
                    self.output.push(raw);
                }
                if matches!(item.get("type").and_then(Value::as_str), Some("function_call" | "custom_tool_call")) {
                    let i = self.open_call(item, out);
                    let full = item.get("arguments").or_else(|| item.get("input")).and_then(Value::as_str);
                    if let Some(call) = self.tool_calls.get_mut(i)
                        && !call.streamed
                        && let Some(full) = full.filter(|f| !f.is_empty())
                    {
                        call.arguments = full.to_owned();
                        call.streamed = true;
                        let full = full.to_owned();
                        self.tool_delta(i, false, &full, out);
                    }
                }
            }
            "response.completed" | "response.incomplete" => {
                self.usage = Usage::from_event(&event);
                let reason = event.pointer("/response/incomplete_details/reason").and_then(Value::as_str);
                self.finish = Some(match (kind, reason) {
                    (_, Some("max_output_tokens")) => "length",
                    (_, Some("content_filter")) => "content_filter",
                    ("response.incomplete", _) => "length",
                    _ if !self.tool_calls.is_empty() => "tool_calls",
                    _ => "stop",
                });
                if kind == "response.completed"
                    && let Some((store, scope, input)) = &self.request.replay
                {
                    store.remember(scope, input, &self.output);
                }
            }
            "response.failed" => {
                self.usage = Usage::from_event(&event);
                let e = event.pointer("/response/error");
                let message = e
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("the upstream reported response.failed");
                let mut err = ApiError::new(500, ErrorKind::ServerError, message);
                if let Some(code) = e.and_then(|e| e.get("code")).and_then(Value::as_str) {
                    err = err.with_code(code);
                }
                self.error = Some(err);
            }
            "error" => {
                let message = event
                    .get("message")
                    .or_else(|| event.pointer("/error/message"))
                    .and_then(Value::as_str)
                    .unwrap_or("the upstream stream reported an error");
                let mut err = ApiError::new(502, ErrorKind::ServerError, message);
                if let Some(code) = event.get("code").or_else(|| event.pointer("/error/code")).and_then(Value::as_str) {
                    err = err.with_code(code);
                }
                self.error = Some(err);
            }
            _ => {}
        }
    }

    /// The end of a successful answer: the finish chunk, the usage chunk when asked for.
    fn closing_chunks(&mut self, include_usage: bool, out: &mut Vec<Value>) {
        if !self.role_sent {
            self.delta(Map::new(), out);
        }
        let finish = self.finish.unwrap_or("stop");
        out.push(self.chunk(json!({}), Some(finish)));
        if include_usage && let Some(usage) = &self.usage {
            out.push(json!({"id": self.chat_id(), "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [], "usage": chat_usage(usage)}));
        }
    }

    /// The whole `chat.completion` object.
    fn completion(&self) -> Value {
        let mut message = Map::new();
        message.insert("role".into(), Value::from("assistant"));
        let has_text = !self.content.is_empty();
        message.insert("content".into(), if has_text { Value::from(self.content.as_str()) } else { Value::Null });
        if !self.reasoning.is_empty() {
            message.insert("reasoning_content".into(), Value::from(self.reasoning.as_str()));
        }
        if !self.refusal.is_empty() {
            message.insert("refusal".into(), Value::from(self.refusal.as_str()));
        }
        if !self.tool_calls.is_empty() {
            let calls: Vec<Value> = self
                .tool_calls
                .iter()
                .map(|c| match c.kind {
                    "custom" => {
                        json!({"id": c.call_id, "type": "custom", "custom": {"name": c.name, "input": c.arguments}})
                    }
                    _ => json!({"id": c.call_id, "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments}}),
                })
                .collect();
            message.insert("tool_calls".into(), Value::Array(calls));
        }
        let mut out = json!({"id": self.chat_id(), "object": "chat.completion", "created": self.created,
            "model": self.model, "choices": [{"index": 0, "message": message,
            "finish_reason": self.finish.unwrap_or("stop")}]});
        if let Some(usage) = &self.usage {
            out["usage"] = chat_usage(usage);
        }
        out
    }
}

/// Chat usage from Responses usage; absent fields stay absent. `cache_write_tokens` (no standard Chat
/// field) goes to `prompt_tokens_details.cache_write_tokens`, a documented extension.
pub fn chat_usage(u: &Usage) -> Value {
    let mut out = Map::new();
    let put = |m: &mut Map<String, Value>, k: &str, v: Option<u64>| {
        if let Some(v) = v {
            m.insert(k.into(), Value::from(v));
        }
    };
    put(&mut out, "prompt_tokens", u.input_tokens);
    put(&mut out, "completion_tokens", u.output_tokens);
    put(&mut out, "total_tokens", u.total_tokens);
    let mut prompt = Map::new();
    put(&mut prompt, "cached_tokens", u.cached_tokens);
    put(&mut prompt, "cache_write_tokens", u.cache_write_tokens);
    if !prompt.is_empty() {
        out.insert("prompt_tokens_details".into(), Value::Object(prompt));
    }
    let mut completion = Map::new();
    put(&mut completion, "reasoning_tokens", u.reasoning_tokens);
    if !completion.is_empty() {
        out.insert("completion_tokens_details".into(), Value::Object(completion));
    }
    Value::Object(out)
}

/// One SSE `data:` line.
fn sse_data(out: &mut BytesMut, value: &Value) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(value.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// The in-stream error chunk, then `[DONE]`.
fn error_tail(error: &ApiError) -> Bytes {
    let mut out = BytesMut::new();
    let body: Value = serde_json::from_str(&error.to_json()).unwrap_or_else(|_| json!({"error": {}}));
    sse_data(&mut out, &body);
    out.extend_from_slice(b"data: [DONE]\n\n");
    out.freeze()
}

impl crate::pump::Sink for ChatSink {
    fn aggregates(&self) -> bool {
        false
    }

    async fn deliver(&mut self, bytes: Bytes, request_id: &str, metrics: &Metrics) -> bool {
        self.decoder.feed(&bytes);
        let mut chunks = Vec::new();
        while let Ok(Some(event)) = self.decoder.next_event() {
            self.on_event(&event.data, &mut chunks);
        }
        match &mut self.egress {
            Egress::Stream { sse, .. } => {
                if chunks.is_empty() {
                    return sse.live;
                }
                let mut out = BytesMut::new();
                for c in &chunks {
                    sse_data(&mut out, c);
                }
                sse.deliver(out.freeze(), request_id, metrics).await
            }
            Egress::Whole(_) => true,
        }
    }

    async fn end(mut self, tap: &mut Tap, failure: Option<StreamFailure>) -> u16 {
        if self.finished {
            return 200;
        }
        self.finished = true;
        let error = self.error.take().or_else(|| {
            tap.terminal.is_none().then(|| {
                failure.as_ref().map_or_else(
                    || crate::errors::bad_gateway("upstream closed the stream before response.completed"),
                    StreamFailure::to_api_error,
                )
            })
        });
        let egress = std::mem::replace(&mut self.egress, Egress::Whole(oneshot::channel().0));
        match egress {
            Egress::Stream { sse, include_usage } => {
                let tail = match &error {
                    Some(e) => error_tail(e),
                    None => {
                        let mut chunks = Vec::new();
                        self.closing_chunks(include_usage, &mut chunks);
                        let mut out = BytesMut::new();
                        for c in &chunks {
                            sse_data(&mut out, c);
                        }
                        out.extend_from_slice(b"data: [DONE]\n\n");
                        out.freeze()
                    }
                };
                let status = error.as_ref().map_or(200, |e| e.status);
                if sse.live {
                    let _ = tokio::time::timeout(sse.stall, sse.tx.send(Ok(tail))).await;
                }
                status
            }
            Egress::Whole(done) => {
                let (status, result) = match error {
                    Some(e) => (e.status, Err(e)),
                    None => (200, Ok(self.completion())),
                };
                let _ = done.send(result);
                status
            }
        }
    }
}

/// A whole Responses object (an upstream that answered `stream: true` with JSON) as a `chat.completion`.
pub fn from_response_object(response: &Value, request: Request) -> Value {
    let (tx, _rx) = oneshot::channel();
    let mut sink = ChatSink::new(Egress::Whole(tx), request);
    let mut ignored = Vec::new();
    let created = json!({"type": "response.created", "response": response});
    sink.on_event(&created.to_string(), &mut ignored);
    for item in response.get("output").and_then(Value::as_array).into_iter().flatten() {
        match item.get("type").and_then(Value::as_str) {
            Some("message") => {
                for part in item.get("content").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(t) = part.get("text").and_then(Value::as_str) {
                        sink.content.push_str(t);
                    }
                }
            }
            Some("reasoning") => {
                for part in item.get("summary").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(t) = part.get("text").and_then(Value::as_str) {
                        sink.reasoning.push_str(t);
                    }
                }
            }
            _ => {}
        }
        let done = json!({"type": "response.output_item.done", "item": item});
        sink.on_event(&done.to_string(), &mut ignored);
    }
    let status = response.get("status").and_then(Value::as_str);
    let terminal = if status == Some("incomplete") { "response.incomplete" } else { "response.completed" };
    sink.on_event(&json!({"type": terminal, "response": response}).to_string(), &mut ignored);
    sink.completion()
}
