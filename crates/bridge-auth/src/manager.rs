//! [`TokenManager`]: the ChatGPT access token for upstream requests, refreshed ahead of expiry with single
//! flight, and once more after an upstream 401.
//!
//! Invariants:
//! - Any number of concurrent callers cause at most one refresh call: refreshes are serialized by one async
//!   mutex, and a caller that got the lock re-checks whether the tokens it saw are still the current ones.
//! - A refresh the token endpoint rejected is not retried with the same refresh token (so a revoked login
//!   costs one refresh call, not one per request); a new login on disk is picked up at the next refresh.
//! - Rotated tokens are saved atomically (0600) before they are used.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::credentials::{ChatgptTokens, Credentials};
use crate::oauth::TokenClient;
use crate::{AuthError, file};

/// Unix milliseconds; injectable so tests can move time across an expiry.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What an upstream request needs.
#[derive(Clone, PartialEq, Eq)]
pub struct Access {
    /// The bearer token.
    pub token: String,
    /// The `chatgpt-account-id` header value.
    pub account_id: Option<String>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").field("token", &"<redacted>").field("account_id", &self.account_id).finish()
    }
}

/// Shared by every request of a bridge.
pub struct TokenManager {
    path: PathBuf,
    client: TokenClient,
    margin: Duration,
    clock: Clock,
    current: RwLock<ChatgptTokens>,
    refresh: tokio::sync::Mutex<Option<Rejected>>,
}

/// A refresh token the endpoint refused, and why.
struct Rejected {
    refresh_token: String,
    error: AuthError,
}

impl TokenManager {
    /// Loads ChatGPT tokens from `path`; refreshes `margin` before expiry.
    pub fn load(path: PathBuf, client: TokenClient, margin: Duration) -> Result<Self, AuthError> {
        let tokens = match file::load(&path)? {
            Some(Credentials::Chatgpt(t)) => t,
            Some(Credentials::ApiKey { .. }) => return Err(AuthError::NotChatgpt(path)),
            None => return Err(AuthError::NotLoggedIn(path)),
        };
        Ok(Self {
            path,
            client,
            margin,
            clock: Arc::new(crate::now_ms),
            current: RwLock::new(tokens),
            refresh: tokio::sync::Mutex::new(None),
        })
    }

    /// Replaces the clock (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The tokens in use now (for status output; do not log them).
    pub fn snapshot(&self) -> ChatgptTokens {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// A usable access token, refreshing first when it expires within the margin.
    pub async fn access(&self) -> Result<Access, AuthError> {
        let seen = {
            let current = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !self.expiring(&current) {
                return Ok(access_of(&current));
            }
            current.access_token.clone()
        };
        self.refresh_unless_changed(&seen).await
    }

    /// After the upstream answered 401 to `rejected`: one refresh (shared with concurrent callers that saw
    /// the same token), returning the new access.
    pub async fn after_unauthorized(&self, rejected: &Access) -> Result<Access, AuthError> {
        self.refresh_unless_changed(&rejected.token).await
    }

    fn expiring(&self, tokens: &ChatgptTokens) -> bool {
        let margin = i64::try_from(self.margin.as_millis()).unwrap_or(i64::MAX);
        tokens.expires_at_ms.is_some_and(|at| at.saturating_sub(margin) <= (self.clock)())
    }

    /// Refreshes unless the current access token is no longer `seen` (someone refreshed meanwhile).
    async fn refresh_unless_changed(&self, seen: &str) -> Result<Access, AuthError> {
        let mut rejected = self.refresh.lock().await;
        let mut current = self.snapshot();
        if current.access_token != seen && !self.expiring(&current) {
            return Ok(access_of(&current));
        }
        if let Ok(Some(Credentials::Chatgpt(on_disk))) = file::load(&self.path)
            && on_disk.refresh_token != current.refresh_token
        {
            tracing::info!("credentials changed on disk; using the new login");
            self.replace(on_disk.clone());
            current = on_disk;
            *rejected = None;
            if current.access_token != seen && !self.expiring(&current) {
                return Ok(access_of(&current));
            }
        }
        if let Some(r) = rejected.as_ref().filter(|r| r.refresh_token == current.refresh_token) {
            return Err(r.error.clone());
        }
        match self.client.refresh(&current, (self.clock)()).await {
            Ok(fresh) => {
                file::save(&self.path, &Credentials::Chatgpt(fresh.clone()))?;
                self.replace(fresh.clone());
                tracing::info!(expires_at_ms = fresh.expires_at_ms, "ChatGPT access token refreshed");
                Ok(access_of(&fresh))
            }
            Err(e) => {
                tracing::warn!(error = %e, "ChatGPT token refresh failed");
                if matches!(e, AuthError::Rejected { .. }) {
                    *rejected = Some(Rejected { refresh_token: current.refresh_token.clone(), error: e.clone() });
                }
                Err(e)
            }
        }
    }

    fn replace(&self, tokens: ChatgptTokens) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = tokens;
    }
}

fn access_of(t: &ChatgptTokens) -> Access {
    Access { token: t.access_token.clone(), account_id: t.account_id.clone() }
}
