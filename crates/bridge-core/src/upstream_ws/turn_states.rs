//! The upstream side's memory of `x-codex-turn-state` ([`crate::turn_state`]): the backend's routing token
//! for one logical turn, remembered per conversation and replayed within that turn only.
//!
//! Captured from the WebSocket `codex.response.metadata` / `response.metadata` event or the HTTP response
//! header; the first value of a logical turn wins; replayed (WebSocket `client_metadata`, HTTP header) only
//! to requests of the same logical turn (the same input up to the last user message, see
//! [`crate::upstream_ws::delta::Shape::turn_marker`]) on the same account; an account change clears it.
//!
//! Invariants: bounded memory (at most [`MAX_CONVERSATIONS`] entries, the oldest dropped first); a value
//! is never carried across turns or accounts; the token is never logged.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::identity::prefix::Digest;

/// The header (HTTP) and `client_metadata` key (WebSocket).
/// Conversations remembered.
pub const MAX_CONVERSATIONS: usize = 4096;

struct Entry {
    account: Digest,
    turn: Digest,
    value: String,
}

/// Turn state per conversation (the lineage the upstream socket belongs to).
#[derive(Default)]
pub struct TurnStates {
    inner: Mutex<(HashMap<String, Entry>, VecDeque<String>)>,
}

impl TurnStates {
    /// The value to replay for this conversation's turn on this account, if any.
    pub fn replay(&self, conversation: &str, account: &Digest, turn: &Digest) -> Option<String> {
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let entry = guard.0.get_mut(conversation)?;
        if &entry.account != account {
            // An account change clears it (the entry stays, emptied, so the eviction order stays exact).
            entry.value.clear();
            entry.account = *account;
            return None;
        }
        (&entry.turn == turn && !entry.value.is_empty()).then(|| entry.value.clone())
    }

    /// Remembers a captured value; within one turn on one account the first value wins.
    pub fn capture(&self, conversation: &str, account: &Digest, turn: &Digest, value: &str) {
        let value = value.trim();
        if value.is_empty() || value.len() > 8192 {
            return;
        }
        let mut guard = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *guard;
        if let Some(e) = map.get(conversation)
            && &e.account == account
            && &e.turn == turn
            && !e.value.is_empty()
        {
            return;
        }
        if map
            .insert(conversation.to_owned(), Entry { account: *account, turn: *turn, value: value.to_owned() })
            .is_none()
        {
            order.push_back(conversation.to_owned());
            while map.len() > MAX_CONVERSATIONS {
                let Some(oldest) = order.pop_front() else { break };
                map.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_wins_within_a_turn_and_never_crosses_turns_or_accounts() {
        let t = TurnStates::default();
        let (a, b) = ([1u8; 16], [2u8; 16]);
        let (turn1, turn2) = ([3u8; 16], [4u8; 16]);
        t.capture("c", &a, &turn1, "first");
        t.capture("c", &a, &turn1, "second");
        assert_eq!(t.replay("c", &a, &turn1).as_deref(), Some("first"));
        assert_eq!(t.replay("c", &a, &turn2), None);
        t.capture("c", &a, &turn2, "next");
        assert_eq!(t.replay("c", &a, &turn2).as_deref(), Some("next"));
        assert_eq!(t.replay("c", &b, &turn2), None, "another account");
        assert_eq!(t.replay("c", &a, &turn2), None, "cleared by the account change");
    }
}
