//! Shared helpers: start an emulator, build bodies, parse SSE.

use codex_emulator::{EmulatorConfig, RunningEmulator, TokenizerMode};
use futures_util::StreamExt;
use serde_json::{Value, json};

pub async fn start(config: EmulatorConfig) -> RunningEmulator {
    codex_emulator::spawn(config).await.unwrap()
}

/// A config with the fast tokenizer (token counts = ceil(canonical bytes / 4) per item).
pub fn fast() -> EmulatorConfig {
    EmulatorConfig { tokenizer: TokenizerMode::Fast, ..EmulatorConfig::default() }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

pub fn user(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

/// A minimal Codex-like streaming body.
pub fn body(input: Vec<Value>) -> Value {
    json!({"model": "gpt-5.5", "stream": true, "store": false, "input": input, "prompt_cache_key": "k1"})
}

pub async fn post_api(emu: &RunningEmulator, body: &Value, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().post(format!("{}/v1/responses", emu.base_url())).bearer_auth("sk-test").json(body);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[derive(Debug, Default)]
pub struct Sse {
    pub events: Vec<(String, Value)>,
    /// The body ended with a transport error (cut stream).
    pub error: bool,
}

impl Sse {
    pub fn names(&self) -> Vec<&str> {
        self.events.iter().map(|(n, _)| n.as_str()).collect()
    }
    pub fn last(&self) -> &Value {
        &self.events.last().unwrap().1
    }
    pub fn usage(&self) -> Value {
        let (name, data) = self.events.last().unwrap();
        assert_eq!(name, "response.completed");
        data["response"]["usage"].clone()
    }
}

pub fn parse_sse(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = n.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            let v: Value = serde_json::from_str(&data).unwrap();
            assert_eq!(v["type"], name.as_str(), "type field matches event name");
            (name, v)
        })
        .collect()
}

pub async fn read_sse(resp: reqwest::Response) -> Sse {
    let mut buf = Vec::new();
    let mut error = false;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => buf.extend_from_slice(&b),
            Err(_) => {
                error = true;
                break;
            }
        }
    }
    let text = String::from_utf8(buf).unwrap();
    let events = parse_sse(&text);
    for (i, (_, v)) in events.iter().enumerate() {
        assert_eq!(v["sequence_number"], i, "sequence numbers count from 0");
    }
    Sse { events, error }
}

/// Turn with a long user text (fast tokenizer: about `bytes / 4` tokens).
pub fn long_text(n_bytes: usize, seed: char) -> String {
    std::iter::repeat_n(seed, n_bytes).collect()
}
