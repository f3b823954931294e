//! The store-outage benchmark (issue 12, finding 7): `/v1/responses` throughput of one `codex-bridge serve`
//! process on a Redis store, in three phases of one run: Redis up, Redis SIGKILLed, Redis restarted (same
//! bridge process throughout). The goal is the killed figure within 2x of the up figure; the run also reports
//! the bridge's dropped-writes counter and whether usage rows reach Redis again after the restart.
//!
//! Every request is a known session (one `prompt_cache_key` per worker, seen during the warm-up), like the
//! traffic of running agents; the emulator runs in process in fast-tokenizer mode.

use std::path::Path;
use std::time::Duration;

use bridge_store::{RedisStore, Store, UsageQuery};
use serde::Serialize;

use crate::BenchError;
use crate::load::{self, Phase};
use crate::overhead::{BridgeProcess, request_body};
use crate::redis::RedisProcess;
use crate::stats::Series;

/// One phase's figures (the `--json` line; field names are part of the interface).
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    pub phase: &'static str,
    pub requests: usize,
    pub concurrency: usize,
    pub rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// `codex_bridge_store_writes_dropped_total` (all reasons) at the end of the phase.
    pub writes_dropped: u64,
    /// Usage rows in Redis at the end of the phase (a restarted Redis starts empty).
    pub usage_rows: Option<usize>,
}

/// Runs the three phases with `requests` requests each at `concurrency`.
pub async fn run(bridge_exe: &Path, requests: usize, concurrency: usize) -> Result<Vec<PhaseResult>, BenchError> {
    let emulator = crate::fast_emulator(16).await?;
    let upstream = format!("{}/v1", emulator.base_url());
    let data = std::env::temp_dir().join(format!("codex-bridge-bench-outage-{}", std::process::id()));
    let mut redis = RedisProcess::start(data.join("redis"))?;
    let bridge =
        BridgeProcess::spawn_with(bridge_exe, &upstream, &data.join("bridge"), &["--store".to_owned(), redis.url()])?;
    let url = format!("{}/v1/responses", bridge.url);
    let metrics_url = format!("{}/metrics", bridge.url);
    let client = load::client(concurrency)?;
    // One body per worker would need a per-worker driver; one session for all requests is the same
    // store-free path (a known session) and keeps the driver shared with `bench overhead`.
    let body = request_body(4 << 10, "outage-bench");
    load::phase(&client, "bridge", &url, body.clone(), &[], concurrency * 4, concurrency).await?;
    let mut results = Vec::new();
    for phase in ["redis-up", "redis-killed", "redis-restarted"] {
        match phase {
            "redis-killed" => redis.kill(),
            "redis-restarted" => redis.restart()?,
            _ => {}
        }
        let measured = load::phase(&client, "bridge", &url, body.clone(), &[], requests, concurrency).await?;
        // Let the recorder's last batch land (or be dropped) before reading the counters.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let writes_dropped = dropped(&client, &metrics_url).await?;
        let usage_rows = usage_rows(&redis.url(), phase != "redis-killed").await;
        results.push(summarise(phase, &measured, concurrency, writes_dropped, usage_rows));
    }
    drop(bridge);
    drop(redis);
    let _ = std::fs::remove_dir_all(&data);
    emulator.shutdown().await;
    Ok(results)
}

/// The bridge's dropped-writes counter, summed over reasons.
async fn dropped(client: &reqwest::Client, url: &str) -> Result<u64, BenchError> {
    let err = |e: reqwest::Error| BenchError::Request { target: "bridge /metrics", message: e.to_string() };
    let text = client.get(url).send().await.map_err(err)?.text().await.map_err(err)?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("codex_bridge_store_writes_dropped_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum())
}

async fn usage_rows(url: &str, up: bool) -> Option<usize> {
    if !up {
        return None;
    }
    let store = RedisStore::connect(url).await.ok()?;
    store.usage(&UsageQuery::default()).await.ok().map(|rows| rows.len())
}

fn summarise(
    phase: &'static str,
    measured: &Phase,
    concurrency: usize,
    writes_dropped: u64,
    usage_rows: Option<usize>,
) -> PhaseResult {
    let totals = Series::new(&measured.samples.iter().map(|s| s.total).collect::<Vec<_>>());
    let rps = if measured.wall.is_zero() { 0.0 } else { measured.samples.len() as f64 / measured.wall.as_secs_f64() };
    PhaseResult {
        phase,
        requests: measured.samples.len(),
        concurrency,
        rps: (rps * 10.0).round() / 10.0,
        p50_us: totals.percentile_us(50.0),
        p99_us: totals.percentile_us(99.0),
        max_us: totals.percentile_us(100.0),
        writes_dropped,
        usage_rows,
    }
}
