//! The upstream half of WebSocket against the real emulator (in process): HTTP clients' turns reach the
//! emulator over one socket per conversation, turn 2+ as `previous_response_id` deltas, and every failure
//! has its documented client-visible outcome (docs/reference/websocket.md, "Failure table"). What the
//! emulator received is read from its request log (method `GET` = a handshake, `WS` = a frame).

use std::time::Duration;

use codex_emulator::{EmulatorConfig, FaultSpec, LoggedRequest, RunningEmulator, TokenizerMode};
use serde_json::{Value, json};

use crate::codex_support::header;
use crate::support::{Options, ScriptedUpstream, TestBridge, client};

async fn emulator(config: EmulatorConfig) -> RunningEmulator {
    codex_emulator::spawn(EmulatorConfig { tokenizer: TokenizerMode::Fast, log_capacity: 10_000, ..config })
        .await
        .unwrap()
}

async fn bridge(emu: &RunningEmulator, file: &str) -> TestBridge {
    TestBridge::with(&format!("{}/v1", emu.base_url()), Options { file: file.into(), ..Options::default() }).await
}

/// About `tokens` tokens of distinct text.
fn text(label: &str, tokens: usize) -> String {
    (0..tokens / 12).map(|i| format!("{label} line {i}: the quick brown fox jumps over it.\n")).collect()
}

fn user(text: String) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

/// A conversation an HTTP client drives: the whole history in every body, the emulator's output echoed.
struct Conversation {
    key: String,
    instructions: String,
    input: Vec<Value>,
    auth: String,
    /// Sent instead of `prompt_cache_key` when set (`conversation_id`, `forkId`).
    metadata: Option<Value>,
}

impl Conversation {
    fn new(key: &str) -> Self {
        Self {
            key: key.into(),
            instructions: "You are a test.".into(),
            input: vec![json!({"role": "developer", "content": text("startup", 2000)})],
            auth: "Bearer test".into(),
            metadata: None,
        }
    }

    fn body(&self) -> Value {
        let mut body = json!({"model": "gpt-5.5", "instructions": self.instructions, "prompt_cache_key": self.key,
            "stream": false, "store": false, "input": self.input});
        if let (Some(metadata), Some(fields)) = (&self.metadata, body.as_object_mut()) {
            fields.remove("prompt_cache_key");
            fields.insert("metadata".into(), metadata.clone());
        }
        body
    }

    /// Sends the next turn with `item` appended; returns (status, the answer's JSON).
    async fn turn(&mut self, bridge: &TestBridge, item: Value) -> (u16, Value) {
        self.input.push(item);
        let resp = client()
            .post(bridge.url("/v1/responses"))
            .header("authorization", &self.auth)
            .json(&self.body())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if status == 200 {
            self.input.extend(v["output"].as_array().cloned().unwrap_or_default());
        }
        (status, v)
    }
}

fn cached(v: &Value) -> u64 {
    v["usage"]["input_tokens_details"]["cached_tokens"].as_u64().unwrap()
}

fn handshakes(emu: &RunningEmulator) -> Vec<LoggedRequest> {
    emu.state().requests().into_iter().filter(|r| r.method == "GET" && r.path.ends_with("/responses")).collect()
}

fn frames(emu: &RunningEmulator) -> Vec<LoggedRequest> {
    emu.state().requests().into_iter().filter(|r| r.method == "WS").collect()
}

fn posts(emu: &RunningEmulator) -> usize {
    emu.state().requests().iter().filter(|r| r.method == "POST").count()
}

async fn metrics(bridge: &TestBridge) -> String {
    client().get(bridge.url("/metrics")).send().await.unwrap().text().await.unwrap()
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

async fn turn_rows(bridge: &TestBridge, session: &str) -> Vec<bridge_core::tracker::TurnRow> {
    bridge.settle().await;
    bridge_core::tracker::report::turns(bridge.state.store.as_ref(), session).await.unwrap()
}

#[tokio::test]
async fn turns_after_the_first_go_as_deltas_on_one_reused_socket() {
    let emu = emulator(EmulatorConfig { http_affinity: 0.37, ..EmulatorConfig::default() }).await;
    let bridge = bridge(&emu, "").await;
    let mut c = Conversation::new("conv-delta");
    let mut ids = Vec::new();
    for turn in 0..4 {
        let (status, v) = c.turn(&bridge, user(text(&format!("turn {turn}"), 200))).await;
        assert_eq!(status, 200, "{v}");
        if turn > 0 {
            assert!(cached(&v) >= 2048, "turn {turn} reads the cached prefix on the socket's machine: {v}");
        }
        ids.push(v["id"].as_str().unwrap().to_owned());
    }
    let hs = handshakes(&emu);
    assert_eq!(hs.len(), 1, "one socket for the conversation");
    let header = |r: &LoggedRequest, n: &str| r.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(header(&hs[0], "session-id").as_deref(), Some("conv-delta"));
    assert_eq!(header(&hs[0], "openai-beta").as_deref(), Some("responses_websockets=2026-02-06"));
    assert_eq!(header(&hs[0], "x-codex-routing-hint").as_deref(), Some("model=gpt-5.5"));
    let f = frames(&emu);
    assert_eq!(f.len(), 4);
    assert!(f.iter().all(|r| r.connection == hs[0].connection));
    assert_eq!(f[0].previous_response_id, None);
    assert_eq!(f[0].input_items, Some(2));
    for k in 1..4 {
        assert_eq!(f[k].previous_response_id.as_deref(), Some(ids[k - 1].as_str()), "turn {k} is a delta");
        assert_eq!(f[k].input_items, Some(1), "turn {k} sends only the new user message");
    }
    assert_eq!(posts(&emu), 0);
    let m = metrics(&bridge).await;
    assert_eq!(
        metric(&m, r#"codex_bridge_upstream_turns_total{transport="bridged",socket="reused",frame="delta"}"#),
        3
    );
    assert_eq!(metric(&m, r#"codex_bridge_upstream_turns_total{transport="bridged",socket="new",frame="full"}"#), 1);
    let rows = turn_rows(&bridge, "conv-delta").await;
    let shown: Vec<_> = rows.iter().map(|r| r.upstream.clone().unwrap_or_default()).collect();
    assert_eq!(shown, ["bridged/new/full", "bridged/reused/delta", "bridged/reused/delta", "bridged/reused/delta"]);
    // The tracker sees whole turns: the recorded item counts are the full inputs.
    assert!(rows.windows(2).all(|w| w[1].items > w[0].items));
    bridge.stop().await;
}

#[tokio::test]
async fn a_changed_non_input_field_sends_the_turn_in_full_on_the_same_socket() {
    let emu = emulator(EmulatorConfig::default()).await;
    let bridge = bridge(&emu, "").await;
    let mut c = Conversation::new("conv-full");
    assert_eq!(c.turn(&bridge, user("one".into())).await.0, 200);
    c.instructions = "Other instructions.".into();
    let (status, _) = c.turn(&bridge, user("two".into())).await;
    assert_eq!(status, 200);
    let f = frames(&emu);
    assert_eq!(f.len(), 2);
    assert_eq!(f[1].connection, f[0].connection);
    assert_eq!(f[1].previous_response_id, None);
    assert_eq!(f[1].input_items, Some(c.input.len() - 1), "the whole input (minus the reply added after)");
    bridge.stop().await;
}

#[tokio::test]
async fn a_busy_socket_is_bypassed_with_a_one_shot_socket() {
    let emu = emulator(EmulatorConfig::default()).await;
    let bridge = bridge(&emu, "").await;
    let mut c = Conversation::new("conv-busy");
    assert_eq!(c.turn(&bridge, user("warm".into())).await.0, 200);
    // The next create on the pooled socket stalls; a parallel request of the same conversation comes in.
    emu.state().set_faults(vec![FaultSpec::parse("stall_ms=1500;at=1;times=1").unwrap()]);
    let slow = {
        let url = bridge.url("/v1/responses");
        let mut body = c.body();
        body["input"].as_array_mut().unwrap().push(user("slow".into()));
        tokio::spawn(async move {
            let resp = client().post(url).header("authorization", "Bearer test").json(&body).send().await.unwrap();
            resp.status().as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut parallel = Conversation::new("conv-busy");
    parallel.input = c.input.clone();
    let (status, _) = parallel.turn(&bridge, user("parallel".into())).await;
    assert_eq!(status, 200);
    assert_eq!(slow.await.unwrap(), 200);
    let hs = handshakes(&emu);
    assert_eq!(hs.len(), 2, "the parallel turn opened a one-shot socket");
    let f = frames(&emu);
    assert_eq!(f.len(), 3);
    assert_ne!(f[2].connection, f[1].connection, "never two responses in flight on one socket");
    assert_eq!(emu.state().stats().ws.errors, 0, "the emulator never answered response_already_in_flight");
    let m = metrics(&bridge).await;
    assert_eq!(metric(&m, r#"codex_bridge_upstream_socket_events_total{reason="busy_bypass"}"#), 1);
    // The pooled socket is the conversation's first one again.
    assert_eq!(c.turn(&bridge, user("after".into())).await.0, 200);
    let f = frames(&emu);
    assert_eq!(f.last().unwrap().connection, hs[0].connection);
    bridge.stop().await;
}

#[tokio::test]
async fn a_fork_running_beside_its_root_keeps_a_socket_of_its_own() {
    let emu = emulator(EmulatorConfig::default()).await;
    let bridge = bridge(&emu, "").await;
    let mut root = Conversation::new("conv-member");
    root.metadata = Some(json!({"conversation_id": "conv-member"}));
    assert_eq!(root.turn(&bridge, user("one".into())).await.0, 200);
    let history = root.input.clone();
    // The root's next turn stalls on the lineage's socket while a fork of it (same history, another
    // message) runs two turns.
    emu.state().set_faults(vec![FaultSpec::parse("stall_ms=1500;at=1;times=1").unwrap()]);
    let slow = {
        let url = bridge.url("/v1/responses");
        let mut body = root.body();
        body["input"].as_array_mut().unwrap().push(user("slow".into()));
        tokio::spawn(async move {
            let resp = client().post(url).header("authorization", "Bearer test").json(&body).send().await.unwrap();
            resp.status().as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut fork = Conversation::new("conv-member");
    fork.metadata = Some(json!({"conversation_id": "conv-member", "forkId": "f1"}));
    fork.input = history;
    assert_eq!(fork.turn(&bridge, user("fork: another approach".into())).await.0, 200);
    assert_eq!(fork.turn(&bridge, user("fork: go on".into())).await.0, 200);
    assert_eq!(slow.await.unwrap(), 200);

    let hs = handshakes(&emu);
    assert_eq!(hs.len(), 2, "the lineage's socket and the fork's own: {hs:#?}");
    let root_key = header(&hs[0], "session-id").unwrap();
    assert_eq!(header(&hs[1], "session-id"), Some(root_key), "routed by the root");
    let fork_key = header(&hs[1], "thread-id").unwrap();
    assert_ne!(fork_key, root_key, "the fork's own id");
    let on_fork: Vec<LoggedRequest> = frames(&emu).into_iter().filter(|f| f.connection == hs[1].connection).collect();
    assert_eq!(on_fork.len(), 2, "both fork turns on its own socket");
    assert!(on_fork[1].previous_response_id.is_some(), "the fork's second turn is a delta on it");
    let m = metrics(&bridge).await;
    assert_eq!(metric(&m, r#"codex_bridge_upstream_socket_events_total{reason="busy_member"}"#), 1);
    assert_eq!(metric(&m, r#"codex_bridge_upstream_socket_events_total{reason="busy_bypass"}"#), 0);
    // The fork's turns are tracked under its own session (its hint and fork id) with its own key.
    let rows = turn_rows(&bridge, "conv-member-fork-f1").await;
    assert!(rows.iter().all(|r| r.key == fork_key), "{rows:#?}");
    let shown: Vec<_> = rows.iter().map(|r| r.upstream.clone().unwrap_or_default()).collect();
    assert_eq!(shown, ["bridged/new/full", "bridged/reused/delta"]);
    // Back on the lineage's socket once it is free: the root's next turn.
    assert_eq!(root.turn(&bridge, user("after".into())).await.0, 200);
    assert_eq!(frames(&emu).last().unwrap().connection, hs[0].connection);
    bridge.stop().await;
}

#[tokio::test]
async fn the_connection_limit_mid_session_reconnects_and_resends_in_full_invisibly() {
    let emu =
        emulator(EmulatorConfig { ws_max_age_ms: 60_000, virtual_clock_ms: Some(0), ..EmulatorConfig::default() })
            .await;
    let bridge = bridge(&emu, "").await;
    let mut c = Conversation::new("conv-limit");
    assert_eq!(c.turn(&bridge, user("one".into())).await.0, 200);
    emu.state().clock.advance_ms(61_000);
    let (status, v) = c.turn(&bridge, user("two".into())).await;
    assert_eq!(status, 200, "the client never sees the limit: {v}");
    let hs = handshakes(&emu);
    assert_eq!(hs.len(), 2);
    let f = frames(&emu);
    assert_eq!(f.len(), 3, "turn 2: refused on the old socket, then once in full on a new one");
    assert_eq!(f[1].connection, hs[0].connection);
    assert!(f[1].previous_response_id.is_some());
    assert_eq!(f[2].connection, hs[1].connection);
    assert_eq!(f[2].previous_response_id, None);
    let rows = turn_rows(&bridge, "conv-limit").await;
    assert_eq!(rows.len(), 2, "nothing recorded twice");
    assert_eq!(rows[1].upstream.as_deref(), Some("bridged/new/full"));
    bridge.stop().await;
}

#[tokio::test]
async fn a_stale_anchor_gets_one_full_context_retry() {
    let emu = emulator(EmulatorConfig::default()).await;
    let bridge = bridge(&emu, "").await;
    let mut c = Conversation::new("conv-stale");
    assert_eq!(c.turn(&bridge, user("one".into())).await.0, 200);
    emu.state().set_faults(vec![FaultSpec::parse("stale_anchor;times=1").unwrap()]);
    let (status, v) = c.turn(&bridge, user("two".into())).await;
    assert_eq!(status, 200, "{v}");
    let f = frames(&emu);
    assert_eq!(f.len(), 3);
    assert!(f[1].previous_response_id.is_some(), "the delta");
    assert_eq!(f[2].previous_response_id, None, "the same turn, in full");
    assert_eq!(f[2].input_items, Some(c.input.len() - v["output"].as_array().unwrap().len()));
    assert_eq!(f[2].connection, f[1].connection);
    let rows = turn_rows(&bridge, "conv-stale").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].upstream.as_deref(), Some("bridged/reused/full/anchor-lost"));
    bridge.stop().await;
}

#[tokio::test]
async fn close_1006_mid_stream_is_a_retryable_error_and_nothing_is_replayed_or_recorded_twice() {
    let emu = emulator(EmulatorConfig::default()).await;
    let bridge = bridge(&emu, "").await;
    let mut c = Conversation::new("conv-1006");
    assert_eq!(c.turn(&bridge, user("one".into())).await.0, 200);
    emu.state().set_faults(vec![FaultSpec::parse("cut_after=3;times=1").unwrap()]);
    let (status, v) = c.turn(&bridge, user("two".into())).await;
    assert_eq!(status, 502, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("1006") && message.contains("retry"), "{message}");
    assert_eq!(frames(&emu).len(), 2, "the sent frame is never replayed");
    // The client retries the same turn: a new socket, in full.
    c.input.pop();
    let (status, _) = c.turn(&bridge, user("two".into())).await;
    assert_eq!(status, 200);
    assert_eq!(handshakes(&emu).len(), 2);
    assert_eq!(frames(&emu).last().unwrap().previous_response_id, None);
    let rows = turn_rows(&bridge, "conv-1006").await;
    assert_eq!(rows.len(), 2, "the broken turn is not a tracked turn, the retry is recorded once");
    bridge.settle().await;
    let m = metrics(&bridge).await;
    assert_eq!(metric(&m, r#"codex_bridge_exchanges_total{route="/v1/responses"}"#), 3);
    bridge.stop().await;
}

#[tokio::test]
async fn another_account_gets_its_own_socket_and_no_turn_state_of_the_first() {
    let emu = emulator(EmulatorConfig::default()).await;
    let bridge = bridge(&emu, "").await;
    let mut a = Conversation::new("conv-acct");
    assert_eq!(a.turn(&bridge, user("one".into())).await.0, 200);
    // Same logical turn (a tool output): the turn state captured on turn 1 is replayed.
    let tool = json!({"type": "function_call_output", "call_id": "call_1", "output": "ok"});
    assert_eq!(a.turn(&bridge, tool.clone()).await.0, 200);
    // The same conversation under another account (passthrough: the client's own token).
    let mut b = Conversation::new("conv-acct");
    b.auth = "Bearer other-account".into();
    b.input = a.input.clone();
    assert_eq!(
        b.turn(&bridge, json!({"type": "function_call_output", "call_id": "call_2", "output": "ok"})).await.0,
        200
    );
    let hs = handshakes(&emu);
    assert_eq!(hs.len(), 2, "a new socket for the other account");
    let f = frames(&emu);
    assert!(!f[0].turn_state, "nothing to replay on the first request");
    assert!(f[1].turn_state, "replayed within the turn");
    assert!(!f[2].turn_state, "cleared by the account change");
    assert_eq!(f[2].connection, hs[1].connection);
    assert_eq!(f[2].previous_response_id, None);
    // A new user message is a new logical turn: no replay either.
    assert_eq!(a.turn(&bridge, user("next turn".into())).await.0, 200);
    assert!(!frames(&emu).last().unwrap().turn_state);
    bridge.stop().await;
}

#[tokio::test]
async fn a_token_refresh_between_turns_opens_a_new_socket() {
    use bridge_auth::{Credentials, file};
    let emu = crate::codex_support::emulator().await;
    let dir = tempfile::tempdir().unwrap();
    let mut tokens = crate::codex_support::login(&emu, dir.path()).await;
    // The bridge refreshes 300 s ahead of expiry: this token enters that margin 3 s from now.
    tokens.expires_at_ms = Some(bridge_auth::now_ms() + 303_000);
    file::save(&file::credentials_path(dir.path()), &Credentials::Chatgpt(tokens.clone())).unwrap();
    let bridge = crate::codex_support::chatgpt_bridge(&emu, dir.path(), "").await;
    let body = |n: &str| {
        json!({"model": "gpt-5.5", "prompt_cache_key": "conv-refresh", "stream": false,
            "input": [{"role": "user", "content": [{"type": "input_text", "text": n}]}]})
    };
    let post = |b: Value| {
        let url = bridge.url("/v1/responses");
        async move { client().post(url).json(&b).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(post(body("one")).await, 200);
    assert_eq!(emu.state().oauth.counters().refresh_calls, 0);
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    assert_eq!(post(body("two")).await, 200);
    assert_eq!(emu.state().oauth.counters().refresh_calls, 1);
    let hs = handshakes(&emu);
    assert_eq!(hs.len(), 2, "the refreshed token gets a new socket");
    let bearer = |r: &LoggedRequest| r.headers.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.clone());
    assert_ne!(bearer(&hs[0]), bearer(&hs[1]));
    let m = metrics(&bridge).await;
    assert_eq!(metric(&m, r#"codex_bridge_upstream_socket_events_total{reason="evicted_credential"}"#), 1);
    bridge.stop().await;
}

#[tokio::test]
async fn an_upstream_that_refuses_the_upgrade_is_served_over_http_and_remembered() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    for n in 0..3 {
        let body = json!({"model": "m", "prompt_cache_key": "conv-http", "stream": true, "input": format!("turn {n}")});
        let resp = client().post(bridge.url("/v1/responses")).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        assert!(text.contains("response.completed"), "{text}");
    }
    assert_eq!(upstream.seen().len(), 3, "every turn over HTTP, in the same turn as the refusal");
    assert!(bridge.state.sockets.upstream_refused());
    let m = metrics(&bridge).await;
    assert_eq!(metric(&m, r#"codex_bridge_upstream_socket_events_total{reason="refused_upgrade"}"#), 1, "asked once");
    assert_eq!(metric(&m, r#"codex_bridge_upstream_turns_total{transport="http",socket="none",frame="none"}"#), 3);
    bridge.stop().await;
}

#[tokio::test]
async fn a_keyless_conversation_rides_its_derived_key_socket_and_transport_http_stays_on_http() {
    let emu = emulator(EmulatorConfig::default()).await;
    let bridge = bridge(&emu, "").await;
    let mut c = Conversation::new("unused");
    let keyless = |c: &Conversation| {
        let mut b = c.body();
        b.as_object_mut().unwrap().remove("prompt_cache_key");
        b
    };
    for n in 0..2 {
        c.input.push(user(format!("keyless {n}")));
        let resp = client()
            .post(bridge.url("/v1/responses"))
            .header("authorization", "Bearer test")
            .json(&keyless(&c))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let v: Value = resp.json().await.unwrap();
        c.input.extend(v["output"].as_array().cloned().unwrap());
    }
    assert_eq!(posts(&emu), 0);
    let hs = handshakes(&emu);
    assert_eq!(hs.len(), 1, "one socket for the keyless conversation");
    let f = frames(&emu);
    assert!(f[1].previous_response_id.is_some(), "its second turn is a delta");
    // transport = "http" keeps conversations on HTTP.
    let http = TestBridge::with(
        &format!("{}/v1", emu.base_url()),
        Options { file: "[upstream]\ntransport = \"http\"\n".into(), ..Options::default() },
    )
    .await;
    let mut c = Conversation::new("conv-http-only");
    assert_eq!(c.turn(&http, user("one".into())).await.0, 200);
    assert_eq!(posts(&emu), 1);
    assert_eq!(handshakes(&emu).len(), 1);
    http.stop().await;
    bridge.stop().await;
}

#[tokio::test]
async fn transport_websocket_has_no_http_fallback() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::with(
        &upstream.url(),
        Options { file: "[upstream]\ntransport = \"websocket\"\n".into(), ..Options::default() },
    )
    .await;
    let body = json!({"model": "m", "prompt_cache_key": "conv-strict", "stream": true, "input": "hi"});
    let resp = client().post(bridge.url("/v1/responses")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("transport = \"websocket\""), "{v}");
    assert!(upstream.seen().is_empty(), "nothing went over HTTP");
    bridge.stop().await;
}

/// A WebSocket client's `response.create` for conversation `key`.
fn ws_create(key: &str, input: &[Value]) -> Value {
    json!({"type": "response.create", "model": "gpt-5.5", "instructions": "You are a test.",
        "prompt_cache_key": key, "store": false, "input": input})
}

/// Text frames up to the client socket's close, and the close code (`None`: no close frame).
async fn until_close(ws: &mut crate::ws_ingress::Ws) -> (Vec<Value>, Option<u16>) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut frames = Vec::new();
    loop {
        let Ok(msg) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await else {
            panic!("no close within 5 s after {frames:#?}");
        };
        match msg {
            Some(Ok(Message::Text(t))) => frames.push(serde_json::from_str(t.as_str()).unwrap()),
            Some(Ok(Message::Close(frame))) => return (frames, frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => {}
            None | Some(Err(_)) => return (frames, None),
        }
    }
}

#[tokio::test]
async fn upstream_close_codes_1009_1012_1013_reach_a_websocket_client_as_they_are() {
    use crate::ws_ingress::{connect, send, until_done};
    let emu = emulator(EmulatorConfig::default()).await;
    let bridge = bridge(&emu, "").await;
    // (fault, the close code the client must see, whether events came before the close, frames the
    // emulator read: at the handshake it closes before reading the one the bridge sent)
    let cases = [
        ("close=1012", 1012, false, 0),
        ("close=1009;cut_after=0", 1009, false, 1),
        ("close=1013;cut_after=3", 1013, true, 1),
    ];
    for (n, (fault, code, mid_stream, read)) in cases.into_iter().enumerate() {
        let key = format!("conv-close-{code}");
        let mut ws = connect(&bridge, "/v1/responses", &[("authorization", "Bearer test")]).await.unwrap();
        let input = vec![user(text(&format!("close case {n}"), 300))];
        let frames_before = frames(&emu).len();
        emu.state().set_faults(vec![FaultSpec::parse(&format!("{fault};times=1")).unwrap()]);
        send(&mut ws, &ws_create(&key, &input)).await;
        let (seen, close) = until_close(&mut ws).await;
        assert_eq!(close, Some(code), "{fault}: the client's socket closes with the upstream's code ({seen:#?})");
        assert!(seen.iter().all(|f| f["type"] != "error"), "{fault}: a close, not a JSON error frame: {seen:#?}");
        let events = seen.iter().filter(|f| f["type"].as_str().is_some_and(|t| t.starts_with("response."))).count();
        assert_eq!(events > 0, mid_stream, "{fault}: events before the close: {seen:#?}");
        assert_eq!(frames(&emu).len(), frames_before + read, "{fault}: the sent frame is never replayed");
        // The client reconnects and sends the turn again: a new upstream socket, in full, served.
        emu.state().set_faults(Vec::new());
        let mut ws = connect(&bridge, "/v1/responses", &[("authorization", "Bearer test")]).await.unwrap();
        send(&mut ws, &ws_create(&key, &input)).await;
        let done = until_done(&mut ws).await;
        assert_eq!(done.last().unwrap()["type"], "response.completed", "{fault}: {done:#?}");
        assert_eq!(frames(&emu).last().unwrap().previous_response_id, None);
        let rows = turn_rows(&bridge, &key).await;
        assert_eq!(rows.len(), 1, "{fault}: the closed turn is not tracked, the retry once: {rows:#?}");
    }
    bridge.settle().await;
    let m = metrics(&bridge).await;
    assert_eq!(metric(&m, r#"codex_bridge_exchanges_total{route="/v1/responses"}"#), 6, "each attempt recorded once");
    bridge.stop().await;
}

#[tokio::test]
async fn an_http_client_gets_todays_502_for_an_upstream_close_1012_or_1013() {
    let emu = emulator(EmulatorConfig::default()).await;
    let bridge = bridge(&emu, "").await;
    let mut c = Conversation::new("conv-close-http");
    emu.state().set_faults(vec![FaultSpec::parse("close=1012;cut_after=0;times=1").unwrap()]);
    let (status, v) = c.turn(&bridge, user("one".into())).await;
    assert_eq!(status, 502, "{v}");
    assert_eq!(v["error"]["code"], "upstream_unreachable");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("closed (1012) before the response started") && message.contains("retry"), "{message}");
    // A streaming client mid-stream: the events so far, then the SSE error event.
    emu.state().set_faults(vec![FaultSpec::parse("close=1013;cut_after=3;times=1").unwrap()]);
    let mut body = c.body();
    body["stream"] = true.into();
    let resp = client()
        .post(bridge.url("/v1/responses"))
        .header("authorization", "Bearer test")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("response.created") && text.contains("event: error"), "{text}");
    assert!(text.contains("socket_closed") && text.contains("closed (1013)"), "{text}");
    bridge.stop().await;
}

#[tokio::test]
async fn a_prewarm_goes_over_the_lineages_upstream_socket_and_the_next_turn_is_a_delta_on_it() {
    use crate::ws_ingress::{connect, send, until_done};
    let emu = emulator(EmulatorConfig::default()).await;
    let bridge = bridge(&emu, "").await;
    let mut ws = connect(&bridge, "/v1/responses", &[("authorization", "Bearer test")]).await.unwrap();
    let startup = vec![json!({"role": "developer", "content": text("startup", 2000)})];
    let mut prewarm = ws_create("conv-prewarm", &startup);
    prewarm["generate"] = false.into();
    send(&mut ws, &prewarm).await;
    let answer = until_done(&mut ws).await;
    let kinds: Vec<&str> = answer.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["codex.response.metadata", "response.created", "response.completed"], "{answer:#?}");
    let id = answer[2]["response"]["id"].as_str().unwrap().to_owned();
    assert!(!id.starts_with("resp_prewarm_"), "the upstream's own response id: {id}");
    // The turn chains from the prewarm: a delta on the same upstream socket.
    let mut turn = ws_create("conv-prewarm", &[user("first question".into())]);
    turn["previous_response_id"] = id.clone().into();
    send(&mut ws, &turn).await;
    let done = until_done(&mut ws).await;
    assert_eq!(done.last().unwrap()["type"], "response.completed", "{done:#?}");
    let f = frames(&emu);
    assert_eq!(f.len(), 2, "{f:#?}");
    assert!(f[0].prewarm && f[0].previous_response_id.is_none(), "the prewarm went upstream as generate:false");
    assert_eq!(f[0].input_items, Some(1));
    assert!(!f[1].prewarm);
    assert_eq!(f[1].connection, f[0].connection, "the same upstream socket");
    assert_eq!(f[1].previous_response_id.as_deref(), Some(id.as_str()), "anchored on the prewarm");
    assert_eq!(f[1].input_items, Some(1), "only the new user message");
    assert_eq!(handshakes(&emu).len(), 1);
    assert_eq!(posts(&emu), 0);
    // The prewarm is no turn: no exchange, no tracked row, no upstream turn.
    let rows = turn_rows(&bridge, "conv-prewarm").await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].upstream.as_deref(), Some("ws/reused/delta"));
    assert_eq!(rows[0].items, 2, "the whole input: the prewarm's and the new message");
    let m = metrics(&bridge).await;
    assert_eq!(metric(&m, r#"codex_bridge_ws_frames_total{reason="prewarm_upstream"}"#), 1);
    assert_eq!(metric(&m, r#"codex_bridge_ws_frames_total{reason="prewarm"}"#), 0);
    assert_eq!(metric(&m, r#"codex_bridge_exchanges_total{route="/v1/responses"}"#), 1);
    assert_eq!(metric(&m, r#"codex_bridge_upstream_turns_total{transport="ws",socket="reused",frame="delta"}"#), 1);
    assert_eq!(metric(&m, r#"codex_bridge_upstream_socket_events_total{reason="opened"}"#), 1);
    let prefill = answer[2]["response"]["usage"]["input_tokens"].as_u64().unwrap();
    assert!(prefill > 2000, "{answer:#?}");
    assert_eq!(metric(&m, r#"codex_bridge_prewarm_tokens_total{kind="input"}"#), prefill, "the prewarm's usage");
    bridge.stop().await;
}

#[tokio::test]
async fn with_transport_http_a_prewarm_is_answered_locally_and_never_reaches_the_upstream() {
    use crate::ws_ingress::{connect, send, until_done};
    let emu = emulator(EmulatorConfig::default()).await;
    let bridge = TestBridge::with(
        &format!("{}/v1", emu.base_url()),
        Options { file: "[upstream]\ntransport = \"http\"\n".into(), ..Options::default() },
    )
    .await;
    let mut ws = connect(&bridge, "/v1/responses", &[("authorization", "Bearer test")]).await.unwrap();
    let mut prewarm = ws_create("conv-prewarm-http", &[user("startup".into())]);
    prewarm["generate"] = false.into();
    send(&mut ws, &prewarm).await;
    let answer = until_done(&mut ws).await;
    let id = answer.last().unwrap()["response"]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("resp_prewarm_"), "{answer:#?}");
    assert!(emu.state().requests().is_empty(), "the emulator saw nothing of the prewarm");
    let mut turn = ws_create("conv-prewarm-http", &[user("question".into())]);
    turn["previous_response_id"] = id.into();
    send(&mut ws, &turn).await;
    assert_eq!(until_done(&mut ws).await.last().unwrap()["type"], "response.completed");
    assert_eq!(posts(&emu), 1, "the turn over HTTP, its input rebuilt in full");
    assert!(handshakes(&emu).is_empty() && frames(&emu).is_empty());
    let m = metrics(&bridge).await;
    assert_eq!(metric(&m, r#"codex_bridge_ws_frames_total{reason="prewarm"}"#), 1);
    assert_eq!(metric(&m, r#"codex_bridge_ws_frames_total{reason="prewarm_upstream"}"#), 0);
    bridge.stop().await;
}

#[tokio::test]
async fn a_socket_closed_mid_stream_is_named_in_the_next_turns_new_socket_miss() {
    // The emulator's clock (not the tracker's) passes its cache's idle TTL before the retry, so the retry
    // on the new socket misses the cache while the tracker sees no idle session.
    let emu = emulator(EmulatorConfig { virtual_clock_ms: Some(0), ..EmulatorConfig::default() }).await;
    let bridge = bridge(&emu, "").await;
    let mut c = Conversation::new("conv-lost-mid-stream");
    assert_eq!(c.turn(&bridge, user("one".into())).await.0, 200);
    emu.state().set_faults(vec![FaultSpec::parse("cut_after=3;times=1").unwrap()]);
    assert_eq!(c.turn(&bridge, user("two".into())).await.0, 502);
    emu.state().clock.advance_ms(6 * 60 * 1000);
    c.input.pop();
    let (status, v) = c.turn(&bridge, user("two".into())).await;
    assert_eq!(status, 200, "{v}");
    let rows = turn_rows(&bridge, "conv-lost-mid-stream").await;
    assert_eq!(cached(&v), 0, "the new socket's machine has nothing cached: {v}");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].classification, "append");
    assert_eq!(rows[1].upstream.as_deref(), Some("bridged/new/full"));
    let outcome = rows[1].outcome.as_deref().unwrap();
    assert!(outcome.starts_with("new-socket (previous socket closed_mid_stream 1006, "), "{outcome}");
    // The stats keep the reason code.
    let outcomes = bridge_core::tracker::report::outcomes(bridge.state.store.as_ref()).await.unwrap();
    assert_eq!(outcomes.get("new-socket"), Some(&1), "{outcomes:?}");
    bridge.stop().await;
}

#[tokio::test]
async fn a_socket_retired_at_its_age_limit_is_named_in_the_next_turns_new_socket_miss() {
    let emu = emulator(EmulatorConfig { http_affinity: 0.0, ..EmulatorConfig::default() }).await;
    let bridge = bridge(&emu, "[upstream]\nwebsocket_max_age_ms = 300\n").await;
    let mut c = Conversation::new("conv-lost-age");
    assert_eq!(c.turn(&bridge, user("one".into())).await.0, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, v) = c.turn(&bridge, user("two".into())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(handshakes(&emu).len(), 2, "retired between turns");
    assert_eq!(cached(&v), 0, "{v}");
    let rows = turn_rows(&bridge, "conv-lost-age").await;
    let outcome = rows[1].outcome.as_deref().unwrap();
    assert_eq!(outcome, "new-socket (previous socket retired_age, 0 s ago)");
    // Reported once: the next turn on the reused socket names no loss.
    let (status, _) = c.turn(&bridge, user("three".into())).await;
    assert_eq!(status, 200);
    let rows = turn_rows(&bridge, "conv-lost-age").await;
    assert_eq!(rows[2].upstream.as_deref(), Some("bridged/reused/delta"));
    assert!(!rows[2].outcome.as_deref().unwrap().contains("previous socket"), "{:?}", rows[2].outcome);
    let m = metrics(&bridge).await;
    assert_eq!(metric(&m, r#"codex_bridge_upstream_socket_events_total{reason="retired_age"}"#), 1);
    bridge.stop().await;
}
