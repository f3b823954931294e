//! Shared startup namespaces: which namespace a request opts into (request header, config rule, or `auto`).
//! The partition of the namespace a lineage routes with is kept by [`super::partitions`].
//!
//! Invariants: a lineage (a root session and its forks) keeps the namespace it joined first and its
//! partition, even when its prefix later changes (both are in the store, so every replica and a restart
//! agree); forks route with their root; no conversation state is shared, only routing.

use super::prefix::{Fingerprint, hex};
use crate::config::cache::CacheConfig;

/// What a namespace decision looks at.
pub struct Subject<'a> {
    pub header: Option<&'a str>,
    pub client: Option<&'a str>,
    pub model: Option<&'a str>,
    pub fingerprint: &'a Fingerprint,
}

/// The namespace a request belongs to, if any: the header, then the first matching rule, then `auto`.
pub fn choose(config: &CacheConfig, subject: &Subject<'_>) -> Option<String> {
    if let Some(h) = subject.header {
        return Some(h.to_owned());
    }
    let instructions = hex(&subject.fingerprint.instructions);
    let rule = config.namespace_rules.iter().find(|r| {
        r.client.as_deref().is_none_or(|c| subject.client == Some(c))
            && r.model.as_deref().is_none_or(|m| subject.model == Some(m))
            && r.instructions_hash.as_deref().is_none_or(|h| !h.is_empty() && instructions.starts_with(h))
    });
    if let Some(rule) = rule {
        return Some(rule.name.clone());
    }
    config.namespace_auto.then(|| format!("auto-{}", &hex(&subject.fingerprint.stable)[..12]))
}

/// Whether choosing a namespace needs the request's fingerprint (rules on instructions, or `auto`).
pub fn needs_fingerprint(config: &CacheConfig) -> bool {
    config.namespace_auto || config.namespace_rules.iter().any(|r| r.instructions_hash.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::cache::NamespaceRule;

    #[test]
    fn header_then_rule_then_auto() {
        let fp = Fingerprint::default();
        let mut config = CacheConfig::default();
        let subject = |h| Subject { header: h, client: Some("opencode"), model: Some("gpt-5"), fingerprint: &fp };
        assert_eq!(choose(&config, &subject(None)), None);
        config.namespace_rules.push(NamespaceRule {
            name: "oc".into(),
            client: Some("opencode".into()),
            model: None,
            instructions_hash: None,
        });
        assert_eq!(choose(&config, &subject(None)).as_deref(), Some("oc"));
        assert_eq!(choose(&config, &subject(Some("hdr"))).as_deref(), Some("hdr"));
        config.namespace_rules[0].client = Some("codex".into());
        config.namespace_auto = true;
        assert!(choose(&config, &subject(None)).unwrap().starts_with("auto-"));
    }
}
