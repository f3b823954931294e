//! The HTTP load driver: `n` POSTs of one body to one URL with `c` requests in flight, each read to the end
//! of its SSE stream, with total latency and time to first body byte per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;

use crate::BenchError;

/// One request's timings.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub total: Duration,
    pub ttfb: Duration,
}

/// A phase's samples and its wall-clock time.
#[derive(Debug)]
pub struct Phase {
    pub samples: Vec<Sample>,
    pub wall: Duration,
}

/// A keep-alive client sized for `concurrency` connections.
pub fn client(concurrency: usize) -> Result<reqwest::Client, BenchError> {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(concurrency.max(1) * 2)
        .build()
        .map_err(|e| BenchError::Other(format!("http client: {e}")))
}

/// Runs one phase. Every response must be 200 and end with `response.completed`.
pub async fn phase(
    client: &reqwest::Client,
    target: &'static str,
    url: &str,
    body: Bytes,
    headers: &[(String, String)],
    requests: usize,
    concurrency: usize,
) -> Result<Phase, BenchError> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let (client, url, body, next) = (client.clone(), url.to_owned(), body.clone(), next.clone());
        let headers = headers.to_vec();
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                samples.push(one(&client, target, &url, body.clone(), &headers).await?);
            }
            Ok::<_, BenchError>(samples)
        }));
    }
    let mut samples = Vec::with_capacity(requests);
    for w in workers {
        let part = w.await.map_err(|e| BenchError::Other(format!("load worker: {e}")))??;
        samples.extend(part);
    }
    Ok(Phase { samples, wall: started.elapsed() })
}

async fn one(
    client: &reqwest::Client,
    target: &'static str,
    url: &str,
    body: Bytes,
    headers: &[(String, String)],
) -> Result<Sample, BenchError> {
    let err = |message: String| BenchError::Request { target, message };
    let started = Instant::now();
    let mut request =
        client.post(url).header("authorization", "Bearer bench").header("content-type", "application/json").body(body);
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let resp = request.send().await.map_err(|e| err(e.to_string()))?;
    if resp.status() != 200 {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        return Err(err(format!("HTTP {status}: {}", text.chars().take(300).collect::<String>())));
    }
    let mut stream = resp.bytes_stream();
    let mut ttfb = None;
    let mut tail: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| err(e.to_string()))?;
        ttfb.get_or_insert_with(|| started.elapsed());
        tail.extend_from_slice(&chunk);
        if tail.len() > 4096 {
            tail.drain(..tail.len() - 4096);
        }
    }
    let total = started.elapsed();
    if !String::from_utf8_lossy(&tail).contains("response.completed") {
        return Err(err("stream ended without response.completed".to_owned()));
    }
    Ok(Sample { total, ttfb: ttfb.unwrap_or(total) })
}
