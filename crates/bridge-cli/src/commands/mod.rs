//! One module per subcommand; each exposes `run(args)`.

pub mod bench;
pub mod chatgpt_env;
pub mod completions;
pub mod connect;
pub mod demo;
pub mod digest;
pub mod doctor;
pub mod history;
pub mod login;
pub mod logout;
pub mod serve;
pub mod sessions;
pub mod stats;
pub mod status;
pub mod tasks;

use std::path::PathBuf;

/// `$HOME/.codex-bridge`, the data directory when neither --data-dir nor CODEX_BRIDGE_HOME is set.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".codex-bridge")
}

/// The project directory of `--project` (default: the current directory): its git root and state dir.
pub fn project_dir(args: &crate::cli::ProjectArgs) -> anyhow::Result<(PathBuf, bridge_journal::project::ProjectDir)> {
    let data = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let start = match &args.project {
        Some(p) => p.clone(),
        None => std::env::current_dir()?,
    };
    let root = bridge_journal::git::find_root(&start)
        .ok_or_else(|| anyhow::anyhow!("{} is not inside a git repository", start.display()))?;
    let dir = bridge_journal::project::ProjectDir::new(&data, &root);
    Ok((data, dir))
}
