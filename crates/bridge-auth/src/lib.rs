//! ChatGPT access for codex-bridge: the OAuth PKCE browser login with a local callback listener
//! ([`login`], [`callback`]), the token endpoint ([`oauth`]), credentials in `<data dir>/auth.json` with mode
//! 0600 and atomic writes ([`file`], [`credentials`]), import of a Codex `auth.json`, and the
//! [`manager::TokenManager`] that refreshes ahead of expiry with single flight.
//!
//! Invariants: no token, key or verifier reaches a log line, an error message or `Debug` output; the
//! constants and query of codex-wire.md §12.1 are the defaults, and every endpoint is overridable.

pub mod callback;
pub mod claims;
pub mod credentials;
mod error;
pub mod file;
pub mod login;
pub mod manager;
pub mod oauth;
pub mod pkce;

pub use claims::Claims;
pub use credentials::{ChatgptTokens, Credentials, from_codex_auth_json};
pub use error::AuthError;
pub use login::BrowserLogin;
pub use manager::{Access, Clock, TokenManager};
pub use oauth::{OAuthEndpoints, TokenClient};

/// Unix time in milliseconds (0 before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
