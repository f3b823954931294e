//! `x-codex-turn-state`: the upstream's routing token for one logical turn, and where it travels.
//!
//! The upstream issues it with a response: as the HTTP response header, or on a WebSocket as a
//! `codex.response.metadata` / `response.metadata` event (`{"type":..., "headers": {"x-codex-turn-state": ...}}`).
//! The client replays it within the same logical turn only: as a request header over HTTP, in
//! `response.create.client_metadata["x-codex-turn-state"]` over WebSocket.
//!
//! Invariants: first value wins within a turn ([`TurnState::capture`] never replaces a held value); a new
//! turn (or an account change) starts empty ([`TurnState::clear`]); nothing here parses more than the one
//! event or map it is given, and nothing panics on malformed input.

use axum::http::{HeaderMap, HeaderValue};
use serde_json::Value;

/// The header (HTTP) and `client_metadata` key (WebSocket) carrying the token.
pub const TURN_STATE: &str = "x-codex-turn-state";

/// The WebSocket event types that carry response headers (turn state among them).
pub const METADATA_EVENTS: [&str; 2] = ["codex.response.metadata", "response.metadata"];

/// Upper bound on a token the bridge keeps or forwards (real ones are ~300-800 characters).
const MAX_LEN: usize = 4096;

/// The turn state of one logical turn: first value wins.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TurnState(Option<String>);

impl TurnState {
    /// Keeps `value` unless a value is already held (or it is empty or oversized); returns the value in force.
    pub fn capture(&mut self, value: Option<&str>) -> Option<&str> {
        if self.0.is_none()
            && let Some(v) = value.map(str::trim).filter(|v| valid(v))
        {
            self.0 = Some(v.to_owned());
        }
        self.0.as_deref()
    }

    /// The value held.
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Forgets the value: a new logical turn, or an account change.
    pub fn clear(&mut self) {
        self.0 = None;
    }
}

fn valid(v: &str) -> bool {
    !v.is_empty() && v.len() <= MAX_LEN && HeaderValue::from_str(v).is_ok()
}

/// The token of an HTTP response or request's headers.
pub fn from_headers(headers: &HeaderMap) -> Option<&str> {
    headers.get(TURN_STATE).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| valid(v))
}

/// The token a `response.create` frame (or an HTTP body) replays in `client_metadata`.
pub fn from_client_metadata(body: &Value) -> Option<&str> {
    body.get("client_metadata")?.get(TURN_STATE)?.as_str().map(str::trim).filter(|v| valid(v))
}

/// The token of a WebSocket metadata event (`codex.response.metadata` / `response.metadata`); `None` for
/// any other event.
pub fn from_metadata_event(event: &Value) -> Option<&str> {
    let kind = event.get("type")?.as_str()?;
    if !METADATA_EVENTS.contains(&kind) {
        return None;
    }
    event.get("headers")?.get(TURN_STATE)?.as_str().map(str::trim).filter(|v| valid(v))
}

/// Sets the token as a request header (HTTP replay); an invalid value is left out.
pub fn set_header(headers: &mut HeaderMap, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(TURN_STATE, v);
    }
}

/// A `codex.response.metadata` event carrying `headers` (the turn state among them), as the Codex backend
/// sends it on a WebSocket before a response's events.
pub fn metadata_event(headers: serde_json::Map<String, Value>) -> Value {
    serde_json::json!({"type": "codex.response.metadata", "headers": headers})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_wins_until_cleared() {
        let mut ts = TurnState::default();
        assert_eq!(ts.capture(None), None);
        assert_eq!(ts.capture(Some("  ")), None);
        assert_eq!(ts.capture(Some("a")), Some("a"));
        assert_eq!(ts.capture(Some("b")), Some("a"));
        ts.clear();
        assert_eq!(ts.capture(Some("b")), Some("b"));
        assert_eq!(ts.capture(Some(&"x".repeat(MAX_LEN + 1))), Some("b"));
    }

    #[test]
    fn reads_each_carrier() {
        let mut h = HeaderMap::new();
        set_header(&mut h, "tok");
        assert_eq!(from_headers(&h), Some("tok"));
        let frame = serde_json::json!({"client_metadata": {TURN_STATE: "tok2"}});
        assert_eq!(from_client_metadata(&frame), Some("tok2"));
        for kind in METADATA_EVENTS {
            let e = serde_json::json!({"type": kind, "headers": {TURN_STATE: "tok3"}});
            assert_eq!(from_metadata_event(&e), Some("tok3"));
        }
        let other = serde_json::json!({"type": "response.created", "headers": {TURN_STATE: "x"}});
        assert_eq!(from_metadata_event(&other), None);
        assert_eq!(from_client_metadata(&serde_json::json!({"client_metadata": {TURN_STATE: 5}})), None);
        let mut m = serde_json::Map::new();
        m.insert(TURN_STATE.into(), "t".into());
        assert_eq!(from_metadata_event(&metadata_event(m)), Some("t"));
    }
}
