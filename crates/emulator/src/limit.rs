//! The limit calculator: the most prompt tokens any cache could have served for a trace.
//!
//! Model: one machine, unbounded capacity, no overflow, the same minimum, block and TTL rules as the
//! emulator; requests replayed in `ts_ms` order (stable for equal times). Trace format (JSONL, one
//! request per line): `{"ts_ms": <unix ms>, "headers": [[name, value], …], "body": {<request body>}}`,
//! optionally `"tokens": [u32, …]` to give the token sequence directly (then `body` may be omitted and
//! `"model"` names the cache namespace); lines with a `path` not ending in `/responses` are skipped; the
//! request log (`GET /emulator/requests`, one entry per line) is a valid trace; a WebSocket create counts
//! with its whole reconstructed input, so HTTP and WebSocket runs of one conversation have the same limit. Invariants: the report's
//! `cached_tokens` is a multiple of the block size per request and never exceeds `input_tokens`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cache::{Machine, block_chain};
use crate::config::CacheRules;
use crate::log::LoggedRequest;
use crate::tokenizer::Tokenizer;

/// One request of a token-level trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRequest {
    /// Time (unix ms).
    pub ts_ms: u64,
    /// Cache namespace (the model).
    pub namespace: String,
    /// Prompt tokens.
    pub tokens: Vec<u32>,
}

/// The limit for a trace.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LimitReport {
    /// Requests in the trace.
    pub requests: u64,
    /// Sum of prompt tokens.
    pub input_tokens: u64,
    /// Most tokens a cache could have served.
    pub cached_tokens: u64,
    /// `cached_tokens / input_tokens` (0 when empty).
    pub hit_ratio: f64,
    /// Servable cached tokens per request, in replay order.
    pub per_request: Vec<u64>,
}

/// Compute the limit over a token-level trace.
pub fn limit_for_tokens(trace: &[TraceRequest], rules: &CacheRules) -> LimitReport {
    let mut order: Vec<&TraceRequest> = trace.iter().collect();
    order.sort_by_key(|r| r.ts_ms);
    let mut machine = Machine::new(None);
    let mut report = LimitReport::default();
    for req in order {
        let chain = block_chain(&req.namespace, &req.tokens, rules.block_tokens);
        let served = machine.serve(&chain, req.tokens.len(), req.ts_ms, rules);
        report.requests += 1;
        report.input_tokens += req.tokens.len() as u64;
        report.cached_tokens += served.cached_tokens;
        report.per_request.push(served.cached_tokens);
    }
    if report.input_tokens > 0 {
        report.hit_ratio = report.cached_tokens as f64 / report.input_tokens as f64;
    }
    report
}

#[derive(Debug, Deserialize)]
struct TraceLine {
    #[serde(default)]
    ts_ms: u64,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    body: Value,
    #[serde(default)]
    tokens: Option<Vec<u32>>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    reconstructed_body: Option<Value>,
}

fn to_request(mut line: TraceLine, tokenizer: &Tokenizer) -> Option<TraceRequest> {
    if let Some(full) = line.reconstructed_body.take() {
        line.body = full;
    }
    if line.path.as_deref().is_some_and(|p| !p.split('?').next().unwrap_or("").ends_with("/responses")) {
        return None;
    }
    let namespace =
        line.model.or_else(|| line.body.get("model").and_then(Value::as_str).map(str::to_owned)).unwrap_or_default();
    let tokens = match line.tokens {
        Some(t) => t,
        None if line.body.is_object() => tokenizer.prompt(&line.body),
        None => return None,
    };
    Some(TraceRequest { ts_ms: line.ts_ms, namespace, tokens })
}

/// Parse a JSONL trace; errors name the 1-based line.
pub fn parse_trace(text: &str, tokenizer: &Tokenizer) -> Result<Vec<TraceRequest>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed: TraceLine = serde_json::from_str(line).map_err(|e| format!("trace line {}: {e}", i + 1))?;
        out.extend(to_request(parsed, tokenizer));
    }
    Ok(out)
}

/// The served Responses requests of a request log as a trace.
pub fn trace_from_log(entries: &[LoggedRequest], tokenizer: &Tokenizer) -> Vec<TraceRequest> {
    entries
        .iter()
        .filter(|e| (e.method == "POST" || e.method == "WS") && e.served)
        .filter_map(|e| {
            to_request(
                TraceLine {
                    ts_ms: e.ts_ms,
                    path: Some(e.path.clone()),
                    body: e.reconstructed_body.clone().unwrap_or_else(|| e.body.clone()),
                    tokens: None,
                    model: None,
                    reconstructed_body: None,
                },
                tokenizer,
            )
        })
        .collect()
}
