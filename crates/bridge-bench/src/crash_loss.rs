//! The crash-loss harness (issue 12, finding 8): how much of the usage store a SIGKILL under load loses.
//!
//! Each round starts `codex-bridge serve` (same data directory every round) against the in-process emulator,
//! drives it with `concurrency` workers (one session each, requests one after another), SIGKILLs it at a
//! random moment, then opens the store and compares, per session, the responses the client saw complete with
//! the usage rows recorded. A session's requests are sequential and the recorder writes in order, so the
//! missing rows of a session are its last completions; the loss window of a round is the time from the
//! earliest completion whose row is missing to the kill. That window is the durability promise ("at most the
//! last N ms of completed turns are lost").
//!
//! The journal is measured the same way: a session's turns in its rollout (`task_complete` lines) against the
//! responses it saw complete (the journal writer applies a session's turns in order too).
//!
//! Bounded: `kills` rounds of 1-2.5 s of load each; nothing is left running.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bridge_store::UsageQuery;
use serde::Serialize;

use crate::BenchError;
use crate::overhead::{BridgeProcess, request_body};

/// One round (the `--json` line; field names are part of the interface).
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub round: usize,
    /// Load before the kill.
    pub ran_ms: u64,
    /// Responses the client received completely before the kill.
    pub completed: usize,
    /// Completed responses without a usage row.
    pub missing: usize,
    /// Kill time minus the completion time of the earliest response whose row is missing.
    pub loss_window_ms: Option<f64>,
    /// Kill time minus the completion time of the newest missing response.
    pub newest_missing_ms: Option<f64>,
    /// Completed responses without a turn in their session's rollout.
    pub journal_missing: usize,
    /// Kill time minus the completion time of the earliest response missing from the rollouts.
    pub journal_loss_window_ms: Option<f64>,
}

/// All rounds together.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub case: &'static str,
    pub store: String,
    pub rounds: usize,
    pub concurrency: usize,
    pub completed: usize,
    pub missing: usize,
    pub missing_pct: f64,
    /// The largest loss window of any round: N of the promise.
    pub max_loss_window_ms: f64,
    pub journal_missing: usize,
    pub journal_missing_pct: f64,
    /// The largest journal loss window of any round.
    pub max_journal_loss_window_ms: f64,
    pub completed_per_s: f64,
}

/// Runs `kills` rounds; `store` is passed to `serve --store` (default: SQLite in the data directory).
pub async fn run(
    bridge_exe: &Path,
    kills: usize,
    concurrency: usize,
    seed: u64,
    store: Option<&str>,
) -> Result<(Vec<Round>, Summary), BenchError> {
    let emulator = crate::fast_emulator(16).await?;
    let upstream = format!("{}/v1", emulator.base_url());
    let data = std::env::temp_dir().join(format!("codex-bridge-bench-crash-{}", std::process::id()));
    let extra: Vec<String> = store.map(|s| vec!["--store".to_owned(), s.to_owned()]).unwrap_or_default();
    let client = crate::load::client(concurrency)?;
    let mut rng = seed.max(1);
    let mut rounds = Vec::new();
    let mut load_time = Duration::ZERO;
    for round in 0..kills {
        let mut bridge = BridgeProcess::spawn_with(bridge_exe, &upstream, &data, &extra)?;
        let url = format!("{}/v1/responses", bridge.url);
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..concurrency)
            .map(|w| {
                let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
                let session = format!("crash-{}-{round}-{w}", std::process::id());
                tokio::spawn(async move { drive(&client, &url, &session, &stop).await.map(|done| (session, done)) })
            })
            .collect();
        let started = Instant::now();
        let ran = Duration::from_millis(1000 + next(&mut rng) % 1500);
        tokio::time::sleep(ran).await;
        let killed_at = Instant::now();
        bridge.kill();
        stop.store(true, Ordering::Relaxed);
        load_time += killed_at - started;
        let mut sessions = Vec::new();
        for w in workers {
            sessions.push(w.await.map_err(|e| BenchError::Other(format!("crash worker: {e}")))??);
        }
        let opened = bridge_store::open(store, &data).await.map_err(|e| BenchError::Other(e.to_string()))?;
        let (mut completed, mut missing) = (0, 0);
        let (mut earliest, mut newest): (Option<Instant>, Option<Instant>) = (None, None);
        let turns = journaled_turns(&data);
        let (mut journal_missing, mut journal_earliest): (usize, Option<Instant>) = (0, None);
        for (session, done) in sessions {
            let done: Vec<Instant> = done.into_iter().filter(|t| *t <= killed_at).collect();
            let query = UsageQuery { session_id: Some(session.clone()), limit: 0 };
            let rows = opened.usage(&query).await.map_err(|e| BenchError::Other(e.to_string()))?.len();
            completed += done.len();
            let journaled = turns.get(&bridge_journal::clock::thread_uuid(&session)).copied().unwrap_or(0);
            if let Some(first_missing) = done.get(journaled) {
                journal_missing += done.len() - journaled;
                journal_earliest = Some(journal_earliest.map_or(*first_missing, |e| e.min(*first_missing)));
            }
            if let Some(first_missing) = done.get(rows) {
                missing += done.len() - rows;
                earliest = Some(earliest.map_or(*first_missing, |e| e.min(*first_missing)));
                let last = done.last().copied().unwrap_or(*first_missing);
                newest = Some(newest.map_or(last, |n| n.max(last)));
            }
        }
        drop(opened);
        let ms = |t: Option<Instant>| t.map(|t| (killed_at - t).as_secs_f64() * 1000.0);
        rounds.push(Round {
            round,
            ran_ms: ran.as_millis() as u64,
            completed,
            missing,
            loss_window_ms: ms(earliest),
            newest_missing_ms: ms(newest),
            journal_missing,
            journal_loss_window_ms: ms(journal_earliest),
        });
    }
    let _ = std::fs::remove_dir_all(&data);
    emulator.shutdown().await;
    let completed: usize = rounds.iter().map(|r| r.completed).sum();
    let missing: usize = rounds.iter().map(|r| r.missing).sum();
    let journal_missing: usize = rounds.iter().map(|r| r.journal_missing).sum();
    let pct = |n: usize| if completed == 0 { 0.0 } else { (n as f64 * 10_000.0 / completed as f64).round() / 100.0 };
    let summary = Summary {
        case: "crash-loss",
        store: store.unwrap_or("sqlite (data dir)").to_owned(),
        rounds: rounds.len(),
        concurrency,
        completed,
        missing,
        missing_pct: pct(missing),
        max_loss_window_ms: rounds.iter().filter_map(|r| r.loss_window_ms).fold(0.0, f64::max),
        journal_missing,
        journal_missing_pct: pct(journal_missing),
        max_journal_loss_window_ms: rounds.iter().filter_map(|r| r.journal_loss_window_ms).fold(0.0, f64::max),
        completed_per_s: (completed as f64 / load_time.as_secs_f64().max(1e-9)).round(),
    };
    Ok((rounds, summary))
}

/// Turns recorded per thread id: `task_complete` lines of each rollout under `data`.
fn journaled_turns(data: &Path) -> std::collections::HashMap<String, usize> {
    let mut turns = std::collections::HashMap::new();
    for path in bridge_journal::rollout::all(data) {
        let Some(thread) = bridge_journal::rollout::thread_of(&path).map(str::to_owned) else { continue };
        let lines = bridge_journal::rollout::read_lines(&path).unwrap_or_default();
        let done = lines.iter().filter(|l| l["type"] == "event_msg" && l["payload"]["type"] == "task_complete").count();
        *turns.entry(thread).or_insert(0) += done;
    }
    turns
}

/// Sends requests of `session` one after another until `stop` or an error (the kill); returns when each
/// response completed.
async fn drive(
    client: &reqwest::Client,
    url: &str,
    session: &str,
    stop: &AtomicBool,
) -> Result<Vec<Instant>, BenchError> {
    let body = request_body(1 << 10, session);
    let mut done = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let sent = client
            .post(url)
            .header("authorization", "Bearer bench")
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let Ok(resp) = sent else { break };
        if resp.status() != 200 {
            return Err(BenchError::Request { target: "bridge", message: format!("HTTP {}", resp.status()) });
        }
        let Ok(bytes) = resp.bytes().await else { break };
        if !bytes.windows(18).any(|w| w == b"response.completed") {
            break;
        }
        done.push(Instant::now());
    }
    Ok(done)
}

/// xorshift64: enough to spread the kill moments, reproducible from `--seed`.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
