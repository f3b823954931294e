//! Fuzz-style proptest properties of `SseDecoder` over the committed corpus (`tests/corpus/`), mutations of it
//! and arbitrary bytes, each fed in arbitrary chunkings and under several size limits.
//!
//! The promises checked (see the crate README, "Decoding rules"):
//! - decoding never panics, and the sequence of events and `EventTooLarge` errors does not depend on the chunking;
//! - after draining, buffered bytes never exceed the limit (plus 2 bytes of a possible BOM); `finish` empties it;
//! - `raw` is the exact received block: without size errors, the input is a leading BOM (optional), then the raws
//!   in order separated only by stray blank lines; with errors, the raws still appear in order; blocks returned by
//!   `next_event` end with a blank line; re-decoding `BOM + raw` alone yields the same single event;
//! - parsed fields hold no line terminators (`data` lines are joined with `\n` only).
//!
//! `CODEX_BRIDGE_FUZZ_CASES` sets the number of cases per property (default [`DEFAULT_CASES`]).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bridge_sse::{SseDecoder, SseEvent};
use proptest::prelude::*;
use proptest::test_runner::Config;

const DEFAULT_CASES: u32 = 256;
const BOM: &[u8] = b"\xEF\xBB\xBF";
/// Size limits every input is decoded under; `None` is the default limit.
const LIMITS: [Option<usize>; 5] = [None, Some(4096), Some(256), Some(64), Some(16)];

fn config() -> Config {
    let cases = std::env::var("CODEX_BRIDGE_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CASES);
    Config { cases, ..Config::default() }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Every corpus entry (dotfiles excepted) as `(file name, bytes)`, sorted by name, read once.
fn corpus() -> &'static [(String, Vec<u8>)] {
    static CORPUS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut entries: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir())
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
            })
            .filter(|(name, _)| !name.starts_with('.')) // .gitattributes
            .collect();
        entries.sort();
        entries
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// From `next_event`.
    Event(SseEvent),
    /// From `finish`.
    Trailing(SseEvent),
    TooLarge,
}

fn decoder(limit: Option<usize>) -> SseDecoder {
    limit.map_or_else(SseDecoder::new, SseDecoder::with_max_event_bytes)
}

/// Decodes `input` cut at the sorted offsets `cuts`, draining after every chunk and checking the buffer bound.
fn decode(input: &[u8], cuts: &[usize], limit: Option<usize>) -> Vec<Outcome> {
    let mut decoder = decoder(limit);
    let mut outcomes = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
        let cut = cut.clamp(start, input.len());
        decoder.feed(&input[start..cut]);
        start = cut;
        loop {
            match decoder.next_event() {
                Ok(Some(event)) => outcomes.push(Outcome::Event(event)),
                Ok(None) => break,
                Err(_) => outcomes.push(Outcome::TooLarge),
            }
        }
        if let Some(max) = limit {
            assert!(decoder.pending_len() <= max + 2, "{} buffered over the limit {max}", decoder.pending_len());
        }
    }
    outcomes.extend(decoder.finish().map(Outcome::Trailing));
    assert_eq!(decoder.pending_len(), 0, "finish leaves bytes behind");
    outcomes
}

fn ends_with_terminator(bytes: &[u8]) -> Option<&[u8]> {
    bytes.strip_suffix(b"\r\n").or_else(|| bytes.strip_suffix(b"\n")).or_else(|| bytes.strip_suffix(b"\r"))
}

/// Checks every promise for `input` under `limit`, with `cuts` as one arbitrary chunking.
fn check(input: &[u8], cuts: &[usize], limit: Option<usize>) -> Vec<Outcome> {
    let whole = decode(input, &[], limit);
    let split = decode(input, cuts, limit);
    assert_eq!(whole, split, "chunking {cuts:?} changed the outcome (limit {limit:?})");
    if input.len() <= 4096 {
        let bytewise: Vec<usize> = (1..input.len()).collect();
        assert_eq!(whole, decode(input, &bytewise, limit), "byte-at-a-time feeding changed the outcome");
    }

    let errors = whole.contains(&Outcome::TooLarge);
    let mut cursor = if input.starts_with(BOM) { BOM.len() } else { 0 };
    for outcome in &whole {
        let (event, trailing) = match outcome {
            Outcome::Event(event) => (event, false),
            Outcome::Trailing(event) => (event, true),
            Outcome::TooLarge => continue,
        };
        let raw = &event.raw[..];
        if errors {
            let found = input[cursor..].windows(raw.len()).position(|w| w == raw);
            cursor += found.unwrap_or_else(|| panic!("raw {raw:?} not found in order in the input"));
        } else {
            while matches!(input.get(cursor), Some(b'\r' | b'\n')) {
                cursor += 1;
            }
            assert!(input[cursor..].starts_with(raw), "raw {raw:?} is not the input at {cursor}");
        }
        cursor += raw.len();
        if let Some(max) = limit {
            assert!(raw.len() <= max, "event of {} bytes under the limit {max}", raw.len());
        }
        if !trailing {
            let last_line = ends_with_terminator(raw).unwrap_or_else(|| panic!("{raw:?} does not end a line"));
            assert!(matches!(last_line.last(), Some(b'\r' | b'\n')), "{raw:?} does not end with a blank line");
        }
        assert!(!event.data.contains('\r'), "data keeps a CR");
        assert!(!event.event.as_deref().unwrap_or_default().contains(['\r', '\n']), "event name keeps a terminator");
        assert!(!event.id.as_deref().unwrap_or_default().contains(['\r', '\n', '\0']), "bad id");

        let mut alone = BOM.to_vec();
        alone.extend_from_slice(raw);
        // Alone, a block ending in a lone CR only comes out at `finish` (a LF might still follow).
        let again: Vec<SseEvent> = decode(&alone, &[], limit)
            .into_iter()
            .map(|o| match o {
                Outcome::Event(e) | Outcome::Trailing(e) => e,
                Outcome::TooLarge => panic!("{raw:?} alone is too large"),
            })
            .collect();
        assert_eq!(again, std::slice::from_ref(event), "re-decoding the raw block alone differs");
    }
    if !errors {
        assert!(input[cursor..].iter().all(|b| matches!(b, b'\r' | b'\n')), "bytes after the last event were lost");
    }
    whole
}

#[test]
fn corpus_entries_hold_the_promises() {
    let entries = corpus();
    assert!(entries.len() >= 15, "corpus at {} has {} entries", corpus_dir().display(), entries.len());
    for (name, input) in entries {
        for limit in LIMITS {
            let cuts: Vec<usize> = (0..input.len()).step_by(7).collect();
            let outcomes = std::panic::catch_unwind(|| check(input, &cuts, limit))
                .unwrap_or_else(|_| panic!("{name} under limit {limit:?}"));
            if limit.is_none() {
                assert!(!outcomes.contains(&Outcome::TooLarge), "{name}");
            }
        }
    }
}

#[test]
fn corpus_response_streams_decode_alike_in_every_terminator_style() {
    let fields = |name: &str| -> Vec<(Option<String>, String)> {
        let input = &corpus().iter().find(|(n, _)| n == name).unwrap().1;
        decode(input, &[], None)
            .into_iter()
            .map(|o| match o {
                Outcome::Event(e) | Outcome::Trailing(e) => (e.event, e.data),
                Outcome::TooLarge => panic!("{name}: too large"),
            })
            .collect()
    };
    let lf = fields("responses-lf.sse");
    assert_eq!(lf.len(), 9);
    assert_eq!(lf[0].0.as_deref(), Some("response.created"));
    assert!(lf[8].1.contains("\"cached_tokens\":4096"));
    for name in
        ["responses-crlf.sse", "responses-cr.sse", "responses-mixed-terminators.sse", "no-trailing-blank-line.sse"]
    {
        assert_eq!(fields(name), lf, "{name}");
    }
}

#[test]
fn corpus_oversized_event_is_skipped_and_decoding_resumes() {
    let input = &corpus().iter().find(|(n, _)| n == "oversized-event.sse").unwrap().1;
    let outcomes = check(input, &[], Some(4096));
    let summary: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Event(e) | Outcome::Trailing(e) => e.data.clone(),
            Outcome::TooLarge => "too large".to_owned(),
        })
        .collect();
    assert_eq!(summary, ["small", "too large", "ok", "too large", "end"]);
}

/// One edit of a corpus entry; positions are fractions of the current length so they always land inside.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: u16,
        mask: u8,
    },
    Truncate {
        at: u16,
    },
    Insert {
        at: u16,
        bytes: Vec<u8>,
    },
    Delete {
        at: u16,
        len: u8,
    },
    /// Copies a range elsewhere (repeated fields, terminators and half lines).
    Copy {
        from: u16,
        len: u16,
        to: u16,
    },
    /// Keeps the head of this entry and appends the tail of another.
    Splice {
        at: u16,
        other: usize,
        other_at: u16,
    },
}

fn position(at: u16, len: usize) -> usize {
    (usize::from(at) * (len + 1)) >> 16
}

fn apply(mut input: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    let entries = corpus();
    for mutation in mutations {
        let len = input.len();
        match mutation {
            Mutation::Flip { at, mask } => {
                if let Some(byte) = input.get_mut(position(*at, len.saturating_sub(1))) {
                    *byte ^= mask;
                }
            }
            Mutation::Truncate { at } => input.truncate(position(*at, len)),
            Mutation::Insert { at, bytes } => {
                let at = position(*at, len);
                input.splice(at..at, bytes.iter().copied());
            }
            Mutation::Delete { at, len: n } => {
                let at = position(*at, len);
                input.drain(at..(at + usize::from(*n)).min(len));
            }
            Mutation::Copy { from, len: n, to } => {
                let from = position(*from, len);
                let piece = input[from..(from + usize::from(*n)).min(len)].to_vec();
                let to = position(*to, len);
                input.splice(to..to, piece);
            }
            Mutation::Splice { at, other, other_at } => {
                let other = &entries[*other % entries.len()].1;
                input.truncate(position(*at, len));
                input.extend_from_slice(&other[position(*other_at, other.len())..]);
            }
        }
    }
    input
}

fn sse_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => proptest::sample::select(b"\r\n:dataeventidry 0\xEF\xBB\xBF\x00".to_vec()),
        1 => any::<u8>(),
    ]
}

fn insertion() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::sample::select(vec![
            &b"\n"[..],
            b"\r",
            b"\r\n",
            b"\n\n",
            b"\r\n\r\n",
            b":",
            b": keep-alive\n",
            b"data: ",
            b"data:x\n",
            b"event: e\n",
            b"id: 7\n",
            b"id: a\0b\n",
            b"retry: 5\n",
            b"\xEF\xBB\xBF",
            b"\0",
        ])
        .prop_map(<[u8]>::to_vec),
        proptest::collection::vec(sse_byte(), 1..8),
        // A long line, to cross the small limits.
        (1..600usize).prop_map(|n| vec![b'x'; n]),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<u16>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        1 => any::<u16>().prop_map(|at| Mutation::Truncate { at }),
        3 => (any::<u16>(), insertion()).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        2 => (any::<u16>(), any::<u8>()).prop_map(|(at, len)| Mutation::Delete { at, len }),
        2 => (any::<u16>(), 1..400u16, any::<u16>()).prop_map(|(from, len, to)| Mutation::Copy { from, len, to }),
        1 => (any::<u16>(), any::<usize>(), any::<u16>()).prop_map(|(at, other, other_at)| Mutation::Splice {
            at,
            other,
            other_at
        }),
    ]
}

/// Up to 60 sorted cut offsets as fractions of the input length.
fn cut_points() -> impl Strategy<Value = Vec<u16>> {
    proptest::collection::vec(any::<u16>(), 0..60)
}

fn cuts_for(points: &[u16], len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = points.iter().map(|&p| position(p, len)).collect();
    cuts.sort_unstable();
    cuts
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_corpus_entries_hold_the_promises(
        index in 0..corpus().len(),
        mutations in proptest::collection::vec(mutation(), 1..6),
        points in cut_points(),
        limit in proptest::sample::select(LIMITS.to_vec()),
    ) {
        let input = apply(corpus()[index].1.clone(), &mutations);
        check(&input, &cuts_for(&points, input.len()), limit);
    }

    #[test]
    fn arbitrary_bytes_hold_the_promises(
        input in proptest::collection::vec(sse_byte(), 0..1500),
        points in cut_points(),
        limit in proptest::sample::select(LIMITS.to_vec()),
    ) {
        check(&input, &cuts_for(&points, input.len()), limit);
    }
}
