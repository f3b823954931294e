//! Rollouts written by the journal match the Codex 0.169.0 examples line for line in shape.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bridge_journal::rollout::{Rollout, all, read_lines};
use bridge_journal::turn::Writer;
use bridge_journal::{InputView, JournalOptions, ParsedBody, RequestView};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::support::{EXAMPLES, assistant, plan_call, turn, user};

/// `(type, payload.type)` → the payload keys seen in the Codex examples.
fn example_shapes() -> BTreeMap<(String, Option<String>), BTreeSet<String>> {
    let mut shapes: BTreeMap<(String, Option<String>), BTreeSet<String>> = BTreeMap::new();
    for f in ["codex-rollout-exec-s1-3turns-with-tool.jsonl", "codex-rollout-tui-s1-2turns.jsonl"] {
        for line in std::fs::read_to_string(format!("{EXAMPLES}{f}")).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let key = (v["type"].as_str().unwrap().to_owned(), v["payload"]["type"].as_str().map(str::to_owned));
            shapes.entry(key).or_default().extend(v["payload"].as_object().unwrap().keys().cloned());
        }
    }
    shapes
}

fn three_turns(data: &Path) {
    let mut writer = Writer::new(data, &JournalOptions::default());
    let base = serde_json::json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]});
    let env = user("<environment_context>\n  <cwd>/tmp/x</cwd>\n</environment_context>");
    let mut input = vec![base, env, user("Say pong")];
    writer.apply(turn("01a20700-84bd-7fe0-a14b-b42097e1dc55", &input, vec![assistant("pong")], None)).unwrap();
    input.push(assistant("pong"));
    input.push(user("TOOLTEST plan it"));
    let call = plan_call("update_plan", &[("Write parser", "in_progress")]);
    writer.apply(turn("01a20700-84bd-7fe0-a14b-b42097e1dc55", &input, vec![call.clone()], None)).unwrap();
    input.push(call);
    input.push(serde_json::json!({"type": "function_call_output", "call_id": "call_1", "output": "Plan updated"}));
    writer.apply(turn("01a20700-84bd-7fe0-a14b-b42097e1dc55", &input, vec![assistant("done")], None)).unwrap();
}

#[test]
fn every_line_parses_and_matches_the_codex_shapes() {
    let dir = tempfile::tempdir().unwrap();
    three_turns(dir.path());
    let files = all(dir.path());
    assert_eq!(files.len(), 1);
    let rel = files[0].strip_prefix(dir.path()).unwrap().to_string_lossy().into_owned();
    let parts: Vec<&str> = rel.split('/').collect();
    assert_eq!(parts[0], "sessions");
    assert!(parts[1].len() == 4 && parts[2].len() == 2 && parts[3].len() == 2, "{rel}");
    assert!(
        parts[4].starts_with("rollout-") && parts[4].ends_with("-01a20700-84bd-7fe0-a14b-b42097e1dc55.jsonl"),
        "{rel}"
    );

    let text = std::fs::read_to_string(&files[0]).unwrap();
    let shapes = example_shapes();
    let mut seen_types = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("line {n} does not parse: {e}"));
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["timestamp", "ordinal", "type", "payload"], "line {n}");
        assert_eq!(v["ordinal"], n as u64);
        let ts = v["timestamp"].as_str().unwrap();
        assert!(ts.len() == 24 && ts.ends_with('Z') && &ts[10..11] == "T", "{ts}");
        let kind = v["type"].as_str().unwrap().to_owned();
        let sub = v["payload"]["type"].as_str().map(str::to_owned);
        seen_types.insert((kind.clone(), sub.clone()));
        if kind == "response_item" {
            continue; // the client's own items, passed through unchanged
        }
        if sub.as_deref() == Some("user_message") {
            // Not in the 0.169.0 examples (that build indexes threads in SQLite), but required by Codex's
            // rollout scan to list a file (codex-wire.md §11.1; docs/rollouts.md): {type, message, images}.
            let keys: Vec<&str> = v["payload"].as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys, ["type", "message", "images"]);
            continue;
        }
        let allowed =
            shapes.get(&(kind.clone(), sub.clone())).unwrap_or_else(|| panic!("{kind}/{sub:?} not in the examples"));
        for key in v["payload"].as_object().unwrap().keys() {
            let documented = kind == "session_meta" && key == "git"; // SessionMetaLine.git, codex-wire.md §11.1
            assert!(allowed.contains(key) || documented, "{kind}/{sub:?} field {key} is not in the examples");
        }
    }
    for expected in [
        ("session_meta", None),
        ("turn_context", None),
        ("event_msg", Some("task_started")),
        ("event_msg", Some("token_count")),
        ("event_msg", Some("task_complete")),
        ("response_item", Some("message")),
        ("response_item", Some("function_call")),
        ("response_item", Some("function_call_output")),
        ("event_msg", Some("user_message")),
    ] {
        assert!(seen_types.contains(&(expected.0.to_owned(), expected.1.map(str::to_owned))), "{expected:?} missing");
    }
    let lines = read_lines(&files[0]).unwrap();
    let meta = &lines[0]["payload"];
    assert_eq!(meta["id"], "01a20700-84bd-7fe0-a14b-b42097e1dc55");
    assert_eq!(meta["base_instructions"]["text"], "You are Codex.");
    let items: Vec<&Value> = lines.iter().filter(|l| l["type"] == "response_item").map(|l| &l["payload"]).collect();
    assert_eq!(
        items.len(),
        7,
        "env, prompt, reply, prompt, call, output, reply: each once, base instructions in session_meta"
    );
    assert!(items.iter().all(|i| i["role"] != "developer"));
    let totals: Vec<u64> = lines
        .iter()
        .filter_map(|l| l["payload"].pointer("/info/total_token_usage/input_tokens").and_then(Value::as_u64))
        .collect();
    assert_eq!(totals, [100, 200, 300]);
}

#[test]
fn a_restart_continues_the_same_file_and_ordinals() {
    let dir = tempfile::tempdir().unwrap();
    three_turns(dir.path());
    let path = all(dir.path()).remove(0);
    let before = read_lines(&path).unwrap().len();
    let mut writer = Writer::new(dir.path(), &JournalOptions::default());
    let input = vec![
        serde_json::json!({"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]}),
        user("<environment_context>"),
        user("Say pong"),
        assistant("pong"),
        user("TOOLTEST plan it"),
        plan_call("update_plan", &[("Write parser", "in_progress")]),
        serde_json::json!({"type": "function_call_output", "call_id": "call_1", "output": "Plan updated"}),
        assistant("done"),
        user("again"),
    ];
    writer.apply(turn("01a20700-84bd-7fe0-a14b-b42097e1dc55", &input, vec![assistant("pong 2")], None)).unwrap();
    assert_eq!(all(dir.path()), vec![path.clone()]);
    let lines = read_lines(&path).unwrap();
    let ordinals: Vec<u64> = lines.iter().map(|l| l["ordinal"].as_u64().unwrap()).collect();
    assert_eq!(ordinals, (0..lines.len() as u64).collect::<Vec<_>>());
    let new_items: Vec<&Value> =
        lines[before..].iter().filter(|l| l["type"] == "response_item").map(|l| &l["payload"]).collect();
    assert_eq!(new_items.len(), 2, "only the new prompt and the reply: {new_items:?}");
    assert_eq!(lines.iter().filter(|l| l["type"] == "session_meta").count(), 1);
}

#[test]
fn a_torn_tail_is_cut_before_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    three_turns(dir.path());
    let path = all(dir.path()).remove(0);
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"timestamp\":\"2026-").unwrap();
    let rollout = Rollout::open(path.clone()).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), good);
    assert_eq!(rollout.recorded_items, 7);
}

#[test]
fn compaction_writes_a_compacted_line() {
    let dir = tempfile::tempdir().unwrap();
    three_turns(dir.path());
    let mut writer = Writer::new(dir.path(), &JournalOptions::default());
    let summary = user("<summary>earlier work</summary>");
    writer
        .apply(turn("01a20700-84bd-7fe0-a14b-b42097e1dc55", &[summary, user("next")], vec![assistant("ok")], None))
        .unwrap();
    let lines = read_lines(&all(dir.path())[0]).unwrap();
    let compacted = lines.iter().find(|l| l["type"] == "compacted").unwrap();
    assert_eq!(compacted["payload"]["replacement_history"].as_array().unwrap().len(), 2);
    assert_eq!(Rollout::open(all(dir.path())[0].clone()).unwrap().recorded_items, 3);
}

/// A client retry (the same input again) records no `compacted` line and no second history prompt, and
/// many sessions each get their own file.
#[test]
fn a_retried_input_is_not_a_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Writer::new(dir.path(), &JournalOptions::default());
    let input = [user("do the thing")];
    for _ in 0..3 {
        writer.apply(turn("ses-retry", &input, vec![assistant("done")], None)).unwrap();
    }
    for i in 0..20 {
        writer.apply(turn(&format!("ses-{i}"), &[user("hi")], vec![assistant("ok")], None)).unwrap();
    }
    let files = all(dir.path());
    assert_eq!(files.len(), 21);
    let retried = files
        .iter()
        .find(|f| read_lines(f).unwrap().iter().filter(|l| l["payload"]["type"] == "task_started").count() == 3);
    let lines = read_lines(retried.expect("the retried session's rollout")).unwrap();
    assert!(lines.iter().all(|l| l["type"] != "compacted"), "a retry is not a rewrite");
    let prompts = lines.iter().filter(|l| l["payload"]["type"] == "user_message").count();
    assert_eq!(prompts, 1, "the prompt is recorded once");
    let history = std::fs::read_to_string(dir.path().join("history.jsonl")).unwrap();
    assert_eq!(history.matches("do the thing").count(), 1);
}

/// A large prompt is stored once: in full in its `response_item` line, and only as a short preview in the
/// `user_message` event Codex needs to list the rollout (finding 9: 30 MB prompts wrote 63 MB rollouts).
/// With the default `[history]` cap its history line is cut to an eighth of the cap.
#[test]
fn a_large_prompt_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let options = JournalOptions::default();
    assert_eq!(options.history_max_bytes, Some(10 * 1024 * 1024), "history.jsonl is capped by default");
    let mut writer = Writer::new(dir.path(), &options);
    let prompt = "fix this \"log\":\n".repeat(128 * 1024); // 2 MiB, with characters JSON escapes
    let escaped = serde_json::to_string(&prompt).unwrap().len() as u64;
    writer.apply(turn("ses-big", &[user(&prompt)], vec![assistant("ok")], None)).unwrap();
    writer
        .apply(turn("ses-big", &[user(&prompt), assistant("ok"), user("and now?")], vec![assistant("k")], None))
        .unwrap();

    let path = all(dir.path()).remove(0);
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size > escaped && size < escaped + 16 * 1024, "rollout {size} bytes for a {escaped}-byte prompt");
    let lines = read_lines(&path).unwrap();
    let item = lines.iter().find(|l| l["type"] == "response_item").unwrap();
    assert_eq!(item["payload"]["content"][0]["text"], prompt.as_str(), "the message item keeps the full text");
    let events: Vec<&str> = lines
        .iter()
        .filter(|l| l["payload"]["type"] == "user_message")
        .map(|l| l["payload"]["message"].as_str().unwrap())
        .collect();
    assert_eq!(events.len(), 2);
    assert!(events[0].len() < 4200 && prompt.starts_with(events[0].split('…').next().unwrap()), "{}", events[0].len());
    assert!(events[0].ends_with(&format!("of {} bytes; the full prompt is in the turn's message item]", prompt.len())));
    assert_eq!(events[1], "and now?", "short prompts are repeated whole");

    let history = std::fs::read_to_string(dir.path().join("history.jsonl")).unwrap();
    let first = history.lines().next().unwrap();
    assert!(first.len() as u64 <= 10 * 1024 * 1024 / 8, "history line of {} bytes", first.len());
    assert!(
        first.ends_with(&format!("…[codex-bridge: cut from {} bytes]\"}}", prompt.len())),
        "{}",
        &first[first.len() - 80..]
    );
    assert!(history.lines().nth(1).unwrap().contains("and now?"));
}

#[test]
fn a_pretty_printed_body_still_gives_one_line_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Writer::new(dir.path(), &JournalOptions::default());
    let mut record = turn("ses-pretty", &[user("first"), assistant("ok"), user("second")], vec![assistant("k")], None);
    let body = json!({"model": "gpt-5.5", "input": [user("first"), assistant("ok"), user("second")]});
    record.request = Arc::new(ParsedBody::parse(&serde_json::to_vec_pretty(&body).unwrap()).unwrap());
    writer.apply(record).unwrap();
    let path = all(dir.path()).remove(0);
    let text = std::fs::read_to_string(&path).unwrap();
    for line in text.lines() {
        let parsed: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(parsed["type"].is_string());
    }
    let items: Vec<Value> = read_lines(&path).unwrap().into_iter().filter(|l| l["type"] == "response_item").collect();
    assert_eq!(items.len(), 4, "three input items and the reply");
    assert_eq!(items[2]["payload"]["content"][0]["text"], "second");
    use std::os::unix::fs::PermissionsExt as _;
    let mut dir_of = path.parent();
    while let Some(d) = dir_of.filter(|d| d.starts_with(dir.path()) && *d != dir.path()) {
        let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} has mode {mode:o}", d.display());
        dir_of = d.parent();
    }
}

/// A request the bridge parsed, seen through the view only: there is no body to parse at all, and the
/// writer still records the instructions, the model, every item as sent and the body size given.
#[derive(Debug)]
struct Parsed {
    items: Vec<Box<RawValue>>,
    reads: AtomicUsize,
}

impl RequestView for Parsed {
    fn model(&self) -> Option<&str> {
        Some("gpt-view")
    }
    fn instructions(&self) -> Option<String> {
        Some("view instructions".into())
    }
    fn input(&self) -> InputView<'_> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        InputView::Items(&self.items)
    }
    fn body_len(&self) -> usize {
        12_345
    }
}

#[test]
fn the_writer_reads_the_parsed_request_and_never_a_body() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Writer::new(dir.path(), &JournalOptions::default());
    let mut record = turn("ses-view", &[], vec![assistant("k")], None);
    let items = [r#"{"type":"message","role":"user","content":[{"type":"input_text","text":"from the view"}]}"#];
    let view = Arc::new(Parsed {
        items: items.iter().map(|i| RawValue::from_string((*i).to_owned()).unwrap()).collect(),
        reads: AtomicUsize::new(0),
    });
    record.request = view.clone();
    writer.apply(record).unwrap();
    assert_eq!(view.reads.load(Ordering::Relaxed), 1, "the input is taken once");
    let path = all(dir.path()).remove(0);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(items[0]), "the item's bytes as the bridge parsed them");
    let lines = read_lines(&path).unwrap();
    let meta = lines.iter().find(|l| l["type"] == "session_meta").unwrap();
    assert_eq!(meta["payload"]["base_instructions"]["text"], "view instructions");
    let context = lines.iter().find(|l| l["type"] == "turn_context").unwrap();
    assert_eq!(context["payload"]["model"], "gpt-view");
}
