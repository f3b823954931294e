//! The axum router. Layer order, outermost first: access check (all routes but `/health`), then the
//! handlers (`POST` on a Responses route is [`proxy`], `GET` with `Upgrade: websocket` is [`ws_ingress`]). Body size is enforced by the Responses handler itself so the 413 is OpenAI-shaped.

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::state::AppState;
use crate::{access, chat_ingress, models, proxy, ws_ingress};

/// Builds the router for a bridge.
pub fn build(state: AppState) -> Router {
    let protected = Router::new()
        .route("/v1/responses", post(proxy::responses).get(ws_ingress::upgrade).fallback(method_not_allowed))
        .route(
            "/backend-api/codex/responses",
            post(proxy::responses).get(ws_ingress::upgrade).fallback(method_not_allowed),
        )
        .route("/v1/chat/completions", post(chat_ingress::completions).fallback(method_not_allowed))
        .route("/chat/completions", post(chat_ingress::completions).fallback(method_not_allowed))
        .route("/v1/models", get(models::list))
        .route("/metrics", get(metrics))
        .fallback(proxy::not_found)
        .layer(DefaultBodyLimit::disable())
        .route_layer(middleware::from_fn_with_state(state.clone(), access::require_token));
    Router::new().route("/health", get(health)).merge(protected).with_state(state)
}

async fn method_not_allowed() -> Response {
    proxy::method_not_allowed()
}

async fn health(State(state): State<AppState>) -> Response {
    axum::Json(serde_json::json!({"status": "ok", "store": state.store.kind(), "version": env!("CARGO_PKG_VERSION")}))
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.render())
        .into_response()
}
