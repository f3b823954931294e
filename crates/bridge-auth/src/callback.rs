//! The local OAuth callback listener for the browser flow.
//!
//! It serves one path, `/auth/callback`: a matching `state` with a `code` completes the login (200 and a
//! short page); a wrong `state` is 400 "State mismatch" and does not complete it (a stray or forged redirect
//! cannot end the wait); a missing code is 400; any other path is 404. Only the booleans `has_code` and
//! `state_valid` are logged, never the values.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::AuthError;

const SUCCESS_PAGE: &str = "<!doctype html><html><body><h1>codex-bridge: login complete</h1>\
<p>You can close this window and return to the terminal.</p></body></html>";

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

struct Shared {
    expected_state: String,
    done: Mutex<Option<oneshot::Sender<String>>>,
}

/// A bound callback listener waiting for one authorization code.
pub struct CallbackServer {
    addr: SocketAddr,
    code: oneshot::Receiver<String>,
    stop: Option<oneshot::Sender<()>>,
}

impl CallbackServer {
    /// Binds `addr` (port 0 picks a free port) and starts serving.
    pub async fn bind(addr: SocketAddr, expected_state: String) -> Result<Self, AuthError> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| AuthError::Callback {
            addr,
            message: format!("{e} (is another login running? set the callback port to a free one)"),
        })?;
        let addr = listener.local_addr().map_err(|e| AuthError::Callback { addr, message: e.to_string() })?;
        let (tx, code) = oneshot::channel();
        let shared = Arc::new(Shared { expected_state, done: Mutex::new(Some(tx)) });
        let app = axum::Router::new()
            .route("/auth/callback", axum::routing::get(callback))
            .fallback(|| async { (StatusCode::NOT_FOUND, "Not found") })
            .with_state(shared);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "OAuth callback listener stopped");
            }
        });
        Ok(Self { addr, code, stop: Some(stop) })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for the authorization code, at most `timeout`; the listener stops either way.
    pub async fn wait(mut self, timeout: Duration) -> Result<String, AuthError> {
        let result = tokio::time::timeout(timeout, &mut self.code).await;
        match result {
            Ok(Ok(code)) => Ok(code),
            Ok(Err(_)) => Err(AuthError::Callback { addr: self.addr, message: "listener stopped".into() }),
            Err(_) => Err(AuthError::LoginTimeout(timeout)),
        }
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn callback(State(shared): State<Arc<Shared>>, Query(q): Query<CallbackQuery>) -> Response {
    let state_valid = q.state.as_deref() == Some(shared.expected_state.as_str());
    let code = q.code.filter(|c| !c.is_empty());
    tracing::info!(has_code = code.is_some(), state_valid, "OAuth callback received");
    if !state_valid {
        return (StatusCode::BAD_REQUEST, "State mismatch").into_response();
    }
    let Some(code) = code else {
        return (StatusCode::BAD_REQUEST, "Missing authorization code").into_response();
    };
    let sender = shared.done.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    match sender {
        Some(tx) => {
            let _ = tx.send(code);
            Html(SUCCESS_PAGE).into_response()
        }
        None => (StatusCode::CONFLICT, "This login is already complete").into_response(),
    }
}
