//! Key formats: `cache_<base>` from session ids, `cache_<base>-fork-<n>` for forks, `cache_<hash>` for the
//! fallback, `cache_ns-<name>-p<k>` for shared startup namespaces and `cache_<base>-p<k>` for spilled forks.
//!
//! Invariants: every function here is pure; a sanitized value is printable ASCII without spaces (so it is
//! also a valid header value) and at most [`MAX_BASE`] bytes; an id that already starts with `cache_` is not
//! prefixed twice.

use super::prefix::{Digest, digest, hex};

/// Longest sanitized base; longer ids keep a prefix plus a hash of the whole id.
pub const MAX_BASE: usize = 96;

/// Trims, turns whitespace runs into `-` and other non-printable or non-ASCII characters into `_`.
pub fn sanitize(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    let mut in_space = false;
    for c in id.trim().chars() {
        if c.is_whitespace() {
            if !in_space {
                out.push('-');
            }
            in_space = true;
            continue;
        }
        in_space = false;
        out.push(if c.is_ascii_graphic() { c } else { '_' });
    }
    if out.len() > MAX_BASE {
        let tail = hex(&digest(id.as_bytes()));
        out.truncate(MAX_BASE - 17);
        out.push('-');
        out.push_str(&tail[..16]);
    }
    out
}

/// `cache_<base>` for a session id (unchanged if it already starts with `cache_`).
pub fn session_key(id: &str) -> String {
    let base = sanitize(id);
    if base.starts_with("cache_") { base } else { format!("cache_{base}") }
}

/// `<root>-fork-<n>` where `<root>` is the root's `cache_` key.
pub fn fork_key(root_key: &str, n: u64) -> String {
    format!("{}-fork-{n}", session_key(root_key))
}

/// `<root>-p<partition>`: a fork of `root` spilled off its root's key (`fork_key = "root"`).
pub fn spill_key(root_key: &str, partition: u32) -> String {
    format!("{}-p{partition}", session_key(root_key))
}

/// `cache_<hash>`: 16 hex digits of the stable-prefix digest.
pub fn fallback_key(stable: &Digest) -> String {
    format!("cache_{}", &hex(stable)[..16])
}

/// `cache_ns-<name>-p<partition>`.
pub fn namespace_key(name: &str, partition: u32) -> String {
    format!("cache_ns-{}-p{partition}", sanitize(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(session_key("a b  c"), "cache_a-b-c");
        assert_eq!(session_key(" cache_x "), "cache_x");
        assert_eq!(fork_key("cache_conv", 2), "cache_conv-fork-2");
        assert_eq!(fork_key("ses_A", 1), "cache_ses_A-fork-1");
        assert_eq!(namespace_key("team a", 0), "cache_ns-team-a-p0");
        assert_eq!(spill_key("cache_conv", 2), "cache_conv-p2");
        assert_eq!(fallback_key(&[0xab; 16]), "cache_abababababababab");
        assert_eq!(sanitize("é\u{1}x"), "__x");
    }

    #[test]
    fn long_ids_stay_bounded_and_distinct() {
        let a = sanitize(&"x".repeat(500));
        let b = sanitize(&format!("{}y", "x".repeat(499)));
        assert_eq!(a.len(), MAX_BASE);
        assert_ne!(a, b);
    }
}
