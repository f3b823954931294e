//! The `[chat]` section of the config file: the Chat Completions ingress (`POST /v1/chat/completions`).
//!
//! Invariants: unknown keys are errors; every field has its default in `config/defaults.rs`, so an absent
//! section behaves exactly like an empty one.

use serde::Deserialize;

use super::defaults;

/// The raw `[chat]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileChat {
    reasoning_replay: Option<bool>,
    replay_max_bytes: Option<u64>,
}

/// Validated Chat settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatConfig {
    /// Keep each response's reasoning items per session and re-insert them in the next turn's input.
    pub reasoning_replay: bool,
    /// Bytes of kept items, all sessions together (LRU beyond).
    pub replay_max_bytes: u64,
}

impl Default for ChatConfig {
    fn default() -> Self {
        FileChat::default().resolve()
    }
}

impl FileChat {
    /// The settings with defaults filled in.
    pub fn resolve(&self) -> ChatConfig {
        ChatConfig {
            reasoning_replay: self.reasoning_replay.unwrap_or(defaults::CHAT_REASONING_REPLAY),
            replay_max_bytes: self.replay_max_bytes.unwrap_or(defaults::CHAT_REPLAY_MAX_BYTES),
        }
    }
}
