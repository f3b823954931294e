//! `codex-bridge doctor`: checks the journal files and the project's git state against the recorded
//! checkpoint, lists open drift events with the ways forward (fork, fast-forward, rebuild), and applies
//! one with `--resolve`.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use bridge_journal::resolve::{Resolution, resolve};

use crate::cli::DoctorArgs;

pub async fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let (data, dir) = super::project_dir(&args.project)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "data directory   {}", data.display())?;
    let history = data.join("history.jsonl");
    match std::fs::metadata(&history) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            let verdict = if mode == 0o600 { "ok" } else { "WRONG MODE (expected 0600)" };
            writeln!(out, "history.jsonl    {} bytes, mode {mode:o} {verdict}", m.len())?;
        }
        Err(_) => writeln!(out, "history.jsonl    not written yet")?,
    }
    writeln!(out, "rollouts         {}", bridge_journal::rollout::all(&data).len())?;
    writeln!(out, "project          {}", dir.root.display())?;
    let current = bridge_journal::git::snapshot(&dir.root, Duration::from_secs(5)).await?;
    let state = dir.load()?;
    writeln!(out, "git now          {}{}", current.label(), if current.dirty { " (dirty)" } else { "" })?;
    match state.last_git() {
        Some(recorded) => writeln!(out, "git recorded     {}", recorded.label())?,
        None => writeln!(out, "git recorded     nothing yet (no turn through the bridge in this project)")?,
    }
    if let Some(action) = args.resolve.as_deref() {
        let action = match action {
            "fork" => Resolution::Fork,
            "rebuild" => Resolution::Rebuild,
            _ => Resolution::FastForward,
        };
        let n = resolve(&dir, action, &current)?;
        writeln!(out, "resolved {n} drift event(s) with {}", action.as_str())?;
        return Ok(());
    }
    let open: Vec<_> = state.drift_events.iter().filter(|e| e.resolved.is_none()).collect();
    let pending = match state.last_git() {
        Some(recorded) if recorded.branch != current.branch || recorded.head != current.head => {
            Some(format!("since the last turn: {} -> {}", recorded.label(), current.label()))
        }
        _ => None,
    };
    if open.is_empty() && pending.is_none() {
        writeln!(out, "drift            none")?;
        return Ok(());
    }
    writeln!(out, "drift:")?;
    for event in &open {
        writeln!(
            out,
            "  {}  {}  {} -> {}  (session {})",
            event.ts,
            event.drift.kind.as_str(),
            event.drift.from.label(),
            event.drift.to.label(),
            event.session.as_deref().unwrap_or("?")
        )?;
    }
    if let Some(p) = pending {
        writeln!(out, "  not yet seen by a turn: {p}")?;
    }
    writeln!(out, "ways forward:")?;
    writeln!(
        out,
        "  codex-bridge doctor --resolve fork          carry the session state (plan, pending actions) to the new branch/HEAD"
    )?;
    writeln!(
        out,
        "  codex-bridge doctor --resolve fast-forward  accept the new HEAD as the checkpoint and keep going"
    )?;
    writeln!(out, "  codex-bridge doctor --resolve rebuild       start the next session from a clean state")?;
    Ok(())
}
