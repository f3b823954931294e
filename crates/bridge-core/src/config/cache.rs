//! The `[cache]` section of the config file: affinity policy, shared startup namespaces and tracker bounds.
//!
//! Invariants: unknown keys are errors (like every section); every field has a documented default, so an
//! absent section behaves exactly like an empty one.

use serde::Deserialize;

/// Which identity the upstream affinity headers carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AffinityPolicy {
    /// `session-id` is the lineage root's key (forks route with their root); `thread-id` and
    /// `x-client-request-id` are the request's own key.
    #[default]
    Lineage,
    /// All three headers are the request's own key.
    Key,
}

/// Which key a fork (or subagent) of a session-keyed lineage sends upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForkKey {
    /// The fork's own key, `cache_<root>-fork-<n>`.
    Distinct,
    /// The lineage root's key, so a fork reads the history it shares with its root from the root's cache;
    /// members spill to `cache_<root>-p<k>` when the lineage's members together exceed `namespace_max_rpm`.
    /// The bridge still tracks and reports each fork under its own identity.
    #[default]
    Root,
}

/// One config rule that puts matching requests into a shared startup namespace. Every given matcher must
/// match; a rule without matchers matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceRule {
    /// The namespace name.
    pub name: String,
    /// The client name (`originator`, else the user agent's product token).
    pub client: Option<String>,
    /// The model.
    pub model: Option<String>,
    /// Hex prefix of the instructions digest (as shown by `sessions show`).
    pub instructions_hash: Option<String>,
}

/// The raw `[cache]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCache {
    affinity: Option<AffinityPolicy>,
    fork_key: Option<ForkKey>,
    namespace_auto: Option<bool>,
    #[serde(default)]
    namespace_rules: Vec<NamespaceRule>,
    namespace_max_rpm: Option<u32>,
    tracker_max_sessions: Option<usize>,
    tracker_idle_evict_secs: Option<u64>,
    cache_ttl_secs: Option<u64>,
    min_cached_tokens: Option<u64>,
}

/// Validated cache settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    pub affinity: AffinityPolicy,
    pub fork_key: ForkKey,
    /// Every request without a host key shares routing with others of the same stable startup prefix.
    pub namespace_auto: bool,
    pub namespace_rules: Vec<NamespaceRule>,
    /// Requests per minute per namespace key before new sessions go to the next partition (the backend
    /// overflows at about 15).
    pub namespace_max_rpm: u32,
    /// Sessions kept in memory before the least recently seen are evicted to the store.
    pub tracker_max_sessions: usize,
    /// Sessions idle this long are evicted to the store.
    pub tracker_idle_evict_secs: u64,
    /// Upstream cache idle TTL assumed when explaining misses (`idle-expired`).
    pub cache_ttl_secs: u64,
    /// Prompts below this many tokens are never cached upstream (`below-minimum`).
    pub min_cached_tokens: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        FileCache::default().resolve()
    }
}

impl FileCache {
    /// Applies the defaults.
    pub fn resolve(self) -> CacheConfig {
        CacheConfig {
            affinity: self.affinity.unwrap_or_default(),
            fork_key: self.fork_key.unwrap_or_default(),
            namespace_auto: self.namespace_auto.unwrap_or(false),
            namespace_rules: self.namespace_rules,
            namespace_max_rpm: self.namespace_max_rpm.unwrap_or(12).max(1),
            tracker_max_sessions: self.tracker_max_sessions.unwrap_or(100_000).max(1),
            tracker_idle_evict_secs: self.tracker_idle_evict_secs.unwrap_or(1800),
            cache_ttl_secs: self.cache_ttl_secs.unwrap_or(300),
            min_cached_tokens: self.min_cached_tokens.unwrap_or(1024),
        }
    }
}
