//! `bench overhead`'s conversation cases (issue 15): the per-turn added latency of a multi-turn conversation
//! through the bridge, over a WebSocket and over HTTP, on the bridge's upstream socket and on its HTTP path.
//!
//! Each slot of a phase runs whole conversations of `turns` turns; every turn appends one user message (and
//! the previous turn's output) to the conversation. Turn 1 opens the conversation (and its sockets) and is not
//! measured; turns 2+ are, from sending to `response.completed`. The sides of one round run one after the
//! other, so they see the same machine state:
//! - `direct-http`: an HTTP client sending the whole input every turn, straight to the emulator;
//! - `bridge-http`: the same through a bridge with `[upstream] transport = "http"` (the HTTP path);
//! - `nginx`: the same through nginx, when installed (the floor; it has no WebSocket side);
//! - `bridge-bridged`: the same through a bridge with `transport = "auto"` (the default: one upstream socket per
//!   conversation, turn 2+ sent upstream as `previous_response_id` deltas);
//! - `direct-ws`: a WebSocket client straight to the emulator, one socket per conversation, turn 2+ as
//!   `previous_response_id` and the new item;
//! - `bridge-ws`: the same client through the `auto` bridge's WebSocket ingress and its upstream socket.
//!
//! The rows compare a bridge side with its direct side: `ws` (bridge-ws vs direct-ws), `bridged`
//! (bridge-bridged vs direct-http) and `http` (bridge-http vs direct-http, the same direct samples as
//! `bridged`). Each row names the upstream path its bridge phases took, read from the bridge's
//! `codex_bridge_upstream_turns_total` counters around them.
//!
//! Invariants: a turn that does not end in `response.completed` fails the run; conversation ids are unique
//! per phase, so every conversation opens its own sockets; everything is on loopback and bounded.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

use crate::BenchError;
use crate::overhead::{self, UpstreamTurns};
use crate::progress::Progress;
use crate::stats::Series;
use crate::transport;

/// The conversation's starting context.
#[derive(Debug, Clone, Copy)]
pub enum Startup {
    /// One user message of about this many bytes (filler text), the request-case bodies' shape.
    Filler(usize),
    /// The real Codex CLI request of [`overhead::CODEX_CAPTURE`] (38 KiB: instructions, tools, a tool turn).
    CodexCapture,
}

/// One conversation case.
#[derive(Debug, Clone, Copy)]
pub struct ConversationCase {
    pub startup: Startup,
    /// Conversations in flight at once (one per slot).
    pub concurrency: usize,
    /// Turns per conversation (turn 1 unmeasured).
    pub turns: usize,
    /// Measured turns per side, at least (rounded up to whole conversations per slot and round).
    pub measured_turns: usize,
}

impl ConversationCase {
    fn label(&self) -> String {
        let size = match self.startup {
            Startup::Filler(b) => format!("{}KiB", b >> 10),
            Startup::CodexCapture => "38KiB-codex".to_owned(),
        };
        format!("{size}-c{}", self.concurrency)
    }
}

/// The default conversation cases, scaled by `scale`: 4 KiB filler and the 38 KiB Codex capture as the
/// startup, at concurrency 1 and 8, 8 turns per conversation.
pub fn default_cases(scale: f64) -> Vec<ConversationCase> {
    let n = |base: usize| ((base as f64 * scale).round() as usize).max(7);
    let case =
        |startup, concurrency, measured_turns| ConversationCase { startup, concurrency, turns: 8, measured_turns };
    vec![
        case(Startup::Filler(4 << 10), 1, n(1400)),
        case(Startup::CodexCapture, 1, n(1400)),
        case(Startup::Filler(4 << 10), 8, n(2800)),
        case(Startup::CodexCapture, 8, n(2800)),
    ]
}

/// A proxy the phases go through: its base URL (`http://host:port`) and, for a separate process, its pid
/// (for the CPU figure).
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub pid: Option<u32>,
}

/// Everything the conversation cases talk to.
#[derive(Debug, Clone)]
pub struct Targets {
    /// The emulator's base URL.
    pub emulator: String,
    /// A bridge with `[upstream] transport = "auto"` (the default).
    pub auto: Target,
    /// A bridge with `[upstream] transport = "http"`.
    pub http: Target,
    /// nginx in front of the emulator, when installed.
    pub nginx: Option<Target>,
}

/// One `--json` line of the conversation cases (field names are part of the interface).
#[derive(Debug, Clone, Serialize)]
pub struct TurnResult {
    /// `{mode}-{size}-c{concurrency}`.
    pub case: String,
    /// `ws`, `bridged` or `http` (module docs).
    pub mode: &'static str,
    /// The client's transport (`ws`, `http`), on both sides.
    pub client: &'static str,
    /// The bridge's `[upstream] transport`.
    pub bridge_transport: &'static str,
    pub startup_bytes: usize,
    pub concurrency: usize,
    pub turns_per_conversation: usize,
    /// Conversations per side.
    pub conversations: usize,
    /// Measured turns (2+) per side.
    pub measured_turns: usize,
    pub direct_p50_us: u64,
    pub direct_p99_us: u64,
    pub bridge_p50_us: u64,
    pub bridge_p99_us: u64,
    pub added_p50_us: i64,
    pub added_p99_us: i64,
    /// Bridge minus the direct side over the transport the bridge's upstream uses (`bridged`: the direct
    /// WebSocket side, so the emulator's own WebSocket-vs-HTTP serving time is not counted as the bridge's;
    /// `ws`, `http`: the same as `added_*`).
    pub added_over_upstream_p50_us: i64,
    pub added_over_upstream_p99_us: i64,
    /// Turns per second over the phases' wall time (turn 1 included).
    pub direct_turns_per_s: f64,
    pub bridge_turns_per_s: f64,
    /// The nginx floor for the HTTP rows (absent without nginx and on the `ws` row).
    pub nginx_p50_us: Option<u64>,
    pub nginx_p99_us: Option<u64>,
    /// CPU time (user + system) of the bridge process per turn over its phases (turn 1 included).
    pub bridge_cpu_us_per_turn: Option<f64>,
    /// The bridge's upstream turns over its measured phases, by `transport/socket/frame` (turn 1 included).
    pub upstream: UpstreamTurns,
}

/// What one conversation sends: the body without `input`, the first turn's context, and one user message
/// per turn.
struct Script {
    id: String,
    template: Value,
    startup: Vec<Value>,
    users: Vec<Value>,
}

fn message(role: &str, text: String) -> Value {
    json!({"type": "message", "role": role, "content": [{"type": "input_text", "text": text}]})
}

fn script(case: &ConversationCase, id: String) -> Result<Script, BenchError> {
    let (mut template, startup) = match case.startup {
        Startup::Filler(bytes) => {
            let filler = "lorem ipsum dolor sit amet consectetur ".repeat(bytes / 39 + 1);
            let template = json!({"model": "gpt-5.5", "stream": true, "store": false});
            (template, vec![message("user", filler[..bytes.saturating_sub(200)].to_owned())])
        }
        Startup::CodexCapture => {
            let mut body = overhead::codex_capture_body()?;
            let Some(Value::Array(mut input)) = body.get_mut("input").map(Value::take) else {
                return Err(BenchError::Other("the Codex capture has no input array".to_owned()));
            };
            // Its history after the first user message would make every conversation a detected fork of the
            // first one (one lineage, one socket): the first user message names the conversation.
            if let Some(Value::Array(content)) =
                input.iter_mut().find(|item| item["role"] == "user").and_then(|item| item.get_mut("content"))
            {
                content.push(json!({"type": "input_text", "text": format!("conversation {id}")}));
            }
            if let Some(o) = body.as_object_mut() {
                o.remove("input");
            }
            // The capture's Codex session id (its `client_metadata` names the session the bridge tracks): each
            // conversation gets its own, or every one would be one session on one upstream socket.
            let captured = body["prompt_cache_key"].as_str().unwrap_or_default().to_owned();
            if !captured.is_empty() {
                body = serde_json::from_str(&body.to_string().replace(&captured, &id))
                    .map_err(|e| BenchError::Other(format!("the Codex capture with a new session id: {e}")))?;
            }
            (body, input)
        }
    };
    template["prompt_cache_key"] = Value::from(id.as_str());
    template["stream"] = Value::Bool(true);
    let users = (0..case.turns)
        .map(|k| message("user", format!("turn {k} of {id}: {}", "please carry on with the next step. ".repeat(8))))
        .collect();
    Ok(Script { id, template, startup, users })
}

/// The client side of a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    Http,
    Ws,
}

/// An HTTP conversation: the whole input every turn, the emulator's output appended as returned. Returns the
/// latencies of turns 2+.
async fn http_conversation(client: &reqwest::Client, url: &str, s: Script) -> Result<Vec<Duration>, BenchError> {
    let headers = vec![("session-id".to_owned(), s.id.clone())];
    let mut body = s.template;
    let mut history = s.startup;
    let mut measured = Vec::with_capacity(s.users.len());
    for (k, user) in s.users.into_iter().enumerate() {
        history.push(user);
        body["input"] = Value::Array(history);
        let bytes = Bytes::from(serde_json::to_vec(&body).map_err(|e| BenchError::Other(e.to_string()))?);
        history = match body["input"].take() {
            Value::Array(items) => items,
            _ => Vec::new(),
        };
        let (mut response, elapsed) = transport::post_timed(client, url, &headers, None, bytes).await?;
        if let Value::Array(items) = response["output"].take() {
            history.extend(items);
        }
        if k > 0 {
            measured.push(elapsed);
        }
    }
    Ok(measured)
}

/// A WebSocket conversation on one socket: turn 1 in full, then `previous_response_id` and the new item.
async fn ws_conversation(base: &str, s: Script) -> Result<Vec<Duration>, BenchError> {
    let mut ws = transport::connect(base, &[("session-id".to_owned(), s.id.clone())]).await?;
    let mut previous: Option<String> = None;
    let mut startup = Some(s.startup);
    let mut measured = Vec::with_capacity(s.users.len());
    for (k, user) in s.users.into_iter().enumerate() {
        let mut input = startup.take().unwrap_or_default();
        input.push(user);
        let frame = transport::create_frame(&s.template, input, previous.as_deref(), None);
        let started = Instant::now();
        let response = transport::ws_turn(&mut ws, frame).await?;
        if k > 0 {
            measured.push(started.elapsed());
        }
        previous = response["id"].as_str().map(str::to_owned);
    }
    let _ = futures_util::SinkExt::close(&mut ws).await;
    Ok(measured)
}

/// One phase: `concurrency` slots, each running `per_slot` conversations one after the other.
struct PhaseRun {
    measured: Vec<Duration>,
    turns: usize,
    wall: Duration,
}

async fn phase(
    client: &reqwest::Client,
    kind: Client,
    base: &str,
    case: &ConversationCase,
    label: &str,
    per_slot: usize,
) -> Result<PhaseRun, BenchError> {
    let started = Instant::now();
    let mut slots = Vec::with_capacity(case.concurrency);
    for slot in 0..case.concurrency.max(1) {
        let scripts =
            (0..per_slot).map(|k| script(case, format!("{label}-{slot}-{k}"))).collect::<Result<Vec<_>, _>>()?;
        let (client, base) = (client.clone(), base.to_owned());
        slots.push(tokio::spawn(async move {
            let mut measured = Vec::new();
            for s in scripts {
                measured.extend(match kind {
                    Client::Http => http_conversation(&client, &format!("{base}/v1/responses"), s).await?,
                    Client::Ws => ws_conversation(&base, s).await?,
                });
            }
            Ok::<_, BenchError>(measured)
        }));
    }
    let mut measured = Vec::new();
    for slot in slots {
        measured.extend(slot.await.map_err(|e| BenchError::Other(format!("conversation slot: {e}")))??);
    }
    let turns = case.concurrency.max(1) * per_slot * case.turns;
    Ok(PhaseRun { measured, turns, wall: started.elapsed() })
}

/// A side of the round: who it talks to and what it collected.
struct Side {
    name: &'static str,
    kind: Client,
    base: String,
    /// The bridge behind it (its pid and metrics); `None` for the emulator and nginx.
    bridge: Option<Target>,
    runs: Vec<PhaseRun>,
    cpu: Option<Duration>,
    upstream: UpstreamTurns,
}

impl Side {
    fn new(name: &'static str, kind: Client, target: &Target, bridge: bool) -> Self {
        Self {
            name,
            kind,
            base: target.url.clone(),
            bridge: bridge.then(|| target.clone()),
            runs: Vec::new(),
            cpu: Some(Duration::ZERO),
            upstream: UpstreamTurns::default(),
        }
    }

    fn series(&self) -> Series {
        Series::new(&self.runs.iter().flat_map(|r| r.measured.iter().copied()).collect::<Vec<_>>())
    }

    fn turns_per_s(&self) -> f64 {
        let turns: usize = self.runs.iter().map(|r| r.turns).sum();
        let wall: Duration = self.runs.iter().map(|r| r.wall).sum();
        if wall.is_zero() { 0.0 } else { (turns as f64 / wall.as_secs_f64() * 10.0).round() / 10.0 }
    }

    fn cpu_per_turn(&self) -> Option<f64> {
        let turns: usize = self.runs.iter().map(|r| r.turns).sum();
        self.bridge.as_ref()?.pid?;
        self.cpu.filter(|_| turns > 0).map(|t| t.as_secs_f64() * 1e6 / turns as f64)
    }
}

/// Runs the conversation cases against `targets`, `rounds` alternating rounds each.
pub async fn run(targets: &Targets, cases: &[ConversationCase], rounds: usize) -> Result<Vec<TurnResult>, BenchError> {
    let rounds = rounds.max(1);
    let per_slot = |c: &ConversationCase| {
        let per_conversation = c.turns.saturating_sub(1).max(1);
        c.measured_turns.div_ceil(per_conversation * c.concurrency.max(1) * rounds).max(1)
    };
    let sides_per_round = if targets.nginx.is_some() { 6 } else { 5 };
    let total: usize =
        cases.iter().map(|c| per_slot(c) * c.concurrency.max(1) * c.turns * rounds * sides_per_round).sum();
    let mut progress = Progress::new("bench overhead (conversations)", total as u64);
    let mut results = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let client = crate::load::client(case.concurrency)?;
        let emulator = Target { url: targets.emulator.clone(), pid: None };
        let mut sides = vec![
            Side::new("direct-http", Client::Http, &emulator, false),
            Side::new("bridge-http", Client::Http, &targets.http, true),
            Side::new("bridge-bridged", Client::Http, &targets.auto, true),
            Side::new("direct-ws", Client::Ws, &emulator, false),
            Side::new("bridge-ws", Client::Ws, &targets.auto, true),
        ];
        if let Some(nginx) = &targets.nginx {
            sides.insert(2, Side::new("nginx", Client::Http, nginx, false));
        }
        let per_slot = per_slot(case);
        let label = case.label();
        // Warm every path (connections, the bridge's pools and the emulator's caches) outside the measurement.
        let warm = ConversationCase { turns: 3, ..*case };
        for side in &sides {
            phase(&client, side.kind, &side.base, &warm, &format!("warm-{i}-{}", side.name), 1).await?;
        }
        for round in 0..rounds {
            for side in &mut sides {
                let before = match &side.bridge {
                    Some(b) => {
                        Some((overhead::upstream_turns(&client, &b.url).await?, b.pid.and_then(crate::floor::cpu_time)))
                    }
                    None => None,
                };
                let name = format!("ovh-{i}-{}-r{round}", side.name);
                let run = phase(&client, side.kind, &side.base, case, &name, per_slot).await?;
                progress.inc(run.turns as u64);
                if let (Some(b), Some((turns, cpu))) = (&side.bridge, before) {
                    let after = overhead::upstream_turns(&client, &b.url).await?;
                    side.upstream.add_difference(&turns, &after);
                    let now = b.pid.and_then(crate::floor::cpu_time);
                    side.cpu = (|| Some(side.cpu? + now?.checked_sub(cpu?)?))();
                }
                side.runs.push(run);
            }
        }
        let find = |name: &str| sides.iter().find(|s| s.name == name);
        let (Some(direct_http), Some(direct_ws)) = (find("direct-http"), find("direct-ws")) else {
            return Err(BenchError::Other("a direct side is missing".to_owned()));
        };
        let nginx = find("nginx").map(Side::series);
        for (mode, bridge_side, direct, upstream_direct, bridge_transport) in [
            ("ws", "bridge-ws", direct_ws, direct_ws, "auto"),
            ("bridged", "bridge-bridged", direct_http, direct_ws, "auto"),
            ("http", "bridge-http", direct_http, direct_http, "http"),
        ] {
            let Some(via) = find(bridge_side) else { continue };
            let (d, b, u) = (direct.series(), via.series(), upstream_direct.series());
            let added = |base: &Series, p: f64| b.percentile_us(p) as i64 - base.percentile_us(p) as i64;
            let floor = nginx.as_ref().filter(|_| direct.kind == Client::Http);
            results.push(TurnResult {
                case: format!("{mode}-{label}"),
                mode,
                client: if via.kind == Client::Ws { "ws" } else { "http" },
                bridge_transport,
                startup_bytes: script(case, String::new())?.startup.iter().map(|v| v.to_string().len()).sum(),
                concurrency: case.concurrency,
                turns_per_conversation: case.turns,
                conversations: per_slot * case.concurrency.max(1) * rounds,
                measured_turns: b.len(),
                direct_p50_us: d.percentile_us(50.0),
                direct_p99_us: d.percentile_us(99.0),
                bridge_p50_us: b.percentile_us(50.0),
                bridge_p99_us: b.percentile_us(99.0),
                added_p50_us: added(&d, 50.0),
                added_p99_us: added(&d, 99.0),
                added_over_upstream_p50_us: added(&u, 50.0),
                added_over_upstream_p99_us: added(&u, 99.0),
                direct_turns_per_s: direct.turns_per_s(),
                bridge_turns_per_s: via.turns_per_s(),
                nginx_p50_us: floor.map(|s| s.percentile_us(50.0)),
                nginx_p99_us: floor.map(|s| s.percentile_us(99.0)),
                bridge_cpu_us_per_turn: via.cpu_per_turn(),
                upstream: via.upstream.clone(),
            });
        }
    }
    progress.finish();
    Ok(results)
}

/// The conversation rows as a table, then the goal check per case: the added latency per turn on a reused
/// socket (`ws`, `bridged`) against the HTTP path's.
pub fn table(rows: &[TurnResult]) -> String {
    let mut out = format!(
        "{:<22} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>9} {:>10}  upstream\n",
        "case",
        "turns",
        "dir p50",
        "dir p99",
        "br p50",
        "br p99",
        "add p50",
        "add p99",
        "add/up p50",
        "add/up p99",
        "ngx p50",
        "br cpu/t"
    );
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v}us"));
    for r in rows {
        out.push_str(&format!(
            "{:<22} {:>6} {:>7}us {:>7}us {:>7}us {:>7}us {:>7}us {:>7}us {:>8}us {:>8}us {:>9} {:>10}  {}\n",
            r.case,
            r.measured_turns,
            r.direct_p50_us,
            r.direct_p99_us,
            r.bridge_p50_us,
            r.bridge_p99_us,
            r.added_p50_us,
            r.added_p99_us,
            r.added_over_upstream_p50_us,
            r.added_over_upstream_p99_us,
            opt(r.nginx_p50_us),
            r.bridge_cpu_us_per_turn.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}us")),
            r.upstream.summary()
        ));
    }
    for http in rows.iter().filter(|r| r.mode == "http") {
        let suffix = http.case.trim_start_matches("http-");
        for socket in rows.iter().filter(|r| r.mode != "http" && r.case == format!("{}-{suffix}", r.mode)) {
            let within = |a: i64, b: i64| if a <= b { "within" } else { "above" };
            out.push_str(&format!(
                "{suffix}: {} added p50 {}us vs http {}us ({}), p99 {}us vs {}us ({}); over its upstream transport p50 {}us ({})\n",
                socket.mode,
                socket.added_p50_us,
                http.added_p50_us,
                within(socket.added_p50_us, http.added_p50_us),
                socket.added_p99_us,
                http.added_p99_us,
                within(socket.added_p99_us, http.added_p99_us),
                socket.added_over_upstream_p50_us,
                within(socket.added_over_upstream_p50_us, http.added_p50_us),
            ));
        }
    }
    out
}
