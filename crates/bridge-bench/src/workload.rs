//! The workload generator: scenarios shaped like the real clients' traffic (fixtures/captures), deterministic
//! from a seed.
//!
//! Codex sessions follow Codex 0.169: base instructions as the first developer message, an environment
//! context, `prompt_cache_key` = thread id, `session-id`/`thread-id`/`x-client-request-id` headers, tool loops as
//! `function_call` + `function_call_output` items with ids. OpenCode sessions follow OpenCode 1.18: a system
//! prompt with the date and working directory as a developer message, `prompt_cache_key` = session id, a
//! title request without key or tools first. Sizes: startup contexts of 8k-25k tokens, turns of a few hundred
//! to a few thousand tokens (one generated word is about one o200k token).

use serde_json::{Value, json};

/// One request of a scenario.
#[derive(Debug, Clone)]
pub struct Request {
    /// Virtual time of the request (Unix ms), sent as `x-emulator-time`.
    pub at_ms: u64,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

/// A named sequence of requests in time order.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: &'static str,
    pub description: &'static str,
    pub requests: Vec<Request>,
}

/// Every scenario name, in report order.
pub const NAMES: &[&str] = &[
    "multi-turn",
    "tool-loop",
    "resume",
    "opencode",
    "forks-explicit",
    "forks-implicit",
    "subagents",
    "soft-overrides",
    "model-switch",
    "compaction",
    "orchestrator",
    "day-rollover",
    "no-key",
];

/// The scenarios `codex-bridge demo` replays.
pub const DEMO: &[&str] = &["multi-turn", "opencode", "forks-explicit", "orchestrator"];

/// 2026-11-23T00:00:00Z, the start of every scenario's clock.
pub const T0_MS: u64 = 1_795_392_000_000;

/// A scenario name as `&'static str`: a known name, or (for names read from a trace) a leaked copy, once
/// per distinct name per process.
pub fn intern(name: &str) -> &'static str {
    if let Some(known) = NAMES.iter().find(|n| **n == name) {
        return known;
    }
    static SEEN: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(s) = seen.iter().find(|s| **s == name) {
        return s;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    seen.push(leaked);
    leaked
}

/// Builds a scenario by name.
pub fn scenario(name: &str, seed: u64) -> Option<Scenario> {
    let mut g = Gen::new(seed ^ blake3_u64(name));
    let (description, requests) = match name {
        "multi-turn" => ("one Codex thread, 20 turns", codex_session(&mut g, "thread-a", 12_000, 20, 60_000, T0_MS)),
        "tool-loop" => ("Codex turns with 4 tool rounds each", tool_loop(&mut g)),
        "resume" => ("Codex thread resumed after a 3-minute pause", resume(&mut g)),
        "opencode" => {
            ("OpenCode session with its title request, 10 turns", opencode(&mut g, "ses_A1", 10, T0_MS, "2026-11-23"))
        }
        "forks-explicit" => ("a 30k-token thread forked 3 times with fork hints", forks(&mut g, true)),
        "forks-implicit" => ("a 30k-token thread continued by 3 new sessions without hints", forks(&mut g, false)),
        "subagents" => ("a parent thread spawning 4 subagents with x-parent-session-id", subagents(&mut g)),
        "soft-overrides" => ("effort, verbosity and service tier changing between turns", soft_overrides(&mut g)),
        "model-switch" => ("a thread that switches model halfway", model_switch(&mut g)),
        "compaction" => ("a thread whose history is compacted after 10 turns", compaction(&mut g)),
        "orchestrator" => ("8 fresh threads with one 12k-token startup context", orchestrator(&mut g)),
        "day-rollover" => {
            ("an OpenCode session across midnight (the dated system prompt changes)", day_rollover(&mut g))
        }
        "no-key" => ("a client with no key and no session headers, 10 turns", no_key(&mut g)),
        _ => return None,
    };
    let name = NAMES.iter().find(|n| **n == name).copied()?;
    Some(Scenario { name, description, requests })
}

/// Deterministic pseudo-random words (xorshift64*).
pub struct Gen(u64);

impl Gen {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// About `tokens` o200k tokens of prose.
    pub fn text(&mut self, tokens: usize) -> String {
        const WORDS: &[&str] = &[
            "the", "file", "function", "returns", "value", "error", "test", "module", "request", "cache", "stream",
            "session", "build", "change", "config", "server", "client", "token", "prefix", "branch", "commit",
            "review", "parse", "render", "update", "handler", "state", "index", "query", "result", "check", "write",
            "read",
        ];
        let mut out = String::with_capacity(tokens * 7);
        for i in 0..tokens {
            if i > 0 {
                out.push(if i % 17 == 0 { '\n' } else { ' ' });
            }
            out.push_str(WORDS[(self.next() % WORDS.len() as u64) as usize]);
        }
        out
    }

    /// Between `lo` and `hi` tokens of prose.
    pub fn text_in(&mut self, lo: u64, hi: u64) -> String {
        let n = self.range(lo, hi) as usize;
        self.text(n)
    }

    /// A hex id of 16 characters.
    pub fn id(&mut self) -> String {
        format!("{:016x}", self.next())
    }
}

fn blake3_u64(s: &str) -> u64 {
    let h = blake3::hash(s.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(b)
}

fn msg(role: &str, text: String) -> Value {
    let kind = if role == "assistant" { "output_text" } else { "input_text" };
    json!({"type": "message", "role": role, "content": [{"type": kind, "text": text}]})
}

fn tools() -> Value {
    json!([
        {"type": "function", "name": "exec_command", "description": "Runs a shell command and returns its output.", "strict": false,
         "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}, "workdir": {"type": "string"}}, "required": ["cmd"]}},
        {"type": "function", "name": "apply_patch", "description": "Applies a patch to files in the workspace.", "strict": false,
         "parameters": {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}},
        {"type": "function", "name": "update_plan", "description": "Updates the task plan.", "strict": false,
         "parameters": {"type": "object", "properties": {"plan": {"type": "array", "items": {"type": "object"}}}, "required": ["plan"]}}
    ])
}

/// The startup items of a Codex thread: base instructions and environment context.
fn codex_startup(g: &mut Gen, startup_tokens: usize) -> Vec<Value> {
    let mut base = Gen::new(0xC0DE_0169);
    let instructions = base.text(startup_tokens);
    let _ = g;
    vec![
        msg("developer", instructions),
        msg(
            "user",
            "<environment_context>\n  <cwd>/workspace/project</cwd>\n  <shell>bash</shell>\n</environment_context>"
                .to_owned(),
        ),
    ]
}

fn codex_body(model: &str, input: &[Value], key: Option<&str>) -> Value {
    let mut body = json!({
        "model": model, "stream": true, "input": input, "tools": tools(), "tool_choice": "auto",
        "parallel_tool_calls": true, "reasoning": {"effort": "medium"}, "store": false,
        "include": ["reasoning.encrypted_content"], "text": {"verbosity": "low"},
    });
    if let (Some(k), Some(obj)) = (key, body.as_object_mut()) {
        obj.insert("prompt_cache_key".to_owned(), Value::from(k));
    }
    body
}

fn codex_headers(thread: &str) -> Vec<(String, String)> {
    vec![
        ("session-id".into(), thread.into()),
        ("thread-id".into(), thread.into()),
        ("x-client-request-id".into(), thread.into()),
        ("originator".into(), "codex_exec".into()),
    ]
}

/// A Codex thread of `turns` turns starting at `t0`, `gap_ms` apart; returns its requests.
fn codex_session(g: &mut Gen, thread: &str, startup: usize, turns: usize, gap_ms: u64, t0: u64) -> Vec<Request> {
    let mut input = codex_startup(g, startup);
    let mut out = Vec::new();
    for turn in 0..turns {
        let tokens = g.range(200, 2500) as usize;
        input.push(msg("user", g.text(tokens)));
        out.push(Request {
            at_ms: t0 + turn as u64 * gap_ms,
            headers: codex_headers(thread),
            body: codex_body("gpt-5.5", &input, Some(thread)),
        });
        input.push(msg("assistant", g.text_in(50, 400)));
    }
    out
}

fn tool_loop(g: &mut Gen) -> Vec<Request> {
    let thread = "thread-tools";
    let mut input = codex_startup(g, 10_000);
    let mut out = Vec::new();
    let mut t = T0_MS;
    for _ in 0..3 {
        input.push(msg("user", g.text(300)));
        for round in 0..5 {
            out.push(Request {
                at_ms: t,
                headers: codex_headers(thread),
                body: codex_body("gpt-5.5", &input, Some(thread)),
            });
            t += 8_000;
            if round < 4 {
                let call = format!("call_{}", g.id());
                input.push(json!({"type": "function_call", "id": format!("fc_{}", g.id()), "name": "exec_command", "arguments": "{\"cmd\":\"cargo test\"}", "call_id": call}));
                input.push(json!({"type": "function_call_output", "call_id": call, "output": g.text_in(300, 3000)}));
            }
        }
        input.push(msg("assistant", g.text(200)));
        t += 60_000;
    }
    out
}

fn resume(g: &mut Gen) -> Vec<Request> {
    let mut first = codex_session(g, "thread-resume", 12_000, 10, 30_000, T0_MS);
    let mut g2 = Gen::new(77);
    let mut second = codex_session(&mut g2, "thread-resume", 12_000, 5, 30_000, T0_MS + 10 * 30_000 + 180_000);
    // The resumed process replays the same history: prefix the second part with the first's last input.
    let history = first.last().map(|r| r.body["input"].as_array().cloned().unwrap_or_default()).unwrap_or_default();
    for r in &mut second {
        let tail: Vec<Value> = r.body["input"].as_array().map(|a| a[2..].to_vec()).unwrap_or_default();
        let mut input = history.clone();
        input.extend(tail);
        r.body["input"] = Value::Array(input);
    }
    first.extend(second);
    first
}

fn opencode_system(date: &str, g: &mut Gen) -> String {
    let mut base = Gen::new(0x0C0D_E118);
    let _ = g;
    format!(
        "You are OpenCode, the best coding agent.\n{}\nWorking directory: /workspace/oc-proj\nToday's date: {date}\n",
        base.text(9_000)
    )
}

fn opencode_headers(session: &str) -> Vec<(String, String)> {
    vec![
        ("session-id".into(), session.into()),
        ("x-session-affinity".into(), session.into()),
        ("x-session-id".into(), session.into()),
        ("originator".into(), "opencode".into()),
    ]
}

fn opencode(g: &mut Gen, session: &str, turns: usize, t0: u64, date: &str) -> Vec<Request> {
    let system = opencode_system(date, g);
    let first_prompt = g.text(60);
    let mut out = vec![Request {
        at_ms: t0,
        headers: vec![("originator".into(), "opencode".into())],
        body: json!({"model": "gpt-5.4-mini", "stream": true, "store": false, "input": [
            msg("developer", "Generate a short title for this conversation.".to_owned()), msg("user", first_prompt.clone())]}),
    }];
    let mut input = vec![msg("developer", system)];
    for turn in 0..turns {
        let text = if turn == 0 { first_prompt.clone() } else { g.text_in(200, 2000) };
        input.push(msg("user", text));
        let body = json!({"model": "gpt-5.5", "stream": true, "store": false, "input": input, "tools": tools(),
            "prompt_cache_key": session, "reasoning": {"effort": "medium", "summary": "auto"}, "include": ["reasoning.encrypted_content"]});
        out.push(Request { at_ms: t0 + 1_000 + turn as u64 * 45_000, headers: opencode_headers(session), body });
        input.push(msg("assistant", g.text_in(50, 300)));
    }
    out
}

fn forks(g: &mut Gen, explicit: bool) -> Vec<Request> {
    let base = "thread-base";
    let mut out = codex_session(g, base, 12_000, 10, 30_000, T0_MS);
    let history = out.last().map(|r| r.body["input"].as_array().cloned().unwrap_or_default()).unwrap_or_default();
    for fork in 1..=3u64 {
        let id = format!("thread-fork-{fork}");
        let mut input = history.clone();
        input.push(msg("user", g.text(400)));
        let mut headers = codex_headers(&id);
        if explicit {
            headers.push(("x-parent-session-id".into(), base.into()));
        }
        let mut body = codex_body("gpt-5.5", &input, Some(&id));
        if explicit {
            body["metadata"] = json!({"forkId": format!("fork-{fork}"), "parentConversationId": base});
        }
        out.push(Request { at_ms: T0_MS + 10 * 30_000 + fork * 5_000, headers, body });
    }
    out
}

fn subagents(g: &mut Gen) -> Vec<Request> {
    let parent = "thread-parent";
    let mut out = codex_session(g, parent, 14_000, 3, 30_000, T0_MS);
    for sub in 1..=4u64 {
        let id = format!("thread-sub-{sub}");
        let mut input = codex_startup(g, 14_000);
        input.push(msg("user", g.text(800)));
        let mut headers = codex_headers(&id);
        headers.push(("x-parent-session-id".into(), parent.into()));
        out.push(Request {
            at_ms: T0_MS + 100_000 + sub * 2_000,
            headers,
            body: codex_body("gpt-5.5", &input, Some(&id)),
        });
    }
    out
}

fn soft_overrides(g: &mut Gen) -> Vec<Request> {
    let mut out = codex_session(g, "thread-soft", 12_000, 10, 40_000, T0_MS);
    let efforts = ["low", "medium", "high", "xhigh"];
    for (i, r) in out.iter_mut().enumerate() {
        r.body["reasoning"]["effort"] = Value::from(efforts[i % efforts.len()]);
        r.body["text"]["verbosity"] = Value::from(if i % 2 == 0 { "low" } else { "high" });
        if i % 3 == 0 {
            r.body["service_tier"] = Value::from("priority");
        }
    }
    out
}

fn model_switch(g: &mut Gen) -> Vec<Request> {
    let mut out = codex_session(g, "thread-switch", 12_000, 12, 40_000, T0_MS);
    for r in out.iter_mut().skip(6) {
        r.body["model"] = Value::from("gpt-5.6-codex");
    }
    out
}

fn compaction(g: &mut Gen) -> Vec<Request> {
    let thread = "thread-compact";
    let mut out = codex_session(g, thread, 12_000, 10, 40_000, T0_MS);
    let startup = codex_startup(g, 12_000);
    let mut input = startup;
    input.push(msg("user", format!("<summary>{}</summary>", g.text(1500))));
    for turn in 0..5u64 {
        input.push(msg("user", g.text(500)));
        out.push(Request {
            at_ms: T0_MS + 10 * 40_000 + turn * 40_000,
            headers: codex_headers(thread),
            body: codex_body("gpt-5.5", &input, Some(thread)),
        });
        input.push(msg("assistant", g.text(150)));
    }
    out
}

fn orchestrator(g: &mut Gen) -> Vec<Request> {
    (0..8u64)
        .map(|i| {
            let id = format!("thread-worker-{i}");
            let mut input = codex_startup(g, 12_000);
            input.push(msg("user", g.text(300)));
            Request {
                at_ms: T0_MS + i * 10_000,
                headers: codex_headers(&id),
                body: codex_body("gpt-5.5", &input, Some(&id)),
            }
        })
        .collect()
}

fn day_rollover(g: &mut Gen) -> Vec<Request> {
    let t0 = T0_MS - 6 * 60_000;
    let mut before = opencode(g, "ses_night", 6, t0, "2026-11-22");
    let mut g2 = Gen::new(99);
    let after = opencode(&mut g2, "ses_night", 6, t0 + 6 * 45_000 + 30_000, "2026-11-23");
    before.extend(after.into_iter().skip(1));
    before
}

fn no_key(g: &mut Gen) -> Vec<Request> {
    let mut out = codex_session(g, "unused", 10_000, 10, 30_000, T0_MS);
    for r in &mut out {
        r.headers.clear();
        if let Some(obj) = r.body.as_object_mut() {
            obj.remove("prompt_cache_key");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_exists_is_deterministic_and_time_ordered() {
        for name in NAMES {
            let a = scenario(name, 1).unwrap();
            let b = scenario(name, 1).unwrap();
            assert_eq!(a.requests.len(), b.requests.len(), "{name}");
            assert!(a.requests.iter().zip(&b.requests).all(|(x, y)| x.body == y.body && x.at_ms == y.at_ms), "{name}");
            assert!(a.requests.windows(2).all(|w| w[0].at_ms <= w[1].at_ms), "{name} is not in time order");
            assert!(a.requests.len() >= 5, "{name}");
        }
        assert!(scenario("nope", 1).is_none());
    }

    #[test]
    fn seeds_change_the_text() {
        let a = scenario("multi-turn", 1).unwrap();
        let b = scenario("multi-turn", 2).unwrap();
        assert_ne!(a.requests[0].body, b.requests[0].body);
    }
}
