//! `bench amplification`: what large requests cost a real `codex-bridge serve` process in memory and on
//! disk, against the emulator on loopback.
//!
//! - Memory: one request with many small input items (the shape that multiplies parsed forms), then five
//!   more; the bridge's resident set before, after, and its peak (`VmHWM`), each over the body size.
//! - Disk: one turn with a single very large prompt; the bytes its rollout and `history.jsonl` take, over
//!   the prompt's size.
//!
//! Bounded: seven large requests and one warm-up, sequential; everything stops by itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::BenchError;
use crate::overhead::BridgeProcess;
use crate::stats::{peak_rss_kib, rss_kib};

/// The memory side of the run.
#[derive(Debug, Clone, Serialize)]
pub struct MemoryAmplification {
    pub items: usize,
    pub body_bytes: usize,
    pub rss_before_kib: Option<u64>,
    pub rss_after_one_kib: Option<u64>,
    pub peak_after_one_kib: Option<u64>,
    pub rss_after_six_kib: Option<u64>,
    pub peak_after_six_kib: Option<u64>,
    /// (peak after one − RSS before) / body size.
    pub peak_growth_over_body: Option<f64>,
}

/// The disk side of the run.
#[derive(Debug, Clone, Serialize)]
pub struct DiskAmplification {
    pub prompt_bytes: usize,
    pub rollout_bytes: u64,
    pub history_bytes: u64,
    pub rollout_over_prompt: f64,
    pub history_over_prompt: f64,
}

/// Both sides.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub memory: MemoryAmplification,
    pub disk: DiskAmplification,
}

/// A streaming request of `items` user messages of about 60 bytes of text each (~92 bytes per item).
pub fn many_items_body(items: usize, session: &str) -> Bytes {
    let mut body = format!(
        "{{\"model\":\"gpt-5.5\",\"stream\":true,\"store\":false,\"metadata\":{{\"conversation_id\":\"{session}\"}},\"input\":["
    );
    for i in 0..items {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            "{{\"type\":\"message\",\"role\":\"user\",\"content\":[{{\"type\":\"input_text\",\"text\":\"item {i:>7} lorem ipsum dolor sit amet consectetur adipis\"}}]}}"
        ));
    }
    body.push_str("]}");
    Bytes::from(body)
}

/// One user message of `prompt_bytes` bytes of text.
pub fn big_prompt_body(prompt_bytes: usize, session: &str) -> Bytes {
    let text = "lorem ipsum dolor sit amet consectetur ".repeat(prompt_bytes / 39 + 1);
    let body = serde_json::json!({
        "model": "gpt-5.5",
        "stream": true,
        "store": false,
        "metadata": {"conversation_id": session},
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": &text[..prompt_bytes]}]}],
    });
    Bytes::from(body.to_string())
}

async fn send(client: &reqwest::Client, url: &str, body: Bytes) -> Result<(), BenchError> {
    let failed = |message: String| BenchError::Request { target: "bridge", message };
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("authorization", "Bearer sk-bench")
        .body(body)
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    let text = response.bytes().await.map_err(|e| failed(e.to_string()))?;
    if !status.is_success() {
        return Err(failed(format!("HTTP {status}: {}", String::from_utf8_lossy(&text[..text.len().min(300)]))));
    }
    Ok(())
}

/// Bytes of regular files under `dir` whose path satisfies `want`.
fn bytes_under(dir: &Path, want: &dyn Fn(&Path) -> bool) -> u64 {
    let mut total = 0;
    let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(path),
                Ok(m) if want(&path) => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

/// Runs both sides; `items` input items for the memory side, `prompt_bytes` for the disk side.
pub async fn run(bridge_exe: &Path, items: usize, prompt_bytes: usize) -> Result<Report, BenchError> {
    let emulator = crate::fast_emulator(4).await?;
    let upstream = format!("{}/v1", emulator.base_url());
    let data = std::env::temp_dir().join(format!("codex-bridge-bench-amp-{}", std::process::id()));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| BenchError::Other(e.to_string()))?;

    let bridge = BridgeProcess::spawn(bridge_exe, &upstream, &data.join("memory"))?;
    let url = format!("{}/v1/responses", bridge.url);
    send(&client, &url, many_items_body(4, "warm-up")).await?;
    let pid = bridge.pid();
    // The bookkeeping (tracker, journal, store writes) runs after each response: wait until the resident
    // set holds still for two seconds (at most a minute) before reading it.
    let settle = || async move {
        let mut last = rss_kib(pid);
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let now = rss_kib(pid);
            if now == last {
                break;
            }
            last = now;
        }
    };
    settle().await;
    let rss_before = rss_kib(pid);
    let body = many_items_body(items, "many-items-0");
    let body_bytes = body.len();
    eprintln!("bench amplification: one request of {items} items ({} MB)", body_bytes / 1_000_000);
    send(&client, &url, body).await?;
    settle().await;
    let (rss_one, peak_one) = (rss_kib(bridge.pid()), peak_rss_kib(bridge.pid()));
    for i in 1..6 {
        send(&client, &url, many_items_body(items, &format!("many-items-{i}"))).await?;
    }
    settle().await;
    let (rss_six, peak_six) = (rss_kib(bridge.pid()), peak_rss_kib(bridge.pid()));
    drop(bridge);
    let memory = MemoryAmplification {
        items,
        body_bytes,
        rss_before_kib: rss_before,
        rss_after_one_kib: rss_one,
        peak_after_one_kib: peak_one,
        rss_after_six_kib: rss_six,
        peak_after_six_kib: peak_six,
        peak_growth_over_body: match (peak_one, rss_before) {
            (Some(p), Some(b)) => Some(p.saturating_sub(b) as f64 * 1024.0 / body_bytes as f64),
            _ => None,
        },
    };

    let disk_dir = data.join("disk");
    let bridge = BridgeProcess::spawn(bridge_exe, &upstream, &disk_dir)?;
    let url = format!("{}/v1/responses", bridge.url);
    eprintln!("bench amplification: one turn with a {} MB prompt", prompt_bytes / 1_000_000);
    send(&client, &url, big_prompt_body(prompt_bytes, "big-prompt")).await?;
    bridge.terminate()?;
    let rollout_bytes = bytes_under(&disk_dir.join("sessions"), &|p| p.extension().is_some_and(|e| e == "jsonl"));
    let history_bytes = std::fs::metadata(disk_dir.join("history.jsonl")).map_or(0, |m| m.len());
    let disk = DiskAmplification {
        prompt_bytes,
        rollout_bytes,
        history_bytes,
        rollout_over_prompt: rollout_bytes as f64 / prompt_bytes as f64,
        history_over_prompt: history_bytes as f64 / prompt_bytes as f64,
    };
    let _ = std::fs::remove_dir_all(&data);
    emulator.shutdown().await;
    Ok(Report { memory, disk })
}

/// The report as a short table.
pub fn table(report: &Report) -> String {
    let m = &report.memory;
    let d = &report.disk;
    let mib = |k: Option<u64>| k.map_or_else(|| "unknown".to_owned(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    format!(
        "memory: {} items, {:.1} MB body\n  RSS before {}, after one {}, peak after one {}, after six {}, peak after six {}\n  peak growth / body: {}\n\
         disk: {:.1} MB prompt\n  rollout {:.1} MB ({:.2}x), history {:.1} MB ({:.2}x)\n",
        m.items,
        m.body_bytes as f64 / 1e6,
        mib(m.rss_before_kib),
        mib(m.rss_after_one_kib),
        mib(m.peak_after_one_kib),
        mib(m.rss_after_six_kib),
        mib(m.peak_after_six_kib),
        m.peak_growth_over_body.map_or_else(|| "unknown".to_owned(), |r| format!("{r:.1}x")),
        d.prompt_bytes as f64 / 1e6,
        d.rollout_bytes as f64 / 1e6,
        d.rollout_over_prompt,
        d.history_bytes as f64 / 1e6,
        d.history_over_prompt,
    )
}
