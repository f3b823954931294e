//! One client socket's conversation state and the v2 frame rules, with no I/O.
//!
//! A `response.create` frame is a Responses body plus `type`, `generate` and `previous_response_id`.
//! [`Conversation::resolve`] turns it into the whole request the pipeline sees: `type` and `generate`
//! removed, `stream: true`, and with `previous_response_id` naming this socket's last completed response
//! the full input rebuilt as that response's input, then the items it added, then the frame's input (the
//! upstream here is HTTP, so nothing is left for it to resolve). An unknown id is
//! `previous_response_not_found`, so the client resends in full.
//!
//! Invariants: the anchor is replaced only by a completed response (a failed, cut or refused turn leaves
//! the previous one in force); the history an anchor holds is charged to the bridge's in-flight body
//! budget (no budget: no anchor, and the client's next delta is answered `previous_response_not_found`);
//! work per frame is linear in the rebuilt request's size.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use bridge_types::{ApiError, ErrorKind, ResponsesRequest};
use serde_json::value::RawValue;
use tokio::sync::OwnedSemaphorePermit;

use crate::turn_state::TurnState;

/// `client_metadata` keys that an HTTP request carries as headers; each frame's values become its turn's
/// headers (the handshake's are connection-scoped and go stale between turns).
pub const METADATA_HEADERS: [&str; 5] = [
    crate::turn_state::TURN_STATE,
    "x-codex-turn-metadata",
    "x-codex-window-id",
    "x-openai-subagent",
    "x-codex-parent-thread-id",
];

/// `client_metadata` keys that only a WebSocket frame carries: dropped from a turn sent over HTTP, so it
/// reaches the upstream as Codex itself sends it over HTTP (the turn state travels as a header there).
const WS_ONLY_METADATA: [&str; 2] = ["x-codex-ws-stream-request-start-ms", crate::turn_state::TURN_STATE];

/// Handshake headers that belong to the WebSocket, never to a turn's upstream request.
const HANDSHAKE_ONLY: [&str; 7] = [
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "openai-beta",
];

/// What a client frame asks for.
pub enum Frame {
    /// `response.create`, parsed (still with its WebSocket-only fields).
    Create(Box<ResponsesRequest>),
    /// `response.processed`: an acknowledgement, dropped.
    Processed,
}

/// Parses one text frame. Bad JSON, a non-object and an unknown `type` are OpenAI-shaped 400s; a
/// `response.create` must then be a valid Responses body (`model` required, types checked).
pub fn parse_frame(raw: &[u8]) -> Result<Frame, ApiError> {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    let kind = match serde_json::from_slice::<Kind<'_>>(raw) {
        Ok(k) => k.kind,
        Err(e) if e.is_data() => {
            return Err(invalid("A WebSocket message must be a JSON object with a string `type`.".into()));
        }
        Err(e) => return Err(invalid(format!("We could not parse the JSON of your message. ({e})"))),
    };
    match kind.as_deref() {
        Some("response.create") => {
            let request = ResponsesRequest::parse(raw).map_err(|e| crate::errors::bad_request(&e))?;
            Ok(Frame::Create(Box::new(request)))
        }
        Some("response.processed") => Ok(Frame::Processed),
        other => Err(invalid(format!("Unsupported message type: {}", other.unwrap_or("<missing>"))).with_param("type")),
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::new(400, ErrorKind::InvalidRequestError, message)
}

/// A frame resolved into a whole request.
pub struct Resolved {
    /// The request for the pipeline: WebSocket fields removed, `stream: true`, the full input.
    pub request: ResponsesRequest,
    /// False for a `generate:false` prewarm (not a turn: answered by the upstream socket or locally).
    pub generate: bool,
    /// Whether the frame was a `previous_response_id` delta.
    pub delta: bool,
    /// The full input as the client sees it, kept to become the next anchor.
    pub input: Vec<Box<RawValue>>,
}

/// A completed response the next frame may chain from.
struct Anchor {
    id: String,
    /// The response's whole input, then the items it added.
    history: Vec<Box<RawValue>>,
    _budget: OwnedSemaphorePermit,
}

/// One socket's state: the anchor and the turn state of the logical turn in progress.
#[derive(Default)]
pub struct Conversation {
    anchor: Option<Anchor>,
    /// The turn state the upstream issued in this logical turn (first value wins).
    pub turn_state: TurnState,
}

impl Conversation {
    /// The last completed response's id.
    pub fn anchor_id(&self) -> Option<&str> {
        self.anchor.as_ref().map(|a| a.id.as_str())
    }

    /// Resolves a `response.create` frame (module docs).
    pub fn resolve(&self, mut request: ResponsesRequest) -> Result<Resolved, ApiError> {
        request.remove("type");
        let generate = request.get::<bool>("generate").ok().flatten() != Some(false);
        request.remove("generate");
        let previous = request.get_str("previous_response_id");
        request.remove("previous_response_id");
        let history: &[Box<RawValue>] = match &previous {
            None => &[],
            Some(id) => match self.anchor.as_ref().filter(|a| &a.id == id) {
                Some(anchor) => &anchor.history,
                None => {
                    return Err(invalid(format!("Previous response with id '{id}' not found."))
                        .with_param("previous_response_id")
                        .with_code("previous_response_not_found"));
                }
            },
        };
        let tail = input_items(&mut request)?;
        let mut input = Vec::with_capacity(history.len() + tail.len());
        input.extend(history.iter().cloned());
        input.extend(tail);
        request.set_input_items(input.clone());
        if !request.stream() {
            request.set_raw("stream", raw("true"));
        }
        Ok(Resolved { request, generate, delta: previous.is_some(), input })
    }

    /// A response completed: it becomes the anchor (its input, then `output`), when the body budget can
    /// hold its history; otherwise there is no anchor.
    pub fn completed(
        &mut self,
        id: String,
        input: Vec<Box<RawValue>>,
        output: Vec<Box<RawValue>>,
        budget: impl FnOnce(usize) -> Option<OwnedSemaphorePermit>,
    ) {
        let mut history = input;
        history.extend(output);
        let bytes = history.iter().map(|i| i.get().len() + 1).sum();
        self.anchor = budget(bytes).map(|_budget| Anchor { id, history, _budget });
    }
}

/// The frame's own input as items: an array's items, a string as one user message, none when absent.
fn input_items(request: &mut ResponsesRequest) -> Result<Vec<Box<RawValue>>, ApiError> {
    if let Some(items) = request.take_input_items() {
        return Ok(items);
    }
    if let Some(text) = request.input_text() {
        let item = serde_json::json!({"type": "message", "role": "user", "content": text});
        return serde_json::value::to_raw_value(&item)
            .map(|item| vec![item])
            .map_err(|e| invalid(format!("input: {e}")));
    }
    match request.raw("input").map(RawValue::get) {
        None | Some("null") => Ok(Vec::new()),
        Some(_) => Err(invalid("Invalid type for 'input': expected a string or an array.".into()).with_param("input")),
    }
}

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// The headers of one turn: the handshake's (without the WebSocket's own), with the frame's
/// `client_metadata` values of [`METADATA_HEADERS`] in place of the handshake's.
pub fn turn_headers(handshake: &HeaderMap, request: &ResponsesRequest) -> HeaderMap {
    let mut headers = handshake.clone();
    for name in HANDSHAKE_ONLY {
        headers.remove(name);
    }
    let metadata = request.get::<serde_json::Map<String, serde_json::Value>>("client_metadata").ok().flatten();
    let frame_value = |key: &str| metadata.as_ref()?.get(key)?.as_str().map(str::trim).filter(|v| !v.is_empty());
    for key in METADATA_HEADERS {
        if let (Some(value), Ok(name)) = (frame_value(key), HeaderName::from_bytes(key.as_bytes()))
            && let Ok(value) = HeaderValue::from_str(value)
        {
            headers.insert(name, value);
        } else if key == crate::turn_state::TURN_STATE {
            // Turn state is per logical turn: a frame without it starts a new one.
            headers.remove(key);
        }
    }
    headers
}

/// Drops the [`WS_ONLY_METADATA`] keys from `client_metadata` (after [`turn_headers`] read them); other
/// fields keep their bytes.
pub fn strip_ws_only_metadata(request: &mut ResponsesRequest) {
    let Ok(Some(mut metadata)) = request.get::<serde_json::Map<String, serde_json::Value>>("client_metadata") else {
        return;
    };
    let before = metadata.len();
    for key in WS_ONLY_METADATA {
        metadata.remove(key);
    }
    if metadata.len() != before {
        // A map of strings and JSON values serialises.
        let _ = request.set("client_metadata", &metadata);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::Semaphore;

    fn create(body: serde_json::Value) -> ResponsesRequest {
        match parse_frame(body.to_string().as_bytes()) {
            Ok(Frame::Create(r)) => *r,
            _ => panic!("not a create"),
        }
    }

    fn items(request: &ResponsesRequest) -> Vec<String> {
        request.input_items().unwrap().iter().map(|i| i.get().to_owned()).collect()
    }

    #[test]
    fn frames_are_classified_and_bad_ones_refused() {
        assert!(matches!(parse_frame(br#"{"type":"response.processed","response_id":"r"}"#), Ok(Frame::Processed)));
        let e = parse_frame(b"{not json").err().unwrap();
        assert_eq!(e.status, 400);
        let e = parse_frame(br#"{"type":"response.append","input":[]}"#).err().unwrap();
        assert!(e.message.contains("response.append"), "{}", e.message);
        assert!(parse_frame(br#"[1]"#).is_err());
    }

    #[test]
    fn a_delta_is_rebuilt_into_the_full_input_and_unknown_ids_are_refused() {
        let budget = Arc::new(Semaphore::new(1 << 20));
        let take = |bytes: usize| budget.clone().try_acquire_many_owned(bytes as u32).ok();
        let mut conv = Conversation::default();
        let first = conv
            .resolve(create(
                serde_json::json!({"type":"response.create","model":"m","generate":false,"input":[{"a":1}]}),
            ))
            .unwrap();
        assert!(!first.generate && !first.delta);
        assert!(first.request.raw("type").is_none() && first.request.raw("generate").is_none());
        assert!(first.request.stream());
        conv.completed("r1".into(), first.input, Vec::new(), take);
        let second = conv
            .resolve(create(
                serde_json::json!({"type":"response.create","model":"m","previous_response_id":"r1","input":[{"b":2}]}),
            ))
            .unwrap();
        assert!(second.generate && second.delta);
        assert_eq!(items(&second.request), [r#"{"a":1}"#, r#"{"b":2}"#]);
        assert!(second.request.raw("previous_response_id").is_none());
        let out = vec![RawValue::from_string(r#"{"o":1}"#.into()).unwrap()];
        conv.completed("r2".into(), second.input, out, take);
        let third = conv
            .resolve(create(
                serde_json::json!({"type":"response.create","model":"m","previous_response_id":"r2","input":"hi"}),
            ))
            .unwrap();
        assert_eq!(
            items(&third.request),
            [r#"{"a":1}"#, r#"{"b":2}"#, r#"{"o":1}"#, r#"{"type":"message","role":"user","content":"hi"}"#]
        );
        let e = conv
            .resolve(create(
                serde_json::json!({"type":"response.create","model":"m","previous_response_id":"r1","input":[]}),
            ))
            .err()
            .unwrap();
        assert_eq!(e.code.as_deref(), Some("previous_response_not_found"));
        assert_eq!(e.param.as_deref(), Some("previous_response_id"));
        // no budget for the history: no anchor
        conv.completed("r3".into(), Vec::new(), Vec::new(), |_| None);
        assert_eq!(conv.anchor_id(), None);
    }

    #[test]
    fn turn_headers_take_the_frames_metadata_and_drop_the_handshakes_own() {
        let mut hs = HeaderMap::new();
        for (k, v) in [
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
            ("session-id", "s"),
            ("x-codex-turn-metadata", "old"),
            ("x-codex-turn-state", "stale"),
        ] {
            hs.insert(k, HeaderValue::from_static(v));
        }
        let r = create(
            serde_json::json!({"type":"response.create","model":"m","client_metadata":{"x-codex-turn-metadata":"new"}}),
        );
        let h = turn_headers(&hs, &r);
        assert!(h.get("upgrade").is_none() && h.get("sec-websocket-key").is_none());
        assert_eq!(h.get("session-id").unwrap(), "s");
        assert_eq!(h.get("x-codex-turn-metadata").unwrap(), "new");
        assert!(h.get("x-codex-turn-state").is_none());
        let mut r = create(serde_json::json!({"type":"response.create","model":"m",
            "client_metadata":{"x-codex-turn-state":"ts","x-codex-ws-stream-request-start-ms":"1","thread_id":"t"}}));
        assert_eq!(turn_headers(&hs, &r).get("x-codex-turn-state").unwrap(), "ts");
        strip_ws_only_metadata(&mut r);
        assert_eq!(r.raw("client_metadata").unwrap().get(), r#"{"thread_id":"t"}"#);
        let mut plain = create(serde_json::json!({"type":"response.create","model":"m","client_metadata":{"a":"b"}}));
        plain.remove("type");
        let before = plain.to_bytes();
        strip_ws_only_metadata(&mut plain);
        assert_eq!(plain.to_bytes(), before, "nothing to strip: untouched");
    }
}
