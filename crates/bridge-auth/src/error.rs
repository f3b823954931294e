//! Errors of login, storage and refresh. Messages name files and endpoints, never token values.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why an auth operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("not logged in ({0} does not exist): run `codex-bridge login`")]
    NotLoggedIn(PathBuf),
    #[error("{0} holds an API key, not a ChatGPT login: run `codex-bridge login` for ChatGPT access")]
    NotChatgpt(PathBuf),
    #[error("cannot access {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path} is not a valid credentials file ({message}): run `codex-bridge login` again")]
    Corrupt { path: PathBuf, message: String },
    #[error("the token endpoint refused the request (HTTP {status}, {reason}): run `codex-bridge login`")]
    Rejected { status: u16, reason: String },
    #[error("{0}")]
    Network(String),
    #[error("OAuth callback listener on {addr}: {message}")]
    Callback { addr: SocketAddr, message: String },
    #[error("no browser redirect arrived within {} s", .0.as_secs())]
    LoginTimeout(Duration),
    #[error("cannot import credentials: {0}")]
    Import(String),
    #[error("{0}")]
    Config(String),
    #[error("the operating system's random source failed")]
    Random,
}

impl AuthError {
    pub(crate) fn io(path: &Path, e: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), message: e.to_string() }
    }
}
