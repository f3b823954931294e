//! The exchange pipeline's contracts: the request is parsed once and the tracker and journal see the
//! items the upstream got; `finish` runs exactly once on every exit path (one usage row per exchange).

use std::time::Duration;

use bridge_store::UsageQuery;
use serde_json::{Value, json};

use crate::support::{Options, Reply, ScriptedUpstream, TestBridge, client, ev, sse_reply};

fn body(session: &str, items: &[Value], stream: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({"model": "gpt-5.5", "stream": stream, "prompt_cache_key": session, "input": items}))
        .unwrap()
}

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

async fn usage_rows(bridge: &TestBridge) -> Vec<bridge_store::UsageRecord> {
    bridge.settle().await;
    bridge.state.store.usage(&UsageQuery::default()).await.unwrap()
}

#[tokio::test]
async fn one_parse_and_the_tracker_and_journal_see_the_items_the_upstream_got() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::with(&upstream.url(), Options::default()).await;
    let items = [
        user("first"),
        json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "ok"}]}),
        user("second"),
    ];
    let before = bridge_types::parse_count();
    let resp = client()
        .post(bridge.url("/v1/responses"))
        .header("content-type", "application/json")
        .body(body("ses_parse_once", &items, true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    bridge.settle().await;
    bridge.state.journal.as_ref().unwrap().flush().await;
    assert_eq!(bridge_types::parse_count() - before, 1, "the exchange parsed its body exactly once");

    let seen = upstream.seen();
    let sent: Value = serde_json::from_slice(&seen[0].body).unwrap();
    let sent_items = sent["input"].as_array().unwrap();
    assert_eq!(sent_items.len(), 3);

    let log = bridge.state.store.read_log("turns/ses_parse_once", 0, 10).await.unwrap();
    assert_eq!(log.len(), 1, "one tracker row");
    let row: Value = serde_json::from_str(&log[0].body).unwrap();
    assert_eq!(row["items"], sent_items.len(), "the tracker fingerprinted the items as sent");

    let data = bridge.state.config.data_dir.clone();
    let files = bridge_journal::rollout::all(&data);
    assert_eq!(files.len(), 1);
    let lines = bridge_journal::rollout::read_lines(&files[0]).unwrap();
    let journaled: Vec<&Value> =
        lines.iter().filter(|l| l["type"] == "response_item").map(|l| &l["payload"]).take(sent_items.len()).collect();
    assert_eq!(journaled, sent_items.iter().collect::<Vec<_>>(), "the journal recorded the items as sent");
    bridge.stop().await;
}

/// An upstream that accepts connections and never answers.
async fn silent_upstream() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

#[tokio::test]
async fn finish_runs_once_on_every_exit_path() {
    // Upstream refuses the request (no retry for a 400): one row with its status.
    let upstream = ScriptedUpstream::start().await;
    upstream.push(Reply::Status { status: 400, headers: vec![], body: r#"{"error":{"message":"no"}}"#.into() });
    // Stream cut: events, then the upstream closes before response.completed.
    upstream.push(Reply::Sse(vec![
        (Duration::ZERO, ev("response.created", json!({"response": {"id": "r", "output": []}}))),
        (Duration::ZERO, ev("response.output_text.delta", json!({"delta": "x"}))),
    ]));
    upstream.push(Reply::Sse(sse_reply("ok", 10, Some(0))));
    let bridge = TestBridge::start(&upstream.url()).await;
    let post = |session: &str, stream: bool| {
        client()
            .post(bridge.url("/v1/responses"))
            .header("content-type", "application/json")
            .body(body(session, &[user("hi")], stream))
            .send()
    };
    assert_eq!(post("ses_refused", true).await.unwrap().status(), 400);
    let cut = post("ses_cut", true).await.unwrap();
    assert_eq!(cut.status(), 200);
    assert!(String::from_utf8_lossy(&cut.bytes().await.unwrap()).contains("event: error"));
    let ok = post("ses_ok", false).await.unwrap();
    assert_eq!(ok.status(), 200);
    ok.bytes().await.unwrap();
    let rows = usage_rows(&bridge).await;
    let mut by_session: Vec<(String, u16)> =
        rows.iter().map(|r| (r.session_id.clone().unwrap_or_default(), r.status)).collect();
    by_session.sort();
    assert_eq!(
        by_session,
        [("ses_cut".to_owned(), 200), ("ses_ok".to_owned(), 200), ("ses_refused".to_owned(), 400)],
        "one row per exchange"
    );
    bridge.stop().await;

    // Upstream unreachable (nothing listens): the error is recorded once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let bridge =
        TestBridge::with(&url, Options { file: "[upstream]\nmax_retries = 0\n".into(), ..Options::default() }).await;
    let resp = client()
        .post(bridge.url("/v1/responses"))
        .header("content-type", "application/json")
        .body(body("ses_unreachable", &[user("hi")], true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let rows = usage_rows(&bridge).await;
    assert_eq!(rows.iter().map(|r| r.status).collect::<Vec<_>>(), [502]);
    bridge.stop().await;

    // The client leaves while the bridge waits for the upstream's head: the handler is dropped mid-exchange,
    // and the exchange's drop guard still records it, once, as 499.
    let (url, silent) = silent_upstream().await;
    let bridge = TestBridge::start(&url).await;
    let gone = client()
        .post(bridge.url("/v1/responses"))
        .header("content-type", "application/json")
        .body(body("ses_gone", &[user("hi")], true))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let rows = loop {
        let rows = usage_rows(&bridge).await;
        if !rows.is_empty() || std::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(rows.iter().map(|r| (r.session_id.as_deref(), r.status)).collect::<Vec<_>>(), [(Some("ses_gone"), 499)]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(bridge.state.store.usage(&UsageQuery::default()).await.unwrap().len(), 1, "recorded once");
    silent.abort();
    bridge.stop().await;
}
