//! The on-disk copy of each instruction file: `<cache dir>/<key>` and `<key>.meta.json` (ETag, release tag,
//! source URL, last check). Writes are atomic (temporary file, rename), so a reader never sees a torn file.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// What is known about a cached copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The source's `ETag`, sent as `If-None-Match` when the source is unchanged.
    pub etag: Option<String>,
    /// The release tag the file came from (Codex files only).
    pub tag: Option<String>,
    /// Where it was fetched.
    pub url: String,
    /// When the copy was last fetched or revalidated (Unix ms).
    pub last_checked_ms: i64,
}

/// Reads a copy and its metadata; `None` when either is missing, unreadable or empty.
pub fn read(dir: &Path, key: &str) -> Option<(String, Meta)> {
    let text = std::fs::read_to_string(dir.join(key)).ok().filter(|t| !t.is_empty())?;
    let meta = std::fs::read_to_string(dir.join(format!("{key}.meta.json"))).ok()?;
    Some((text, serde_json::from_str(&meta).ok()?))
}

/// Writes the metadata, and the text when given.
pub fn write(dir: &Path, key: &str, text: Option<&str>, meta: &Meta) -> std::io::Result<()> {
    bridge_auth::file::create_private_dir(dir)?;
    if let Some(text) = text {
        atomic(dir, key, text.as_bytes())?;
    }
    let meta = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
    atomic(dir, &format!("{key}.meta.json"), &meta)
}

fn atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(name)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
