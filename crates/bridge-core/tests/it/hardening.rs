//! Hostile and unlucky peers: idle, slow and stuck connections, silent upstreams, oversized and abusive
//! bodies, credentials that must not travel. Each test fails without the bound it checks.

use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{Options, Reply, ScriptedUpstream, TestBridge, client, ev, sse_reply};

fn with_file(file: &str) -> Options {
    Options { file: file.to_owned(), ..Options::default() }
}

/// Reads until EOF or error; returns what was read and when the connection ended (None: still open at `within`).
async fn read_until_closed(tcp: &mut TcpStream, within: Duration) -> (Vec<u8>, Option<Duration>) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Err(_) => return (out, None),
            Ok(Ok(0) | Err(_)) => return (out, Some(started.elapsed())),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

async fn health_ms(bridge: &TestBridge) -> f64 {
    let t = Instant::now();
    let r = client().get(bridge.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    t.elapsed().as_secs_f64() * 1000.0
}

const FAST_TIMEOUTS: &str =
    "[server]\nidle_timeout_ms = 300\nheader_read_timeout_ms = 300\nbody_read_timeout_ms = 300\n";

#[tokio::test]
async fn a_connection_that_never_sends_is_closed_after_the_idle_timeout() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::with(&upstream.url(), with_file(FAST_TIMEOUTS)).await;
    let mut tcp = TcpStream::connect(bridge.addr).await.unwrap();
    let (_, closed) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    let closed = closed.expect("an idle connection must be closed");
    assert!(closed >= Duration::from_millis(250), "closed too early: {closed:?}");
}

#[tokio::test]
async fn a_keep_alive_connection_is_closed_when_idle_after_its_response() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::with(&upstream.url(), with_file(FAST_TIMEOUTS)).await;
    let mut tcp = TcpStream::connect(bridge.addr).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let (got, closed) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
    assert!(closed.is_some(), "the idle keep-alive connection must be closed");
}

#[tokio::test]
async fn headers_trickled_byte_by_byte_are_cut_after_the_header_timeout() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::with(&upstream.url(), with_file(FAST_TIMEOUTS)).await;
    let mut tcp = TcpStream::connect(bridge.addr).await.unwrap();
    let started = Instant::now();
    tcp.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
    // One header byte every 50 ms: never idle, never complete.
    let mut cut = None;
    for i in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let byte = if i % 10 == 9 { b"\r\n".to_vec() } else { b"x".to_vec() };
        if tcp.write_all(&byte).await.is_err() {
            cut = Some(started.elapsed());
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), tcp.read(&mut probe)).await {
            cut = Some(started.elapsed());
            break;
        }
    }
    let cut = cut.expect("slow headers must be cut");
    assert!(cut < Duration::from_secs(2), "cut only after {cut:?}");
    health_ms(&bridge).await;
}

#[tokio::test]
async fn a_stalled_body_gets_408_and_a_trickled_body_is_cut_by_its_rate() {
    let upstream = ScriptedUpstream::start().await;
    let file = format!("{FAST_TIMEOUTS}body_min_bytes_per_sec = 1000\n");
    let bridge = TestBridge::with(&upstream.url(), with_file(&file)).await;
    for trickle in [false, true] {
        let tcp = TcpStream::connect(bridge.addr).await.unwrap();
        let (mut reader, mut writer) = tcp.into_split();
        writer
            .write_all(b"POST /v1/responses HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{\"model\":")
            .await
            .unwrap();
        let started = Instant::now();
        let trickling = async {
            if trickle {
                // 20 bytes per second, against the 1000 B/s floor: every read is quick, the whole is not.
                for _ in 0..100 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    if writer.write_all(b" ").await.is_err() {
                        break;
                    }
                }
            }
        };
        let mut answer = Vec::new();
        let read = async {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut answer)).await;
        };
        tokio::select! {
            () = async { tokio::join!(trickling, read); } => {}
            () = tokio::time::sleep(Duration::from_secs(6)) => {}
        }
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 408"), "trickle={trickle}: {text}");
        assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
        assert!(started.elapsed() < Duration::from_secs(3), "trickle={trickle}: {:?}", started.elapsed());
    }
    assert!(upstream.seen().is_empty());
}

#[tokio::test]
async fn idle_sockets_at_the_connection_cap_are_evicted_for_new_clients() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::with(&upstream.url(), with_file("[server]\nmax_connections = 8\n")).await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(bridge.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Without eviction the cap would leave /health waiting for the 60 s idle timeout.
    let t = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(3), client().get(bridge.url("/health")).send()).await;
    assert!(r.expect("/health must answer at the cap").unwrap().status().is_success());
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let closed = bridge.state.metrics.render();
    assert!(closed.contains("codex_bridge_connections_closed_total{reason=\"evicted\"}"), "{closed}");
}

#[tokio::test]
async fn busy_connections_at_the_cap_make_a_newcomer_get_an_openai_shaped_503() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::with(&upstream.url(), with_file("[server]\nmax_connections = 2\n")).await;
    for _ in 0..2 {
        upstream.push(Reply::StallHeaders(Duration::from_secs(3)));
    }
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let url = bridge.url("/v1/responses");
            tokio::spawn(async move {
                let _ = client().post(url).json(&json!({"model": "m", "input": "hi", "stream": true})).send().await;
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tcp = TcpStream::connect(bridge.addr).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let (got, _) = read_until_closed(&mut tcp, Duration::from_secs(3)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("retry-after: 1"), "{text}");
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections");
    for b in busy {
        b.abort();
    }
}

/// A long stream the client will not read: 400 events of 64 KiB, far more than the socket buffers hold.
fn big_stream() -> Vec<(Duration, Bytes)> {
    let filler = "x".repeat(64 * 1024);
    let mut parts = vec![(Duration::ZERO, sse_reply("", 10, Some(0)).remove(0).1)];
    for _ in 0..400 {
        parts.push((Duration::ZERO, ev("response.output_text.delta", json!({"item_id": "msg_1", "delta": filler}))));
    }
    parts.extend(sse_reply("done", 1000, Some(600)).into_iter().skip(3));
    parts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_and_its_turn_is_still_recorded() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::with(&upstream.url(), with_file("[server]\nclient_stall_timeout_ms = 300\n")).await;
    upstream.push(Reply::Sse(big_stream()));
    let mut tcp = TcpStream::connect(bridge.addr).await.unwrap();
    let body =
        json!({"model": "m", "input": "hi", "stream": true, "metadata": {"conversation_id": "stall"}}).to_string();
    let head = format!(
        "POST /v1/responses HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body.as_bytes()).await.unwrap();
    let mut first = [0u8; 12];
    tcp.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    // Stop reading; the bridge must give up on this client, finish the upstream stream and record the turn.
    let started = Instant::now();
    loop {
        if *upstream.state.finished.lock().unwrap() == 1 && bridge.state.tasks.is_empty() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the pump is still stuck on the client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bridge.settle().await;
    let rows = bridge.state.store.usage(&bridge_store::UsageQuery::default()).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].input_tokens, Some(1000));
    assert_eq!(rows[0].cached_tokens, Some(600));
    assert!(bridge.state.metrics.render().contains("codex_bridge_client_stalls_total 1"));
    // The connection is gone: after what the socket buffers held, the client reads the end.
    let (_, closed) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
    assert!(closed.is_some(), "the stalled client's connection must be closed");
}

#[tokio::test]
async fn an_upstream_that_accepts_and_says_nothing_gives_504_within_the_head_timeout() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            sockets.push(s);
        }
    });
    let file = "[upstream]\nresponse_head_timeout_ms = 400\n";
    let bridge = TestBridge::with(&format!("http://{addr}/v1"), with_file(file)).await;
    let t = Instant::now();
    let r =
        client().post(bridge.url("/v1/responses")).json(&json!({"model": "m", "input": "hi"})).send().await.unwrap();
    assert_eq!(r.status(), 504);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");
    assert!(body["error"]["message"].as_str().unwrap().contains("response_head_timeout_ms"), "{body}");
    held.abort();
}

#[tokio::test]
async fn retries_share_one_total_budget() {
    let upstream = ScriptedUpstream::start().await;
    for _ in 0..12 {
        upstream.push(Reply::Status { status: 500, headers: vec![], body: "{\"detail\":\"down\"}".into() });
    }
    // Ten retries at 200 ms, 400 ms, 800 ms, ... would take over 20 s; the budget ends them at 700 ms.
    let file = "[upstream]\nmax_retries = 10\nretry_budget_ms = 700\n";
    let bridge = TestBridge::with(&upstream.url(), with_file(file)).await;
    let t = Instant::now();
    let r =
        client().post(bridge.url("/v1/responses")).json(&json!({"model": "m", "input": "hi"})).send().await.unwrap();
    assert_eq!(r.status(), 500);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(upstream.seen().len() >= 2 && upstream.seen().len() <= 3, "{} attempts", upstream.seen().len());
}

#[tokio::test]
async fn a_password_in_the_upstream_url_never_reaches_the_client() {
    // Nothing listens on port 9 of loopback: the connection is refused and the 502 names the upstream.
    let url = "http://alice:hunter2secret@127.0.0.1:9/v1?api_key=zzz-query-secret";
    let bridge = TestBridge::with(url, with_file("[upstream]\nmax_retries = 0\n")).await;
    let r =
        client().post(bridge.url("/v1/responses")).json(&json!({"model": "m", "input": "hi"})).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    assert!(!text.contains("hunter2secret") && !text.contains("alice") && !text.contains("zzz-query-secret"), "{text}");
    assert!(text.contains("***@127.0.0.1:9"), "{text}");
}

#[tokio::test]
async fn the_bridge_credential_replaces_the_clients_cookies_and_account_selectors() {
    let upstream = ScriptedUpstream::start().await;
    let bridge =
        TestBridge::with(&upstream.url(), Options { auth: bridge_core::UpstreamAuth::ApiKey, ..Options::default() })
            .await;
    let r = client()
        .post(bridge.url("/v1/responses"))
        .header("cookie", "session=client-cookie")
        .header("openai-organization", "org-client")
        .header("openai-project", "proj-client")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "1")
        .header("x-kept", "1")
        .json(&json!({"model": "m", "input": "hi", "prompt_cache_key": "snake", "promptCacheKey": "camel"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await;
    let seen = upstream.seen();
    let h = &seen[0].headers;
    for dropped in ["cookie", "openai-organization", "openai-project", "x-hop"] {
        assert!(h.get(dropped).is_none(), "{dropped} was forwarded");
    }
    assert_eq!(h["x-kept"], "1");
    assert_eq!(h["authorization"], "Bearer sk-bridge-owned-key");
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["prompt_cache_key"], "snake");
    assert!(body.get("promptCacheKey").is_none(), "{body}");

    // In passthrough the client's own credentials are the upstream's business.
    let pass = TestBridge::start(&upstream.url()).await;
    let r = client()
        .post(pass.url("/v1/responses"))
        .header("openai-organization", "org-client")
        .json(&json!({"model": "m", "input": "hi"}))
        .send()
        .await
        .unwrap();
    let _ = r.bytes().await;
    assert_eq!(upstream.seen()[1].headers["openai-organization"], "org-client");
}

#[tokio::test]
async fn request_bodies_are_admitted_by_an_in_flight_byte_budget() {
    let upstream = ScriptedUpstream::start().await;
    let file = "body_limit_bytes = 65536\n[server]\nmax_inflight_body_bytes = 65536\n";
    let bridge = TestBridge::with(&upstream.url(), with_file(file)).await;
    upstream.push(Reply::StallHeaders(Duration::from_millis(800)));
    let big = json!({"model": "m", "input": "x".repeat(40_000), "stream": true});
    let url = bridge.url("/v1/responses");
    let first = {
        let (url, big) = (url.clone(), big.clone());
        tokio::spawn(async move { client().post(url).json(&big).send().await.unwrap().bytes().await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = client().post(&url).json(&big).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bridge_overloaded");
    let _ = first.await;
    bridge.settle().await;
    // The budget is back once the first exchange is recorded.
    let r = client().post(&url).json(&big).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_with_160k_keys_is_answered_fast_and_health_stays_responsive() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let mut body = String::from("{\"model\":\"m\"");
    for i in 0..160_000 {
        body.push_str(&format!(",\"k{i}\":1"));
    }
    body.push_str(",\"k7\":2}");
    assert!(body.len() > 1_500_000);
    let url = bridge.url("/v1/responses");
    let started = Instant::now();
    let sent = tokio::spawn(async move {
        let r = client().post(url).header("content-type", "application/json").body(body).send().await.unwrap();
        (r.status().as_u16(), started.elapsed())
    });
    let mut health = Vec::new();
    while !sent.is_finished() && health.len() < 20 {
        health.push(health_ms(&bridge).await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, took) = sent.await.unwrap();
    assert_eq!(status, 400);
    assert!(took < Duration::from_secs(1), "a 160k-key body took {took:?}");
    health.sort_by(f64::total_cmp);
    if let Some(median) = health.get(health.len() / 2) {
        assert!(*median < 50.0, "/health took {median} ms (median) during the parse: {health:?}");
    }
    assert!(upstream.seen().is_empty());
}
