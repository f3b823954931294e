//! The `codex-bridge` binary: parses arguments, sets up logging, and runs one command.

mod cli;
mod commands;

use clap::Parser;

use crate::cli::{Cli, Command, LogFormat};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("codex-bridge: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => commands::serve::run(args).await,
            Command::Stats(args) => commands::stats::run(args).await,
            Command::Demo(args) => commands::demo::run(args).await,
            Command::Bench(cmd) => commands::bench::run(cmd).await,
            Command::Sessions(args) => commands::sessions::run(args).await,
            Command::Login(args) => commands::login::run(args).await,
            Command::Logout(args) => commands::logout::run(args),
            Command::Status(args) => commands::status::run(args),
            Command::Tasks(args) => commands::tasks::run(args).await,
            Command::History(args) => commands::history::run(args),
            Command::Doctor(args) => commands::doctor::run(args).await,
            Command::Connect(args) => commands::connect::run(args).await,
            Command::Completions(args) => commands::completions::run(&args),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("codex-bridge: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
