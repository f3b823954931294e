//! The WebSocket ingress (`GET /v1/responses` with `Upgrade: websocket`) against the scripted HTTP upstream:
//! prewarm answered locally, `previous_response_id` deltas rebuilt into whole requests (the upstream and the
//! tracker see full inputs), the standard errors as wrapped frames, 426 when the ingress is off, the access
//! check, the message size cap.

use std::time::Duration;

use bridge_core::tracker::report;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{Options, Reply, ScriptedUpstream, TestBridge, ev};

pub(crate) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) async fn connect(bridge: &TestBridge, path: &str, headers: &[(&str, &str)]) -> Result<Ws, WsError> {
    let mut request = format!("ws://{}{path}", bridge.addr).into_client_request().unwrap();
    for (k, v) in headers {
        let name = axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
        request.headers_mut().insert(name, v.parse().unwrap());
    }
    tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake in time")
        .map(|(ws, _)| ws)
}

pub(crate) async fn send(ws: &mut Ws, frame: &Value) {
    ws.send(Message::text(frame.to_string())).await.unwrap();
}

/// The next text frame as JSON (panics on a close or a timeout).
pub(crate) async fn next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a frame in time");
        match msg {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Frames up to and including the next `response.completed` or `error`.
pub(crate) async fn until_done(ws: &mut Ws) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let v = next(ws).await;
        let kind = v["type"].as_str().unwrap_or_default().to_owned();
        frames.push(v);
        if kind == "response.completed" || kind == "error" {
            return frames;
        }
    }
}

fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

fn create(input: Vec<Value>, previous: Option<&str>) -> Value {
    let mut frame = json!({
        "type": "response.create", "model": "gpt-test", "stream": true, "store": false,
        "prompt_cache_key": "ses_ws", "instructions": "be brief", "input": input,
        "client_metadata": {"x-codex-turn-metadata": "{\"turn_id\":\"t\"}", "x-codex-ws-stream-request-start-ms": "1"},
    });
    if let Some(id) = previous {
        frame["previous_response_id"] = id.into();
    }
    frame
}

/// An SSE reply whose response is `id` and adds one assistant message saying `text`.
fn reply(id: &str, text: &str) -> Reply {
    let item = json!({"id": format!("msg_{id}"), "type": "message", "role": "assistant",
        "content": [{"type": "output_text", "text": text}]});
    let usage = json!({"input_tokens": 20, "input_tokens_details": {"cached_tokens": 8}, "output_tokens": 2, "total_tokens": 22});
    Reply::Sse(
        [
            ev("response.created", json!({"response": {"id": id, "status": "in_progress", "output": []}})),
            ev("response.output_text.delta", json!({"item_id": format!("msg_{id}"), "delta": text})),
            ev("response.output_item.done", json!({"output_index": 0, "item": item})),
            ev(
                "response.completed",
                json!({"response": {"id": id, "status": "completed", "output": [item], "usage": usage}}),
            ),
        ]
        .into_iter()
        .map(|b| (Duration::ZERO, b))
        .collect(),
    )
}

/// The same reply as a plain response with SSE content and an `x-codex-turn-state` header.
fn reply_with_turn_state(id: &str, text: &str, turn_state: &str) -> Reply {
    let Reply::Sse(parts) = reply(id, text) else { unreachable!() };
    let body: Vec<u8> = parts.into_iter().flat_map(|(_, b)| b.to_vec()).collect();
    Reply::Status {
        status: 200,
        headers: vec![("content-type", "text/event-stream".into()), ("x-codex-turn-state", turn_state.into())],
        body: String::from_utf8(body).unwrap(),
    }
}

fn upstream_input(upstream: &ScriptedUpstream, i: usize) -> Vec<Value> {
    let body: Value = serde_json::from_slice(&upstream.seen()[i].body).unwrap();
    body["input"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_prewarm_is_answered_locally_with_a_completed_response() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let mut ws = connect(&bridge, "/backend-api/codex/responses", &[]).await.unwrap();
    let mut frame = create(vec![user("sys")], None);
    frame["generate"] = false.into();
    send(&mut ws, &frame).await;
    let created = next(&mut ws).await;
    let completed = next(&mut ws).await;
    assert_eq!(created["type"], "response.created");
    assert_eq!(completed["type"], "response.completed");
    let id = completed["response"]["id"].as_str().unwrap();
    assert!(id.starts_with("resp_prewarm_"), "{id}");
    assert_eq!(created["response"]["id"], id);
    assert_eq!(completed["response"]["usage"]["total_tokens"], 0);
    assert_eq!(completed["response"]["model"], "gpt-test");
    assert!(upstream.seen().is_empty(), "a prewarm never reaches the upstream");
    // a second prewarm gets a fresh id
    send(&mut ws, &frame).await;
    let again = until_done(&mut ws).await;
    assert_ne!(again[1]["response"]["id"].as_str(), Some(id));
    bridge.stop().await;
}

#[tokio::test]
async fn deltas_reach_the_upstream_and_the_tracker_as_whole_turns() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let mut ws =
        connect(&bridge, "/v1/responses", &[("session-id", "ses_ws"), ("originator", "codex_exec")]).await.unwrap();
    let mut prewarm = create(vec![user("sys")], None);
    prewarm["generate"] = false.into();
    send(&mut ws, &prewarm).await;
    let mut previous = until_done(&mut ws).await.pop().unwrap()["response"]["id"].as_str().unwrap().to_owned();

    let mut expected = vec![user("sys")];
    // (upstream turn state issued, turn state the client replays, turn state the client must be shown)
    let turn_states = [("ts-A", None, "ts-A"), ("ts-B", Some("ts-A"), "ts-A"), ("ts-C", None, "ts-C")];
    for (turn, text) in ["one", "two", "three"].iter().enumerate() {
        let id = format!("resp_t{turn}");
        let (issued, replayed, shown) = turn_states[turn];
        upstream.push(reply_with_turn_state(&id, &format!("answer {text}"), issued));
        let mut frame = create(vec![user(text)], Some(&previous));
        if let Some(ts) = replayed {
            frame["client_metadata"]["x-codex-turn-state"] = ts.into();
        }
        send(&mut ws, &frame).await;
        let frames = until_done(&mut ws).await;
        let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "codex.response.metadata",
                "response.created",
                "response.output_text.delta",
                "response.output_item.done",
                "response.completed"
            ],
            "turn {turn}: the response headers, then each SSE event as one text frame ({frames:#?})"
        );
        assert_eq!(frames[0]["headers"]["x-codex-turn-state"], shown, "turn {turn}: first value wins in a turn");
        let frames = &frames[1..];
        assert_eq!(frames[1]["delta"], format!("answer {text}"));
        expected.push(user(text));
        assert_eq!(upstream_input(&upstream, turn), expected, "turn {turn}: the upstream got the whole input");
        let body: Value = serde_json::from_slice(&upstream.seen()[turn].body).unwrap();
        for ws_only in ["type", "previous_response_id", "generate"] {
            assert!(body.get(ws_only).is_none(), "{ws_only} must not reach the HTTP upstream: {body}");
        }
        assert_eq!(body["stream"], true);
        let headers = &upstream.seen()[turn].headers;
        assert_eq!(headers.get("x-codex-turn-metadata").unwrap(), "{\"turn_id\":\"t\"}", "frame metadata as headers");
        assert!(headers.get("sec-websocket-key").is_none() && headers.get("upgrade").is_none());
        let metadata = body["client_metadata"].as_object().unwrap();
        assert!(
            metadata.get("x-codex-turn-state").is_none()
                && metadata.get("x-codex-ws-stream-request-start-ms").is_none()
        );
        assert_eq!(metadata["x-codex-turn-metadata"], "{\"turn_id\":\"t\"}", "other metadata kept");
        let replayed_header = headers.get("x-codex-turn-state").map(|v| v.to_str().unwrap());
        assert_eq!(replayed_header, replayed, "turn {turn}: the replayed turn state goes upstream as the header");
        expected.push(frames[2]["item"].clone());
        previous = id;
    }
    bridge.settle().await;
    let rows = report::turns(bridge.state.store.as_ref(), "ses_ws").await.unwrap();
    assert_eq!(rows.len(), 3, "three turns tracked, the prewarm not: {rows:#?}");
    assert_eq!(rows.iter().map(|r| r.items).collect::<Vec<_>>(), [2, 4, 6], "whole inputs");
    assert!(rows.iter().all(|r| r.transport.as_deref() == Some("ws")), "{rows:#?}");
    assert_eq!(rows[1].classification, "append");
    assert_eq!(rows[2].classification, "append");
    let m = &bridge.state.metrics;
    assert_eq!(m.counter("codex_bridge_exchanges_by_transport_total", &[("transport", "ws")]), 3);
    assert_eq!(m.counter("codex_bridge_ws_frames_total", &[("reason", "delta")]), 3);
    assert_eq!(m.counter("codex_bridge_ws_frames_total", &[("reason", "prewarm")]), 1);
    bridge.stop().await;
}

#[tokio::test]
async fn an_unknown_previous_response_id_is_previous_response_not_found_and_the_socket_stays_usable() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let mut ws = connect(&bridge, "/v1/responses", &[]).await.unwrap();
    send(&mut ws, &create(vec![user("x")], Some("resp_elsewhere"))).await;
    let err = next(&mut ws).await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["status"], 400);
    assert_eq!(err["error"]["code"], "previous_response_not_found");
    assert_eq!(err["error"]["param"], "previous_response_id");
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert!(upstream.seen().is_empty());
    // the client resends in full
    upstream.push(reply("resp_full", "ok"));
    send(&mut ws, &create(vec![user("x")], None)).await;
    let frames = until_done(&mut ws).await;
    assert_eq!(frames.last().unwrap()["response"]["id"], "resp_full");
    assert_eq!(upstream_input(&upstream, 0), [user("x")]);
    bridge.stop().await;
}

#[tokio::test]
async fn bad_frames_get_openai_shaped_errors_and_the_socket_stays_usable() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let mut ws = connect(&bridge, "/v1/responses", &[]).await.unwrap();
    ws.send(Message::text("{not json")).await.unwrap();
    let err = next(&mut ws).await;
    assert_eq!((err["type"].as_str(), err["status"].as_u64()), (Some("error"), Some(400)), "{err}");
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert!(err["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    ws.send(Message::text(r#"{"type":"response.append","input":[]}"#)).await.unwrap();
    let err = next(&mut ws).await;
    assert_eq!(err["error"]["param"], "type");
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(next(&mut ws).await["error"]["code"], "unsupported_frame");
    // an acknowledgement is dropped without an answer; the next create is served
    ws.send(Message::text(r#"{"type":"response.processed","response_id":"r"}"#)).await.unwrap();
    upstream.push(reply("resp_ok", "fine"));
    send(&mut ws, &create(vec![user("x")], None)).await;
    let frames = until_done(&mut ws).await;
    assert_eq!(frames[0]["type"], "codex.response.metadata", "{frames:#?}");
    assert_eq!(frames[1]["type"], "response.created", "{frames:#?}");
    assert_eq!(frames.last().unwrap()["response"]["id"], "resp_ok");
    bridge.stop().await;
}

#[tokio::test]
async fn a_second_create_while_one_is_in_flight_is_refused() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let mut ws = connect(&bridge, "/v1/responses", &[]).await.unwrap();
    let Reply::Sse(mut parts) = reply("resp_slow", "slow") else { unreachable!() };
    parts[1].0 = Duration::from_millis(400);
    upstream.push(Reply::Sse(parts));
    send(&mut ws, &create(vec![user("x")], None)).await;
    assert_eq!(next(&mut ws).await["type"], "codex.response.metadata");
    assert_eq!(next(&mut ws).await["type"], "response.created");
    send(&mut ws, &create(vec![user("y")], None)).await;
    let frames = until_done(&mut ws).await;
    let err = frames.iter().find(|f| f["type"] == "error").expect("the busy error");
    assert_eq!(err["status"], 409);
    assert_eq!(err["error"]["code"], "response_already_in_flight");
    let rest = until_done(&mut ws).await;
    assert_eq!(rest.last().unwrap()["response"]["id"], "resp_slow", "the first response still completes");
    assert_eq!(upstream.seen().len(), 1, "the refused frame never reached the upstream");
    bridge.stop().await;
}

#[tokio::test]
async fn an_upstream_error_is_a_wrapped_error_frame_with_its_status_and_rate_limit_headers() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let mut ws = connect(&bridge, "/v1/responses", &[]).await.unwrap();
    upstream.push(Reply::Status {
        status: 400,
        headers: vec![("content-type", "application/json".into()), ("x-codex-primary-used-percent", "42".into())],
        body: json!({"error": {"message": "bad tool", "type": "invalid_request_error", "code": "invalid_value", "param": "tools"}})
            .to_string(),
    });
    send(&mut ws, &create(vec![user("x")], None)).await;
    let err = next(&mut ws).await;
    assert_eq!(err["type"], "error", "{err}");
    assert_eq!(err["status"], 400);
    assert_eq!(err["error"]["message"], "bad tool");
    assert_eq!(err["error"]["code"], "invalid_value");
    assert_eq!(err["headers"]["x-codex-primary-used-percent"], "42");
    // the failed turn is no anchor and the socket goes on
    upstream.push(reply("resp_after", "ok"));
    send(&mut ws, &create(vec![user("x")], None)).await;
    assert_eq!(until_done(&mut ws).await.last().unwrap()["response"]["id"], "resp_after");
    bridge.settle().await;
    let m = &bridge.state.metrics;
    assert_eq!(m.counter("codex_bridge_exchanges_by_transport_total", &[("transport", "ws")]), 2);
    bridge.stop().await;
}

#[tokio::test]
async fn with_the_ingress_off_the_upgrade_gets_426() {
    let upstream = ScriptedUpstream::start().await;
    let options = Options { file: "[websocket]\ningress = false\n".into(), ..Options::default() };
    let bridge = TestBridge::with(&upstream.url(), options).await;
    for path in ["/v1/responses", "/backend-api/codex/responses"] {
        match connect(&bridge, path, &[]).await {
            Err(WsError::Http(response)) => {
                assert_eq!(response.status().as_u16(), 426, "{path}");
                let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
                assert_eq!(body["error"]["code"], "websocket_not_available");
            }
            other => panic!("{path}: expected 426, got {:?}", other.map(|_| "a socket")),
        }
    }
    // a plain GET is still 405 and POST still works
    let r = crate::support::client().get(bridge.url("/v1/responses")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    bridge.stop().await;
}

#[tokio::test]
async fn the_upgrade_passes_the_access_check() {
    let upstream = ScriptedUpstream::start().await;
    let options = Options { access_tokens: Some("tok-ws".into()), ..Options::default() };
    let bridge = TestBridge::with(&upstream.url(), options).await;
    match connect(&bridge, "/v1/responses", &[]).await {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| "a socket")),
    }
    match connect(&bridge, "/v1/responses", &[("x-codex-bridge-token", "wrong")]).await {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 401),
        other => panic!("expected 401, got {:?}", other.map(|_| "a socket")),
    }
    let mut ws = connect(&bridge, "/v1/responses", &[("x-codex-bridge-token", "tok-ws")]).await.unwrap();
    upstream.push(reply("resp_tok", "ok"));
    send(&mut ws, &create(vec![user("x")], None)).await;
    assert_eq!(until_done(&mut ws).await.last().unwrap()["response"]["id"], "resp_tok");
    assert!(upstream.seen()[0].headers.get("x-codex-bridge-token").is_none(), "the token stays at the bridge");
    bridge.stop().await;
}

#[tokio::test]
async fn an_oversized_message_gets_close_1009() {
    let upstream = ScriptedUpstream::start().await;
    let options = Options {
        file: "body_limit_bytes = 4096\n[server]\nmax_inflight_body_bytes = 1048576\n".into(),
        ..Options::default()
    };
    let bridge = TestBridge::with(&upstream.url(), options).await;
    let mut ws = connect(&bridge, "/v1/responses", &[]).await.unwrap();
    send(&mut ws, &create(vec![user(&"x".repeat(10_000))], None)).await;
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("an answer in time");
    match msg {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Size, "{frame:?}"),
        other => panic!("expected close 1009, got {other:?}"),
    }
    assert!(upstream.seen().is_empty());
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_journal_records_websocket_deltas_as_whole_turns() {
    let tmp = tempfile::tempdir().unwrap();
    let (cwd, data) = (tmp.path().join("work"), tmp.path().join("data"));
    std::fs::create_dir_all(&cwd).unwrap();
    let emu = codex_emulator::spawn(codex_emulator::EmulatorConfig::default()).await.unwrap();
    let file =
        format!("[journal]\nproject_roots = [{}]\n", serde_json::to_string(&tmp.path().to_string_lossy()).unwrap());
    // The upstream side over HTTP, so the emulator's log shows each whole turn the ingress rebuilt.
    let file = format!("{file}[upstream]\ntransport = \"http\"\n");
    let options = Options { file, data_dir: Some(data.clone()), ..Options::default() };
    let bridge = TestBridge::with(&format!("{}/v1", emu.base_url()), options).await;
    let cwd_text = cwd.to_string_lossy().into_owned();
    let headers =
        [("authorization", "Bearer sk-test"), ("originator", "codex_exec"), ("x-codex-bridge-cwd", cwd_text.as_str())];
    let mut ws = connect(&bridge, "/v1/responses", &headers).await.unwrap();
    let frame = |input: Vec<Value>, previous: Option<&str>| {
        let mut f = json!({"type": "response.create", "model": "gpt-5.5", "store": false,
            "prompt_cache_key": "ses_journal", "input": input});
        if let Some(id) = previous {
            f["previous_response_id"] = id.into();
        }
        f
    };
    send(&mut ws, &frame(vec![user("Say pong")], None)).await;
    let first = until_done(&mut ws).await;
    let done = first.last().unwrap();
    assert_eq!(done["type"], "response.completed", "{first:#?}");
    let id = done["response"]["id"].as_str().unwrap().to_owned();
    send(&mut ws, &frame(vec![user("Say pong again")], Some(&id))).await;
    let second = until_done(&mut ws).await;
    assert_eq!(second.last().unwrap()["type"], "response.completed", "{second:#?}");
    bridge.settle().await;
    bridge.state.journal.as_ref().unwrap().flush().await;
    bridge.stop().await;

    // the emulator got the whole second turn over HTTP
    let log = emu.state().requests();
    let posts: Vec<_> = log.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1].body["input"].as_array().unwrap().len(), 3, "user, assistant, user");
    let files = bridge_journal::rollout::all(&data);
    assert_eq!(files.len(), 1);
    let lines = bridge_journal::rollout::read_lines(&files[0]).unwrap();
    let items: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["type"] == "response_item" && l["payload"]["type"] == "message")
        .map(|l| (l["payload"]["role"].as_str().unwrap(), l["payload"]["content"][0]["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        items,
        [("user", "Say pong"), ("assistant", "pong"), ("user", "Say pong again"), ("assistant", "pong")],
        "each item once, as for HTTP turns"
    );
    let history = std::fs::read_to_string(data.join("history.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 2);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_its_turn_still_recorded() {
    let upstream = ScriptedUpstream::start().await;
    let options = Options { file: "[server]\nclient_stall_timeout_ms = 200\n".into(), ..Options::default() };
    let bridge = TestBridge::with(&upstream.url(), options).await;
    let mut ws = connect(&bridge, "/v1/responses", &[]).await.unwrap();
    // ~24 MB of deltas: more than the queue and both socket buffers hold
    let chunk = "x".repeat(128 * 1024);
    let mut parts =
        vec![(Duration::ZERO, ev("response.created", json!({"response": {"id": "resp_big", "output": []}})))];
    for _ in 0..190 {
        parts.push((Duration::ZERO, ev("response.output_text.delta", json!({"delta": chunk}))));
    }
    parts.push((
        Duration::ZERO,
        ev(
            "response.completed",
            json!({"response": {"id": "resp_big", "status": "completed", "output": [],
            "usage": {"input_tokens": 5, "output_tokens": 1, "total_tokens": 6}}}),
        ),
    ));
    upstream.push(Reply::Sse(parts));
    send(&mut ws, &create(vec![user("x")], None)).await;
    // never read; the bridge must cut the socket and still finish the turn
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while bridge.state.metrics.counter("codex_bridge_exchanges_by_transport_total", &[("transport", "ws")]) == 0 {
        assert!(std::time::Instant::now() < deadline, "the turn was not recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(bridge.state.metrics.counter("codex_bridge_client_stalls_total", &[]), 1);
    assert_eq!(*upstream.state.finished.lock().unwrap(), 1, "the upstream stream was drained to its end");
    // the socket is gone: reading what is buffered ends in an error or the end of the stream
    let ended =
        tokio::time::timeout(Duration::from_secs(10), async { while let Some(Ok(_)) = ws.next().await {} }).await;
    assert!(ended.is_ok(), "the bridge dropped the socket");
    bridge.settle().await;
    let rows = report::turns(bridge.state.store.as_ref(), "ses_ws").await.unwrap();
    assert_eq!(rows.len(), 1, "the turn is tracked");
    bridge.stop().await;
}

#[tokio::test]
async fn a_broken_upstream_stream_is_an_error_frame_and_the_previous_anchor_stays() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let mut ws = connect(&bridge, "/v1/responses", &[]).await.unwrap();
    upstream.push(reply("resp_a", "a"));
    send(&mut ws, &create(vec![user("one")], None)).await;
    until_done(&mut ws).await;
    let Reply::Sse(mut parts) = reply("resp_b", "b") else { unreachable!() };
    parts.pop(); // no response.completed: the stream ends early
    upstream.push(Reply::Sse(parts));
    send(&mut ws, &create(vec![user("two")], Some("resp_a"))).await;
    let frames = until_done(&mut ws).await;
    let err = frames.last().unwrap();
    assert_eq!((err["type"].as_str(), err["status"].as_u64()), (Some("error"), Some(502)), "{frames:#?}");
    // the client retries the same delta: resp_a is still the anchor
    upstream.push(reply("resp_c", "c"));
    send(&mut ws, &create(vec![user("two")], Some("resp_a"))).await;
    assert_eq!(until_done(&mut ws).await.last().unwrap()["response"]["id"], "resp_c");
    assert_eq!(upstream_input(&upstream, 2).len(), 3, "one, the answer a, two");
    // resp_b never completed, so it is no anchor
    send(&mut ws, &create(vec![user("three")], Some("resp_b"))).await;
    assert_eq!(next(&mut ws).await["error"]["code"], "previous_response_not_found");
    bridge.stop().await;
}

#[tokio::test]
async fn a_client_gone_mid_stream_still_has_its_turn_recorded() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let mut ws = connect(&bridge, "/v1/responses", &[]).await.unwrap();
    let Reply::Sse(mut parts) = reply("resp_gone", "bye") else { unreachable!() };
    parts[2].0 = Duration::from_millis(300);
    upstream.push(Reply::Sse(parts));
    send(&mut ws, &create(vec![user("x")], None)).await;
    assert_eq!(next(&mut ws).await["type"], "codex.response.metadata");
    drop(ws);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while bridge.state.metrics.counter("codex_bridge_exchanges_by_transport_total", &[("transport", "ws")]) == 0 {
        assert!(std::time::Instant::now() < deadline, "the turn was not recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bridge.settle().await;
    assert_eq!(*upstream.state.finished.lock().unwrap(), 1, "the upstream stream was read to its end");
    assert_eq!(report::turns(bridge.state.store.as_ref(), "ses_ws").await.unwrap().len(), 1);
    bridge.stop().await;
}

#[tokio::test]
async fn idle_sockets_close_after_the_websocket_idle_timeout_and_past_max_sockets_upgrades_get_426() {
    let upstream = ScriptedUpstream::start().await;
    let file = "[server]\nidle_timeout_ms = 100\n[websocket]\nidle_timeout_ms = 600\nmax_sockets = 1\n";
    let bridge = TestBridge::with(&upstream.url(), Options { file: file.into(), ..Options::default() }).await;
    let started = std::time::Instant::now();
    let mut ws = connect(&bridge, "/v1/responses", &[]).await.unwrap();
    match connect(&bridge, "/v1/responses", &[]).await {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 426, "at max_sockets"),
        other => panic!("expected 426, got {:?}", other.map(|_| "a socket")),
    }
    // the HTTP idle timeout (100 ms) does not apply to the socket; the WebSocket one (600 ms) does
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut prewarm = create(vec![user("sys")], None);
    prewarm["generate"] = false.into();
    send(&mut ws, &prewarm).await;
    assert_eq!(until_done(&mut ws).await.len(), 2, "the socket outlived the HTTP idle timeout");
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("closed in time");
    match msg {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Normal, "{frame:?}"),
        other => panic!("expected close 1000, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(850), "closed {:?} after the start", started.elapsed());
    drop(ws);
    // its slot is free again
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(connect(&bridge, "/v1/responses", &[]).await.is_ok());
    bridge.stop().await;
}

#[tokio::test]
async fn shutdown_closes_an_idle_socket_with_1001() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let mut ws = connect(&bridge, "/v1/responses", &[]).await.unwrap();
    let stopping = tokio::spawn(bridge.stop());
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("closed in time");
    match msg {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away, "{frame:?}"),
        other => panic!("expected close 1001, got {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(5), stopping).await.expect("the bridge stopped").unwrap();
}

#[tokio::test]
async fn without_output_item_events_the_completed_responses_output_is_what_the_turn_added() {
    let upstream = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&upstream.url()).await;
    let mut ws = connect(&bridge, "/v1/responses", &[]).await.unwrap();
    let Reply::Sse(mut parts) = reply("resp_terse", "terse") else { unreachable!() };
    parts.remove(2); // no response.output_item.done; response.completed still lists the item
    upstream.push(Reply::Sse(parts));
    send(&mut ws, &create(vec![user("one")], None)).await;
    until_done(&mut ws).await;
    upstream.push(reply("resp_next", "next"));
    send(&mut ws, &create(vec![user("two")], Some("resp_terse"))).await;
    until_done(&mut ws).await;
    let input = upstream_input(&upstream, 1);
    assert_eq!(input.len(), 3, "{input:#?}");
    assert_eq!(input[1]["id"], "msg_resp_terse");
    bridge.stop().await;
}
