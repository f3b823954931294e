//! Classification of a request against its session's previous one, and the outcome once usage arrives.
//!
//! Invariants: all are pure functions; classification looks at the model first, then instructions, tools
//! and input, in the order the backend's prompt is built; a missing usage field gives no outcome rather
//! than a guess, and never counts as 0.

use std::fmt;

/// How a request relates to the previous request of its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classification {
    /// The first request of the session.
    New,
    /// The input extends (or repeats) the previous input.
    Append,
    /// The input differs from the previous input from item `k` on (edit, fork or compaction); `None`
    /// when the previous chain was no longer in the store.
    Rewrite(Option<usize>),
    InstructionsChanged,
    ToolsChanged,
    ModelChanged,
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Classification::New => f.write_str("new"),
            Classification::Append => f.write_str("append"),
            Classification::Rewrite(Some(k)) => write!(f, "rewrite@{k}"),
            Classification::Rewrite(None) => f.write_str("rewrite@?"),
            Classification::InstructionsChanged => f.write_str("instructions-changed"),
            Classification::ToolsChanged => f.write_str("tools-changed"),
            Classification::ModelChanged => f.write_str("model-changed"),
        }
    }
}

/// What a request's usage tells about the upstream cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// At least 95% of the expected cacheable prefix was cached.
    Hit,
    /// Some, but less than expected, for no recorded reason.
    Partial,
    /// The prompt (or the cacheable prefix) is under the backend's minimum.
    BelowMinimum,
    /// The prefix changed at item `k` of `field` (`input`, `instructions`, `tools`, `model`).
    PrefixChanged(String),
    /// A new identity: nothing could be cached yet.
    NewIdentity,
    /// A fork's first turn on a spill partition's key (its lineage was over the per-key rate when it
    /// joined), so its root's cache could not serve it.
    Spilled,
    /// The session was idle longer than the upstream cache TTL.
    IdleExpired,
    /// The turn went out on a new upstream socket (a new connection may land on another cache machine).
    NewSocket,
    /// The delta's anchor was gone upstream; the turn was resent in full.
    AnchorLost,
    /// Nothing explains the miss.
    Unexplained,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Hit => f.write_str("hit"),
            Outcome::Partial => f.write_str("partial"),
            Outcome::BelowMinimum => f.write_str("below-minimum"),
            Outcome::PrefixChanged(at) => write!(f, "prefix-changed@{at}"),
            Outcome::NewIdentity => f.write_str("new-identity"),
            Outcome::Spilled => f.write_str("spilled"),
            Outcome::IdleExpired => f.write_str("idle-expired"),
            Outcome::NewSocket => f.write_str("new-socket"),
            Outcome::AnchorLost => f.write_str("anchor-lost"),
            Outcome::Unexplained => f.write_str("unexplained"),
        }
    }
}

impl Outcome {
    /// The metric label: the outcome without its position (`prefix-changed:input`).
    pub fn label(&self) -> String {
        match self {
            Outcome::PrefixChanged(at) => {
                format!("prefix-changed:{}", at.split_once(':').map_or("input", |(_, field)| field))
            }
            other => other.to_string(),
        }
    }

    /// True for `hit` and `partial`.
    pub fn is_hit(&self) -> bool {
        matches!(self, Outcome::Hit | Outcome::Partial)
    }
}

/// The outcome as a turn row shows it: a `new-socket` miss names, when known, how the lineage's previous
/// upstream socket was lost (`new-socket (previous socket closed_mid_stream 1006, 42 s ago)`); the
/// reason code before the parenthesis stays the outcome's own.
pub fn shown(outcome: &Outcome, previous_loss: Option<&str>) -> String {
    match (outcome, previous_loss) {
        (Outcome::NewSocket, Some(loss)) => format!("{outcome} ({loss})"),
        _ => outcome.to_string(),
    }
}

/// Facts the outcome depends on.
#[derive(Debug, Clone, Copy)]
pub struct Evidence {
    pub classification: Classification,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    /// Prompt tokens of the session's previous request (what an append could reuse), if known.
    pub previous_input_tokens: Option<u64>,
    /// Time since the session's previous request.
    pub idle_ms: Option<i64>,
    pub ttl_ms: i64,
    pub min_tokens: u64,
    /// The request was routed to a spill partition's key instead of its root's.
    pub spilled: bool,
    /// What happened to the upstream socket on this turn, when it explains a miss.
    pub socket: Option<SocketEvent>,
}

/// An upstream socket event that explains a miss on an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketEvent {
    /// A new socket (first turn on it, after a retirement, eviction or bypass).
    NewSocket,
    /// The anchor was lost and the turn resent in full.
    AnchorLost,
}

/// The backend caches in 128-token blocks.
const BLOCK: u64 = 128;

/// Explains a request's cached tokens.
pub fn outcome(e: &Evidence) -> Outcome {
    if e.input_tokens < e.min_tokens {
        return Outcome::BelowMinimum;
    }
    let expected = match e.classification {
        Classification::Append => e.previous_input_tokens.map_or(0, |p| p.min(e.input_tokens) / BLOCK * BLOCK),
        _ => 0,
    };
    let enough = e.cached_tokens > 0 && e.cached_tokens * 100 >= expected * 95;
    match e.classification {
        Classification::Append if enough => return Outcome::Hit,
        Classification::New if e.cached_tokens > 0 => return Outcome::Hit,
        _ => {}
    }
    let changed = match e.classification {
        Classification::Rewrite(k) => Some(format!("{}:input", k.map_or_else(|| "?".to_owned(), |k| k.to_string()))),
        Classification::InstructionsChanged => Some("0:instructions".to_owned()),
        Classification::ToolsChanged => Some("0:tools".to_owned()),
        Classification::ModelChanged => Some("0:model".to_owned()),
        Classification::New | Classification::Append => None,
    };
    if let Some(at) = changed {
        return Outcome::PrefixChanged(at);
    }
    if e.cached_tokens > 0 {
        return Outcome::Partial;
    }
    if e.classification == Classification::New {
        return if e.spilled { Outcome::Spilled } else { Outcome::NewIdentity };
    }
    if expected < e.min_tokens {
        return Outcome::BelowMinimum;
    }
    if e.idle_ms.is_some_and(|idle| idle > e.ttl_ms) {
        return Outcome::IdleExpired;
    }
    match e.socket {
        Some(SocketEvent::AnchorLost) => return Outcome::AnchorLost,
        Some(SocketEvent::NewSocket) => return Outcome::NewSocket,
        None => {}
    }
    Outcome::Unexplained
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(c: Classification, input: u64, cached: u64, prev: Option<u64>, idle: i64) -> Outcome {
        outcome(&Evidence { previous_input_tokens: prev, idle_ms: Some(idle), ..evidence(c, input, cached) })
    }

    fn evidence(c: Classification, input: u64, cached: u64) -> Evidence {
        Evidence {
            classification: c,
            input_tokens: input,
            cached_tokens: cached,
            previous_input_tokens: None,
            idle_ms: None,
            ttl_ms: 300_000,
            min_tokens: 1024,
            spilled: false,
            socket: None,
        }
    }

    #[test]
    fn a_new_socket_or_a_lost_anchor_explains_an_otherwise_unexplained_miss() {
        let e = |socket| Evidence {
            classification: Classification::Append,
            input_tokens: 3000,
            cached_tokens: 0,
            previous_input_tokens: Some(2900),
            idle_ms: Some(0),
            ttl_ms: 300_000,
            min_tokens: 1024,
            spilled: false,
            socket,
        };
        assert_eq!(outcome(&e(Some(SocketEvent::NewSocket))).to_string(), "new-socket");
        assert_eq!(outcome(&e(Some(SocketEvent::AnchorLost))).to_string(), "anchor-lost");
        let loss = "previous socket retired_age, 3 s ago";
        assert_eq!(shown(&Outcome::NewSocket, Some(loss)), "new-socket (previous socket retired_age, 3 s ago)");
        assert_eq!(shown(&Outcome::NewSocket, None), "new-socket");
        assert_eq!(shown(&Outcome::Hit, Some(loss)), "hit", "only a new-socket miss names the loss");
        assert_eq!(outcome(&e(None)), Outcome::Unexplained);
        let hit = Evidence { cached_tokens: 2816, ..e(Some(SocketEvent::NewSocket)) };
        assert_eq!(outcome(&hit), Outcome::Hit, "a hit stays a hit");
    }

    #[test]
    fn outcomes() {
        use Classification::*;
        assert_eq!(ev(Append, 900, 0, Some(800), 0), Outcome::BelowMinimum);
        assert_eq!(ev(Append, 3000, 2048, Some(2100), 0), Outcome::Hit);
        assert_eq!(ev(Append, 3000, 1024, Some(2900), 0), Outcome::Partial);
        assert_eq!(ev(Append, 3000, 0, Some(2900), 0), Outcome::Unexplained);
        assert_eq!(ev(Append, 3000, 0, Some(2900), 400_000), Outcome::IdleExpired);
        assert_eq!(ev(Append, 3000, 0, Some(500), 0), Outcome::BelowMinimum);
        assert_eq!(ev(New, 3000, 0, None, 0), Outcome::NewIdentity);
        assert_eq!(ev(New, 3000, 2048, None, 0), Outcome::Hit);
        let spilled = Evidence { spilled: true, ..evidence(New, 3000, 0) };
        assert_eq!(outcome(&spilled).to_string(), "spilled");
        assert_eq!(outcome(&Evidence { cached_tokens: 2048, ..spilled }), Outcome::Hit);
        assert_eq!(ev(Rewrite(Some(3)), 3000, 0, Some(2900), 0).to_string(), "prefix-changed@3:input");
        assert_eq!(ev(ModelChanged, 3000, 0, Some(2900), 0).label(), "prefix-changed:model");
        assert_eq!(Classification::Rewrite(Some(2)).to_string(), "rewrite@2");
    }
}
