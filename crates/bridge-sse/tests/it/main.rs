//! Integration tests of the public bridge-sse API: encoder output,
//! proptest properties of the decoder under arbitrary chunking, and the
//! fuzz-style properties over the corpus in `tests/corpus/` (`fuzz`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod encode;
mod fuzz;
mod props;

use bridge_sse::{SseDecoder, SseEvent};

/// Decodes `input` split at the sorted offsets `cuts`, draining after every
/// chunk (skipping size errors), then calls `finish`.
pub fn decode_split(decoder: &mut SseDecoder, input: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        let cut = cut.clamp(start, input.len());
        decoder.feed(&input[start..cut]);
        start = cut;
        loop {
            match decoder.next_event() {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(_) => continue,
            }
        }
    }
    events.extend(decoder.finish());
    assert_eq!(decoder.pending_len(), 0);
    events
}
