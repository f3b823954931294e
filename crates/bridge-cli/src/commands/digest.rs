//! `codex-bridge sessions digest ID`: writes a Markdown journal of one session.

use std::io::Write as _;

use crate::cli::SessionsDigestArgs;

pub fn run(args: SessionsDigestArgs) -> anyhow::Result<()> {
    let SessionsDigestArgs { id, out, data_dir } = args;
    let data = data_dir.unwrap_or_else(super::default_data_dir);
    let (_, markdown) = bridge_journal::digest::digest(&data, &id)?;
    let target =
        out.unwrap_or_else(|| data.join("digests").join(format!("{}.md", bridge_journal::clock::thread_uuid(&id))));
    if target.as_os_str() == "-" {
        std::io::stdout().lock().write_all(markdown.as_bytes())?;
        return Ok(());
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&target, markdown)?;
    writeln!(std::io::stdout().lock(), "{}", target.display())?;
    Ok(())
}
