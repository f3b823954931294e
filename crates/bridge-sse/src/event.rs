//! SSE event blocks and the per-line field parser.
//!
//! [`PendingEvent`] accumulates the fields of the block being received; each
//! complete line is applied exactly once (never re-parsed), following the
//! WHATWG field rules. Invalid UTF-8 is replaced lossily in parsed fields only.

use bytes::Bytes;

/// One complete SSE event block as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The exact bytes of the block as received, including its terminating
    /// blank line (so a proxy can forward it unchanged, byte for byte). A
    /// leading UTF-8 BOM of the stream is not part of the first block's `raw`.
    pub raw: Bytes,
    /// Value of the last `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with '\n' (one optional space after the colon removed).
    pub data: String,
    /// Value of the last valid `id:` field (one without a NUL), if any.
    pub id: Option<String>,
    /// Value of the last `retry:` field made only of ASCII digits, if any.
    pub retry: Option<u64>,
}

impl SseEvent {
    /// True when the block has no data and no event field (only comments such
    /// as ": keep-alive", or id/retry only). Empty `data:` lines count as no
    /// data, as browsers do not dispatch such a block either.
    pub fn is_comment_only(&self) -> bool {
        self.event.is_none() && self.data.is_empty()
    }
}

/// Fields of the block currently being received.
#[derive(Debug, Default)]
pub(crate) struct PendingEvent {
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    retry: Option<u64>,
    /// At least one non-blank line (field, comment or unknown field) was seen.
    has_lines: bool,
}

impl PendingEvent {
    /// Whether the block has any non-blank line and so yields an event.
    pub(crate) fn has_lines(&self) -> bool {
        self.has_lines
    }

    /// Applies one complete, non-blank line (without its terminator).
    pub(crate) fn apply_line(&mut self, line: &[u8]) {
        self.has_lines = true;
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(0) => return, // comment
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match name {
            b"event" => self.event = Some(lossy(value)),
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.has_data = true;
                self.data.push_str(&String::from_utf8_lossy(value));
            }
            b"id" if !value.contains(&0) => self.id = Some(lossy(value)),
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // Digits only, so parsing fails only on overflow: ignore then.
                if let Ok(retry) = lossy(value).parse() {
                    self.retry = Some(retry);
                }
            }
            _ => {}
        }
    }

    /// Turns the accumulated fields into an event with the given raw bytes.
    pub(crate) fn into_event(self, raw: Bytes) -> SseEvent {
        SseEvent { raw, event: self.event, data: self.data, id: self.id, retry: self.retry }
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
