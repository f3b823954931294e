//! `codex-bridge sessions digest ID`: a readable Markdown journal of one session built from its rollout
//! (turns, prompts, replies, tool calls, plan changes, token counts) and its short-term project files
//! (the commit each turn saw, drift events), tying the work to commits.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::JournalError;
use crate::clock::thread_uuid;
use crate::lines::{message_text, shorten};
use crate::project::{SessionState, all_projects};
use crate::rollout::{Rollout, read_lines};

#[derive(Default)]
struct Turn {
    ts: String,
    items: Vec<Value>,
    tokens: Option<Value>,
}

/// Builds the digest of session `id` (the client's id or the rollout's thread id).
pub fn digest(data_dir: &Path, id: &str) -> Result<(PathBuf, String), JournalError> {
    let thread = thread_uuid(id);
    let path = Rollout::find(data_dir, &thread)
        .ok_or_else(|| JournalError::NotFound(format!("no rollout for session {id}")))?;
    let lines = read_lines(&path)?;
    let mut out = String::new();
    let meta = lines.iter().find(|l| l["type"] == "session_meta").map(|l| l["payload"].clone()).unwrap_or_default();
    let _ = writeln!(out, "# Session {thread}\n");
    let _ = writeln!(out, "- Client session: `{id}`");
    let _ = writeln!(out, "- Started: {}", meta["timestamp"].as_str().unwrap_or("?"));
    let _ = writeln!(out, "- Working directory: `{}`", meta["cwd"].as_str().unwrap_or("?"));
    let _ = writeln!(out, "- Client: {}", meta["originator"].as_str().unwrap_or("?"));
    if let Some(git) = meta.get("git") {
        let _ = writeln!(
            out,
            "- Git at start: {} @ {}",
            git["branch"].as_str().unwrap_or("detached"),
            short(git["commit_hash"].as_str())
        );
    }
    let _ = writeln!(out, "- Rollout: `{}`\n", path.display());

    let mut turns: Vec<Turn> = Vec::new();
    for line in &lines {
        let payload = &line["payload"];
        match (line["type"].as_str(), payload["type"].as_str()) {
            (Some("event_msg"), Some("task_started")) => {
                turns.push(Turn { ts: line["timestamp"].as_str().unwrap_or_default().to_owned(), ..Turn::default() })
            }
            (Some("response_item"), _) => {
                if let Some(t) = turns.last_mut() {
                    t.items.push(payload.clone());
                }
            }
            (Some("event_msg"), Some("token_count")) => {
                if let Some(t) = turns.last_mut() {
                    t.tokens = payload.pointer("/info/last_token_usage").cloned();
                }
            }
            _ => {}
        }
    }
    let short_term = short_term_states(data_dir, id, &thread);
    let heads: Vec<Option<String>> = short_term.iter().flat_map(|s| s.turns.iter().map(|t| t.head.clone())).collect();
    let mut previous_head: Option<String> = None;
    for (n, turn) in turns.iter().enumerate() {
        let _ = writeln!(out, "## Turn {} — {}\n", n + 1, turn.ts);
        write_turn(&mut out, turn);
        if let Some(head) = heads.get(n).cloned().flatten() {
            let moved = previous_head.as_ref().is_some_and(|p| *p != head);
            let _ = writeln!(
                out,
                "- Commit: `{}`{}",
                short(Some(&head)),
                if moved { " (new since the previous turn)" } else { "" }
            );
            previous_head = Some(head);
        }
        let _ = writeln!(out);
    }
    let mut commits: Vec<String> = heads.into_iter().flatten().collect();
    commits.dedup();
    let _ = writeln!(out, "## Commits seen\n");
    if commits.is_empty() {
        let _ = writeln!(out, "- none recorded (the working directory was not a git repository)");
    }
    for c in &commits {
        let _ = writeln!(out, "- `{}`", short(Some(c)));
    }
    let events: Vec<_> = short_term.iter().flat_map(|s| s.events.iter()).filter(|e| e.kind == "git-drift").collect();
    if !events.is_empty() {
        let _ = writeln!(out, "\n## Git drift\n");
        for e in events {
            let _ = writeln!(
                out,
                "- {}: {} from {} to {}",
                e.ts,
                e.detail["kind"].as_str().unwrap_or("?"),
                e.detail["from"]["branch"].as_str().unwrap_or("detached"),
                e.detail["to"]["branch"].as_str().unwrap_or("detached")
            );
        }
    }
    Ok((path, out))
}

fn write_turn(out: &mut String, turn: &Turn) {
    for item in &turn.items {
        match (item["type"].as_str(), item["role"].as_str()) {
            (Some("message") | None, Some("user")) => {
                let text = message_text(item);
                if !text.trim_start().starts_with('<') && !text.trim().is_empty() {
                    let _ = writeln!(out, "**Prompt:** {}\n", shorten(&text, 500));
                }
            }
            (Some("message") | None, Some("assistant")) => {
                let _ = writeln!(out, "**Reply:** {}\n", shorten(&message_text(item), 500));
            }
            (Some("function_call"), _) => match crate::plan::from_function_call(item) {
                Some(plan) => {
                    let _ = writeln!(
                        out,
                        "**Plan change** (`{}`){}:",
                        plan.tool,
                        plan.explanation.map(|e| format!(" — {e}")).unwrap_or_default()
                    );
                    for step in plan.items {
                        let mark = if step.status == crate::tasks::TaskStatus::Completed { "x" } else { " " };
                        let _ = writeln!(out, "- [{mark}] {} ({})", step.step, step.status.as_str());
                    }
                    let _ = writeln!(out);
                }
                None => {
                    let args = item["arguments"].as_str().unwrap_or_default();
                    let _ =
                        writeln!(out, "- Tool call: `{}` {}", item["name"].as_str().unwrap_or("?"), shorten(args, 160));
                }
            },
            _ => {}
        }
    }
    if let Some(t) = &turn.tokens {
        let n = |k: &str| t[k].as_u64().map_or("?".to_owned(), |v| v.to_string());
        let _ = writeln!(
            out,
            "- Tokens: input {} (cached {}), output {}",
            n("input_tokens"),
            n("cached_input_tokens"),
            n("output_tokens")
        );
    }
}

fn short_term_states(data_dir: &Path, id: &str, thread: &str) -> Vec<SessionState> {
    all_projects(data_dir)
        .into_iter()
        .flat_map(|(dir, _)| dir.short_term_files())
        .map(|(_, s)| s)
        .filter(|s| s.session_id == id || s.thread_id == thread)
        .collect()
}

fn short(hash: Option<&str>) -> String {
    hash.map_or("none".to_owned(), |h| h.get(..7).unwrap_or(h).to_owned())
}
