//! `codex-bridge serve`: resolve the config, bind, print the listening line, serve until SIGINT/SIGTERM.

use std::io::Write as _;

use anyhow::Context as _;
use bridge_core::{Config, Settings};

use crate::cli::ServeArgs;

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let file_text = match &args.store.config {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("cannot read config file {}", p.display()))?)
        }
        None => None,
    };
    let key_env = Config::api_key_env(file_text.as_deref());
    let settings = Settings {
        listen: args.listen,
        upstream: args.upstream,
        upstream_auth: args.upstream_auth.map(|a| a.parse()).transpose().map_err(anyhow::Error::msg)?,
        data_dir: args.store.data_dir,
        store: args.store.store,
        access_tokens: args.access_tokens,
        env_api_key: std::env::var(&key_env).ok(),
    };
    let file_name = args.store.config.clone().unwrap_or_default();
    let mut config = Config::resolve(settings, file_text.as_deref(), &file_name, super::default_data_dir())?;
    super::chatgpt_env::apply(&mut config)?;
    bridge_auth::file::create_private_dir(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let upstream = config.upstream.shown_url();
    let server = bridge_core::bind(config).await?;
    let addr = server.local_addr()?;
    tracing::info!(%addr, %upstream, store = server.state().store.kind(), "codex-bridge ready");
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{addr}")?;
    stdout.flush()?;
    drop(stdout);
    server.run(shutdown_signal()).await?;
    tracing::info!("codex-bridge stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown requested; letting in-flight streams finish");
}
