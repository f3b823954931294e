//! `codex-bridge stats`: the dashboard's overview over every usage row in the store (requests, tokens,
//! cached share overall, by client, by client and ingress API (`responses` or `chat`) and by model, errors,
//! transports) and the tracked turns' cache outcomes. The numbers come from
//! `bridge_core::dashboard::query::overview`, the same function behind `GET /api/overview`; `--json` prints
//! that object.

use std::io::Write as _;

use anyhow::Context as _;
use bridge_core::dashboard::query::{self, Tokens, Window};

use crate::cli::StatsArgs;

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "unknown".to_owned(), |v| v.to_string())
}

fn share(v: Option<f64>) -> String {
    v.map_or_else(|| "unknown".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

pub async fn run(args: StatsArgs) -> anyhow::Result<()> {
    let data_dir = args.store.data_dir.unwrap_or_else(super::default_data_dir);
    let store = bridge_store::open(args.store.store.as_deref(), &data_dir).await.context("cannot open the store")?;
    let window = Window { now_ms: bridge_core::clock::now_ms(), span_ms: None, buckets: 1 };
    let o = query::overview(store.as_ref(), window).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&o)?)?;
        return Ok(());
    }
    let t: &Tokens = &o.totals;
    writeln!(out, "requests            {}", t.requests)?;
    writeln!(out, "input tokens        {}", opt(t.input_tokens))?;
    writeln!(out, "cached tokens       {} ({} of input)", opt(t.cached_tokens), share(t.cached_share))?;
    writeln!(out, "cache-write tokens  {}", opt(t.cache_write_tokens))?;
    writeln!(out, "output tokens       {}", opt(t.output_tokens))?;
    writeln!(out, "rows without usage  {}", t.rows_without_usage)?;
    writeln!(out, "error rate          {}", share(o.error_rate))?;
    for (title, groups) in
        [("by client", &o.by_client), ("by client and API", &o.by_client_api), ("by model", &o.by_model)]
    {
        writeln!(out, "\n{title}")?;
        for (name, g) in groups {
            writeln!(out, "  {name:<30} {:>6} requests  {:>7} cached", g.requests, share(g.cached_share))?;
        }
    }
    if !o.errors.is_empty() {
        writeln!(out, "\nerrors")?;
        for e in &o.errors {
            writeln!(out, "  {:<30} {}", format!("{} {}", e.status, e.kind), e.count)?;
        }
    }
    writeln!(out, "\ntransports")?;
    for (name, n) in &o.transports {
        writeln!(out, "  {name:<30} {n}")?;
    }
    writeln!(out, "\ncache outcomes (tracked turns)")?;
    for (reason, n) in &o.outcomes {
        writeln!(out, "  {reason:<30} {n}")?;
    }
    Ok(())
}
