//! [`CodexRuntime`]: the Codex-backend state of a running bridge — the shaping settings, the instruction
//! cache (warmed and refreshed by a background task) and the ChatGPT credentials — attached to the
//! [`Upstream`] at startup by [`attach`].
//!
//! Invariant: building it reads only local files; the network is touched by the background refresher and
//! by upstream requests, never while building.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bridge_auth::{AuthError, TokenClient, TokenManager};

use super::auth::ChatgptAuth;
use super::instructions::{DEFAULT_CODEX_FILE, InstructionCache, OPENCODE_KEY};
use super::settings::{CodexShaping, InstructionsMode, OpencodePrompt};
use crate::config::{Config, UpstreamAuth};
use crate::upstream::Upstream;

/// Distinct warnings remembered (beyond this, repeats may be logged again).
const MAX_WARNED: usize = 1024;

/// Codex-backend state shared by every request.
pub struct CodexRuntime {
    /// Request shaping; `None` when shaping is off for this upstream.
    pub shaping: Option<CodexShaping>,
    /// Instruction files (present in `codex` instructions mode).
    pub instructions: Option<Arc<InstructionCache>>,
    /// ChatGPT credentials (present with `--upstream-auth chatgpt`).
    pub chatgpt: Option<ChatgptAuth>,
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
    let cache = InstructionCache::new(config.chatgpt.sources.clone(), Arc::new(crate::state::now_ms), wanted);
    cache.load_disk();
    Arc::new(cache)
}

/// Attaches the Codex runtime when the config needs one, and starts the instruction refresher.
pub fn attach(upstream: Upstream, config: &Config) -> Result<Upstream, AuthError> {
    let shaping = config.upstream.codex.clone();
    let chatgpt = if config.upstream.auth == UpstreamAuth::Chatgpt {
        let client = TokenClient::new(config.chatgpt.oauth.clone())?;
        let tokens = TokenManager::load(config.chatgpt.credentials.clone(), client, config.chatgpt.refresh_margin)?;
        let identity = shaping.as_ref().map(|s| s.identity.clone());
        Some(ChatgptAuth::new(tokens, identity))
    } else {
        None
    };
    let instructions = match &shaping {
        Some(s) if s.instructions == InstructionsMode::Codex => {
            let mut wanted = vec![DEFAULT_CODEX_FILE];
            if s.opencode_prompt == OpencodePrompt::Replace {
                wanted.push(OPENCODE_KEY);
            }
            let cache = instruction_cache(config, &wanted);
            InstructionCache::spawn_refresher(&cache);
            Some(cache)
        }
        _ => None,
    };
    if shaping.is_none() && chatgpt.is_none() {
        return Ok(upstream);
    }
    Ok(upstream.with_codex(Arc::new(CodexRuntime {
        shaping,
        instructions,
        chatgpt,
        warned: Mutex::new(HashSet::new()),
    })))
}
