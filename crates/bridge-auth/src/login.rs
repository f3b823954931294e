//! The PKCE browser login, split so a caller (the CLI, or a test playing the browser) can act between the
//! two halves: [`BrowserLogin::start`] binds the callback listener and builds the authorize URL;
//! [`BrowserLogin::finish`] waits for the redirect and exchanges the code.

use std::time::Duration;

use crate::callback::CallbackServer;
use crate::credentials::ChatgptTokens;
use crate::oauth::TokenClient;
use crate::pkce::{Pkce, new_state};
use crate::{AuthError, now_ms};

/// A login waiting for the browser.
pub struct BrowserLogin {
    /// Open this in a browser.
    pub url: String,
    pkce: Pkce,
    server: CallbackServer,
}

impl BrowserLogin {
    /// Generates PKCE and state, binds the callback listener and builds the authorize URL.
    pub async fn start(client: &TokenClient) -> Result<Self, AuthError> {
        let pkce = Pkce::generate()?;
        let state = new_state()?;
        let url = client.endpoints().authorize_url(&pkce.challenge, &state)?;
        let server = CallbackServer::bind(client.endpoints().callback_addr, state).await?;
        Ok(Self { url, pkce, server })
    }

    /// The callback listener's address.
    pub fn callback_addr(&self) -> std::net::SocketAddr {
        self.server.local_addr()
    }

    /// Waits (at most `timeout`) for the redirect, then exchanges the code for tokens.
    pub async fn finish(self, client: &TokenClient, timeout: Duration) -> Result<ChatgptTokens, AuthError> {
        let code = self.server.wait(timeout).await?;
        client.exchange_code(&code, &self.pkce.verifier, now_ms()).await
    }
}
