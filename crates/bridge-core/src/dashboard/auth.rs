//! Dashboard access. Without access tokens (only possible on a loopback listener, see
//! [`crate::config`]) the dashboard is open. With tokens, the page shows a login form; posting a valid
//! token creates a login: a random 256-bit id, kept server-side (hashed) with its expiry and sent back as
//! an `HttpOnly; SameSite=Strict; Path=/` cookie (`Secure` when the request arrived over HTTPS through a
//! proxy). The API then takes that cookie or the same token headers as every other route
//! ([`crate::access`]).
//!
//! Invariants: the token never appears in a URL, a page or a cookie; logins are bounded
//! ([`MAX_LOGINS`]) and expire after [`LOGIN_TTL_MS`]; every state-changing POST must come from the page's
//! own origin (`Origin` equal to the `Host`), or, without `Origin`, carry `X-CSRF` (a custom header a
//! cross-site form cannot send).

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;
use ring::rand::SecureRandom as _;

use crate::config::Config;

/// The login cookie's name.
pub const COOKIE: &str = "codex_bridge_session";
/// How long a login lasts.
pub const LOGIN_TTL_MS: i64 = 12 * 60 * 60 * 1000;
/// Logins held at once; past it the one closest to expiry is dropped.
pub const MAX_LOGINS: usize = 1024;

/// Server-side logins: BLAKE3 of the cookie value → expiry (Unix ms).
#[derive(Default)]
pub struct Logins {
    live: Mutex<HashMap<[u8; 32], i64>>,
}

impl Logins {
    /// Creates a login and returns the cookie value (64 hex digits); `None` if the system RNG failed.
    pub fn create(&self, now_ms: i64) -> Option<String> {
        let mut id = [0u8; 32];
        ring::rand::SystemRandom::new().fill(&mut id).ok()?;
        let value: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let mut live = self.live.lock().ok()?;
        live.retain(|_, expires| *expires > now_ms);
        if live.len() >= MAX_LOGINS
            && let Some(oldest) = live.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k)
        {
            live.remove(&oldest);
        }
        live.insert(*blake3::hash(value.as_bytes()).as_bytes(), now_ms + LOGIN_TTL_MS);
        Some(value)
    }

    /// Whether `value` names a live login.
    pub fn is_live(&self, value: &str, now_ms: i64) -> bool {
        let key = *blake3::hash(value.as_bytes()).as_bytes();
        self.live.lock().is_ok_and(|l| l.get(&key).is_some_and(|e| *e > now_ms))
    }

    /// Ends a login (logout).
    pub fn end(&self, value: &str) {
        if let Ok(mut l) = self.live.lock() {
            l.remove(blake3::hash(value.as_bytes()).as_bytes());
        }
    }
}

/// The login cookie's value in `headers`, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// Whether a request may read the dashboard: no tokens configured, a live login cookie, or a valid token.
pub fn allowed(config: &Config, logins: &Logins, headers: &HeaderMap, now_ms: i64) -> bool {
    if config.access_tokens.is_empty() {
        return true;
    }
    if cookie_value(headers).is_some_and(|v| logins.is_live(v, now_ms)) {
        return true;
    }
    crate::access::presented_token(config, headers).is_some_and(|t| crate::access::is_valid(config, t))
}

/// Whether a POST comes from the dashboard's own origin (see the module invariants).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match (text("origin"), text("host")) {
        (Some(origin), Some(host)) => {
            origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
        }
        (Some(_), None) => false,
        (None, _) => headers.contains_key("x-csrf"),
    }
}

/// The `Set-Cookie` value for a new login.
pub fn set_cookie(value: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}", LOGIN_TTL_MS / 1000)
}

/// The `Set-Cookie` value that clears the login cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// Whether the request reached the bridge over HTTPS (through a TLS-terminating proxy).
pub fn over_https(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn logins_are_random_expire_and_end() {
        let logins = Logins::default();
        let a = logins.create(0).unwrap();
        let b = logins.create(0).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(logins.is_live(&a, 1));
        assert!(!logins.is_live(&a, LOGIN_TTL_MS));
        assert!(!logins.is_live("nope", 1));
        logins.end(&a);
        assert!(!logins.is_live(&a, 1));
        assert!(logins.is_live(&b, 1));
    }

    #[test]
    fn cookie_parsing_and_origin_checks() {
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_static("x=1; codex_bridge_session=abc; y=2"));
        assert_eq!(cookie_value(&h), Some("abc"));
        assert!(!same_origin(&h), "no Origin and no X-CSRF");
        h.insert("x-csrf", HeaderValue::from_static("1"));
        assert!(same_origin(&h));
        h.insert("host", HeaderValue::from_static("127.0.0.1:8787"));
        h.insert("origin", HeaderValue::from_static("http://evil.example"));
        assert!(!same_origin(&h), "a foreign Origin loses even with X-CSRF");
        h.insert("origin", HeaderValue::from_static("http://127.0.0.1:8787"));
        assert!(same_origin(&h));
        let c = set_cookie("v", false);
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/") && !c.contains("Secure")
        );
        assert!(set_cookie("v", true).ends_with("; Secure"));
    }
}
