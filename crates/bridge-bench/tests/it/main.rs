//! Tests of the benchmark machinery itself (the numbers live in docs/BENCHMARKS.md, not in tests).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bridge_bench::{cache, workload};

/// A small replay through the real emulator and bridge: the accounting adds up and the limit bounds both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_bench_accounts_tokens_and_the_limit_bounds_both_paths() {
    let dir = tempfile::tempdir().unwrap();
    let scenarios: Vec<_> = ["multi-turn", "orchestrator"].iter().map(|n| workload::scenario(n, 7).unwrap()).collect();
    let results = cache::run(&scenarios, &[codex_emulator::RoutingMode::SessionHeader], dir.path(), "").await.unwrap();
    assert_eq!(results.len(), 2);
    for r in &results {
        assert!(r.input_tokens > 100_000, "{r:?}");
        assert!(r.limit_cached <= r.input_tokens, "{r:?}");
        assert!(
            r.direct_cached <= r.limit_cached && r.bridge_cached <= r.limit_cached,
            "the limit bounds every path: {r:?}"
        );
    }
    let multi = &results[0];
    assert!(
        multi.direct_cached * 10 >= multi.limit_cached * 9,
        "a keyed multi-turn session is well cached directly: {multi:?}"
    );
    let table = cache::table(&results);
    assert!(table.contains("multi-turn") && table.contains("orchestrator"), "{table}");
}
