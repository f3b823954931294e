//! The Responses endpoints: `POST /v1/responses` (API flavour) and `POST /backend-api/codex/responses`
//! (ChatGPT flavour).
//!
//! Order per request: take the time (`x-emulator-time`), log it, check auth, parse JSON, validate the
//! body, pick a fault (an immediate fault answers now), tokenize, run the cache model, plan the reply,
//! answer JSON (`stream:false`, API flavour) or SSE. Invariants: no state is kept per connection; a
//! rejected or immediately-faulted request never touches the cache model.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::cache::block_chain;
use crate::errors;
use crate::faults::{self, FAULT_HEADER, FaultSpec, Immediate};
use crate::log::{LoggedRequest, header_pairs};
use crate::model::CacheRequest;
use crate::reply::{self, REASONING_TOKENS};
use crate::sse;
use crate::state::EmulatorState;
use crate::validation::{self, Flavour};

/// `POST /v1/responses`.
pub async fn api(
    State(st): State<Arc<EmulatorState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&st, Flavour::Api, &method, &uri, &headers, &body)
}

/// `POST /backend-api/codex/responses`.
pub async fn chatgpt(
    State(st): State<Arc<EmulatorState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&st, Flavour::ChatGpt, &method, &uri, &headers, &body)
}

/// Log a request and return (seq, time).
pub fn record(st: &EmulatorState, method: &Method, uri: &Uri, headers: &HeaderMap, body: &Bytes) -> (u64, u64) {
    let now = st.clock.for_request(headers);
    let seq = st.log.push(
        LoggedRequest {
            seq: 0,
            ts_ms: now,
            method: method.as_str().to_owned(),
            path: uri.path_and_query().map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
            headers: header_pairs(headers),
            body: serde_json::Value::Null,
            served: false,
        },
        body,
    );
    (seq, now)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|s| !s.is_empty())
}

fn handle(
    st: &EmulatorState,
    flavour: Flavour,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    raw: &Bytes,
) -> Response {
    let (seq, now) = record(st, method, uri, headers, raw);
    st.responses_requests.fetch_add(1, Ordering::Relaxed);
    let reject = |err: errors::ApiError| {
        st.rejected.fetch_add(1, Ordering::Relaxed);
        err.into_response()
    };
    if let Err(resp) = validation::check_auth(flavour, headers, &st.config, &st.oauth, now) {
        return reject(resp);
    }
    let body: Value = match serde_json::from_slice(raw) {
        Ok(v) => v,
        Err(e) => {
            return reject(errors::api_error(
                400,
                &format!("We could not parse the JSON body of your request. ({e})"),
                Some("invalid_request_error"),
                None,
                None,
            ));
        }
    };
    if let Err(resp) = validation::check_body(flavour, &body, &st.config) {
        return reject(resp);
    }
    let header_fault = match header_str(headers, FAULT_HEADER).map(FaultSpec::parse) {
        None => None,
        Some(Ok(spec)) => Some(spec),
        Some(Err(e)) => {
            return reject(errors::api_error(
                400,
                &format!("invalid {FAULT_HEADER}: {e}"),
                Some("emulator_error"),
                None,
                None,
            ));
        }
    };
    let fault = faults::select(header_fault.as_ref(), &st.faults(), &st.fault_counters);
    if fault.is_some() {
        st.faulted.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(imm) = fault.as_ref().and_then(|f| f.immediate.clone()) {
        let err = match imm {
            Immediate::Status { status, retry_after, code } => errors::injected(status, retry_after, code.as_deref()),
            Immediate::UsageLimit { plan, resets_in } => {
                errors::usage_limit(plan.as_deref().unwrap_or(&st.config.plan_type), now / 1000 + resets_in)
            }
            Immediate::Expired => errors::token_expired(),
        };
        return err.into_response();
    }
    let model = body.get("model").and_then(Value::as_str).unwrap_or_default().to_owned();
    let tokens = st.tokenizer.prompt(&body);
    // Hash the prompt's blocks before taking the model's lock: it is the request's costliest step.
    let chain = block_chain(&model, &tokens, st.config.cache.block_tokens);
    let outcome = st.model().serve_chain(
        &CacheRequest {
            model: &model,
            tokens: &tokens,
            prompt_cache_key: body.get("prompt_cache_key").and_then(Value::as_str),
            session_id: header_str(headers, "session-id").or_else(|| header_str(headers, "session_id")),
        },
        &chain,
        now,
    );
    st.log.mark_served(seq);

    let serial = st.next_serial();
    let seed = format!("{seq}:{serial}");
    let forced = header_str(headers, reply::CALL_HEADER).and_then(reply::forced_call);
    let items = reply::plan(&body, &st.config.reply_text, &seed, forced);
    let reasoning = if items.iter().any(|i| i.get("type").and_then(Value::as_str) == Some("reasoning")) {
        REASONING_TOKENS
    } else {
        0
    };
    let visible: u64 = items
        .iter()
        .map(|i| {
            let text =
                i.get("arguments").or_else(|| i.pointer("/content/0/text")).and_then(Value::as_str).unwrap_or("");
            st.tokenizer.text(text).len() as u64
        })
        .sum();
    let output_tokens = visible + reasoning;
    let mut details = json!({"cached_tokens": outcome.cached_tokens});
    if st.config.report_cache_writes {
        details["cache_write_tokens"] = json!(outcome.write_tokens);
    }
    let usage = json!({"input_tokens": outcome.input_tokens, "input_tokens_details": details,
        "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": outcome.input_tokens + output_tokens});
    let rid = format!("resp_{}", &blake3::hash(format!("{seed}:resp").as_bytes()).to_hex()[..32]);
    let base = response_object(&rid, &body, now, "in_progress", &[], &Value::Null);
    let completed = response_object(&rid, &body, now, "completed", &items, &usage);

    let mut resp = if body.get("stream") == Some(&Value::Bool(true)) {
        let steps = sse::script(sse::events(&base, &items, &completed), fault.as_ref(), &base);
        let mut r = Body::from_stream(sse::play(steps)).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r
    } else {
        errors::json(200, completed)
    };
    let h = resp.headers_mut();
    for (name, value) in [
        ("x-request-id", format!("req_{}", &rid[5..])),
        ("openai-model", model),
        ("x-emulator-machine", outcome.machine.to_string()),
        ("x-emulator-overflow", outcome.overflowed.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    resp
}

/// A Responses API response object.
pub fn response_object(id: &str, req: &Value, now_ms: u64, status: &str, output: &[Value], usage: &Value) -> Value {
    let get = |k: &str, d: Value| req.get(k).cloned().unwrap_or(d);
    json!({
        "id": id,
        "object": "response",
        "created_at": now_ms / 1000,
        "status": status,
        "error": null,
        "incomplete_details": null,
        "instructions": get("instructions", Value::Null),
        "model": get("model", Value::Null),
        "output": output,
        "parallel_tool_calls": get("parallel_tool_calls", json!(true)),
        "previous_response_id": null,
        "prompt_cache_key": get("prompt_cache_key", Value::Null),
        "reasoning": get("reasoning", Value::Null),
        "store": get("store", json!(false)),
        "temperature": 1.0,
        "tool_choice": get("tool_choice", json!("auto")),
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "metadata": {},
        "service_tier": get("service_tier", json!("default")),
    })
}
