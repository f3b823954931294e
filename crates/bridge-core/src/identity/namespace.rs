//! Shared startup namespaces: which namespace a request opts into (request header, config rule, or `auto`)
//! and the stable partition of that namespace a session routes with.
//!
//! Invariants: a lineage (a root session and its forks) keeps its namespace and partition for as long as
//! this process remembers it, even when its prefix later changes (a key never changes on a prefix
//! mismatch; the memory is bounded, and a forgotten lineage is assigned again by the same rule); forks route
//! with their root; a new lineage joins the lowest partition that received fewer than `max_rpm` requests in
//! the last minute, so each namespace key stays under the backend's overflow rate; no conversation state is
//! shared, only routing.

use std::collections::{HashMap, VecDeque};

use super::prefix::{Fingerprint, hex};
use crate::config::cache::CacheConfig;

/// Sessions remembered per process before the assignment map is cleared.
const MAX_ASSIGNED: usize = 100_000;
const WINDOW_MS: i64 = 60_000;

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

/// Partition assignment and per-partition request rates.
#[derive(Debug, Default)]
pub struct Partitions {
    windows: HashMap<String, Vec<VecDeque<i64>>>,
    assigned: HashMap<(String, String), u32>,
    /// The namespace each lineage joined first.
    joined: HashMap<String, String>,
}

impl Partitions {
    /// The namespace `lineage` already routes with, if it joined one.
    pub fn joined(&self, lineage: &str) -> Option<&str> {
        self.joined.get(lineage).map(String::as_str)
    }

    /// The partition of `session` in `namespace`, counting this request at `now_ms`.
    pub fn route(&mut self, namespace: &str, session: &str, now_ms: i64, max_rpm: u32) -> u32 {
        let windows = self.windows.entry(namespace.to_owned()).or_default();
        for w in windows.iter_mut() {
            while w.front().is_some_and(|t| now_ms - *t >= WINDOW_MS) {
                w.pop_front();
            }
        }
        if self.assigned.len() >= MAX_ASSIGNED {
            self.assigned.clear();
            self.joined.clear();
        }
        self.joined.entry(session.to_owned()).or_insert_with(|| namespace.to_owned());
        let id = (namespace.to_owned(), session.to_owned());
        let partition = match self.assigned.get(&id) {
            Some(p) => *p,
            None => {
                let p = windows.iter().position(|w| w.len() < max_rpm as usize).unwrap_or(windows.len());
                self.assigned.insert(id, p as u32);
                p as u32
            }
        };
        while windows.len() <= partition as usize {
            windows.push(VecDeque::new());
        }
        if let Some(w) = windows.get_mut(partition as usize) {
            w.push_back(now_ms);
        }
        partition
    }
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

    #[test]
    fn sessions_stick_and_spill_over_at_the_rate() {
        let mut p = Partitions::default();
        for i in 0..3 {
            assert_eq!(p.route("ns", &format!("s{i}"), 1_000, 3), 0);
        }
        assert_eq!(p.route("ns", "s3", 1_000, 3), 1);
        assert_eq!(p.route("ns", "s0", 1_000, 3), 0, "a session keeps its partition");
        assert_eq!(p.route("ns", "s4", 70_000, 3), 0, "the window slides");
        assert_eq!(p.joined("s3"), Some("ns"));
        assert_eq!(p.joined("s9"), None);
    }

    #[test]
    fn the_window_holds_a_minute_of_wall_clock_time() {
        let mut p = Partitions::default();
        let now = 1_760_000_000_000; // epoch milliseconds, as the proxy passes them
        for i in 0..3 {
            assert_eq!(p.route("ns", &format!("s{i}"), now + i * 1_000, 3), 0);
        }
        assert_eq!(p.route("ns", "s3", now + 59_000, 3), 1, "requests within the last minute still count");
        assert_eq!(p.route("ns", "s4", now + 62_000, 3), 0, "requests older than a minute do not");
    }
}
