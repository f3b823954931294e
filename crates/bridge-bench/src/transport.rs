//! Transport benchmarks straight against the emulator (no bridge): one conversation replayed over HTTP and
//! over one WebSocket connection (cached share vs the limit, under `--http-affinity`), and the emulator's
//! throughput in turns per second over each transport at a given concurrency, measured side by side.
//!
//! A scenario is replayed *live*: each turn sends the scenario's new client items (user messages, tool
//! outputs) and the assistant items are the emulator's own output, so HTTP (the whole history in every
//! body) and WebSocket (`previous_response_id` + the new items; the emulator reconstructs the rest) send
//! the same conversation and have the same limit. Invariants: every run is bounded and on loopback; a
//! turn that does not end in `response.completed` fails the run; nothing here times a unit test.

use std::time::{Duration, Instant};

use bridge_sse::SseDecoder;
use codex_emulator::{EmulatorConfig, RoutingMode, TokenizerMode};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::BenchError;
use crate::workload::{self, Gen, Scenario};

/// A client WebSocket connection.
pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One turn of a live conversation.
#[derive(Debug, Clone)]
pub struct LiveTurn {
    /// Virtual time (`x-emulator-time` on HTTP, `client_metadata["x-emulator-time"]` on WebSocket).
    pub at_ms: u64,
    /// Request headers (on WebSocket: the first turn's are the handshake's).
    pub headers: Vec<(String, String)>,
    /// The body without `input`.
    pub template: Value,
    /// The client items this turn adds (the first turn: the whole startup input).
    pub new_items: Vec<Value>,
}

fn is_reply(item: &Value) -> bool {
    item.get("role").and_then(Value::as_str) == Some("assistant")
        || matches!(item.get("type").and_then(Value::as_str), Some("reasoning" | "function_call"))
}

/// The live form of a single-conversation scenario: every request's input must extend the previous one's
/// (assistant messages, reasoning and function calls the workload wrote are dropped: the emulator's output
/// takes their place).
pub fn live_script(scenario: &Scenario) -> Result<Vec<LiveTurn>, BenchError> {
    let mut out = Vec::new();
    let mut prev: &[Value] = &[];
    for (i, r) in scenario.requests.iter().enumerate() {
        let input = r.body.get("input").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
        if input.len() < prev.len() || input[..prev.len()] != *prev {
            return Err(BenchError::Other(format!(
                "scenario {} is not one append-only conversation (request {i})",
                scenario.name
            )));
        }
        let new_items: Vec<Value> = input[prev.len()..].iter().filter(|it| !is_reply(it)).cloned().collect();
        let mut template = r.body.clone();
        if let Some(o) = template.as_object_mut() {
            o.remove("input");
        }
        out.push(LiveTurn { at_ms: r.at_ms, headers: r.headers.clone(), template, new_items });
        prev = input;
    }
    Ok(out)
}

/// Usage of one turn.
#[derive(Debug, Clone, Copy, Default)]
pub struct TurnUsage {
    pub input_tokens: u64,
    pub cached_tokens: u64,
}

fn usage_of(response: &Value) -> TurnUsage {
    let u = &response["usage"];
    TurnUsage {
        input_tokens: u["input_tokens"].as_u64().unwrap_or(0),
        cached_tokens: u["input_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0),
    }
}

/// The `response` object of the `response.completed` event of an SSE body.
fn completed_response(sse: &[u8]) -> Option<Value> {
    let mut decoder = SseDecoder::new();
    decoder.feed(sse);
    let mut found = None;
    while let Ok(Some(event)) = decoder.next_event() {
        if event.event.as_deref() == Some("response.completed") {
            let mut v: Value = serde_json::from_str(&event.data).ok()?;
            found = Some(v["response"].take());
        }
    }
    found
}

fn req_err(message: impl std::fmt::Display) -> BenchError {
    BenchError::Request { target: "emulator", message: message.to_string() }
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    turn_headers: &[(String, String)],
    at_ms: Option<u64>,
    body: bytes::Bytes,
) -> Result<Value, BenchError> {
    Ok(post_timed(client, url, turn_headers, at_ms, body).await?.0)
}

/// POSTs one streaming request and returns the `response.completed` response and the time from sending to
/// the end of the body (the SSE parse is not counted).
pub async fn post_timed(
    client: &reqwest::Client,
    url: &str,
    turn_headers: &[(String, String)],
    at_ms: Option<u64>,
    body: bytes::Bytes,
) -> Result<(Value, Duration), BenchError> {
    let started = Instant::now();
    let mut req =
        client.post(url).header("authorization", "Bearer bench").header("content-type", "application/json").body(body);
    if let Some(t) = at_ms {
        req = req.header("x-emulator-time", t.to_string());
    }
    for (k, v) in turn_headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.map_err(req_err)?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(req_err)?;
    let elapsed = started.elapsed();
    if status != 200 {
        return Err(req_err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&bytes).chars().take(300).collect::<String>()
        )));
    }
    Ok((completed_response(&bytes).ok_or_else(|| req_err("no response.completed"))?, elapsed))
}

/// Replays `turns` over HTTP: every body carries the whole history, assistant items as the emulator
/// returned them.
pub async fn replay_http(
    client: &reqwest::Client,
    base: &str,
    turns: &[LiveTurn],
) -> Result<Vec<TurnUsage>, BenchError> {
    let url = format!("{base}/v1/responses");
    let mut history: Vec<Value> = Vec::new();
    let mut out = Vec::with_capacity(turns.len());
    for t in turns {
        history.extend(t.new_items.iter().cloned());
        let mut body = t.template.clone();
        body["input"] = Value::Array(history.clone());
        let bytes = bytes::Bytes::from(serde_json::to_vec(&body).map_err(req_err)?);
        let response = post(client, &url, &t.headers, Some(t.at_ms), bytes).await?;
        if let Some(items) = response["output"].as_array() {
            history.extend(items.iter().cloned());
        }
        out.push(usage_of(&response));
    }
    Ok(out)
}

/// Opens a WebSocket to `{base}/v1/responses` with `headers` plus a bearer, `TCP_NODELAY` on.
pub async fn connect(base: &str, headers: &[(String, String)]) -> Result<Ws, BenchError> {
    let url = format!("{}/v1/responses", base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().map_err(req_err)?;
    let h = req.headers_mut();
    h.insert("authorization", http::HeaderValue::from_static("Bearer bench"));
    for (k, v) in headers {
        if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(k.as_bytes()), http::HeaderValue::from_str(v)) {
            h.insert(name, value);
        }
    }
    // Nagle off, as the HTTP client has it (`load::client`): a frame is written as soon as it is sent.
    let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true).await.map_err(req_err)?;
    Ok(ws)
}

/// Sends one `response.create` and reads frames up to `response.completed` (only that frame is parsed).
pub async fn ws_turn(ws: &mut Ws, frame: String) -> Result<Value, BenchError> {
    ws.send(Message::Text(frame.into())).await.map_err(req_err)?;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(60), ws.next())
            .await
            .map_err(|_| req_err("no answer within 60 s"))?
            .ok_or_else(|| req_err("connection closed"))?
            .map_err(req_err)?;
        let Message::Text(text) = msg else { continue };
        let s = text.as_str();
        if s.starts_with("{\"type\":\"response.completed\"") {
            let mut v: Value = serde_json::from_str(s).map_err(req_err)?;
            return Ok(v["response"].take());
        }
        if s.starts_with("{\"type\":\"error\"") || s.starts_with("{\"type\":\"response.failed\"") {
            return Err(req_err(s.chars().take(300).collect::<String>()));
        }
    }
}

pub fn create_frame(template: &Value, input: Vec<Value>, previous: Option<&str>, at_ms: Option<u64>) -> String {
    let mut frame = template.clone();
    if let Some(o) = frame.as_object_mut() {
        o.remove("stream");
        o.insert("type".into(), json!("response.create"));
        o.insert("input".into(), Value::Array(input));
        if let Some(p) = previous {
            o.insert("previous_response_id".into(), json!(p));
        }
        if let Some(t) = at_ms {
            o.insert("client_metadata".into(), json!({"x-emulator-time": t.to_string()}));
        }
    }
    frame.to_string()
}

/// Replays `turns` over one WebSocket connection: the first create carries the whole input, each next one
/// `previous_response_id` and the new items.
pub async fn replay_ws(base: &str, turns: &[LiveTurn]) -> Result<Vec<TurnUsage>, BenchError> {
    let Some(first) = turns.first() else { return Ok(Vec::new()) };
    let mut ws = connect(base, &first.headers).await?;
    let mut previous: Option<String> = None;
    let mut out = Vec::with_capacity(turns.len());
    for t in turns {
        let frame = create_frame(&t.template, t.new_items.clone(), previous.as_deref(), Some(t.at_ms));
        let response = ws_turn(&mut ws, frame).await?;
        previous = response["id"].as_str().map(str::to_owned);
        out.push(usage_of(&response));
    }
    let _ = ws.close(None).await;
    Ok(out)
}

/// One `bench transport` cache row (field names are part of the `--json` interface).
#[derive(Debug, Clone, Serialize)]
pub struct CacheRow {
    pub scenario: String,
    pub routing: String,
    pub http_affinity: f64,
    pub seed: u64,
    pub transport: String,
    pub requests: usize,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub limit_cached: u64,
}

impl CacheRow {
    /// Cached share of input.
    pub fn share(&self) -> f64 {
        self.cached_tokens as f64 / self.input_tokens.max(1) as f64
    }
    /// Cached tokens as a share of the limit.
    pub fn of_limit(&self) -> f64 {
        self.cached_tokens as f64 / self.limit_cached.max(1) as f64
    }
}

/// Replays `scenario` live over HTTP and over one WebSocket, once per routing seed, on a fresh emulator
/// with `http_affinity` and `routing` (16 machines, exact tokenizer).
pub async fn cache_compare(
    scenario: &Scenario,
    routing: RoutingMode,
    http_affinity: f64,
    seeds: &[u64],
) -> Result<Vec<CacheRow>, BenchError> {
    let turns = live_script(scenario)?;
    let client = crate::load::client(1)?;
    let mut rows = Vec::new();
    for &seed in seeds {
        let config = EmulatorConfig {
            routing,
            http_affinity,
            routing_seed: seed,
            log_capacity: 10_000,
            ..EmulatorConfig::default()
        };
        let emu = codex_emulator::spawn(config)
            .await
            .map_err(|e| BenchError::Start { what: "emulator", message: e.to_string() })?;
        for transport in ["http", "ws"] {
            emu.state().reset();
            let usages = match transport {
                "http" => replay_http(&client, &emu.base_url(), &turns).await?,
                _ => replay_ws(&emu.base_url(), &turns).await?,
            };
            rows.push(CacheRow {
                scenario: scenario.name.to_owned(),
                routing: crate::cache::routing_name(routing).to_owned(),
                http_affinity,
                seed,
                transport: transport.to_owned(),
                requests: usages.len(),
                input_tokens: usages.iter().map(|u| u.input_tokens).sum(),
                cached_tokens: usages.iter().map(|u| u.cached_tokens).sum(),
                limit_cached: emu.state().limit().cached_tokens,
            });
        }
        emu.shutdown().await;
    }
    Ok(rows)
}

/// The cache rows as a table, with the mean/min/max share over the seeds per transport.
pub fn cache_table(rows: &[CacheRow]) -> String {
    let mut out = format!(
        "{:<12} {:<15} {:>8} {:>5} {:<5} {:>5} {:>10} {:>17} {:>10} {:>8}\n",
        "scenario", "routing", "affinity", "seed", "tr", "reqs", "input tok", "cached", "limit", "of limit"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<12} {:<15} {:>8.2} {:>5} {:<5} {:>5} {:>10} {:>9} ({:>5.1}%) {:>10} {:>7.1}%\n",
            r.scenario,
            r.routing,
            r.http_affinity,
            r.seed,
            r.transport,
            r.requests,
            r.input_tokens,
            r.cached_tokens,
            r.share() * 100.0,
            r.limit_cached,
            r.of_limit() * 100.0
        ));
    }
    for transport in ["http", "ws"] {
        let shares: Vec<f64> = rows.iter().filter(|r| r.transport == transport).map(CacheRow::share).collect();
        let of_limit: Vec<f64> = rows.iter().filter(|r| r.transport == transport).map(CacheRow::of_limit).collect();
        if shares.is_empty() {
            continue;
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out.push_str(&format!(
            "{transport}: cached share mean {:.1}% (min {:.1}%, max {:.1}%) over {} seeds; of the limit mean {:.1}% (min {:.1}%)\n",
            mean(&shares) * 100.0,
            min(&shares) * 100.0,
            max(&shares) * 100.0,
            shares.len(),
            mean(&of_limit) * 100.0,
            min(&of_limit) * 100.0
        ));
    }
    out
}

/// One transport's throughput phase (field names are part of the `--json` interface).
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputPhase {
    pub round: usize,
    pub transport: String,
    pub concurrency: usize,
    pub turns: usize,
    pub elapsed_ms: u64,
    pub turns_per_s: f64,
}

/// The throughput run: every phase, and the median turns per second per transport.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputReport {
    pub phases: Vec<ThroughputPhase>,
    pub http_turns_per_s: f64,
    pub ws_turns_per_s: f64,
    pub ws_over_http: f64,
}

/// A conversation for the throughput run: `turns` user messages after a startup context.
struct Conversation {
    id: String,
    startup: Vec<Value>,
    users: Vec<Value>,
}

fn conversations(n: usize, turns: usize, startup_tokens: usize, seed: u64) -> Vec<Conversation> {
    let mut shared = Gen::new(seed ^ 0x5EED);
    let instructions = shared.text(startup_tokens);
    (0..n)
        .map(|i| {
            let mut g = Gen::new(seed.wrapping_add(i as u64 + 1));
            let msg = |role: &str, text: String| json!({"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]});
            Conversation {
                id: format!("thread-tput-{i}"),
                startup: vec![msg("developer", instructions.clone()), msg("user", g.text(100))],
                users: (0..turns).map(|_| msg("user", g.text_in(100, 600))).collect(),
            }
        })
        .collect()
}

fn template(id: &str) -> Value {
    json!({"model": "gpt-5.5", "stream": true, "store": false, "prompt_cache_key": id, "tool_choice": "auto", "parallel_tool_calls": true})
}

/// The emulator's assistant item for a plain turn, without its id (bodies are built before the clock
/// starts; the emulator strips ids before tokenizing, so the prompt is the one a live client sends).
async fn canned_reply(client: &reqwest::Client, base: &str) -> Result<Value, BenchError> {
    let body = json!({"model": "gpt-5.5", "stream": true, "store": false, "input": "hi"});
    let response =
        post(client, &format!("{base}/v1/responses"), &[], None, bytes::Bytes::from(body.to_string())).await?;
    let mut item = response["output"][0].clone();
    if let Some(o) = item.as_object_mut() {
        o.remove("id");
    }
    Ok(item)
}

async fn http_conversation(
    client: reqwest::Client,
    url: String,
    bodies: Vec<bytes::Bytes>,
    headers: Vec<(String, String)>,
) -> Result<usize, BenchError> {
    for b in &bodies {
        post(&client, &url, &headers, None, b.clone()).await?;
    }
    Ok(bodies.len())
}

async fn ws_conversation(base: String, c: Conversation) -> Result<usize, BenchError> {
    let headers = vec![("session-id".to_owned(), c.id.clone())];
    let mut ws = connect(&base, &headers).await?;
    let t = template(&c.id);
    let mut previous: Option<String> = None;
    for (k, user) in c.users.into_iter().enumerate() {
        let input = if k == 0 {
            let mut v = c.startup.clone();
            v.push(user);
            v
        } else {
            vec![user]
        };
        let response = ws_turn(&mut ws, create_frame(&t, input, previous.as_deref(), None)).await?;
        previous = response["id"].as_str().map(str::to_owned);
    }
    let _ = ws.close(None).await;
    Ok(0)
}

/// Emulator throughput over HTTP and WebSocket: `concurrency` conversations of `turns` turns each in
/// flight at once, `rounds` alternating rounds (HTTP then WebSocket), fast tokenizer, caches reset
/// before each phase. The WebSocket phase includes its handshakes.
pub async fn throughput(
    concurrency: usize,
    turns: usize,
    rounds: usize,
    startup_tokens: usize,
) -> Result<ThroughputReport, BenchError> {
    let config = EmulatorConfig { tokenizer: TokenizerMode::Fast, log_capacity: 64, ..EmulatorConfig::default() };
    let emu = codex_emulator::spawn(config)
        .await
        .map_err(|e| BenchError::Start { what: "emulator", message: e.to_string() })?;
    let base = emu.base_url();
    let client = crate::load::client(concurrency)?;
    let reply = canned_reply(&client, &base).await?;
    let mut phases = Vec::new();
    for round in 0..rounds {
        for transport in ["http", "ws"] {
            let convs = conversations(concurrency, turns, startup_tokens, round as u64);
            emu.state().reset();
            let mut tasks = Vec::with_capacity(concurrency);
            let prepared: Vec<_> = convs
                .into_iter()
                .map(|c| {
                    if transport == "ws" {
                        return (c, Vec::new());
                    }
                    let mut history = c.startup.clone();
                    let bodies = c
                        .users
                        .iter()
                        .map(|u| {
                            history.push(u.clone());
                            let mut body = template(&c.id);
                            body["input"] = Value::Array(history.clone());
                            history.push(reply.clone());
                            bytes::Bytes::from(body.to_string())
                        })
                        .collect();
                    (c, bodies)
                })
                .collect();
            let start = Instant::now();
            for (c, bodies) in prepared {
                if transport == "ws" {
                    tasks.push(tokio::spawn(ws_conversation(base.clone(), c)));
                } else {
                    let headers = vec![("session-id".to_owned(), c.id.clone())];
                    tasks.push(tokio::spawn(http_conversation(
                        client.clone(),
                        format!("{base}/v1/responses"),
                        bodies,
                        headers,
                    )));
                }
            }
            for t in tasks {
                t.await.map_err(|e| BenchError::Other(e.to_string()))??;
            }
            let elapsed = start.elapsed();
            let done = concurrency * turns;
            phases.push(ThroughputPhase {
                round,
                transport: transport.to_owned(),
                concurrency,
                turns: done,
                elapsed_ms: elapsed.as_millis() as u64,
                turns_per_s: done as f64 / elapsed.as_secs_f64().max(1e-9),
            });
        }
    }
    emu.shutdown().await;
    let median = |transport: &str| {
        let mut v: Vec<f64> = phases.iter().filter(|p| p.transport == transport).map(|p| p.turns_per_s).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let (http_tps, ws_tps) = (median("http"), median("ws"));
    Ok(ThroughputReport {
        phases,
        http_turns_per_s: http_tps,
        ws_turns_per_s: ws_tps,
        ws_over_http: ws_tps / http_tps.max(1e-9),
    })
}

/// The built-in scenario the transport cache comparison replays by default (one Codex thread, 20 turns).
pub fn default_scenario(seed: u64) -> Option<Scenario> {
    workload::scenario("multi-turn", seed)
}
