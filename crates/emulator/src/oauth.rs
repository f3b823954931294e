//! OAuth emulation for login tests: authorization codes with PKCE S256, access/refresh/id tokens,
//! refresh-token rotation, revocation, and the token check used by the ChatGPT-flavour endpoint.
//!
//! Invariants: a code works once and only with the verifier whose S256 challenge was given at
//! authorize; a refresh token works once (reuse → 401 `refresh_token_reused`); access tokens are
//! unsigned JWTs (`alg: none`) whose payload has `exp` and `https://api.openai.com/auth` →
//! `chatgpt_account_id`/`chatgpt_plan_type` (codex-wire.md §12); expiry is judged with the emulator clock.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Value, json};

use crate::crypto::{b64url, b64url_decode, sha256};

#[derive(Debug, Clone)]
struct CodeGrant {
    challenge: Option<String>,
    redirect_uri: String,
}

#[derive(Debug, Clone)]
struct AccessToken {
    exp_ms: u64,
    revoked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshState {
    Fresh,
    Used,
    Revoked,
}

/// OAuth counters (`GET /emulator/oauth`).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct OAuthCounters {
    /// `GET /oauth/authorize` calls that issued a code.
    pub authorize_calls: u64,
    /// Successful authorization-code exchanges.
    pub code_exchanges: u64,
    /// `refresh_token` grant calls (successful or not).
    pub refresh_calls: u64,
    /// Successful refreshes.
    pub refresh_ok: u64,
    /// Access tokens issued.
    pub access_tokens_issued: u64,
}

/// Result of checking a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    /// Issued here, not revoked, not expired.
    Valid,
    /// Issued here but past its `exp`.
    Expired,
    /// Unknown or revoked.
    Invalid,
}

/// An OAuth error: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthError {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Value,
}

fn grant_error(description: &str) -> OAuthError {
    OAuthError { status: 400, body: json!({"error": "invalid_grant", "error_description": description}) }
}

fn refresh_error(code: &str, message: &str) -> OAuthError {
    OAuthError {
        status: 401,
        body: json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}}),
    }
}

#[derive(Debug, Default)]
struct Inner {
    codes: HashMap<String, CodeGrant>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshState>,
    serial: u64,
    counters: OAuthCounters,
}

/// The OAuth server state.
#[derive(Debug)]
pub struct OAuth {
    account_id: String,
    plan_type: String,
    access_ttl_ms: u64,
    seed: u64,
    inner: Mutex<Inner>,
}

/// Build an unsigned JWT (`alg: none`) with `payload`.
pub fn unsigned_jwt(payload: &Value) -> String {
    let header = json!({"alg": "none", "typ": "JWT"});
    format!(
        "{}.{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(payload.to_string().as_bytes()),
        b64url(b"emulator-unsigned")
    )
}

/// Decode the payload of a JWT (no signature check).
pub fn jwt_payload(token: &str) -> Option<Value> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&b64url_decode(payload)?).ok()
}

impl OAuth {
    /// A server issuing tokens for `account_id`/`plan_type` with access tokens living `access_ttl_secs`.
    pub fn new(account_id: &str, plan_type: &str, access_ttl_secs: u64) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self {
            account_id: account_id.to_owned(),
            plan_type: plan_type.to_owned(),
            access_ttl_ms: access_ttl_secs.saturating_mul(1000),
            seed,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unique(&self, inner: &mut Inner, prefix: &str) -> String {
        inner.serial += 1;
        let h = blake3::hash(format!("{}:{}", self.seed, inner.serial).as_bytes());
        format!("{prefix}{}", &h.to_hex()[..32])
    }

    /// Issue an authorization code for `redirect_uri` bound to `code_challenge` (S256).
    pub fn authorize(&self, redirect_uri: &str, code_challenge: Option<&str>) -> String {
        let mut inner = self.lock();
        let code = self.unique(&mut inner, "ac_");
        inner.codes.insert(
            code.clone(),
            CodeGrant { challenge: code_challenge.map(str::to_owned), redirect_uri: redirect_uri.to_owned() },
        );
        inner.counters.authorize_calls += 1;
        code
    }

    fn issue(&self, inner: &mut Inner, now_ms: u64) -> Value {
        let exp_s = (now_ms + self.access_ttl_ms) / 1000;
        let iat_s = now_ms / 1000;
        let claims = json!({"chatgpt_account_id": self.account_id, "chatgpt_plan_type": self.plan_type,
            "chatgpt_user_id": "user-emulator", "user_id": "user-emulator"});
        let jti = self.unique(inner, "");
        let access = unsigned_jwt(&json!({"iss": "https://auth.openai.com", "aud": ["https://api.openai.com/v1"],
            "sub": "auth0|emulator", "iat": iat_s, "exp": exp_s, "jti": jti,
            "https://api.openai.com/auth": claims, "https://api.openai.com/profile": {"email": "emulator@example.invalid"}}));
        let id_token = unsigned_jwt(&json!({"iss": "https://auth.openai.com", "aud": ["app_EMoamEEZ73f0CkXaXp7hrann"],
            "sub": "auth0|emulator", "email": "emulator@example.invalid", "email_verified": true, "iat": iat_s,
            "exp": exp_s, "https://api.openai.com/auth": claims}));
        let refresh = self.unique(inner, "rt_");
        inner.access.insert(access.clone(), AccessToken { exp_ms: exp_s * 1000, revoked: false });
        inner.refresh.insert(refresh.clone(), RefreshState::Fresh);
        inner.counters.access_tokens_issued += 1;
        json!({"access_token": access, "refresh_token": refresh, "id_token": id_token,
            "expires_in": self.access_ttl_ms / 1000, "token_type": "Bearer",
            "scope": "openid profile email offline_access"})
    }

    /// Handle `POST /oauth/token` with the given form fields at `now_ms`.
    pub fn token(&self, form: &HashMap<String, String>, now_ms: u64) -> Result<Value, OAuthError> {
        let field = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let mut inner = self.lock();
        match field("grant_type") {
            Some("authorization_code") => {
                let code = field("code").ok_or_else(|| grant_error("missing code"))?;
                let grant = inner.codes.remove(code).ok_or_else(|| grant_error("unknown or used code"))?;
                if let Some(uri) = field("redirect_uri")
                    && uri != grant.redirect_uri
                {
                    return Err(grant_error("redirect_uri mismatch"));
                }
                if let Some(challenge) = &grant.challenge {
                    let verifier = field("code_verifier").ok_or_else(|| grant_error("missing code_verifier"))?;
                    if b64url(&sha256(verifier.as_bytes())) != *challenge {
                        return Err(grant_error("code_verifier does not match code_challenge"));
                    }
                }
                inner.counters.code_exchanges += 1;
                Ok(self.issue(&mut inner, now_ms))
            }
            Some("refresh_token") => {
                inner.counters.refresh_calls += 1;
                let token = field("refresh_token").ok_or_else(|| grant_error("missing refresh_token"))?;
                match inner.refresh.get(token).copied() {
                    Some(RefreshState::Fresh) => {
                        inner.refresh.insert(token.to_owned(), RefreshState::Used);
                        inner.counters.refresh_ok += 1;
                        Ok(self.issue(&mut inner, now_ms))
                    }
                    Some(RefreshState::Used) => Err(refresh_error(
                        "refresh_token_reused",
                        "Your refresh token has already been used to generate a new access token. Please try signing in again.",
                    )),
                    Some(RefreshState::Revoked) | None => Err(refresh_error(
                        "refresh_token_invalidated",
                        "Your refresh token has been invalidated. Please try signing in again.",
                    )),
                }
            }
            _ => Err(OAuthError { status: 400, body: json!({"error": "unsupported_grant_type"}) }),
        }
    }

    /// Check a bearer token issued here.
    pub fn check(&self, token: &str, now_ms: u64) -> TokenCheck {
        match self.lock().access.get(token) {
            Some(t) if t.revoked => TokenCheck::Invalid,
            Some(t) if now_ms >= t.exp_ms => TokenCheck::Expired,
            Some(_) => TokenCheck::Valid,
            None => TokenCheck::Invalid,
        }
    }

    /// Revoke one access or refresh token, or every token when `token` is `None`. Returns how many.
    pub fn revoke(&self, token: Option<&str>) -> usize {
        let mut inner = self.lock();
        let mut n = 0;
        for (k, t) in inner.access.iter_mut() {
            if token.is_none_or(|x| x == k) && !t.revoked {
                t.revoked = true;
                n += 1;
            }
        }
        for (k, s) in inner.refresh.iter_mut() {
            if token.is_none_or(|x| x == k) && *s != RefreshState::Revoked {
                *s = RefreshState::Revoked;
                n += 1;
            }
        }
        n
    }

    /// The counters.
    pub fn counters(&self) -> OAuthCounters {
        self.lock().counters.clone()
    }

    /// Forget every code and token and zero the counters.
    pub fn reset(&self) {
        let mut inner = self.lock();
        let serial = inner.serial;
        *inner = Inner { serial, ..Inner::default() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn pkce_refresh_rotation_expiry_revoke() {
        let o = OAuth::new("acct", "plus", 60);
        let verifier = "dBjftJeZ4CVP-mJ92K9RqWEF4EUy2jPhgS1gvi1xpNg";
        let challenge = b64url(&sha256(verifier.as_bytes()));
        let code = o.authorize("http://localhost:1455/auth/callback", Some(&challenge));
        let bad =
            o.token(&form(&[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", "nope")]), 0);
        assert_eq!(bad.unwrap_err().status, 400);
        // the code was consumed by the failed attempt
        let code = o.authorize("http://localhost:1455/auth/callback", Some(&challenge));
        let ok = o
            .token(&form(&[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", verifier)]), 0)
            .unwrap();
        let access = ok["access_token"].as_str().unwrap();
        let payload = jwt_payload(access).unwrap();
        assert_eq!(payload["https://api.openai.com/auth"]["chatgpt_account_id"], "acct");
        assert_eq!(payload["exp"], 60);
        assert_eq!(o.check(access, 59_999), TokenCheck::Valid);
        assert_eq!(o.check(access, 60_000), TokenCheck::Expired);
        let rt = ok["refresh_token"].as_str().unwrap();
        let r1 = o.token(&form(&[("grant_type", "refresh_token"), ("refresh_token", rt)]), 1000).unwrap();
        let again = o.token(&form(&[("grant_type", "refresh_token"), ("refresh_token", rt)]), 1000).unwrap_err();
        assert_eq!(again.body["error"]["code"], "refresh_token_reused");
        assert_eq!(o.counters().refresh_calls, 2);
        let new_access = r1["access_token"].as_str().unwrap();
        assert_eq!(o.revoke(Some(new_access)), 1);
        assert_eq!(o.check(new_access, 1000), TokenCheck::Invalid);
    }
}
