//! Upstream affinity headers (`session-id`, `thread-id`, `x-client-request-id`) derived from the identity,
//! so every routing signal the backend may key on agrees with the `prompt_cache_key`.
//!
//! Invariants: under [`AffinityPolicy::Lineage`] `session-id` is the lineage root's key (forks and namespace
//! members route with their root; a spilled fork with its spill partition's key) and the thread headers are the request's own key; under
//! [`AffinityPolicy::Key`] all three are the sent key. Client-sent values of these headers (and their
//! underscore spellings) are replaced, never duplicated.

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use super::Identity;
use crate::config::cache::AffinityPolicy;

/// Sets the affinity headers on the upstream request headers.
pub fn affinity_headers(headers: &mut HeaderMap, identity: &Identity, policy: AffinityPolicy) {
    let (session, thread) = match policy {
        AffinityPolicy::Lineage => (identity.routing_root(), identity.own_key.as_str()),
        AffinityPolicy::Key => (identity.key.as_str(), identity.key.as_str()),
    };
    headers.remove("session_id");
    for (name, value) in [("session-id", session), ("thread-id", thread), ("x-client-request-id", thread)] {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
}
