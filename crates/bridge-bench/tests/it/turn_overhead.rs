//! `bench overhead`'s conversation cases at a tiny scale: every row has its turn counts, and the bridges'
//! metrics show the path each row claims (one upstream socket per conversation, turn 2+ as deltas, for the
//! `ws` and `bridged` rows; HTTP for the `http` row).

use bridge_bench::cache::InProcessBridge;
use bridge_bench::turn_overhead::{self, ConversationCase, Startup, Target, Targets};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_cases_measure_turns_on_the_path_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let emu = bridge_bench::fast_emulator(10_000).await.unwrap();
    let upstream = format!("{}/v1", emu.base_url());
    let auto = InProcessBridge::start(&upstream, &dir.path().join("auto"), "").await.unwrap();
    let http = InProcessBridge::start(&upstream, &dir.path().join("http"), "[upstream]\ntransport = \"http\"\n")
        .await
        .unwrap();
    let targets = Targets {
        emulator: emu.base_url(),
        auto: Target { url: auto.url.clone(), pid: None },
        http: Target { url: http.url.clone(), pid: None },
        nginx: None,
    };
    let (turns, concurrency, rounds) = (4, 2, 2);
    let cases = [
        ConversationCase { startup: Startup::Filler(4 << 10), concurrency, turns, measured_turns: 6 },
        ConversationCase { startup: Startup::CodexCapture, concurrency: 1, turns, measured_turns: 3 },
    ];
    let rows = turn_overhead::run(&targets, &cases, rounds).await.unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r.case.as_str()).collect();
    assert_eq!(
        names,
        [
            "ws-4KiB-c2",
            "bridged-4KiB-c2",
            "http-4KiB-c2",
            "ws-38KiB-codex-c1",
            "bridged-38KiB-codex-c1",
            "http-38KiB-codex-c1"
        ]
    );
    for r in &rows {
        // One conversation per slot and round (6 measured turns need 1 of 3 per slot and round).
        assert_eq!(r.conversations, r.concurrency * rounds, "{r:?}");
        let conversations = r.conversations as u64;
        let measured = conversations * (turns as u64 - 1);
        assert_eq!(r.measured_turns as u64, measured, "{r:?}");
        assert!(r.direct_p50_us > 0 && r.bridge_p50_us > 0 && r.bridge_p99_us >= r.bridge_p50_us, "{r:?}");
        let all: u64 = r.upstream.0.values().sum();
        assert_eq!(all, conversations * turns as u64, "every turn of the bridge phases is counted once: {r:?}");
        match r.mode {
            "ws" | "bridged" => {
                let label = if r.mode == "ws" { "ws" } else { "bridged" };
                assert_eq!(
                    r.upstream.count(&format!("{label}/new/full")),
                    conversations,
                    "turn 1 opens a socket: {r:?}"
                );
                assert_eq!(
                    r.upstream.count(&format!("{label}/reused/delta")),
                    measured,
                    "turns 2+ go as deltas on the conversation's socket: {r:?}"
                );
            }
            _ => assert_eq!(r.upstream.count("http/none/none"), all, "transport = \"http\": {r:?}"),
        }
    }
    // The emulator saw the deltas: on the direct-ws, bridge-bridged and bridge-ws sides, every turn 2+ (warm-up
    // conversations, one per slot of 3 turns, included) is a WebSocket request with previous_response_id and
    // one new item; no other request is.
    let deltas = emu
        .state()
        .requests()
        .iter()
        .filter(|r| r.transport == "ws" && r.previous_response_id.is_some() && r.input_items == Some(1))
        .count();
    let expected: usize = cases.iter().map(|c| 3 * (c.concurrency * 2 + c.concurrency * rounds * (turns - 1))).sum();
    assert_eq!(deltas, expected);
    let with_previous = emu.state().requests().iter().filter(|r| r.previous_response_id.is_some()).count();
    assert_eq!(with_previous, expected);
    let table = turn_overhead::table(&rows);
    assert!(table.contains("4KiB-c2: ws added p50") && table.contains("4KiB-c2: bridged added p50"), "{table}");
    auto.stop().await;
    http.stop().await;
    emu.shutdown().await;
}
