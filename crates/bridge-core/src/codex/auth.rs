//! ChatGPT credentials on upstream requests: `Authorization: Bearer <access token>`, `chatgpt-account-id`,
//! and the Codex identification headers; one refresh and one retry after an upstream 401, then the
//! documented 401 telling the user to run `codex-bridge login`.
//!
//! Identification headers: a client that sends an `originator` starting with `codex` (Codex CLI) keeps its
//! own `originator`, `user-agent` and `version`; for any other client the configured values are set.

use axum::http::{HeaderMap, HeaderValue, header};
use bridge_auth::{Access, AuthError, TokenManager};
use bridge_types::{ApiError, ErrorKind};
use bytes::Bytes;

use super::settings::Identity;
use crate::metrics::Metrics;
use crate::upstream::Upstream;

/// The code of the 401 that asks for a new login.
pub const LOGIN_REQUIRED: &str = "chatgpt_login_required";

/// Tokens plus the identity to present.
pub struct ChatgptAuth {
    tokens: TokenManager,
    identity: Option<Identity>,
}

impl ChatgptAuth {
    /// Wraps a token manager.
    pub fn new(tokens: TokenManager, identity: Option<Identity>) -> Self {
        Self { tokens, identity }
    }

    fn apply(&self, headers: &mut HeaderMap, access: &Access) {
        if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", access.token)) {
            v.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, v);
        }
        match access.account_id.as_deref().map(HeaderValue::from_str) {
            Some(Ok(v)) => {
                headers.insert("chatgpt-account-id", v);
            }
            _ => {
                headers.remove("chatgpt-account-id");
            }
        }
        let codex_client =
            headers.get("originator").and_then(|v| v.to_str().ok()).is_some_and(|o| o.starts_with("codex"));
        if let (Some(id), false) = (&self.identity, codex_client) {
            for (name, value) in
                [("originator", &id.originator), ("user-agent", &id.user_agent), ("version", &id.version)]
            {
                if let Ok(v) = HeaderValue::from_str(value) {
                    headers.insert(name, v);
                }
            }
        }
    }
}

/// The 401 a client gets when the login is gone.
pub fn login_required(why: &str) -> ApiError {
    ApiError::new(
        401,
        ErrorKind::AuthenticationError,
        format!("ChatGPT login is no longer valid ({why}): run `codex-bridge login` on the bridge host"),
    )
    .with_code(LOGIN_REQUIRED)
}

fn auth_error(e: AuthError) -> ApiError {
    match e {
        AuthError::Network(m) => crate::errors::bad_gateway(format!("cannot refresh the ChatGPT token: {m}")),
        AuthError::Io { .. } => ApiError::new(500, ErrorKind::ServerError, e.to_string()),
        AuthError::Rejected { status, reason } => {
            login_required(&format!("token refresh refused: HTTP {status} {reason}"))
        }
        other => login_required(&other.to_string()),
    }
}

/// Sends a Responses request with ChatGPT credentials (see the module docs).
pub async fn send(
    upstream: &Upstream,
    auth: &ChatgptAuth,
    mut headers: HeaderMap,
    body: Bytes,
    metrics: &Metrics,
) -> Result<reqwest::Response, ApiError> {
    let access = auth.tokens.access().await.map_err(auth_error)?;
    auth.apply(&mut headers, &access);
    let response = upstream.send_with_retries(headers.clone(), body.clone(), metrics).await?;
    if response.status().as_u16() != 401 {
        return Ok(response);
    }
    metrics.inc("codex_bridge_upstream_retries_total", &[("reason", "401")], 1);
    let access = auth.tokens.after_unauthorized(&access).await.map_err(auth_error)?;
    auth.apply(&mut headers, &access);
    let response = upstream.send_with_retries(headers, body, metrics).await?;
    if response.status().as_u16() == 401 {
        return Err(login_required("the upstream refused the refreshed token"));
    }
    Ok(response)
}
