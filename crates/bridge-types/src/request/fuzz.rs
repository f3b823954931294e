//! Fuzz-style proptest properties of [`ResponsesRequest::parse`] over arbitrary bytes, generated JSON and
//! mutations of the committed corpus (`tests/corpus/`).
//!
//! Properties checked for every input:
//! - `parse` returns `Ok` or `Err`, never panics;
//! - an accepted request is unmodified, and `to_bytes` re-parses to the same keys in the same order with the
//!   same raw values (and serialises to the same bytes again);
//! - the duplicate-key scan agrees with a recursive serde reference that checks every object with a `HashSet`
//!   (compared where the reference is not stopped by serde_json's recursion limit first).
//!
//! Corpus files are named `ok-*` (must parse) or `bad-*` (must be refused). `CODEX_BRIDGE_FUZZ_CASES` sets the
//! number of cases per property (default [`DEFAULT_CASES`], a few seconds in a debug build).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::ResponsesRequest;

const DEFAULT_CASES: u32 = 512;

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
    CORPUS.get_or_init(read_corpus)
}

fn read_corpus() -> Vec<(String, Vec<u8>)> {
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
}

/// The properties every input must satisfy; returns the parse result for extra checks.
fn check(body: &[u8]) -> Result<ResponsesRequest, super::RequestError> {
    let parsed = ResponsesRequest::parse(body);
    if let Ok(req) = &parsed {
        assert!(!req.is_modified());
        let bytes = req.to_bytes();
        let again = ResponsesRequest::parse(&bytes).unwrap_or_else(|e| {
            panic!("to_bytes of an accepted body is refused: {e:?}\n{}", String::from_utf8_lossy(&bytes))
        });
        assert!(req.keys().eq(again.keys()), "keys differ after a round trip");
        for key in req.keys() {
            assert_eq!(req.raw(key).map(|r| r.get()), again.raw(key).map(|r| r.get()), "value of `{key}` differs");
        }
        assert_eq!(again.to_bytes(), bytes);
    }
    match reference_duplicate(body) {
        Reference::Duplicate(key) => {
            let err = parsed.as_ref().err().unwrap_or_else(|| panic!("duplicate `{key}` accepted"));
            // Where the first pass accepts the body (an object of decodable keys and valid raw values, with
            // repeats allowed), the duplicate must be the reason for the refusal.
            if serde_json::from_slice::<HashMap<String, Box<RawValue>>>(body).is_ok() {
                assert!(err.message.contains("duplicate key"), "{key}: {err:?}");
                assert_eq!(err.code, "invalid_json");
                if key.chars().count() <= 64 {
                    assert!(err.message.contains(&format!("`{key}`")), "{key}: {err:?}");
                }
            }
        }
        Reference::Unique => {
            if let Err(err) = &parsed {
                assert!(!err.message.contains("duplicate key"), "false duplicate: {err:?}");
            }
        }
        Reference::Undecided => {}
    }
    parsed
}

enum Reference {
    /// Valid JSON whose first duplicate key (in document order) is this one.
    Duplicate(String),
    /// Valid JSON without duplicate keys.
    Unique,
    /// Invalid JSON, or stopped by the recursion limit or a number out of range before any duplicate.
    Undecided,
}

/// A recursive serde walk with one `HashSet` per object: the obviously correct (but recursion-limited) check.
fn reference_duplicate(body: &[u8]) -> Reference {
    let mut found = None;
    let mut de = serde_json::Deserializer::from_slice(body);
    let walked = Walk { found: &mut found }.deserialize(&mut de).and_then(|()| de.end());
    match (walked, found) {
        (Err(_), Some(key)) => Reference::Duplicate(key),
        (Ok(()), _) => Reference::Unique,
        (Err(_), None) => Reference::Undecided,
    }
}

struct Walk<'a> {
    found: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Walk { found: &mut *self.found })?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut keys = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key.clone()) {
                *self.found = Some(key);
                return Err(de::Error::custom("duplicate"));
            }
            map.next_value_seed(Walk { found: &mut *self.found })?;
        }
        Ok(())
    }
}

#[test]
fn corpus_entries_meet_their_expectation() {
    let entries = corpus();
    assert!(entries.len() >= 20, "corpus at {} has {} entries", corpus_dir().display(), entries.len());
    for (name, body) in entries {
        let result = check(body);
        if name.starts_with("ok-") {
            assert!(result.is_ok(), "{name}: {result:?}");
        } else if name.starts_with("bad-") {
            assert!(result.is_err(), "{name} accepted");
        } else {
            panic!("corpus entry {name} must start with ok- or bad-");
        }
    }
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
    /// Copies a range elsewhere: repeats keys, values and brackets, so duplicates and odd nesting appear.
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

fn apply(mut body: Vec<u8>, mutations: &[Mutation], corpus: &[(String, Vec<u8>)]) -> Vec<u8> {
    for mutation in mutations {
        let len = body.len();
        match mutation {
            Mutation::Flip { at, mask } => {
                if let Some(byte) = body.get_mut(position(*at, len.saturating_sub(1))) {
                    *byte ^= mask;
                }
            }
            Mutation::Truncate { at } => body.truncate(position(*at, len)),
            Mutation::Insert { at, bytes } => {
                let at = position(*at, len);
                body.splice(at..at, bytes.iter().copied());
            }
            Mutation::Delete { at, len: n } => {
                let at = position(*at, len);
                body.drain(at..(at + usize::from(*n)).min(len));
            }
            Mutation::Copy { from, len: n, to } => {
                let from = position(*from, len);
                let piece = body[from..(from + usize::from(*n)).min(len)].to_vec();
                let to = position(*to, len);
                body.splice(to..to, piece);
            }
            Mutation::Splice { at, other, other_at } => {
                let other = &corpus[*other % corpus.len()].1;
                body.truncate(position(*at, len));
                body.extend_from_slice(&other[position(*other_at, other.len())..]);
            }
        }
    }
    body
}

/// Bytes that matter to a JSON parser, plus any byte.
fn json_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        4 => proptest::sample::select(b"{}[]\":,\\ \t\r\nu0aeE+-.9tfn\x00\xff\xc3\xef".to_vec()),
        1 => any::<u8>(),
    ]
}

/// Insertions: JSON fragments that create duplicates, escapes and nesting, or noise.
fn insertion() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::sample::select(vec![
            &b"\"model\":\"m\","[..],
            b",\"model\":1",
            b"\"a\":1,\"a\":2",
            b",\"\\u0061\":0",
            b"{\"k\":{},\"k\":[]}",
            b"[[[[",
            b"]]}}",
            b"\\\"",
            b"\\u",
            b"\\ud800",
            b"1e400",
            b"\xef\xbb\xbf",
            b"\x00",
        ])
        .prop_map(<[u8]>::to_vec),
        proptest::collection::vec(json_byte(), 1..8),
    ]
}

fn mutation(entries: usize) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<u16>(), 1..=255u8).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        1 => any::<u16>().prop_map(|at| Mutation::Truncate { at }),
        3 => (any::<u16>(), insertion()).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        2 => (any::<u16>(), any::<u8>()).prop_map(|(at, len)| Mutation::Delete { at, len }),
        2 => (any::<u16>(), 1..400u16, any::<u16>()).prop_map(|(from, len, to)| Mutation::Copy { from, len, to }),
        1 => (any::<u16>(), 0..entries, any::<u16>()).prop_map(|(at, other, other_at)| Mutation::Splice {
            at,
            other,
            other_at
        }),
    ]
}

/// Generated JSON text with keys from a tiny alphabet (so duplicates are frequent), escaped spellings of the
/// same key, strings with escapes and random whitespace.
fn json_text(depth: u32) -> BoxedStrategy<String> {
    let ws = proptest::sample::select(vec!["", "", " ", "\n", "\r\n\t"]);
    let key = proptest::sample::select(vec!["a", "b", "\\u0061", "a\\\"", "a\\\\", "", "model"]);
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        (-1000i64..1000).prop_map(|n| n.to_string()),
        "[a-z\"\\\\{}\\[\\]:,]{0,6}".prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    leaf.prop_recursive(depth, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec((ws.clone(), inner.clone()), 0..6).prop_map(|items| {
                let items: Vec<String> = items.into_iter().map(|(w, v)| format!("{w}{v}")).collect();
                format!("[{}]", items.join(","))
            }),
            proptest::collection::vec((ws.clone(), key.clone(), inner), 0..6).prop_map(|entries| {
                let entries: Vec<String> = entries.into_iter().map(|(w, k, v)| format!("{w}\"{k}\":{w}{v}")).collect();
                format!("{{{}}}", entries.join(","))
            }),
        ]
    })
    .boxed()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_hold_the_properties(body in proptest::collection::vec(json_byte(), 0..512)) {
        let _ = check(&body);
    }

    #[test]
    fn mutated_corpus_entries_hold_the_properties(
        (index, mutations) in (0..corpus().len(), proptest::collection::vec(mutation(corpus().len()), 1..6))
    ) {
        let entries = corpus();
        let body = apply(entries[index].1.clone(), &mutations, entries);
        let _ = check(&body);
    }

    #[test]
    fn generated_json_agrees_with_the_reference(fields in json_text(4), deep in json_text(40)) {
        // As a top-level object with a model (so it may be accepted), and as a nested value.
        let as_object = fields.strip_prefix('{').map(|rest| format!("{{\"model\":\"m\",{rest}")).unwrap_or_default();
        let nested = format!("{{\"model\":\"m\",\"x\":{fields},\"y\":{deep}}}");
        for body in [as_object.replace("\"m\",}", "\"m\"}"), nested] {
            let _ = check(body.as_bytes());
        }
    }
}
