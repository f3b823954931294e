//! The `usage` table: one row per recorded request, one column per [`UsageRecord`] field.
//!
//! Invariants: a `None` field is stored as SQL `NULL` and read back as `None` (never 0); rows come
//! back newest first by `ts_ms`, then by insertion (`id`), latest first.

use rusqlite::{Connection, Row, params};

use super::Failure;
use crate::{UsageQuery, UsageRecord};

const COLUMNS: &str = "request_id, ts_ms, route, status, streamed, model, session_id, cache_key, client,
     input_tokens, cached_tokens, cache_write_tokens, output_tokens, reasoning_tokens, total_tokens";

/// Appends one row.
pub(super) fn insert(conn: &Connection, r: &UsageRecord) -> Result<(), Failure> {
    let sql = format!(
        "INSERT INTO usage ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    );
    conn.prepare_cached(&sql)?.execute(params![
        r.request_id,
        r.ts_ms,
        r.route,
        r.status,
        r.streamed,
        r.model,
        r.session_id,
        r.cache_key,
        r.client,
        r.input_tokens,
        r.cached_tokens,
        r.cache_write_tokens,
        r.output_tokens,
        r.reasoning_tokens,
        r.total_tokens,
    ])?;
    Ok(())
}

/// Rows matching `query`, newest first, at most `limit` (SQLite's `-1` = all).
pub(super) fn select(conn: &Connection, query: &UsageQuery, limit: i64) -> Result<Vec<UsageRecord>, Failure> {
    let rows: rusqlite::Result<Vec<UsageRecord>> = match &query.session_id {
        Some(session) => {
            let sql =
                format!("SELECT {COLUMNS} FROM usage WHERE session_id = ?1 ORDER BY ts_ms DESC, id DESC LIMIT ?2");
            conn.prepare_cached(&sql)?.query_map(params![session, limit], from_row)?.collect()
        }
        None => {
            let sql = format!("SELECT {COLUMNS} FROM usage ORDER BY ts_ms DESC, id DESC LIMIT ?1");
            conn.prepare_cached(&sql)?.query_map([limit], from_row)?.collect()
        }
    };
    Ok(rows?)
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<UsageRecord> {
    Ok(UsageRecord {
        request_id: row.get(0)?,
        ts_ms: row.get(1)?,
        route: row.get(2)?,
        status: row.get(3)?,
        streamed: row.get(4)?,
        model: row.get(5)?,
        session_id: row.get(6)?,
        cache_key: row.get(7)?,
        client: row.get(8)?,
        input_tokens: row.get(9)?,
        cached_tokens: row.get(10)?,
        cache_write_tokens: row.get(11)?,
        output_tokens: row.get(12)?,
        reasoning_tokens: row.get(13)?,
        total_tokens: row.get(14)?,
    })
}
