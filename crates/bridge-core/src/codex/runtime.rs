//! [`CodexRuntime`]: the Codex-backend state of a running bridge — the shaping settings and the instruction
//! cache (warmed and refreshed by a background task) — built at startup by [`start`]. The ChatGPT
//! credentials are not here: they are an input of the upstream client ([`crate::credentials`]).
//!
//! Invariant: building it reads only local files; the network is touched by the background refresher and
//! by upstream requests, never while building.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::instructions::{DEFAULT_CODEX_FILE, InstructionCache, OPENCODE_KEY};
use crate::config::Config;
use crate::config::codex::{CodexShaping, InstructionsMode, OpencodePrompt};

/// Distinct warnings remembered (beyond this, repeats may be logged again).
const MAX_WARNED: usize = 1024;

/// Codex-backend state shared by every request.
pub struct CodexRuntime {
    /// Request shaping; `None` when shaping is off for this upstream.
    pub shaping: Option<CodexShaping>,
    /// Instruction files (present in `codex` instructions mode).
    pub instructions: Option<Arc<InstructionCache>>,
    warned: Mutex<HashSet<String>>,
}

impl CodexRuntime {
    /// Runs `warn` the first time `key` is seen.
    pub fn warn_once(&self, key: &str, warn: impl FnOnce()) {
        let mut warned = self.warned.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if warned.contains(key) {
            return;
        }
        if warned.len() >= MAX_WARNED {
            warned.clear();
        }
        warned.insert(key.to_owned());
        drop(warned);
        warn();
    }
}

/// The instruction cache for `config` (no network; copies on disk are loaded).
pub fn instruction_cache(config: &Config, wanted: &[&str]) -> Arc<InstructionCache> {
    let cache = InstructionCache::new(config.chatgpt.sources.clone(), Arc::new(crate::clock::now_ms), wanted);
    cache.load_disk();
    Arc::new(cache)
}

/// The Codex runtime when the config shapes requests for the Codex backend (and the instruction refresher,
/// in `codex` instructions mode); `None` otherwise.
pub fn start(config: &Config) -> Option<Arc<CodexRuntime>> {
    let shaping = config.upstream.codex.clone()?;
    let instructions = (shaping.instructions == InstructionsMode::Codex).then(|| {
        let mut wanted = vec![DEFAULT_CODEX_FILE];
        if shaping.opencode_prompt == OpencodePrompt::Replace {
            wanted.push(OPENCODE_KEY);
        }
        let cache = instruction_cache(config, &wanted);
        InstructionCache::spawn_refresher(&cache);
        cache
    });
    Some(Arc::new(CodexRuntime { shaping: Some(shaping), instructions, warned: Mutex::new(HashSet::new()) }))
}
