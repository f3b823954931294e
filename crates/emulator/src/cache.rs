//! One cache machine: cached prompt prefixes stored as per-block chain hashes, with idle TTL, maximum
//! age and an LRU capacity.
//!
//! Invariants: block `k`'s hash covers the namespace and every token of blocks `0..=k` (it hashes block
//! `k-1`'s hash), so a stored hash stands for a whole prefix and lookup walks the chain in O(blocks);
//! only full blocks are ever stored; an entry past its idle TTL or maximum age counts as absent and is
//! removed when seen; the LRU index holds exactly the stored hashes.

use std::collections::{BTreeMap, HashMap};

use xxhash_rust::xxh3::xxh3_128;

use crate::config::CacheRules;

/// Hash of one block in a prefix chain.
pub type BlockHash = u128;

/// Chain hashes of the full blocks of `tokens` under `namespace` (e.g. the model): block i's hash is
/// XXH3-128 over block i-1's hash (16 bytes, little-endian; the namespace's hash for block 0) followed
/// by block i's tokens as little-endian u32s. A non-cryptographic hash is enough for a model of caches
/// whose inputs are our own test traffic, and it keeps hashing off the top of the emulator's profile.
pub fn block_chain(namespace: &str, tokens: &[u32], block_tokens: usize) -> Vec<BlockHash> {
    let block = block_tokens.max(1);
    let mut prev = xxh3_128(namespace.as_bytes());
    let mut out = Vec::with_capacity(tokens.len() / block);
    let mut bytes = Vec::with_capacity(16 + block * 4);
    for chunk in tokens.chunks_exact(block) {
        bytes.clear();
        bytes.extend_from_slice(&prev.to_le_bytes());
        for t in chunk {
            bytes.extend_from_slice(&t.to_le_bytes());
        }
        prev = xxh3_128(&bytes);
        out.push(prev);
    }
    out
}

/// [`block_chain`] of `tokens` given the chain of a prefix of them: `prefix_chain` must be
/// `block_chain(namespace, p, block_tokens)` for some prefix `p` of `tokens`; its blocks are kept and only
/// the blocks after them are hashed (a WebSocket turn extends the previous turn's chain).
pub fn block_chain_extend(
    namespace: &str,
    tokens: &[u32],
    block_tokens: usize,
    mut prefix_chain: Vec<BlockHash>,
) -> Vec<BlockHash> {
    let block = block_tokens.max(1);
    let known = prefix_chain.len().min(tokens.len() / block);
    prefix_chain.truncate(known);
    let mut prev = prefix_chain.last().copied().unwrap_or_else(|| xxh3_128(namespace.as_bytes()));
    let mut bytes = Vec::with_capacity(16 + block * 4);
    for chunk in tokens[known * block..].chunks_exact(block) {
        bytes.clear();
        bytes.extend_from_slice(&prev.to_le_bytes());
        for t in chunk {
            bytes.extend_from_slice(&t.to_le_bytes());
        }
        prev = xxh3_128(&bytes);
        prefix_chain.push(prev);
    }
    prefix_chain
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    created_ms: u64,
    last_used_ms: u64,
    tick: u64,
}

/// Result of serving one prompt on a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Served {
    /// Tokens read from the cache (multiple of the block size; 0 below the minimum).
    pub cached_tokens: u64,
    /// Cacheable tokens not read from the cache, (re)written now.
    pub write_tokens: u64,
    /// Blocks that were not stored before this request.
    pub new_blocks: u64,
}

/// One machine's prefix cache.
#[derive(Debug, Default)]
pub struct Machine {
    entries: HashMap<BlockHash, Entry>,
    lru: BTreeMap<u64, BlockHash>,
    tick: u64,
    capacity_blocks: Option<usize>,
}

impl Machine {
    /// An empty machine holding at most `capacity_blocks` blocks (`None` = unbounded).
    pub fn new(capacity_blocks: Option<usize>) -> Self {
        Self { capacity_blocks, ..Self::default() }
    }

    /// Number of stored blocks (including ones that expired but were not seen since).
    pub fn stored_blocks(&self) -> usize {
        self.entries.len()
    }

    fn alive(e: &Entry, now_ms: u64, rules: &CacheRules) -> bool {
        now_ms.saturating_sub(e.last_used_ms) <= rules.idle_ttl_ms
            && now_ms.saturating_sub(e.created_ms) <= rules.max_age_ms
    }

    fn remove(&mut self, hash: BlockHash) {
        if let Some(e) = self.entries.remove(&hash) {
            self.lru.remove(&e.tick);
        }
    }

    /// Number of leading blocks of `chain` present and alive at `now_ms` (expired ones are removed).
    pub fn lookup(&mut self, chain: &[BlockHash], now_ms: u64, rules: &CacheRules) -> usize {
        let mut matched = 0;
        for hash in chain {
            match self.entries.get(hash) {
                Some(e) if Self::alive(e, now_ms, rules) => matched += 1,
                Some(_) => {
                    self.remove(*hash);
                    break;
                }
                None => break,
            }
        }
        matched
    }

    /// Store (or refresh) every block of `chain`; returns how many were new. Evicts least recently used
    /// blocks beyond the capacity. Blocks are touched deepest first, so eviction trims a prefix from its
    /// tail and the shorter prefix stays usable.
    /// An expired entry that is stored again counts as new (its age restarts).
    pub fn store(&mut self, chain: &[BlockHash], now_ms: u64, rules: &CacheRules) -> usize {
        let mut new = 0;
        for hash in chain.iter().rev() {
            self.tick += 1;
            let tick = self.tick;
            match self.entries.get_mut(hash) {
                Some(e) => {
                    if !Self::alive(e, now_ms, rules) {
                        e.created_ms = now_ms;
                        new += 1;
                    }
                    self.lru.remove(&e.tick);
                    e.tick = tick;
                    e.last_used_ms = now_ms;
                }
                None => {
                    self.entries.insert(*hash, Entry { created_ms: now_ms, last_used_ms: now_ms, tick });
                    new += 1;
                }
            }
            self.lru.insert(tick, *hash);
        }
        if let Some(cap) = self.capacity_blocks {
            while self.entries.len() > cap {
                let Some((_, oldest)) = self.lru.pop_first() else { break };
                self.entries.remove(&oldest);
            }
        }
        new
    }

    /// Serve one prompt: look up its longest cached prefix, then cache all its full blocks.
    /// `total_tokens` is the prompt length; `chain` its block chain.
    pub fn serve(&mut self, chain: &[BlockHash], total_tokens: usize, now_ms: u64, rules: &CacheRules) -> Served {
        if total_tokens < rules.min_tokens {
            return Served::default();
        }
        let block = rules.block_tokens as u64;
        let matched = self.lookup(chain, now_ms, rules) as u64;
        let cached = if matched * block >= rules.min_tokens as u64 { matched * block } else { 0 };
        let new_blocks = self.store(chain, now_ms, rules) as u64;
        let cacheable = chain.len() as u64 * block;
        Served { cached_tokens: cached, write_tokens: cacheable - cached, new_blocks }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> CacheRules {
        CacheRules { min_tokens: 4, block_tokens: 2, idle_ttl_ms: 100, max_age_ms: 1000 }
    }

    #[test]
    fn extending_a_prefix_chain_equals_hashing_everything() {
        let tokens: Vec<u32> = (0..1000).collect();
        let full = block_chain("m", &tokens, 7);
        let prefix = block_chain("m", &tokens[..300], 7);
        assert_eq!(block_chain_extend("m", &tokens, 7, prefix), full);
        assert_eq!(block_chain_extend("m", &tokens, 7, Vec::new()), full);
    }

    #[test]
    fn chain_covers_prefix() {
        let a = block_chain("m", &[1, 2, 3, 4, 5], 2);
        let b = block_chain("m", &[1, 2, 3, 9], 2);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0], b[0]);
        assert_ne!(a[1], b[1]);
        assert_ne!(block_chain("other", &[1, 2], 2)[0], a[0]);
    }

    #[test]
    fn chain_digest_follows_its_definition() {
        // Reference: XXH3-128 streamed over prev ++ the block's tokens, token by token.
        let tokens: Vec<u32> = (0..10).map(|i| i * 7919).collect();
        let mut prev = xxh3_128(b"m");
        let mut expected = Vec::new();
        for chunk in tokens.chunks_exact(4) {
            let mut h = xxhash_rust::xxh3::Xxh3::new();
            h.update(&prev.to_le_bytes());
            for t in chunk {
                h.update(&t.to_le_bytes());
            }
            prev = h.digest128();
            expected.push(prev);
        }
        assert_eq!(block_chain("m", &tokens, 4), expected);
    }

    #[test]
    fn serve_min_blocks_ttl_and_lru() {
        let r = rules();
        let mut m = Machine::new(Some(3));
        let toks = [1, 2, 3, 4, 5, 6, 7];
        let chain = block_chain("m", &toks, 2);
        assert_eq!(m.serve(&chain, 7, 0, &r), Served { cached_tokens: 0, write_tokens: 6, new_blocks: 3 });
        assert_eq!(m.serve(&chain, 7, 50, &r).cached_tokens, 6);
        // idle TTL: 151 ms after last use
        assert_eq!(m.serve(&chain, 7, 201, &r).cached_tokens, 0);
        // LRU: a different 2-block prompt evicts the two least recently used blocks, the tail of the
        // first chain, so its first block still matches
        let other = block_chain("m", &[9, 9, 9, 9], 2);
        m.serve(&other, 4, 210, &r);
        assert_eq!(m.stored_blocks(), 3);
        assert_eq!(m.lookup(&chain, 211, &r), 1);
    }
}
