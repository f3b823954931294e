//! The cache benchmark: each scenario replayed against the emulator on its virtual clock three ways —
//! client-direct (the client's own keys and headers straight to the emulator), through the bridge, and the
//! limit (the most any prompt cache could have served for the direct trace: one machine, unbounded
//! capacity, same minimum, block and TTL rules) — under each routing mode, each client transport and the
//! emulator's `--http-affinity`.
//!
//! Client transports: over **HTTP** every request is posted as the workload wrote it (client-direct: to the
//! emulator; through the bridge: to the bridge, which uses its own `[upstream] transport` policy); over
//! **WebSocket** the client keeps one socket per session (its session header, else its body key) and sends
//! each request as a full `response.create` on it (the workload's assistant items are not the emulator's, so
//! Codex's delta rule would not hold either), to the emulator directly or to the bridge's WebSocket ingress.
//! Virtual time goes in the `x-emulator-time` header and in `client_metadata["x-emulator-time"]` (the one a
//! socket's frames carry), so idle gaps expire caches on every path alike.

use std::path::Path;

use bridge_core::{Config, Settings, UpstreamAuth};
use bridge_sse::SseDecoder;
use bridge_types::Usage;
use codex_emulator::{EmulatorConfig, RoutingMode};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::BenchError;
use crate::progress::Progress;
use crate::workload::{Request, Scenario};

/// One `--json` line (field names are part of the interface).
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub scenario: String,
    pub routing: String,
    /// The client's transport: `http` or `websocket`.
    pub transport: String,
    /// The emulator's `--http-affinity`.
    pub http_affinity: f64,
    /// The emulator's `--routing-seed` (its front door's draws).
    pub routing_seed: u64,
    /// False when the bridge could not be reached over the client's transport (`bridge_cached` is then 0).
    pub bridge_reached: bool,
    pub requests: usize,
    pub input_tokens: u64,
    pub direct_cached: u64,
    pub bridge_cached: u64,
    pub limit_cached: u64,
}

/// How the benchmark's client talks to the emulator or the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTransport {
    Http,
    Websocket,
}

impl ClientTransport {
    /// `http` or `websocket`.
    pub fn name(self) -> &'static str {
        match self {
            ClientTransport::Http => "http",
            ClientTransport::Websocket => "websocket",
        }
    }
}

/// The routing mode's name as printed.
pub fn routing_name(mode: RoutingMode) -> &'static str {
    match mode {
        RoutingMode::Docs => "docs",
        RoutingMode::SessionHeader => "session-header",
    }
}

/// A bridge in this process, stopped on drop of the sender.
pub struct InProcessBridge {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
}

impl InProcessBridge {
    /// Binds a bridge to `upstream` with `config_toml` (empty: the defaults) and its data in `data_dir`.
    pub async fn start(upstream: &str, data_dir: &Path, config_toml: &str) -> Result<Self, BenchError> {
        let start = |message: String| BenchError::Start { what: "bridge", message };
        let settings = Settings {
            listen: Some("127.0.0.1:0".into()),
            upstream: Some(upstream.to_owned()),
            upstream_auth: Some(UpstreamAuth::Passthrough),
            data_dir: Some(data_dir.to_owned()),
            ..Settings::default()
        };
        let config = Config::resolve(settings, Some(config_toml), Path::new("<bridge config>"), data_dir.to_owned())
            .map_err(|e| start(e.to_string()))?;
        let server = bridge_core::bind(config).await.map_err(|e| start(e.to_string()))?;
        let url = format!("http://{}", server.local_addr().map_err(|e| start(e.to_string()))?);
        let (tx, rx) = oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            let _ = server
                .run(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self { url, stop: Some(tx), done })
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = self.done.await;
    }
}

/// Replays `scenarios` under each routing mode and client transport on an emulator with `http_affinity` and
/// `routing_seed`.
/// `data_dir` holds the bridge's SQLite store; `bridge_config` is the bridge's TOML configuration (empty =
/// its defaults).
pub async fn run(
    scenarios: &[Scenario],
    routings: &[RoutingMode],
    transports: &[ClientTransport],
    http_affinity: f64,
    routing_seed: u64,
    data_dir: &Path,
    bridge_config: &str,
) -> Result<Vec<ScenarioResult>, BenchError> {
    let total: usize =
        scenarios.iter().map(|s| s.requests.len() * 2).sum::<usize>() * routings.len() * transports.len();
    let mut progress = Progress::new("bench cache", total as u64);
    let client = crate::load::client(4)?;
    let mut results = Vec::new();
    for &routing in routings {
        let config =
            EmulatorConfig { routing, http_affinity, routing_seed, log_capacity: 10_000, ..EmulatorConfig::default() };
        let emulator = codex_emulator::spawn(config)
            .await
            .map_err(|e| BenchError::Start { what: "emulator", message: e.to_string() })?;
        let upstream = format!("{}/v1", emulator.base_url());
        for &transport in transports {
            let dir = data_dir.join(format!("{}-{}", routing_name(routing), transport.name()));
            let bridge = InProcessBridge::start(&upstream, &dir, bridge_config).await?;
            for scenario in scenarios {
                emulator.state().reset();
                let direct =
                    replay(&client, transport, &emulator.base_url(), &scenario.requests, &mut progress).await?;
                let limit = emulator.state().limit();
                emulator.state().reset();
                let via = replay(&client, transport, &bridge.url, &scenario.requests, &mut progress).await;
                let bridge_reached = via.is_ok();
                if let Err(e) = &via {
                    eprintln!(
                        "bench cache: {} over {} through the bridge failed: {e}",
                        scenario.name,
                        transport.name()
                    );
                }
                let via = via.unwrap_or_default();
                results.push(ScenarioResult {
                    scenario: scenario.name.to_owned(),
                    routing: routing_name(routing).to_owned(),
                    transport: transport.name().to_owned(),
                    http_affinity,
                    routing_seed,
                    bridge_reached,
                    requests: scenario.requests.len(),
                    input_tokens: direct.iter().filter_map(|u| u.input_tokens).sum(),
                    direct_cached: direct.iter().filter_map(|u| u.cached_tokens).sum(),
                    bridge_cached: via.iter().filter_map(|u| u.cached_tokens).sum(),
                    limit_cached: limit.cached_tokens,
                });
            }
            bridge.stop().await;
        }
        emulator.shutdown().await;
    }
    progress.finish();
    Ok(results)
}

/// The body with its virtual time in `client_metadata` too (what a socket's frame carries).
fn timed_body(r: &Request) -> serde_json::Value {
    let mut body = r.body.clone();
    if let Some(o) = body.as_object_mut() {
        let meta = o.entry("client_metadata").or_insert_with(|| serde_json::json!({}));
        if let Some(m) = meta.as_object_mut() {
            m.insert("x-emulator-time".into(), serde_json::Value::String(r.at_ms.to_string()));
        }
    }
    body
}

/// Sends each request in order over `transport` to `base` (`http://HOST:PORT`) and returns the usage each
/// response reported.
async fn replay(
    client: &reqwest::Client,
    transport: ClientTransport,
    base: &str,
    requests: &[Request],
    progress: &mut Progress,
) -> Result<Vec<Usage>, BenchError> {
    match transport {
        ClientTransport::Http => replay_http(client, &format!("{base}/v1/responses"), requests, progress).await,
        ClientTransport::Websocket => replay_ws(base, requests, progress).await,
    }
}

async fn replay_http(
    client: &reqwest::Client,
    url: &str,
    requests: &[Request],
    progress: &mut Progress,
) -> Result<Vec<Usage>, BenchError> {
    let mut usages = Vec::with_capacity(requests.len());
    for r in requests {
        // The bridge in this process reads the recorded time too, so its partition rates and idle times
        // follow the scenario's timeline rather than the compressed replay.
        bridge_core::clock::replay_at(i64::try_from(r.at_ms).ok());
        let mut req = client
            .post(url)
            .header("authorization", "Bearer bench")
            .header("x-emulator-time", r.at_ms.to_string())
            .json(&timed_body(r));
        for (k, v) in &r.headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.map_err(|e| BenchError::Request { target: "replay", message: e.to_string() })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| BenchError::Request { target: "replay", message: e.to_string() })?;
        if status != 200 {
            let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
            return Err(BenchError::Request { target: "replay", message: format!("HTTP {status}: {text}") });
        }
        usages.push(completed_usage(&body).unwrap_or_default());
        progress.inc(1);
    }
    bridge_core::clock::replay_at(None);
    Ok(usages)
}

/// The session a request belongs to, as a WebSocket client keys its sockets.
fn session_of(r: &Request) -> String {
    let header = ["session_id", "session-id", "thread-id", "x-session-affinity"]
        .iter()
        .find_map(|name| r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()));
    header.or_else(|| r.body.get("prompt_cache_key").and_then(|v| v.as_str()).map(str::to_owned)).unwrap_or_default()
}

async fn replay_ws(base: &str, requests: &[Request], progress: &mut Progress) -> Result<Vec<Usage>, BenchError> {
    let mut sockets = std::collections::HashMap::new();
    let mut usages = Vec::with_capacity(requests.len());
    for r in requests {
        // As in `replay_http`: the in-process bridge follows the scenario's timeline.
        bridge_core::clock::replay_at(i64::try_from(r.at_ms).ok());
        let session = session_of(r);
        let ws = match sockets.entry(session) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let mut headers = r.headers.clone();
                headers.push(("x-emulator-time".to_owned(), r.at_ms.to_string()));
                e.insert(crate::transport::connect(base, &headers).await?)
            }
        };
        let mut body = timed_body(r);
        let input = body.as_object_mut().and_then(|o| o.remove("input")).unwrap_or_default();
        let input = match input {
            serde_json::Value::Array(items) => items,
            other => vec![serde_json::json!({"type": "message", "role": "user", "content": other})],
        };
        let frame = crate::transport::create_frame(&body, input, None, Some(r.at_ms));
        let response = crate::transport::ws_turn(ws, frame).await?;
        usages.push(response.get("usage").map(Usage::from_json).unwrap_or_default());
        progress.inc(1);
    }
    bridge_core::clock::replay_at(None);
    for (_, mut ws) in sockets {
        let _ = futures_util::SinkExt::close(&mut ws).await;
    }
    Ok(usages)
}

/// The usage of the `response.completed` event of an SSE body.
pub fn completed_usage(sse: &[u8]) -> Option<Usage> {
    let mut decoder = SseDecoder::new();
    decoder.feed(sse);
    let mut usage = None;
    while let Ok(Some(event)) = decoder.next_event() {
        if event.event.as_deref() == Some("response.completed") || event.data.contains("\"response.completed\"") {
            let value: serde_json::Value = serde_json::from_str(&event.data).ok()?;
            usage = Usage::from_event(&value);
        }
    }
    usage
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 { "-".to_owned() } else { format!("{:.1}%", part as f64 * 100.0 / whole as f64) }
}

/// The human-readable table: cached tokens and their share of input, and the bridge as a share of the limit.
pub fn table(results: &[ScenarioResult]) -> String {
    let mut out = format!(
        "{:<16} {:<15} {:<9} {:>5} {:>4} {:>10} {:>17} {:>17} {:>17} {:>8}\n",
        "scenario", "routing", "client", "aff", "reqs", "input tok", "client-direct", "bridge", "limit", "br/limit"
    );
    for r in results {
        let cell = |v: u64| format!("{v} ({})", pct(v, r.input_tokens));
        let (bridge, of_limit) = if r.bridge_reached {
            (cell(r.bridge_cached), pct(r.bridge_cached, r.limit_cached))
        } else {
            ("unreachable".to_owned(), "-".to_owned())
        };
        out.push_str(&format!(
            "{:<16} {:<15} {:<9} {:>5.2} {:>4} {:>10} {:>17} {:>17} {:>17} {:>8}\n",
            r.scenario,
            r.routing,
            r.transport,
            r.http_affinity,
            r.requests,
            r.input_tokens,
            cell(r.direct_cached),
            bridge,
            cell(r.limit_cached),
            of_limit
        ));
    }
    out
}
