//! Proptest properties: chunking never changes the decoded events, raw bytes
//! concatenate back to the input, and arbitrary bytes never panic.

use bridge_sse::{SseDecoder, encode_comment, encode_event};
use proptest::prelude::*;

use crate::decode_split;

#[derive(Debug, Clone)]
enum Item {
    Event(Option<String>, String),
    Comment(String),
}

fn item() -> impl Strategy<Value = Item> {
    let text = "[a-z :{}\"é\r\n]{0,24}";
    prop_oneof![
        (proptest::option::of("[a-z_. :é]{0,10}"), text).prop_map(|(n, d)| Item::Event(n, d)),
        "[a-z -]{0,12}".prop_map(Item::Comment),
    ]
}

fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Encodes the items and rewrites every `\n` to the chosen terminator style.
fn encode(items: &[Item], style: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        match item {
            Item::Event(name, data) => out.extend_from_slice(&encode_event(name.as_deref(), data)),
            Item::Comment(text) => out.extend_from_slice(&encode_comment(text)),
        }
    }
    let terminator: &[u8] = [&b"\n"[..], b"\r\n", b"\r"][style];
    let mut converted = Vec::with_capacity(out.len() * 2);
    for b in out {
        if b == b'\n' {
            converted.extend_from_slice(terminator);
        } else {
            converted.push(b);
        }
    }
    converted
}

fn cuts(len: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..=len, 0..40).prop_map(|mut cuts| {
        cuts.sort_unstable();
        cuts
    })
}

fn noisy_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => proptest::sample::select(b"\r\n:d ae\xEF\xBB\xBF".to_vec()),
        1 => any::<u8>(),
    ]
}

proptest! {
    #[test]
    fn encoded_events_survive_any_chunking(
        (items, style, input, cuts) in (proptest::collection::vec(item(), 0..12), 0..3usize)
            .prop_flat_map(|(items, style)| {
                let input = encode(&items, style);
                let len = input.len();
                (Just(items), Just(style), Just(input), cuts(len))
            })
    ) {
        let whole = decode_split(&mut SseDecoder::new(), &input, &[]);
        let split = decode_split(&mut SseDecoder::new(), &input, &cuts);
        prop_assert_eq!(&whole, &split);
        let raw: Vec<u8> = split.iter().flat_map(|e| e.raw.iter().copied()).collect();
        prop_assert_eq!(raw, input, "style {}", style);
        prop_assert_eq!(split.len(), items.len());
        for (event, item) in split.iter().zip(&items) {
            match item {
                Item::Event(name, data) => {
                    let name = name.as_ref().map(|n| n.replace(['\r', '\n'], ""));
                    prop_assert_eq!(&event.event, &name);
                    prop_assert_eq!(&event.data, &normalise(data));
                }
                Item::Comment(_) => prop_assert!(event.is_comment_only()),
            }
        }
    }

    #[test]
    fn random_bytes_any_chunking_match_one_chunk(
        (input, cuts) in proptest::collection::vec(noisy_byte(), 0..300)
            .prop_flat_map(|input| { let len = input.len(); (Just(input), cuts(len)) })
    ) {
        let whole = decode_split(&mut SseDecoder::new(), &input, &[]);
        let split = decode_split(&mut SseDecoder::new(), &input, &cuts);
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn random_bytes_with_small_limit_never_panic(
        (input, cuts, max) in (proptest::collection::vec(noisy_byte(), 0..300), 0..40usize)
            .prop_flat_map(|(input, max)| { let len = input.len(); (Just(input), cuts(len), Just(max)) })
    ) {
        let mut decoder = SseDecoder::with_max_event_bytes(max);
        let mut start = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            decoder.feed(&input[start..cut.max(start)]);
            start = cut.max(start);
            loop {
                match decoder.next_event() {
                    Ok(Some(event)) => prop_assert!(event.raw.len() <= max),
                    Ok(None) => break,
                    Err(_) => {}
                }
            }
            prop_assert!(decoder.pending_len() <= max.max(2));
        }
        if let Some(event) = decoder.finish() {
            prop_assert!(event.raw.len() <= max);
        }
        prop_assert_eq!(decoder.pending_len(), 0);
    }
}
