//! Duplicate-key check at every nesting level of a JSON text that serde_json has already accepted.
//!
//! Invariants:
//! - Runs only on text that serde_json parsed successfully, so the structure is well formed; the scanner tracks
//!   only `{ } [ ] , :` and strings and never re-validates numbers, literals or UTF-8.
//! - Linear time and no recursion: every byte is visited once, every key is hashed once into the set of its own
//!   object, and nesting costs one heap frame per open container (never stack), however deep.
//! - Keys are compared by their decoded value, so `"a"` and `"\u0061"` collide. A key without a backslash is
//!   borrowed, never copied; a key whose escapes do not decode (a lone surrogate) is compared by its raw bytes.
//! - The path of a duplicate is rendered like the request errors' `param` (`metadata.a`, `input[3].content`);
//!   each key in it is cut to [`KEY_DISPLAY_CHARS`] characters so the message stays small.
//! - Key tables of closed objects are reused only while small, since clearing a table costs its capacity.

use std::borrow::Cow;
use std::collections::HashSet as StdHashSet;

/// Key sets hashed with foldhash: keys come from the client, but a set lives for one object of one body,
/// so a collision flood costs that one request only (and the body size bounds it).
type HashSet<T> = StdHashSet<T, foldhash::fast::RandomState>;

/// Longest key text (in characters) shown in a path segment.
const KEY_DISPLAY_CHARS: usize = 64;

/// Largest key table kept for reuse by the next object.
const SPARE_CAPACITY: usize = 32;

/// The first duplicate key found, in document order of the second occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Duplicate {
    /// JSON path of the duplicated key itself, e.g. `metadata.a`; the top-level key alone for top-level duplicates.
    pub path: String,
    /// The key as shown in the path's last segment.
    pub key: String,
    /// Whether the duplicate is a key of the top-level object.
    pub top_level: bool,
    /// 1-based line and column of the second occurrence's opening quote.
    pub line: usize,
    pub column: usize,
}

enum Frame<'a> {
    Object {
        keys: HashSet<Cow<'a, [u8]>>,
        /// Span of the current key (with its quotes), for the error path.
        key: (usize, usize),
        /// The next string is a key (after `{` or `,`).
        expect_key: bool,
    },
    Array {
        index: usize,
    },
}

/// Finds the first duplicate key at any depth of `json`, which serde_json must have accepted.
pub(super) fn first_duplicate(json: &[u8]) -> Option<Duplicate> {
    let mut stack: Vec<Frame<'_>> = Vec::new();
    // Key sets of closed objects, reused so that many small objects do not each allocate a table.
    let mut spare: Vec<HashSet<Cow<'_, [u8]>>> = Vec::new();
    let mut i = 0;
    while let Some(&byte) = json.get(i) {
        match byte {
            b'{' => {
                let keys = spare.pop().unwrap_or_default();
                stack.push(Frame::Object { keys, key: (0, 0), expect_key: true });
            }
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                // Only small tables are kept: clearing costs their capacity, and a big one reused for
                // many small objects would make the scan quadratic.
                if let Some(Frame::Object { mut keys, .. }) = stack.pop()
                    && keys.capacity() <= SPARE_CAPACITY
                {
                    keys.clear();
                    spare.push(keys);
                }
            }
            b',' => match stack.last_mut() {
                Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            b'"' => {
                let end = string_end(json, i);
                if let Some(Frame::Object { keys, key, expect_key: expect @ true }) = stack.last_mut() {
                    *expect = false;
                    *key = (i, end);
                    if !keys.insert(decode_key(json.get(i..end).unwrap_or_default())) {
                        return Some(duplicate(json, &stack, i));
                    }
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index just past the closing quote of the string opening at `start`.
fn string_end(json: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while let Some(offset) = json.get(i..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest)) {
        i += offset;
        if json.get(i) == Some(&b'"') {
            return i + 1;
        }
        i += 2; // a backslash and the character it escapes
    }
    json.len()
}

/// The comparable identity of a key given with its quotes: its bytes, decoded when it has escapes.
fn decode_key(quoted: &[u8]) -> Cow<'_, [u8]> {
    let inner = quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default();
    if !inner.contains(&b'\\') {
        return Cow::Borrowed(inner);
    }
    match serde_json::from_slice::<String>(quoted) {
        Ok(decoded) => Cow::Owned(decoded.into_bytes()),
        Err(_) => Cow::Borrowed(quoted),
    }
}

/// Builds the error for a duplicate whose second occurrence starts at `at`; `stack` still holds its object.
fn duplicate(json: &[u8], stack: &[Frame<'_>], at: usize) -> Duplicate {
    let mut path = String::new();
    let mut last = String::new();
    for frame in stack {
        match frame {
            Frame::Object { key: (start, end), .. } => {
                last = display_key(json.get(*start..*end).unwrap_or_default());
                let simple =
                    !last.is_empty() && last.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if simple && path.is_empty() {
                    path.push_str(&last);
                } else if simple {
                    path.push('.');
                    path.push_str(&last);
                } else {
                    let quoted = serde_json::to_string(&last).unwrap_or_else(|_| format!("\"{last}\""));
                    path.push('[');
                    path.push_str(&quoted);
                    path.push(']');
                }
            }
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    let before = json.get(..at).unwrap_or_default();
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    Duplicate { path, key: last, top_level: stack.len() == 1, line, column: at - line_start + 1 }
}

/// A key's decoded text for messages, cut to [`KEY_DISPLAY_CHARS`] characters.
fn display_key(quoted: &[u8]) -> String {
    let text = String::from_utf8_lossy(&decode_key(quoted)).into_owned();
    match text.char_indices().nth(KEY_DISPLAY_CHARS) {
        Some((cut, _)) => format!("{}...", text.get(..cut).unwrap_or_default()),
        None => text,
    }
}
