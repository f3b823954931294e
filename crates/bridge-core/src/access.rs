//! Bridge access tokens. When `access_tokens` is configured, every route except `/health` needs one.
//!
//! The token travels as `x-codex-bridge-token`, or as `Authorization: Bearer` when the bridge owns the
//! upstream credential (in passthrough mode `Authorization` belongs to the upstream and is not looked at).
//! Comparison takes the same time wherever the first difference is.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bridge_types::{ApiError, ErrorKind};

use crate::config::UpstreamAuth;
use crate::errors::HttpError;
use crate::state::AppState;

/// Middleware: passes the request on, or answers 401.
pub async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.config.access_tokens.is_empty() {
        return next.run(request).await;
    }
    let headers = request.headers();
    let mut presented = headers.get("x-codex-bridge-token").and_then(|v| v.to_str().ok());
    if presented.is_none() && state.config.upstream.auth != UpstreamAuth::Passthrough {
        presented = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    }
    let ok = presented.is_some_and(|p| {
        state.config.access_tokens.iter().any(|t| constant_time_eq(t.expose().as_bytes(), p.trim().as_bytes()))
    });
    if ok {
        return next.run(request).await;
    }
    let message = match presented {
        None if state.config.upstream.auth == UpstreamAuth::Passthrough => {
            "missing bridge access token: send it in the x-codex-bridge-token header"
        }
        None => {
            "missing bridge access token: send it as Authorization: Bearer <token> or in the x-codex-bridge-token header"
        }
        Some(_) => "invalid bridge access token",
    };
    let route = request.uri().path().to_owned();
    tracing::warn!(%route, "refused a request without a valid bridge access token");
    HttpError(ApiError::new(401, ErrorKind::AuthenticationError, message).with_code("invalid_bridge_token"))
        .into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn constant_time_eq_works() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"ab"));
    }
}
