//! Turning failures into OpenAI-shaped HTTP responses, and upstream error bodies into the same shape.
//!
//! Upstream errors keep their status and message: `{"error":{...}}` bodies pass with their fields,
//! FastAPI-style `{"detail": ...}` bodies become `{"error":{"message": <detail>, ...}}`, and anything else
//! becomes a message quoting the (truncated) text.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bridge_types::{ApiError, ErrorKind};
use serde_json::Value;

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
