//! Tests of the benchmark machinery itself (the numbers live in docs/BENCHMARKS.md, not in tests).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod turn_overhead;

use bridge_bench::{cache, workload};

/// A small replay through the real emulator and bridge: the accounting adds up and the limit bounds both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_bench_accounts_tokens_and_the_limit_bounds_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios: Vec<_> = ["multi-turn", "orchestrator"].iter().map(|n| workload::scenario(n, 7).unwrap()).collect();
    let transports = [cache::ClientTransport::Http, cache::ClientTransport::Websocket];
    let routing = [codex_emulator::RoutingMode::SessionHeader];
    let results = cache::run(&scenarios, &routing, &transports, 0.37, 0, dir.path(), "").await.unwrap();
    assert_eq!(results.len(), 4);
    let http: Vec<_> = results.iter().filter(|r| r.transport == "http").collect();
    assert!(http.iter().all(|r| r.bridge_reached));
    let ws_direct = results.iter().find(|r| r.transport == "websocket" && r.scenario == "multi-turn").unwrap();
    assert_eq!(
        ws_direct.direct_cached, ws_direct.limit_cached,
        "one socket per session reaches the limit: {ws_direct:?}"
    );
    // Over HTTP at the calibrated affinity, the bridge's socket per conversation reaches the limit on the
    // multi-turn session where client-direct HTTP does not.
    assert_eq!(http[0].bridge_cached, http[0].limit_cached, "{:?}", http[0]);
    assert!(http[0].direct_cached < http[0].limit_cached, "{:?}", http[0]);
    let results = http.into_iter().cloned().collect::<Vec<_>>();
    for r in &results {
        assert!(r.input_tokens > 100_000, "{r:?}");
        assert!(r.limit_cached <= r.input_tokens, "{r:?}");
        assert!(
            r.direct_cached <= r.limit_cached && r.bridge_cached <= r.limit_cached,
            "the limit bounds every path: {r:?}"
        );
    }

    let table = cache::table(&results);
    assert!(table.contains("multi-turn") && table.contains("orchestrator"), "{table}");
}

/// The transport replay: a live conversation over HTTP and over one WebSocket sends the same input, has the
/// same limit, and the WebSocket run is served from one machine (at the limit); the throughput run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_replays_send_the_same_conversation_and_one_socket_reaches_the_limit() {
    use bridge_bench::transport;
    let scenario = workload::scenario("multi-turn", 3).unwrap();
    let mut turns = transport::live_script(&scenario).unwrap();
    assert_eq!(turns.len(), 20);
    assert_eq!(turns[0].new_items.len(), 3, "startup (2 items) + the first user message");
    assert!(turns[1..].iter().all(|t| t.new_items.len() == 1), "one user message per later turn");
    turns.truncate(8);
    let config = codex_emulator::EmulatorConfig {
        tokenizer: codex_emulator::TokenizerMode::Fast,
        http_affinity: 0.0,
        ..Default::default()
    };
    let emu = codex_emulator::spawn(config).await.unwrap();
    let client = bridge_bench::load::client(1).unwrap();
    let http = transport::replay_http(&client, &emu.base_url(), &turns).await.unwrap();
    let http_limit = emu.state().limit();
    emu.state().reset();
    let ws = transport::replay_ws(&emu.base_url(), &turns).await.unwrap();
    let ws_limit = emu.state().limit();
    let sum = |u: &[transport::TurnUsage], f: fn(&transport::TurnUsage) -> u64| u.iter().map(f).sum::<u64>();
    let (http_in, ws_in) = (sum(&http, |u| u.input_tokens), sum(&ws, |u| u.input_tokens));
    // the reasoning item's seeded ciphertext may differ by a few bytes between runs
    assert!(http_in.abs_diff(ws_in) * 1000 < http_in, "{http_in} vs {ws_in}");
    assert_eq!(http_limit.cached_tokens.abs_diff(ws_limit.cached_tokens) % 128, 0);
    assert!(http_limit.cached_tokens.abs_diff(ws_limit.cached_tokens) <= 128 * 8, "{http_limit:?} vs {ws_limit:?}");
    assert_eq!(sum(&ws, |u| u.cached_tokens), ws_limit.cached_tokens, "one socket, one machine: at the limit");
    assert!(sum(&http, |u| u.cached_tokens) < http_limit.cached_tokens, "affinity 0 scatters HTTP");
    assert_eq!(emu.state().stats().ws.with_previous_response_id, 7);
    emu.shutdown().await;

    let report = transport::throughput(2, 3, 1, 500).await.unwrap();
    assert_eq!(report.phases.len(), 2);
    assert!(report.phases.iter().all(|p| p.turns == 6 && p.turns_per_s > 0.0), "{report:?}");
}
