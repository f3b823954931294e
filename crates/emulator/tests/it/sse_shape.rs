//! SSE event sequences for text, reasoning and tool turns, and the `stream:false` aggregate.

use serde_json::{Value, json};

use crate::common::{body, fast, post_api, read_sse, start, user};

#[tokio::test]
async fn text_turn() {
    let emu = start(fast()).await;
    let resp = post_api(&emu, &body(vec![user("hi")]), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert!(resp.headers()["x-request-id"].to_str().unwrap().starts_with("req_"));
    let sse = read_sse(resp).await;
    assert_eq!(
        sse.names(),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let deltas: String = sse
        .events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, v)| v["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, "pong");
    let done = &sse.events[8].1["item"];
    assert_eq!(done["type"], "message");
    assert_eq!(done["content"][0]["text"], "pong");
    let completed = &sse.last()["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"][0], *done);
    let usage = &completed["usage"];
    for path in [
        "/input_tokens",
        "/input_tokens_details/cached_tokens",
        "/input_tokens_details/cache_write_tokens",
        "/output_tokens",
        "/output_tokens_details/reasoning_tokens",
        "/total_tokens",
    ] {
        assert!(usage.pointer(path).is_some_and(Value::is_u64), "usage{path}");
    }
    assert_eq!(sse.events[0].1["response"]["status"], "in_progress");
    emu.shutdown().await;
}

#[tokio::test]
async fn reasoning_turn() {
    let emu = start(fast()).await;
    let mut b = body(vec![user("hi")]);
    b["reasoning"] = json!({"effort": "medium"});
    let sse = read_sse(post_api(&emu, &b, &[]).await).await;
    assert_eq!(
        &sse.names()[..8],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done"
        ]
    );
    let item = &sse.events[7].1["item"];
    assert_eq!(item["type"], "reasoning");
    assert!(item["encrypted_content"].as_str().unwrap().starts_with("gAAAAA"));
    assert_eq!(sse.events[8].1["output_index"], 1);
    assert_eq!(sse.usage()["output_tokens_details"]["reasoning_tokens"], 8);
    // `reasoning: null` gets no reasoning item
    b["reasoning"] = Value::Null;
    let sse = read_sse(post_api(&emu, &b, &[]).await).await;
    assert_eq!(sse.events[2].1["item"]["type"], "message");
    emu.shutdown().await;
}

#[tokio::test]
async fn tool_turn_and_follow_up() {
    let emu = start(fast()).await;
    let tools = json!([{"type": "function", "name": "exec_command", "strict": false,
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}}]);
    let mut b = body(vec![user("please TOOLTEST now")]);
    b["tools"] = tools;
    let sse = read_sse(post_api(&emu, &b, &[]).await).await;
    assert_eq!(
        sse.names(),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let call = sse.events[5].1["item"].clone();
    assert_eq!(call["name"], "exec_command");
    assert_eq!(call["arguments"], r#"{"cmd":"echo emulator-tool-ok"}"#);
    assert_eq!(sse.events[2].1["item"]["arguments"], "");
    // follow-up with the tool output gets text
    let input = b["input"].as_array_mut().unwrap();
    input.push(call.clone());
    input.push(json!({"type": "function_call_output", "call_id": call["call_id"], "output": "emulator-tool-ok"}));
    let sse = read_sse(post_api(&emu, &b, &[]).await).await;
    assert_eq!(sse.events[2].1["item"]["type"], "message");
    emu.shutdown().await;
}

#[tokio::test]
async fn non_streaming_aggregate() {
    let emu = start(fast()).await;
    let mut b = body(vec![user("hi")]);
    b["stream"] = json!(false);
    let resp = post_api(&emu, &b, &[]).await;
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["content"][0]["text"], "pong");
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
    emu.shutdown().await;
}

#[tokio::test]
async fn forced_call_header_streams_the_named_function_call() {
    let emu = start(fast()).await;
    let args = r#"{"todos":[{"content":"write tests","status":"in_progress","priority":"high"}]}"#;
    let header = format!("todowrite {args}");
    let resp = post_api(&emu, &body(vec![user("plan it")]), &[("x-emulator-call", header.as_str())]).await;
    assert_eq!(resp.status(), 200);
    let sse = read_sse(resp).await;
    assert!(sse.names().contains(&"response.function_call_arguments.done"));
    let item = &sse.last()["response"]["output"][0];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["name"], "todowrite");
    let sent: Value = serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(sent, serde_json::from_str::<Value>(args).unwrap());
    emu.shutdown().await;
}
