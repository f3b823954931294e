//! `codex-bridge history`: the newest prompts in `history.jsonl`.

use std::io::Write as _;

use bridge_journal::history::History;

use crate::cli::HistoryArgs;

pub fn run(args: HistoryArgs) -> anyhow::Result<()> {
    let data = args.data_dir.unwrap_or_else(super::default_data_dir);
    let (entries, bad) = History::new(&data, None).read()?;
    let mut out = std::io::stdout().lock();
    for entry in entries.iter().skip(entries.len().saturating_sub(args.limit)) {
        if args.json {
            writeln!(out, "{}", serde_json::to_string(entry)?)?;
        } else {
            let time = bridge_journal::clock::Utc::from_unix_ms(entry.ts * 1000).iso();
            writeln!(out, "{}  {}  {}", &time[..19], &entry.session_id[..8.min(entry.session_id.len())], entry.text)?;
        }
    }
    if bad > 0 {
        eprintln!("codex-bridge: {bad} lines of history.jsonl did not parse");
    }
    Ok(())
}
