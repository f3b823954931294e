//! Streaming proxy behaviour: byte-identical forwarding, event order, no buffering, aggregation, usage.

use std::time::{Duration, Instant};

use bridge_store::UsageQuery;
use futures_util::StreamExt;

use crate::support::*;

const CAPTURES: &[&str] = &[
    "codex-exec__s1-t1__r01__POST-v1-responses.json",
    "codex-exec__s1-t3-resume-tool__r02__POST-v1-responses.json",
    "opencode-openai-builtin__s1-t1__r02__POST-v1-responses.json",
    "opencode-openai-builtin__s1-t3-session-tool__r02__POST-v1-responses.json",
];

#[tokio::test]
async fn capture_bodies_reach_the_upstream_byte_for_byte_and_events_come_back_in_order() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    for (i, name) in CAPTURES.iter().enumerate() {
        let body = capture_body(name);
        let reply = sse_reply("pong", 1000, Some(0));
        let expected: Vec<String> = reply.iter().map(|(_, b)| String::from_utf8(b.to_vec()).unwrap()).collect();
        upstream.push(Reply::Sse(reply));
        let resp = client()
            .post(bridge.url("/v1/responses"))
            .header("authorization", "Bearer sk-client")
            .header("session-id", "ses_1")
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        assert_eq!(resp.headers()["x-request-id"], "up-123", "upstream headers are passed back");
        let got = resp.bytes().await.unwrap();
        assert_eq!(split_events(&got), expected, "{name}: every event, in order, unchanged");
        let seen = &upstream.seen()[i];
        assert_eq!(seen.path, "/v1/responses");
        assert!(seen.body == body, "{name}: the upstream body differs from the client's bytes");
        assert_eq!(seen.headers["authorization"], "Bearer sk-client", "passthrough keeps the client's credential");
        // Affinity headers follow the cache identity (here the capture's own key), not a conflicting header.
        let key = serde_json::from_slice::<serde_json::Value>(&body).unwrap()["prompt_cache_key"].clone();
        assert_eq!(seen.headers["session-id"], key.as_str().unwrap(), "{name}");
    }
    bridge.stop().await;
}

#[tokio::test]
async fn events_are_forwarded_without_buffering() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let mut parts = sse_reply("pong", 10, Some(0));
    parts[1].0 = Duration::from_millis(500);
    upstream.push(Reply::Sse(parts));
    let resp = client()
        .post(bridge.url("/v1/responses"))
        .body(r#"{"model":"gpt-5.5","stream":true,"input":"hi"}"#)
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    let first_seen_at = Instant::now();
    assert!(String::from_utf8_lossy(&first).starts_with("event: response.created"), "{first:?}");
    while stream.next().await.is_some() {}
    let sent = upstream.state.sent_at.lock().unwrap().clone();
    let second_sent_at = sent.iter().find(|(r, p, _)| *r == 0 && *p == 1).unwrap().2;
    assert!(first_seen_at < second_sent_at, "the client had the first event only after the upstream sent the second");
    bridge.stop().await;
}

#[tokio::test]
async fn stream_false_gets_one_aggregated_object_and_usage_rows_keep_missing_fields_missing() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    upstream.push(Reply::Sse(sse_reply("hello", 2048, None)));
    let resp = client()
        .post(bridge.url("/v1/responses"))
        .body(r#"{"model":"gpt-5.5","stream":false,"input":"hi","prompt_cache_key":"k1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["id"], "resp_1");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["content"][0]["text"], "hello", "output filled from output_item.done: {v}");
    assert_eq!(v["usage"]["input_tokens"], 2048);
    let sent: serde_json::Value = serde_json::from_slice(&upstream.seen()[0].body).unwrap();
    assert_eq!(sent["stream"], true, "the upstream is always asked for a stream");

    upstream.push(Reply::Sse(sse_reply("again", 4096, Some(1024))));
    let resp = client()
        .post(bridge.url("/v1/responses"))
        .body(r#"{"model":"gpt-5.5","stream":true,"input":"hi","prompt_cache_key":"k1"}"#)
        .send()
        .await
        .unwrap();
    resp.bytes().await.unwrap();
    bridge.settle().await;
    let rows = bridge.state.store.usage(&UsageQuery::default()).await.unwrap();
    assert_eq!(rows.len(), 2);
    let (streamed, aggregated) = (&rows[0], &rows[1]);
    assert!(streamed.streamed && !aggregated.streamed);
    assert_eq!(streamed.input_tokens, Some(4096));
    assert_eq!(streamed.cached_tokens, Some(1024));
    assert_eq!(aggregated.input_tokens, Some(2048));
    assert_eq!(aggregated.cached_tokens, None, "a field the upstream did not send is missing, not 0");
    assert_eq!(aggregated.reasoning_tokens, None);
    assert_eq!(aggregated.output_tokens, Some(3));
    assert_eq!(streamed.cache_key.as_deref(), Some("k1"));
    assert_eq!(streamed.model.as_deref(), Some("gpt-5.5"));

    let metrics = client().get(bridge.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"codex_bridge_tokens_total{kind="input",model="gpt-5.5"} 6144"#), "{metrics}");
    assert!(metrics.contains(r#"codex_bridge_tokens_total{kind="cached",model="gpt-5.5"} 1024"#), "{metrics}");
    assert!(metrics.contains(r#"codex_bridge_usage_missing_total{field="cached"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"codex_bridge_requests_total{route="/v1/responses",status="200"} 2"#), "{metrics}");
    assert!(metrics.contains("codex_bridge_overhead_seconds_count"), "{metrics}");
    assert!(metrics.contains("codex_bridge_ttfb_seconds_count"), "{metrics}");
    bridge.stop().await;
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_still_gets_its_usage_recorded() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let mut parts = sse_reply("pong", 3000, Some(2048));
    parts[2].0 = Duration::from_millis(300);
    upstream.push(Reply::Sse(parts));
    let resp = client()
        .post(bridge.url("/v1/responses"))
        .body(r#"{"model":"m","stream":true,"input":"hi"}"#)
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        bridge.state.recorder.flush().await;
        let rows = bridge.state.store.usage(&UsageQuery::default()).await.unwrap();
        if let Some(row) = rows.first() {
            assert_eq!(row.input_tokens, Some(3000));
            assert_eq!(row.cached_tokens, Some(2048));
            break;
        }
        assert!(Instant::now() < deadline, "usage row never written after the client left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(*upstream.state.finished.lock().unwrap(), 1, "the upstream stream was read to its end");
    bridge.stop().await;
}

#[tokio::test]
async fn codex_alias_route_uses_the_same_handler() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let body = capture_body("codex-exec-chatgptauth__s1-t1__r14__POST-backend-api-codex-responses.json");
    let resp = client().post(bridge.url("/backend-api/codex/responses")).body(body.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    assert!(upstream.seen()[0].body == body);
    assert_eq!(upstream.seen()[0].path, "/v1/responses", "the bridge appends /responses to its upstream base");
    bridge.stop().await;
}

#[tokio::test]
async fn prompt_cache_key_alias_is_normalised_in_place() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let resp = client()
        .post(bridge.url("/v1/responses"))
        .body(r#"{"model":"m","promptCacheKey":"abc","stream":true,"input":[]}"#)
        .send()
        .await
        .unwrap();
    resp.bytes().await.unwrap();
    assert_eq!(
        upstream.seen()[0].body,
        r#"{"model":"m","prompt_cache_key":"abc","stream":true,"input":[]}"#.as_bytes()
    );
    bridge.stop().await;
}

#[tokio::test]
async fn api_key_mode_replaces_the_client_credential() {
    let upstream = ScriptedUpstream::start().await;
    let bridge =
        TestBridge::with(&upstream.url(), Options { auth: bridge_core::UpstreamAuth::ApiKey, ..Options::default() })
            .await;
    let resp = client()
        .post(bridge.url("/v1/responses"))
        .header("authorization", "Bearer client-junk")
        .body(r#"{"model":"m","stream":true,"input":"x"}"#)
        .send()
        .await
        .unwrap();
    resp.bytes().await.unwrap();
    assert_eq!(upstream.seen()[0].headers["authorization"], "Bearer sk-bridge-owned-key");
    bridge.stop().await;
}

#[tokio::test]
async fn models_come_from_config_or_upstream() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::with(
        &upstream.url(),
        Options { file: "models = [\"gpt-5.5\", \"gpt-5.4-mini\"]".into(), ..Options::default() },
    )
    .await;
    let v: serde_json::Value = client().get(bridge.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["data"][1]["id"], "gpt-5.4-mini");
    bridge.stop().await;

    let bridge = TestBridge::start(&upstream.url()).await;
    upstream.push(Reply::Status {
        status: 200,
        headers: vec![],
        body: r#"{"object":"list","data":[{"id":"up-model"}]}"#.into(),
    });
    let v: serde_json::Value = client().get(bridge.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["data"][0]["id"], "up-model");
    assert_eq!(upstream.seen()[0].path, "/v1/models");
    bridge.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_lets_an_in_flight_stream_finish() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let mut parts = sse_reply("slow", 10, Some(0));
    parts[3].0 = Duration::from_millis(400);
    upstream.push(Reply::Sse(parts));
    let resp = client()
        .post(bridge.url("/v1/responses"))
        .body(r#"{"model":"m","stream":true,"input":"x"}"#)
        .send()
        .await
        .unwrap();
    let reader = tokio::spawn(async move { resp.bytes().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let state = bridge.state.clone();
    bridge.stop().await;
    let body = reader.await.unwrap();
    assert!(String::from_utf8_lossy(&body).contains("response.completed"), "the stream was cut by shutdown");
    let rows = state.store.usage(&UsageQuery::default()).await.unwrap();
    assert_eq!(rows.len(), 1, "the usage row was flushed before exit");
}
