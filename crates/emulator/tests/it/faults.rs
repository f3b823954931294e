//! Every fault kind, by header and by config: exact status, headers, body or event sequence.

use std::time::Instant;

use codex_emulator::{EmulatorConfig, FaultSpec};
use serde_json::{Value, json};

use crate::common::{body, fast, post_api, read_sse, start, user};

const TEXT_EVENTS: &[&str] = &[
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
];

#[tokio::test]
async fn http_error_faults() {
    let emu = start(fast()).await;
    let b = body(vec![user("hi")]);
    let r = post_api(&emu, &b, &[("x-emulator-fault", "status=429;retry_after=2")]).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": {"message": "Rate limit reached. Please try again later.", "type": "rate_limit_exceeded", "param": null, "code": "rate_limit_exceeded"}})
    );
    for status in [500u16, 502, 503] {
        let r = post_api(&emu, &b, &[("x-emulator-fault", &format!("status={status}"))]).await;
        assert_eq!(r.status().as_u16(), status);
        assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "server_error");
    }
    let r = post_api(&emu, &b, &[("x-emulator-fault", "status=503;code=server_is_overloaded;retry_after=1")]).await;
    assert_eq!((r.status().as_u16(), r.headers()["retry-after"].to_str().unwrap()), (503, "1"));
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "server_is_overloaded");
    let r =
        post_api(&emu, &b, &[("x-emulator-fault", "usage_limit;resets_in=600"), ("x-emulator-time", "1800000000000")])
            .await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": {"type": "usage_limit_reached", "plan_type": "plus", "resets_at": 1_800_000_600u64, "message": "The usage limit has been reached"}})
    );
    let r = post_api(&emu, &b, &[("x-emulator-fault", "expired")]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "token_expired");
    let r = post_api(&emu, &b, &[("x-emulator-fault", "nonsense=1")]).await;
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"]["message"].as_str().unwrap().contains("x-emulator-fault"));
    let stats = emu.state().stats();
    assert_eq!((stats.faulted, stats.totals.requests), (7, 0), "immediate faults never reach the cache");
    emu.shutdown().await;
}

#[tokio::test]
async fn stream_faults() {
    let emu = start(fast()).await;
    let b = body(vec![user("hi")]);
    // cut after 3 events: the connection is aborted, no response.completed
    let sse = read_sse(post_api(&emu, &b, &[("x-emulator-fault", "cut_after=3")]).await).await;
    assert_eq!(sse.names(), &TEXT_EVENTS[..3]);
    assert!(sse.error);
    // response.failed at event 2
    let sse = read_sse(post_api(&emu, &b, &[("x-emulator-fault", "fail_at=2;code=server_is_overloaded")]).await).await;
    assert_eq!(sse.names(), ["response.created", "response.in_progress", "response.failed"]);
    assert!(!sse.error);
    let failed = &sse.last()["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "server_is_overloaded");
    // stall 300 ms before event 1
    let t = Instant::now();
    let sse = read_sse(post_api(&emu, &b, &[("x-emulator-fault", "stall_ms=300;at=1")]).await).await;
    assert!(t.elapsed().as_millis() >= 300);
    assert_eq!(sse.names(), TEXT_EVENTS);
    // slow bytes: same events, written 16 bytes at a time
    let plain = read_sse(post_api(&emu, &b, &[]).await).await;
    let slow = read_sse(post_api(&emu, &b, &[("x-emulator-fault", "slow_bytes=16;delay_ms=1")]).await).await;
    assert_eq!(slow.names(), plain.names());
    assert_eq!(slow.usage()["input_tokens"], plain.usage()["input_tokens"]);
    emu.shutdown().await;
}

#[tokio::test]
async fn configured_fault_limited_to_first_request() {
    let config = EmulatorConfig { faults: vec![FaultSpec::parse("status=500;times=1").unwrap()], ..fast() };
    let emu = start(config).await;
    let b = body(vec![user("hi")]);
    assert_eq!(post_api(&emu, &b, &[]).await.status(), 500);
    let sse = read_sse(post_api(&emu, &b, &[]).await).await;
    assert_eq!(sse.names(), TEXT_EVENTS);
    // header faults with times=1 are counted per spec text
    let h = [("x-emulator-fault", "status=503;times=1;id=retry-a")];
    assert_eq!(post_api(&emu, &b, &h).await.status(), 503);
    assert_eq!(post_api(&emu, &b, &h).await.status(), 200);
    // runtime fault list via the admin endpoint, cleared by reset
    let c = crate::common::client();
    let r = c
        .post(format!("{}/emulator/faults", emu.base_url()))
        .json(&json!({"faults": ["status=502"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"faults": ["status=502"]}));
    assert_eq!(post_api(&emu, &b, &[]).await.status(), 502);
    c.post(format!("{}/emulator/reset", emu.base_url())).send().await.unwrap();
    assert_eq!(post_api(&emu, &b, &[]).await.status(), 200);
    emu.shutdown().await;
}
