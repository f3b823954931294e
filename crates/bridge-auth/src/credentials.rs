//! The credentials the bridge keeps, and the import of an existing Codex `auth.json` (codex-wire.md §12.2).
//!
//! Invariant: no `Debug` output here ever contains a token or key (they are redacted to their length).

use serde::{Deserialize, Serialize};

use crate::AuthError;
use crate::claims::Claims;

/// What `codex-bridge login` stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credentials {
    /// ChatGPT OAuth tokens.
    Chatgpt(ChatgptTokens),
    /// An OpenAI API key (`login --with-api-key`).
    ApiKey { api_key: String },
}

/// ChatGPT OAuth tokens and what is known about them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatgptTokens {
    pub access_token: String,
    pub refresh_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// From the token's claim `https://api.openai.com/auth`.`chatgpt_account_id`.
    pub account_id: Option<String>,
    /// When the access token expires (Unix ms); from `expires_in`, else the token's `exp`.
    pub expires_at_ms: Option<i64>,
    /// When these tokens were obtained (Unix ms).
    pub obtained_at_ms: i64,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Chatgpt(t) => f.debug_tuple("Chatgpt").field(t).finish(),
            Credentials::ApiKey { api_key } => write!(f, "ApiKey(<{} bytes>)", api_key.len()),
        }
    }
}

impl std::fmt::Debug for ChatgptTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatgptTokens")
            .field("access_token", &format_args!("<{} bytes>", self.access_token.len()))
            .field("refresh_token", &format_args!("<{} bytes>", self.refresh_token.len()))
            .field("account_id", &self.account_id)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

impl ChatgptTokens {
    /// Tokens from a token-endpoint answer, obtained at `now_ms`. The account id comes from the access
    /// token's claims, else the id token's.
    pub fn new(
        access_token: String,
        refresh_token: String,
        id_token: Option<String>,
        expires_in_secs: Option<i64>,
        now_ms: i64,
    ) -> Self {
        let access = Claims::of(&access_token);
        let account_id =
            access.account_id.clone().or_else(|| id_token.as_deref().and_then(|t| Claims::of(t).account_id));
        let expires_at_ms = expires_in_secs
            .map(|s| now_ms.saturating_add(s.saturating_mul(1000)))
            .or_else(|| access.exp.map(|e| e.saturating_mul(1000)));
        Self { access_token, refresh_token, id_token, account_id, expires_at_ms, obtained_at_ms: now_ms }
    }

    /// Plan and email, from the id token when present, else the access token.
    pub fn profile(&self) -> Claims {
        let access = Claims::of(&self.access_token);
        let id = self.id_token.as_deref().map(Claims::of).unwrap_or_default();
        Claims {
            account_id: self.account_id.clone(),
            plan_type: id.plan_type.or(access.plan_type),
            email: id.email.or(access.email),
            exp: self.expires_at_ms.map(|ms| ms / 1000),
        }
    }
}

#[derive(Deserialize)]
struct CodexAuthFile {
    #[serde(rename = "OPENAI_API_KEY")]
    openai_api_key: Option<String>,
    tokens: Option<CodexTokens>,
}

#[derive(Deserialize)]
struct CodexTokens {
    id_token: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    account_id: Option<String>,
}

/// Parses a Codex `auth.json`: ChatGPT tokens when present, else its API key.
pub fn from_codex_auth_json(text: &str, now_ms: i64) -> Result<Credentials, AuthError> {
    let file: CodexAuthFile =
        serde_json::from_str(text).map_err(|e| AuthError::Import(format!("not a Codex auth.json: {e}")))?;
    if let Some(t) = file.tokens {
        let (Some(access), Some(refresh)) = (t.access_token, t.refresh_token) else {
            return Err(AuthError::Import("tokens.access_token and tokens.refresh_token are required".into()));
        };
        let mut tokens = ChatgptTokens::new(access, refresh, t.id_token, None, now_ms);
        if tokens.account_id.is_none() {
            tokens.account_id = t.account_id.filter(|a| !a.is_empty());
        }
        return Ok(Credentials::Chatgpt(tokens));
    }
    match file.openai_api_key.filter(|k| !k.trim().is_empty()) {
        Some(api_key) => Ok(Credentials::ApiKey { api_key }),
        None => Err(AuthError::Import("the file has neither tokens nor OPENAI_API_KEY".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let c = Credentials::Chatgpt(ChatgptTokens::new("acc-secret".into(), "ref-secret".into(), None, Some(60), 0));
        let d = format!("{c:?}");
        assert!(!d.contains("acc-secret") && !d.contains("ref-secret"), "{d}");
        let k = Credentials::ApiKey { api_key: "sk-secret".into() };
        assert!(!format!("{k:?}").contains("sk-secret"));
    }

    #[test]
    fn imports_api_key_files_and_rejects_empty_ones() {
        let c = from_codex_auth_json(r#"{"auth_mode":"apikey","OPENAI_API_KEY":"sk-1"}"#, 0).unwrap();
        assert_eq!(c, Credentials::ApiKey { api_key: "sk-1".into() });
        assert!(from_codex_auth_json(r#"{"OPENAI_API_KEY":null}"#, 0).is_err());
        assert!(from_codex_auth_json("nope", 0).is_err());
    }
}
