//! Property tests of the identity engine (issue 4, items 3 and 4): the key is a pure function of the request
//! and the stored lineage state, and different conversations never share a fallback key.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::HeaderMap;
use bridge_core::identity::{CacheConfig, IdentityEngine, KeyKind};
use bridge_store::MemoryStore;
use bridge_types::ResponsesRequest;
use proptest::prelude::*;
use serde_json::{Value, json};

fn request(spec: &(u8, u8, u8, u8, u16)) -> (Value, HeaderMap) {
    let (hint, fork, turns, soft, salt) = *spec;
    let mut body = json!({"model": if soft % 2 == 0 { "gpt-5" } else { "gpt-5-mini" }, "instructions": "sys"});
    let mut input = vec![json!({"role": "developer", "content": "startup"})];
    for t in 0..=turns {
        input.push(json!({"role": "user", "content": format!("c{salt} q{t}")}));
        if t < turns {
            input.push(json!({"role": "assistant", "content": format!("c{salt} a{t}")}));
        }
    }
    body["input"] = Value::Array(input);
    if soft % 3 == 0 {
        body["temperature"] = json!(f64::from(soft) / 10.0);
    }
    let mut headers = HeaderMap::new();
    match hint % 4 {
        0 => body["prompt_cache_key"] = json!(format!("ses_{salt}")),
        1 => body["metadata"] = json!({"conversation_id": format!("conv {salt}")}),
        2 => {
            headers.insert("session-id", format!("h{salt}").parse().unwrap());
        }
        _ => {}
    }
    if fork % 3 == 0 && hint % 4 == 1 {
        body["metadata"]["forkId"] = json!(format!("f{}", fork % 5));
    }
    (body, headers)
}

async fn keys(specs: &[(u8, u8, u8, u8, u16)]) -> Vec<String> {
    let engine = IdentityEngine::new(CacheConfig::default(), Arc::new(MemoryStore::default()));
    let mut out = Vec::new();
    for spec in specs {
        let (body, headers) = request(spec);
        let parsed = ResponsesRequest::parse(&serde_json::to_vec(&body).unwrap()).unwrap();
        out.push(engine.resolve(&parsed, &headers, None, i64::from(spec.4)).await.unwrap().key);
    }
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    /// 4 cases × 250 requests = 1,000 generated requests: replaying the same sequence on a fresh engine and
    /// store gives the same keys (no randomness, no clock), and the same request in one state gives the same
    /// key twice.
    #[test]
    fn key_is_a_pure_function_of_request_and_lineage_state(
        specs in proptest::collection::vec((0u8..8, 0u8..9, 0u8..6, 0u8..10, 0u16..40), 250)
    ) {
        let rt = runtime();
        let first = rt.block_on(keys(&specs));
        let second = rt.block_on(keys(&specs));
        prop_assert_eq!(&first, &second);
        let doubled: Vec<_> = specs.iter().flat_map(|s| [*s, *s]).collect();
        let pairs = rt.block_on(keys(&doubled));
        for pair in pairs.chunks(2) {
            prop_assert_eq!(&pair[0], &pair[1]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Conversations with distinct content never share a fallback key, whatever their length or soft
    /// parameters; turns of one conversation always share it.
    #[test]
    fn different_conversations_never_share_a_fallback_key(
        convs in proptest::collection::hash_set(0u16..5000, 2..12), turns in 0u8..6, soft in 0u8..10
    ) {
        let rt = runtime();
        let specs: Vec<_> = convs.iter().map(|salt| (3u8, 1u8, turns, soft, *salt)).collect();
        let keys = rt.block_on(keys(&specs));
        let mut by_key: HashMap<&String, u16> = HashMap::new();
        for (k, spec) in keys.iter().zip(&specs) {
            prop_assert!(k.starts_with("cache_"));
            if let Some(other) = by_key.insert(k, spec.4) {
                prop_assert!(false, "conversations {} and {} share {}", other, spec.4, k);
            }
        }
        let later: Vec<_> = specs.iter().map(|s| (s.0, s.1, s.2 + 1, s.3 + 1, s.4)).collect();
        prop_assert_eq!(rt.block_on(self::keys(&later)), keys);
    }
}

#[test]
fn fallback_kind_is_reported() {
    let rt = runtime();
    let engine = IdentityEngine::new(CacheConfig::default(), Arc::new(MemoryStore::default()));
    let parsed = ResponsesRequest::parse(br#"{"model":"m","input":"x"}"#).unwrap();
    let id = rt.block_on(engine.resolve(&parsed, &HeaderMap::new(), None, 0)).unwrap();
    assert_eq!(id.kind, KeyKind::Fallback);
}
