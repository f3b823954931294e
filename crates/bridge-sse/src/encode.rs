//! SSE encoders producing well-formed blocks.
//!
//! Invariant: the output always ends with exactly one blank line and contains
//! no line break inside a field value, so the decoder reads back one block.
//! Line breaks in `data` (`\n`, `\r\n`, lone `\r`) split it into several
//! `data:` lines; line breaks in an event name are dropped.

use bytes::{BufMut, Bytes, BytesMut};

/// Encodes one event: `event: NAME\n` (if Some), then one `data: ` line per
/// line of `data`, then a blank line. Decoding the output yields `data` with
/// every line break normalised to `\n`.
pub fn encode_event(event: Option<&str>, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + 16 + event.map_or(0, str::len));
    if let Some(name) = event {
        out.put_slice(b"event: ");
        for piece in name.split(['\r', '\n']) {
            out.put_slice(piece.as_bytes());
        }
        out.put_u8(b'\n');
    }
    put_lines(&mut out, b"data: ", data);
    out.put_u8(b'\n');
    out.freeze()
}

/// Encodes a comment line `: TEXT\n\n` (keep-alive). A multi-line `text`
/// gives one `: ` line per line.
pub fn encode_comment(text: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(text.len() + 4);
    put_lines(&mut out, b": ", text);
    out.put_u8(b'\n');
    out.freeze()
}

/// Writes `prefix LINE\n` for every line of `text` (at least one line).
fn put_lines(out: &mut BytesMut, prefix: &[u8], text: &str) {
    let mut rest = text;
    loop {
        let (line, next) = match rest.find(['\r', '\n']) {
            Some(at) => {
                let after = if rest[at..].starts_with("\r\n") { at + 2 } else { at + 1 };
                (&rest[..at], Some(&rest[after..]))
            }
            None => (rest, None),
        };
        out.put_slice(prefix);
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
        match next {
            Some(next) => rest = next,
            None => break,
        }
    }
}
