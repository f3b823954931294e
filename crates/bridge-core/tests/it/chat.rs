//! The Chat Completions ingress (issue 16): golden translations of OpenCode's captured Chat requests,
//! append-only translation of growing histories (property test), every refused field a 400 naming it, the
//! chunk stream and the whole answer against the emulator, error mapping, and the reasoning replay.
//!
//! Golden files live in fixtures/chat/; `CODEX_BRIDGE_BLESS=1` rewrites them from the current translation
//! (review the diff before committing).

use std::time::Duration;

use bridge_core::chat::translate_in::{self, Anchor, short_tool_name};
use codex_emulator::RunningEmulator;
use codex_emulator::config::EmulatorConfig;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::support::{Options, Reply, ScriptedUpstream, TestBridge, capture_body, client, ev};

const CAPTURES: &[&str] = &[
    "opencode-openai-compatible-chat__s1-t1__r01__POST-v1-chat-completions.json",
    "opencode-openai-compatible-chat__s1-t1__r02__POST-v1-chat-completions.json",
    "opencode-openai-compatible-chat__s1-t2-continue__r01__POST-v1-chat-completions.json",
    "opencode-openai-compatible-chat__s1-t3-session__r01__POST-v1-chat-completions.json",
    "opencode-openai-compatible-chat__s2-t1__r01__POST-v1-chat-completions.json",
    "opencode-openai-compatible-chat__s2-t1__r02__POST-v1-chat-completions.json",
];

fn golden_path(capture: &str) -> String {
    let name = capture.trim_end_matches(".json");
    format!("{}/../../fixtures/chat/{name}.responses.json", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn captured_chat_requests_translate_to_the_committed_responses_bodies() {
    for capture in CAPTURES {
        let translated = translate_in::translate(&capture_body(capture)).unwrap();
        let body: Value = serde_json::from_slice(&translated.body).unwrap();
        let path = golden_path(capture);
        if std::env::var_os("CODEX_BRIDGE_BLESS").is_some() {
            std::fs::create_dir_all(std::path::Path::new(&path).parent().unwrap()).unwrap();
            std::fs::write(&path, serde_json::to_string_pretty(&body).unwrap() + "\n").unwrap();
        }
        let expected: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(body, expected, "{capture} translates to {path}");
        // The bytes too: key order is part of the contract (byte-stable prefixes).
        assert_eq!(translated.body, serde_json::to_vec(&expected).unwrap(), "{capture}: bytes");
        assert_eq!(body["stream"], true);
        assert!(translated.client_streams && translated.include_usage, "{capture}");
    }
    // The shape of the mapping on one capture: system → developer input, effort with a summary, tools flat.
    let t = translate_in::translate(&capture_body(CAPTURES[2])).unwrap();
    let body: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(body["input"][0]["role"], "developer");
    assert_eq!(
        body["input"][2],
        json!({"type": "message", "role": "assistant",
        "content": [{"type": "output_text", "text": "pong"}]})
    );
    assert_eq!(body["reasoning"], json!({"effort": "medium", "summary": "auto"}));
    assert_eq!(body["max_output_tokens"], 32000);
    assert_eq!(body["tools"][0]["name"], "apply_patch");
    assert!(body["tools"][0].get("function").is_none());
    assert_eq!(t.anchors, vec![(2, Anchor::Text("pong".into()))]);
}

/// One generated Chat message.
fn message() -> impl Strategy<Value = Value> {
    let text = "[a-z ]{0,12}";
    prop_oneof![
        text.prop_map(|t| json!({"role": "user", "content": t})),
        text.prop_map(|t| json!({"role": "system", "content": [{"type": "text", "text": t}]})),
        text.prop_map(|t| json!({"role": "assistant", "content": t})),
        ("[a-z]{1,6}", "[a-z_]{60,80}").prop_map(|(id, name)| json!({"role": "assistant", "content": null,
            "tool_calls": [{"id": format!("call_{id}"), "type": "function",
                "function": {"name": name, "arguments": "{\"x\":1}"}}]})),
        ("[a-z]{1,6}", text).prop_map(|(id, t)| json!({"role": "tool", "tool_call_id": format!("call_{id}"),
            "content": t})),
    ]
}

fn input_items(messages: &[Value]) -> Vec<String> {
    let body = json!({"model": "gpt-5.5", "messages": messages, "stream": true});
    let t = translate_in::translate(&serde_json::to_vec(&body).unwrap()).unwrap();
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    v["input"].as_array().unwrap().iter().map(Value::to_string).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// The same history gives the same bytes, and a history that grows by appended messages gives a
    /// Responses input that grows by appended items.
    #[test]
    fn growing_chat_histories_translate_append_only(messages in prop::collection::vec(message(), 1..24), cut in 1usize..24) {
        let cut = cut.min(messages.len());
        let full = input_items(&messages);
        prop_assert_eq!(&full, &input_items(&messages));
        let prefix = input_items(&messages[..cut]);
        prop_assert!(prefix.len() <= full.len());
        prop_assert_eq!(&full[..prefix.len()], &prefix[..]);
    }
}

#[test]
fn long_tool_names_are_shortened_in_and_restored_out() {
    let long = format!("mcp__server__{}", "very_long_tool_name_".repeat(4));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": long, "parameters": {"type": "object"}}}]});
    let t = translate_in::translate(&serde_json::to_vec(&body).unwrap()).unwrap();
    let v: Value = serde_json::from_slice(&t.body).unwrap();
    let short = short_tool_name(&long);
    assert_eq!(v["tools"][0]["name"], short.as_str());
    assert!(short.len() <= 64);
    assert_eq!(t.tool_names.get(&short), Some(&long));
}

fn chat_body(extra: Value) -> Value {
    let mut body = json!({"model": "gpt-5.5", "messages": [{"role": "user", "content": "hi"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn every_refused_field_is_a_400_naming_it() {
    let up = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&up.url()).await;
    let cases = [
        (json!({"n": 2}), "n"),
        (json!({"logprobs": true}), "logprobs"),
        (json!({"top_logprobs": 2}), "top_logprobs"),
        (json!({"audio": {"voice": "alloy", "format": "wav"}}), "audio"),
        (json!({"modalities": ["text", "audio"]}), "modalities"),
        (json!({"stop": ["\n"]}), "stop"),
        (json!({"seed": 7}), "seed"),
        (json!({"frequency_penalty": 0.5}), "frequency_penalty"),
        (json!({"presence_penalty": 1}), "presence_penalty"),
        (json!({"logit_bias": {"1": 2}}), "logit_bias"),
        (json!({"functions": [{"name": "f"}]}), "functions"),
        (json!({"prediction": {"type": "content", "content": "x"}}), "prediction"),
        (json!({"web_search_options": {}}), "web_search_options"),
        (json!({"some_vendor_field": 1}), "some_vendor_field"),
        (json!({"tools": [{"type": "web_search"}]}), "tools[0].type"),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            "messages[0].content[0]",
        ),
        (json!({"messages": [{"role": "function", "content": "x"}]}), "messages[0].role"),
        (json!({"response_format": {"type": "grammar"}}), "response_format.type"),
    ];
    for (extra, param) in cases {
        let resp =
            client().post(bridge.url("/v1/chat/completions")).json(&chat_body(extra.clone())).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{extra}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["param"], param, "{extra}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        if !param.contains(['[', '.']) {
            assert!(v["error"]["message"].as_str().unwrap().contains(&format!("`{param}`")), "{v}");
        }
    }
    // Neutral values are accepted (and nothing refused reached the upstream).
    assert!(up.seen().is_empty(), "refused requests never go upstream");
    up.push(Reply::Sse(crate::support::sse_reply("ok", 10, Some(0))));
    let neutral = chat_body(json!({"n": 1, "logprobs": false, "presence_penalty": 0, "logit_bias": {}}));
    let resp = client().post(bridge.url("/chat/completions")).json(&neutral).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    bridge.stop().await;
}

async fn emulator() -> RunningEmulator {
    codex_emulator::spawn(EmulatorConfig { virtual_clock_ms: Some(1_800_000_000_000), ..EmulatorConfig::default() })
        .await
        .unwrap()
}

fn opencode_headers(req: reqwest::RequestBuilder, session: &str) -> reqwest::RequestBuilder {
    req.header("authorization", "Bearer sk-test")
        .header("user-agent", "opencode/1.18.33 ai-sdk/provider-utils/4.0.23 runtime/bun/1.3.14")
        .header("x-session-affinity", session)
        .header("x-session-id", session)
}

/// The `data:` payloads of a Chat SSE body.
fn chunks(body: &str) -> Vec<String> {
    body.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_owned).collect()
}

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "bash", "description": "run a command",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"},
        "description": {"type": "string"}}, "required": ["command"]}}}])
}

#[tokio::test]
async fn streamed_chunks_follow_the_chat_contract() {
    let emu = emulator().await;
    let bridge = TestBridge::start(&format!("{}/v1", emu.base_url())).await;
    let body = json!({"model": "gpt-5.5", "stream": true, "stream_options": {"include_usage": true},
        "reasoning_effort": "medium", "tools": tools(), "tool_choice": "auto",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "TOOLTEST run it"}]});
    let resp = opencode_headers(client().post(bridge.url("/v1/chat/completions")), "ses_stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    let data = chunks(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let parsed: Vec<Value> = data[..data.len() - 1].iter().map(|d| serde_json::from_str(d).unwrap()).collect();
    for c in &parsed {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
    }
    assert_eq!(parsed[0]["choices"][0]["delta"]["role"], "assistant", "role in the first chunk");
    let deltas: Vec<&Value> = parsed.iter().filter_map(|c| c["choices"].get(0).map(|ch| &ch["delta"])).collect();
    let reasoning: String = deltas.iter().filter_map(|d| d["reasoning_content"].as_str()).collect();
    assert!(reasoning.contains("emulator reasoning summary"), "reasoning_content deltas: {text}");
    let calls: Vec<&Value> = deltas.iter().filter_map(|d| d["tool_calls"].get(0)).collect();
    assert!(!calls.is_empty(), "tool call deltas: {text}");
    assert_eq!(calls[0]["index"], 0);
    assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"), "id first: {}", calls[0]);
    assert_eq!(calls[0]["function"]["name"], "bash", "name first");
    let args: String = calls.iter().filter_map(|c| c["function"]["arguments"].as_str()).collect();
    let args: Value = serde_json::from_str(&args).unwrap();
    assert_eq!(args["command"], "echo emulator-tool-ok");
    let finish = parsed.iter().rev().find_map(|c| c["choices"].get(0).and_then(|ch| ch["finish_reason"].as_str()));
    assert_eq!(finish, Some("tool_calls"));
    let usage = parsed.last().unwrap();
    assert_eq!(usage["choices"], json!([]), "the usage chunk has no choices");
    assert!(usage["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(usage["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage["usage"]["completion_tokens_details"]["reasoning_tokens"], 8);
    assert!(usage["usage"]["prompt_tokens_details"]["cache_write_tokens"].is_u64(), "the extension field");
    bridge.stop().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn a_whole_answer_and_a_tool_round_trip_with_cached_tokens() {
    let emu = emulator().await;
    let bridge = TestBridge::start(&format!("{}/v1", emu.base_url())).await;
    let system = "You are a careful assistant. ".repeat(200);
    let mut messages =
        vec![json!({"role": "system", "content": system}), json!({"role": "user", "content": "TOOLTEST go"})];
    let post = |messages: Vec<Value>| {
        let body = json!({"model": "gpt-5.5", "messages": messages, "tools": tools()});
        opencode_headers(client().post(bridge.url("/v1/chat/completions")), "ses_whole").json(&body).send()
    };
    let first: Value = post(messages.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(first["object"], "chat.completion", "{first}");
    assert_eq!(first["choices"][0]["finish_reason"], "tool_calls");
    let call = &first["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "bash");
    assert!(first["usage"]["completion_tokens_details"].get("reasoning_tokens").is_some());
    messages.push(first["choices"][0]["message"].clone());
    messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "emulator-tool-ok"}));
    let second: Value = post(messages).await.unwrap().json().await.unwrap();
    assert_eq!(second["choices"][0]["finish_reason"], "stop", "{second}");
    assert!(second["choices"][0]["message"]["content"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(second["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap() > 0, "{second}");
    // The upstream saw the tool output paired with its call.
    let seen = emu.state().requests();
    let input = seen.last().unwrap().body["input"].as_array().unwrap().clone();
    assert_eq!(input.iter().filter(|i| i["type"] == "function_call_output").count(), 1);
    bridge.stop().await;
    emu.shutdown().await;
}

#[tokio::test]
async fn upstream_errors_become_openai_errors_with_their_status() {
    let up = ScriptedUpstream::start().await;
    let bridge = TestBridge::start(&up.url()).await;
    up.push(Reply::Status {
        status: 429,
        headers: vec![("retry-after", "60".into())],
        body: json!({"error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limit_exceeded"}})
            .to_string(),
    });
    let resp = client()
        .post(bridge.url("/v1/chat/completions"))
        .json(&chat_body(json!({"stream": true})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");

    // Usage fields the upstream did not send stay absent.
    up.push(Reply::Sse(crate::support::sse_reply("ok", 10, None)));
    let body = chat_body(json!({"stream": true, "stream_options": {"include_usage": true}}));
    let text =
        client().post(bridge.url("/v1/chat/completions")).json(&body).send().await.unwrap().text().await.unwrap();
    let data = chunks(&text);
    let usage: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["usage"], json!({"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}), "{text}");

    // A stream that fails after it started: an error chunk, then [DONE].
    let failed = vec![
        (Duration::ZERO, ev("response.created", json!({"response": {"id": "resp_f", "status": "in_progress"}}))),
        (Duration::ZERO, ev("response.output_text.delta", json!({"item_id": "m", "delta": "par"}))),
        (
            Duration::ZERO,
            ev(
                "response.failed",
                json!({"response": {"id": "resp_f", "status": "failed",
            "error": {"code": "server_error", "message": "boom"}}}),
            ),
        ),
    ];
    up.push(Reply::Sse(failed.clone()));
    let resp = client()
        .post(bridge.url("/v1/chat/completions"))
        .json(&chat_body(json!({"stream": true})))
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    let data = chunks(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let error: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(error["error"]["message"], "boom", "{text}");
    assert!(data.iter().any(|d| d.contains("\"content\":\"par\"")));
    // The same failure without a stream is an error object.
    up.push(Reply::Sse(failed));
    let resp = client().post(bridge.url("/v1/chat/completions")).json(&chat_body(json!({}))).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "server_error");
    bridge.stop().await;
}

/// Turn 2 of a Chat session re-inserts turn 1's reasoning item: the upstream input is turn 1's input,
/// then the reasoning item byte for byte as the upstream produced it, then the assistant message. With the
/// replay off the reasoning is missing.
#[tokio::test]
async fn reasoning_is_replayed_on_turn_two_with_the_upstream_prefix_intact() {
    for replay in [true, false] {
        let emu = emulator().await;
        // Over HTTP upstream, so the emulator's log holds each whole translated turn.
        let file = format!("[chat]\nreasoning_replay = {replay}\n[upstream]\ntransport = \"http\"\n");
        let bridge = TestBridge::with(&format!("{}/v1", emu.base_url()), Options { file, ..Options::default() }).await;
        let mut messages =
            vec![json!({"role": "system", "content": "sys"}), json!({"role": "user", "content": "Say pong"})];
        let post = |messages: Vec<Value>| {
            let body = json!({"model": "gpt-5.5", "messages": messages, "reasoning_effort": "medium"});
            opencode_headers(client().post(bridge.url("/v1/chat/completions")), "ses_replay").json(&body).send()
        };
        let first: Value = post(messages.clone()).await.unwrap().json().await.unwrap();
        let answer = first["choices"][0]["message"]["content"].as_str().unwrap().to_owned();
        assert!(first["choices"][0]["message"]["reasoning_content"].as_str().is_some(), "{first}");
        bridge.settle().await;
        messages.push(json!({"role": "assistant", "content": answer}));
        messages.push(json!({"role": "user", "content": "Say pong again"}));
        let second = post(messages).await.unwrap();
        assert_eq!(second.status(), 200);
        let seen = emu.state().requests();
        assert_eq!(seen.len(), 2);
        let turn1 = seen[0].body["input"].as_array().unwrap().clone();
        let turn2 = seen[1].body["input"].as_array().unwrap().clone();
        assert_eq!(turn2[..turn1.len()], turn1[..], "turn 2 starts with turn 1's input");
        let reasoning = &turn2[turn1.len()];
        if replay {
            assert_eq!(reasoning["type"], "reasoning", "{reasoning}");
            assert!(reasoning["encrypted_content"].as_str().unwrap().starts_with("gAAAAA-emulator"));
            assert_eq!(turn2[turn1.len() + 1]["role"], "assistant");
            assert_eq!(turn2.len(), turn1.len() + 3);
        } else {
            assert_eq!(reasoning["role"], "assistant", "no replay: the assistant message follows turn 1's input");
            assert_eq!(turn2.len(), turn1.len() + 2);
        }
        if replay {
            // The same history under another upstream account (another client credential in passthrough)
            // or in another session gets nothing replayed.
            let body = json!({"model": "gpt-5.5", "messages": messages_again(&answer), "reasoning_effort": "medium"});
            for (auth, session) in [("Bearer sk-other-account", "ses_replay"), ("Bearer sk-test", "ses_other")] {
                let resp = client()
                    .post(bridge.url("/v1/chat/completions"))
                    .header("authorization", auth)
                    .header("x-session-id", session)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                let seen = emu.state().requests();
                let input = seen.last().unwrap().body["input"].as_array().unwrap().clone();
                assert!(input.iter().all(|i| i["type"] != "reasoning"), "{auth} {session}: nothing replayed");
            }
        }
        bridge.stop().await;
        emu.shutdown().await;
    }
}

#[tokio::test]
async fn models_are_listed_for_chat_clients() {
    let emu = emulator().await;
    let file = "models = [\"gpt-5.5\", \"gpt-5.4-mini\"]\n".to_owned();
    let bridge = TestBridge::with(&format!("{}/v1", emu.base_url()), Options { file, ..Options::default() }).await;
    let v: Value =
        client().get(bridge.url("/v1/models")).bearer_auth("sk-test").send().await.unwrap().json().await.unwrap();
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2, "{v}");
    assert_eq!(data[0]["id"], "gpt-5.5");
    assert!(data.iter().all(|m| m["id"].is_string() && m["object"] == "model"), "{v}");
    bridge.stop().await;
    emu.shutdown().await;
}

/// Through a ChatGPT-mode bridge the translated requests get the Codex shape (no rejected parameter,
/// `store:false`), the captured OpenCode Chat requests are served, and turn 2 of a session carries turn 1's
/// reasoning under the logged-in account.
#[tokio::test]
async fn captured_chat_requests_reach_the_codex_backend_in_codex_shape() {
    use crate::codex_support::{chatgpt_bridge, emulator as codex_emulator_up, login, upstream_bodies};
    let emu = codex_emulator_up().await;
    let dir = tempfile::tempdir().unwrap();
    let _tokens = login(&emu, dir.path()).await;
    let bridge = chatgpt_bridge(&emu, dir.path(), "[upstream]\ntransport = \"http\"").await;
    for capture in CAPTURES {
        let body: Value = serde_json::from_slice(&capture_body(capture)).unwrap();
        let resp = opencode_headers(client().post(bridge.url("/v1/chat/completions")), "ses_codex")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{capture}");
        let text = resp.text().await.unwrap();
        assert_eq!(chunks(&text).last().map(String::as_str), Some("[DONE]"), "{capture}: {text}");
        let sent = upstream_bodies(&emu);
        let last = &sent.last().unwrap().body;
        for rejected in codex_emulator::config::DEFAULT_REJECTED_PARAMS {
            assert!(last.get(*rejected).is_none(), "{capture}: {rejected} removed: {last}");
        }
        assert_eq!(last["store"], false);
        assert_eq!(last["prompt_cache_key"], "cache_ses_codex");
    }
    // Captures r02 (turn 1) and t2-continue (its turn 2) in order: the replayed reasoning sits before "pong".
    let sent = upstream_bodies(&emu);
    let turn2 = sent[2].body["input"].as_array().unwrap();
    let turn1 = sent[1].body["input"].as_array().unwrap();
    assert_eq!(turn2[..turn1.len()], turn1[..]);
    assert_eq!(turn2[turn1.len()]["type"], "reasoning", "{:?}", turn2.iter().map(|i| &i["type"]).collect::<Vec<_>>());
    bridge.stop().await;
    emu.shutdown().await;
}

/// A tool whose name is over 64 characters reaches the upstream shortened, and the tool call the upstream
/// makes with the short name reaches the client under the client's own name, streamed and not.
#[tokio::test]
async fn a_long_tool_name_is_restored_in_tool_calls() {
    let emu = emulator().await;
    let bridge = TestBridge::start(&format!("{}/v1", emu.base_url())).await;
    let long = format!("mcp__workspace_server__{}", "run_a_shell_command_".repeat(3));
    let tool = json!([{"type": "function", "function": {"name": long, "description": "run",
        "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}}]);
    for stream in [false, true] {
        let body = json!({"model": "gpt-5.5", "stream": stream, "tools": tool,
            "messages": [{"role": "user", "content": "TOOLTEST now"}]});
        let resp =
            client().post(bridge.url("/v1/chat/completions")).bearer_auth("sk-test").json(&body).send().await.unwrap();
        let text = resp.text().await.unwrap();
        let name = if stream {
            let first_call = chunks(&text)
                .iter()
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .find_map(|c| c.pointer("/choices/0/delta/tool_calls/0/function/name").cloned());
            first_call.unwrap()
        } else {
            serde_json::from_str::<Value>(&text).unwrap()["choices"][0]["message"]["tool_calls"][0]["function"]["name"]
                .clone()
        };
        assert_eq!(name, long.as_str(), "stream={stream}: {text}");
        let sent = emu.state().requests();
        assert_eq!(sent.last().unwrap().body["tools"][0]["name"], short_tool_name(&long).as_str());
    }
    bridge.stop().await;
    emu.shutdown().await;
}

/// The turn-2 history of the replay test.
fn messages_again(answer: &str) -> Vec<Value> {
    vec![
        json!({"role": "system", "content": "sys"}),
        json!({"role": "user", "content": "Say pong"}),
        json!({"role": "assistant", "content": answer}),
        json!({"role": "user", "content": "Say pong again"}),
    ]
}
