//! The bridge's default `[upstream] transport = "auto"` with the real clients: every conversation reaches the
//! emulator over one WebSocket, turn 2+ as `previous_response_id` deltas, whatever the client speaks.
//! - Codex 0.169's built-in provider over the bridge's WebSocket ingress (`exec`, `exec resume`, a tool
//!   turn; each a new Codex process with its own client socket): one upstream socket for the thread.
//! - The same with a ChatGPT login: the bridge's own (`--upstream-auth chatgpt`), and Codex's (a custom
//!   provider with `requires_openai_auth` and `supports_websockets`, the bridge passing its token through).
//! - Codex and OpenCode over HTTP: the bridge carries their whole-turn POSTs on one upstream socket. Against
//!   an emulator that routes like the real front door (calibrated affinity, seeded), the cached tokens the
//!   client reports are at least those of the same client speaking WebSocket straight to the emulator, which
//!   opens a new connection (so a new routing draw) per process.

use serde_json::Value;

use crate::support::bridge::{BridgeHome, UpstreamTransport};
use crate::support::codex::{self, CODEX_CLIENT_KEY, CodexSession};
use crate::support::opencode::{self, OpencodeSession};
use crate::support::process::ClientRun;
use crate::support::upstream::{self, SocketLog};
use crate::support::{chatgpt, gate};

/// The only socket whose handshake named `session_id`, with `turns` responses on it: the first may be
/// whole, every later one is a served `previous_response_id` delta carrying fewer items than the turn it
/// stands for, and all of them keep `key` as `prompt_cache_key`.
fn assert_one_socket_of_deltas<'a>(
    sockets: &'a [SocketLog],
    session_id: &str,
    key: &str,
    turns: usize,
) -> &'a SocketLog {
    let mine: Vec<&SocketLog> = sockets.iter().filter(|s| s.header("session-id") == Some(session_id)).collect();
    let seen = summary(sockets);
    assert_eq!(mine.len(), 1, "one upstream socket for {session_id}: {seen}");
    let socket = mine[0];
    let served = socket.turns();
    assert_eq!(served.len(), turns, "{turns} responses on the socket: {seen}");
    for (i, frame) in served.iter().enumerate() {
        assert!(frame.served, "frame {i} served: {frame:#?}");
        let full = frame.reconstructed_body.as_ref().unwrap_or(&frame.body);
        assert_eq!(full["prompt_cache_key"].as_str(), Some(key), "frame {i}'s key");
        if i == 0 {
            continue;
        }
        assert!(frame.previous_response_id.is_some(), "turn {} is a delta: {seen}", i + 1);
        let whole = full["input"].as_array().map_or(0, Vec::len);
        assert!(frame.input_items.unwrap_or(usize::MAX) < whole, "the delta is shorter than the turn: {seen}");
    }
    socket
}

/// One line per socket and frame: what the emulator saw, for failure messages.
fn summary(sockets: &[SocketLog]) -> String {
    let mut out = String::new();
    for s in sockets {
        out.push_str(&format!("\nsocket {} {} session-id={:?}", s.connection, s.path, s.header("session-id")));
        for f in &s.frames {
            let key = f.reconstructed_body.as_ref().unwrap_or(&f.body)["prompt_cache_key"].clone();
            out.push_str(&format!(
                "\n  #{} prewarm={} served={} previous={:?} items={:?} key={key}",
                f.seq, f.prewarm, f.served, f.previous_response_id, f.input_items
            ));
        }
    }
    out
}

/// Every follow-up turn through the bridge hit the machine of the turn before (its socket's), and cached
/// at least what the direct WebSocket client did on the same turn, up to one cache block (128 tokens): the
/// two conversations' prompts differ by a few tokens (their temporary paths tokenize differently), which
/// can move the end of the cached prefix across a block boundary either way.
fn assert_follow_ups_cache_at_least(bridged: &[u64], direct: &[u64]) {
    const BLOCK: u64 = 128;
    for (turn, (b, d)) in bridged.iter().zip(direct).enumerate() {
        assert!(*b > 0, "follow-up {}: the bridged turn hits the machine that served the one before", turn + 1);
        assert!(b + BLOCK >= *d, "follow-up {}: bridged {bridged:?} < direct {direct:?}", turn + 1);
    }
}

/// The input tokens the emulator processed without a cache hit for `key` (prefill, prewarms included).
fn prefill(emulator: &codex_emulator::RunningEmulator, key: &str) -> u64 {
    let stats = upstream::key_stats(emulator, key).expect("emulator stats for the key");
    stats.input_tokens - stats.cached_tokens
}

/// Rows of `sessions show KEY --json` (after the bridge stopped).
async fn tracked_turns(home: &BridgeHome, key: &str) -> Vec<Value> {
    let show = home.run(&["sessions", "show", key, "--json"]).await;
    show.assert_success();
    let shown: Value = serde_json::from_str(show.stdout.trim()).expect("sessions show --json prints JSON");
    shown["turns"].as_array().cloned().unwrap_or_default()
}

/// Turn 2+ are tracked as reused-socket deltas.
fn assert_tracked_as_deltas(rows: &[Value], transport: &str) {
    for row in rows.iter().skip(1) {
        let upstream = row["upstream"].as_str().unwrap_or_default();
        assert!(upstream.starts_with(&format!("{transport}/reused/delta")), "{row:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_websocket_turns_reach_the_emulator_as_deltas_on_one_upstream_socket() {
    let Some(clients) = gate::clients() else { return };
    let emulator = upstream::start_emulator().await;
    let home = BridgeHome::new();
    let bridge = home.serve_auto(&upstream::api_base(&emulator), "passthrough", "", &[]).await;
    let mut session = CodexSession::builtin(&clients, &bridge.responses_base()).await;
    let (thread_id, [_, second, third]) = codex::three_turns(&mut session, Some(&bridge)).await;
    let usage2 = codex::usage(&second).expect("turn 2 usage");
    assert!(usage2.cached_input_tokens > 0, "turn 2 is served from the cache: {usage2:?}");

    // Three Codex processes, three client sockets; upstream one socket carries the thread: turns 1 and 2,
    // the tool call and its follow-up.
    assert_eq!(upstream::responses_posts(&emulator), 0, "no turn over HTTP");
    let sockets = upstream::sockets(&emulator);
    let socket = assert_one_socket_of_deltas(&sockets, &thread_id, &thread_id, 4);
    assert_eq!(sockets.len(), 1, "{sockets:#?}");
    let follow_up = socket.turns()[3].reconstructed_body.clone().expect("the follow-up was reconstructed");
    let has = |ty: &str| follow_up["input"].as_array().is_some_and(|i| i.iter().any(|x| x["type"] == ty));
    assert!(has("function_call") && has("function_call_output"), "the tool follow-up is whole upstream");
    // Each Codex process's prewarm went over that socket too (the bridge answers none of them itself),
    // and the next turn chained from it.
    let prewarms = socket.frames.iter().filter(|f| f.prewarm).count();
    assert_eq!(prewarms, 3, "one prewarm per Codex process, on the thread's socket");
    assert_eq!(bridge.counter("codex_bridge_ws_frames_total", &[("reason", "prewarm_upstream")]).await, 3);
    assert_eq!(bridge.counter("codex_bridge_ws_frames_total", &[("reason", "prewarm")]).await, 0);
    // The client counts its turns; the emulator counts the prewarms too, which the bridge reports apart.
    let stats = upstream::key_stats(&emulator, &thread_id).expect("emulator stats for the thread's key");
    let usage3 = codex::usage(&third).expect("turn 3 usage");
    let prewarm_cached = bridge.counter("codex_bridge_prewarm_tokens_total", &[("kind", "cached")]).await;
    assert_eq!(stats.cached_tokens, usage3.cached_input_tokens + prewarm_cached, "client, bridge and emulator agree");

    assert!(bridge.stop().await.success(), "the bridge exits cleanly on SIGTERM");
    let rows = tracked_turns(&home, &thread_id).await;
    assert_eq!(rows.len(), 4, "{rows:#?}");
    assert!(rows.iter().all(|r| r["transport"] == "ws"), "{rows:#?}");
    assert_tracked_as_deltas(&rows, "ws");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_websocket_to_a_chatgpt_bridge_rides_one_upstream_socket() {
    let Some(clients) = gate::clients() else { return };
    let emulator = upstream::start_emulator().await;
    let home = BridgeHome::new();
    let (account, bridge, base) = chatgpt::codex_bridge(&home, &emulator, UpstreamTransport::Auto).await;
    let mut session = CodexSession::custom_websocket(&clients, &base);
    let (thread_id, [_, second, _]) = codex::three_turns(&mut session, Some(&bridge)).await;
    let usage2 = codex::usage(&second).expect("turn 2 usage");
    assert!(usage2.cached_input_tokens > 0, "turn 2 is served from the cache: {usage2:?}");

    assert_eq!(upstream::responses_posts(&emulator), 0, "no turn over HTTP");
    let sockets = upstream::sockets(&emulator);
    let socket = assert_one_socket_of_deltas(&sockets, &thread_id, &thread_id, 4);
    assert_eq!(socket.path, "/backend-api/codex/responses");
    assert_eq!(socket.header("chatgpt-account-id"), Some(account.account_id.as_str()), "the bridge's account");
    let client_bearer = format!("Bearer {CODEX_CLIENT_KEY}");
    assert_ne!(socket.header("authorization"), Some(client_bearer.as_str()), "the bridge's token, not the client's");
    for frame in socket.turns() {
        let full = frame.reconstructed_body.as_ref().unwrap_or(&frame.body);
        assert_eq!(full["store"], false, "the Codex shape: {frame:#?}");
    }
    assert!(bridge.stop().await.success());
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_with_its_own_chatgpt_login_over_websocket_rides_one_upstream_socket() {
    let Some(clients) = gate::clients() else { return };
    let account = codex_emulator::EmulatorConfig::default().account_id;
    let token = codex::chatgpt_access_token(&account);
    let config = codex_emulator::EmulatorConfig { accepted_tokens: vec![token.clone()], ..Default::default() };
    let emulator = codex_emulator::spawn(config).await.expect("start the emulator");
    let home = BridgeHome::new();
    let upstream_url = format!("{}/backend-api/codex", emulator.base_url());
    let bridge = home.serve_auto(&upstream_url, "passthrough", "", &[]).await;
    let backend = format!("{}/backend-api", bridge.responses_base().trim_end_matches("/v1"));
    let mut session = CodexSession::chatgpt_websocket(&clients, &backend, &account, &token);
    let (thread_id, [_, second, _]) = codex::three_turns(&mut session, Some(&bridge)).await;
    let usage2 = codex::usage(&second).expect("turn 2 usage");
    assert!(usage2.cached_input_tokens > 0, "turn 2 is served from the cache: {usage2:?}");
    assert!(bridge.counter("codex_bridge_requests_total", &[("status", "101")]).await >= 3, "over WebSocket");
    assert_eq!(bridge.counter("codex_bridge_exchanges_by_transport_total", &[("transport", "http")]).await, 0);

    assert_eq!(upstream::responses_posts(&emulator), 0, "no turn over HTTP");
    let sockets = upstream::sockets(&emulator);
    let socket = assert_one_socket_of_deltas(&sockets, &thread_id, &thread_id, 4);
    assert_eq!(socket.path, "/backend-api/codex/responses");
    assert_eq!(socket.header("authorization"), Some(format!("Bearer {token}").as_str()), "the client's login");
    assert_eq!(socket.header("chatgpt-account-id"), Some(account.as_str()));
    assert!(bridge.stop().await.success());
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_over_http_rides_one_upstream_socket_and_caches_at_least_as_much_as_direct_websocket() {
    let Some(clients) = gate::clients() else { return };
    // Direct: the same custom provider speaking WebSocket to the emulator, a new connection per process.
    let direct_emulator = upstream::start_calibrated_emulator().await;
    let mut direct = CodexSession::custom_websocket(&clients, &upstream::api_base(&direct_emulator));
    let (direct_thread, direct_runs) = codex::three_turns(&mut direct, None).await;

    let emulator = upstream::start_calibrated_emulator().await;
    let home = BridgeHome::new();
    let bridge = home.serve_auto(&upstream::api_base(&emulator), "passthrough", "", &[]).await;
    let mut session = CodexSession::new(&clients, &bridge.responses_base());
    let (thread_id, runs) = codex::three_turns(&mut session, Some(&bridge)).await;
    assert_eq!(upstream::responses_posts(&emulator), 0, "the bridge sent no turn over HTTP");
    let sockets = upstream::sockets(&emulator);
    assert_one_socket_of_deltas(&sockets, &thread_id, &thread_id, 4);

    // Codex reports the thread's cumulative usage; per turn it is the difference. Turn 1 is not compared:
    // the direct client's prewarm processed that prompt in a request of its own, whose usage the client
    // does not count (the whole conversation's prefill, prewarms included, is printed beside).
    let per_turn = |runs: &[ClientRun; 3]| {
        let c = runs.each_ref().map(|run| codex::usage(run).expect("turn usage").cached_input_tokens);
        [c[0], c[1] - c[0], c[2] - c[1]]
    };
    let (bridged, direct) = (per_turn(&runs), per_turn(&direct_runs));
    eprintln!("cached tokens per turn: through the bridge over HTTP {bridged:?}, direct over WebSocket {direct:?}");
    eprintln!(
        "uncached input tokens: bridged {}, direct (prewarms included) {}",
        prefill(&emulator, &thread_id),
        prefill(&direct_emulator, &direct_thread)
    );
    assert_follow_ups_cache_at_least(&bridged[1..], &direct[1..]);

    assert!(bridge.stop().await.success());
    let rows = tracked_turns(&home, &thread_id).await;
    assert_eq!(rows.len(), 4, "{rows:#?}");
    assert!(rows.iter().all(|r| r["transport"] == "http"), "the client spoke HTTP: {rows:#?}");
    assert_tracked_as_deltas(&rows, "bridged");
    emulator.shutdown().await;
    direct_emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_over_http_rides_one_upstream_socket_and_caches_at_least_as_much_as_direct_websocket() {
    let Some(clients) = gate::clients() else { return };
    let direct_emulator = upstream::start_calibrated_emulator().await;
    let mut direct_session =
        OpencodeSession::new(&clients, &upstream::api_base(&direct_emulator)).experimental_websocket();
    let direct_runs =
        [direct_session.turn(&["Say", "pong"]).await, direct_session.turn(&["Say", "pong", "again"]).await];
    direct_runs.iter().for_each(ClientRun::assert_clean);
    assert_eq!(upstream::responses_posts(&direct_emulator), 1, "direct: only the title goes over HTTP");

    let emulator = upstream::start_calibrated_emulator().await;
    let home = BridgeHome::new();
    let bridge = home.serve_auto(&upstream::api_base(&emulator), "passthrough", "", &[]).await;
    let mut session = OpencodeSession::new(&clients, &bridge.responses_base());
    let runs = [session.turn(&["Say", "pong"]).await, session.turn(&["Say", "pong", "again"]).await];
    runs.iter().for_each(ClientRun::assert_clean);
    for run in &runs {
        assert_eq!(opencode::texts(run), ["pong"], "{}\n{}", run.stderr, bridge.stderr());
    }
    let sid = session.session_id().expect("turn 1 events carry a sessionID").to_owned();

    // The main turns on the session's socket; the title (keyless, keyed `cache_<sid>` by the bridge) on its
    // own; nothing over HTTP.
    assert_eq!(upstream::responses_posts(&emulator), 0, "the bridge sent nothing over HTTP");
    let sockets = upstream::sockets(&emulator);
    assert_one_socket_of_deltas(&sockets, &sid, &sid, 2);
    let title_key = format!("cache_{sid}");
    assert_one_socket_of_deltas(&sockets, &title_key, &title_key, 1);
    assert_eq!(sockets.len(), 2, "{sockets:#?}");

    let cache_reads = |runs: &[ClientRun; 2]| runs.each_ref().map(|run| opencode::step_tokens(run).cache_read);
    let (bridged, direct) = (cache_reads(&runs), cache_reads(&direct_runs));
    eprintln!("cache reads per turn: through the bridge over HTTP {bridged:?}, direct over WebSocket {direct:?}");
    let direct_sid = direct_session.session_id().expect("the direct session's id").to_owned();
    eprintln!(
        "uncached input tokens: bridged {}, direct {}",
        prefill(&emulator, &sid),
        prefill(&direct_emulator, &direct_sid)
    );
    assert_follow_ups_cache_at_least(&bridged[1..], &direct[1..]);

    assert!(bridge.stop().await.success());
    let rows = tracked_turns(&home, &sid).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_tracked_as_deltas(&rows, "bridged");
    emulator.shutdown().await;
    direct_emulator.shutdown().await;
}
