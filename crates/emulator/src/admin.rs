//! Inspection and control endpoints (`/emulator/*`), OAuth endpoints, release endpoints and the 404
//! fallback.
//!
//! Invariants: `/emulator/*` requests are not logged (so inspecting never changes what is inspected);
//! OAuth, release and unknown requests are logged like Responses requests; every body is parsed
//! leniently and bad input gets a 400 JSON error.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::crypto::{parse_form, percent_encode};
use crate::errors;
use crate::faults::FaultSpec;
use crate::releases::FileAnswer;
use crate::responses::record;
use crate::state::EmulatorState;

type St = State<Arc<EmulatorState>>;

fn to_json<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_value(value) {
        Ok(v) => errors::json(200, v),
        Err(e) => errors::api_error(500, &e.to_string(), Some("server_error"), None, None).into_response(),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, errors::ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| errors::api_error(400, &format!("invalid JSON: {e}"), Some("invalid_request_error"), None, None))
}

/// `GET /emulator/stats`: cache stats plus OAuth and release counters.
pub async fn stats(State(st): St) -> Response {
    let mut v = serde_json::to_value(st.stats()).unwrap_or(Value::Null);
    v["oauth"] = serde_json::to_value(st.oauth.counters()).unwrap_or(Value::Null);
    v["releases"] = serde_json::to_value(st.releases.counters()).unwrap_or(Value::Null);
    v["now_ms"] = json!(st.clock.now_ms());
    v["virtual_clock"] = json!(st.clock.is_virtual());
    errors::json(200, v)
}

/// `GET /backend-api/wham/usage` (also `/api/codex/usage`): the plan quota in the shape Codex and
/// codex-lb read. Logged; needs a bearer token.
pub async fn wham_usage(State(st): St, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let (_, now) = record(&st, &method, &uri, &headers, &body);
    if crate::validation::bearer(&headers).is_none() {
        return errors::missing_auth().into_response();
    }
    let snap = st.quota.snapshot(now);
    let mut resp = errors::json(200, snap.wham_usage());
    for (name, value) in snap.headers() {
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert(name, v);
        }
    }
    resp
}

/// `GET /emulator/requests`: the request log.
pub async fn requests(State(st): St) -> Response {
    to_json(&st.requests())
}

/// `POST /emulator/reset`.
pub async fn reset(State(st): St) -> Response {
    st.reset();
    errors::json(200, json!({"ok": true}))
}

/// `GET /emulator/limit`: the limit over the served requests in the log.
pub async fn limit(State(st): St) -> Response {
    to_json(&st.limit())
}

/// `GET /emulator/faults`: the active fault specs.
pub async fn get_faults(State(st): St) -> Response {
    errors::json(200, json!({"faults": st.faults().iter().map(|f| f.raw.clone()).collect::<Vec<_>>()}))
}

/// `POST /emulator/faults` `{"faults": ["spec", …]}`: replace the active faults.
pub async fn set_faults(State(st): St, body: Bytes) -> Response {
    let v = match parse_json(&body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let mut specs = Vec::new();
    for s in v.get("faults").and_then(Value::as_array).into_iter().flatten() {
        match s.as_str().map(FaultSpec::parse) {
            Some(Ok(spec)) => specs.push(spec),
            Some(Err(e)) => {
                return errors::api_error(400, &e, Some("invalid_request_error"), None, None).into_response();
            }
            None => {
                return errors::api_error(400, "faults must be strings", Some("invalid_request_error"), None, None)
                    .into_response();
            }
        }
    }
    st.set_faults(specs);
    get_faults(State(st)).await
}

/// `POST /emulator/clock` `{"set_ms": n}` | `{"advance_ms": n}` | `{"real": true}` → `{"now_ms": …}`.
pub async fn clock(State(st): St, body: Bytes) -> Response {
    let v = match parse_json(&body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    if let Some(ms) = v.get("set_ms").and_then(Value::as_u64) {
        st.clock.set_ms(ms);
    }
    if let Some(ms) = v.get("advance_ms").and_then(Value::as_u64) {
        st.clock.advance_ms(ms);
    }
    if v.get("real").and_then(Value::as_bool) == Some(true) {
        st.clock.set_real();
    }
    errors::json(200, json!({"now_ms": st.clock.now_ms(), "virtual": st.clock.is_virtual()}))
}

/// `GET /oauth/authorize`: automatic consent, 302 to `redirect_uri?code=…&state=…`.
pub async fn authorize(State(st): St, method: Method, uri: Uri, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    record(&st, &method, &uri, &headers, &Bytes::new());
    let params: HashMap<String, String> = parse_form(q.as_deref().unwrap_or("")).into_iter().collect();
    let Some(redirect) = params.get("redirect_uri").filter(|r| !r.is_empty()) else {
        return errors::json(400, json!({"error": "invalid_request", "error_description": "missing redirect_uri"}));
    };
    if params.get("code_challenge_method").is_some_and(|m| m != "S256") {
        return errors::json(400, json!({"error": "invalid_request", "error_description": "only S256 is supported"}));
    }
    let code = st.oauth.authorize(redirect, params.get("code_challenge").map(String::as_str));
    let sep = if redirect.contains('?') { '&' } else { '?' };
    let mut location = format!("{redirect}{sep}code={}", percent_encode(&code));
    if let Some(state) = params.get("state") {
        location.push_str(&format!("&state={}", percent_encode(state)));
    }
    let mut resp = StatusCode::FOUND.into_response();
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
            resp
        }
        Err(_) => errors::json(400, json!({"error": "invalid_request", "error_description": "bad redirect_uri"})),
    }
}

/// `POST /oauth/token` (form or JSON body).
pub async fn token(State(st): St, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let (_, now) = record(&st, &method, &uri, &headers, &body);
    let text = String::from_utf8_lossy(&body);
    let form: HashMap<String, String> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => {
            m.into_iter().map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect()
        }
        _ => parse_form(&text).into_iter().collect(),
    };
    match st.oauth.token(&form, now) {
        Ok(v) => errors::json(200, v),
        Err(e) => errors::json(e.status, e.body),
    }
}

/// `GET /emulator/oauth`: OAuth counters.
pub async fn oauth_counters(State(st): St) -> Response {
    to_json(&st.oauth.counters())
}

/// `POST /emulator/oauth/revoke` `{"token": "…"}` (or `{}` for every token) → `{"revoked": n}`.
pub async fn revoke(State(st): St, body: Bytes) -> Response {
    match parse_json(&body) {
        Ok(v) => errors::json(200, json!({"revoked": st.oauth.revoke(v.get("token").and_then(Value::as_str))})),
        Err(r) => r.into_response(),
    }
}

/// `GET /repos/openai/codex/releases/latest`.
pub async fn latest_release(State(st): St, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    record(&st, &method, &uri, &headers, &Bytes::new());
    let tag = st.releases.latest();
    errors::json(200, json!({"tag_name": tag, "name": tag, "draft": false, "prerelease": false}))
}

/// `GET /openai/codex/{tag}/codex-rs/core/{*file}`.
pub async fn raw_file(
    State(st): St,
    Path((tag, file)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    record(&st, &method, &uri, &headers, &Bytes::new());
    let inm = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok());
    let (mut resp, etag) = match st.releases.file(&tag, &file, inm) {
        FileAnswer::Content { body, etag } => ((StatusCode::OK, body).into_response(), etag),
        FileAnswer::NotModified { etag } => (StatusCode::NOT_MODIFIED.into_response(), etag),
        FileAnswer::NotFound => return (StatusCode::NOT_FOUND, "404: Not Found").into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// `POST /emulator/releases` `{"tag": "…", "files": {"name": "content", …}}`: publish a new latest tag.
pub async fn publish(State(st): St, body: Bytes) -> Response {
    let v = match parse_json(&body) {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let Some(tag) = v.get("tag").and_then(Value::as_str).filter(|t| !t.is_empty()) else {
        return errors::api_error(400, "tag is required", Some("invalid_request_error"), Some("tag"), None)
            .into_response();
    };
    let files: BTreeMap<String, String> = v
        .get("files")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, c)| c.as_str().map(|c| (k.clone(), c.to_owned()))).collect())
        .unwrap_or_default();
    st.releases.publish(tag, files);
    errors::json(200, json!({"tag_name": tag}))
}

/// Anything else: logged, 404 JSON.
pub async fn fallback(State(st): St, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    record(&st, &method, &uri, &headers, &body);
    errors::json(404, json!({"error": {"message": "not found", "path": uri.path()}}))
}
