//! Lost sockets remembered per lineage for a while: why and when a conversation's upstream socket went
//! away (closed mid-stream, retired at its age limit, evicted), so that the turn that then opens a new
//! socket carries the reason ([`SocketLoss`] in [`super::UpstreamTurn`]) and the tracker can say which
//! loss its `new-socket` miss follows.
//!
//! Invariants: bounded memory (at most [`CAPACITY`] lineages, least recently used dropped first) and
//! bounded age (an entry older than [`TTL`] is never reported); a loss is reported once, to the first turn
//! that opens a new socket for the lineage after it; only digests of lineages are kept.

use std::fmt;
use std::time::{Duration, Instant};

use crate::identity::prefix::{Digest, digest};

/// Lineages remembered at most.
pub const CAPACITY: usize = 4096;
/// How long a loss explains the next new socket.
pub const TTL: Duration = Duration::from_secs(600);

/// Why and how long ago a lineage's previous socket was lost, as the next turn reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketLoss {
    /// A reason code, the `codex_bridge_upstream_socket_events_total` reason where there is one:
    /// `closed_mid_stream`, `closed_before_start`,
    /// `failed_mid_stream`, `retired_age`, `evicted_credential`, `evicted_liveness`, `evicted_lru`,
    /// `evicted_abort`, `connection_limit`.
    pub reason: &'static str,
    /// The close code, for a closed socket (1006 when it closed without a close frame).
    pub code: Option<u16>,
    /// Seconds between the loss and the turn that reported it.
    pub ago_secs: u64,
}

impl fmt::Display for SocketLoss {
    /// `previous socket closed_mid_stream 1006, 42 s ago`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "previous socket {}", self.reason)?;
        if let Some(code) = self.code {
            write!(f, " {code}")?;
        }
        write!(f, ", {} s ago", self.ago_secs)
    }
}

#[derive(Clone, Copy)]
struct Lost {
    reason: &'static str,
    code: Option<u16>,
    at: Instant,
}

/// The memory of lost sockets (module docs).
pub struct Losses {
    lost: quick_cache::sync::Cache<Digest, Lost>,
}

impl Default for Losses {
    fn default() -> Self {
        Self { lost: quick_cache::sync::Cache::new(CAPACITY) }
    }
}

impl Losses {
    /// Notes that `lineage`'s socket was lost (a later loss replaces an earlier one).
    pub fn remember(&self, lineage: &str, reason: &'static str, code: Option<u16>) {
        self.lost.insert(digest(lineage.as_bytes()), Lost { reason, code, at: Instant::now() });
    }

    /// The loss a new socket for `lineage` follows, if one was noted within [`TTL`]; forgotten once read.
    pub fn take(&self, lineage: &str) -> Option<SocketLoss> {
        let (_, lost) = self.lost.remove(&digest(lineage.as_bytes()))?;
        let ago = lost.at.elapsed();
        (ago < TTL).then_some(SocketLoss { reason: lost.reason, code: lost.code, ago_secs: ago.as_secs() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loss_is_reported_once_with_its_reason_and_code() {
        let losses = Losses::default();
        assert_eq!(losses.take("conv"), None);
        losses.remember("conv", "retired_age", None);
        losses.remember("conv", "closed_mid_stream", Some(1006));
        let loss = losses.take("conv").unwrap();
        assert_eq!((loss.reason, loss.code, loss.ago_secs), ("closed_mid_stream", Some(1006), 0));
        assert_eq!(loss.to_string(), "previous socket closed_mid_stream 1006, 0 s ago");
        assert_eq!(losses.take("conv"), None, "reported once");
        assert_eq!(losses.take("other"), None);
    }
}
