//! The `/api/` handlers: JSON views of [`super::query`] (overview, sessions, one session, projects), the
//! quota, and the live stream ([`super::live`]). Access is checked by [`super::require_login`] before
//! any of these runs.
//!
//! Invariants: handlers only read; store failures answer 503 OpenAI-shaped; blocking file reads (project
//! state, the ChatGPT login file) run on the blocking pool.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use bridge_types::{ApiError, ErrorKind};
use serde::Serialize;

use super::Dashboard;
use super::query::{self, Window};
use crate::codex::quota::QuotaSnapshot;
use crate::config::UpstreamAuth;
use crate::errors::HttpError;

fn store_error(e: bridge_store::StoreError) -> Response {
    HttpError(ApiError::new(503, ErrorKind::ServerError, format!("cannot read the store: {e}"))).into_response()
}

/// `GET /api/overview?hours=N|all&buckets=N` (default the last 24 hours in 24 buckets).
pub async fn overview(State(d): State<Dashboard>, Query(q): Query<HashMap<String, String>>) -> Response {
    let span_ms = match q.get("hours").map(String::as_str) {
        Some("all") => None,
        Some(h) => Some((h.parse::<f64>().unwrap_or(24.0).clamp(0.01, 24.0 * 366.0) * 3_600_000.0) as i64),
        None => Some(24 * 3_600_000),
    };
    let buckets = q.get("buckets").and_then(|b| b.parse().ok()).unwrap_or(24);
    let window = Window { now_ms: crate::clock::now_ms(), span_ms, buckets };
    match query::overview(d.app.store.as_ref(), window).await {
        Ok(o) => Json(o).into_response(),
        Err(e) => store_error(e),
    }
}

/// `GET /api/sessions?q=TEXT&limit=N` (default 200).
pub async fn sessions(State(d): State<Dashboard>, Query(q): Query<HashMap<String, String>>) -> Response {
    let search = q.get("q").map_or("", String::as_str);
    let limit = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(200);
    match query::sessions(d.app.store.as_ref(), search, limit).await {
        Ok(list) => Json(list).into_response(),
        Err(e) => store_error(e),
    }
}

/// `GET /api/sessions/{id}`: turns and lineage; 404 for an untracked session.
pub async fn session(State(d): State<Dashboard>, Path(id): Path<String>) -> Response {
    match query::session(d.app.store.as_ref(), &id).await {
        Ok(Some(detail)) => Json(detail).into_response(),
        Ok(None) => HttpError(
            ApiError::new(404, ErrorKind::NotFoundError, "no tracked session with that id")
                .with_code("session_not_found"),
        )
        .into_response(),
        Err(e) => store_error(e),
    }
}

/// `GET /api/projects`.
pub async fn projects(State(d): State<Dashboard>) -> Response {
    let data_dir = d.app.config.data_dir.clone();
    match tokio::task::spawn_blocking(move || query::projects(&data_dir)).await {
        Ok(p) => Json(p).into_response(),
        Err(_) => HttpError(ApiError::new(500, ErrorKind::ServerError, "reading projects failed")).into_response(),
    }
}

/// `GET /api/quota`.
#[derive(Debug, Serialize)]
pub struct Quota {
    /// `chatgpt`, `api-key` or `passthrough` (only `chatgpt` reports a plan quota).
    pub mode: &'static str,
    #[serde(flatten)]
    pub observed: QuotaSnapshot,
    /// The plan named by the ChatGPT token's claims.
    pub token_plan: Option<String>,
    /// When the ChatGPT access token expires (Unix ms); the bridge refreshes it ahead of time.
    pub token_expires_at_ms: Option<i64>,
}

/// `GET /api/quota`: the latest rate-limit observation, plus the ChatGPT login's plan and token expiry.
pub async fn quota(State(d): State<Dashboard>) -> Response {
    let config = &d.app.config;
    let mode = match config.upstream.auth {
        UpstreamAuth::Chatgpt => "chatgpt",
        UpstreamAuth::ApiKey => "api-key",
        UpstreamAuth::Passthrough => "passthrough",
    };
    let (mut token_plan, mut token_expires_at_ms) = (None, None);
    if config.upstream.auth == UpstreamAuth::Chatgpt {
        let path = config.chatgpt.credentials.clone();
        let login = tokio::task::spawn_blocking(move || bridge_auth::file::load(&path)).await;
        if let Ok(Ok(Some(bridge_auth::Credentials::Chatgpt(tokens)))) = login {
            token_expires_at_ms = tokens.expires_at_ms;
            let claims = tokens.id_token.as_deref().map(bridge_auth::Claims::of);
            token_plan =
                claims.and_then(|c| c.plan_type).or_else(|| bridge_auth::Claims::of(&tokens.access_token).plan_type);
        }
    }
    Json(Quota { mode, observed: d.app.quota.snapshot(), token_plan, token_expires_at_ms }).into_response()
}

/// `GET /api/live`.
pub async fn live(State(d): State<Dashboard>) -> Response {
    super::live::events(d.app.tracker.subscribe()).into_response()
}
