//! Prompt tokenization: the prompt (instructions, tools, input items with `id` removed, each as
//! canonical JSON) as one token sequence, memoized per item in exact mode.
//!
//! Invariants: the sequence is `instructions ++ tools[0] ++ … ++ input[0] ++ …`; each segment's tokens
//! depend only on the segment's canonical bytes, so an append-only conversation keeps its token prefix.
//! `Exact` mode uses o200k_base (loaded once per process); `Fast` mode is an estimate: one pseudo-token
//! per 4 bytes (the token value is the 4 bytes), clearly not real token counts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use tiktoken_rs::CoreBPE;

use crate::canonical::{canonical, canonical_item};
use crate::config::TokenizerMode;

/// Upper bound on memoized segments; the memo is cleared when it is exceeded.
const MEMO_LIMIT: usize = 200_000;

static O200K: OnceLock<Result<CoreBPE, String>> = OnceLock::new();

/// The shared o200k_base encoder (about 1 s to build, once per process).
pub fn o200k() -> Result<&'static CoreBPE, String> {
    O200K.get_or_init(|| tiktoken_rs::o200k_base().map_err(|e| e.to_string())).as_ref().map_err(Clone::clone)
}

/// Tokenizes prompts, memoizing each segment by the blake3 hash of its canonical bytes.
#[derive(Debug)]
pub struct Tokenizer {
    mode: TokenizerMode,
    memo: Mutex<HashMap<[u8; 32], Arc<[u32]>>>,
}

impl Tokenizer {
    /// A tokenizer in `mode`. Exact mode loads o200k_base now (errors if it cannot).
    pub fn new(mode: TokenizerMode) -> Result<Self, String> {
        if mode == TokenizerMode::Exact {
            o200k()?;
        }
        Ok(Self { mode, memo: Mutex::new(HashMap::new()) })
    }

    /// The mode.
    pub fn mode(&self) -> TokenizerMode {
        self.mode
    }

    /// Tokens of one segment given as canonical bytes (memoized in exact mode; fast mode is cheaper to
    /// recompute than to hash for the memo).
    pub fn segment(&self, bytes: &[u8]) -> Arc<[u32]> {
        if self.mode == TokenizerMode::Fast {
            return fast_tokens(bytes).into();
        }
        let key = *blake3::hash(bytes).as_bytes();
        if let Some(hit) = self.lock().get(&key) {
            return Arc::clone(hit);
        }
        let tokens: Arc<[u32]> = match o200k() {
            Ok(bpe) => bpe.encode_ordinary(&String::from_utf8_lossy(bytes)).into(),
            Err(_) => fast_tokens(bytes).into(),
        };
        let mut memo = self.lock();
        if memo.len() >= MEMO_LIMIT {
            memo.clear();
        }
        memo.insert(key, Arc::clone(&tokens));
        tokens
    }

    /// Tokens of plain text (memoized like a segment).
    pub fn text(&self, text: &str) -> Arc<[u32]> {
        self.segment(text.as_bytes())
    }

    /// The whole prompt of a Responses request body as one token sequence.
    pub fn prompt(&self, body: &Value) -> Vec<u32> {
        let mut out = Vec::new();
        if let Some(instr) = body.get("instructions").and_then(Value::as_str) {
            self.append(instr.as_bytes(), &mut out);
        }
        if let Some(tools) = body.get("tools").and_then(Value::as_array) {
            for tool in tools {
                self.append(&canonical(tool), &mut out);
            }
        }
        match body.get("input") {
            Some(Value::String(s)) => self.append(s.as_bytes(), &mut out),
            Some(Value::Array(items)) => {
                for item in items {
                    self.append(&canonical_item(item), &mut out);
                }
            }
            _ => {}
        }
        out
    }

    /// Appends the tokens of `items` (input items, `id` removed) to `out`: `prompt` of a body whose input
    /// grew by `items` is the old prompt followed by exactly these tokens.
    pub fn append_items(&self, items: &[Value], out: &mut Vec<u32>) {
        for item in items {
            self.append(&canonical_item(item), out);
        }
    }

    /// Appends a segment's tokens to `out` (fast mode writes them in place).
    fn append(&self, bytes: &[u8], out: &mut Vec<u32>) {
        match self.mode {
            TokenizerMode::Fast => fast_tokens_into(bytes, out),
            TokenizerMode::Exact => out.extend_from_slice(&self.segment(bytes)),
        }
    }

    /// Number of memoized segments.
    pub fn memo_len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Arc<[u32]>>> {
        self.memo.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn fast_tokens(bytes: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    fast_tokens_into(bytes, &mut out);
    out
}

fn fast_tokens_into(bytes: &[u8], out: &mut Vec<u32>) {
    let chunks = bytes.chunks_exact(4);
    let tail = chunks.remainder();
    out.reserve(bytes.len().div_ceil(4));
    out.extend(chunks.map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
    if !tail.is_empty() {
        let mut b = [0u8; 4];
        b[..tail.len()].copy_from_slice(tail);
        out.push(u32::from_le_bytes(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fast_mode_is_bytes_over_four_and_prefix_stable() {
        let t = Tokenizer::new(TokenizerMode::Fast).unwrap();
        let a = json!({"input":[{"type":"message","role":"user","content":"hello there"}]});
        let b = json!({"input":[{"id":"x","role":"user","type":"message","content":"hello there"},{"type":"message","role":"user","content":"more"}]});
        let ta = t.prompt(&a);
        let tb = t.prompt(&b);
        assert_eq!(ta.len(), canonical_item(&a["input"][0]).len().div_ceil(4));
        assert_eq!(&tb[..ta.len()], &ta[..]);
        assert_eq!(t.memo_len(), 0, "fast mode recomputes instead of memoizing");
    }

    #[test]
    fn exact_mode_memoizes_each_item_once() {
        let t = Tokenizer::new(TokenizerMode::Exact).unwrap();
        let turn1 = json!({"input":[{"type":"message","role":"user","content":"hello there"}]});
        let turn2 = json!({"input":[{"type":"message","role":"user","content":"hello there"},
            {"type":"message","role":"user","content":"and more"}]});
        let first = t.prompt(&turn1);
        assert_eq!(t.memo_len(), 1);
        let second = t.prompt(&turn2);
        assert_eq!(t.memo_len(), 2, "the repeated item is served from the memo");
        assert_eq!(&second[..first.len()], &first[..]);
    }
}
