//! The dashboard served by the bridge: the page at `/` (HTML, CSS and JS embedded in the binary, no
//! network needed at run time), its JSON API under `/api/` ([`api`], over [`query`], which the CLI's
//! `stats` and `sessions` share), the live stream of new turns ([`live`]) and access by login cookie or
//! token ([`auth`]).
//!
//! Invariants: nothing here writes bridge state except logins; the page's Content-Security-Policy allows
//! only its own origin (no CDN, no external fetch); with access tokens configured nothing but the login
//! form and the static assets is served without a login.

pub mod api;
pub mod auth;
pub mod live;
pub mod query;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use bridge_types::{ApiError, ErrorKind};

use crate::errors::HttpError;
use crate::state::AppState;

const INDEX_HTML: &str = include_str!("assets/index.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// What the dashboard's handlers share.
#[derive(Clone)]
pub struct Dashboard {
    pub app: AppState,
    pub logins: Arc<auth::Logins>,
}

/// The dashboard's routes, with their own state, to merge into the bridge's router.
pub fn router(app: AppState) -> Router {
    let dashboard = Dashboard { app, logins: Arc::default() };
    let api = Router::new()
        .route("/api/overview", get(api::overview))
        .route("/api/sessions", get(api::sessions))
        .route("/api/sessions/{id}", get(api::session))
        .route("/api/quota", get(api::quota))
        .route("/api/projects", get(api::projects))
        .route("/api/live", get(api::live))
        .route_layer(middleware::from_fn_with_state(dashboard.clone(), require_login));
    Router::new()
        .route("/", get(page))
        .route("/assets/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/assets/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(DefaultBodyLimit::max(16 * 1024))
        .merge(api)
        .with_state(dashboard)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// An HTML page with the dashboard's security headers.
fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

fn login_page(status: StatusCode, message: &str) -> Response {
    html(status, LOGIN_HTML.replace("{{message}}", message))
}

/// `GET /`: the dashboard, or the login form when tokens are configured and the request has no login.
async fn page(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    if auth::allowed(&d.app.config, &d.logins, &headers, crate::clock::now_ms()) {
        return html(StatusCode::OK, INDEX_HTML.to_owned());
    }
    login_page(StatusCode::OK, "")
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

/// `POST /login` (form field `token`): a valid token sets the login cookie and goes back to `/`.
async fn login(State(d): State<Dashboard>, headers: HeaderMap, Form(form): Form<LoginForm>) -> Response {
    if !auth::same_origin(&headers) {
        return login_page(StatusCode::FORBIDDEN, "Refused: the login did not come from this page.");
    }
    let config = &d.app.config;
    if config.access_tokens.is_empty() {
        return redirect_home(None);
    }
    if !crate::access::is_valid(config, &form.token) {
        tracing::warn!("refused a dashboard login with a wrong token");
        return login_page(StatusCode::UNAUTHORIZED, "That token is not valid.");
    }
    match d.logins.create(crate::clock::now_ms()) {
        Some(id) => redirect_home(Some(auth::set_cookie(&id, auth::over_https(&headers)))),
        None => login_page(StatusCode::SERVICE_UNAVAILABLE, "No randomness available; try again."),
    }
}

/// `POST /logout`: ends the login and clears the cookie.
async fn logout(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    if !auth::same_origin(&headers) {
        return HttpError(ApiError::new(403, ErrorKind::PermissionError, "cross-site request refused")).into_response();
    }
    if let Some(v) = auth::cookie_value(&headers) {
        d.logins.end(v);
    }
    redirect_home(Some(auth::clear_cookie()))
}

fn redirect_home(cookie: Option<String>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Some(Ok(v)) = cookie.map(|c| HeaderValue::from_str(&c)) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// Middleware of `/api/`: a login cookie or a token, else 401.
async fn require_login(State(d): State<Dashboard>, request: Request, next: Next) -> Response {
    if auth::allowed(&d.app.config, &d.logins, request.headers(), crate::clock::now_ms()) {
        return next.run(request).await;
    }
    HttpError(
        ApiError::new(401, ErrorKind::AuthenticationError, "log in on the dashboard or send a bridge access token")
            .with_code("invalid_bridge_token"),
    )
    .into_response()
}
