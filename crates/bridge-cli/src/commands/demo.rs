//! `codex-bridge demo`: the emulator and the bridge in process (SQLite store in a temp directory), a built-in
//! set of scenarios replayed on the virtual clock with a progress bar, then the cache table. Exits 0.

use std::io::Write as _;

use bridge_bench::{cache, workload};
use codex_emulator::RoutingMode;

use crate::cli::DemoArgs;

/// The demo's bridge config: the defaults plus the shared startup namespace (opt-in in a real deployment,
/// because it replaces clients' own keys), so the orchestrator's fresh sessions share their startup prefix.
const DEMO_BRIDGE_CONFIG: &str = "[cache]\nnamespace_auto = true\n";

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let config = match args.bridge_config.as_deref() {
        Some(_) => super::bench::read_bridge_config(args.bridge_config.as_deref())?,
        None => DEMO_BRIDGE_CONFIG.to_owned(),
    };
    let scenarios: Vec<_> = workload::DEMO.iter().filter_map(|n| workload::scenario(n, args.seed)).collect();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "codex-bridge demo: {} scenarios replayed against the Codex backend emulator (virtual clock,",
        scenarios.len()
    )?;
    writeln!(out, "session-header routing, o200k tokens), straight from the client and through the bridge.\n")?;
    for s in &scenarios {
        writeln!(out, "  {:<16} {}", s.name, s.description)?;
    }
    writeln!(
        out,
        "\nbridge config: {}\n",
        if config.trim().is_empty() { "defaults".to_owned() } else { config.trim().replace('\n', " ") }
    )?;
    drop(out);
    let dir = super::bench::tempdir("demo")?;
    let results =
        cache::run(&scenarios, &[RoutingMode::SessionHeader], &[cache::ClientTransport::Http], 1.0, 0, &dir, &config)
            .await;
    let _ = std::fs::remove_dir_all(&dir);
    let results = results?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", cache::table(&results))?;
    writeln!(
        out,
        "\nclient-direct: what the client gets without the bridge; limit: the most any prompt cache could serve."
    )?;
    writeln!(out, "All scenarios: `codex-bridge bench cache`; numbers and method: docs/BENCHMARKS.md.")?;
    Ok(())
}
