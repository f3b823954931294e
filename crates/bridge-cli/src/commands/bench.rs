//! `codex-bridge bench cache|overhead|amplification|store-outage|crash-loss|transport`: run a benchmark and print a table, or JSON lines
//! with `--json`.

use std::io::Write as _;

use anyhow::Context as _;
use bridge_bench::{cache, crash_loss, overhead, store_outage, turn_overhead, workload};
use codex_emulator::RoutingMode;

use crate::cli::{
    BenchAmplificationArgs, BenchCacheArgs, BenchCommand, BenchCrashLossArgs, BenchOverheadArgs, BenchStoreOutageArgs,
    BenchTransportArgs, RoutingArg, TransportArg,
};

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Cache(args) => cache_bench(args).await,
        BenchCommand::Overhead(args) => overhead_bench(args).await,
        BenchCommand::Amplification(args) => amplification_bench(args).await,
        BenchCommand::StoreOutage(args) => store_outage_bench(args).await,
        BenchCommand::CrashLoss(args) => crash_loss_bench(args).await,
        BenchCommand::Transport(args) => transport_bench(args).await,
    }
}

async fn transport_bench(args: BenchTransportArgs) -> anyhow::Result<()> {
    use bridge_bench::transport;
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; throughput numbers are only meaningful from `cargo run --release`");
    }
    let mut out = std::io::stdout().lock();
    if !args.no_cache {
        let scenario = workload::scenario(&args.scenario, args.seed)
            .with_context(|| format!("unknown scenario {:?}; known: {}", args.scenario, workload::NAMES.join(", ")))?;
        let routings = match args.routing {
            RoutingArg::Docs => vec![RoutingMode::Docs],
            RoutingArg::SessionHeader => vec![RoutingMode::SessionHeader],
            RoutingArg::Both => vec![RoutingMode::Docs, RoutingMode::SessionHeader],
        };
        let seeds: Vec<u64> = (0..args.seeds.max(1)).collect();
        let mut rows = Vec::new();
        for routing in routings {
            rows.extend(transport::cache_compare(&scenario, routing, args.http_affinity, &seeds).await?);
        }
        if args.json {
            write_json_lines(&mut out, &rows)?;
        } else {
            write!(out, "{}", transport::cache_table(&rows))?;
        }
    }
    if args.concurrency > 0 {
        let report =
            transport::throughput(args.concurrency, args.turns, args.rounds.max(1), args.startup_tokens).await?;
        if args.json {
            write_json_lines(&mut out, &report.phases)?;
            writeln!(out, "{}", serde_json::to_string(&report)?)?;
        } else {
            writeln!(out, "{:>5} {:<5} {:>4} {:>6} {:>9} {:>9}", "round", "tr", "c", "turns", "ms", "turns/s")?;
            for p in &report.phases {
                writeln!(
                    out,
                    "{:>5} {:<5} {:>4} {:>6} {:>9} {:>9.1}",
                    p.round, p.transport, p.concurrency, p.turns, p.elapsed_ms, p.turns_per_s
                )?;
            }
            writeln!(
                out,
                "median turns/s at c={}: http {:.1}, ws {:.1} (ws/http {:.2})",
                args.concurrency, report.http_turns_per_s, report.ws_turns_per_s, report.ws_over_http
            )?;
        }
    }
    Ok(())
}

async fn amplification_bench(args: BenchAmplificationArgs) -> anyhow::Result<()> {
    let exe = bridge_exe()?;
    let report = bridge_bench::amplification::run(&exe, args.items, args.prompt_bytes).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        write!(out, "{}", bridge_bench::amplification::table(&report))?;
    }
    Ok(())
}

/// One JSON object per line (the `--json` output of every benchmark).
fn write_json_lines<'a, T: serde::Serialize + 'a>(
    out: &mut impl std::io::Write,
    items: impl IntoIterator<Item = &'a T>,
) -> anyhow::Result<()> {
    for item in items {
        writeln!(out, "{}", serde_json::to_string(item)?)?;
    }
    Ok(())
}

fn bridge_exe() -> anyhow::Result<std::path::PathBuf> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; numbers are only meaningful from `cargo run --release`");
    }
    std::env::current_exe().context("cannot find the codex-bridge binary to start")
}

async fn store_outage_bench(args: BenchStoreOutageArgs) -> anyhow::Result<()> {
    let phases = store_outage::run(&bridge_exe()?, args.requests, args.concurrency).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        write_json_lines(&mut out, &phases)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<16} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "phase", "reqs", "rps", "p50", "p99", "max", "dropped", "usage rows"
    )?;
    for p in &phases {
        let rows = p.usage_rows.map_or_else(|| "-".to_owned(), |r| r.to_string());
        writeln!(
            out,
            "{:<16} {:>6} {:>9.1} {:>7}us {:>7}us {:>7}us {:>9} {:>10}",
            p.phase, p.requests, p.rps, p.p50_us, p.p99_us, p.max_us, p.writes_dropped, rows
        )?;
    }
    if let (Some(up), Some(killed)) = (phases.first(), phases.get(1)) {
        writeln!(out, "killed / up throughput: {:.2}", killed.rps / up.rps.max(f64::MIN_POSITIVE))?;
    }
    Ok(())
}

async fn crash_loss_bench(args: BenchCrashLossArgs) -> anyhow::Result<()> {
    let (rounds, summary) =
        crash_loss::run(&bridge_exe()?, args.kills, args.concurrency, args.seed, args.store.as_deref()).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        write_json_lines(&mut out, &rounds)?;
        writeln!(out, "{}", serde_json::to_string(&summary)?)?;
        return Ok(());
    }
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"));
    writeln!(
        out,
        "{:>5} {:>7} {:>9} {:>7} {:>12} {:>12} {:>11} {:>14}",
        "round", "ran", "completed", "missing", "loss window", "newest gap", "journal mis", "journal window"
    )?;
    for r in &rounds {
        writeln!(
            out,
            "{:>5} {:>5}ms {:>9} {:>7} {:>12} {:>12} {:>11} {:>14}",
            r.round,
            r.ran_ms,
            r.completed,
            r.missing,
            ms(r.loss_window_ms),
            ms(r.newest_missing_ms),
            r.journal_missing,
            ms(r.journal_loss_window_ms)
        )?;
    }
    writeln!(
        out,
        "{} kills, store {}: {} of {} completed responses missing ({:.2}%), at ~{} completions/s; largest loss window {:.0} ms",
        summary.rounds,
        summary.store,
        summary.missing,
        summary.completed,
        summary.missing_pct,
        summary.completed_per_s,
        summary.max_loss_window_ms
    )?;
    writeln!(
        out,
        "journal (rollouts): {} missing ({:.2}%); largest loss window {:.0} ms",
        summary.journal_missing, summary.journal_missing_pct, summary.max_journal_loss_window_ms
    )?;
    Ok(())
}

async fn cache_bench(args: BenchCacheArgs) -> anyhow::Result<()> {
    let scenarios = match &args.trace {
        Some(path) => {
            let file = std::fs::File::open(path).with_context(|| format!("cannot open trace {}", path.display()))?;
            let all = bridge_bench::trace::load(std::io::BufReader::new(file))?;
            all.into_iter().filter(|s| args.scenario == "all" || s.name == args.scenario).collect()
        }
        None if args.scenario == bridge_bench::chat::NAME => Vec::new(),
        None => generate(&args.scenario, args.seed)?,
    };
    let with_chat = args.trace.is_none() && (args.scenario == "all" || args.scenario == bridge_bench::chat::NAME);
    if let Some(path) = &args.save_trace {
        let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        bridge_bench::trace::save(&scenarios, std::io::BufWriter::new(file))?;
    }
    let routings = match args.routing {
        RoutingArg::Docs => vec![RoutingMode::Docs],
        RoutingArg::SessionHeader => vec![RoutingMode::SessionHeader],
        RoutingArg::Both => vec![RoutingMode::Docs, RoutingMode::SessionHeader],
    };
    let transports = match args.transport {
        TransportArg::Http => vec![cache::ClientTransport::Http],
        TransportArg::Websocket => vec![cache::ClientTransport::Websocket],
        TransportArg::Both => vec![cache::ClientTransport::Http, cache::ClientTransport::Websocket],
    };
    let config = read_bridge_config(args.bridge_config.as_deref())?;
    let dir = tempdir("bench-cache")?;
    let mut results =
        cache::run(&scenarios, &routings, &transports, args.http_affinity, args.routing_seed, &dir, &config).await;
    if with_chat && let Ok(rows) = &mut results {
        match bridge_bench::chat::run(&routings, &dir, args.seed).await {
            Ok(chat) => rows.extend(chat),
            Err(e) => results = Err(e),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let results = results?;
    if let Some(path) = &args.svg {
        std::fs::write(path, bridge_bench::chart::svg(&results))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        write_json_lines(&mut out, &results)?;
    } else {
        write!(out, "{}", cache::table(&results))?;
    }
    Ok(())
}

async fn overhead_bench(args: BenchOverheadArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the codex-bridge binary to start")?;
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; overhead numbers are only meaningful from `cargo run --release`");
    }
    let (requests, conversations) = match args.suite.as_str() {
        "requests" => (overhead::default_cases(args.scale), Vec::new()),
        "conversations" => (Vec::new(), turn_overhead::default_cases(args.scale)),
        _ => (overhead::default_cases(args.scale), turn_overhead::default_cases(args.scale)),
    };
    let report = overhead::run(&exe, &requests, &conversations, args.rounds, args.sessions).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        write_json_lines(&mut out, &report.cases)?;
        write_json_lines(&mut out, &report.conversations)?;
        writeln!(out, "{}", serde_json::to_string(&report.capacity)?)?;
        writeln!(out, "{}", serde_json::to_string(&report.memory)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<12} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10} {:>11} {:>11}",
        "case",
        "reqs",
        "dir p50",
        "dir p99",
        "ngx p50",
        "br p50",
        "br p99",
        "ttfb+p99",
        "dir rps",
        "ngx rps",
        "br rps",
        "ngx cpu/req",
        "br cpu/req"
    )?;
    let opt_us = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v}us"));
    let opt_rps = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    let opt_cpu = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}us"));
    for c in &report.cases {
        writeln!(
            out,
            "{:<12} {:>6} {:>7}us {:>7}us {:>9} {:>7}us {:>7}us {:>7}us {:>10.1} {:>10} {:>10.1} {:>11} {:>11}",
            c.case,
            c.requests,
            c.direct_p50_us,
            c.direct_p99_us,
            opt_us(c.nginx_p50_us),
            c.bridge_p50_us,
            c.bridge_p99_us,
            c.ttfb_added_p99_us,
            c.direct_rps,
            opt_rps(c.nginx_rps),
            c.bridge_rps,
            opt_cpu(c.nginx_cpu_us_per_request),
            opt_cpu(c.bridge_cpu_us_per_request)
        )?;
    }
    for c in &report.cases {
        writeln!(out, "{} bridge upstream: {}", c.case, c.bridge_upstream.summary())?;
    }
    if !report.conversations.is_empty() {
        write!(out, "{}", turn_overhead::table(&report.conversations))?;
    }
    writeln!(out, "emulator alone, 64 KiB at concurrency 16: {:.1} requests/s", report.capacity.emulator_rps)?;
    match report.memory.bridge_peak_rss_kib {
        Some(kib) => writeln!(out, "bridge peak RSS: {:.1} MiB", kib as f64 / 1024.0)?,
        None => writeln!(out, "bridge peak RSS: unavailable on this platform")?,
    }
    if let Some(bytes) = report.memory.rss_bytes_per_session {
        writeln!(out, "bridge RSS per tracked session: {bytes:.0} bytes ({} sessions)", report.memory.sessions)?;
    }
    Ok(())
}

/// The named scenario (or all of them) from the generator.
fn generate(name: &str, seed: u64) -> anyhow::Result<Vec<workload::Scenario>> {
    let names: Vec<&str> = if name == "all" { workload::NAMES.to_vec() } else { vec![name] };
    names
        .iter()
        .map(|n| {
            workload::scenario(n, seed)
                .with_context(|| format!("unknown scenario {n:?}; known: all, {}", workload::NAMES.join(", ")))
        })
        .collect()
}

/// The text of `--bridge-config`, or empty for the bridge's defaults.
pub fn read_bridge_config(path: Option<&std::path::Path>) -> anyhow::Result<String> {
    match path {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("cannot read bridge config {}", p.display())),
        None => Ok(String::new()),
    }
}

/// A fresh directory under the system temp dir for this run.
pub fn tempdir(label: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("codex-bridge-{label}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
