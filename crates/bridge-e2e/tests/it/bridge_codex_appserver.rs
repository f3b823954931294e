//! `codex app-server` through codex-bridge (`serve --upstream-auth api-key`) to the emulator: two threads
//! that share their startup context. A `[[cache.namespace_rules]]` entry matching the driver's client name
//! puts both threads in one shared startup namespace, so the second thread's first turn is served from the
//! cache the first thread wrote. The emulator must see the bridge's key (never the client's), the
//! namespace key, `session-id` = the namespace key (lineage root) and each thread's own id as `thread-id`
//! and `x-client-request-id`.

use serde_json::Value;

use crate::support::appserver::{AppServer, CLIENT_NAME, Turn};
use crate::support::bridge::BridgeHome;
use crate::support::codex::{CODEX_CLIENT_KEY, CODEX_MODEL, CodexSession};
use crate::support::gate;
use crate::support::upstream::{self, Call};

/// The upstream key the bridge owns (its `OPENAI_API_KEY`).
const BRIDGE_KEY: &str = "sk-bridge-owned-e2e-key";
/// The namespace of the config rule, and the key of its first partition.
const NAMESPACE: &str = "e2e-appserver";
const NAMESPACE_KEY: &str = "cache_ns-e2e-appserver-p0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appserver_threads_share_their_startup_prefix_through_a_bridge_namespace() {
    let Some(clients) = gate::clients() else { return };
    let emulator = upstream::start_emulator().await;
    let home = BridgeHome::new();
    let config = format!("[[cache.namespace_rules]]\nname = \"{NAMESPACE}\"\nclient = \"{CLIENT_NAME}\"\n");
    let env = [("OPENAI_API_KEY", BRIDGE_KEY)];
    let bridge = home.serve(&upstream::api_base(&emulator), "api-key", &config, &env).await;
    let session = CodexSession::new(&clients, &bridge.responses_base());
    let mut server = AppServer::start(&session).await;

    let thread_a = server.start_thread(session.workdir()).await;
    let a1 = server.turn(&thread_a, "Say pong").await;
    let a2 = server.turn(&thread_a, "Say pong again").await;
    let thread_b = server.start_thread(session.workdir()).await;
    let b1 = server.turn(&thread_b, "A separate app-server thread: say pong").await;
    server.shutdown().await;
    assert_ne!(thread_a, thread_b);
    for (name, turn) in [("thread A turn 1", &a1), ("thread A turn 2", &a2), ("thread B turn 1", &b1)] {
        assert_eq!(turn.status(), Some("completed"), "{name}: {:#?}", turn.notifications);
        assert_eq!(turn.agent_messages(), ["pong"], "{name}");
    }
    let cached = |turn: &Turn| turn.last_cached_input_tokens().expect("thread/tokenUsage/updated");
    assert_eq!(cached(&a1), 0, "a fresh emulator has nothing cached");
    assert!(cached(&a2) > 0, "thread A's second turn is served from its own prefix");
    assert!(cached(&b1) > 0, "thread B's first turn reuses thread A's startup prefix through the namespace");

    let calls = upstream::calls(&emulator);
    assert_eq!(calls.len(), 3, "one request per turn: {calls:#?}");
    for (call, thread) in calls.iter().zip([&thread_a, &thread_a, &thread_b]) {
        assert_namespace_identity(call, thread);
    }
    let stats = upstream::key_stats(&emulator, NAMESPACE_KEY).expect("emulator stats for the namespace key");
    assert_eq!(stats.requests, 3, "{stats:?}");
    assert_eq!(stats.cached_tokens, cached(&a2) + cached(&b1), "client and emulator agree");
    assert!(bridge.stop().await.success(), "the bridge exits cleanly on SIGTERM");
    emulator.shutdown().await;
}

/// The bridge's key replaces the client's; the namespace key replaces the thread's host key in the body and
/// in `session-id` (the namespace is the lineage root); the thread keeps its own id in `thread-id`,
/// `x-client-request-id` and the body's `client_metadata`; the driver's name stays the originator.
fn assert_namespace_identity(call: &Call, thread_id: &str) {
    assert_eq!((call.method.as_str(), call.path.as_str()), ("POST", "/v1/responses"), "{call:?}");
    assert!(call.served, "the emulator accepted the request: {call:?}");
    assert_eq!(call.model.as_deref(), Some(CODEX_MODEL));
    let bridge_auth = format!("Bearer {BRIDGE_KEY}");
    assert_eq!(call.header("authorization"), Some(bridge_auth.as_str()), "api-key mode sends the bridge's key");
    assert_ne!(call.header("authorization"), Some(format!("Bearer {CODEX_CLIENT_KEY}").as_str()));
    assert_eq!(call.prompt_cache_key.as_deref(), Some(NAMESPACE_KEY), "{call:?}");
    assert_eq!(call.header("session-id"), Some(NAMESPACE_KEY), "session-id routes with the namespace");
    assert_eq!(call.header("thread-id"), Some(thread_id), "thread-id is the thread's own key");
    assert_eq!(call.header("x-client-request-id"), Some(thread_id));
    assert_eq!(call.header("originator"), Some(CLIENT_NAME));
    assert_eq!(call.body.pointer("/client_metadata/thread_id").and_then(Value::as_str), Some(thread_id));
}
