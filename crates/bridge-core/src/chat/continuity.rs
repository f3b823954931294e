//! Reasoning continuity for Chat clients: Chat cannot carry encrypted reasoning, so the bridge keeps, per
//! session, the reasoning (and other non-message output) items each response produced, keyed by what the
//! client will send back (the assistant text or the tool call id that followed them), and re-inserts them
//! before that message in the next turn's translated input. The upstream then sees the same input a
//! Responses client would send.
//!
//! Invariants:
//! - Scoped by session and account: the key hashes the session's identity hint, the upstream account
//!   marker and the anchor, so nothing is replayed into another session, and an account change starts an
//!   empty set (the old account's entries are never read again and age out).
//! - Without a session hint nothing is stored or replayed (a text anchor alone is not unique).
//! - Bounded: an LRU weighted by stored bytes (`[chat] replay_max_bytes`); an evicted entry only means the
//!   next turn is sent without those items, as without replay. Memory only: a restart forgets it.
//! - Replayed items keep the bytes the upstream sent.

use std::sync::Arc;

use quick_cache::Weighter;
use quick_cache::sync::Cache;
use serde_json::value::RawValue;

use super::translate_in::Anchor;

/// The items that came before one anchor in a response.
type Items = Arc<Vec<Box<RawValue>>>;

#[derive(Clone)]
struct ByBytes;

impl Weighter<[u8; 32], Items> for ByBytes {
    fn weight(&self, _key: &[u8; 32], items: &Items) -> u64 {
        items.iter().map(|i| i.get().len() as u64 + 64).sum::<u64>().max(1)
    }
}

/// The replay store shared by every Chat exchange of a bridge.
pub struct ReplayStore {
    cache: Cache<[u8; 32], Items, ByBytes>,
}

/// Where one exchange's items are filed: a session under one upstream account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(blake3::Hash);

impl Scope {
    /// The scope of a session hint under an account marker.
    pub fn new(session: &str, account: &str) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(b"chat-replay\0");
        h.update(account.as_bytes());
        h.update(b"\0");
        h.update(session.as_bytes());
        Self(h.finalize())
    }

    /// The key of an anchor; a text anchor also hashes the digest of the input before it (the same
    /// answer text, "pong", recurs within a session; its place in the history does not). Call ids are
    /// unique on their own.
    fn key(&self, anchor: &Anchor, before: &Digest) -> [u8; 32] {
        let mut h = blake3::Hasher::new();
        h.update(self.0.as_bytes());
        match anchor {
            Anchor::Text(t) => h.update(b"text\0").update(before).update(t.as_bytes()),
            Anchor::Call(id) => h.update(b"call\0").update(id.as_bytes()),
        };
        *h.finalize().as_bytes()
    }
}

/// A chained digest of input items (the client's translated items, without replayed ones).
pub type Digest = [u8; 32];

/// `out[i]` is the digest of `items[..i]` (so `out.len() == items.len() + 1`): blake3 chained over each
/// item's bytes, linear in the input.
pub fn prefix_digests(items: &[Box<RawValue>]) -> Vec<Digest> {
    let mut out = Vec::with_capacity(items.len() + 1);
    let mut prev = [0u8; 32];
    out.push(prev);
    for item in items {
        let mut h = blake3::Hasher::new();
        h.update(&prev).update(item.get().as_bytes());
        prev = *h.finalize().as_bytes();
        out.push(prev);
    }
    out
}

impl ReplayStore {
    /// A store holding at most about `max_bytes` of items.
    pub fn new(max_bytes: u64) -> Self {
        let estimated = usize::try_from(max_bytes / 4096).unwrap_or(usize::MAX).clamp(16, 1 << 20);
        Self { cache: Cache::with_weighter(estimated, max_bytes.max(1), ByBytes) }
    }

    /// Files a response's output items: each run of non-anchor items (reasoning, ...) under the anchor that
    /// follows it (the response's assistant text, or a tool call id). Trailing items are not kept. `input`
    /// is the digest of the request's translated input (the last of [`prefix_digests`]), which the next
    /// turn's items before this answer hash to.
    pub fn remember(&self, scope: &Scope, input: &Digest, output: &[Box<RawValue>]) {
        let mut pending: Vec<Box<RawValue>> = Vec::new();
        let mut text: Option<String> = None;
        let mut text_items: Option<Vec<Box<RawValue>>> = None;
        for item in output {
            match classify(item) {
                Kind::Message(t) => {
                    // The Chat answer is the response's messages joined: one anchor for their first.
                    if text_items.is_none() {
                        text_items = Some(std::mem::take(&mut pending));
                    }
                    text.get_or_insert_with(String::new).push_str(&t);
                }
                Kind::Call(id) => {
                    if !pending.is_empty() {
                        self.cache.insert(scope.key(&Anchor::Call(id), input), Arc::new(std::mem::take(&mut pending)));
                    }
                }
                Kind::Other => pending.push(item.clone()),
            }
        }
        if let (Some(text), Some(items)) = (text, text_items)
            && !items.is_empty()
            && !text.is_empty()
        {
            self.cache.insert(scope.key(&Anchor::Text(text), input), Arc::new(items));
        }
    }

    /// The items to re-insert before `anchor` (with `before` the digest of the input before it), if kept.
    pub fn recall(&self, scope: &Scope, anchor: &Anchor, before: &Digest) -> Option<Items> {
        self.cache.get(&scope.key(anchor, before))
    }

    /// Inserts the kept items before each anchored input item; returns how many were inserted and the
    /// digest of the items as the client sent them (for [`ReplayStore::remember`]). `anchors` are positions
    /// in `items` in increasing order.
    pub fn splice(
        &self,
        scope: &Scope,
        items: &mut Vec<Box<RawValue>>,
        anchors: &[(usize, Anchor)],
    ) -> (usize, Digest) {
        let digests = prefix_digests(items);
        let input = digests.last().copied().unwrap_or_default();
        let found: Vec<(usize, Items)> = anchors
            .iter()
            .filter_map(|(at, anchor)| {
                let before = digests.get(*at)?;
                self.recall(scope, anchor, before).map(|i| (*at, i))
            })
            .collect();
        if found.is_empty() {
            return (0, input);
        }
        let inserted: usize = found.iter().map(|(_, i)| i.len()).sum();
        let mut out = Vec::with_capacity(items.len() + inserted);
        let mut next = found.into_iter().peekable();
        for (index, item) in std::mem::take(items).into_iter().enumerate() {
            while let Some((_, kept)) = next.next_if(|(at, _)| *at == index) {
                out.extend(kept.iter().cloned());
            }
            out.push(item);
        }
        *items = out;
        (inserted, input)
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }
}

enum Kind {
    Message(String),
    Call(String),
    Other,
}

fn classify(item: &RawValue) -> Kind {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        kind: Option<String>,
        role: Option<String>,
        call_id: Option<String>,
        #[serde(default)]
        content: Vec<Part>,
    }
    #[derive(serde::Deserialize)]
    struct Part {
        #[serde(rename = "type")]
        kind: Option<String>,
        text: Option<String>,
        refusal: Option<String>,
    }
    let Ok(head) = serde_json::from_str::<Head>(item.get()) else { return Kind::Other };
    match (head.kind.as_deref(), head.role.as_deref()) {
        (Some("message"), Some("assistant") | None) => {
            let text = head
                .content
                .into_iter()
                .filter_map(|p| match p.kind.as_deref() {
                    Some("output_text") => p.text,
                    Some("refusal") => p.refusal,
                    _ => None,
                })
                .collect();
            Kind::Message(text)
        }
        (Some("function_call" | "custom_tool_call"), _) => head.call_id.map_or(Kind::Other, Kind::Call),
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(v: serde_json::Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(&v).unwrap()
    }

    #[test]
    fn items_come_back_before_their_anchor_only_in_their_scope() {
        let store = ReplayStore::new(1 << 20);
        let scope = Scope::new("ses_1", "acct");
        let rs = serde_json::json!({"type": "reasoning", "id": "rs_1", "encrypted_content": "x"});
        let msg = serde_json::json!({"type": "message", "role": "assistant",
            "content": [{"type": "output_text", "text": "pong"}]});
        let user = raw(serde_json::json!({"role": "user"}));
        let input = *prefix_digests(std::slice::from_ref(&user)).last().unwrap();
        store.remember(&scope, &input, &[raw(rs.clone()), raw(msg.clone())]);
        let mut items = vec![user, raw(msg.clone())];
        let anchors = [(1, Anchor::Text("pong".into()))];
        assert_eq!(store.splice(&Scope::new("ses_1", "other"), &mut items.clone(), &anchors).0, 0);
        assert_eq!(store.splice(&Scope::new("ses_2", "acct"), &mut items.clone(), &anchors).0, 0);
        // The same text after another history is another answer.
        let mut elsewhere = vec![raw(serde_json::json!({"role": "user", "n": 2})), raw(msg)];
        assert_eq!(store.splice(&scope, &mut elsewhere, &anchors).0, 0);
        assert_eq!(store.splice(&scope, &mut items, &anchors).0, 1);
        assert_eq!(items[1].get(), raw(rs).get());
    }
}
