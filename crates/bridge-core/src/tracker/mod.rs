//! The session tracker: per-session state in memory (bounded), each request classified against the
//! session's previous one, and an outcome explaining the cached tokens once usage arrives (README, "Cache identity").
//!
//! It runs after the upstream stream ended (in the exchange's finish), never on the request path, on the
//! request as sent (its items parsed once, before the upstream call). Its store writes
//! (turn rows in the log `turns/<session>`, the session state, the per-item chain, the prefix index, a root's
//! lineage the first time this process tracks it) go
//! through the recorder queue; its only store reads are for a session missing from memory and, on a
//! rewrite, that session's previous chain.
//!
//! Invariants: memory holds at most `tracker_max_sessions` sessions; sessions idle longer than
//! `tracker_idle_evict_secs` are dropped from memory (their state is already in the store, written every
//! turn) and counted as evictions; a missing usage field gives no outcome, never a made-up one.
//! Each turn row is also offered to live subscribers ([`Tracker::subscribe`]) through a bounded broadcast
//! ring: publishing never waits, and a subscriber that falls more than [`LIVE_BUFFER`] rows behind is told
//! it lagged (the dashboard then drops it).

pub mod explain;
pub mod report;
pub mod state;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bridge_store::Store;
use bridge_types::Usage;

use crate::identity::prefix::{Digest, Fingerprint, digest};
use crate::identity::{CacheConfig, Identity, IndexEntry, KeyKind, Lineage, Routing};
use crate::metrics::{Metrics, OutcomeLabel, OutcomeReasonLabel};
use crate::recorder::{Recorder, StoreWrite};
use crate::sent::SentRequest;
pub use explain::{Classification, Outcome};
pub use state::{SessionState, TurnRow};

/// Observations between sweeps for idle sessions.
const SWEEP_EVERY: u64 = 256;
/// Turn rows a live subscriber may be behind before it lags.
pub const LIVE_BUFFER: usize = 256;

/// A tracked turn as live subscribers get it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveTurn {
    pub session: String,
    #[serde(flatten)]
    pub row: TurnRow,
}

/// One finished request as the tracker sees it.
#[derive(Debug, Clone)]
pub struct Turn {
    pub identity: Identity,
    /// The request as sent upstream (parsed once, before the upstream call).
    pub sent: std::sync::Arc<SentRequest>,
    pub request_id: String,
    pub ts_ms: i64,
    pub model: Option<String>,
    pub client: Option<String>,
    /// The client transport (`http`, `ws`).
    pub transport: &'static str,
    /// How the turn reached the upstream (socket reuse, delta or full), when known.
    pub upstream: Option<crate::upstream_ws::UpstreamTurn>,
}

/// The tracker; one per bridge.
pub struct Tracker {
    config: CacheConfig,
    /// Keyed by the digest of the session id: 16 bytes inline instead of a heap-allocated string (nothing
    /// reads the ids back from memory; the store keeps them).
    sessions: Mutex<HashMap<Digest, SessionState>>,
    observed: AtomicU64,
    live: tokio::sync::broadcast::Sender<std::sync::Arc<LiveTurn>>,
}

/// What observing a turn needs from the bridge.
pub struct Context<'a> {
    pub store: &'a dyn Store,
    pub recorder: &'a Recorder,
    pub metrics: &'a Metrics,
    pub lineages: &'a crate::identity::Lineages,
}

impl Tracker {
    /// An empty tracker.
    pub fn new(config: CacheConfig) -> Self {
        let (live, _) = tokio::sync::broadcast::channel(LIVE_BUFFER);
        Self { config, sessions: Mutex::default(), observed: AtomicU64::new(0), live }
    }

    /// Every turn row from now on (bounded: see [`LIVE_BUFFER`]).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<std::sync::Arc<LiveTurn>> {
        self.live.subscribe()
    }

    /// Sessions in memory.
    pub fn len(&self) -> usize {
        self.sessions.lock().map_or(0, |m| m.len())
    }

    /// True when no session is in memory.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Inserts a state directly (memory benchmark and tests).
    pub fn insert(&self, session: &str, state: SessionState) {
        if let Ok(mut m) = self.sessions.lock() {
            m.insert(digest(session.as_bytes()), state);
        }
    }

    /// Classifies a finished turn, explains its usage, updates the session and queues the writes.
    pub async fn observe(&self, cx: &Context<'_>, turn: Turn, usage: &Usage) -> Option<TurnRow> {
        let fp = Fingerprint::of(&turn.sent.request);
        let session = turn.identity.session.clone();
        let in_memory = self.sessions.lock().ok().and_then(|m| m.get(&digest(session.as_bytes())).copied());
        let first_sight = in_memory.is_none();
        let previous = match in_memory {
            Some(s) => Some(s),
            None => load(cx.store, &session).await,
        };
        let model = digest(turn.model.as_deref().unwrap_or_default().as_bytes());
        let classification = match &previous {
            None => Classification::New,
            Some(p) => classify(cx.store, &session, p, &fp, model).await,
        };
        let outcome = match (usage.input_tokens, usage.cached_tokens) {
            (Some(input), Some(cached)) => Some(explain::outcome(&explain::Evidence {
                classification,
                input_tokens: input,
                cached_tokens: cached,
                previous_input_tokens: previous.and_then(|p| p.last_input_tokens),
                idle_ms: previous.map(|p| turn.ts_ms - p.last_seen_ms),
                ttl_ms: self.config.cache_ttl_secs as i64 * 1000,
                min_tokens: self.config.min_cached_tokens,
                spilled: matches!(turn.identity.routing, Routing::Spilled(_)),
                socket: turn.upstream.as_ref().and_then(|u| {
                    if u.anchor_lost {
                        Some(explain::SocketEvent::AnchorLost)
                    } else {
                        matches!(u.socket, Some("new" | "one-shot")).then_some(explain::SocketEvent::NewSocket)
                    }
                }),
            })),
            _ => None,
        };
        let next = SessionState {
            chain: fp.own.last().copied().unwrap_or_default(),
            items: fp.len() as u32,
            instructions: fp.instructions,
            tools: fp.tools,
            model,
            first_seen_ms: previous.map_or(turn.ts_ms, |p| p.first_seen_ms),
            last_seen_ms: turn.ts_ms,
            last_input_tokens: usage.input_tokens,
            turns: previous.map_or(0, |p| p.turns) + 1,
            input_tokens: previous.map_or(0, |p| p.input_tokens) + usage.input_tokens.unwrap_or(0),
            cached_tokens: previous.map_or(0, |p| p.cached_tokens) + usage.cached_tokens.unwrap_or(0),
        };
        self.insert(&session, next);
        let row = TurnRow {
            ts_ms: turn.ts_ms,
            request_id: turn.request_id.clone(),
            key: match turn.identity.routing {
                Routing::Own => turn.identity.key.clone(),
                Routing::WithRoot | Routing::Spilled(_) => turn.identity.own_key.clone(),
            },
            key_kind: turn.identity.kind.label().to_owned(),
            routed: turn
                .identity
                .routing
                .label()
                .map(|how| state::Routed { how, upstream_key: turn.identity.key.clone() }),
            over_rate: turn.identity.over_rate,
            model: turn.model.clone(),
            client: turn.client.clone(),
            transport: Some(turn.transport.to_owned()),
            items: fp.len(),
            classification: classification.to_string(),
            input_tokens: usage.input_tokens,
            cached_tokens: usage.cached_tokens,
            outcome: outcome.as_ref().map(|o| {
                let loss = turn.upstream.and_then(|u| u.previous_loss).map(|l| l.to_string());
                explain::shown(o, loss.as_deref())
            }),
            upstream: turn.upstream.as_ref().map(crate::upstream_ws::UpstreamTurn::summary),
        };
        if let Some(o) = &outcome {
            let outcome = if o.is_hit() { "hit" } else { "miss" };
            cx.metrics.cache_outcomes.get_or_create(&OutcomeLabel { outcome }).inc();
            cx.metrics.cache_outcome_reasons.get_or_create(&OutcomeReasonLabel { reason: o.label() }).inc();
        }
        if first_sight {
            persist_root(cx, &turn.identity).await;
        }
        self.persist(cx, &turn, &fp, &next, &row, classification, previous.map(|p| p.items)).await;
        self.sweep(cx.metrics, turn.ts_ms);
        if self.live.receiver_count() > 0 {
            // Never waits: a full ring overwrites the oldest row and the slow subscriber sees `Lagged`.
            let _ = self.live.send(std::sync::Arc::new(LiveTurn { session: session.clone(), row: row.clone() }));
        }
        Some(row)
    }

    #[allow(clippy::too_many_arguments)]
    async fn persist(
        &self,
        cx: &Context<'_>,
        turn: &Turn,
        fp: &Fingerprint,
        next: &SessionState,
        row: &TurnRow,
        classification: Classification,
        previous_items: Option<u32>,
    ) {
        let session = &turn.identity.session;
        if matches!(turn.identity.kind, KeyKind::Host | KeyKind::Session | KeyKind::Fork) {
            let from = match (classification, previous_items) {
                (Classification::Append, Some(n)) => fp.history_start().max((n as usize).saturating_sub(1)),
                _ => fp.history_start(),
            };
            let entry = IndexEntry { owner: session.clone(), root: turn.identity.root_key.clone() };
            for (key, json) in cx.lineages.index(&fp.shared, from.min(fp.len())..fp.len(), entry) {
                cx.recorder
                    .write(StoreWrite::PutIfAbsent {
                        ns: crate::identity::lineage::PREFIX_NS,
                        key,
                        value: json.into_bytes(),
                    })
                    .await;
            }
        }
        if let Ok(json) = serde_json::to_vec(next) {
            cx.recorder.write(StoreWrite::Put { ns: state::STATE_NS, key: session.clone(), value: json }).await;
        }
        cx.recorder
            .write(StoreWrite::Put { ns: state::CHAIN_NS, key: session.clone(), value: state::pack(&fp.own) })
            .await;
        if let Ok(body) = serde_json::to_string(row) {
            cx.recorder
                .write(StoreWrite::Append { log: format!("{}{session}", state::TURNS_LOG), ts_ms: turn.ts_ms, body })
                .await;
        }
    }

    /// Drops idle sessions (and the least recently seen when over capacity) from memory.
    fn sweep(&self, metrics: &Metrics, now_ms: i64) {
        let n = self.observed.fetch_add(1, Ordering::Relaxed) + 1;
        let Ok(mut m) = self.sessions.lock() else { return };
        let over = m.len() > self.config.tracker_max_sessions;
        if !over && !n.is_multiple_of(SWEEP_EVERY) {
            metrics.tracked_sessions.set(m.len() as i64);
            return;
        }
        let before = m.len();
        let idle_ms = self.config.tracker_idle_evict_secs as i64 * 1000;
        m.retain(|_, s| now_ms - s.last_seen_ms <= idle_ms);
        if m.len() > self.config.tracker_max_sessions {
            let mut seen: Vec<i64> = m.values().map(|s| s.last_seen_ms).collect();
            seen.sort_unstable();
            let keep = self.config.tracker_max_sessions * 9 / 10;
            let cutoff = seen.get(seen.len().saturating_sub(keep)).copied().unwrap_or(i64::MAX);
            m.retain(|_, s| s.last_seen_ms >= cutoff);
        }
        metrics.tracker_evictions.inc_by((before - m.len()) as u64);
        metrics.tracked_sessions.set(m.len() as i64);
    }
}

/// Writes a root's lineage to the store (first writer wins) the first time this process tracks it, so a
/// restarted bridge still knows it as a root: otherwise a root whose later history repeats another session's
/// indexed prefix would be taken for that session's fork (docs/MUTATION.md). Forks persist their lineage
/// when they are decided; fallback keys have no lineage.
async fn persist_root(cx: &Context<'_>, identity: &Identity) {
    if identity.fork.is_some() || identity.kind == KeyKind::Fallback {
        return;
    }
    let root = Lineage { root: identity.own_key.clone(), fork: None };
    if let Ok(value) = serde_json::to_vec(&root) {
        let (ns, key) = (crate::identity::lineage::LINEAGE_NS, identity.session.clone());
        cx.recorder.write(StoreWrite::PutIfAbsent { ns, key, value }).await;
    }
}

async fn load(store: &dyn Store, session: &str) -> Option<SessionState> {
    let bytes = store.get(state::STATE_NS, session).await.ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// Compares a request with its session's previous one (reads the stored chain only on a rewrite).
async fn classify(
    store: &dyn Store,
    session: &str,
    previous: &SessionState,
    fp: &Fingerprint,
    model: Digest,
) -> Classification {
    if previous.model != model {
        return Classification::ModelChanged;
    }
    if previous.instructions != fp.instructions {
        return Classification::InstructionsChanged;
    }
    if previous.tools != fp.tools {
        return Classification::ToolsChanged;
    }
    let n = previous.items as usize;
    if n == 0 || fp.own.get(n - 1) == Some(&previous.chain) {
        return Classification::Append;
    }
    let stored = store.get(state::CHAIN_NS, session).await.ok().flatten().and_then(|b| state::unpack(&b));
    Classification::Rewrite(
        stored.map(|old| old.iter().zip(&fp.own).position(|(a, b)| a != b).unwrap_or_else(|| old.len().min(fp.len()))),
    )
}
