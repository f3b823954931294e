//! The OAuth endpoints and the two token-endpoint calls (code exchange, refresh), with the constants of
//! codex-wire.md §12.1 as defaults. Every URL, the client id and the callback address are overridable so
//! tests point them at the emulator.
//!
//! Invariants: token values never appear in errors or logs; an error body from the token endpoint is
//! reduced to its `error`/`code` fields.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::AuthError;
use crate::credentials::ChatgptTokens;

/// The public client id of the Codex CLI.
pub const CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
/// Default authorize URL.
pub const AUTHORIZE_URL: &str = "https://auth.openai.com/oauth/authorize";
/// Default token URL.
pub const TOKEN_URL: &str = "https://auth.openai.com/oauth/token";
/// The registered redirect URI.
pub const REDIRECT_URI: &str = "http://localhost:1455/auth/callback";
/// Default callback listener (the redirect says `localhost`; the listener binds IPv4 loopback).
pub const CALLBACK_ADDR: &str = "127.0.0.1:1455";
/// Requested scopes.
pub const SCOPE: &str = "openid profile email offline_access";

/// Where and as whom the bridge logs in.
#[derive(Debug, Clone)]
pub struct OAuthEndpoints {
    pub client_id: String,
    pub authorize_url: String,
    pub token_url: String,
    pub redirect_uri: String,
    /// Address of the local callback listener.
    pub callback_addr: SocketAddr,
}

impl Default for OAuthEndpoints {
    fn default() -> Self {
        Self {
            client_id: CLIENT_ID.to_owned(),
            authorize_url: AUTHORIZE_URL.to_owned(),
            token_url: TOKEN_URL.to_owned(),
            redirect_uri: REDIRECT_URI.to_owned(),
            callback_addr: SocketAddr::from(([127, 0, 0, 1], 1455)),
        }
    }
}

impl OAuthEndpoints {
    /// The authorize URL with the query of codex-wire.md §12.1, in that order.
    pub fn authorize_url(&self, challenge: &str, state: &str) -> Result<String, AuthError> {
        let params = [
            ("response_type", "code"),
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("scope", SCOPE),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
            ("state", state),
            ("id_token_add_organizations", "true"),
            ("codex_cli_simplified_flow", "true"),
            ("originator", "codex_cli_rs"),
        ];
        reqwest::Url::parse_with_params(&self.authorize_url, params)
            .map(String::from)
            .map_err(|e| AuthError::Config(format!("invalid authorize URL {:?}: {e}", self.authorize_url)))
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    id_token: Option<String>,
    expires_in: Option<i64>,
}

/// Talks to the token endpoint.
#[derive(Debug, Clone)]
pub struct TokenClient {
    http: reqwest::Client,
    endpoints: OAuthEndpoints,
}

impl TokenClient {
    /// A client with a 30 s timeout per call.
    pub fn new(endpoints: OAuthEndpoints) -> Result<Self, AuthError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_proxy()
            .build()
            .map_err(|e| AuthError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { http, endpoints })
    }

    /// The endpoints in use.
    pub fn endpoints(&self) -> &OAuthEndpoints {
        &self.endpoints
    }

    /// `grant_type=authorization_code`.
    pub async fn exchange_code(&self, code: &str, verifier: &str, now_ms: i64) -> Result<ChatgptTokens, AuthError> {
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", self.endpoints.client_id.as_str()),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", self.endpoints.redirect_uri.as_str()),
        ];
        self.call(&form, None, now_ms).await
    }

    /// `grant_type=refresh_token`. A token endpoint that rotates nothing keeps the old refresh token.
    pub async fn refresh(&self, current: &ChatgptTokens, now_ms: i64) -> Result<ChatgptTokens, AuthError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", current.refresh_token.as_str()),
            ("client_id", self.endpoints.client_id.as_str()),
        ];
        let mut fresh = self.call(&form, Some(current), now_ms).await?;
        if fresh.account_id.is_none() {
            fresh.account_id.clone_from(&current.account_id);
        }
        Ok(fresh)
    }

    async fn call(
        &self,
        form: &[(&str, &str)],
        previous: Option<&ChatgptTokens>,
        now_ms: i64,
    ) -> Result<ChatgptTokens, AuthError> {
        let response = self
            .http
            .post(&self.endpoints.token_url)
            .form(form)
            .send()
            .await
            .map_err(|e| AuthError::Network(format!("token endpoint unreachable: {e}")))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| AuthError::Network(format!("token endpoint body: {e}")))?;
        if !(200..300).contains(&status) {
            return Err(AuthError::Rejected { status, reason: error_reason(&bytes) });
        }
        let answer: TokenAnswer = serde_json::from_slice(&bytes)
            .map_err(|e| AuthError::Network(format!("token endpoint sent invalid JSON: {e}")))?;
        let refresh = answer.refresh_token.or_else(|| previous.map(|p| p.refresh_token.clone()));
        let (Some(access), Some(refresh)) = (answer.access_token, refresh) else {
            return Err(AuthError::Network("token response lacks access_token or refresh_token".into()));
        };
        let id_token = answer.id_token.or_else(|| previous.and_then(|p| p.id_token.clone()));
        Ok(ChatgptTokens::new(access, refresh, id_token, answer.expires_in, now_ms))
    }
}

/// `error.code`, `error` (string) or `error.type`, else "unknown"; never the whole body.
fn error_reason(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(body) else { return "unknown".to_owned() };
    let e = v.get("error");
    e.and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .or_else(|| e.and_then(Value::as_str))
        .or_else(|| e.and_then(|e| e.get("type")).and_then(Value::as_str))
        .unwrap_or("unknown")
        .chars()
        .take(100)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_query_order() {
        let url = OAuthEndpoints::default().authorize_url("CH", "ST").unwrap();
        let query = url.split_once('?').unwrap().1;
        let names: Vec<&str> = query.split('&').map(|kv| kv.split('=').next().unwrap()).collect();
        assert_eq!(
            names,
            [
                "response_type",
                "client_id",
                "redirect_uri",
                "scope",
                "code_challenge",
                "code_challenge_method",
                "state",
                "id_token_add_organizations",
                "codex_cli_simplified_flow",
                "originator"
            ]
        );
        assert!(url.starts_with("https://auth.openai.com/oauth/authorize?response_type=code&client_id=app_EMoamEEZ73f0CkXaXp7hrann&redirect_uri=http%3A%2F%2Flocalhost%3A1455%2Fauth%2Fcallback"));
    }

    #[test]
    fn error_reasons_are_short() {
        assert_eq!(error_reason(br#"{"error":{"code":"refresh_token_reused","message":"x"}}"#), "refresh_token_reused");
        assert_eq!(error_reason(br#"{"error":"invalid_grant"}"#), "invalid_grant");
        assert_eq!(error_reason(b"<html>"), "unknown");
    }
}
