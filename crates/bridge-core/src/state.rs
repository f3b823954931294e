//! The composition root of one running bridge: configuration, upstream client, Codex runtime, store,
//! metrics, recorder, journal, identity engine, tracker, and the tracker of background stream tasks
//! (waited for at shutdown). Route handlers and the pipeline read it; domain modules never do: they are
//! given the parts they need.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bridge_store::Store;
use tokio_util::task::TaskTracker;

use crate::chat::continuity::ReplayStore;
use crate::codex::CodexRuntime;
use crate::config::Config;
use crate::exchange::Books;
use crate::identity::IdentityEngine;
use crate::metrics::Metrics;
use crate::recorder::Recorder;
use crate::store_guard::GuardedStore;
use crate::tracker::Tracker;
use crate::upstream::Upstream;

/// Exchanges admitted but not yet recorded (streaming, or waiting for the tracker, journal and recorder).
/// When the journal is slower than the traffic, the next request waits for a slot rather than piling up
/// finished exchanges in memory. The store cannot hold slots: its calls are bounded by the guard's timeouts
/// and the recorder never waits (it drops and counts instead).
pub const MAX_OPEN_EXCHANGES: usize = 512;

/// Cloned into every handler; everything inside is shared.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of [`AppState`].
pub struct Inner {
    pub config: Config,
    pub upstream: Upstream,
    /// Codex-backend shaping and instructions; `None` when the upstream is not shaped for Codex.
    pub codex: Option<Arc<CodexRuntime>>,
    /// The configured backend behind [`crate::store_guard::GuardedStore`] (timeouts, outage tracking).
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// Rollouts, history and project state; `None` when `[journal] enabled = false`.
    pub journal: Option<bridge_journal::Journal>,
    pub tasks: TaskTracker,
    /// Exchanges between admission and their recorded row (see [`MAX_OPEN_EXCHANGES`]).
    pub open_exchanges: Arc<tokio::sync::Semaphore>,
    /// Request bodies held at once, in KiB (`server.max_inflight_body_bytes`).
    pub body_budget: Arc<tokio::sync::Semaphore>,
    /// Cache identity resolution (keys, lineages, namespaces).
    pub identity: Arc<IdentityEngine>,
    /// Per-session classification and miss explanations.
    pub tracker: Arc<Tracker>,
    /// Client WebSocket connections open at once (`[websocket] max_sockets`).
    pub ws_sockets: Arc<tokio::sync::Semaphore>,
    /// Cancelled when the server begins its shutdown (client sockets close between turns).
    pub shutdown: tokio_util::sync::CancellationToken,
    /// What every exchange's bookkeeping writes to.
    pub books: Arc<Books>,
    /// The Chat ingress's reasoning replay (`None` with `[chat] reasoning_replay = false`).
    pub chat_replay: Option<Arc<ReplayStore>>,
    next_request: AtomicU64,
    boot_ms: i64,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Assembles the state; `store` is wrapped in the guard and the recorder task starts here.
    pub fn new(config: Config, upstream: Upstream, codex: Option<Arc<CodexRuntime>>, store: Arc<dyn Store>) -> Self {
        let metrics = Arc::new(Metrics::default());
        let guarded = Arc::new(GuardedStore::new(store, config.store_timeout, metrics.clone()));
        let recorder = Recorder::start(guarded.clone(), metrics.clone());
        let store: Arc<dyn Store> = guarded;
        let identity = Arc::new(IdentityEngine::new(config.cache.clone(), store.clone()));
        let tracker = Arc::new(Tracker::new(config.cache.clone()));
        let journal =
            config.journal.enabled.then(|| bridge_journal::Journal::start(&config.data_dir, config.journal.clone()));
        let body_budget = Arc::new(tokio::sync::Semaphore::new(config.server.max_inflight_body_bytes.div_ceil(1024)));
        let tasks = TaskTracker::new();
        let ws_sockets = Arc::new(tokio::sync::Semaphore::new(config.websocket.max_sockets));
        let books = Arc::new(Books {
            metrics: metrics.clone(),
            recorder: recorder.clone(),
            store: store.clone(),
            identity: identity.clone(),
            tracker: tracker.clone(),
            journal: journal.clone(),
            tasks: tasks.clone(),
        });
        let chat_replay =
            config.chat.reasoning_replay.then(|| Arc::new(ReplayStore::new(config.chat.replay_max_bytes)));
        Self(Arc::new(Inner {
            chat_replay,
            identity,
            tracker,
            books,
            config,
            upstream,
            codex,
            store,
            metrics,
            recorder,
            journal,
            tasks,
            ws_sockets,
            shutdown: tokio_util::sync::CancellationToken::new(),
            open_exchanges: Arc::new(tokio::sync::Semaphore::new(MAX_OPEN_EXCHANGES)),
            body_budget,
            next_request: AtomicU64::new(0),
            boot_ms: crate::clock::now_ms(),
        }))
    }

    /// A request id unique within this process and, with the boot time in it, across restarts.
    pub fn request_id(&self) -> String {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!("req_{:x}_{n:x}", self.boot_ms)
    }
}
