//! Identity hints found in a request, in the documented precedence (README, "Cache identity"):
//! body `prompt_cache_key` / `promptCacheKey`; metadata ids; session headers; the parent header; fork hints.
//!
//! Invariants: one extraction feeds both the cache key and the session tracker (no second hint list);
//! a hint counts only as a non-empty string after trimming; a hint that is present but empty, blank or not a
//! string is reported in [`Hints::unusable`] by its location, never by its value.

use axum::http::HeaderMap;
use bridge_types::ResponsesRequest;
use serde_json::{Map, Value};

/// Metadata (then root-level) fields naming the conversation, in precedence order.
pub const SESSION_FIELDS: &[&str] = &["conversation_id", "conversationId", "session_id", "sessionId"];
/// Request headers naming the session, in precedence order.
pub const SESSION_HEADERS: &[&str] = &[
    "session-id",
    "thread-id",
    "x-session-id",
    "x-session-affinity",
    "x-opencode-session",
    "conversation_id",
    "session_id",
];
/// The header naming the parent session of a subagent or fork.
pub const PARENT_HEADER: &str = "x-parent-session-id";
/// Fields naming a fork of the conversation (the conversation is the fork's base).
pub const FORK_FIELDS: &[&str] = &["forkId", "fork_id", "branchId", "branch_id"];
/// Fields naming the parent conversation (the conversation itself is the fork).
pub const PARENT_FIELDS: &[&str] = &["parentConversationId", "parent_conversation_id"];
/// The request header that opts a request into a shared startup namespace.
pub const NAMESPACE_HEADER: &str = "x-codex-bridge-cache-namespace";

/// One usable hint: where it was found and its trimmed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    /// `metadata.conversation_id`, `header session-id`, ...
    pub source: String,
    pub value: String,
}

impl Hint {
    /// Whether the hint came from a request header (not from the body).
    pub fn is_header(&self) -> bool {
        self.source.starts_with("header ")
    }
}

/// Every identity hint of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// The client's own key (snake case wins over `promptCacheKey`).
    pub host_key: Option<String>,
    /// The conversation or session id.
    pub session: Option<Hint>,
    /// A fork id of the session (`forkId`, `branchId`, ...).
    pub fork: Option<Hint>,
    /// The parent conversation (`parentConversationId`) or parent session (`x-parent-session-id`).
    pub parent: Option<Hint>,
    /// The namespace asked for by header.
    pub namespace: Option<String>,
    /// Conversation-like hints that were present but unusable.
    pub unusable: Vec<String>,
}

impl Hints {
    /// Extracts the hints of a request.
    pub fn extract(request: &ResponsesRequest, headers: &HeaderMap) -> Self {
        let metadata: Option<Map<String, Value>> = request.get("metadata").ok().flatten();
        let mut hints = Hints::default();
        for field in ["prompt_cache_key", "promptCacheKey"] {
            let raw: Option<Value> = request.get(field).ok().flatten();
            match usable(raw.as_ref()) {
                Ok(Some(v)) if hints.host_key.is_none() => hints.host_key = Some(v),
                Err(()) => hints.unusable.push(field.to_owned()),
                _ => {}
            }
        }
        hints.session = hints.field(request, metadata.as_ref(), SESSION_FIELDS);
        if hints.session.is_none() {
            hints.session = hints.header(headers, SESSION_HEADERS);
        }
        hints.fork = hints.field(request, metadata.as_ref(), FORK_FIELDS);
        hints.parent = hints.field(request, metadata.as_ref(), PARENT_FIELDS);
        if hints.parent.is_none() {
            hints.parent = hints.header(headers, &[PARENT_HEADER]);
        }
        hints.namespace = headers
            .get(NAMESPACE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        hints
    }

    /// The first usable field among `names`, metadata before the root object for each name.
    fn field(
        &mut self,
        request: &ResponsesRequest,
        metadata: Option<&Map<String, Value>>,
        names: &[&str],
    ) -> Option<Hint> {
        for name in names {
            let root: Option<Value> = request.get(name).ok().flatten();
            for (place, value) in [("metadata", metadata.and_then(|m| m.get(*name))), ("body", root.as_ref())] {
                match usable(value) {
                    Ok(Some(v)) => return Some(Hint { source: format!("{place}.{name}"), value: v }),
                    Ok(None) => {}
                    Err(()) => self.unusable.push(format!("{place}.{name}")),
                }
            }
        }
        None
    }

    /// The first usable header among `names`.
    fn header(&mut self, headers: &HeaderMap, names: &[&str]) -> Option<Hint> {
        for name in names {
            let Some(value) = headers.get(*name) else { continue };
            match value.to_str().map(str::trim) {
                Ok(v) if !v.is_empty() => return Some(Hint { source: format!("header {name}"), value: v.to_owned() }),
                _ => self.unusable.push(format!("header {name}")),
            }
        }
        None
    }
}

/// `Ok(Some)` for a non-empty trimmed string, `Ok(None)` when absent, `Err` when present but unusable.
fn usable(value: Option<&Value>) -> Result<Option<String>, ()> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Some(_) => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hints(body: &str, headers: &[(&'static str, &str)]) -> Hints {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().unwrap());
        }
        Hints::extract(&ResponsesRequest::parse(body.as_bytes()).unwrap(), &map)
    }

    #[test]
    fn snake_case_host_key_wins() {
        let h = hints(r#"{"model":"m","promptCacheKey":"camel","prompt_cache_key":"snake"}"#, &[]);
        assert_eq!(h.host_key.as_deref(), Some("snake"));
    }

    #[test]
    fn metadata_beats_root_and_headers() {
        let h = hints(
            r#"{"model":"m","conversation_id":"root","metadata":{"conversation_id":"meta"}}"#,
            &[("session-id", "hdr")],
        );
        assert_eq!(h.session.unwrap().source, "metadata.conversation_id");
        let h = hints(r#"{"model":"m"}"#, &[("x-opencode-session", "o"), ("thread-id", "t")]);
        assert_eq!(h.session.unwrap().value, "t");
    }

    #[test]
    fn unusable_hints_are_named_without_values() {
        let h = hints(r#"{"model":"m","metadata":{"conversation_id":"  ","sessionId":7}}"#, &[]);
        assert!(h.session.is_none());
        assert_eq!(h.unusable, vec!["metadata.conversation_id", "metadata.sessionId"]);
    }

    #[test]
    fn fork_and_parent_hints() {
        let h = hints(r#"{"model":"m","metadata":{"conversation_id":"c","forkId":" f "}}"#, &[]);
        assert_eq!(h.fork.unwrap().value, "f");
        let h = hints(r#"{"model":"m","parent_conversation_id":"p"}"#, &[(PARENT_HEADER, "h")]);
        assert_eq!(h.parent.unwrap().value, "p");
        let h = hints(r#"{"model":"m"}"#, &[(PARENT_HEADER, "h"), (NAMESPACE_HEADER, " team ")]);
        assert_eq!(h.parent.unwrap().source, "header x-parent-session-id");
        assert_eq!(h.namespace.as_deref(), Some("team"));
    }
}
