//! `codex-bridge stats`: totals of the usage rows in the store (requests, tokens, cache hit ratio).

use std::io::Write as _;

use anyhow::Context as _;
use bridge_store::UsageQuery;
use serde_json::json;

use crate::cli::StatsArgs;

pub async fn run(args: StatsArgs) -> anyhow::Result<()> {
    let data_dir = args.store.data_dir.unwrap_or_else(super::default_data_dir);
    let store = bridge_store::open(args.store.store.as_deref(), &data_dir).await.context("cannot open the store")?;
    let rows = store.usage(&UsageQuery::default()).await?;
    let sum = |f: fn(&bridge_store::UsageRecord) -> Option<u64>| rows.iter().filter_map(f).sum::<u64>();
    let input = sum(|r| r.input_tokens);
    let cached = sum(|r| r.cached_tokens);
    let output = sum(|r| r.output_tokens);
    let missing = rows.iter().filter(|r| r.input_tokens.is_none()).count();
    let ratio = if input > 0 { cached as f64 / input as f64 } else { 0.0 };
    let mut out = std::io::stdout().lock();
    if args.json {
        let v = json!({"requests": rows.len(), "input_tokens": input, "cached_tokens": cached, "output_tokens": output, "hit_ratio": ratio, "rows_without_usage": missing});
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "requests            {}", rows.len())?;
        writeln!(out, "input tokens        {input}")?;
        writeln!(out, "cached tokens       {cached} ({:.1}%)", ratio * 100.0)?;
        writeln!(out, "output tokens       {output}")?;
        writeln!(out, "rows without usage  {missing}")?;
    }
    Ok(())
}
