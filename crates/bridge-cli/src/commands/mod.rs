//! One module per subcommand; each exposes `run(args)`.

pub mod bench;
pub mod chatgpt_env;
pub mod demo;
pub mod login;
pub mod logout;
pub mod serve;
pub mod sessions;
pub mod stats;
pub mod status;

use std::path::PathBuf;

/// `$HOME/.codex-bridge`, the data directory when neither --data-dir nor CODEX_BRIDGE_HOME is set.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".codex-bridge")
}
