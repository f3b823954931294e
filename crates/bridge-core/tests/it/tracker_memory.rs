//! Benchmark, not a test (ignored by default; issue 4 item 7): resident memory per tracked idle session.
//! Run: `cargo test -p bridge-core --test it tracker_memory -- --ignored --nocapture`.

use std::sync::Arc;

use bridge_core::identity::{CacheConfig, Lineage, Lineages};
use bridge_core::tracker::{SessionState, Tracker};
use bridge_store::MemoryStore;

const SESSIONS: usize = 100_000;

/// Resident set size in bytes, from /proc/self/statm (Linux).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture"]
fn tracker_memory_per_idle_session_stays_under_1_kib() {
    let config = CacheConfig { tracker_max_sessions: SESSIONS * 2, ..CacheConfig::default() };
    let before = rss();
    let tracker = Tracker::new(config.clone());
    let lineages = Lineages::new(Arc::new(MemoryStore::default()), config.tracker_max_sessions);
    for i in 0..SESSIONS {
        let id = format!("ses_{i:026}");
        let state = SessionState {
            chain: [i as u8; 16],
            items: 40,
            instructions: [1; 16],
            tools: [2; 16],
            model: [3; 16],
            first_seen_ms: i as i64,
            last_seen_ms: i as i64,
            last_input_tokens: Some(30_000),
            turns: 20,
            input_tokens: 600_000,
            cached_tokens: 550_000,
        };
        tracker.insert(&id, state);
        lineages.remember(&id, Lineage { root: id.clone(), fork: None });
    }
    let after = rss();
    let per_session = (after.saturating_sub(before)) as f64 / SESSIONS as f64;
    println!(
        "BENCH tracker memory: {SESSIONS} idle sessions, {per_session:.0} bytes of RSS per session (tracker + lineage cache)"
    );
    assert_eq!(tracker.len(), SESSIONS);
    assert!(per_session < 1024.0, "{per_session}");
}
