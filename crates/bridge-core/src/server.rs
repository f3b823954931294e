//! Binding and serving: opens the store, builds the state, binds the socket, serves until the shutdown
//! future resolves, then lets in-flight streams finish (bounded by `shutdown_grace`) and flushes the
//! usage recorder.

use std::future::Future;
use std::net::SocketAddr;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;

use crate::config::Config;
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
    listener: TcpListener,
    state: AppState,
}

/// Opens the store and binds the listen address.
pub async fn bind(config: Config) -> Result<BoundServer, ServeError> {
    let store = bridge_store::open(config.store.as_deref(), &config.data_dir).await?;
    let upstream = Upstream::new(config.upstream.clone()).map_err(|e| ServeError::Client(e.to_string()))?;
    let upstream = crate::codex::attach(upstream, &config)?;
    let listener =
        TcpListener::bind(config.listen).await.map_err(|source| ServeError::Bind { addr: config.listen, source })?;
    Ok(BoundServer { listener, state: AppState::new(config, upstream, store) })
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

    /// Serves until `shutdown` resolves, then drains.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServeError> {
        let state = self.state.clone();
        let app = crate::router::build(state.clone());
        let grace = state.config.shutdown_grace;
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            let _ = stopped_tx.send(());
        };
        // SSE events are small writes: without TCP_NODELAY, Nagle holds each one back until the client's
        // delayed ACK (about 40 ms).
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = axum::serve(listener, app).with_graceful_shutdown(signal).into_future();
        tokio::pin!(server);
        // Serve normally; once shutdown is signalled, give open connections `grace` to finish.
        tokio::select! {
            r = &mut server => r?,
            _ = async { let _ = stopped_rx.await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "shutdown grace period over; closing remaining connections");
            }
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
