//! Prefix fingerprints: canonical JSON digests of each input item and the chain hashes over them.
//!
//! Invariants:
//! - Canonical JSON sorts object keys at every level and has no whitespace, so key order never matters.
//! - The cross-session digest drops each item's top-level `id` (ids differ across threads for identical
//!   content); the within-session chain folds the id back in, so a changed id counts inside one session.
//! - `chain[k]` covers items `0..=k` in order: equal chains mean equal prefixes (up to a 128-bit collision).
//! - Pure functions of the request: no clock, no randomness.

use bridge_types::ResponsesRequest;

use super::canonical;

/// A 128-bit digest (the first 16 bytes of blake3).
pub type Digest = [u8; 16];

/// Fingerprints of one request's input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    /// Chain over items with ids removed (cross-session comparison, fork index).
    pub shared: Vec<Digest>,
    /// Chain over items with ids kept (one session's own history).
    pub own: Vec<Digest>,
    /// Index of the first `role: user` message, if any.
    pub first_user: Option<usize>,
    /// Digest of `instructions` (zero when absent).
    pub instructions: Digest,
    /// Digest of `tools` (zero when absent).
    pub tools: Digest,
    /// Digest of the stable prefix: instructions, tools and the items up to and including the first user
    /// message, ids removed.
    pub stable: Digest,
}

impl Fingerprint {
    /// Fingerprints a parsed request. A string `input` counts as one user message. Each item is read
    /// from its own JSON text into its canonical form ([`super::canonical`]), with no value tree.
    pub fn of(request: &ResponsesRequest) -> Self {
        let string_input =
            request.input_text().map(|text| serde_json::json!({"role": "user", "content": text}).to_string());
        let items = request.input_items().unwrap_or(&[]).iter().map(|raw| raw.get()).chain(string_input.as_deref());
        let mut bytes = Vec::new();
        let mut field = |name: &str| match request.raw(name).map(|r| r.get()) {
            None | Some("null") => [0; 16],
            Some(text) => {
                bytes.clear();
                canonical::write(text, false, &mut bytes);
                digest(&bytes)
            }
        };
        let instructions = field("instructions");
        let tools = field("tools");
        let mut fp = Fingerprint { instructions, tools, ..Fingerprint::default() };
        let mut stable = blake3::Hasher::new();
        stable.update(&instructions);
        stable.update(&tools);
        let (mut shared, mut own) = ([0u8; 16], [0u8; 16]);
        for (i, text) in items.enumerate() {
            bytes.clear();
            let facts = canonical::write(text, true, &mut bytes);
            let d = digest(&bytes);
            shared = link(&shared, &d);
            own = link(&own, &link(&d, &digest(facts.id.as_deref().unwrap_or_default().as_bytes())));
            fp.shared.push(shared);
            fp.own.push(own);
            if fp.first_user.is_none() {
                stable.update(&d);
                if facts.user {
                    fp.first_user = Some(i);
                }
            }
        }
        fp.stable = first16(stable.finalize().as_bytes());
        fp
    }

    /// Number of input items.
    pub fn len(&self) -> usize {
        self.shared.len()
    }

    /// True when the request has no input items.
    pub fn is_empty(&self) -> bool {
        self.shared.is_empty()
    }

    /// The smallest item position whose chain covers history beyond the startup context: the item right
    /// after the first user message (a fork must repeat at least the first reply).
    pub fn history_start(&self) -> usize {
        self.first_user.map_or(usize::MAX, |u| u + 1)
    }
}

/// The 128-bit digest of some bytes.
pub fn digest(bytes: &[u8]) -> Digest {
    first16(blake3::hash(bytes).as_bytes())
}

fn link(previous: &Digest, next: &Digest) -> Digest {
    let mut h = blake3::Hasher::new();
    h.update(previous);
    h.update(next);
    first16(h.finalize().as_bytes())
}

fn first16(bytes: &[u8; 32]) -> Digest {
    let mut out = [0u8; 16];
    out.copy_from_slice(&bytes[..16]);
    out
}

/// Lower-case hex of a digest.
pub fn hex(d: &Digest) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(body: &str) -> Fingerprint {
        Fingerprint::of(&ResponsesRequest::parse(body.as_bytes()).unwrap())
    }

    #[test]
    fn key_order_and_ids_do_not_change_the_shared_chain() {
        let a = fp(r#"{"model":"m","input":[{"id":"a","role":"user","content":"x"}]}"#);
        let b = fp(r#"{"model":"m","input":[{"content":"x","role":"user","id":"b"}]}"#);
        assert_eq!(a.shared, b.shared);
        assert_ne!(a.own, b.own);
        assert_eq!(a.stable, b.stable);
        assert_eq!(a.first_user, Some(0));
    }

    #[test]
    fn chains_share_exactly_the_common_prefix() {
        let a = fp(r#"{"model":"m","input":[{"role":"developer","content":"d"},{"role":"user","content":"1"}]}"#);
        let b = fp(
            r#"{"model":"m","input":[{"role":"developer","content":"d"},{"role":"user","content":"2"},{"role":"user","content":"3"}]}"#,
        );
        assert_eq!(a.shared[0], b.shared[0]);
        assert_ne!(a.shared[1], b.shared[1]);
        assert_ne!(a.stable, b.stable);
        assert_eq!(b.first_user, Some(1));
        assert_eq!(b.history_start(), 2);
    }

    #[test]
    fn stable_prefix_ignores_later_items_and_model() {
        let a = fp(r#"{"model":"m","instructions":"i","input":[{"role":"user","content":"1"}]}"#);
        let b = fp(
            r#"{"model":"n","instructions":"i","input":[{"role":"user","content":"1"},{"role":"assistant","content":"r"}]}"#,
        );
        assert_eq!(a.stable, b.stable);
        let c = fp(r#"{"model":"m","instructions":"j","input":[{"role":"user","content":"1"}]}"#);
        assert_ne!(a.stable, c.stable);
        assert_ne!(a.instructions, c.instructions);
    }

    #[test]
    fn string_input_is_one_user_message_and_tools_have_their_own_digest() {
        let text = fp(r#"{"model":"m","input":"hi","tools":[{"type":"function","name":"a"}]}"#);
        let array =
            fp(r#"{"model":"m","input":[{"role":"user","content":"hi"}],"tools":[{"name":"a","type":"function"}]}"#);
        assert_eq!((text.shared.clone(), text.first_user, text.stable), (array.shared, Some(0), array.stable));
        assert_eq!((text.len(), text.is_empty()), (1, false));
        let other = fp(r#"{"model":"m","input":"bye","tools":[{"type":"function","name":"b"}]}"#);
        assert_ne!(text.stable, other.stable);
        assert_ne!(text.tools, other.tools);
        let none = fp(r#"{"model":"m"}"#);
        assert_eq!((none.tools, none.len(), none.is_empty()), ([0; 16], 0, true));
    }
}
