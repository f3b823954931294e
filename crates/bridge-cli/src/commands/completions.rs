//! `codex-bridge completions bash|zsh|fish`: the shell completion script for every command and flag,
//! generated from the argument structs by clap_complete.

use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionShell, CompletionsArgs};

pub fn run(args: &CompletionsArgs) -> anyhow::Result<()> {
    let shell = match args.shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    clap_complete::generate(shell, &mut Cli::command(), "codex-bridge", &mut std::io::stdout().lock());
    Ok(())
}
