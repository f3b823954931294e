//! Responses over WebSocket: the captured Codex 0.169 exchanges replayed (prewarm, `previous_response_id`
//! deltas, a tool round, a second turn on one connection), the reconstructed input cached as on HTTP, the
//! documented errors and close codes, quota signals on both transports, and transport-aware routing.

use std::time::{Duration, Instant};

use codex_emulator::{EmulatorConfig, RunningEmulator};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::{body, post_api, read_sse, start, user};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const CAPTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/captures/");

fn capture(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{CAPTURES}{name}")).unwrap()).unwrap()
}

/// The captured handshake's headers a client sets itself (not the WebSocket handshake's own).
fn handshake_headers(capture: &Value) -> Vec<(String, String)> {
    const OWN: &[&str] =
        &["host", "connection", "upgrade", "sec-websocket-version", "sec-websocket-key", "sec-websocket-extensions"];
    capture["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h[0].as_str().unwrap().to_owned(), h[1].as_str().unwrap().to_owned()))
        .filter(|(k, _)| !OWN.contains(&k.to_ascii_lowercase().as_str()))
        .collect()
}

async fn connect(emu: &RunningEmulator, path: &str, headers: &[(String, String)]) -> Ws {
    let url = format!("{}{path}", emu.base_url().replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut()
            .insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), http::HeaderValue::from_str(v).unwrap());
    }
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.status(), 101);
    ws
}

fn bearer() -> Vec<(String, String)> {
    vec![("authorization".into(), "Bearer sk-test".into()), ("session-id".into(), "sess-1".into())]
}

async fn send(ws: &mut Ws, frame: &Value) {
    ws.send(Message::Text(frame.to_string().into())).await.unwrap();
}

/// What the server sent for one create: the JSON frames up to a terminal one, or how the socket ended.
#[derive(Debug, Default)]
struct Answer {
    frames: Vec<Value>,
    close: Option<CloseCode>,
    /// The connection ended without a close frame (the client's 1006).
    dropped: bool,
}

impl Answer {
    fn types(&self) -> Vec<&str> {
        self.frames.iter().map(|f| f["type"].as_str().unwrap()).collect()
    }
    fn completed(&self) -> &Value {
        let last = self.frames.last().unwrap();
        assert_eq!(last["type"], "response.completed", "{:?}", self.types());
        &last["response"]
    }
    fn error(&self) -> &Value {
        let last = self.frames.last().unwrap();
        assert_eq!(last["type"], "error", "{:?}", self.frames);
        last
    }
    fn frame(&self, kind: &str) -> &Value {
        self.frames.iter().find(|f| f["type"] == kind).unwrap()
    }
}

async fn answer(ws: &mut Ws) -> Answer {
    let mut out = Answer::default();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("server answered in time");
        match next {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                let kind = v["type"].as_str().unwrap_or_default().to_owned();
                out.frames.push(v);
                if ["response.completed", "response.failed", "error"].contains(&kind.as_str()) {
                    return out;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                out.close = frame.map(|f| f.code);
                return out;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                out.dropped = true;
                return out;
            }
        }
    }
}

/// Replay one captured frame, re-anchored on the id this emulator returned for the previous message.
fn replayed(name: &str, previous: Option<&str>) -> Value {
    let mut frame = capture(name)["body"].clone();
    if frame.get("previous_response_id").is_some() {
        frame["previous_response_id"] = json!(previous.expect("a previous response on this connection"));
    }
    frame
}

fn usage_of(a: &Answer) -> (u64, u64) {
    let u = &a.completed()["usage"];
    (u["input_tokens"].as_u64().unwrap(), u["input_tokens_details"]["cached_tokens"].as_u64().unwrap())
}

/// A WebSocket frame as the equivalent HTTP body (no `type`, `generate` or anchor; `stream: true`).
fn as_http(frame: &Value) -> Value {
    let mut b = frame.clone();
    let o = b.as_object_mut().unwrap();
    for k in ["type", "generate", "previous_response_id"] {
        o.remove(k);
    }
    o.insert("stream".into(), json!(true));
    b
}

#[tokio::test]
async fn captured_exec_prewarm_then_delta_is_cached_as_on_http() {
    let one = || EmulatorConfig { machines: 1, ..EmulatorConfig::default() };
    let emu = start(one()).await;
    let hs = capture("codex-exec-builtin-apikey-ws__s1-t1__r01__GET-v1-responses.json");
    let mut ws = connect(&emu, "/v1/responses", &handshake_headers(&hs)).await;

    send(&mut ws, &replayed("codex-exec-builtin-apikey-ws__s1-t1__r02__WS-v1-responses-msg1.json", None)).await;
    let prewarm = answer(&mut ws).await;
    assert_eq!(
        prewarm.types(),
        ["codex.response.metadata", "codex.rate_limits", "response.created", "response.completed"]
    );
    let prewarm_id = prewarm.completed()["id"].as_str().unwrap().to_owned();
    assert!(prewarm_id.starts_with("resp_"));
    assert_eq!(prewarm.completed()["output"], json!([]), "generate:false produces no output");
    assert!(
        prewarm.frame("codex.response.metadata")["headers"]["x-codex-turn-state"].as_str().unwrap().starts_with("ts1.")
    );

    send(&mut ws, &replayed("codex-exec-builtin-apikey-ws__s1-t1__r03__WS-v1-responses-msg2.json", Some(&prewarm_id)))
        .await;
    let turn = answer(&mut ws).await;
    let names = turn.types();
    assert_eq!(
        names[..4],
        ["codex.response.metadata", "codex.rate_limits", "response.created", "response.in_progress"]
    );
    assert_eq!(turn.completed()["previous_response_id"], json!(prewarm_id));
    let texts: Vec<&Value> = turn.completed()["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .map(|i| &i["content"][0]["text"])
        .collect();
    assert_eq!(texts, [&json!("pong")]);
    let (ws_input, ws_cached) = usage_of(&turn);
    assert!(ws_cached >= 1024, "the prewarm cached the instructions and tools: {ws_cached}");

    // The log: ws entries with their connection, prewarm flag, anchor and delta size.
    let log = emu.state().requests();
    let creates: Vec<_> = log.iter().filter(|e| e.method == "WS").collect();
    assert_eq!(creates.len(), 2);
    assert!(creates.iter().all(|e| e.transport == "ws" && e.connection == Some(1) && e.served));
    assert!(creates[0].prewarm && creates[0].previous_response_id.is_none());
    assert_eq!(creates[1].previous_response_id.as_deref(), Some(prewarm_id.as_str()));
    assert_eq!(creates[1].input_items, Some(3), "the delta carried 3 items");
    let full = creates[1].reconstructed_body.clone().unwrap();
    assert_eq!(full["input"].as_array().unwrap().len(), 4, "prewarm input (1) + prewarm output (0) + delta (3)");
    assert_eq!(emu.state().stats().per_transport["ws"].requests, 2);

    // The same two requests over HTTP (the reconstructed body in full) cache the same tokens.
    let http = start(one()).await;
    let pre = as_http(&capture("codex-exec-builtin-apikey-ws__s1-t1__r02__WS-v1-responses-msg1.json")["body"]);
    read_sse(post_api(&http, &pre, &[]).await).await;
    let second = read_sse(post_api(&http, &full, &[]).await).await.usage();
    assert_eq!(second["input_tokens"].as_u64().unwrap(), ws_input, "the reconstructed input is the whole input");
    assert_eq!(second["input_tokens_details"]["cached_tokens"].as_u64().unwrap(), ws_cached);
    assert_eq!(emu.state().limit(), http.state().limit(), "HTTP and WebSocket runs have the same limit");
    emu.shutdown().await;
    http.shutdown().await;
}

#[tokio::test]
async fn captured_resume_with_a_tool_round_reconstructs_every_item() {
    let emu = start(EmulatorConfig::default()).await;
    let p = "codex-exec-builtin-apikey-ws__s1-t2-resume-tool__";
    let mut ws =
        connect(&emu, "/v1/responses", &handshake_headers(&capture(&format!("{p}r01__GET-v1-responses.json")))).await;
    let mut previous: Option<String> = None;
    let mut answers = Vec::new();
    for msg in ["r02__WS-v1-responses-msg1", "r03__WS-v1-responses-msg2", "r04__WS-v1-responses-msg3"] {
        send(&mut ws, &replayed(&format!("{p}{msg}.json"), previous.as_deref())).await;
        let a = answer(&mut ws).await;
        previous = Some(a.completed()["id"].as_str().unwrap().to_owned());
        answers.push(a);
    }
    let kinds = |a: &Answer| -> Vec<String> {
        a.completed()["output"].as_array().unwrap().iter().map(|i| i["type"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(kinds(&answers[1]), ["reasoning", "function_call"], "TOOLTEST asks for a tool call");
    assert_eq!(kinds(&answers[2]), ["reasoning", "message"], "the tool output is answered");
    let log = emu.state().requests();
    let last = log.iter().rfind(|e| e.method == "WS").unwrap();
    assert_eq!(last.input_items, Some(1));
    let full = last.reconstructed_body.as_ref().unwrap()["input"].as_array().unwrap().clone();
    // prewarm 1 + delta 6 + its output 2 (reasoning, function_call) + the function_call_output
    assert_eq!(full.len(), 10);
    assert_eq!(full[7]["type"], "reasoning");
    assert_eq!(full[8]["type"], "function_call");
    assert_eq!(full[9]["type"], "function_call_output");
    let (input, cached) = usage_of(&answers[2]);
    assert!(cached * 10 >= input * 9, "one connection, one machine: {cached}/{input}");
    emu.shutdown().await;
}

#[tokio::test]
async fn captured_appserver_second_turn_on_the_same_connection_and_a_second_thread() {
    let emu = start(EmulatorConfig::default()).await;
    let p = "codex-appserver-builtin-apikey-ws__";
    let mut ws =
        connect(&emu, "/v1/responses", &handshake_headers(&capture(&format!("{p}s1-t1__r01__GET-v1-responses.json"))))
            .await;
    let mut previous: Option<String> = None;
    let mut last = Answer::default();
    for msg in
        ["s1-t1__r02__WS-v1-responses-msg1", "s1-t1__r03__WS-v1-responses-msg2", "s1-t2__r01__WS-v1-responses-msg3"]
    {
        send(&mut ws, &replayed(&format!("{p}{msg}.json"), previous.as_deref())).await;
        last = answer(&mut ws).await;
        previous = Some(last.completed()["id"].as_str().unwrap().to_owned());
    }
    let (input, cached) = usage_of(&last);
    assert!(cached * 10 >= input * 9, "turn 2 sent only the new message and is served from cache: {cached}/{input}");
    // The second thread opens its own connection: its anchors are its own.
    let mut ws2 =
        connect(&emu, "/v1/responses", &handshake_headers(&capture(&format!("{p}s2-t1__r01__GET-v1-responses.json"))))
            .await;
    send(&mut ws2, &replayed(&format!("{p}s2-t1__r03__WS-v1-responses-msg2.json"), previous.as_deref())).await;
    let foreign = answer(&mut ws2).await;
    assert_eq!(foreign.error()["error"]["code"], "previous_response_not_found", "anchors are per connection");
    send(&mut ws2, &replayed(&format!("{p}s2-t1__r02__WS-v1-responses-msg1.json"), None)).await;
    let pre = answer(&mut ws2).await;
    let id = pre.completed()["id"].as_str().unwrap().to_owned();
    send(&mut ws2, &replayed(&format!("{p}s2-t1__r03__WS-v1-responses-msg2.json"), Some(&id))).await;
    answer(&mut ws2).await.completed();
    let log = emu.state().requests();
    let conns: Vec<(&str, u64)> = log.iter().filter_map(|e| Some((e.method.as_str(), e.connection?))).collect();
    assert_eq!(conns, [("GET", 1), ("WS", 1), ("WS", 1), ("WS", 1), ("GET", 2), ("WS", 2), ("WS", 2), ("WS", 2)]);
    emu.shutdown().await;
}

fn small(generate: bool) -> Value {
    let mut f = body(vec![user("hello there")]);
    f["type"] = json!("response.create");
    if !generate {
        f["generate"] = json!(false);
    }
    f
}

#[tokio::test]
async fn unknown_anchor_binary_bad_json_and_processed_acks() {
    let emu = start(crate::common::fast()).await;
    let mut ws = connect(&emu, "/v1/responses", &bearer()).await;
    let mut f = small(true);
    f["previous_response_id"] = json!("resp_nope");
    send(&mut ws, &f).await;
    let a = answer(&mut ws).await;
    let e = a.error();
    assert_eq!(e["status"], 400);
    assert_eq!(e["error"]["code"], "previous_response_not_found");
    assert_eq!(e["error"]["param"], "previous_response_id");
    assert!(e["headers"]["x-codex-primary-used-percent"].is_string());

    ws.send(Message::Binary(vec![1u8, 2, 3].into())).await.unwrap();
    assert_eq!(answer(&mut ws).await.error()["error"]["code"], "unsupported_frame");
    ws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(answer(&mut ws).await.error()["status"], 400);
    // an ACK gets no answer: the next frame answered is the create after it
    send(&mut ws, &json!({"type": "response.processed", "response_id": "resp_x"})).await;
    send(&mut ws, &small(true)).await;
    let ok = answer(&mut ws).await;
    assert_eq!(ok.frames[0]["type"], "codex.response.metadata");
    ok.completed();
    emu.shutdown().await;
}

#[tokio::test]
async fn second_create_while_busy_is_refused_and_the_first_completes() {
    let emu = start(crate::common::fast()).await;
    let mut h = bearer();
    h.push(("x-emulator-fault".into(), "stall_ms=300;at=1;times=1".into()));
    let mut ws = connect(&emu, "/v1/responses", &h).await;
    send(&mut ws, &small(true)).await;
    send(&mut ws, &small(true)).await;
    let first = answer(&mut ws).await;
    // the refusal arrives while the first response is stalled
    let e = first.error();
    assert_eq!(e["status"], 409);
    assert_eq!(e["error"]["code"], "response_already_in_flight");
    let rest = answer(&mut ws).await;
    rest.completed();
    emu.shutdown().await;
}

#[tokio::test]
async fn connection_age_cap_on_the_virtual_clock() {
    let emu = start(EmulatorConfig { virtual_clock_ms: Some(1_800_000_000_000), ..crate::common::fast() }).await;
    let mut ws = connect(&emu, "/v1/responses", &bearer()).await;
    send(&mut ws, &small(true)).await;
    answer(&mut ws).await.completed();
    emu.state().clock.advance_ms(59 * 60 * 1000);
    send(&mut ws, &small(true)).await;
    answer(&mut ws).await.completed();
    emu.state().clock.advance_ms(60 * 1000);
    send(&mut ws, &small(true)).await;
    let a = answer(&mut ws).await;
    let e = a.error();
    assert_eq!(e["status"], 400);
    assert_eq!(e["error"]["code"], "websocket_connection_limit_reached");
    assert!(e["error"]["message"].as_str().unwrap().contains("60 minutes"));
    // a new connection works
    let mut fresh = connect(&emu, "/v1/responses", &bearer()).await;
    send(&mut fresh, &small(true)).await;
    answer(&mut fresh).await.completed();
    emu.shutdown().await;
}

async fn with_fault(spec: &str, frame: &Value) -> Answer {
    let emu = start(crate::common::fast()).await;
    let mut h = bearer();
    h.push(("x-emulator-fault".into(), spec.into()));
    let mut ws = connect(&emu, "/v1/responses", &h).await;
    // a handshake close may already be on the wire; a send error is then expected
    let _ = ws.send(Message::Text(frame.to_string().into())).await;
    let a = answer(&mut ws).await;
    emu.shutdown().await;
    a
}

#[tokio::test]
async fn each_websocket_fault_gives_its_frames_or_close_code() {
    let f = small(true);
    // close 1006: the connection is dropped after 3 response events (no close frame, no completed)
    let cut = with_fault("cut_after=3", &f).await;
    assert!(cut.dropped && cut.close.is_none(), "{cut:?}");
    assert_eq!(
        cut.types(),
        [
            "codex.response.metadata",
            "codex.rate_limits",
            "response.created",
            "response.in_progress",
            "response.output_item.added"
        ]
    );
    // 1012 / 1013 at the handshake
    for code in [1012u16, 1013] {
        let a = with_fault(&format!("close={code}"), &f).await;
        assert_eq!(a.close, Some(CloseCode::from(code)), "{a:?}");
        assert!(a.frames.is_empty());
    }
    // 1013 mid-turn, after 2 response events
    let mid = with_fault("close=1013;cut_after=2", &f).await;
    assert_eq!(mid.close, Some(CloseCode::from(1013)));
    assert_eq!(
        mid.types(),
        ["codex.response.metadata", "codex.rate_limits", "response.created", "response.in_progress"]
    );
    // response.failed
    let failed = with_fault("fail_at=2;code=server_is_overloaded", &f).await;
    let last = failed.frames.last().unwrap();
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["error"]["code"], "server_is_overloaded");
    // HTTP error kinds as wrapped errors
    let e503 = with_fault("status=503;code=server_is_overloaded", &f).await;
    assert_eq!(
        (e503.error()["status"].clone(), e503.error()["error"]["code"].clone()),
        (json!(503), json!("server_is_overloaded"))
    );
    let e429 = with_fault("status=429;retry_after=2", &f).await;
    assert_eq!(e429.error()["headers"]["retry-after"], "2");
    let expired = with_fault("expired", &f).await;
    assert_eq!(expired.error()["error"]["code"], "token_expired");
    let ul = with_fault("usage_limit;resets_in=600;plan=pro", &f).await;
    assert_eq!(ul.error()["status"], 429);
    assert_eq!(ul.error()["error"]["type"], "usage_limit_reached");
    assert_eq!(ul.error()["error"]["plan_type"], "pro");
    // a stall delays the events
    let t = Instant::now();
    let stalled = with_fault("stall_ms=250;at=2", &f).await;
    assert!(t.elapsed() >= Duration::from_millis(250));
    stalled.completed();
}

#[tokio::test]
async fn stale_anchor_fault_forgets_the_previous_response() {
    let emu = start(crate::common::fast()).await;
    let mut h = bearer();
    h.push(("x-emulator-fault".into(), "stale_anchor;skip=1;times=1".into()));
    let mut ws = connect(&emu, "/v1/responses", &h).await;
    send(&mut ws, &small(false)).await;
    let id = answer(&mut ws).await.completed()["id"].as_str().unwrap().to_owned();
    let mut next = small(true);
    next["previous_response_id"] = json!(id);
    send(&mut ws, &next).await;
    assert_eq!(answer(&mut ws).await.error()["error"]["code"], "previous_response_not_found");
    // the client's recovery: a full create without the anchor
    send(&mut ws, &small(true)).await;
    answer(&mut ws).await.completed();
    emu.shutdown().await;
}

#[tokio::test]
async fn a_message_over_the_limit_gets_close_1009() {
    let emu = start(EmulatorConfig { ws_max_message_bytes: 2_000, ..crate::common::fast() }).await;
    let mut ws = connect(&emu, "/v1/responses", &bearer()).await;
    let big = body(vec![user(&"word ".repeat(1_000))]);
    send(&mut ws, &json!({"type": "response.create", "model": big["model"], "input": big["input"]})).await;
    let a = answer(&mut ws).await;
    assert_eq!(a.close, Some(CloseCode::Size), "{a:?}");
    emu.shutdown().await;
}

#[tokio::test]
async fn handshake_needs_auth_like_http() {
    let emu = start(crate::common::fast()).await;
    let url = format!("{}/v1/responses", emu.base_url().replace("http://", "ws://"));
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("expected HTTP 401, got {other:?}"),
    }
    // ChatGPT flavour: the token must be known and the account header present
    let url = format!("{}/backend-api/codex/responses", emu.base_url().replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("authorization", "Bearer unknown".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await.unwrap_err() {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("expected HTTP 401, got {other:?}"),
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn quota_spent_mid_session_on_both_transports_and_every_report_agrees() {
    // Each request of ~600 fast tokens; a 5-hour budget of 2000 tokens is spent after a few turns.
    let emu = start(EmulatorConfig {
        budget_5h_tokens: Some(2_000),
        budget_weekly_tokens: Some(100_000),
        virtual_clock_ms: Some(1_800_000_000_000),
        ..crate::common::fast()
    })
    .await;
    let req = body(vec![user(&"lorem ".repeat(400))]);
    let mut http_statuses = Vec::new();
    let mut last_ok_headers = None;
    for _ in 0..6 {
        let resp = post_api(&emu, &req, &[]).await;
        http_statuses.push(resp.status().as_u16());
        let headers = resp.headers().clone();
        if resp.status() == 200 {
            read_sse(resp).await;
            last_ok_headers = Some(headers);
        } else {
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["error"]["type"], "usage_limit_reached");
            assert_eq!(v["error"]["plan_type"], "plus");
            let resets_at = v["error"]["resets_at"].as_u64().unwrap();
            assert_eq!(resets_at, headers["x-codex-primary-reset-at"].to_str().unwrap().parse::<u64>().unwrap());
            assert!(resets_at > 1_800_000_000 && resets_at <= 1_800_000_000 + 5 * 3600);
            assert_eq!(headers["x-codex-primary-used-percent"], "100");
        }
    }
    let first_refusal = http_statuses.iter().position(|s| *s == 429).expect("the budget is spent mid-session");
    assert!(first_refusal >= 2, "{http_statuses:?}");
    assert!(http_statuses[first_refusal..].iter().all(|s| *s == 429), "{http_statuses:?}");

    // wham/usage agrees with the last successful response's headers
    let usage: Value = crate::common::client()
        .get(format!("{}/backend-api/wham/usage", emu.base_url()))
        .bearer_auth("sk-test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(usage["plan_type"], "plus");
    assert_eq!(usage["rate_limit"]["limit_reached"], true);
    assert_eq!(usage["rate_limit"]["primary_window"]["used_percent"], 100.0);
    assert_eq!(usage["rate_limit"]["primary_window"]["limit_window_seconds"], 18000);
    let h = last_ok_headers.unwrap();
    assert_eq!(
        usage["rate_limit"]["secondary_window"]["used_percent"].as_f64().unwrap().to_string(),
        h["x-codex-secondary-used-percent"].to_str().unwrap()
    );
    assert_eq!(
        usage["rate_limit"]["primary_window"]["reset_at"].to_string(),
        h["x-codex-primary-reset-at"].to_str().unwrap()
    );

    // WebSocket: refused with the wrapped 429 and the same headers
    let mut ws = connect(&emu, "/v1/responses", &bearer()).await;
    let mut f = req.clone();
    f["type"] = json!("response.create");
    send(&mut ws, &f).await;
    let a = answer(&mut ws).await;
    let e = a.error();
    assert_eq!(e["status"], 429);
    assert_eq!(e["error"]["type"], "usage_limit_reached");
    assert_eq!(e["error"]["resets_at"], usage["rate_limit"]["primary_window"]["reset_at"]);
    assert_eq!(e["headers"]["x-codex-primary-used-percent"], "100");

    // After the 5-hour window the WebSocket turn is served; its codex.rate_limits event, the headers of an
    // HTTP turn and wham/usage agree.
    emu.state().clock.advance_ms(5 * 3600 * 1000);
    // (a new connection: the old one is past its 60-minute cap)
    let mut ws = connect(&emu, "/v1/responses", &bearer()).await;
    send(&mut ws, &f).await;
    let ok = answer(&mut ws).await;
    ok.completed();
    let ev = ok.frame("codex.rate_limits").clone();
    assert_eq!(ev["rate_limits"]["limit_reached"], false);
    let usage2: Value = crate::common::client()
        .get(format!("{}/backend-api/wham/usage", emu.base_url()))
        .bearer_auth("sk-test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (w, e) in [("primary_window", "primary"), ("secondary_window", "secondary")] {
        assert_eq!(usage2["rate_limit"][w]["used_percent"], ev["rate_limits"][e]["used_percent"], "{w}");
        assert_eq!(usage2["rate_limit"][w]["reset_at"], ev["rate_limits"][e]["reset_at"], "{w}");
        assert_eq!(
            ev["rate_limits"][e]["window_minutes"],
            usage2["rate_limit"][w]["limit_window_seconds"].as_u64().unwrap() / 60
        );
    }
    assert!(ev["rate_limits"]["primary"]["used_percent"].as_f64().unwrap() > 0.0);
    // spend the new window over WebSocket: refused mid-session on this transport too
    let mut refused = false;
    for _ in 0..6 {
        send(&mut ws, &f).await;
        let a = answer(&mut ws).await;
        if a.frames.last().unwrap()["type"] == "error" {
            assert_eq!(a.error()["error"]["type"], "usage_limit_reached");
            refused = true;
            break;
        }
    }
    assert!(refused, "the WebSocket session runs into the budget");
    emu.shutdown().await;
}

#[tokio::test]
async fn affinity_below_one_scatters_http_but_a_connection_and_a_turn_state_stay_put() {
    let emu = start(EmulatorConfig { http_affinity: 0.0, ..crate::common::fast() }).await;
    let req = body(vec![user(&"lorem ".repeat(2_000))]);
    let mut machines = std::collections::BTreeSet::new();
    let mut state = None;
    for _ in 0..12 {
        let resp = post_api(&emu, &req, &[]).await;
        machines.insert(resp.headers()["x-emulator-machine"].to_str().unwrap().to_owned());
        state = Some(resp.headers()["x-codex-turn-state"].to_str().unwrap().to_owned());
        read_sse(resp).await;
    }
    assert!(machines.len() > 3, "the front door spreads requests: {machines:?}");
    // a valid turn state routes to its issuer
    let state = state.unwrap();
    let issuer: usize = state.split('.').nth(1).unwrap().parse().unwrap();
    for _ in 0..4 {
        let resp = post_api(&emu, &req, &[("x-codex-turn-state", &state)]).await;
        assert_eq!(resp.headers()["x-emulator-machine"].to_str().unwrap(), issuer.to_string());
        assert_eq!(resp.headers()["x-codex-turn-state"].to_str().unwrap(), state, "first value wins within a turn");
        read_sse(resp).await;
    }
    // a WebSocket connection is served by one machine for its life
    let mut ws = connect(&emu, "/v1/responses", &bearer()).await;
    let mut f = req.clone();
    f["type"] = json!("response.create");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..8 {
        send(&mut ws, &f).await;
        let a = answer(&mut ws).await;
        seen.insert(a.frame("codex.response.metadata")["headers"]["x-emulator-machine"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    let stats = emu.state().stats();
    assert_eq!(stats.per_transport["ws"].requests, 8);
    assert_eq!(stats.per_transport["http"].requests, 16);
    assert_eq!(stats.ws.connections, 1);
    emu.shutdown().await;
}
