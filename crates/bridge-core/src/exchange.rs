//! One exchange: its context (what every phase learned about the request, parsed once) and its
//! bookkeeping, which runs exactly once.
//!
//! An [`Exchange`] is created by the pipeline right after the ingress adapter parsed the request, and is
//! consumed by [`Exchange::finish`]. If it is dropped instead (the client went away while the handler was
//! waiting, a task was cancelled, a new exit path forgot it), its `Drop` finishes it with status 499, so no
//! path can skip the usage row or run the bookkeeping twice: `finish` takes the context out, `Drop` only
//! finishes what is still there.
//!
//! Finishing, in order: metrics (overhead, tokens by kind and model, missing usage fields) → the usage row
//! (recorder queue, never waits) → the journal turn (2xx with a session) → the tracker (2xx with an
//! identity), which fingerprints the request as sent from the parsed items (no second parse) → the
//! exchange's slots and body budget are released.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bridge_store::{Store, UsageRecord};
use bridge_types::Usage;
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::task::TaskTracker;

use crate::identity::{Identity, IdentityEngine};
use crate::journal_hook::PendingTurn;
use crate::metrics::{FieldLabel, Metrics, RouteLabel, TokenLabels, TransportLabel};
use crate::recorder::Recorder;
use crate::sent::SentRequest;
use crate::tracker::Tracker;

/// The status recorded for an exchange dropped before it finished (nginx's "client closed request").
pub const ABANDONED: u16 = 499;

/// The client transport an exchange arrived on (`sessions show` and the metrics label turns with it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Transport {
    /// `POST /v1/responses` (and its aliases).
    #[default]
    Http,
    /// A `response.create` frame on a client WebSocket ([`crate::ws_ingress`]).
    Ws,
}

impl Transport {
    /// The label shown in metrics and turn rows.
    pub fn label(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Ws => "ws",
        }
    }
}

/// What an exchange learned, filled in phase by phase.
#[derive(Default)]
pub struct ExchangeContext {
    pub request_id: String,
    pub ts_ms: i64,
    pub route: &'static str,
    /// The client transport.
    pub transport: Transport,
    /// When the transport received the request (`None` only in a finished exchange's emptied context).
    pub started: Option<Instant>,
    /// Client name (`originator`, else the user agent's product token).
    pub client: Option<String>,
    /// `model` as the client sent it.
    pub model: Option<String>,
    /// Set by the identify phase.
    pub identity: Option<Identity>,
    /// Whether the client asked for a stream.
    pub client_streams: bool,
    /// Set once the request is final (after shaping).
    pub sent: Option<Arc<SentRequest>>,
    /// The journal's view (journal on and a session known).
    pub journal: Option<PendingTurn>,
    /// Bridge time spent on this exchange outside the upstream's own time.
    pub overhead: Duration,
    /// The body's share of the in-flight body budget and the open-exchange slot, released at the end.
    permits: Vec<OwnedSemaphorePermit>,
}

/// How an exchange ended.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The HTTP status the client got (or would have got).
    pub status: u16,
    /// Usage as the upstream reported it (absent fields stay absent).
    pub usage: Option<Usage>,
    /// Output items from `response.output_item.done`, for the journal.
    pub output_items: Vec<Value>,
}

impl Outcome {
    /// An outcome with only a status (errors, abandoned exchanges).
    pub fn status(status: u16) -> Self {
        Self { status, ..Self::default() }
    }
}

/// The bridge parts bookkeeping writes to; one per bridge, shared by every exchange.
pub struct Books {
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    pub store: Arc<dyn Store>,
    pub identity: Arc<IdentityEngine>,
    pub tracker: Arc<Tracker>,
    pub journal: Option<bridge_journal::Journal>,
    /// Finishes spawned from `Drop` are tracked here, so shutdown waits for them.
    pub tasks: TaskTracker,
}

/// An exchange in progress; see the module docs.
pub struct Exchange {
    cx: ExchangeContext,
    books: Arc<Books>,
    /// Set by `finish`; `Drop` finishes only an exchange that was not.
    finished: bool,
}

impl Exchange {
    /// Starts an exchange; `permits` are released when it finishes.
    pub fn begin(
        books: Arc<Books>,
        request_id: String,
        route: &'static str,
        started: Instant,
        permits: Vec<OwnedSemaphorePermit>,
    ) -> Self {
        let cx = ExchangeContext {
            request_id,
            ts_ms: crate::clock::now_ms(),
            route,
            transport: Transport::Http,
            started: Some(started),
            client: None,
            model: None,
            identity: None,
            client_streams: false,
            sent: None,
            journal: None,
            overhead: Duration::ZERO,
            permits,
        };
        Self { cx, books, finished: false }
    }

    /// The context.
    pub fn cx(&self) -> &ExchangeContext {
        &self.cx
    }

    /// The context, mutably.
    pub fn cx_mut(&mut self) -> &mut ExchangeContext {
        &mut self.cx
    }

    /// Holds one more permit until the exchange finishes.
    pub fn hold(&mut self, permit: OwnedSemaphorePermit) {
        self.cx_mut().permits.push(permit);
    }

    /// Records the exchange (module docs). Consumes it: it cannot run twice.
    pub async fn finish(mut self, outcome: Outcome) {
        self.finished = true;
        let cx = std::mem::take(&mut self.cx);
        record(&self.books, cx, outcome).await;
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let cx = std::mem::take(&mut self.cx);
        tracing::debug!(request_id = %cx.request_id, "exchange dropped before it finished; recording it as abandoned");
        let books = self.books.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(_) => {
                books.tasks.clone().spawn(async move { record(&books, cx, Outcome::status(ABANDONED)).await });
            }
            Err(_) => tracing::warn!(request_id = %cx.request_id, "exchange dropped outside the runtime; not recorded"),
        }
    }
}

/// The bookkeeping of one finished exchange.
async fn record(books: &Books, cx: ExchangeContext, outcome: Outcome) {
    let ExchangeContext {
        request_id,
        ts_ms,
        route,
        transport,
        started,
        client,
        model,
        identity,
        client_streams,
        sent,
        journal,
        overhead,
        permits,
    } = cx;
    let metrics = &books.metrics;
    Metrics::observe(&metrics.overhead, route, overhead);
    metrics.exchanges.get_or_create(&RouteLabel { route }).inc();
    metrics.exchanges_by_transport.get_or_create(&TransportLabel { transport: transport.label() }).inc();
    let model_label = metrics.model_label(model.as_deref());
    let usage = outcome.usage.unwrap_or_default();
    for (kind, value) in [
        ("input", usage.input_tokens),
        ("cached", usage.cached_tokens),
        ("cache_write", usage.cache_write_tokens),
        ("output", usage.output_tokens),
        ("reasoning", usage.reasoning_tokens),
    ] {
        match value {
            Some(v) => {
                metrics.tokens.get_or_create(&TokenLabels { kind, model: model_label.clone() }).inc_by(v);
            }
            None => {
                metrics.usage_missing.get_or_create(&FieldLabel { field: kind }).inc();
            }
        }
    }
    let ok = (200..300).contains(&outcome.status);
    tracing::debug!(request_id = %request_id, status = outcome.status, elapsed_ms = started.map_or(0, |s| s.elapsed().as_millis() as u64), "exchange finished");
    // The usage row is queued first: it never waits behind the journal writer's back-pressure, so a crash
    // loses only what the recorder had not yet committed (docs/BENCHMARKS.md, crash loss).
    books
        .recorder
        .record(UsageRecord {
            request_id: request_id.clone(),
            ts_ms,
            route: route.to_owned(),
            status: outcome.status,
            streamed: client_streams,
            model: model.clone(),
            session_id: identity.as_ref().map(|i| i.session.clone()),
            cache_key: identity.as_ref().map(|i| i.key.clone()),
            client: client.clone(),
            input_tokens: usage.input_tokens,
            cached_tokens: usage.cached_tokens,
            cache_write_tokens: usage.cache_write_tokens,
            output_tokens: usage.output_tokens,
            reasoning_tokens: usage.reasoning_tokens,
            total_tokens: usage.total_tokens,
        })
        .await;
    if let (true, Some(turn), Some(journal), Some(sent)) = (ok, journal, &books.journal, &sent) {
        crate::journal_hook::finish(journal, turn, sent, outcome.output_items, outcome.usage.as_ref()).await;
    }
    if let (true, Some(identity), Some(sent)) = (ok, identity, sent) {
        let turn =
            crate::tracker::Turn { identity, sent, request_id, ts_ms, model, client, transport: transport.label() };
        let cx = crate::tracker::Context {
            store: books.store.as_ref(),
            recorder: &books.recorder,
            metrics,
            lineages: books.identity.lineages(),
        };
        books.tracker.observe(&cx, turn, &usage).await;
    }
    drop(permits);
}
