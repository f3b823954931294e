//! The JSON text frames the bridge itself writes to a client socket, shaped like the Codex backend's:
//! wrapped errors (`{"type":"error","status":...,"error":{...},"headers":{...}}`), the synthetic answer to a
//! `generate:false` prewarm (`response.created` + `response.completed`, zero usage), and the
//! `codex.response.metadata` event carrying response headers (turn state among them).
//!
//! Invariants: every frame is one JSON object; nothing here panics; only headers a client may see go into
//! a frame (rate-limit and Codex headers, never credentials).

use axum::http::HeaderMap;
use bridge_types::ApiError;
use serde_json::{Map, Value, json};

/// Response headers forwarded to a WebSocket client in `codex.response.metadata` and in wrapped errors,
/// besides every `x-codex-*` header.
const SHOWN_HEADERS: [&str; 5] =
    ["openai-model", "x-reasoning-included", "x-models-etag", "retry-after", "x-request-id"];

/// Whether a response header may be shown to a WebSocket client.
fn shown(name: &str) -> bool {
    (name.starts_with("x-codex-") && name != "x-codex-bridge-token") || SHOWN_HEADERS.contains(&name)
}

/// The client-visible headers of an upstream response (or the bridge's notes) as a JSON map.
pub fn shown_headers(headers: &HeaderMap) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in headers {
        if shown(name.as_str())
            && let Ok(v) = value.to_str()
        {
            out.insert(name.as_str().to_owned(), Value::String(v.to_owned()));
        }
    }
    out
}

/// A wrapped error frame: the OpenAI-shaped error with its HTTP status, as the Codex backend sends it on
/// a socket.
pub fn wrapped_error(err: &ApiError, headers: Map<String, Value>) -> String {
    let error = json!({"type": err.kind.as_str(), "code": err.code, "message": err.message, "param": err.param});
    wrapped(err.status, error, headers)
}

/// A wrapped error frame from an already-mapped upstream error body (`{"error":{...}}`).
pub fn wrapped_upstream_error(status: u16, body: &[u8], headers: Map<String, Value>) -> String {
    let error = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|mut v| v.get_mut("error").map(Value::take))
        .filter(Value::is_object)
        .unwrap_or_else(
            || json!({"type": "server_error", "code": null, "message": String::from_utf8_lossy(body), "param": null}),
        );
    wrapped(status, error, headers)
}

fn wrapped(status: u16, error: Value, headers: Map<String, Value>) -> String {
    json!({"type": "error", "status": status, "error": error, "headers": headers}).to_string()
}

/// The two events answering a `generate:false` prewarm: `response.created` then `response.completed`, with
/// `id`, the request's `model`, no output and zero usage.
pub fn prewarm_events(id: &str, model: Option<&str>, created_at_secs: i64) -> [String; 2] {
    let response = |status: &str, usage: Value| {
        json!({
            "id": id,
            "object": "response",
            "created_at": created_at_secs,
            "status": status,
            "model": model,
            "output": [],
            "usage": usage,
        })
    };
    let usage = json!({
        "input_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 0,
    });
    [
        json!({"type": "response.created", "sequence_number": 0, "response": response("in_progress", Value::Null)})
            .to_string(),
        json!({"type": "response.completed", "sequence_number": 1, "response": response("completed", usage)})
            .to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use bridge_types::ErrorKind;

    #[test]
    fn wrapped_errors_carry_status_error_and_shown_headers_only() {
        let mut h = HeaderMap::new();
        h.insert("x-codex-primary-used-percent", HeaderValue::from_static("12"));
        h.insert("authorization", HeaderValue::from_static("Bearer secret"));
        h.insert("set-cookie", HeaderValue::from_static("a=b"));
        let err = ApiError::new(429, ErrorKind::RateLimitError, "slow down").with_code("rate_limit_exceeded");
        let v: Value = serde_json::from_str(&wrapped_error(&err, shown_headers(&h))).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["status"], 429);
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        assert_eq!(v["error"]["message"], "slow down");
        assert_eq!(v["headers"]["x-codex-primary-used-percent"], "12");
        assert!(v["headers"].get("authorization").is_none() && v["headers"].get("set-cookie").is_none());
        let v: Value =
            serde_json::from_str(&wrapped_upstream_error(400, br#"{"error":{"message":"m","type":"t"}}"#, Map::new()))
                .unwrap();
        assert_eq!((v["status"].as_u64(), v["error"]["message"].as_str()), (Some(400), Some("m")));
        let v: Value = serde_json::from_str(&wrapped_upstream_error(502, b"not json", Map::new())).unwrap();
        assert_eq!(v["error"]["message"], "not json");
    }

    #[test]
    fn prewarm_is_created_then_completed_with_zero_usage() {
        let [created, completed] = prewarm_events("resp_prewarm_1", Some("gpt-5.5"), 7);
        let created: Value = serde_json::from_str(&created).unwrap();
        let completed: Value = serde_json::from_str(&completed).unwrap();
        assert_eq!(created["type"], "response.created");
        assert_eq!(completed["type"], "response.completed");
        assert_eq!(completed["response"]["id"], "resp_prewarm_1");
        assert_eq!(completed["response"]["status"], "completed");
        assert_eq!(completed["response"]["usage"]["total_tokens"], 0);
        assert_eq!(completed["response"]["model"], "gpt-5.5");
    }
}
