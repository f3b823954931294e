//! Model names for the Codex backend: an explicit table of known models and aliases, effort-suffix
//! variants (`gpt-5.5-high` = `gpt-5.5` with `reasoning.effort = "high"`), the instruction file of each
//! model family, and the `/v1/models` listing.
//!
//! Invariants: no substring guessing. A name that is neither a known model, an alias, nor a known model
//! plus an effort suffix passes unchanged (the caller warns once per name), so a new model is never turned
//! into an old one.

use std::collections::BTreeMap;

/// Models the Codex backend serves, as far as the references show (codex-wire.md, plugin-behaviors.md §2.5).
pub const KNOWN_MODELS: &[&str] = &[
    "gpt-5",
    "gpt-5-codex",
    "gpt-5-codex-mini",
    "gpt-5.1",
    "gpt-5.1-codex",
    "gpt-5.1-codex-mini",
    "gpt-5.1-codex-max",
    "gpt-5.2",
    "gpt-5.2-codex",
    "gpt-5.3-codex",
    "gpt-5.4",
    "gpt-5.4-mini",
    "gpt-5.5",
];

/// Built-in aliases (exact names only).
const ALIASES: &[(&str, &str)] = &[("codex-mini-latest", "gpt-5.1-codex-mini")];

/// Reasoning efforts accepted as a name suffix.
pub const EFFORTS: &[&str] = &["none", "minimal", "low", "medium", "high", "xhigh"];

/// What a client's model name means upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A known model or alias: send this name (and this effort, if the name carried one).
    Known { model: String, effort: Option<&'static str> },
    /// Not in the table: sent unchanged.
    Unknown,
}

/// Resolves `name` against the built-in table plus `extra` aliases (which win).
pub fn resolve(name: &str, extra: &BTreeMap<String, String>) -> Resolved {
    let bare = name.strip_prefix("openai/").unwrap_or(name);
    if let Some(model) = base(bare, extra) {
        return Resolved::Known { model, effort: None };
    }
    for effort in EFFORTS {
        if let Some(stem) = bare.strip_suffix(effort).and_then(|s| s.strip_suffix('-'))
            && let Some(model) = base(stem, extra)
        {
            return Resolved::Known { model, effort: Some(effort) };
        }
    }
    Resolved::Unknown
}

fn base(name: &str, extra: &BTreeMap<String, String>) -> Option<String> {
    if let Some(target) = extra.get(name) {
        return Some(target.clone());
    }
    if KNOWN_MODELS.contains(&name) {
        return Some(name.to_owned());
    }
    ALIASES.iter().find(|(a, _)| *a == name).map(|(_, t)| (*t).to_owned())
}

/// The Codex instruction file for a model (codex-rs/core/<file>), by family; the codex prompt by default.
pub fn instruction_file(model: &str) -> &'static str {
    match model {
        "gpt-5.1-codex-max" | "gpt-5.2" | "gpt-5.2-codex" => "gpt-5.1-codex-max_prompt.md",
        "gpt-5.1" => "gpt_5_1_prompt.md",
        "gpt-5" => "prompt.md",
        _ => "gpt_5_codex_prompt.md",
    }
}

/// Every listed model id: each known model, then each with every effort suffix.
pub fn listed() -> Vec<String> {
    let mut out: Vec<String> = KNOWN_MODELS.iter().map(|m| (*m).to_owned()).collect();
    for m in KNOWN_MODELS {
        out.extend(EFFORTS.iter().map(|e| format!("{m}-{e}")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str) -> Resolved {
        resolve(name, &BTreeMap::new())
    }

    #[test]
    fn known_aliases_and_variants() {
        assert_eq!(r("gpt-5.5"), Resolved::Known { model: "gpt-5.5".into(), effort: None });
        assert_eq!(r("openai/gpt-5.5-high"), Resolved::Known { model: "gpt-5.5".into(), effort: Some("high") });
        assert_eq!(r("gpt-5-minimal"), Resolved::Known { model: "gpt-5".into(), effort: Some("minimal") });
        assert_eq!(r("gpt-5.4-mini"), Resolved::Known { model: "gpt-5.4-mini".into(), effort: None });
        assert_eq!(
            r("codex-mini-latest-low"),
            Resolved::Known { model: "gpt-5.1-codex-mini".into(), effort: Some("low") }
        );
    }

    #[test]
    fn no_substring_guessing() {
        for name in ["gpt-5.6", "gpt-5.6-codex", "gpt-5.6-high", "my-codex", "gpt-4.1", "GPT-5.5"] {
            assert_eq!(r(name), Resolved::Unknown, "{name}");
        }
    }

    #[test]
    fn configured_aliases_win() {
        let extra = BTreeMap::from([("fast".to_owned(), "gpt-5.4-mini".to_owned())]);
        assert_eq!(resolve("fast-low", &extra), Resolved::Known { model: "gpt-5.4-mini".into(), effort: Some("low") });
    }

    #[test]
    fn listing_has_variants() {
        let l = listed();
        assert!(l.contains(&"gpt-5.5-high".to_owned()) && l.contains(&"gpt-5.5".to_owned()));
        assert_eq!(l.len(), KNOWN_MODELS.len() * (1 + EFFORTS.len()));
    }
}
