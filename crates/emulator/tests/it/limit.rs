//! The limit calculator on three hand-checked token traces, the JSONL parser, and `/emulator/limit`.

use codex_emulator::tokenizer::Tokenizer;
use codex_emulator::{CacheRules, TokenizerMode, TraceRequest, limit_for_tokens, parse_trace};
use serde_json::{Value, json};

use crate::common::{body, fast, long_text, post_api, read_sse, start, user};

fn req(ts_ms: u64, ns: &str, tokens: Vec<u32>) -> TraceRequest {
    TraceRequest { ts_ms, namespace: ns.into(), tokens }
}

fn range(a: u32, b: u32) -> Vec<u32> {
    (a..b).collect()
}

#[test]
fn trace_one_repeat_is_served_in_blocks() {
    // 1300 tokens twice: the second can be served floor(1300/128)*128 = 1280 tokens.
    let r = limit_for_tokens(&[req(0, "m", range(0, 1300)), req(1000, "m", range(0, 1300))], &CacheRules::default());
    assert_eq!((r.requests, r.input_tokens, r.cached_tokens), (2, 2600, 1280));
    assert_eq!(r.per_request, [0, 1280]);
    assert!((r.hit_ratio - 1280.0 / 2600.0).abs() < 1e-12);
}

#[test]
fn trace_two_idle_ttl_expires() {
    // given out of order: replayed by time. t=0 write; t=6 min idle > 5 min → miss (rewrite);
    // t=6 min + 1 s → hit 1280.
    let a = range(0, 1300);
    let trace = [req(361_000, "m", a.clone()), req(0, "m", a.clone()), req(360_000, "m", a)];
    let r = limit_for_tokens(&trace, &CacheRules::default());
    assert_eq!(r.per_request, [0, 0, 1280]);
    assert_eq!(r.cached_tokens, 1280);
}

#[test]
fn trace_three_branches_minimum_and_namespaces() {
    let a = range(0, 1300);
    let mut b = range(0, 1100);
    b.extend(range(50_000, 50_400)); // shares 1100 tokens = 8 full blocks = 1024
    let c = range(0, 1000); // under 1024: never cached
    let trace = [
        req(0, "m", a.clone()),
        req(1000, "m", b),
        req(2000, "m", c),
        req(3000, "other", a.clone()),
        req(4000, "m", a),
    ];
    let r = limit_for_tokens(&trace, &CacheRules::default());
    assert_eq!(r.per_request, [0, 1024, 0, 0, 1280]);
    assert_eq!(r.input_tokens, 1300 + 1500 + 1000 + 1300 + 1300);
    assert_eq!(r.cached_tokens, 2304);
}

#[test]
fn jsonl_trace_parses_tokens_and_bodies() {
    let t = Tokenizer::new(TokenizerMode::Fast).unwrap();
    let tokens: Vec<u32> = (0..1300).collect();
    let text = format!(
        "{}\n\n{}\n{}\n{}\n",
        json!({"ts_ms": 0, "model": "m", "tokens": tokens}),
        json!({"ts_ms": 10, "model": "m", "tokens": tokens}),
        json!({"ts_ms": 20, "path": "/oauth/token", "body": {"grant_type": "x"}}),
        json!({"ts_ms": 30, "headers": [["session-id", "s"]], "body": body(vec![user("hi")])}),
    );
    let trace = parse_trace(&text, &t).unwrap();
    assert_eq!(trace.len(), 3);
    assert_eq!(trace[2].namespace, "gpt-5.5");
    assert_eq!(limit_for_tokens(&trace, &CacheRules::default()).cached_tokens, 1280);
    assert!(parse_trace("{bad", &t).unwrap_err().contains("line 1"));
}

#[tokio::test]
async fn limit_endpoint_over_the_request_log() {
    let emu = start(fast()).await;
    let b = body(vec![user(&long_text(6000, 'c'))]);
    for key in ["a", "b", "c"] {
        let mut b = b.clone();
        b["prompt_cache_key"] = json!(key);
        read_sse(post_api(&emu, &b, &[]).await).await;
    }
    // a rejected request is logged but not part of the limit
    let mut bad = b.clone();
    bad["previous_response_id"] = json!("resp_1");
    post_api(&emu, &bad, &[]).await;
    let limit: Value = reqwest::get(format!("{}/emulator/limit", emu.base_url())).await.unwrap().json().await.unwrap();
    let per: Vec<u64> = serde_json::from_value(limit["per_request"].clone()).unwrap();
    assert_eq!(per.len(), 3);
    assert_eq!(per[0], 0);
    assert!(per[1] > 1024 && per[1] == per[2]);
    let log: Value = reqwest::get(format!("{}/emulator/requests", emu.base_url())).await.unwrap().json().await.unwrap();
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log[0]["method"], "POST");
    assert_eq!(log[0]["path"], "/v1/responses");
    assert_eq!(log[0]["body"]["prompt_cache_key"], "a");
    assert!(log[0]["headers"].as_array().unwrap().iter().any(|h| h[0] == "authorization"));
    assert_eq!(log[3]["served"], false);
    emu.shutdown().await;
}
