//! One tracked session's compact state and its persisted form, plus the per-turn row.
//!
//! Invariants: [`SessionState`] holds fixed-size fields only (hashes, counts, times), so an idle session costs
//! well under 1 KiB of memory together with its map key (the 16-byte digest of the session id); the full per-item
//! chain lives in the store.

use serde::{Deserialize, Serialize};

use crate::identity::prefix::Digest;

/// Store namespace of session states (written every turn).
pub const STATE_NS: &str = "tracker";
/// Store namespace of each session's last per-item chain (ids kept).
pub const CHAIN_NS: &str = "chain";
/// Prefix of the per-session turn logs.
pub const TURNS_LOG: &str = "turns/";

/// What the tracker remembers about a session between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionState {
    /// Chain hash (ids kept) of the last request's input.
    pub chain: Digest,
    /// Input items of the last request.
    pub items: u32,
    pub instructions: Digest,
    pub tools: Digest,
    /// Digest of the model name.
    pub model: Digest,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// Prompt tokens of the last request, when reported.
    pub last_input_tokens: Option<u64>,
    pub turns: u32,
    pub input_tokens: u64,
    pub cached_tokens: u64,
}

/// One turn as shown by `codex-bridge sessions show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnRow {
    pub ts_ms: i64,
    pub request_id: String,
    /// The session's own key (a fork routed with its root is reported under its own key).
    pub key: String,
    /// `host`, `session`, `fork`, `namespace`, `fallback`.
    pub key_kind: String,
    /// The key sent upstream when it differs from `key`, and why (`with-root`, `spilled-p<k>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routed: Option<Routed>,
    /// The lineage alone was over the per-key rate (reported, not moved).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub over_rate: bool,
    pub model: Option<String>,
    pub client: Option<String>,
    /// The client transport (`http`, `ws`); absent in rows written before it was recorded.
    #[serde(default)]
    pub transport: Option<String>,
    pub items: usize,
    pub classification: String,
    pub input_tokens: Option<u64>,
    pub cached_tokens: Option<u64>,
    /// `hit`, `partial` or a miss reason; `None` when the upstream sent no usage.
    pub outcome: Option<String>,
}

/// Where a turn was routed when not by its own key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Routed {
    pub how: String,
    pub upstream_key: String,
}

/// Packs a chain for the store (16 bytes per item).
pub fn pack(chain: &[Digest]) -> Vec<u8> {
    chain.iter().flat_map(|d| d.iter().copied()).collect()
}

/// Unpacks a stored chain; `None` if the length is not a multiple of 16.
pub fn unpack(bytes: &[u8]) -> Option<Vec<Digest>> {
    if !bytes.len().is_multiple_of(16) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(16)
            .map(|c| {
                let mut d = [0u8; 16];
                d.copy_from_slice(c);
                d
            })
            .collect(),
    )
}
