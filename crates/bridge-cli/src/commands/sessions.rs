//! `codex-bridge sessions list|show ID [--json]`: tracked sessions, and one session's lineage and turns,
//! from `bridge_core::dashboard::query` (the same read model as the dashboard's `/api/sessions`).

use std::io::Write as _;

use anyhow::Context as _;
use bridge_core::dashboard::query;

use crate::cli::{SessionsArgs, SessionsCommand, StoreArgs};

async fn open(args: StoreArgs) -> anyhow::Result<std::sync::Arc<dyn bridge_store::Store>> {
    let data_dir = args.data_dir.unwrap_or_else(super::default_data_dir);
    bridge_store::open(args.store.as_deref(), &data_dir).await.context("cannot open the store")
}

pub async fn run(args: SessionsArgs) -> anyhow::Result<()> {
    if let SessionsCommand::Digest(args) = args.command {
        return super::digest::run(args);
    }
    let mut out = std::io::stdout().lock();
    match args.command {
        SessionsCommand::Digest(_) => {}
        SessionsCommand::List(args) => {
            let store = open(args.store).await?;
            let sessions = query::sessions(store.as_ref(), "", 0).await?;
            if args.json {
                writeln!(out, "{}", serde_json::to_string(&sessions)?)?;
                return Ok(());
            }
            writeln!(
                out,
                "{:<40} {:>5} {:>10} {:>10} {:>6}  {:<24} last outcome",
                "session", "turns", "input", "cached", "hit%", "key"
            )?;
            for s in sessions {
                let ratio = s.hit_ratio.map_or_else(|| "-".to_owned(), |r| format!("{:.1}", r * 100.0));
                let outcome = s.last_outcome.unwrap_or_else(|| "-".to_owned());
                writeln!(
                    out,
                    "{:<40} {:>5} {:>10} {:>10} {:>6}  {:<24} {outcome}",
                    s.session, s.turns, s.input_tokens, s.cached_tokens, ratio, s.key
                )?;
            }
        }
        SessionsCommand::Show(args) => {
            let store = open(args.store).await?;
            let id = args.id;
            let Some(detail) = query::session(store.as_ref(), &id).await? else {
                anyhow::bail!("no tracked session {id:?} (see `codex-bridge sessions list`)");
            };
            if args.json {
                writeln!(out, "{}", serde_json::to_string(&detail)?)?;
                return Ok(());
            }
            let lineage = &detail.lineage;
            writeln!(out, "lineage root key    {}", lineage.root_key)?;
            for m in &lineage.members {
                let me = if m.session == id { "  <- this session" } else { "" };
                let role = m.fork.map_or_else(|| m.role.to_owned(), |n| format!("fork {n}"));
                writeln!(out, "  {role:<8} {:<40} {:>4} turns{me}", m.session, m.turns)?;
            }
            if let Some(ns) = &lineage.namespace {
                writeln!(out, "namespace           {ns}")?;
            }
            writeln!(out)?;
            let turns: Vec<_> = detail.turns.iter().map(|t| &t.row).collect();
            writeln!(
                out,
                "{:>4} {:<32} {:<9} {:<22} {:>6} {:>8} {:>8}  {:<22} outcome",
                "turn", "key", "transport", "classification", "items", "input", "cached", "upstream"
            )?;
            let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
            for (i, t) in turns.iter().enumerate() {
                let mut outcome = t.outcome.clone().unwrap_or_else(|| "no usage".to_owned());
                if let Some(r) = &t.routed {
                    outcome.push_str(&format!("  (sent {}: {})", r.upstream_key, r.how));
                }
                if t.over_rate {
                    outcome.push_str("  [lineage over the per-key rate]");
                }
                writeln!(
                    out,
                    "{:>4} {:<32} {:<9} {:<22} {:>6} {:>8} {:>8}  {:<22} {outcome}",
                    i + 1,
                    t.key,
                    t.transport.as_deref().unwrap_or("-"),
                    t.classification,
                    t.items,
                    opt(t.input_tokens),
                    opt(t.cached_tokens),
                    t.upstream.as_deref().unwrap_or("-")
                )?;
            }
        }
    }
    Ok(())
}
