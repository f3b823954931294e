//! Reading tracked sessions back from the store for `codex-bridge sessions` and `codex-bridge stats`.
//!
//! Invariants: read-only; turn rows that do not parse are skipped (and counted), never fatal; sessions come
//! back sorted by their last turn, newest first.

use std::collections::BTreeMap;

use bridge_store::{Store, StoreResult};
use serde::Serialize;

use super::state::{TURNS_LOG, TurnRow};

/// One line of `sessions list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSummary {
    pub session: String,
    pub turns: usize,
    pub last_ts_ms: i64,
    pub key: String,
    pub input_tokens: u64,
    pub cached_tokens: u64,
    /// `cached / input`; `None` when no turn reported usage.
    pub hit_ratio: Option<f64>,
    pub last_outcome: Option<String>,
}

/// The turn rows of one session, oldest first.
pub async fn turns(store: &dyn Store, session: &str) -> StoreResult<Vec<TurnRow>> {
    let entries = store.read_log(&format!("{TURNS_LOG}{session}"), 0, 0).await?;
    Ok(entries.iter().filter_map(|e| serde_json::from_str(&e.body).ok()).collect())
}

/// Every tracked session, newest first.
pub async fn sessions(store: &dyn Store) -> StoreResult<Vec<SessionSummary>> {
    let mut out = Vec::new();
    for log in store.logs(TURNS_LOG).await? {
        let session = log.trim_start_matches(TURNS_LOG).to_owned();
        let rows = turns(store, &session).await?;
        let Some(last) = rows.last() else { continue };
        let input: u64 = rows.iter().filter_map(|r| r.input_tokens).sum();
        let cached: u64 = rows.iter().filter_map(|r| r.cached_tokens).sum();
        out.push(SessionSummary {
            turns: rows.len(),
            last_ts_ms: last.ts_ms,
            key: last.key.clone(),
            input_tokens: input,
            cached_tokens: cached,
            hit_ratio: (input > 0).then(|| cached as f64 / input as f64),
            last_outcome: last.outcome.clone(),
            session,
        });
    }
    out.sort_by(|a, b| b.last_ts_ms.cmp(&a.last_ts_ms).then_with(|| a.session.cmp(&b.session)));
    Ok(out)
}

/// Count of tracked turns by outcome (`hit`, `partial`, miss reasons without position, `no-usage`).
pub async fn outcomes(store: &dyn Store) -> StoreResult<BTreeMap<String, u64>> {
    let mut counts = BTreeMap::new();
    for log in store.logs(TURNS_LOG).await? {
        for row in turns(store, log.trim_start_matches(TURNS_LOG)).await? {
            let label = row.outcome.map_or_else(|| "no-usage".to_owned(), |o| position_free(&o));
            *counts.entry(label).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

/// `prefix-changed@3:input` → `prefix-changed:input`; a detail in parentheses dropped (`new-socket
/// (previous socket retired_age, 3 s ago)` → `new-socket`); other outcomes unchanged.
fn position_free(outcome: &str) -> String {
    let outcome = outcome.split_once(" (").map_or(outcome, |(code, _)| code);
    match outcome.strip_prefix("prefix-changed@") {
        Some(rest) => format!("prefix-changed:{}", rest.split_once(':').map_or("input", |(_, f)| f)),
        None => outcome.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_store::MemoryStore;

    fn row(ts: i64, outcome: Option<&str>, input: Option<u64>) -> String {
        serde_json::to_string(&TurnRow {
            ts_ms: ts,
            request_id: format!("r{ts}"),
            key: "k".into(),
            key_kind: "session".into(),
            routed: None,
            over_rate: false,
            model: None,
            client: None,
            transport: Some("http".into()),
            items: 1,
            classification: "append".into(),
            input_tokens: input,
            cached_tokens: input.map(|i| i / 2),
            outcome: outcome.map(str::to_owned),
            upstream: None,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn summaries_and_outcome_counts() {
        let store = MemoryStore::default();
        store.append("turns/a", 1, &row(1, Some("new-identity"), Some(100))).await.unwrap();
        store.append("turns/a", 2, &row(2, Some("prefix-changed@4:tools"), Some(300))).await.unwrap();
        store.append("turns/b", 5, &row(5, None, None)).await.unwrap();
        store.append("turns/b", 6, "not json").await.unwrap();
        let list = sessions(&store).await.unwrap();
        assert_eq!(list.iter().map(|s| s.session.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(list[1].hit_ratio, Some(0.5));
        assert_eq!(list[0].hit_ratio, None);
        let counts = outcomes(&store).await.unwrap();
        assert_eq!(counts.get("prefix-changed:tools"), Some(&1));
        assert_eq!(counts.get("no-usage"), Some(&1));
        assert_eq!(counts.get("new-identity"), Some(&1));
    }
}
