//! `codex-bridge sessions list|show ID [--json]`: tracked sessions and their turns from the store.

use std::io::Write as _;

use anyhow::Context as _;
use bridge_core::tracker::report;

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
            let sessions = report::sessions(store.as_ref()).await?;
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
            let turns = report::turns(store.as_ref(), &id).await?;
            if turns.is_empty() {
                anyhow::bail!("no tracked session {id:?} (see `codex-bridge sessions list`)");
            }
            if args.json {
                writeln!(out, "{}", serde_json::to_string(&turns)?)?;
                return Ok(());
            }
            writeln!(
                out,
                "{:>4} {:<32} {:<9} {:<22} {:>6} {:>8} {:>8}  outcome",
                "turn", "key", "transport", "classification", "items", "input", "cached"
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
                    "{:>4} {:<32} {:<9} {:<22} {:>6} {:>8} {:>8}  {outcome}",
                    i + 1,
                    t.key,
                    t.transport.as_deref().unwrap_or("-"),
                    t.classification,
                    t.items,
                    opt(t.input_tokens),
                    opt(t.cached_tokens)
                )?;
            }
        }
    }
    Ok(())
}
