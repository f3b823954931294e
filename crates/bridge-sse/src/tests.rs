//! Unit tests of the decoder rules and of the linear-time scan bound (via the
//! test-only `examined` counter).

use crate::{SseDecoder, SseError, SseEvent};

/// Feeds `chunks` one by one, draining after each, then calls `finish`.
fn decode(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut decoder = SseDecoder::new();
    let mut events = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk);
        while let Some(event) = decoder.next_event().unwrap() {
            events.push(event);
        }
    }
    events.extend(decoder.finish());
    assert_eq!(decoder.pending_len(), 0);
    events
}

fn bytewise(input: &[u8]) -> Vec<SseEvent> {
    let chunks: Vec<&[u8]> = input.chunks(1).collect();
    decode(&chunks)
}

#[test]
fn each_line_terminator_style() {
    for input in [&b"event: a\ndata: x\n\n"[..], b"event: a\r\ndata: x\r\n\r\n", b"event: a\rdata: x\r\r"] {
        for events in [decode(&[input]), bytewise(input)] {
            assert_eq!(events.len(), 1, "{input:?}");
            assert_eq!(events[0].event.as_deref(), Some("a"));
            assert_eq!(events[0].data, "x");
            assert_eq!(events[0].raw, input);
        }
    }
}

#[test]
fn cr_split_across_chunks_waits_for_lf() {
    let mut decoder = SseDecoder::new();
    decoder.feed(b"data: x\n\r");
    assert!(decoder.next_event().unwrap().is_none());
    decoder.feed(b"\ndata: y\n\n");
    let first = decoder.next_event().unwrap().unwrap();
    assert_eq!(first.raw, &b"data: x\n\r\n"[..]);
    let second = decoder.next_event().unwrap().unwrap();
    assert_eq!(second.data, "y");
    assert_eq!(second.raw, &b"data: y\n\n"[..]);
}

#[test]
fn lone_cr_at_chunk_end_then_other_byte() {
    let events = decode(&[b"data: x\r", b"\r", b"data: y\r", b"\r"]);
    let raws: Vec<&[u8]> = events.iter().map(|e| &e.raw[..]).collect();
    assert_eq!(raws, [&b"data: x\r\r"[..], b"data: y\r\r"]);
}

#[test]
fn multi_line_data_and_space_rules() {
    let events = decode(&[b"data:a\ndata:  b\ndata\ndata: \n\n"]);
    assert_eq!(events[0].data, "a\n b\n\n");
}

#[test]
fn comments_yield_comment_only_blocks() {
    let events = decode(&[b": keep-alive\n\n: x\ndata: y\n\n"]);
    assert_eq!(events.len(), 2);
    assert!(events[0].is_comment_only());
    assert_eq!(events[0].raw, &b": keep-alive\n\n"[..]);
    assert!(!events[1].is_comment_only());
    assert_eq!(events[1].data, "y");
}

#[test]
fn stray_blank_lines_yield_nothing() {
    let events = decode(&[b"\n\r\n\rdata: y\n\n\n\n"]);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].raw, &b"data: y\n\n"[..]);
}

#[test]
fn fields_without_colon_and_unknown_fields() {
    let events = decode(&[b"event\nfoo: bar\nid\n\n"]);
    assert_eq!(events[0].event.as_deref(), Some(""));
    assert_eq!(events[0].id.as_deref(), Some(""));
    assert_eq!(events[0].data, "");
    let unknown = decode(&[b"foo: bar\n\n"]);
    assert!(unknown[0].is_comment_only());
}

#[test]
fn bom_is_skipped_and_not_in_raw() {
    let input = b"\xEF\xBB\xBFdata: x\n\n";
    for events in [decode(&[input]), bytewise(input)] {
        assert_eq!(events[0].data, "x");
        assert_eq!(events[0].raw, &b"data: x\n\n"[..]);
    }
    // Only the first BOM of the stream is special.
    let twice = decode(&[b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n"]);
    assert_eq!(twice[0].raw, &b"\xEF\xBB\xBFdata: x\n\n"[..]);
    // A partial BOM at end of stream is ordinary content.
    let partial = decode(&[b"\xEF\xBB"]);
    assert_eq!(partial[0].raw, &b"\xEF\xBB"[..]);
}

#[test]
fn finish_returns_trailing_event_as_received() {
    for input in [&b"data: a\n\ndata: b"[..], b"data: a\n\ndata: b\n", b"data: a\n\ndata: b\r"] {
        for events in [decode(&[input]), bytewise(input)] {
            assert_eq!(events.len(), 2, "{input:?}");
            assert_eq!(events[1].data, "b");
            assert_eq!(events[1].raw, &input[9..]);
        }
    }
    let mut decoder = SseDecoder::new();
    decoder.feed(b"\n\n");
    assert!(decoder.next_event().unwrap().is_none());
    assert!(decoder.finish().is_none());
}

#[test]
fn id_and_retry() {
    let events = decode(&[b"id: 1\nid: 7\nretry: 3000\nretry: x1\nretry: 99999999999999999999999\n\n"]);
    assert_eq!(events[0].id.as_deref(), Some("7"));
    assert_eq!(events[0].retry, Some(3000));
    assert!(events[0].is_comment_only());
    let nul = decode(&[b"id: 2\nid: a\0b\n\n"]);
    assert_eq!(nul[0].id.as_deref(), Some("2"));
}

#[test]
fn event_too_large_errors_then_recovers() {
    let mut decoder = SseDecoder::with_max_event_bytes(16);
    decoder.feed(b"data: 0123456789");
    assert!(decoder.next_event().unwrap().is_none());
    decoder.feed(b"abcdef");
    assert!(matches!(decoder.next_event(), Err(SseError::EventTooLarge { limit: 16 })));
    decoder.feed(b"more\ndata: still big\r");
    assert!(decoder.next_event().unwrap().is_none());
    assert_eq!(decoder.pending_len(), 0, "discarded bytes are not kept");
    decoder.feed(b"\n\ndata: ok\n\n");
    let event = decoder.next_event().unwrap().unwrap();
    assert_eq!(event.raw, &b"data: ok\n\n"[..]);

    // Oversized complete block inside one chunk.
    let mut decoder = SseDecoder::with_max_event_bytes(10);
    decoder.feed(b"data: 0123456789\n\ndata: 1\n\n");
    assert!(decoder.next_event().is_err());
    assert_eq!(decoder.next_event().unwrap().unwrap().data, "1");
}

#[test]
fn lossy_utf8_keeps_raw_bytes() {
    let input = b"event: \xFFe\ndata: a\xC3\n\n";
    let events = decode(&[input]);
    assert_eq!(events[0].event.as_deref(), Some("\u{FFFD}e"));
    assert_eq!(events[0].data, "a\u{FFFD}");
    assert_eq!(events[0].raw, &input[..]);
}

/// Feeds `input` in `chunk`-sized pieces, draining after each, and returns
/// the bytes examined plus the event count.
fn examined_for(input: &[u8], chunk: usize) -> (usize, usize) {
    let mut decoder = SseDecoder::new();
    let mut count = 0;
    for piece in input.chunks(chunk) {
        decoder.feed(piece);
        while decoder.next_event().unwrap().is_some() {
            count += 1;
        }
    }
    (decoder.examined, count)
}

#[test]
fn linear_scan_of_4mib_line_fed_bytewise() {
    let mut input = b"data: ".to_vec();
    input.resize(4 << 20, b'x');
    input.extend_from_slice(b"\n\n");
    let (examined, count) = examined_for(&input, 1);
    assert_eq!(count, 1);
    assert!(examined <= 2 * input.len() + 8, "{examined} for {}", input.len());
}

#[test]
fn linear_scan_for_any_chunking() {
    let mut input = b"\xEF\xBB\xBF".to_vec();
    for i in 0..2000 {
        input.extend_from_slice(format!(": c\r\ndata: {i}\rdata: x\n\r\n").as_bytes());
    }
    for chunk in [1, 2, 3, 7, 64, 4096, input.len()] {
        let (examined, count) = examined_for(&input, chunk);
        assert_eq!(count, 2000);
        assert!(examined <= 2 * input.len() + 8, "chunk {chunk}: {examined}");
    }
}

proptest::proptest! {
    #[test]
    fn scan_stays_linear_on_random_input(
        input in proptest::collection::vec(
            proptest::sample::select(b"\r\n:da \xEF\xBB\xBF".to_vec()), 0..2000),
        chunk in 1..64usize,
    ) {
        let (examined, _) = examined_for(&input, chunk);
        proptest::prop_assert!(examined <= 2 * input.len() + 8, "{} for {}", examined, input.len());
    }
}
