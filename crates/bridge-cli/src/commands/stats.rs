//! `codex-bridge stats`: totals of the usage rows in the store (requests, tokens, cache hit ratio overall,
//! by client, by client and ingress API (`responses` or `chat`), and by model) and the tracked turns' cache
//! outcomes (hits and misses by reason).

use std::collections::BTreeMap;
use std::io::Write as _;

use anyhow::Context as _;
use bridge_store::{UsageQuery, UsageRecord};
use serde_json::{Value, json};

use crate::cli::StatsArgs;

/// Input and cached tokens of one group of rows.
#[derive(Default)]
struct Totals {
    requests: u64,
    input: u64,
    cached: u64,
}

impl Totals {
    fn add(&mut self, r: &UsageRecord) {
        self.requests += 1;
        self.input += r.input_tokens.unwrap_or(0);
        self.cached += r.cached_tokens.unwrap_or(0);
    }
    fn ratio(&self) -> f64 {
        if self.input > 0 { self.cached as f64 / self.input as f64 } else { 0.0 }
    }
    fn json(&self) -> Value {
        json!({"requests": self.requests, "input_tokens": self.input, "cached_tokens": self.cached, "hit_ratio": self.ratio()})
    }
}

fn group(rows: &[UsageRecord], by: fn(&UsageRecord) -> Option<String>) -> BTreeMap<String, Totals> {
    let mut groups: BTreeMap<String, Totals> = BTreeMap::new();
    for r in rows {
        groups.entry(by(r).unwrap_or_else(|| "unknown".to_owned())).or_default().add(r);
    }
    groups
}

pub async fn run(args: StatsArgs) -> anyhow::Result<()> {
    let data_dir = args.store.data_dir.unwrap_or_else(super::default_data_dir);
    let store = bridge_store::open(args.store.store.as_deref(), &data_dir).await.context("cannot open the store")?;
    let rows = store.usage(&UsageQuery::default()).await?;
    let sum = |f: fn(&UsageRecord) -> Option<u64>| rows.iter().filter_map(f).sum::<u64>();
    let input = sum(|r| r.input_tokens);
    let cached = sum(|r| r.cached_tokens);
    let output = sum(|r| r.output_tokens);
    let missing = rows.iter().filter(|r| r.input_tokens.is_none()).count();
    let ratio = if input > 0 { cached as f64 / input as f64 } else { 0.0 };
    let by_client = group(&rows, |r| r.client.clone());
    let by_model = group(&rows, |r| r.model.clone());
    let by_api =
        group(&rows, |r| Some(format!("{} {}", r.client.as_deref().unwrap_or("unknown"), ingress_api(&r.route))));
    let outcomes = bridge_core::tracker::report::outcomes(store.as_ref()).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let map = |g: &BTreeMap<String, Totals>| {
            g.iter().map(|(k, t)| (k.clone(), t.json())).collect::<serde_json::Map<_, _>>()
        };
        let v = json!({"requests": rows.len(), "input_tokens": input, "cached_tokens": cached, "output_tokens": output, "hit_ratio": ratio, "rows_without_usage": missing, "by_client": map(&by_client), "by_model": map(&by_model), "by_client_api": map(&by_api), "outcomes": outcomes});
        writeln!(out, "{v}")?;
        return Ok(());
    }
    writeln!(out, "requests            {}", rows.len())?;
    writeln!(out, "input tokens        {input}")?;
    writeln!(out, "cached tokens       {cached} ({:.1}%)", ratio * 100.0)?;
    writeln!(out, "output tokens       {output}")?;
    writeln!(out, "rows without usage  {missing}")?;
    for (title, groups) in [("by client", &by_client), ("by client and API", &by_api), ("by model", &by_model)] {
        writeln!(out, "\n{title}")?;
        for (name, t) in groups {
            writeln!(out, "  {name:<30} {:>6} requests  {:>5.1}% cached", t.requests, t.ratio() * 100.0)?;
        }
    }
    writeln!(out, "\ncache outcomes (tracked turns)")?;
    for (reason, n) in &outcomes {
        writeln!(out, "  {reason:<30} {n}")?;
    }
    Ok(())
}

/// The ingress API of a usage row's route.
fn ingress_api(route: &str) -> &'static str {
    if route.ends_with("/chat/completions") { "chat" } else { "responses" }
}
