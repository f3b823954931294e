//! Prompt-caching rules, at the token level (model API) and through HTTP usage.

use codex_emulator::model::{CacheModel, CacheRequest, Outcome};
use codex_emulator::{EmulatorConfig, RoutingMode};
use serde_json::json;

use crate::common::{body, fast, long_text, post_api, read_sse, start, user};

fn toks(range: std::ops::Range<u32>) -> Vec<u32> {
    range.collect()
}

fn serve(m: &mut CacheModel, tokens: &[u32], key: Option<&str>, now: u64) -> Outcome {
    m.serve(&CacheRequest { model: "gpt-5.5", tokens, prompt_cache_key: key, session_id: None }, now)
}

fn model() -> CacheModel {
    CacheModel::new(&EmulatorConfig::default())
}

#[test]
fn below_1024_tokens_never_hits() {
    let mut m = model();
    let p = toks(0..1000);
    for t in 0..3 {
        let o = serve(&mut m, &p, Some("k"), t);
        assert_eq!((o.cached_tokens, o.write_tokens), (0, 0));
    }
    // a shared prefix under 1024 tokens is not a hit either (896 = 7 blocks)
    let long = toks(0..1300);
    serve(&mut m, &long, Some("k"), 10);
    let mut other = toks(0..1000);
    other.extend(5000..5400);
    assert_eq!(serve(&mut m, &other, Some("k"), 11).cached_tokens, 0);
}

#[test]
fn hits_come_in_128_token_steps() {
    let mut m = model();
    let a = toks(0..1300);
    assert_eq!(serve(&mut m, &a, Some("k"), 0).cached_tokens, 0);
    assert_eq!(serve(&mut m, &a, Some("k"), 1).cached_tokens, 1280);
    let mut b = toks(0..1200);
    b.extend(9000..9300);
    assert_eq!(serve(&mut m, &b, Some("k"), 2).cached_tokens, 1152);
}

#[test]
fn same_key_and_prefix_same_machine_and_writes() {
    let mut m = model();
    let a = toks(0..1300);
    let first = serve(&mut m, &a, Some("k"), 0);
    assert_eq!((first.cached_tokens, first.write_tokens), (0, 1280));
    let second = serve(&mut m, &a, Some("k"), 1);
    assert_eq!(second.machine, first.machine);
    assert_eq!((second.cached_tokens, second.write_tokens), (1280, 0));
    let longer = toks(0..1500);
    let third = serve(&mut m, &longer, Some("k"), 2);
    assert_eq!((third.cached_tokens, third.write_tokens), (1280, 128));
}

#[test]
fn docs_routing_spreads_keys_over_machines() {
    let m = model();
    let a = toks(0..1300);
    let machines: std::collections::BTreeSet<usize> = (0..64)
        .map(|i| {
            let key = format!("key-{i}");
            m.route(&CacheRequest { model: "gpt-5.5", tokens: &a, prompt_cache_key: Some(&key), session_id: None }).1
        })
        .collect();
    assert!(machines.len() >= 8, "64 keys over 16 machines hit only {machines:?}");
    // two keys on different machines do not share the cache
    let mut m = model();
    let (k1, k2) = (0..64)
        .map(|i| format!("key-{i}"))
        .collect::<Vec<_>>()
        .windows(2)
        .find_map(|w| {
            let r = |k: &str| {
                m.route(&CacheRequest { model: "gpt-5.5", tokens: &a, prompt_cache_key: Some(k), session_id: None }).1
            };
            (r(&w[0]) != r(&w[1])).then(|| (w[0].clone(), w[1].clone()))
        })
        .unwrap();
    serve(&mut m, &a, Some(&k1), 0);
    assert_eq!(serve(&mut m, &a, Some(&k1), 1).cached_tokens, 1280);
    assert_eq!(serve(&mut m, &a, Some(&k2), 2).cached_tokens, 0);
}

#[test]
fn session_header_routing_follows_the_header() {
    let config = EmulatorConfig { routing: RoutingMode::SessionHeader, ..EmulatorConfig::default() };
    let m = CacheModel::new(&config);
    let a = toks(0..1300);
    let route = |key: &str, session: Option<&str>| {
        m.route(&CacheRequest { model: "gpt-5.5", tokens: &a, prompt_cache_key: Some(key), session_id: session }).1
    };
    // with the header, the key does not matter
    for i in 0..32 {
        assert_eq!(route(&format!("key-{i}"), Some("sess-1")), route("other", Some("sess-1")));
    }
    // without it, the key decides (equals the header value used as affinity)
    assert_eq!(route("sess-1", None), route("anything", Some("sess-1")));
}

#[test]
fn overflow_above_15_requests_per_minute() {
    let mut m = model();
    let a = toks(0..1300);
    let mut outcomes = Vec::new();
    for i in 0..16u64 {
        outcomes.push(serve(&mut m, &a, Some("k"), i * 1000));
    }
    assert!(outcomes[..15].iter().all(|o| !o.overflowed && o.machine == outcomes[0].primary));
    assert_eq!(outcomes[14].cached_tokens, 1280);
    let o = outcomes[15];
    assert!(o.overflowed);
    assert_ne!(o.machine, o.primary);
    assert_eq!(o.cached_tokens, 0, "the overflow machine is cold");
    // a minute after the first requests the window has room again
    let later = serve(&mut m, &a, Some("k"), 75_000);
    assert!(!later.overflowed);
    assert_eq!(later.cached_tokens, 1280);
}

#[test]
fn ttl_expiry_and_max_age_under_the_virtual_clock() {
    let mut m = model();
    let a = toks(0..1300);
    let min = 60_000;
    serve(&mut m, &a, Some("k"), 0);
    assert_eq!(serve(&mut m, &a, Some("k"), 4 * min).cached_tokens, 1280);
    // idle 5 min + 1 ms since the last use: gone
    assert_eq!(serve(&mut m, &a, Some("k"), 9 * min + 1).cached_tokens, 0);
    // max age 1 h: touched every 4 min, still dropped once older than an hour
    let t0 = 20 * min;
    serve(&mut m, &a, Some("k"), t0);
    let mut t = t0;
    while t + 4 * min <= t0 + 60 * min {
        t += 4 * min;
        assert_eq!(serve(&mut m, &a, Some("k"), t).cached_tokens, 1280, "at {t}");
    }
    assert_eq!(serve(&mut m, &a, Some("k"), t0 + 60 * min + 1).cached_tokens, 0);
}

#[test]
fn lru_capacity_evicts_least_recently_used_tails() {
    let config = EmulatorConfig { machines: 1, machine_capacity_tokens: Some(24 * 128), ..EmulatorConfig::default() };
    let mut m = CacheModel::new(&config);
    let a = toks(0..2048);
    let b = toks(100_000..102_048);
    serve(&mut m, &a, Some("k"), 0);
    serve(&mut m, &b, Some("k"), 1);
    // 32 blocks written into 24: the 8 least recently used (the tail of `a`) are gone
    assert_eq!(serve(&mut m, &a, Some("k"), 2).cached_tokens, 1024);
    let config = EmulatorConfig { machines: 1, machine_capacity_tokens: Some(16 * 128), ..EmulatorConfig::default() };
    let mut m = CacheModel::new(&config);
    serve(&mut m, &a, Some("k"), 0);
    serve(&mut m, &b, Some("k"), 1);
    assert_eq!(serve(&mut m, &a, Some("k"), 2).cached_tokens, 0);
}

#[tokio::test]
async fn usage_reports_cached_and_written_tokens_over_http() {
    let emu = start(fast()).await;
    let text = long_text(6000, 'a');
    let b1 = body(vec![user(&text)]);
    let u1 = read_sse(post_api(&emu, &b1, &[]).await).await.usage();
    let input = u1["input_tokens"].as_u64().unwrap();
    assert!(input > 1024);
    let cacheable = input / 128 * 128;
    assert_eq!(u1["input_tokens_details"], json!({"cached_tokens": 0, "cache_write_tokens": cacheable}));
    let u2 = read_sse(post_api(&emu, &b1, &[]).await).await.usage();
    assert_eq!(u2["input_tokens_details"], json!({"cached_tokens": cacheable, "cache_write_tokens": 0}));
    assert_eq!(u2["total_tokens"], u2["input_tokens"].as_u64().unwrap() + u2["output_tokens"].as_u64().unwrap());
    let stats: serde_json::Value =
        reqwest::get(format!("{}/emulator/stats", emu.base_url())).await.unwrap().json().await.unwrap();
    assert_eq!(stats["totals"]["requests"], 2);
    assert_eq!(stats["totals"]["cached_tokens"], cacheable);
    assert_eq!(stats["per_key"]["k1"]["write_tokens"], cacheable);
    assert!(stats["tokenizer"].as_str().unwrap().starts_with("fast (estimate"));
    let machines = stats["per_machine"].as_array().unwrap();
    assert_eq!(machines.len(), 16);
    assert_eq!(machines.iter().map(|m| m["requests"].as_u64().unwrap()).sum::<u64>(), 2);
    emu.shutdown().await;

    let emu = start(codex_emulator::EmulatorConfig { report_cache_writes: false, ..fast() }).await;
    let u = read_sse(post_api(&emu, &b1, &[]).await).await.usage();
    assert_eq!(u["input_tokens_details"], json!({"cached_tokens": 0}));
    emu.shutdown().await;
}

#[tokio::test]
async fn virtual_time_header_drives_ttl_over_http() {
    let emu = start(fast()).await;
    let b = body(vec![user(&long_text(6000, 'b'))]);
    let at = |ms: u64| ms.to_string();
    let cached = |u: serde_json::Value| u["input_tokens_details"]["cached_tokens"].as_u64().unwrap();
    read_sse(post_api(&emu, &b, &[("x-emulator-time", &at(1_000_000))]).await).await;
    let u = read_sse(post_api(&emu, &b, &[("x-emulator-time", &at(1_000_000 + 299_000))]).await).await.usage();
    assert!(cached(u) > 0);
    let u =
        read_sse(post_api(&emu, &b, &[("x-emulator-time", &at(1_000_000 + 299_000 + 300_001))]).await).await.usage();
    assert_eq!(cached(u), 0);
    assert!(emu.state().clock.is_virtual());
    // reset clears caches, log and stats
    let r = crate::common::client().post(format!("{}/emulator/reset", emu.base_url())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(emu.state().stats().totals.requests, 0);
    assert!(emu.state().requests().is_empty());
    emu.shutdown().await;
}
