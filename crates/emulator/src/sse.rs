//! Responses SSE: the event sequence for a plan of output items, and the byte stream with stream faults
//! (stall, slow bytes, cut, `response.failed`) applied.
//!
//! Event names and payload shapes follow the real API as reproduced by clients/capture_server.py
//! (codex-wire.md §4): `response.created`, `response.in_progress`, per item `output_item.added` …
//! `output_item.done`, then `response.completed`. Invariants: every payload starts with `type` then
//! `sequence_number` (0, 1, 2, … in stream order); a stream that is cut never contains
//! `response.completed`; a failed stream ends with exactly one `response.failed`.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use serde_json::{Map, Value, json};

use crate::faults::{FaultSpec, StallAt};

/// One SSE event before numbering: name and payload (without `type`/`sequence_number`).
pub type Event = (String, Value);

fn ev(name: &str, payload: Value) -> Event {
    (name.to_owned(), payload)
}

/// Split `text` into up to three deltas on char boundaries.
pub fn deltas(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    let size = chars.len().div_ceil(3).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// The events for a response: `base` is the response object (status `in_progress`, no output, no usage);
/// `completed` the final response object.
pub fn events(base: &Value, items: &[Value], completed: &Value) -> Vec<Event> {
    let mut out =
        vec![ev("response.created", json!({"response": base})), ev("response.in_progress", json!({"response": base}))];
    for (idx, item) in items.iter().enumerate() {
        let iid = item.get("id").cloned().unwrap_or(Value::Null);
        let with = |k: &str, v: Value| {
            let mut it = item.clone();
            if let Some(o) = it.as_object_mut() {
                o.insert(k.to_owned(), v);
            }
            it
        };
        match item.get("type").and_then(Value::as_str) {
            Some("reasoning") => {
                out.push(ev(
                    "response.output_item.added",
                    json!({"output_index": idx, "item": with("summary", json!([]))}),
                ));
                let summaries = item.get("summary").and_then(Value::as_array).cloned().unwrap_or_default();
                for (si, s) in summaries.iter().enumerate() {
                    let text = s.get("text").cloned().unwrap_or(json!(""));
                    let at = json!({"item_id": iid, "output_index": idx, "summary_index": si});
                    let mut part = |name: &str, extra: Value| {
                        let mut p = at.clone();
                        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
                            p.extend(e.clone());
                        }
                        out.push(ev(name, p));
                    };
                    part(
                        "response.reasoning_summary_part.added",
                        json!({"part": {"type": "summary_text", "text": ""}}),
                    );
                    part("response.reasoning_summary_text.delta", json!({"delta": text}));
                    part("response.reasoning_summary_text.done", json!({"text": text}));
                    part("response.reasoning_summary_part.done", json!({"part": s}));
                }
            }
            Some("function_call") => {
                let args = item.get("arguments").cloned().unwrap_or(json!(""));
                let mut added = with("arguments", json!(""));
                if let Some(o) = added.as_object_mut() {
                    o.insert("status".into(), json!("in_progress"));
                }
                out.push(ev("response.output_item.added", json!({"output_index": idx, "item": added})));
                out.push(ev(
                    "response.function_call_arguments.delta",
                    json!({"item_id": iid, "output_index": idx, "delta": args}),
                ));
                out.push(ev(
                    "response.function_call_arguments.done",
                    json!({"item_id": iid, "output_index": idx, "arguments": args}),
                ));
            }
            _ => {
                let part = item.pointer("/content/0").cloned().unwrap_or(json!({}));
                let text = part.get("text").and_then(Value::as_str).unwrap_or("").to_owned();
                let mut added = with("content", json!([]));
                if let Some(o) = added.as_object_mut() {
                    o.insert("status".into(), json!("in_progress"));
                }
                out.push(ev("response.output_item.added", json!({"output_index": idx, "item": added})));
                let at = |extra: Value| {
                    let mut p = json!({"item_id": iid, "output_index": idx, "content_index": 0});
                    if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
                        p.extend(e.clone());
                    }
                    p
                };
                out.push(ev(
                    "response.content_part.added",
                    at(json!({"part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})),
                ));
                for d in deltas(&text) {
                    out.push(ev("response.output_text.delta", at(json!({"delta": d, "logprobs": []}))));
                }
                out.push(ev("response.output_text.done", at(json!({"text": text, "logprobs": []}))));
                out.push(ev("response.content_part.done", at(json!({"part": part}))));
            }
        }
        out.push(ev("response.output_item.done", json!({"output_index": idx, "item": item})));
    }
    out.push(ev("response.completed", json!({"response": completed})));
    out
}

/// One event's data object as JSON text, `type` and `sequence_number` first (an SSE `data:` line, or one
/// WebSocket text frame).
pub fn data_json(name: &str, seq: usize, payload: &Value) -> String {
    let mut data = Map::new();
    data.insert("type".into(), json!(name));
    data.insert("sequence_number".into(), json!(seq));
    if let Some(obj) = payload.as_object() {
        for (k, v) in obj {
            data.insert(k.clone(), v.clone());
        }
    }
    Value::Object(data).to_string()
}

/// Encode one event as SSE bytes with `type` and `sequence_number` first in its data.
pub fn encode(name: &str, seq: usize, payload: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {}\n\n", data_json(name, seq, payload)))
}

/// Apply a `fail_at` fault: events from number `n` on are replaced by one `response.failed` built from
/// `failed` (the response object).
pub fn with_failure(mut events: Vec<Event>, fault: Option<&FaultSpec>, failed: &Value) -> Vec<Event> {
    if let Some(f) = fault
        && let Some(n) = f.fail_at
    {
        events.truncate(n);
        let mut resp = failed.clone();
        if let Some(o) = resp.as_object_mut() {
            o.insert("status".into(), json!("failed"));
            o.insert(
                "error".into(),
                json!({"code": f.fail_code.as_deref().unwrap_or("server_error"),
                    "message": f.message.as_deref().unwrap_or("An error occurred while processing your request.")}),
            );
        }
        events.push(ev("response.failed", json!({"response": resp})));
    }
    events
}

/// Pause before aborting a cut stream, so the events before the cut reach the client.
pub const ABORT_FLUSH_MS: u64 = 30;

/// One step of a scripted stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Sleep this many ms.
    Sleep(u64),
    /// Write these bytes.
    Data(Bytes),
    /// Abort the connection (body error, no terminating chunk).
    Abort,
}

/// Script the byte stream for `events` with the stream faults of `fault`; `failed` is the response
/// object used for `response.failed`.
pub fn script(events: Vec<Event>, fault: Option<&FaultSpec>, failed: &Value) -> VecDeque<Step> {
    let mut abort = false;
    let mut events = with_failure(events, fault, failed);
    if let Some(n) = fault.and_then(|f| f.cut_after)
        && n < events.len()
    {
        events.truncate(n);
        abort = true;
    }
    let mut steps = VecDeque::new();
    for (i, (name, payload)) in events.iter().enumerate() {
        if let Some(f) = fault
            && let Some(ms) = f.stall_ms
            && (f.stall_at == StallAt::Each || f.stall_at == StallAt::Before(i))
        {
            steps.push_back(Step::Sleep(ms));
        }
        let bytes = encode(name, i, payload);
        match fault.and_then(|f| f.slow_bytes.map(|b| (b, f.slow_delay_ms))) {
            Some((size, delay)) => {
                for (ci, chunk) in bytes.chunks(size).enumerate() {
                    if ci > 0 || i > 0 {
                        steps.push_back(Step::Sleep(delay));
                    }
                    steps.push_back(Step::Data(Bytes::copy_from_slice(chunk)));
                }
            }
            None => steps.push_back(Step::Data(bytes)),
        }
    }
    if abort {
        // let the HTTP stack flush what was written before the connection is dropped
        steps.push_back(Step::Sleep(ABORT_FLUSH_MS));
        steps.push_back(Step::Abort);
    }
    steps
}

/// Play a script as a body stream.
pub fn play(steps: VecDeque<Step>) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(steps, |mut steps| async move {
        loop {
            match steps.pop_front()? {
                Step::Sleep(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Step::Data(b) => return Some((Ok(b), steps)),
                Step::Abort => {
                    steps.clear();
                    return Some((
                        Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "emulator: stream cut")),
                        steps,
                    ));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_split_on_chars() {
        assert_eq!(deltas("pong"), ["po", "ng"]);
        assert_eq!(deltas("héllo wörld"), ["héll", "o wö", "rld"]);
        assert_eq!(deltas(""), [""]);
    }

    #[test]
    fn script_applies_faults() {
        let evs: Vec<Event> = (0..4).map(|i| (format!("e{i}"), json!({}))).collect();
        let f = FaultSpec::parse("cut_after=2;stall_ms=5;at=1").unwrap();
        let s: Vec<Step> = script(evs.clone(), Some(&f), &json!({})).into();
        assert_eq!(s.len(), 5);
        assert_eq!(s[1], Step::Sleep(5));
        assert_eq!(s[3], Step::Sleep(ABORT_FLUSH_MS));
        assert_eq!(s[4], Step::Abort);
        let f = FaultSpec::parse("fail_at=1").unwrap();
        let s: Vec<Step> = script(evs, Some(&f), &json!({"id": "r"})).into();
        let Step::Data(last) = &s[1] else { panic!() };
        assert!(
            String::from_utf8_lossy(last)
                .starts_with("event: response.failed\ndata: {\"type\":\"response.failed\",\"sequence_number\":1,")
        );
    }
}
