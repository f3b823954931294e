//! The overhead benchmark: the same requests straight to the emulator and through a `codex-bridge serve`
//! process, in alternating phases (direct, bridge, direct, bridge, ...) so both see the same machine state.
//!
//! Latency is measured to the end of the SSE stream; TTFB to the first body byte. The emulator runs in
//! process in fast-tokenizer mode so it is never the bottleneck (checked by the capacity case).
//!
//! When `nginx` is installed, a third side joins every round: nginx as a plain reverse proxy in front of the
//! same emulator ([`crate::floor`]), the floor a proxy can reach on this machine. Each proxy's CPU time per
//! request comes from `/proc` over its own phases.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::BenchError;
use crate::load::{self, Phase};
use crate::progress::Progress;
use crate::stats::{Series, peak_rss_kib};
use crate::turn_overhead::{ConversationCase, Target, Targets, TurnResult};

/// One case of the benchmark.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub body_bytes: usize,
    pub concurrency: usize,
    /// Requests per side (direct and bridge each).
    pub requests: usize,
    /// Send `x-codex-bridge-cwd` naming a real git repository, so the bridge runs its (cached, bounded) git
    /// drift check before the upstream call: the one pre-upstream step the journal adds.
    pub git_project: bool,
    /// Send the real Codex CLI request of [`CODEX_CAPTURE`] (38 KiB: instructions, tools, a tool turn)
    /// instead of a filler body of `body_bytes`.
    pub codex_capture: bool,
}

/// A captured Codex CLI 0.169 request (`codex exec` resuming with a tool call), the body the `38KiB-codex`
/// cases send (fixtures/captures).
pub const CODEX_CAPTURE: &str =
    include_str!("../../../fixtures/captures/codex-exec__s1-t3-resume-tool__r02__POST-v1-responses.json");

/// The default matrix, scaled by `scale`: 4 KiB filler, the 38 KiB Codex capture and 1 MiB filler bodies at
/// concurrency 1, 16 and 64 (1 MiB at 1 and 64), plus 4 KiB with the git drift check.
pub fn default_cases(scale: f64) -> Vec<Case> {
    let n = |base: usize| ((base as f64 * scale).round() as usize).max(10);
    let case = |body_bytes, concurrency, requests| Case {
        body_bytes,
        concurrency,
        requests,
        git_project: false,
        codex_capture: false,
    };
    let codex = |concurrency, requests| Case { codex_capture: true, ..case(38 << 10, concurrency, requests) };
    vec![
        case(4 << 10, 1, n(2000)),
        Case { git_project: true, ..case(4 << 10, 1, n(2000)) },
        codex(1, n(1500)),
        case(1 << 20, 1, n(200)),
        case(4 << 10, 16, n(4800)),
        codex(16, n(3200)),
        case(4 << 10, 64, n(6400)),
        codex(64, n(3200)),
        case(1 << 20, 64, n(640)),
    ]
}

/// The request body of [`CODEX_CAPTURE`].
pub fn codex_capture_body() -> Result<serde_json::Value, BenchError> {
    let mut capture: serde_json::Value = serde_json::from_str(CODEX_CAPTURE)
        .map_err(|e| BenchError::Other(format!("the Codex capture does not parse: {e}")))?;
    Ok(capture.get_mut("body").map(serde_json::Value::take).unwrap_or_default())
}

/// The body of a case, with its own cache key.
fn case_body(case: &Case, key: &str) -> Result<Bytes, BenchError> {
    if !case.codex_capture {
        return Ok(request_body(case.body_bytes, key));
    }
    let mut body = codex_capture_body()?;
    body["prompt_cache_key"] = serde_json::Value::from(key);
    body["stream"] = serde_json::Value::Bool(true);
    Ok(Bytes::from(body.to_string()))
}

/// The `--json` line of one case (field names are part of the interface).
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub case: String,
    pub body_bytes: usize,
    pub concurrency: usize,
    pub direct_p50_us: u64,
    pub direct_p99_us: u64,
    pub bridge_p50_us: u64,
    pub bridge_p99_us: u64,
    pub direct_rps: f64,
    pub bridge_rps: f64,
    pub ttfb_added_p99_us: i64,
    pub direct_ttfb_p99_us: u64,
    pub bridge_ttfb_p99_us: u64,
    pub requests: usize,
    /// The nginx floor (absent when nginx is not installed).
    pub nginx_p50_us: Option<u64>,
    pub nginx_p99_us: Option<u64>,
    pub nginx_rps: Option<f64>,
    pub nginx_ttfb_p99_us: Option<u64>,
    /// CPU time (user + system) per request of the proxy process over its phases.
    pub nginx_cpu_us_per_request: Option<f64>,
    pub bridge_cpu_us_per_request: Option<f64>,
    /// The upstream path of the bridge's measured turns (with the defaults, `transport = "auto"`: a request with
    /// a `prompt_cache_key` goes over the conversation's upstream socket, `bridged/...`).
    pub bridge_upstream: UpstreamTurns,
}

/// Emulator throughput on its own (issue: the emulator must never be the bottleneck).
#[derive(Debug, Clone, Serialize)]
pub struct CapacityResult {
    pub case: &'static str,
    pub body_bytes: usize,
    pub concurrency: usize,
    pub requests: usize,
    pub emulator_rps: f64,
}

/// The bridge process's memory.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryResult {
    pub case: &'static str,
    /// Peak RSS over the latency cases.
    pub bridge_peak_rss_kib: Option<u64>,
    /// Sessions created through the real request path for the per-session figure.
    pub sessions: usize,
    /// RSS growth divided by `sessions` (tracker, lineage cache, store caches: everything the bridge keeps).
    pub rss_bytes_per_session: Option<f64>,
}

/// A `codex-bridge serve` child, killed on drop.
pub struct BridgeProcess {
    child: Child,
    pub url: String,
}

impl BridgeProcess {
    /// Starts `exe serve` against `upstream` with its data in `data_dir`, waiting for the listening line.
    pub fn spawn(exe: &Path, upstream: &str, data_dir: &Path) -> Result<Self, BenchError> {
        Self::spawn_with(exe, upstream, data_dir, &[])
    }

    /// [`BridgeProcess::spawn`] with more `serve` arguments (e.g. `--store URL`).
    pub fn spawn_with(exe: &Path, upstream: &str, data_dir: &Path, extra: &[String]) -> Result<Self, BenchError> {
        let start = |message: String| BenchError::Start { what: "codex-bridge serve", message };
        let mut child = Command::new(exe)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                upstream,
                "--upstream-auth",
                "passthrough",
                "--data-dir",
            ])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| start(e.to_string()))?;
        let stdout = child.stdout.take().ok_or_else(|| start("no stdout".to_owned()))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map_err(|e| start(e.to_string()))?;
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| start(format!("unexpected output {line:?}")))?
            .to_owned();
        Ok(Self { child, url })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the bridge with SIGTERM (it flushes its recorder and journal) and waits up to 60 s for it.
    pub fn terminate(mut self) -> Result<(), BenchError> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().map_err(|e| BenchError::Other(e.to_string()))?;
        if !sent.success() {
            return Err(BenchError::Other(format!("kill -TERM {pid} failed")));
        }
        for _ in 0..600 {
            if self.child.try_wait().map_err(|e| BenchError::Other(e.to_string()))?.is_some() {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(BenchError::Other("codex-bridge serve did not stop within 60 s of SIGTERM".to_owned()))
    }

    /// SIGKILLs the process (a crash: nothing is flushed) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The bridge's `codex_bridge_upstream_turns_total` counters, keyed `transport/socket/frame` (`http/none/none`,
/// `bridged/reused/delta`, `ws/new/full`, ...): which upstream path the turns took.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpstreamTurns(pub BTreeMap<String, u64>);

impl UpstreamTurns {
    /// Adds what the counters grew by from `before` to `after`.
    pub fn add_difference(&mut self, before: &Self, after: &Self) {
        for (path, n) in &after.0 {
            let grown = n.saturating_sub(before.count(path));
            if grown > 0 {
                *self.0.entry(path.clone()).or_default() += grown;
            }
        }
    }

    /// Turns that took `path` (`transport/socket/frame`).
    pub fn count(&self, path: &str) -> u64 {
        self.0.get(path).copied().unwrap_or(0)
    }

    /// Turns whose path starts with `prefix` (`bridged/`, `ws/reused/`, ...).
    pub fn count_prefix(&self, prefix: &str) -> u64 {
        self.0.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, n)| n).sum()
    }

    /// `path:n` pairs, space separated.
    pub fn summary(&self) -> String {
        self.0.iter().map(|(k, n)| format!("{k}:{n}")).collect::<Vec<_>>().join(" ")
    }
}

/// Reads the upstream-turn counters of the bridge at `bridge_url` (`http://host:port`) from its `/metrics`.
pub async fn upstream_turns(client: &reqwest::Client, bridge_url: &str) -> Result<UpstreamTurns, BenchError> {
    let err = |e: reqwest::Error| BenchError::Request { target: "bridge /metrics", message: e.to_string() };
    let text = client.get(format!("{bridge_url}/metrics")).send().await.map_err(err)?.text().await.map_err(err)?;
    let label = |labels: &str, name: &str| -> String {
        let start = format!("{name}=\"");
        labels
            .split_once(start.as_str())
            .and_then(|(_, rest)| rest.split_once('"'))
            .map_or_else(|| "?".to_owned(), |(value, _)| value.to_owned())
    };
    let mut out = UpstreamTurns::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("codex_bridge_upstream_turns_total{") else { continue };
        let Some((labels, value)) = rest.rsplit_once("} ") else { continue };
        let Ok(n) = value.trim().parse::<u64>() else { continue };
        let path = format!("{}/{}/{}", label(labels, "transport"), label(labels, "socket"), label(labels, "frame"));
        *out.0.entry(path).or_default() += n;
    }
    Ok(out)
}

/// A Responses request of about `size` bytes (one user message), streaming, with a fixed cache key.
pub fn request_body(size: usize, key: &str) -> Bytes {
    let filler = "lorem ipsum dolor sit amet consectetur ".repeat(size / 39 + 1);
    let body = serde_json::json!({
        "model": "gpt-5.5",
        "stream": true,
        "store": false,
        "prompt_cache_key": key,
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": &filler[..size.saturating_sub(200)]}]}],
    });
    Bytes::from(body.to_string())
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub cases: Vec<CaseResult>,
    /// The conversation cases ([`crate::turn_overhead`]).
    pub conversations: Vec<TurnResult>,
    pub capacity: CapacityResult,
    pub memory: MemoryResult,
}

/// Runs the benchmark. `bridge_exe` is the `codex-bridge` binary to start; `rounds` alternating phases
/// per side and case; `conversations` the conversation cases, against a second bridge process with
/// `[upstream] transport = "http"` besides the default one.
pub async fn run(
    bridge_exe: &Path,
    cases: &[Case],
    conversations: &[ConversationCase],
    rounds: usize,
    sessions: usize,
) -> Result<Report, BenchError> {
    let emulator = crate::fast_emulator(16).await?;
    let upstream = format!("{}/v1", emulator.base_url());
    let data = std::env::temp_dir().join(format!("codex-bridge-bench-{}", std::process::id()));
    let bridge = BridgeProcess::spawn(bridge_exe, &upstream, &data)?;
    let direct_url = format!("{upstream}/responses");
    let bridge_url = format!("{}/v1/responses", bridge.url);
    let nginx =
        match crate::floor::NginxProcess::start(&emulator.base_url().replace("http://", ""), &data.join("nginx")) {
            Some(started) => Some(started?),
            None => {
                eprintln!(
                    "bench overhead: nginx is not installed (apt-get install nginx-light); no floor side this run"
                );
                None
            }
        };
    let nginx_url = nginx.as_ref().map(|n| format!("{}/v1/responses", n.url));
    let repo = data.join("project");
    if cases.iter().any(|c| c.git_project) {
        init_repo(&repo)?;
    }
    let sides = if nginx.is_some() { 3 } else { 2 };
    let total: usize = cases.iter().map(|c| c.requests * sides).sum();
    let mut progress = Progress::new("bench overhead", total as u64);
    let mut results = Vec::new();
    let rounds = rounds.max(1);
    for (i, case) in cases.iter().enumerate() {
        let client = load::client(case.concurrency)?;
        let body = case_body(case, &format!("bench-{i}"))?;
        let headers: Vec<(String, String)> = if case.git_project {
            vec![("x-codex-bridge-cwd".to_owned(), repo.display().to_string())]
        } else {
            Vec::new()
        };
        let (c, warm) = (case.concurrency, case.concurrency.min(8));
        // Warm both paths (connections, emulator cache) outside the measurement.
        load::phase(&client, "emulator", &direct_url, body.clone(), &headers, warm, warm).await?;
        load::phase(&client, "bridge", &bridge_url, body.clone(), &headers, warm, warm).await?;
        if let Some(url) = &nginx_url {
            load::phase(&client, "nginx", url, body.clone(), &headers, warm, warm).await?;
        }
        let paths_before = upstream_turns(&client, &bridge.url).await?;
        let per_round = case.requests.div_ceil(rounds);
        let (mut direct, mut via, mut floor) = (Vec::new(), Vec::new(), Vec::new());
        let (mut bridge_cpu, mut nginx_cpu) = (Some(Duration::ZERO), Some(Duration::ZERO));
        for _ in 0..rounds {
            direct.push(load::phase(&client, "emulator", &direct_url, body.clone(), &headers, per_round, c).await?);
            progress.inc(per_round as u64);
            if let (Some(url), Some(n)) = (&nginx_url, &nginx) {
                let before = crate::floor::cpu_time(n.pid());
                floor.push(load::phase(&client, "nginx", url, body.clone(), &headers, per_round, c).await?);
                nginx_cpu = add_cpu(nginx_cpu, before, crate::floor::cpu_time(n.pid()));
                progress.inc(per_round as u64);
            }
            let before = crate::floor::cpu_time(bridge.pid());
            via.push(load::phase(&client, "bridge", &bridge_url, body.clone(), &headers, per_round, c).await?);
            bridge_cpu = add_cpu(bridge_cpu, before, crate::floor::cpu_time(bridge.pid()));
            progress.inc(per_round as u64);
        }
        let per_request = |cpu: Option<Duration>, phases: &[Phase]| {
            let n: usize = phases.iter().map(|p| p.samples.len()).sum();
            cpu.filter(|_| n > 0).map(|t| t.as_secs_f64() * 1e6 / n as f64)
        };
        let mut result = summarise(case, &direct, &via);
        result.bridge_cpu_us_per_request = per_request(bridge_cpu, &via);
        result.bridge_upstream.add_difference(&paths_before, &upstream_turns(&client, &bridge.url).await?);
        if nginx.is_some() {
            let (total, ttfb) = (latencies(&floor, |s| s.total), latencies(&floor, |s| s.ttfb));
            result.nginx_p50_us = Some(total.percentile_us(50.0));
            result.nginx_p99_us = Some(total.percentile_us(99.0));
            result.nginx_ttfb_p99_us = Some(ttfb.percentile_us(99.0));
            result.nginx_rps = Some(rps(&floor));
            result.nginx_cpu_us_per_request = per_request(nginx_cpu, &floor);
        }
        results.push(result);
    }
    progress.finish();
    let conversations = if conversations.is_empty() {
        Vec::new()
    } else {
        let config = data.join("transport-http.toml");
        std::fs::write(&config, "[upstream]\ntransport = \"http\"\n")
            .map_err(|e| BenchError::Other(format!("cannot write {}: {e}", config.display())))?;
        let config_arg = ["--config".to_owned(), config.display().to_string()];
        let http_bridge = BridgeProcess::spawn_with(bridge_exe, &upstream, &data.join("transport-http"), &config_arg)?;
        let target = |b: &BridgeProcess| Target { url: b.url.clone(), pid: Some(b.pid()) };
        let targets = Targets {
            emulator: emulator.base_url(),
            auto: target(&bridge),
            http: target(&http_bridge),
            nginx: nginx.as_ref().map(|n| Target { url: n.url.clone(), pid: Some(n.pid()) }),
        };
        let rows = crate::turn_overhead::run(&targets, conversations, rounds).await?;
        drop(http_bridge);
        rows
    };
    let peak = peak_rss_kib(bridge.pid());
    drop(bridge);
    drop(nginx);
    // Measured with the bridge gone: its journal may still be writing the last case's turns, and the figure is
    // the emulator's own capacity.
    let capacity = capacity(&direct_url).await?;
    // A fresh bridge process for the per-session figure, so the latency cases' buffers do not blur it.
    let fresh = BridgeProcess::spawn(bridge_exe, &upstream, &data.join("sessions-run"))?;
    let per_session = per_session_rss(&fresh, &format!("{}/v1/responses", fresh.url), sessions).await?;
    drop(fresh);
    let memory =
        MemoryResult { case: "memory", bridge_peak_rss_kib: peak, sessions, rss_bytes_per_session: per_session };
    let _ = std::fs::remove_dir_all(&data);
    emulator.shutdown().await;
    Ok(Report { cases: results, conversations, capacity, memory })
}

/// The emulator alone: 64 KiB streaming requests at concurrency 16.
async fn capacity(direct_url: &str) -> Result<CapacityResult, BenchError> {
    let (size, concurrency, requests) = (64 << 10, 16, 3200);
    let client = load::client(concurrency)?;
    let body = request_body(size, "capacity");
    load::phase(&client, "emulator", direct_url, body.clone(), &[], 32, concurrency).await?;
    let phase = load::phase(&client, "emulator", direct_url, body, &[], requests, concurrency).await?;
    Ok(CapacityResult {
        case: "emulator-capacity",
        body_bytes: size,
        concurrency,
        requests,
        emulator_rps: rps(std::slice::from_ref(&phase)),
    })
}

/// Creates `n` sessions through the bridge (one small request each, a distinct `prompt_cache_key`) and
/// returns the bridge's RSS growth per session.
async fn per_session_rss(bridge: &BridgeProcess, url: &str, n: usize) -> Result<Option<f64>, BenchError> {
    if n == 0 {
        return Ok(None);
    }
    let concurrency = 32;
    let client = load::client(concurrency)?;
    // Warm the process (pools, first store pages) with a few requests outside the measurement.
    load::phase(&client, "bridge", url, request_body(1024, "warm-up"), &[], 200, 8).await?;
    let Some(before) = crate::stats::rss_kib(bridge.pid()) else { return Ok(None) };
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut progress = Progress::new("bench sessions", n as u64);
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, url, next) = (client.clone(), url.to_owned(), next.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, BenchError>(());
                }
                let body = serde_json::json!({"model": "gpt-5.5", "stream": true, "prompt_cache_key": format!("ses_{i:026}"),
                    "input": [{"type": "message", "role": "user", "content": "hello"}]});
                let resp = client.post(&url).header("authorization", "Bearer bench").json(&body).send().await;
                let resp = resp.map_err(|e| BenchError::Request { target: "bridge", message: e.to_string() })?;
                resp.bytes().await.map_err(|e| BenchError::Request { target: "bridge", message: e.to_string() })?;
            }
        }));
    }
    let mut done = 0u64;
    while done < n as u64 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = next.load(std::sync::atomic::Ordering::Relaxed).min(n) as u64;
        progress.inc(now - done);
        done = now;
    }
    for w in workers {
        w.await.map_err(|e| BenchError::Other(format!("session worker: {e}")))??;
    }
    progress.finish();
    // Let the tracker and the store writes that follow each stream settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let Some(after) = crate::stats::rss_kib(bridge.pid()) else { return Ok(None) };
    Ok(Some(after.saturating_sub(before) as f64 * 1024.0 / n as f64))
}

/// A one-commit git repository for the git-check case.
fn init_repo(dir: &Path) -> Result<(), BenchError> {
    std::fs::create_dir_all(dir).map_err(|e| BenchError::Other(format!("cannot create {}: {e}", dir.display())))?;
    std::fs::write(dir.join("README"), "bench\n").map_err(|e| BenchError::Other(e.to_string()))?;
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "README"],
        &["-c", "user.name=bench", "-c", "user.email=bench@invalid", "commit", "-q", "-m", "bench"],
    ] {
        let status = Command::new("git").args(args).current_dir(dir).status();
        if !status.is_ok_and(|s| s.success()) {
            return Err(BenchError::Other(format!("git {} failed in {}", args.join(" "), dir.display())));
        }
    }
    Ok(())
}

fn rps(phases: &[Phase]) -> f64 {
    let n: usize = phases.iter().map(|p| p.samples.len()).sum();
    let wall: Duration = phases.iter().map(|p| p.wall).sum();
    if wall.is_zero() { 0.0 } else { (n as f64 / wall.as_secs_f64() * 10.0).round() / 10.0 }
}

/// Adds the CPU time between two readings (`None` once any reading failed).
fn add_cpu(sum: Option<Duration>, before: Option<Duration>, after: Option<Duration>) -> Option<Duration> {
    Some(sum? + after?.checked_sub(before?)?)
}

fn latencies(phases: &[Phase], pick: impl Fn(&load::Sample) -> Duration) -> Series {
    Series::new(&phases.iter().flat_map(|p| p.samples.iter().map(&pick)).collect::<Vec<_>>())
}

fn summarise(case: &Case, direct: &[Phase], via: &[Phase]) -> CaseResult {
    let totals =
        |ps: &[Phase]| Series::new(&ps.iter().flat_map(|p| p.samples.iter().map(|s| s.total)).collect::<Vec<_>>());
    let ttfbs =
        |ps: &[Phase]| Series::new(&ps.iter().flat_map(|p| p.samples.iter().map(|s| s.ttfb)).collect::<Vec<_>>());
    let (dt, bt, df, bf) = (totals(direct), totals(via), ttfbs(direct), ttfbs(via));
    let size = match case.body_bytes {
        _ if case.codex_capture => "38KiB-codex".to_owned(),
        b if b >= 1 << 20 => format!("{}MiB", b >> 20),
        b => format!("{}KiB", b >> 10),
    };
    CaseResult {
        case: format!("{size}-c{}{}", case.concurrency, if case.git_project { "-git" } else { "" }),
        body_bytes: case.body_bytes,
        concurrency: case.concurrency,
        direct_p50_us: dt.percentile_us(50.0),
        direct_p99_us: dt.percentile_us(99.0),
        bridge_p50_us: bt.percentile_us(50.0),
        bridge_p99_us: bt.percentile_us(99.0),
        direct_rps: rps(direct),
        bridge_rps: rps(via),
        ttfb_added_p99_us: bf.percentile_us(99.0) as i64 - df.percentile_us(99.0) as i64,
        direct_ttfb_p99_us: df.percentile_us(99.0),
        bridge_ttfb_p99_us: bf.percentile_us(99.0),
        requests: dt.len(),
        nginx_p50_us: None,
        nginx_p99_us: None,
        nginx_rps: None,
        nginx_ttfb_p99_us: None,
        nginx_cpu_us_per_request: None,
        bridge_cpu_us_per_request: None,
        bridge_upstream: UpstreamTurns::default(),
    }
}
