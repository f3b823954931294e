//! The instruction cache: the official Codex base instructions per model family (from the openai/codex
//! releases: latest tag, file by tag) and OpenCode's own Codex system prompt (so `codex` mode can recognise
//! and replace it).
//!
//! Invariants:
//! - The request path only reads memory ([`InstructionCache::get`]); a key it misses is noted as wanted and
//!   fetched by the background refresher later. Nothing on the request path, and nothing in
//!   `codex-bridge status` ([`InstructionCache::load_disk`], [`InstructionCache::status`]), touches the network.
//! - A copy younger than `fresh_for` is not revalidated; an older one is revalidated with `If-None-Match`
//!   when its tag is still the latest, and replaced when a new tag appears.
//! - On failure the stale copy stays in use; one warning per failure streak and key.

mod disk;
mod fetch;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

pub use disk::Meta;
use fetch::Fetched;

use crate::config::codex::InstructionSources;

/// The key of OpenCode's Codex prompt in the cache.
pub const OPENCODE_KEY: &str = "opencode-codex.txt";
/// The Codex file warmed at startup (the family most models use).
pub const DEFAULT_CODEX_FILE: &str = "gpt_5_codex_prompt.md";

/// Unix milliseconds; injectable so tests run on virtual time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

#[derive(Clone)]
struct Entry {
    text: Arc<str>,
    meta: Meta,
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<String, Entry>,
    wanted: BTreeSet<String>,
    /// Keys whose last refresh failed (and were warned about), with the time of the next attempt.
    failing: BTreeMap<String, i64>,
}

/// After a failed refresh, the next attempt for that key waits this long (GitHub allows 60 anonymous
/// requests per hour).
const RETRY_AFTER_FAILURE_MS: i64 = 5 * 60 * 1000;

/// One cached file as `codex-bridge status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStatus {
    pub key: String,
    pub tag: Option<String>,
    pub bytes: usize,
    pub age_ms: i64,
    pub fresh: bool,
}

/// Shared by the request path (reads) and the background refresher (writes).
pub struct InstructionCache {
    sources: InstructionSources,
    http: reqwest::Client,
    clock: Clock,
    inner: Mutex<Inner>,
    warnings: AtomicU64,
}

impl InstructionCache {
    /// An empty cache; `wanted` keys are fetched by the first refresh.
    pub fn new(sources: InstructionSources, clock: Clock, wanted: &[&str]) -> Self {
        let inner = Inner { wanted: wanted.iter().map(|k| (*k).to_owned()).collect(), ..Inner::default() };
        Self { sources, http: fetch::client(), clock, inner: Mutex::new(inner), warnings: AtomicU64::new(0) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Loads every copy found on disk into memory (no network).
    pub fn load_disk(&self) {
        let dir = &self.sources.cache_dir;
        let Ok(read) = std::fs::read_dir(dir) else { return };
        let keys: Vec<String> = read
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".meta.json").map(str::to_owned))
            .collect();
        let mut inner = self.lock();
        for key in keys {
            if let Some((text, meta)) = disk::read(dir, &key) {
                inner.entries.insert(key, Entry { text: text.into(), meta });
            }
        }
    }

    /// The cached text for `key`, from memory only. A miss marks the key as wanted for the refresher.
    pub fn get(&self, key: &str) -> Option<Arc<str>> {
        let mut inner = self.lock();
        match inner.entries.get(key) {
            Some(e) => Some(e.text.clone()),
            None => {
                if !inner.wanted.contains(key) {
                    inner.wanted.insert(key.to_owned());
                }
                None
            }
        }
    }

    /// What is cached and how fresh it is (no network).
    pub fn status(&self) -> Vec<CacheStatus> {
        let now = (self.clock)();
        let fresh_ms = i64::try_from(self.sources.fresh_for.as_millis()).unwrap_or(i64::MAX);
        self.lock()
            .entries
            .iter()
            .map(|(key, e)| {
                let age_ms = now.saturating_sub(e.meta.last_checked_ms);
                CacheStatus {
                    key: key.clone(),
                    tag: e.meta.tag.clone(),
                    bytes: e.text.len(),
                    age_ms,
                    fresh: age_ms < fresh_ms,
                }
            })
            .collect()
    }

    /// Warnings issued for failed refreshes (one per failure streak and key).
    pub fn warnings(&self) -> u64 {
        self.warnings.load(Ordering::Relaxed)
    }

    /// Revalidates every wanted or cached key whose copy is older than `fresh_for`. Network calls happen
    /// only here.
    pub async fn refresh_stale(&self) {
        let now = (self.clock)();
        let fresh_ms = i64::try_from(self.sources.fresh_for.as_millis()).unwrap_or(i64::MAX);
        let stale: Vec<(String, Option<Entry>)> = {
            let inner = self.lock();
            let keys: BTreeSet<&String> = inner.wanted.iter().chain(inner.entries.keys()).collect();
            keys.into_iter()
                .map(|k| (k.clone(), inner.entries.get(k).cloned()))
                .filter(|(_, e)| e.as_ref().is_none_or(|e| now.saturating_sub(e.meta.last_checked_ms) >= fresh_ms))
                .filter(|(k, _)| inner.failing.get(k).is_none_or(|retry_at| *retry_at <= now))
                .collect()
        };
        if stale.is_empty() {
            return;
        }
        let mut tag: Option<Result<String, String>> = None;
        for (key, entry) in stale {
            let result = if key == OPENCODE_KEY {
                let url = self.sources.opencode_prompt_url.clone();
                let etag = entry.as_ref().filter(|e| e.meta.url == url).and_then(|e| e.meta.etag.clone());
                self.revalidate(&key, entry, url, etag, None, now).await
            } else {
                if tag.is_none() {
                    tag = Some(fetch::latest_tag(&self.http, &self.sources.releases_url).await);
                }
                match tag.clone() {
                    Some(Ok(t)) => {
                        let url = format!("{}/{t}/codex-rs/core/{key}", self.sources.raw_base_url);
                        let etag = entry
                            .as_ref()
                            .filter(|e| e.meta.tag.as_deref() == Some(t.as_str()))
                            .and_then(|e| e.meta.etag.clone());
                        self.revalidate(&key, entry, url, etag, Some(t), now).await
                    }
                    Some(Err(e)) => Err(e),
                    None => Err("no release tag".to_owned()),
                }
            };
            self.settle(&key, result, now);
        }
    }

    async fn revalidate(
        &self,
        key: &str,
        entry: Option<Entry>,
        url: String,
        etag: Option<String>,
        tag: Option<String>,
        now: i64,
    ) -> Result<(), String> {
        let fetched = fetch::conditional_get(&self.http, &url, etag.as_deref()).await?;
        let (text, meta) = match (fetched, entry) {
            (Fetched::NotModified, Some(e)) => (e.text, Meta { etag, tag, url, last_checked_ms: now }),
            (Fetched::NotModified, None) => return Err(format!("GET {url}: 304 without a cached copy")),
            (Fetched::Content { text, etag }, _) => (Arc::from(text), Meta { etag, tag, url, last_checked_ms: now }),
        };
        let new_text = self.lock().entries.get(key).is_none_or(|e| e.text != text);
        if let Err(e) = disk::write(&self.sources.cache_dir, key, new_text.then_some(&*text), &meta) {
            tracing::warn!(key, error = %e, "cannot write the instruction cache to disk");
        }
        self.lock().entries.insert(key.to_owned(), Entry { text, meta });
        Ok(())
    }

    fn settle(&self, key: &str, result: Result<(), String>, now: i64) {
        let mut inner = self.lock();
        match result {
            Ok(()) => {
                inner.failing.remove(key);
                tracing::debug!(key, "instruction cache refreshed");
            }
            Err(error) => {
                if inner.failing.insert(key.to_owned(), now.saturating_add(RETRY_AFTER_FAILURE_MS)).is_none() {
                    self.warnings.fetch_add(1, Ordering::Relaxed);
                    let stale = inner.entries.contains_key(key);
                    tracing::warn!(key, %error, serving_stale_copy = stale, "instruction refresh failed");
                }
            }
        }
    }

    /// Starts the background refresher: one refresh now (the startup warm-up), then one every
    /// `check_every` (none when it is zero). The task ends when the cache is dropped.
    pub fn spawn_refresher(cache: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(cache);
        let every = cache.sources.check_every;
        tokio::spawn(async move {
            loop {
                let Some(cache) = weak.upgrade() else { return };
                cache.refresh_stale().await;
                drop(cache);
                if every.is_zero() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        });
    }
}
