//! `GET /v1/models`: the configured list, or the upstream's list passed through.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::errors::{HttpError, json_response, upstream_error_body};
use crate::state::AppState;

/// Lists models.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let codex_models = match state.codex.as_ref() {
        Some(c) if c.shaping.is_some() && state.config.models.is_empty() => crate::codex::models::listed(),
        _ => Vec::new(),
    };
    if !state.config.models.is_empty() || !codex_models.is_empty() {
        let data: Vec<_> = state
            .config
            .models
            .iter()
            .chain(&codex_models)
            .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "codex-bridge"}))
            .collect();
        return json_response(200, json!({"object": "list", "data": data}).to_string());
    }
    let upstream = match state.upstream.models(&headers).await {
        Ok(r) => r,
        Err(e) => return HttpError(e).into_response(),
    };
    let status = upstream.status().as_u16();
    match upstream.bytes().await {
        Ok(bytes) if (200..300).contains(&status) => {
            let mut r = json_response(status, String::new());
            *r.body_mut() = Body::from(bytes);
            r
        }
        Ok(bytes) => json_response(status, upstream_error_body(status, &bytes)),
        Err(e) => HttpError(crate::errors::bad_gateway(format!("upstream models body broke: {}", e.without_url())))
            .into_response(),
    }
}
