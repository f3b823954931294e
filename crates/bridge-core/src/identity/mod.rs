//! The cache identity engine: one identity per request, from which the `prompt_cache_key` and the upstream
//! affinity headers are derived (README, "Cache identity").
//!
//! Precedence: a host key (kept verbatim) → a session id (`cache_<base>`) → with a fork hint, a parent or an
//! implicitly detected fork, `cache_<root>-fork-<n>` → no identity at all, `cache_<hash>` of the stable
//! prefix. A shared startup namespace, when opted into, replaces the key with the namespace partition's key.
//! Under `[cache] fork_key = "root"` (the default) a fork keeps its own identity (`cache_<root>-fork-<n>`, or
//! its own host key) for the tracker, journal and reports, but sends its root's key upstream, or a spill partition's
//! `cache_<root>-p<k>` when the lineage was over the per-key rate when the fork joined.
//!
//! Invariants:
//! - The key is a pure function of the request and the stored lineage and partition state: no clock, no
//!   randomness (a new member's partition also depends on the recent request rate, by design, and only
//!   when it joins; it is stored then and never changes).
//! - Soft overrides (`temperature`, `top_p`, `max_output_tokens`, `reasoning.*`, `text.verbosity`,
//!   `tool_choice`, `parallel_tool_calls`, `service_tier`, the model) are never read.
//! - A key never changes on a prefix mismatch; unrelated conversations never share a derived key.
//! - Session names (lineage, tracker, journal): a body key or metadata id names its session verbatim
//!   (sanitized); a session named only by a header is filed under its key `cache_<id>`, so a keyless side
//!   request (OpenCode's title request) never shares a session with the keyed conversation of the same id.
//! - Store reads on the request path happen only for sessions this process has not seen (lineage lookup,
//!   fork search, namespace and partition assignment); everything else is served from memory.

pub mod affinity;
pub mod canonical;
pub mod hints;
pub mod keys;
pub mod lineage;
pub mod namespace;
pub mod partitions;
pub mod prefix;

use std::sync::Arc;

use axum::http::HeaderMap;
use bridge_store::{Store, StoreResult};
use bridge_types::ResponsesRequest;

pub use crate::config::cache::{AffinityPolicy, CacheConfig, ForkKey, NamespaceRule};
pub use affinity::affinity_headers;
pub use hints::Hints;
pub use lineage::{IndexEntry, Lineage, Lineages};
pub use prefix::Fingerprint;

/// Where the key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// The client's own `prompt_cache_key` / `promptCacheKey`, verbatim.
    Host,
    /// `cache_<base>` from a session id.
    Session,
    /// `cache_<root>-fork-<n>`.
    Fork,
    /// `cache_ns-<name>-p<k>`.
    Namespace,
    /// `cache_<hash>` of the stable prefix.
    Fallback,
}

impl KeyKind {
    /// A short label for logs, metrics and `sessions show`.
    pub fn label(self) -> &'static str {
        match self {
            KeyKind::Host => "host",
            KeyKind::Session => "session",
            KeyKind::Fork => "fork",
            KeyKind::Namespace => "namespace",
            KeyKind::Fallback => "fallback",
        }
    }
}

/// How a request's key relates to its own identity (the key sent upstream vs the one it is reported under).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Routing {
    /// The key is the session's own (or a namespace's, see [`Identity::namespace`]).
    #[default]
    Own,
    /// A fork sending its lineage root's key (`[cache] fork_key = "root"`).
    WithRoot,
    /// A fork sending `cache_<root>-p<k>`: the lineage was over the per-key rate when it joined.
    Spilled(u32),
}

impl Routing {
    /// `with-root`, `spilled-p<k>`; `None` for a request routed by its own key.
    pub fn label(self) -> Option<String> {
        match self {
            Routing::Own => None,
            Routing::WithRoot => Some("with-root".to_owned()),
            Routing::Spilled(p) => Some(format!("spilled-p{p}")),
        }
    }
}

/// The resolved identity of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The `prompt_cache_key` sent upstream.
    pub key: String,
    pub kind: KeyKind,
    /// The key this session would have without a namespace (its own routing identity).
    pub own_key: String,
    /// The lineage root's key (equal to `own_key` for roots; the namespace key in namespace mode).
    pub root_key: String,
    /// The session id the tracker files this request under.
    pub session: String,
    pub fork: Option<u64>,
    pub namespace: Option<String>,
    /// How `key` relates to `own_key` for forks routed with their root.
    pub routing: Routing,
    /// The lineage alone sends more than `namespace_max_rpm` requests per minute on its key (reported, not
    /// moved).
    pub over_rate: bool,
    /// Set when conversation-like hints were present but unusable and the fallback key was used.
    pub warning: Option<String>,
}

impl Identity {
    /// The key the lineage routes with upstream (`session-id` under the lineage affinity policy): the root's
    /// key, or the spill partition's key for a spilled fork.
    pub fn routing_root(&self) -> &str {
        match self.routing {
            Routing::Spilled(_) => &self.key,
            Routing::Own | Routing::WithRoot => &self.root_key,
        }
    }
}

/// Resolves identities; shared by every request of a bridge.
pub struct IdentityEngine {
    config: CacheConfig,
    lineages: Lineages,
    partitions: partitions::PartitionBook,
}

impl IdentityEngine {
    /// An engine over `store`.
    pub fn new(config: CacheConfig, store: Arc<dyn Store>) -> Self {
        let lineages = Lineages::new(store.clone(), config.tracker_max_sessions);
        let partitions = partitions::PartitionBook::new(store, config.tracker_max_sessions);
        Self { config, lineages, partitions }
    }

    /// The lineage caches and prefix index.
    pub fn lineages(&self) -> &Lineages {
        &self.lineages
    }

    /// Resolves the identity of a request. `client` is the client name; `now_ms` only feeds namespace
    /// partition rates.
    pub async fn resolve(
        &self,
        request: &ResponsesRequest,
        headers: &HeaderMap,
        client: Option<&str>,
        now_ms: i64,
    ) -> StoreResult<Identity> {
        let mut hints = Hints::extract(request, headers);
        let mut fingerprint: Option<Fingerprint> = None;
        let mut identity = match (&hints.host_key, &hints.session) {
            (Some(host), _) => {
                self.lineage_of(host, host.clone(), KeyKind::Host, &hints, request, &mut fingerprint).await?
            }
            (None, Some(session)) => {
                let own = keys::session_key(&session.value);
                // A session named only by a header is filed under its key: a client that also sends a body
                // key with the same id (OpenCode) uses the bare id for its conversation, and a keyless side
                // request (its title request) must not join that conversation's lineage or tracking.
                let id = if session.is_header() { own.clone() } else { keys::sanitize(&session.value) };
                self.lineage_of(&id, own, KeyKind::Session, &hints, request, &mut fingerprint).await?
            }
            (None, None) => {
                for (hint, name) in [(&hints.fork, "fork"), (&hints.parent, "parent")] {
                    if let Some(h) = hint {
                        hints.unusable.push(format!("{} ({name} hint without a session)", h.source));
                    }
                }
                let fp = fingerprint.get_or_insert_with(|| Fingerprint::of(request));
                let key = keys::fallback_key(&fp.stable);
                let warning = (!hints.unusable.is_empty()).then(|| {
                    format!(
                        "no usable session identity; prompt_cache_key derived from the request prefix (unusable: {})",
                        hints.unusable.join(", ")
                    )
                });
                Identity {
                    key: key.clone(),
                    kind: KeyKind::Fallback,
                    own_key: key.clone(),
                    root_key: key.clone(),
                    session: key,
                    fork: None,
                    namespace: None,
                    routing: Routing::Own,
                    over_rate: false,
                    warning,
                }
            }
        };
        // A lineage that joined a namespace keeps it (and forks follow their root), so a later prefix change
        // never moves its key; only a lineage's first request is matched against the header, rules and auto.
        let lineage = identity.root_key.clone();
        let joined = match &hints.namespace {
            Some(_) => None,
            None => self.partitions.joined(&lineage).await?,
        };
        let chosen = joined.or_else(|| {
            let model = request.model();
            let needs_fp = namespace::needs_fingerprint(&self.config);
            let empty = Fingerprint::default();
            let fp_ref = if needs_fp { &*fingerprint.get_or_insert_with(|| Fingerprint::of(request)) } else { &empty };
            let subject = namespace::Subject {
                header: hints.namespace.as_deref(),
                client,
                model: model.as_deref(),
                fingerprint: fp_ref,
            };
            namespace::choose(&self.config, &subject)
        });
        let max_rpm = self.config.namespace_max_rpm;
        if let Some(name) = chosen {
            let name = self.partitions.join(&lineage, &name).await?;
            let routed = self.partitions.route(&name, &lineage, now_ms, max_rpm, None).await?;
            identity.key = keys::namespace_key(&name, routed.partition);
            identity.root_key = identity.key.clone();
            identity.kind = KeyKind::Namespace;
            identity.namespace = Some(name);
            identity.over_rate = routed.over_rate;
        } else if self.config.fork_key == ForkKey::Root && identity.kind != KeyKind::Fallback {
            self.route_with_root(&mut identity, now_ms).await?;
        }
        Ok(identity)
    }

    /// Under `fork_key = "root"`: a lineage is one routing group; its root is partition 0 (its own key), and
    /// a fork (a host-keyed one too: a fork inherits its parent's key, as Codex's own forks do) joins the
    /// lowest partition under the rate: 0 sends the root's key, `k > 0` sends `cache_<root>-p<k>`. Roots are
    /// counted too, since their requests load the key forks join.
    async fn route_with_root(&self, identity: &mut Identity, now_ms: i64) -> StoreResult<()> {
        let max_rpm = self.config.namespace_max_rpm;
        let group = identity.root_key.clone();
        let fixed = identity.fork.is_none().then_some(0);
        let routed = self.partitions.route(&group, &identity.session, now_ms, max_rpm, fixed).await?;
        identity.over_rate = routed.over_rate;
        if identity.fork.is_none() {
            return Ok(());
        }
        if routed.partition == 0 {
            identity.key = group;
            identity.routing = Routing::WithRoot;
        } else {
            identity.key = keys::spill_key(&group, routed.partition);
            identity.routing = Routing::Spilled(routed.partition);
        }
        Ok(())
    }

    /// The identity of a session with an id: explicit fork, parent, remembered lineage or implicit fork.
    async fn lineage_of(
        &self,
        session: &str,
        own: String,
        kind: KeyKind,
        hints: &Hints,
        request: &ResponsesRequest,
        fingerprint: &mut Option<Fingerprint>,
    ) -> StoreResult<Identity> {
        let derived = kind == KeyKind::Session;
        let mut identity = Identity {
            key: own.clone(),
            kind,
            own_key: own.clone(),
            root_key: own.clone(),
            session: session.to_owned(),
            fork: None,
            namespace: None,
            routing: Routing::Own,
            over_rate: false,
            warning: None,
        };
        let decided = if let (Some(fork), true) = (&hints.fork, derived) {
            let fork_session = format!("{session}-fork-{}", keys::sanitize(&fork.value));
            identity.session = fork_session.clone();
            match self.lineages.get(&fork_session).await? {
                Some(l) => Some(l),
                None => {
                    let root = self.root_of(session, &own).await?;
                    Some(self.lineages.fork(&fork_session, &root, &keys::sanitize(&fork.value)).await?)
                }
            }
        } else if let Some(l) = self.lineages.get(session).await? {
            Some(l)
        } else if let Some(parent) = &hints.parent {
            let default_root = if derived { keys::session_key(&parent.value) } else { keys::sanitize(&parent.value) };
            let root = self.parent_root(&parent.value, &default_root).await?;
            Some(self.lineages.fork(session, &root, session).await?)
        } else {
            let fp = fingerprint.get_or_insert_with(|| Fingerprint::of(request));
            match self.lineages.deepest(&fp.shared, fp.history_start()).await? {
                Some((_, entry)) if entry.owner != session => {
                    Some(self.lineages.fork(session, &entry.root, session).await?)
                }
                _ => {
                    self.lineages.remember(session, Lineage { root: own.clone(), fork: None });
                    None
                }
            }
        };
        if let Some(Lineage { root, fork: Some(n) }) = decided {
            identity.fork = Some(n);
            identity.root_key = root.clone();
            if derived {
                identity.key = keys::fork_key(&root, n);
                identity.own_key = identity.key.clone();
                identity.kind = KeyKind::Fork;
            }
        }
        Ok(identity)
    }

    /// The root key of the parent session named `parent`: its lineage under the bare id (body key or
    /// metadata id), else under `cache_<id>` (a session named only by a header), else `default`.
    async fn parent_root(&self, parent: &str, default: &str) -> StoreResult<String> {
        match self.lineages.get(&keys::sanitize(parent)).await? {
            Some(l) => Ok(l.root),
            None => self.root_of(&keys::session_key(parent), default).await,
        }
    }

    /// The root key of `session`'s lineage, or `default` when it has none on record.
    async fn root_of(&self, session: &str, default: &str) -> StoreResult<String> {
        Ok(self.lineages.get(session).await?.map_or_else(|| default.to_owned(), |l| l.root))
    }
}

/// The response header carrying an identity warning to the client.
pub const WARNING_HEADER: &str = "x-codex-bridge-warning";

/// Resolves a request's identity for the proxy: logs and counts a fallback warning; if the store fails
/// (down or slower than `store_timeout_ms`: see [`crate::store_guard`]), degrades to the store-free identity (own key, no fork numbering) rather than failing the
/// request.
pub async fn for_request(
    engine: &IdentityEngine,
    metrics: &crate::metrics::Metrics,
    request: &ResponsesRequest,
    headers: &HeaderMap,
    client: Option<&str>,
) -> Result<Identity, bridge_types::ApiError> {
    let identity = match engine.resolve(request, headers, client, crate::clock::now_ms()).await {
        Ok(i) => i,
        Err(e) => {
            // An outage was logged once by the store guard and is counted there; only other errors log here.
            if crate::store_guard::is_outage(&e) {
                tracing::debug!(error = %e, "store unavailable; using the session's own key");
            } else {
                tracing::error!(error = %e, "lineage lookup failed; using the session's own key");
            }
            let store_free = IdentityEngine::new(engine.config.clone(), Arc::new(bridge_store::MemoryStore::default()));
            store_free.resolve(request, headers, client, crate::clock::now_ms()).await.map_err(|e| {
                bridge_types::ApiError::new(500, bridge_types::ErrorKind::ServerError, format!("cache identity: {e}"))
            })?
        }
    };
    if let Some(w) = &identity.warning {
        tracing::warn!(key = %identity.key, warning = %w, "prompt cache key hints detected but unusable");
        metrics.cache_key_warnings.inc();
    }
    Ok(identity)
}

/// Sets `prompt_cache_key` to the identity's key; a body that already carries it stays unmodified.
pub fn apply_key(request: &mut ResponsesRequest, identity: &Identity) -> Result<(), serde_json::Error> {
    request.set("prompt_cache_key", &identity.key)
}

#[cfg(test)]
mod tests;
