//! Reading the claims of a ChatGPT JWT without verifying it (the backend verifies; the bridge only needs the
//! account id, plan, email and expiry). Layout per codex-wire.md §12.2: claim `https://api.openai.com/auth`
//! holds `chatgpt_account_id` and `chatgpt_plan_type`; `exp` is Unix seconds; the email is at `email` (id
//! token) or `https://api.openai.com/profile`.`email` (access token).
//!
//! Invariant: malformed input gives `None` fields, never a panic.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// The claims the bridge uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    pub account_id: Option<String>,
    pub plan_type: Option<String>,
    pub email: Option<String>,
    /// Expiry in Unix seconds.
    pub exp: Option<i64>,
}

/// The JSON payload of a three-part JWT.
pub fn payload(token: &str) -> Option<Value> {
    let mut parts = token.split('.');
    let (_, body, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(body.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl Claims {
    /// The claims of `token` (all `None` when it is not a readable JWT).
    pub fn of(token: &str) -> Self {
        let Some(p) = payload(token) else { return Self::default() };
        let auth = p.get("https://api.openai.com/auth");
        let text = |v: Option<&Value>| v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        Self {
            account_id: text(auth.and_then(|a| a.get("chatgpt_account_id"))),
            plan_type: text(auth.and_then(|a| a.get("chatgpt_plan_type"))),
            email: text(p.get("email"))
                .or_else(|| text(p.get("https://api.openai.com/profile").and_then(|v| v.get("email")))),
            exp: p.get("exp").and_then(Value::as_i64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &Value) -> String {
        format!("e30.{}.", URL_SAFE_NO_PAD.encode(payload.to_string()))
    }

    #[test]
    fn reads_the_codex_claims() {
        let t = jwt(&serde_json::json!({
            "exp": 1_900_000_000,
            "https://api.openai.com/auth": {"chatgpt_account_id": "acc-1", "chatgpt_plan_type": "pro"},
            "https://api.openai.com/profile": {"email": "a@b.c"}
        }));
        let c = Claims::of(&t);
        assert_eq!(c.account_id.as_deref(), Some("acc-1"));
        assert_eq!(c.plan_type.as_deref(), Some("pro"));
        assert_eq!(c.email.as_deref(), Some("a@b.c"));
        assert_eq!(c.exp, Some(1_900_000_000));
    }

    #[test]
    fn garbage_gives_nothing() {
        for t in ["", "a.b", "a.b.c.d", "a.!!!.c", "opaque-token"] {
            assert_eq!(Claims::of(t), Claims::default(), "{t}");
        }
    }
}
