//! Turning failures into OpenAI-shaped HTTP responses, and upstream error bodies into the same shape.
//!
//! Inside the bridge an exchange fails with a typed [`BridgeError`] (what went wrong, in the bridge's
//! terms); its wire form is [`BridgeError::to_api_error`], the OpenAI-shaped `{"error":{...}}` every
//! transport sends (HTTP: [`HttpError`], plus `Retry-After` where [`BridgeError::retry_after_secs`] says).
//!
//! Upstream errors keep their status and message: `{"error":{...}}` bodies pass with their fields,
//! FastAPI-style `{"detail": ...}` bodies become `{"error":{"message": <detail>, ...}}`, and anything else
//! becomes a message quoting the (truncated) text.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bridge_types::{ApiError, ErrorKind, RequestError};
use serde_json::Value;

/// The error code of the 503 a request gets when the in-flight body budget is spent.
pub const OVERLOADED: &str = "bridge_overloaded";

/// Why an exchange failed (module docs).
#[derive(Debug)]
pub enum BridgeError {
    /// The body is larger than `body_limit_bytes` (413).
    BodyTooLarge { limit: usize },
    /// The body arrived slower than the server limits allow (408).
    BodyTooSlow { received: usize, read_timeout: Duration, min_bytes_per_sec: u64 },
    /// The body could not be read from the connection (400).
    BodyUnreadable(String),
    /// The in-flight body budget is spent (503 with `Retry-After`).
    Overloaded { budget_bytes: usize },
    /// The body is not a valid Responses request (400 naming the JSON path).
    InvalidRequest(RequestError),
    /// Shaping the request for the upstream failed (500: a bridge bug, never the client's input).
    Shaping(String),
    /// The upstream, the way to it, or another bridge part failed; already OpenAI-shaped with its status.
    Api(ApiError),
    /// The upstream WebSocket closed with a code a WebSocket client is shown as it is (1009, 1012, 1013:
    /// see [`crate::upstream_ws::propagated_close`]); every other client gets `error`, the same wire form as any
    /// other closed socket.
    UpstreamClosed { code: u16, error: ApiError },
}

impl BridgeError {
    /// The OpenAI-shaped error the client gets.
    pub fn to_api_error(&self) -> ApiError {
        match self {
            BridgeError::BodyTooLarge { limit } => too_large(*limit),
            BridgeError::BodyTooSlow { received, read_timeout, min_bytes_per_sec } => ApiError::new(
                408,
                ErrorKind::InvalidRequestError,
                format!(
                    "the request body arrived too slowly ({received} bytes received; server.body_read_timeout_ms = {}, server.body_min_bytes_per_sec = {min_bytes_per_sec})",
                    read_timeout.as_millis()
                ),
            )
            .with_code("request_timeout"),
            BridgeError::BodyUnreadable(why) => ApiError::new(
                400,
                ErrorKind::InvalidRequestError,
                format!("could not read the request body: {why}"),
            ),
            BridgeError::Overloaded { budget_bytes } => ApiError::new(
                503,
                ErrorKind::ServerError,
                format!(
                    "codex-bridge is holding its limit of {} MiB of request bodies (server.max_inflight_body_bytes); retry shortly",
                    budget_bytes / (1024 * 1024)
                ),
            )
            .with_code(OVERLOADED),
            BridgeError::InvalidRequest(e) => bad_request(e),
            BridgeError::Shaping(why) => {
                ApiError::new(500, ErrorKind::ServerError, format!("could not shape the request: {why}"))
            }
            BridgeError::Api(e) | BridgeError::UpstreamClosed { error: e, .. } => e.clone(),
        }
    }

    /// The close code a WebSocket client's socket is closed with instead of an error frame, if any.
    pub fn client_close_code(&self) -> Option<u16> {
        match self {
            BridgeError::UpstreamClosed { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The HTTP status of the wire form.
    pub fn status(&self) -> u16 {
        match self {
            BridgeError::Api(e) | BridgeError::UpstreamClosed { error: e, .. } => e.status,
            other => other.to_api_error().status,
        }
    }

    /// Seconds a client should wait before retrying, when the failure is a momentary refusal.
    pub fn retry_after_secs(&self) -> Option<u32> {
        matches!(self, BridgeError::Overloaded { .. }).then_some(1)
    }
}

impl From<ApiError> for BridgeError {
    fn from(e: ApiError) -> Self {
        BridgeError::Api(e)
    }
}

impl IntoResponse for BridgeError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after_secs();
        let mut response = HttpError(self.to_api_error()).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// An [`ApiError`] as an axum response.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        json_response(self.0.status, self.0.to_json())
    }
}

/// A JSON response with the given status (500 when the status is not a valid code).
pub fn json_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// 400 for a malformed or mistyped request.
pub fn bad_request(e: &bridge_types::RequestError) -> ApiError {
    let err = ApiError::new(400, ErrorKind::InvalidRequestError, e.message.clone()).with_code(e.code);
    match &e.param {
        Some(p) => err.with_param(p.clone()),
        None => err,
    }
}

/// 413 for a body over the limit.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        413,
        ErrorKind::InvalidRequestError,
        format!("request body exceeds the bridge's limit of {limit} bytes (body_limit_bytes in the config)"),
    )
    .with_code("request_too_large")
}

/// 502 when the upstream cannot be reached or breaks the protocol.
pub fn bad_gateway(message: impl Into<String>) -> ApiError {
    ApiError::new(502, ErrorKind::UpstreamError, message).with_code("upstream_unreachable")
}

/// 504 when the upstream sent nothing within the idle timeout.
pub fn gateway_timeout(idle: std::time::Duration) -> ApiError {
    ApiError::new(
        504,
        ErrorKind::Timeout,
        format!("upstream sent nothing for {} ms (upstream.idle_timeout_ms)", idle.as_millis()),
    )
    .with_code("upstream_timeout")
}

/// Maps an upstream error response (status and body) to the body the client receives.
/// The status is kept; the body is OpenAI-shaped.
pub fn upstream_error_body(status: u16, body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if value.get("error").is_some_and(Value::is_object) {
            return value.to_string();
        }
        if let Some(detail) = value.get("detail") {
            let message = match detail {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            return ApiError::new(status, kind_for(status), message).with_code("upstream_error").to_json();
        }
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().take(2000).collect();
    let message = if text.trim().is_empty() {
        format!("upstream returned HTTP {status}")
    } else {
        format!("upstream returned HTTP {status}: {}", text.trim())
    };
    ApiError::new(status, kind_for(status), message).with_code("upstream_error").to_json()
}

/// The error type that fits an upstream status.
pub fn kind_for(status: u16) -> ErrorKind {
    match status {
        401 => ErrorKind::AuthenticationError,
        403 => ErrorKind::PermissionError,
        404 => ErrorKind::NotFoundError,
        429 => ErrorKind::RateLimitError,
        400..=499 => ErrorKind::InvalidRequestError,
        _ => ErrorKind::UpstreamError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_errors_have_their_wire_form_and_retry_hint() {
        let overloaded = BridgeError::Overloaded { budget_bytes: 256 * 1024 * 1024 };
        assert_eq!((overloaded.status(), overloaded.retry_after_secs()), (503, Some(1)));
        assert_eq!(overloaded.to_api_error().code.as_deref(), Some(OVERLOADED));
        let response = overloaded.into_response();
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
        let large = BridgeError::BodyTooLarge { limit: 10 };
        assert_eq!((large.status(), large.retry_after_secs()), (413, None));
        let invalid = BridgeError::InvalidRequest(RequestError {
            message: "bad".into(),
            param: Some("input[2]".into()),
            code: "invalid_type",
        });
        let wire = invalid.to_api_error();
        assert_eq!(
            (wire.status, wire.param.as_deref(), wire.code.as_deref()),
            (400, Some("input[2]"), Some("invalid_type"))
        );
        let slow =
            BridgeError::BodyTooSlow { received: 5, read_timeout: Duration::from_millis(30), min_bytes_per_sec: 7 };
        assert_eq!(slow.status(), 408);
        assert!(slow.to_api_error().message.contains("5 bytes received"));
        assert_eq!(BridgeError::from(bad_gateway("x")).status(), 502);
    }

    #[test]
    fn detail_bodies_keep_their_message() {
        let body = upstream_error_body(400, br#"{"detail":"Instructions are not valid"}"#);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["message"], "Instructions are not valid");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }

    #[test]
    fn error_bodies_pass_unchanged() {
        let raw = r#"{"error":{"type":"usage_limit_reached","plan_type":"plus","resets_at":5}}"#;
        let v: Value = serde_json::from_str(&upstream_error_body(429, raw.as_bytes())).unwrap();
        assert_eq!(v, serde_json::from_str::<Value>(raw).unwrap());
    }

    #[test]
    fn text_bodies_are_wrapped() {
        let v: Value = serde_json::from_str(&upstream_error_body(503, b"overloaded")).unwrap();
        assert_eq!(v["error"]["message"], "upstream returned HTTP 503: overloaded");
    }
}
