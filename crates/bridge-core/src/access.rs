//! Bridge access tokens. When `access_tokens` is configured, every route except `/health` needs one.
//!
//! The token travels as `x-codex-bridge-token`, or as `Authorization: Bearer` when the bridge owns the
//! upstream credential (in passthrough mode `Authorization` belongs to the upstream and is not looked at).
//! Comparison leaks neither where the first difference is nor the token's length: both sides are hashed
//! (BLAKE3, 32 bytes) and the digests compared in constant time, against every configured token.
//! Empty or whitespace-only tokens are refused at startup ([`crate::config`]).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bridge_types::{ApiError, ErrorKind};

use axum::http::HeaderMap;

use crate::config::{Config, UpstreamAuth};
use crate::errors::HttpError;
use crate::state::AppState;

/// Middleware: passes the request on, or answers 401.
pub async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.config.access_tokens.is_empty() {
        return next.run(request).await;
    }
    let presented = presented_token(&state.config, request.headers());
    let ok = presented.is_some_and(|p| is_valid(&state.config, p));
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

/// The bridge token a request presents: `x-codex-bridge-token`, else (when the bridge owns the upstream
/// credential) `Authorization: Bearer`.
pub fn presented_token<'a>(config: &Config, headers: &'a HeaderMap) -> Option<&'a str> {
    let mut presented = headers.get("x-codex-bridge-token").and_then(|v| v.to_str().ok());
    if presented.is_none() && config.upstream.auth != UpstreamAuth::Passthrough {
        presented = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    }
    presented
}

/// Whether `presented` (trimmed) is one of the configured tokens, in constant time.
pub fn is_valid(config: &Config, presented: &str) -> bool {
    matches_any(&config.access_tokens, presented.trim())
}

/// Whether `presented` is one of `tokens`, in time independent of the tokens' contents and lengths.
fn matches_any(tokens: &[crate::config::Secret], presented: &str) -> bool {
    let presented = blake3::hash(presented.as_bytes());
    // `blake3::Hash` equality is constant-time; every token is compared (no early exit).
    tokens.iter().fold(false, |found, t| found | (blake3::hash(t.expose().as_bytes()) == presented))
}

#[cfg(test)]
mod tests {
    use crate::config::Secret;

    #[test]
    fn matches_only_a_configured_token() {
        let tokens = [Secret::new("alpha-token".into()), Secret::new("beta".into())];
        assert!(super::matches_any(&tokens, "alpha-token"));
        assert!(super::matches_any(&tokens, "beta"));
        assert!(!super::matches_any(&tokens, "alpha-toke"));
        assert!(!super::matches_any(&tokens, ""));
        assert!(!super::matches_any(&[], "beta"));
    }
}
