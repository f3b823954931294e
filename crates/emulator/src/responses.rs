//! The Responses endpoints: `POST /v1/responses` (API flavour) and `POST /backend-api/codex/responses`
//! (ChatGPT flavour).
//!
//! Order per request: take the time (`x-emulator-time`), log it, check auth, parse JSON, validate the
//! body, pick a fault, check the plan quota (a spent budget answers `usage_limit_reached`), apply an
//! immediate fault, tokenize, run the cache model (a valid `x-codex-turn-state` pins the issuing
//! machine), plan the reply, charge the quota, answer JSON (`stream:false`, API flavour) or SSE with the
//! rate-limit and turn-state headers. [`serve_turn`] is the part the WebSocket transport shares.
//! Invariants: no state is kept per HTTP connection; a rejected, refused or immediately-faulted request
//! never touches the cache model.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::cache::{BlockHash, block_chain};
use crate::errors;
use crate::faults::{self, FAULT_HEADER, FaultSpec, Immediate};
use crate::log::{LoggedRequest, header_pairs};
use crate::model::{CacheRequest, Outcome, Placement, Transport};
use crate::quota::QuotaSnapshot;
use crate::reply::{self, REASONING_TOKENS};
use crate::sse;
use crate::state::EmulatorState;
use crate::turnstate::{self, TURN_STATE};
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
            transport: "http".to_owned(),
            turn_state: headers.contains_key(TURN_STATE),
            routing_hint: header_str(headers, "x-codex-routing-hint").map(str::to_owned),
            ..LoggedRequest::default()
        },
        body,
    );
    (seq, now)
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
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
    let header_fault = match header_fault(headers) {
        Ok(f) => f,
        Err(e) => return reject(e),
    };
    let fault = faults::select(header_fault.as_ref(), &st.faults(), &st.fault_counters);
    let turn = match serve_turn(
        st,
        TurnRequest {
            seq,
            now,
            body: &body,
            headers,
            session_id: header_str(headers, "session-id").or_else(|| header_str(headers, "session_id")),
            turn_state: header_str(headers, TURN_STATE),
            placement: Placement { transport: Transport::Http, pinned: None },
            fault,
            prompt: None,
            generate: true,
            previous_response_id: None,
        },
    ) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let Turn { rid, base, completed, items, fault, quota, turn_state, outcome, model, .. } = turn;
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
    let mut pairs = vec![
        ("x-request-id", format!("req_{}", rid.get(5..).unwrap_or_default())),
        ("openai-model", model),
        ("x-emulator-machine", outcome.machine.to_string()),
        ("x-emulator-overflow", outcome.overflowed.to_string()),
        (TURN_STATE, turn_state),
    ];
    pairs.extend(quota.headers());
    for (name, value) in pairs {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    resp
}

/// The fault spec of the `x-emulator-fault` header (`Ok(None)` without one; a bad spec is a 400).
pub(crate) fn header_fault(headers: &HeaderMap) -> Result<Option<FaultSpec>, errors::ApiError> {
    match header_str(headers, FAULT_HEADER).map(FaultSpec::parse) {
        None => Ok(None),
        Some(Ok(spec)) => Ok(Some(spec)),
        Some(Err(e)) => {
            Err(errors::api_error(400, &format!("invalid {FAULT_HEADER}: {e}"), Some("emulator_error"), None, None))
        }
    }
}

/// One create request, however it arrived: the effective body (for a WebSocket delta, the reconstructed
/// one) and what routing, faults and the reply need.
pub(crate) struct TurnRequest<'a> {
    /// The request's log entry.
    pub seq: u64,
    /// Emulator time of the request.
    pub now: u64,
    /// The effective request body (validated by the caller).
    pub body: &'a Value,
    /// Headers (`x-emulator-call`; for WebSocket: the handshake's).
    pub headers: &'a HeaderMap,
    /// The `session-id` (or `session_id`) header.
    pub session_id: Option<&'a str>,
    /// The `x-codex-turn-state` the request carried.
    pub turn_state: Option<&'a str>,
    /// Transport and pinned machine.
    pub placement: Placement,
    /// The fault selected for this request.
    pub fault: Option<FaultSpec>,
    /// The prompt's tokens and block chain when the caller already has them (a WebSocket delta extends
    /// the previous turn's); else they are computed from `body`.
    pub prompt: Option<(Vec<u32>, Vec<BlockHash>)>,
    /// False for a `generate: false` prewarm: state is prepared, no output is produced.
    pub generate: bool,
    /// The anchor, echoed in the response object.
    pub previous_response_id: Option<&'a str>,
}

/// A served turn: the response objects, the reply plan and the signals to send with it.
pub(crate) struct Turn {
    pub rid: String,
    pub model: String,
    pub base: Value,
    pub completed: Value,
    pub items: Vec<Value>,
    pub fault: Option<FaultSpec>,
    pub quota: QuotaSnapshot,
    pub turn_state: String,
    pub outcome: Outcome,
    pub tokens: Vec<u32>,
    pub chain: Vec<BlockHash>,
}

/// Quota, immediate faults, tokens, the cache model and the reply plan of one create request: the part
/// both transports share. An `Err` is the error answer (the request never reached the cache model).
pub(crate) fn serve_turn(st: &EmulatorState, req: TurnRequest<'_>) -> Result<Turn, errors::ApiError> {
    let TurnRequest { seq, now, body, headers, session_id, turn_state, placement, fault, prompt, generate, .. } = req;
    if let Err(snap) = st.quota.admit(now) {
        st.rejected.fetch_add(1, Ordering::Relaxed);
        let resets_at = snap.exhausted_until().unwrap_or(now / 1000);
        return Err(errors::ApiError {
            headers: snap.headers(),
            ..errors::usage_limit(&st.config.plan_type, resets_at)
        });
    }
    if fault.is_some() {
        st.faulted.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(imm) = fault.as_ref().and_then(|f| f.immediate.clone()) {
        let err = match imm {
            Immediate::Status { status, retry_after, code } => errors::injected(status, retry_after, code.as_deref()),
            Immediate::UsageLimit { plan, resets_in } => errors::usage_limit(
                plan.as_deref().unwrap_or(&st.config.plan_type),
                (now / 1000).saturating_add(resets_in),
            ),
            Immediate::Expired => errors::token_expired(),
        };
        return Err(errors::ApiError { headers: st.quota.snapshot(now).headers(), ..err });
    }
    let model = body.get("model").and_then(Value::as_str).unwrap_or_default().to_owned();
    // Tokenize and hash the prompt's blocks before taking the model's lock: it is the request's costliest step.
    let (tokens, chain) = match prompt {
        Some(p) => p,
        None => {
            let tokens = st.tokenizer.prompt(body);
            let chain = block_chain(&model, &tokens, st.config.cache.block_tokens);
            (tokens, chain)
        }
    };
    let machines = st.config.machines.max(1);
    let valid_state = turn_state.filter(|t| turnstate::verify(st.config.routing_seed, t, machines).is_some());
    let placement = match valid_state.and_then(|t| turnstate::verify(st.config.routing_seed, t, machines)) {
        Some(m) => Placement { pinned: Some(m), ..placement },
        None => placement,
    };
    let outcome = st.model().serve_placed(
        &CacheRequest {
            model: &model,
            tokens: &tokens,
            prompt_cache_key: body.get("prompt_cache_key").and_then(Value::as_str),
            session_id,
        },
        &chain,
        now,
        placement,
    );
    st.log.mark_served(seq);

    let serial = st.next_serial();
    let seed = format!("{seq}:{serial}");
    let items = if generate {
        let forced = header_str(headers, reply::CALL_HEADER).and_then(reply::forced_call);
        reply::plan(body, &st.config.reply_text, &seed, forced)
    } else {
        Vec::new()
    };
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
    let total = outcome.input_tokens + output_tokens;
    let usage = json!({"input_tokens": outcome.input_tokens, "input_tokens_details": details,
        "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": total});
    let quota = st.quota.charge(total, now);
    let rid = format!("resp_{}", &blake3::hash(format!("{seed}:resp").as_bytes()).to_hex()[..32]);
    let mut base = response_object(&rid, body, now, "in_progress", &[], &Value::Null);
    let mut completed = response_object(&rid, body, now, "completed", &items, &usage);
    if let Some(prev) = req.previous_response_id {
        base["previous_response_id"] = json!(prev);
        completed["previous_response_id"] = json!(prev);
    }
    let turn_state = match valid_state {
        Some(t) => t.to_owned(),
        None => turnstate::issue(st.config.routing_seed, outcome.machine, serial),
    };
    Ok(Turn { rid, model, base, completed, items, fault, quota, turn_state, outcome, tokens, chain })
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
