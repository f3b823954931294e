//! Incremental SSE decoder.
//!
//! The buffer holds the block being received (from its first byte) followed by
//! not yet scanned bytes. Invariants that make decoding O(total bytes):
//! - `scan` only moves forward within a block: no byte is examined twice for a
//!   line terminator, across any number of `feed`/`next_event` calls;
//! - each complete line is applied to [`PendingEvent`] once, when its
//!   terminator is seen; partial lines are never parsed;
//! - a `\r` at the end of the buffer is remembered (`cr_end`) instead of being
//!   rescanned, and a following `\n` is folded into the same terminator;
//! - finished blocks leave the buffer via `split_to(..).freeze()` (no copy).

use bytes::{Buf, BytesMut};

use crate::error::SseError;
use crate::event::{PendingEvent, SseEvent};

const DEFAULT_MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Incremental decoder: feed it network chunks, then drain complete events
/// with [`SseDecoder::next_event`] after each chunk.
#[derive(Debug)]
pub struct SseDecoder {
    buf: BytesMut,
    /// First byte of `buf` not yet examined for a line terminator.
    scan: usize,
    /// Start of the current (incomplete) line in `buf`.
    line_start: usize,
    /// Set when the current line ended with a `\r` that was the last buffered
    /// byte: holds the line's end; the next byte decides whether `\n` follows.
    cr_end: Option<usize>,
    /// Whether the start of the stream was checked for a UTF-8 BOM.
    bom_checked: bool,
    /// Skipping the rest of an oversized block up to its blank line.
    discarding: bool,
    /// While discarding: the current line had bytes that were already dropped.
    line_had_bytes: bool,
    pending: PendingEvent,
    max_event_bytes: usize,
    /// Bytes examined so far (test-only instrumentation of the linear bound).
    #[cfg(test)]
    pub(crate) examined: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder with the default maximum event size of 16 MiB.
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A decoder rejecting any single event larger than `max` bytes.
    pub fn with_max_event_bytes(max: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            scan: 0,
            line_start: 0,
            cr_end: None,
            bom_checked: false,
            discarding: false,
            line_had_bytes: false,
            pending: PendingEvent::default(),
            max_event_bytes: max,
            #[cfg(test)]
            examined: 0,
        }
    }

    /// Appends bytes received from the network.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes currently buffered and not yet returned.
    pub fn pending_len(&self) -> usize {
        self.buf.len()
    }

    /// The next complete event, if one is buffered. Err when a single pending
    /// event exceeds the max size; that block is then skipped and later calls
    /// continue with the following block.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        self.next_block(false)
    }

    /// At end of stream: the trailing event that had no terminating blank
    /// line, if it has any non-blank line (its raw bytes are returned as
    /// received, plus nothing added). Call it once `next_event` returned
    /// `Ok(None)`; a trailing event over the size limit is dropped. Leaves the
    /// decoder empty, ready for a new stream.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let event = self.next_block(true).ok().flatten();
        *self = Self::with_max_event_bytes(self.max_event_bytes);
        event
    }

    /// Core loop; `eof` treats the buffer end as the end of the stream.
    fn next_block(&mut self, eof: bool) -> Result<Option<SseEvent>, SseError> {
        if !self.skip_bom(eof) {
            return Ok(None);
        }
        loop {
            let Some((start, end)) = self.next_line(eof) else {
                return self.out_of_lines();
            };
            let blank = start == end && !self.line_had_bytes;
            if self.discarding {
                self.discarding = !blank;
                self.line_had_bytes = false;
                self.drop_scanned();
                continue;
            }
            if self.scan > self.max_event_bytes {
                self.discarding = !blank;
                return Err(self.reject());
            }
            if !blank {
                self.note_examined(end - start);
                self.pending.apply_line(&self.buf[start..end]);
            } else if self.pending.has_lines() {
                let raw = self.buf.split_to(self.scan).freeze();
                self.scan = 0;
                self.line_start = 0;
                return Ok(Some(std::mem::take(&mut self.pending).into_event(raw)));
            } else {
                self.drop_scanned(); // stray blank line: no block to yield
            }
        }
    }

    /// Skips a leading BOM once. False while the buffer is a strict prefix of
    /// the BOM and more bytes may still come.
    fn skip_bom(&mut self, eof: bool) -> bool {
        if self.bom_checked {
            return true;
        }
        let head_len = self.buf.len().min(BOM.len());
        let head_matches = BOM.starts_with(&self.buf[..head_len]);
        self.note_examined(head_len);
        if head_len < BOM.len() && head_matches && !eof {
            return false;
        }
        if head_len == BOM.len() && head_matches {
            self.buf.advance(BOM.len());
        }
        self.bom_checked = true;
        true
    }

    /// The next complete line as `(start, end)` without its terminator, with
    /// `scan` moved past the terminator. At `eof`, an unterminated last line
    /// and then an empty line closing a non-empty block are produced.
    fn next_line(&mut self, eof: bool) -> Option<(usize, usize)> {
        if let Some(end) = self.cr_end {
            if self.scan == self.buf.len() && !eof {
                return None;
            }
            if self.buf.get(self.scan) == Some(&b'\n') {
                self.note_examined(1);
                self.scan += 1;
            }
            self.cr_end = None;
            return Some(self.take_line(end));
        }
        let rest = &self.buf[self.scan..];
        match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(offset) => {
                self.note_examined(offset + 1);
                let end = self.scan + offset;
                self.scan = end + 1;
                if self.buf[end] == b'\r' {
                    self.cr_end = Some(end);
                    return self.next_line(eof);
                }
                Some(self.take_line(end))
            }
            None => {
                self.note_examined(rest.len());
                self.scan = self.buf.len();
                let open_line = self.line_start < self.scan;
                let closes_block = self.pending.has_lines() && !self.discarding;
                (eof && (open_line || closes_block)).then(|| self.take_line(self.scan))
            }
        }
    }

    /// Ends the current line at `end`; the next line starts at `scan`.
    fn take_line(&mut self, end: usize) -> (usize, usize) {
        let start = self.line_start;
        self.line_start = self.scan;
        (start, end)
    }

    /// No complete line is buffered: enforce the size limit on the partial block.
    fn out_of_lines(&mut self) -> Result<Option<SseEvent>, SseError> {
        if self.discarding {
            let line_end = self.cr_end.unwrap_or(self.scan);
            self.line_had_bytes |= line_end > self.line_start;
            self.drop_scanned();
            return Ok(None);
        }
        if self.buf.len() > self.max_event_bytes {
            let line_end = self.cr_end.unwrap_or(self.scan);
            self.line_had_bytes = line_end > self.line_start;
            self.discarding = true;
            return Err(self.reject());
        }
        Ok(None)
    }

    /// Drops the oversized block's scanned bytes and fields.
    fn reject(&mut self) -> SseError {
        self.pending = PendingEvent::default();
        self.drop_scanned();
        SseError::EventTooLarge { limit: self.max_event_bytes }
    }

    /// Drops all scanned bytes, keeping line state relative to the new start.
    fn drop_scanned(&mut self) {
        self.buf.advance(self.scan);
        self.scan = 0;
        self.line_start = 0;
        if self.cr_end.is_some() {
            self.cr_end = Some(0);
        }
    }

    #[cfg(test)]
    fn note_examined(&mut self, n: usize) {
        self.examined += n;
    }

    #[cfg(not(test))]
    fn note_examined(&mut self, _n: usize) {}
}
