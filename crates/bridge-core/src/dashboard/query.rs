//! The dashboard's and the CLI's read model: usage rows, tracked turns, lineages and project state turned
//! into the overview, the session list, one session's detail and the projects view. `codex-bridge stats`
//! and `sessions` print these same values; the `/api/` handlers serve them as JSON.
//!
//! Invariants: read-only; a token field no row reported is `None` (shown as unknown), never 0; the cached
//! share is `cached / input` over the rows that reported both (OpenAI counts cached tokens inside input),
//! `None` when that input is 0; work is linear in the rows read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bridge_store::{Store, StoreResult, UsageQuery, UsageRecord};
use serde::Serialize;

use crate::identity::Lineage;
use crate::identity::lineage::LINEAGE_NS;
use crate::tracker::TurnRow;
use crate::tracker::report::{self, SessionSummary};

/// Sessions with a request in this window count as active.
pub const ACTIVE_WINDOW_MS: i64 = 30 * 60 * 1000;

/// Which rows the overview covers: `since_ms..=now_ms` cut into `buckets` equal slices, or every row.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub now_ms: i64,
    /// `None`: all rows (the time series then spans the oldest to the newest row).
    pub span_ms: Option<i64>,
    pub buckets: usize,
}

/// Token totals of a group of usage rows; each `None` when no row of the group reported it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tokens {
    pub requests: u64,
    pub input_tokens: Option<u64>,
    pub cached_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// `cached / input` over rows reporting both; `None` when there is no such input.
    pub cached_share: Option<f64>,
    /// Rows without any input-token count.
    pub rows_without_usage: u64,
    #[serde(skip)]
    share_input: u64,
    #[serde(skip)]
    share_cached: u64,
}

fn add(total: &mut Option<u64>, v: Option<u64>) {
    if let Some(v) = v {
        *total = Some(total.unwrap_or(0) + v);
    }
}

impl Tokens {
    fn add(&mut self, r: &UsageRecord) {
        self.requests += 1;
        add(&mut self.input_tokens, r.input_tokens);
        add(&mut self.cached_tokens, r.cached_tokens);
        add(&mut self.cache_write_tokens, r.cache_write_tokens);
        add(&mut self.output_tokens, r.output_tokens);
        if r.input_tokens.is_none() {
            self.rows_without_usage += 1;
        }
        if let (Some(i), Some(c)) = (r.input_tokens, r.cached_tokens) {
            self.share_input += i;
            self.share_cached += c;
        }
        self.cached_share = share(self.share_cached, self.share_input);
    }
}

/// `cached / input`, `None` for no input.
pub fn share(cached: u64, input: u64) -> Option<f64> {
    (input > 0).then(|| cached as f64 / input as f64)
}

/// One slice of the time series.
#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    pub start_ms: i64,
    #[serde(flatten)]
    pub tokens: Tokens,
}

/// Failed requests with one status.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorCount {
    pub status: u16,
    pub kind: &'static str,
    pub count: u64,
}

/// The ingress API of a usage row's route: `chat` for Chat Completions, else `responses`.
pub fn ingress_api(route: &str) -> &'static str {
    if route.ends_with("/chat/completions") { "chat" } else { "responses" }
}

/// The overview page and `codex-bridge stats`.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub from_ms: Option<i64>,
    pub to_ms: i64,
    pub bucket_ms: Option<i64>,
    #[serde(flatten)]
    pub totals: Tokens,
    pub series: Vec<Bucket>,
    pub by_client: BTreeMap<String, Tokens>,
    /// By client and ingress API (`<client> responses`, `<client> chat`).
    pub by_client_api: BTreeMap<String, Tokens>,
    pub by_model: BTreeMap<String, Tokens>,
    pub errors: Vec<ErrorCount>,
    /// Failed requests / requests; `None` without requests.
    pub error_rate: Option<f64>,
    /// Distinct sessions with a request in the last [`ACTIVE_WINDOW_MS`].
    pub active_sessions: u64,
    pub active_window_ms: i64,
    /// Requests by transport (`http-sse`, `http-json`, `websocket`, `chat-completions`, ...).
    pub transports: BTreeMap<String, u64>,
    /// Tracked turns by cache outcome (`hit`, `partial`, miss reasons, `no-usage`).
    pub outcomes: BTreeMap<String, u64>,
}

/// What a failed status means, for the errors-by-kind table.
pub fn error_kind(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "invalid request",
        401 | 403 => "authentication",
        404 | 405 => "not found",
        408 => "request timeout",
        429 => "rate or usage limit",
        499 => "client closed",
        502 => "bad gateway",
        503 => "overloaded",
        504 => "upstream timeout",
        500..=599 => "upstream error",
        _ => "other",
    }
}

/// The transport of a usage row, from its route and whether it streamed.
pub fn transport(r: &UsageRecord) -> String {
    let route = r.route.as_str();
    if route.contains("chat/completions") {
        "chat-completions".to_owned()
    } else if route.starts_with("ws") || route.contains("websocket") {
        "websocket".to_owned()
    } else if r.streamed {
        "http-sse".to_owned()
    } else {
        "http-json".to_owned()
    }
}

/// Usage totals, series and breakdowns over `window`, plus the tracked turns' outcomes.
pub async fn overview(store: &dyn Store, window: Window) -> StoreResult<Overview> {
    let rows = store.usage(&UsageQuery::default()).await?;
    let from = window.span_ms.map(|s| window.now_ms - s);
    let rows: Vec<&UsageRecord> = rows.iter().filter(|r| from.is_none_or(|f| r.ts_ms >= f)).collect();
    let mut out = Overview {
        from_ms: from,
        to_ms: window.now_ms,
        bucket_ms: None,
        totals: Tokens::default(),
        series: Vec::new(),
        by_client: BTreeMap::new(),
        by_client_api: BTreeMap::new(),
        by_model: BTreeMap::new(),
        errors: Vec::new(),
        error_rate: None,
        active_sessions: 0,
        active_window_ms: ACTIVE_WINDOW_MS,
        transports: BTreeMap::new(),
        outcomes: report::outcomes(store).await?,
    };
    let start = from.or_else(|| rows.iter().map(|r| r.ts_ms).min());
    let buckets = window.buckets.clamp(1, 500);
    if let Some(start) = start {
        let span = (window.now_ms - start).max(1);
        let width = (span + buckets as i64 - 1) / buckets as i64;
        out.bucket_ms = Some(width);
        out.series =
            (0..buckets).map(|i| Bucket { start_ms: start + i as i64 * width, tokens: Tokens::default() }).collect();
    }
    let mut errors: BTreeMap<u16, u64> = BTreeMap::new();
    let mut active = BTreeSet::new();
    for r in &rows {
        out.totals.add(r);
        let name = |v: &Option<String>| v.clone().unwrap_or_else(|| "unknown".to_owned());
        out.by_client.entry(name(&r.client)).or_default().add(r);
        out.by_client_api.entry(format!("{} {}", name(&r.client), ingress_api(&r.route))).or_default().add(r);
        out.by_model.entry(name(&r.model)).or_default().add(r);
        *out.transports.entry(transport(r)).or_default() += 1;
        if r.status >= 400 {
            *errors.entry(r.status).or_default() += 1;
        }
        if r.ts_ms >= window.now_ms - ACTIVE_WINDOW_MS
            && let Some(s) = &r.session_id
        {
            active.insert(s.as_str());
        }
        if let (Some(first), Some(width)) = (out.series.first().map(|b| b.start_ms), out.bucket_ms) {
            let i = (((r.ts_ms - first).max(0) / width.max(1)) as usize).min(out.series.len() - 1);
            out.series[i].tokens.add(r);
        }
    }
    out.errors =
        errors.into_iter().map(|(status, count)| ErrorCount { status, kind: error_kind(status), count }).collect();
    let failed: u64 = out.errors.iter().map(|e| e.count).sum();
    out.error_rate = (out.totals.requests > 0).then(|| failed as f64 / out.totals.requests as f64);
    out.active_sessions = active.len() as u64;
    Ok(out)
}

/// Tracked sessions whose id or key contains `search` (case-insensitive; all when empty), newest first.
pub async fn sessions(store: &dyn Store, search: &str, limit: usize) -> StoreResult<Vec<SessionSummary>> {
    let needle = search.trim().to_lowercase();
    let mut list = report::sessions(store).await?;
    list.retain(|s| {
        needle.is_empty() || s.session.to_lowercase().contains(&needle) || s.key.to_lowercase().contains(&needle)
    });
    if limit > 0 {
        list.truncate(limit);
    }
    Ok(list)
}

/// Where a miss's prefix broke: item `position` of `field`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Break {
    pub position: Option<usize>,
    /// `input`, `instructions`, `tools` or `model`.
    pub field: String,
}

/// One turn of a session's detail.
#[derive(Debug, Clone, Serialize)]
pub struct TurnDetail {
    #[serde(flatten)]
    pub row: TurnRow,
    pub cached_share: Option<f64>,
    /// True for a miss: an outcome other than `hit` and `partial` (no outcome, no usage: not a miss).
    pub miss: bool,
    /// For `prefix-changed@k:field` (or a `rewrite@k` classification), where the prefix broke.
    pub prefix_break: Option<Break>,
}

/// One member of a lineage.
#[derive(Debug, Clone, Serialize)]
pub struct LineageNode {
    pub session: String,
    /// `root` or `fork` (subagents and explicit forks are forks of their parent's root).
    pub role: &'static str,
    pub fork: Option<u64>,
    pub turns: usize,
    pub key: String,
}

/// A session's lineage: its root key, the root and every fork tracked under it, and the namespace the
/// session routed with, if any.
#[derive(Debug, Clone, Serialize)]
pub struct LineageTree {
    pub root_key: String,
    pub members: Vec<LineageNode>,
    pub namespace: Option<String>,
}

/// `sessions show` and the session page.
#[derive(Debug, Clone, Serialize)]
pub struct SessionDetail {
    pub session: String,
    pub turns: Vec<TurnDetail>,
    pub lineage: LineageTree,
}

/// Where a miss broke the prefix, from its outcome (`prefix-changed@3:tools`) or classification (`rewrite@3`).
pub fn prefix_break(row: &TurnRow) -> Option<Break> {
    if let Some(rest) = row.outcome.as_deref().and_then(|o| o.strip_prefix("prefix-changed@")) {
        let (k, field) = rest.split_once(':').unwrap_or((rest, "input"));
        return Some(Break { position: k.parse().ok(), field: field.to_owned() });
    }
    let k = row.classification.strip_prefix("rewrite@")?;
    Some(Break { position: k.parse().ok(), field: "input".to_owned() })
}

/// The namespace name of a `cache_ns-<name>-p<k>` key.
pub fn namespace_of(key: &str) -> Option<String> {
    let rest = key.strip_prefix("cache_ns-")?;
    let (name, _) = rest.rsplit_once("-p")?;
    Some(name.to_owned())
}

async fn lineage_of(store: &dyn Store, session: &str) -> StoreResult<Option<Lineage>> {
    Ok(store.get(LINEAGE_NS, session).await?.and_then(|b| serde_json::from_slice(&b).ok()))
}

/// One session's turns and lineage; `None` when the session has no tracked turn.
pub async fn session(store: &dyn Store, id: &str) -> StoreResult<Option<SessionDetail>> {
    let rows = report::turns(store, id).await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let namespace = rows.iter().find_map(|r| namespace_of(&r.key));
    let own = lineage_of(store, id).await?;
    let root_key = own.as_ref().map_or_else(|| first.key.clone(), |l| l.root.clone());
    let mut members = Vec::new();
    for s in report::sessions(store).await? {
        let lineage = if s.session == id { own.clone() } else { lineage_of(store, &s.session).await? };
        let node = match lineage {
            Some(Lineage { root, fork: Some(n) }) if root == root_key => {
                LineageNode { session: s.session, role: "fork", fork: Some(n), turns: s.turns, key: s.key }
            }
            Some(Lineage { root, fork: None }) if root == root_key => {
                LineageNode { session: s.session, role: "root", fork: None, turns: s.turns, key: s.key }
            }
            None if s.key == root_key || (s.session == id && own.is_none()) => {
                LineageNode { session: s.session, role: "root", fork: None, turns: s.turns, key: s.key }
            }
            _ => continue,
        };
        members.push(node);
    }
    members.sort_by(|a, b| a.fork.cmp(&b.fork).then_with(|| a.session.cmp(&b.session)));
    let turns = rows
        .into_iter()
        .map(|row| TurnDetail {
            cached_share: match (row.input_tokens, row.cached_tokens) {
                (Some(i), Some(c)) => share(c, i),
                _ => None,
            },
            miss: row.outcome.as_deref().is_some_and(|o| o != "hit" && o != "partial"),
            prefix_break: prefix_break(&row),
            row,
        })
        .collect();
    Ok(Some(SessionDetail { session: id.to_owned(), turns, lineage: LineageTree { root_key, members, namespace } }))
}

/// One task of a project's graph.
#[derive(Debug, Clone, Serialize)]
pub struct TaskNode {
    pub id: String,
    pub title: String,
    pub status: &'static str,
    pub depends_on: Vec<String>,
}

/// One project: its task graph, drift events and recent roll-ups (newest last, at most 20 each).
#[derive(Debug, Clone, Serialize)]
pub struct Project {
    pub root: String,
    pub tasks: Vec<TaskNode>,
    pub drift_events: Vec<serde_json::Value>,
    pub rollups: Vec<serde_json::Value>,
    pub milestones: Vec<serde_json::Value>,
}

/// A session digest written by `codex-bridge sessions digest`.
#[derive(Debug, Clone, Serialize)]
pub struct DigestFile {
    pub name: String,
    pub modified_ms: Option<i64>,
    pub bytes: u64,
}

/// Every project the journal knows, plus the digests under `DATA_DIR/digests` (newest first, at most 50).
#[derive(Debug, Clone, Serialize)]
pub struct Projects {
    pub projects: Vec<Project>,
    pub digests: Vec<DigestFile>,
}

fn tail<T: Serialize>(items: &[T], n: usize) -> Vec<serde_json::Value> {
    items[items.len().saturating_sub(n)..].iter().filter_map(|i| serde_json::to_value(i).ok()).collect()
}

/// Reads project state files (blocking file I/O: call it off the async workers).
pub fn projects(data_dir: &Path) -> Projects {
    let projects = bridge_journal::project::all_projects(data_dir)
        .into_iter()
        .map(|(_, state)| Project {
            root: state.root.clone(),
            tasks: state
                .tasks
                .tasks
                .iter()
                .map(|t| TaskNode {
                    id: t.id.clone(),
                    title: t.title.clone(),
                    status: t.status.as_str(),
                    depends_on: t.depends_on.clone(),
                })
                .collect(),
            drift_events: tail(&state.drift_events, 20),
            rollups: tail(&state.rollups, 20),
            milestones: tail(&state.milestones, 20),
        })
        .collect();
    let mut digests: Vec<DigestFile> = std::fs::read_dir(data_dir.join("digests"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let modified_ms = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64);
            meta.is_file().then(|| DigestFile {
                name: e.file_name().to_string_lossy().into_owned(),
                modified_ms,
                bytes: meta.len(),
            })
        })
        .collect();
    digests.sort_by_key(|d| std::cmp::Reverse(d.modified_ms));
    digests.truncate(50);
    Projects { projects, digests }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_store::MemoryStore;

    fn usage(ts: i64, status: u16, input: Option<u64>, cached: Option<u64>, model: &str) -> UsageRecord {
        UsageRecord {
            request_id: format!("r{ts}"),
            ts_ms: ts,
            route: "/v1/responses".into(),
            status,
            streamed: true,
            model: Some(model.into()),
            session_id: Some("s".into()),
            cache_key: None,
            client: None,
            input_tokens: input,
            cached_tokens: cached,
            cache_write_tokens: None,
            output_tokens: input.map(|_| 5),
            reasoning_tokens: None,
            total_tokens: None,
        }
    }

    #[tokio::test]
    async fn unknown_stays_unknown_and_share_uses_input_as_denominator() {
        let store = MemoryStore::default();
        let empty = overview(&store, Window { now_ms: 1000, span_ms: Some(1000), buckets: 4 }).await.unwrap();
        assert_eq!((empty.totals.input_tokens, empty.totals.cached_share, empty.error_rate), (None, None, None));
        assert_eq!(empty.series.len(), 4);
        store.record_usage(&usage(100, 200, Some(1000), Some(750), "a")).await.unwrap();
        store.record_usage(&usage(900, 200, Some(1000), None, "b")).await.unwrap();
        store.record_usage(&usage(950, 502, None, None, "b")).await.unwrap();
        let o = overview(&store, Window { now_ms: 1000, span_ms: Some(1000), buckets: 4 }).await.unwrap();
        assert_eq!(o.totals.requests, 3);
        assert_eq!(o.totals.input_tokens, Some(2000));
        assert_eq!(o.totals.cached_tokens, Some(750));
        assert_eq!(o.totals.cached_share, Some(0.75), "the row without a cached count is not a 0% row");
        assert_eq!(o.totals.cache_write_tokens, None);
        assert_eq!(o.totals.rows_without_usage, 1);
        assert_eq!(o.by_model["b"].cached_share, None);
        assert_eq!(o.series.iter().map(|b| b.tokens.requests).collect::<Vec<_>>(), [1, 0, 0, 2]);
        assert_eq!(o.series[1].tokens.cached_share, None);
        assert_eq!(o.errors.len(), 1);
        assert_eq!((o.errors[0].status, o.errors[0].kind), (502, "bad gateway"));
        assert_eq!(o.active_sessions, 1);
        assert_eq!(o.transports["http-sse"], 3);
        let old = overview(&store, Window { now_ms: 1000, span_ms: Some(500), buckets: 1 }).await.unwrap();
        assert_eq!(old.totals.requests, 2);
    }

    #[test]
    fn prefix_breaks_and_namespaces() {
        let mut row: TurnRow =
            serde_json::from_value(serde_json::json!({"ts_ms": 1, "request_id": "r", "key": "cache_ns-team-x-p2",
            "key_kind": "namespace", "model": null, "client": null, "items": 3, "classification": "append",
            "input_tokens": 10, "cached_tokens": 0, "outcome": "prefix-changed@3:tools"}))
            .unwrap();
        assert_eq!(prefix_break(&row), Some(Break { position: Some(3), field: "tools".into() }));
        row.outcome = Some("unexplained".into());
        row.classification = "rewrite@2".into();
        assert_eq!(prefix_break(&row), Some(Break { position: Some(2), field: "input".into() }));
        assert_eq!(namespace_of(&row.key).as_deref(), Some("team-x"));
        assert_eq!(namespace_of("cache_abc"), None);
    }
}
