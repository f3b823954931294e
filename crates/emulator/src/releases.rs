//! A GitHub-releases-like source of Codex instruction files, for instruction-cache tests.
//!
//! Endpoints (see README): `GET /repos/openai/codex/releases/latest` → `{"tag_name": …}` (the GitHub API
//! shape, only `tag_name` is read by clients, plugin-behaviors.md §"Release probe"), and
//! `GET /openai/codex/{tag}/codex-rs/core/{file}` (the raw.githubusercontent.com path layout) with a
//! strong `ETag` and `If-None-Match` → 304. Invariants: the ETag is a hash of the content, so it changes
//! iff the bytes change; the latest tag is the one published last; older tags stay served.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// Default tag served at start.
pub const DEFAULT_TAG: &str = "rust-v0.169.0";
/// Default instruction file name.
pub const DEFAULT_FILE: &str = "gpt_5_codex_prompt.md";

/// Release-endpoint counters.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReleaseCounters {
    /// `releases/latest` calls.
    pub latest_calls: u64,
    /// Raw-file calls answered 200.
    pub file_200: u64,
    /// Raw-file calls answered 304.
    pub file_304: u64,
    /// Raw-file calls answered 404.
    pub file_404: u64,
}

#[derive(Debug)]
struct Inner {
    tags: BTreeMap<String, BTreeMap<String, String>>,
    latest: String,
    counters: ReleaseCounters,
}

/// Published tags and their files.
#[derive(Debug)]
pub struct Releases {
    inner: Mutex<Inner>,
}

/// What a raw-file request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileAnswer {
    /// 200 with content and ETag.
    Content {
        /// File bytes.
        body: String,
        /// Quoted ETag.
        etag: String,
    },
    /// 304 with the ETag.
    NotModified {
        /// Quoted ETag.
        etag: String,
    },
    /// 404.
    NotFound,
}

/// The strong ETag of `content`.
pub fn etag_of(content: &str) -> String {
    format!("\"{}\"", &blake3::hash(content.as_bytes()).to_hex()[..16])
}

fn default_inner() -> Inner {
    let mut files = BTreeMap::new();
    files.insert(
        DEFAULT_FILE.to_owned(),
        "You are Codex, a coding agent. (codex-emulator placeholder instructions)\n".to_owned(),
    );
    let mut tags = BTreeMap::new();
    tags.insert(DEFAULT_TAG.to_owned(), files);
    Inner { tags, latest: DEFAULT_TAG.to_owned(), counters: ReleaseCounters::default() }
}

impl Default for Releases {
    fn default() -> Self {
        Self { inner: Mutex::new(default_inner()) }
    }
}

impl Releases {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The latest tag (counts a `releases/latest` call).
    pub fn latest(&self) -> String {
        let mut g = self.lock();
        g.counters.latest_calls += 1;
        g.latest.clone()
    }

    /// Publish (or replace) `tag` with `files` and make it the latest.
    pub fn publish(&self, tag: &str, files: BTreeMap<String, String>) {
        let mut g = self.lock();
        g.tags.insert(tag.to_owned(), files);
        g.latest = tag.to_owned();
    }

    /// Answer a raw-file request.
    pub fn file(&self, tag: &str, path: &str, if_none_match: Option<&str>) -> FileAnswer {
        let mut g = self.lock();
        let found = g.tags.get(tag).and_then(|f| f.get(path)).cloned();
        match found {
            None => {
                g.counters.file_404 += 1;
                FileAnswer::NotFound
            }
            Some(body) => {
                let etag = etag_of(&body);
                let matches = if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
                if matches {
                    g.counters.file_304 += 1;
                    FileAnswer::NotModified { etag }
                } else {
                    g.counters.file_200 += 1;
                    FileAnswer::Content { body, etag }
                }
            }
        }
    }

    /// The counters.
    pub fn counters(&self) -> ReleaseCounters {
        self.lock().counters.clone()
    }

    /// Back to the default single tag, counters zeroed.
    pub fn reset(&self) {
        *self.lock() = default_inner();
    }
}
