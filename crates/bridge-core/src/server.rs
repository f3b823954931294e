//! Binding and serving: opens the store, builds the state, binds the socket, serves until the shutdown
//! future resolves, then lets in-flight streams finish (bounded by `shutdown_grace`) and flushes the
//! usage recorder. Connections are accepted by [`crate::listener`] (the cap) and served by
//! [`crate::connection`] (the per-connection timeouts).

use std::future::Future;
use std::net::SocketAddr;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::listener::Listener;
use crate::state::AppState;
use crate::upstream::Upstream;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the store: {0}")]
    Store(#[from] bridge_store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot build the upstream client: {0}")]
    Client(String),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    #[error("ChatGPT access: {0}")]
    Auth(#[from] bridge_auth::AuthError),
}

/// A bridge whose socket is bound and accepting connections (the kernel queues them until [`BoundServer::run`]).
pub struct BoundServer {
    listener: Listener,
    state: AppState,
}

/// Opens the store and binds the listen address.
pub async fn bind(config: Config) -> Result<BoundServer, ServeError> {
    let store = bridge_store::open(config.store.as_deref(), &config.data_dir).await?;
    let credentials = crate::credentials::Credentials::from_config(&config)?;
    let upstream =
        Upstream::new(config.upstream.clone(), credentials).map_err(|e| ServeError::Client(e.to_string()))?;
    let codex = crate::codex::start(&config);
    let tcp =
        TcpListener::bind(config.listen).await.map_err(|source| ServeError::Bind { addr: config.listen, source })?;
    let listener = Listener::new(tcp, crate::listener::fitted_capacity(config.server.max_connections));
    Ok(BoundServer { listener, state: AppState::new(config, upstream, codex, store) })
}

impl BoundServer {
    /// The bound address (the real port when the config said port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServeError> {
        Ok(self.listener.local_addr()?)
    }

    /// The shared state (tests and in-process tools).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The connection cap in force (after fitting it to the open-file limit).
    pub fn max_connections(&self) -> usize {
        self.listener.capacity()
    }

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        let state = self.state.clone();
        let app = crate::router::build(state.clone());
        let grace = state.config.shutdown_grace;
        let stop = CancellationToken::new();
        let abort = CancellationToken::new();
        let connections = TaskTracker::new();
        let accepting = tokio::spawn(self.listener.run(
            app,
            Arc::new(state.config.server.clone()),
            state.metrics.clone(),
            connections.clone(),
            stop.clone(),
            abort.clone(),
        ));
        shutdown.await;
        state.shutdown.cancel();
        // Stop accepting, close idle connections, let busy ones finish their response for `grace`.
        stop.cancel();
        let _ = accepting.await;
        connections.close();
        if tokio::time::timeout(grace, connections.wait()).await.is_err() {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "shutdown grace period over; closing remaining connections"
            );
            abort.cancel();
            connections.wait().await;
        }
        state.tasks.close();
        if tokio::time::timeout(grace, state.tasks.wait()).await.is_err() {
            tracing::warn!("stream tasks still running at shutdown");
        }
        state.recorder.flush().await;
        if let Some(journal) = &state.journal {
            journal.flush().await;
        }
        Ok(())
    }
}
