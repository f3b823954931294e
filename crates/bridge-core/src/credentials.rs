//! The upstream credential, an input of the upstream client: none (the client's own `Authorization` is
//! passed through), the bridge's API key, or ChatGPT tokens with the Codex identification headers.
//!
//! ChatGPT: `Authorization: Bearer <access token>`, `chatgpt-account-id`, and for a client that is not Codex
//! CLI (an `originator` starting with `codex` keeps its own `originator`, `user-agent` and `version`) the
//! configured identification headers. After an upstream 401 the upstream client asks [`Credentials::refresh`]
//! once, inside its one retry loop; a second 401 is the documented 401 telling the user to run
//! `codex-bridge login`.
//!
//! Invariants: header values holding a secret are marked sensitive; no error text carries a token.

use axum::http::{HeaderMap, HeaderValue, header};
use bridge_auth::{Access, AuthError, TokenClient, TokenManager};
use bridge_types::{ApiError, ErrorKind};

use crate::config::codex::Identity;
use crate::config::{Config, Secret, UpstreamAuth};

/// The code of the 401 that asks for a new login.
pub const LOGIN_REQUIRED: &str = "chatgpt_login_required";

/// How the bridge authenticates to the upstream.
pub enum Credentials {
    /// The client's own credential goes upstream unchanged.
    Passthrough,
    /// The bridge's API key.
    ApiKey(Secret),
    /// ChatGPT OAuth tokens (refreshed ahead of expiry, and once after a 401).
    Chatgpt(Box<ChatgptAuth>),
}

/// What [`Credentials::apply`] put on a request, needed to ask for a refresh after a 401.
pub struct Applied(Option<Access>);

impl Credentials {
    /// The credential the configuration names (reads the ChatGPT login file; no network).
    pub fn from_config(config: &Config) -> Result<Self, AuthError> {
        Ok(match config.upstream.auth {
            UpstreamAuth::Passthrough => Credentials::Passthrough,
            UpstreamAuth::ApiKey => match &config.upstream.api_key {
                Some(key) => Credentials::ApiKey(key.clone()),
                None => Credentials::Passthrough,
            },
            UpstreamAuth::Chatgpt => {
                let client = TokenClient::new(config.chatgpt.oauth.clone())?;
                let tokens =
                    TokenManager::load(config.chatgpt.credentials.clone(), client, config.chatgpt.refresh_margin)?;
                let identity = config.upstream.codex.as_ref().map(|s| s.identity.clone());
                Credentials::Chatgpt(Box::new(ChatgptAuth { tokens, identity }))
            }
        })
    }

    /// True when the bridge, not the client, holds the upstream credential.
    pub fn held_by_bridge(&self) -> bool {
        !matches!(self, Credentials::Passthrough)
    }

    /// A marker of the upstream account a request goes to (a hash, never the credential), for state that
    /// must not cross accounts (the Chat reasoning replay): the ChatGPT account id, else the bridge's API key,
    /// else (passthrough) the client's `chatgpt-account-id` header or, without one, its `Authorization`.
    pub fn account_marker(&self, client: &HeaderMap) -> String {
        let mut h = blake3::Hasher::new();
        match self {
            Credentials::Passthrough => {
                let account = client.get("chatgpt-account-id").or_else(|| client.get(header::AUTHORIZATION));
                h.update(b"passthrough\0").update(account.map_or(&b""[..], |v| v.as_bytes()));
            }
            Credentials::ApiKey(key) => {
                h.update(b"api-key\0").update(key.expose().as_bytes());
            }
            Credentials::Chatgpt(auth) => {
                let account = auth.tokens.snapshot().account_id.unwrap_or_default();
                h.update(b"chatgpt\0").update(account.as_bytes());
            }
        }
        h.finalize().to_hex()[..32].to_owned()
    }

    /// Puts the credential on `headers` (a ChatGPT token is refreshed first when it is about to expire).
    pub async fn apply(&self, headers: &mut HeaderMap) -> Result<Applied, ApiError> {
        match self {
            Credentials::Passthrough => Ok(Applied(None)),
            Credentials::ApiKey(key) => {
                set_bearer(headers, key.expose());
                Ok(Applied(None))
            }
            Credentials::Chatgpt(auth) => {
                let access = auth.tokens.access().await.map_err(auth_error)?;
                auth.apply(headers, &access);
                Ok(Applied(Some(access)))
            }
        }
    }

    /// After an upstream 401: refreshes the ChatGPT token the request carried and puts the new one on
    /// `headers`. `Ok(None)` when there is nothing to refresh (the 401 stands as the upstream sent it).
    pub async fn refresh(&self, applied: &Applied, headers: &mut HeaderMap) -> Result<Option<Applied>, ApiError> {
        let (Credentials::Chatgpt(auth), Some(rejected)) = (self, &applied.0) else { return Ok(None) };
        let access = auth.tokens.after_unauthorized(rejected).await.map_err(auth_error)?;
        auth.apply(headers, &access);
        Ok(Some(Applied(Some(access))))
    }
}

/// ChatGPT tokens plus the identity to present.
pub struct ChatgptAuth {
    tokens: TokenManager,
    identity: Option<Identity>,
}

impl ChatgptAuth {
    fn apply(&self, headers: &mut HeaderMap, access: &Access) {
        set_bearer(headers, &access.token);
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

fn set_bearer(headers: &mut HeaderMap, token: &str) {
    if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {token}")) {
        v.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, v);
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
