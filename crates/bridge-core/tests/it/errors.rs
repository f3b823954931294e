//! Error cases: each returns its status and an OpenAI-shaped body; malformed input never causes a 5xx.

use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as PtConfig, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

use crate::support::*;

async fn error_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.unwrap();
    let e = &v["error"];
    assert!(
        e["message"].is_string() && e.get("type").is_some() && e.get("code").is_some() && e.get("param").is_some(),
        "{v}"
    );
    (status, v)
}

#[tokio::test]
async fn malformed_json_is_a_400_naming_the_path() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    for (body, param) in [
        (r#"{"model":"m","input":[{"role":"user"}, 42]}"#, Value::from("input[1]")),
        (r#"{"model":"m","stream":"yes"}"#, Value::from("stream")),
        (r#"{"input":"x"}"#, Value::from("model")),
        (r#"{"model":"m","input":["#, Value::Null),
    ] {
        let (status, v) = error_of(client().post(bridge.url("/v1/responses")).body(body).send().await.unwrap()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(v["error"]["param"], param, "{body}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    assert!(upstream.seen().is_empty(), "nothing malformed reaches the upstream");
    bridge.stop().await;
}

#[tokio::test]
async fn oversized_bodies_get_413_and_the_default_fits_400k_tokens() {
    let upstream = ScriptedUpstream::start().await;
    let bridge =
        TestBridge::with(&upstream.url(), Options { file: "body_limit_bytes = 1000".into(), ..Options::default() })
            .await;
    let big = format!(r#"{{"model":"m","input":"{}"}}"#, "x".repeat(2000));
    let (status, v) =
        error_of(client().post(bridge.url("/v1/responses")).body(big.clone()).send().await.unwrap()).await;
    assert_eq!(status, 413);
    assert_eq!(v["error"]["code"], "request_too_large");
    // Without a content-length (chunked), the limit holds too.
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(big.into_bytes())]);
    let resp =
        client().post(bridge.url("/v1/responses")).body(reqwest::Body::wrap_stream(stream)).send().await.unwrap();
    assert_eq!(error_of(resp).await.0, 413);
    bridge.stop().await;

    // ~400k tokens of conversation (about 1.6 MB of text in 200 messages) passes the default limit.
    let bridge = TestBridge::start(&upstream.url()).await;
    let message = serde_json::json!({"role": "user", "content": "word ".repeat(1600)});
    // It carries its own key, so the identity engine leaves it byte-identical.
    let body =
        serde_json::json!({"model": "m", "stream": true, "prompt_cache_key": "ses_big", "input": vec![message; 200]})
            .to_string();
    assert!(body.len() > 1_600_000);
    let resp = client().post(bridge.url("/v1/responses")).body(body.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    assert_eq!(upstream.seen().last().unwrap().body.len(), body.len());
    bridge.stop().await;
}

#[tokio::test]
async fn upstream_errors_keep_status_and_message() {
    let upstream = ScriptedUpstream::start().await;
    let bridge =
        TestBridge::with(&upstream.url(), Options { file: "[upstream]\nmax_retries = 0".into(), ..Options::default() })
            .await;
    let cases = [
        (400, r#"{"detail":"Instructions are not valid"}"#, "Instructions are not valid"),
        (
            404,
            r#"{"error":{"message":"model not found","type":"invalid_request_error","code":"model_not_found","param":"model"}}"#,
            "model not found",
        ),
        (503, "upstream overloaded", "upstream returned HTTP 503: upstream overloaded"),
        (500, "", "upstream returned HTTP 500"),
    ];
    for (status, body, message) in cases {
        upstream.push(Reply::Status {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.into(),
        });
        let resp = client()
            .post(bridge.url("/v1/responses"))
            .body(r#"{"model":"m","input":"x","stream":true}"#)
            .send()
            .await
            .unwrap();
        let (got, v) = error_of(resp).await;
        assert_eq!(got, status, "{body}");
        assert_eq!(v["error"]["message"], message, "{body}");
    }
    bridge.stop().await;
}

#[tokio::test]
async fn retry_policy_before_the_first_byte() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    upstream.push(Reply::Status { status: 503, headers: vec![], body: "busy".into() });
    upstream.push(Reply::Status { status: 429, headers: vec![("retry-after", "0".into())], body: "slow down".into() });
    upstream.push(Reply::Sse(sse_reply("ok", 5, None)));
    let resp = client()
        .post(bridge.url("/v1/responses"))
        .body(r#"{"model":"m","input":"x","stream":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(String::from_utf8_lossy(&resp.bytes().await.unwrap()).contains("response.completed"));
    assert_eq!(upstream.seen().len(), 3);
    assert_eq!(bridge.state.metrics.counter("codex_bridge_upstream_retries_total", &[]), 2);

    // A 429 without Retry-After is not retried: the client sees it.
    upstream.push(Reply::Status {
        status: 429,
        headers: vec![],
        body: r#"{"error":{"type":"usage_limit_reached","resets_at":1}}"#.into(),
    });
    let resp = client()
        .post(bridge.url("/v1/responses"))
        .body(r#"{"model":"m","input":"x","stream":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(upstream.seen().len(), 4);
    bridge.stop().await;
}

#[tokio::test]
async fn unreachable_upstream_is_a_502() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bridge = TestBridge::with(
        &format!("http://127.0.0.1:{port}/v1"),
        Options { file: "[upstream]\nmax_retries = 1".into(), ..Options::default() },
    )
    .await;
    let (status, v) =
        error_of(client().post(bridge.url("/v1/responses")).body(r#"{"model":"m","input":"x"}"#).send().await.unwrap())
            .await;
    assert_eq!(status, 502);
    assert_eq!(v["error"]["code"], "upstream_unreachable");
    assert!(v["error"]["message"].as_str().unwrap().contains(&port.to_string()));
    bridge.stop().await;
}

#[tokio::test]
async fn a_stalled_upstream_is_a_504_before_the_first_byte_and_an_sse_error_after() {
    let upstream = ScriptedUpstream::start().await;
    let file = "[upstream]\nidle_timeout_ms = 300\nmax_retries = 0".to_owned();
    let bridge = TestBridge::with(&upstream.url(), Options { file, ..Options::default() }).await;
    upstream.push(Reply::StallHeaders(Duration::from_secs(3)));
    let (status, v) = error_of(
        client()
            .post(bridge.url("/v1/responses"))
            .body(r#"{"model":"m","input":"x","stream":true}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 504);
    assert_eq!(v["error"]["code"], "upstream_timeout");

    let mut parts = sse_reply("x", 5, None);
    parts[2].0 = Duration::from_secs(3);
    upstream.push(Reply::Sse(parts));
    let resp = client()
        .post(bridge.url("/v1/responses"))
        .body(r#"{"model":"m","input":"x","stream":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let events = split_events(&resp.bytes().await.unwrap());
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events[2].starts_with("event: error\ndata: "), "{events:?}");
    let data: Value = serde_json::from_str(events[2].trim_start_matches("event: error\ndata: ").trim()).unwrap();
    assert_eq!(data["type"], "error");
    assert_eq!(data["code"], "idle_timeout");
    bridge.stop().await;
}

/// Random bytes, truncated JSON and wrong types: never a panic, never a 5xx, the server stays up.
#[tokio::test]
async fn survives_a_thousand_malformed_requests() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let valid = String::from_utf8(capture_body("codex-exec__s1-t1__r01__POST-v1-responses.json")).unwrap();
    let mut runner = TestRunner::new_with_rng(PtConfig::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]));
    let wrong_types = ["1", "\"s\"", "[]", "{}", "true", "null", "-3.5", "[1,{}]"];
    let fields = [
        "model",
        "input",
        "stream",
        "store",
        "tools",
        "include",
        "reasoning",
        "prompt_cache_key",
        "max_output_tokens",
        "metadata",
    ];
    let client = client();
    for i in 0..1000usize {
        let body: Vec<u8> = match i % 3 {
            0 => proptest::collection::vec(any::<u8>(), 0..300).new_tree(&mut runner).unwrap().current(),
            1 => {
                let cut = (0..valid.len()).new_tree(&mut runner).unwrap().current();
                valid.as_bytes()[..cut].to_vec()
            }
            _ => {
                let f = fields[i % fields.len()];
                let t = wrong_types[(i / 3) % wrong_types.len()];
                let input = if f == "input" {
                    String::new()
                } else {
                    r#","input":[{"role":"user","content":"hi"}]"#.to_owned()
                };
                let model = if f == "model" { format!(r#""model":{t}"#) } else { r#""model":"m""#.to_owned() };
                let extra = if f == "model" || f == "input" { String::new() } else { format!(r#","{f}":{t}"#) };
                let input = if f == "input" { format!(r#","input":{t}"#) } else { input };
                format!("{{{model}{input}{extra}}}").into_bytes()
            }
        };
        let resp = client.post(bridge.url("/v1/responses")).body(body.clone()).send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert!(status < 500, "request {i} got {status}: {text} for {}", String::from_utf8_lossy(&body));
    }
    // Whatever was valid got through to the upstream; the server is still healthy.
    let health = client.get(bridge.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    bridge.stop().await;
}
