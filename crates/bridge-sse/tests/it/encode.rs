//! Exact output of `encode_event` and `encode_comment`.

use bridge_sse::{SseDecoder, encode_comment, encode_event};

#[test]
fn encodes_event_with_name_and_lines() {
    assert_eq!(encode_event(Some("delta"), "a\nb"), &b"event: delta\ndata: a\ndata: b\n\n"[..]);
    assert_eq!(encode_event(None, "{}"), &b"data: {}\n\n"[..]);
    assert_eq!(encode_event(None, ""), &b"data: \n\n"[..]);
    assert_eq!(encode_event(None, "x\r\ny\rz\n"), &b"data: x\ndata: y\ndata: z\ndata: \n\n"[..]);
}

#[test]
fn event_name_line_breaks_are_dropped() {
    assert_eq!(encode_event(Some("a\r\nb"), "x"), &b"event: ab\ndata: x\n\n"[..]);
}

#[test]
fn encodes_comment() {
    assert_eq!(encode_comment("keep-alive"), &b": keep-alive\n\n"[..]);
    assert_eq!(encode_comment("a\nb"), &b": a\n: b\n\n"[..]);
}

#[test]
fn comment_decodes_as_comment_only() {
    let mut decoder = SseDecoder::new();
    decoder.feed(&encode_comment("keep-alive"));
    let event = decoder.next_event().unwrap().unwrap();
    assert!(event.is_comment_only());
    assert_eq!(event.raw, encode_comment("keep-alive"));
}
