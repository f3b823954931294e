//! Error responses in the shapes the real services use: FastAPI-style `{"detail": …}` (ChatGPT Codex
//! backend validation), OpenAI `{"error": {…}}`, `usage_limit_reached`, and token errors.
//!
//! Invariant: every error answer is JSON with `content-type: application/json`; sources of each shape
//! are listed in README.md.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A JSON response with `status`.
pub fn json(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// An error answer: status, JSON body and an optional `Retry-After` (seconds). Small enough to return in
/// a `Result`; becomes a JSON response.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// `Retry-After` header value in seconds.
    pub retry_after: Option<u64>,
    /// Further response headers (the quota's rate-limit headers).
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    /// An error with `status` and `body`.
    pub fn new(status: u16, body: Value) -> Self {
        Self { status, body, retry_after: None, headers: Vec::new() }
    }

    /// The wrapped WebSocket form: `{"type":"error","status":N,"error":{…},"headers":{…}}`. A body without
    /// an `error` object (the ChatGPT backend's `{"detail": …}`) becomes `error.message`.
    pub fn wrapped(&self) -> Value {
        let error = match self.body.get("error") {
            Some(e @ Value::Object(_)) => e.clone(),
            _ => {
                let message = self
                    .body
                    .get("detail")
                    .and_then(Value::as_str)
                    .map_or_else(|| self.body.to_string(), str::to_owned);
                json!({"type": "invalid_request_error", "code": null, "message": message, "param": null})
            }
        };
        let mut headers: serde_json::Map<String, Value> =
            self.headers.iter().map(|(k, v)| ((*k).to_owned(), Value::String(v.clone()))).collect();
        if let Some(secs) = self.retry_after {
            headers.insert("retry-after".to_owned(), Value::String(secs.to_string()));
        }
        json!({"type": "error", "status": self.status, "error": error, "headers": headers})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = json(self.status, self.body);
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                resp.headers_mut().insert(*name, v);
            }
        }
        resp
    }
}

/// `{"detail": message}` (ChatGPT backend validation errors).
pub fn detail(status: u16, message: &str) -> ApiError {
    ApiError::new(status, json!({ "detail": message }))
}

/// OpenAI API error object.
pub fn api_error(status: u16, message: &str, kind: Option<&str>, param: Option<&str>, code: Option<&str>) -> ApiError {
    ApiError::new(status, json!({"error": {"message": message, "type": kind, "param": param, "code": code}}))
}

/// 401 for a token that expired (`code: token_expired`), shape `{"error":{…},"status":401}`.
pub fn token_expired() -> ApiError {
    ApiError::new(
        401,
        json!({"error": {"message": "Provided authentication token is expired. Please try signing in again.",
            "type": "invalid_request_error", "code": "token_expired", "param": null}, "status": 401}),
    )
}

/// 401 for an unknown or revoked token (`code: token_invalidated`).
pub fn token_invalidated() -> ApiError {
    ApiError::new(
        401,
        json!({"error": {"message": "Your authentication token has been invalidated. Please try signing in again.",
            "type": "invalid_request_error", "code": "token_invalidated", "param": null}, "status": 401}),
    )
}

/// 401 when no bearer token was sent.
pub fn missing_auth() -> ApiError {
    api_error(401, "Missing bearer or basic authentication in header", Some("invalid_request_error"), None, None)
}

/// 429 `usage_limit_reached`.
pub fn usage_limit(plan: &str, resets_at_s: u64) -> ApiError {
    ApiError::new(
        429,
        json!({"error": {"type": "usage_limit_reached", "plan_type": plan, "resets_at": resets_at_s,
            "message": "The usage limit has been reached"}}),
    )
}

/// An injected HTTP error with `status`, optional `Retry-After` and `error.code`.
pub fn injected(status: u16, retry_after: Option<u64>, code: Option<&str>) -> ApiError {
    let (message, kind, default_code) = match status {
        429 => ("Rate limit reached. Please try again later.", "rate_limit_exceeded", Some("rate_limit_exceeded")),
        500 => ("The server had an error while processing your request. Sorry about that!", "server_error", None),
        502 => ("Bad gateway.", "server_error", None),
        503 => ("The server is overloaded or not ready yet.", "server_error", None),
        _ => ("Injected error.", "server_error", None),
    };
    ApiError { retry_after, ..api_error(status, message, Some(kind), None, code.or(default_code)) }
}
