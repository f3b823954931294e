//! Redis backend, for several bridge replicas sharing one store.
//!
//! Every key lives under [`PREFIX`] (layout in the crate README):
//! - `codex-bridge:kv:{ns}:{key}`: a string, TTL native (`PX`); `:` and `%` in `ns` are
//!   percent-encoded so namespaces cannot run into each other.
//! - `codex-bridge:ord:{scope}`: a hash member → ordinal.
//! - `codex-bridge:log:{name}`: a sorted set scored by `seq`, members `"{seq}:{ts_ms}:{body}"`.
//! - `codex-bridge:usage:seq`, `codex-bridge:usage:all`, `codex-bridge:usage:session:{id}`: a
//!   counter and sorted sets scored by `ts_ms`, members a zero-padded recording number plus the
//!   record's JSON.
//!
//! Invariants: reads (`GET`, `SCAN`, `ZRANGEBYSCORE`, `ZREVRANGEBYSCORE`) go over their own connection: one
//! multiplexed connection answers in order, so a read sent after a large `MULTI`/`EXEC` pipeline would wait
//! until all of it was sent and answered; writes keep theirs, in order. Read-modify-writes run as Lua scripts ([`scripts`]), which Redis executes
//! atomically; a batch is one `MULTI`/`EXEC` pipeline (its scripts sent with `EVAL`); key listings use
//! `SCAN`, never `KEYS`; error messages show the URL without its
//! password and never echo a reply (replies may hold stored values).

mod scripts;

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, ErrorKind, RedisError, Value};

use crate::clock::ttl_ms;
use crate::{LogEntry, Store, StoreError, StoreResult, UsageQuery, UsageRecord, WriteOp};

/// Prefix of every key this backend writes.
const PREFIX: &str = "codex-bridge:";

/// Width of the recording number in front of a usage member; keeps lexical order = recording order.
const USAGE_SEQ_WIDTH: usize = 20;

/// The Redis store. Cloning shares the (auto-reconnecting) connections.
#[derive(Clone)]
pub struct RedisStore {
    /// Writes (commands, scripts, batch pipelines), in the order they are sent.
    conn: ConnectionManager,
    /// Reads, never queued behind a write pipeline.
    reads: ConnectionManager,
    /// The URL without password, for messages.
    shown_url: String,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore").field("url", &self.shown_url).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (`redis://[USER:PASSWORD@]HOST:PORT[/DB]`) and checks the server answers.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let shown_url = redact_url(url);
        let fail = |what: &str, e: RedisError| {
            let mut msg = format!("{what} {shown_url}: {}", safe_message(&e));
            if let Some(password) = password_of(url) {
                msg = msg.replace(password, "***");
            }
            StoreError::Redis(msg)
        };
        let client = redis::Client::open(url).map_err(|e| fail("invalid URL", e))?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        let conn = ConnectionManager::new_with_config(client.clone(), config.clone())
            .await
            .map_err(|e| fail("cannot connect to", e))?;
        let reads =
            ConnectionManager::new_with_config(client, config).await.map_err(|e| fail("cannot connect to", e))?;
        Ok(Self { conn, reads, shown_url })
    }

    /// Runs one write command.
    async fn query<T: redis::FromRedisValue>(&self, op: &str, cmd: &Cmd) -> StoreResult<T> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn).await.map_err(|e| {
            self.dropped(&e, &self.reads);
            self.error(op, &e)
        })
    }

    /// Runs one read command on the read connection. A read that finds its connection dropped (a restarted
    /// server) is sent once more on the reconnected connection: it is idempotent, and otherwise the second
    /// connection's first call after a recovery would fail and count as a second outage.
    async fn read<T: redis::FromRedisValue>(&self, op: &str, cmd: &Cmd) -> StoreResult<T> {
        let mut conn = self.reads.clone();
        match cmd.query_async(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) if e.is_connection_dropped() => {
                self.dropped(&e, &self.conn);
                cmd.query_async(&mut conn).await.map_err(|e| self.error(op, &e))
            }
            Err(e) => Err(self.error(op, &e)),
        }
    }

    /// When one connection finds the server gone, pings `other` so it notices too and reconnects now,
    /// rather than failing its own next call after the server is back.
    fn dropped(&self, e: &RedisError, other: &ConnectionManager) {
        if !e.is_connection_dropped() {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let mut other = other.clone();
            handle.spawn(async move {
                let _: Result<Value, _> = redis::cmd("PING").query_async(&mut other).await;
            });
        }
    }

    /// A [`StoreError::Redis`] for a failed `op`.
    fn error(&self, op: &str, e: &RedisError) -> StoreError {
        StoreError::Redis(format!("{op} on {}: {}", self.shown_url, safe_message(e)))
    }

    /// All keys matching the glob `pattern`, sorted, via `SCAN`.
    async fn scan(&self, pattern: &str) -> StoreResult<BTreeSet<String>> {
        let mut found = BTreeSet::new();
        let mut cursor = String::from("0");
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(&cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(1000);
            let (next, batch): (String, Vec<Vec<u8>>) = self.read("SCAN", &cmd).await?;
            // We only write UTF-8 key names; anything else is not ours.
            found.extend(batch.into_iter().filter_map(|k| String::from_utf8(k).ok()));
            if next == "0" {
                return Ok(found);
            }
            cursor = next;
        }
    }
}

/// The error text, unless it may quote a reply (type/parse errors print the offending value).
fn safe_message(e: &RedisError) -> String {
    match e.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => "unexpected reply type".to_owned(),
        _ => e.to_string(),
    }
}

/// `url` with any `user:password@` part removed.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparseable URL>".to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

/// The password in `url`, if any (`redis://[user]:password@host`).
fn password_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let password = authority.rsplit_once('@')?.0.split_once(':')?.1;
    (!password.is_empty()).then_some(password)
}

/// `s` with Redis glob metacharacters escaped, for `SCAN MATCH`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The key prefix of namespace `ns`, ending in `:`.
fn kv_prefix(ns: &str) -> String {
    format!("{PREFIX}kv:{}:", ns.replace('%', "%25").replace(':', "%3A"))
}

fn kv_key(ns: &str, key: &str) -> String {
    format!("{}{key}", kv_prefix(ns))
}

fn log_key(log: &str) -> String {
    format!("{PREFIX}log:{log}")
}

fn usage_all_key() -> String {
    format!("{PREFIX}usage:all")
}

fn usage_session_key(session: &str) -> String {
    format!("{PREFIX}usage:session:{session}")
}

/// `SET key value [NX] [PX ttl]`.
fn set_cmd(key: &str, value: &[u8], ttl: Option<Duration>, only_if_absent: bool) -> Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    if only_if_absent {
        cmd.arg("NX");
    }
    if let Some(ttl) = ttl {
        cmd.arg("PX").arg(ttl_ms(ttl));
    }
    cmd
}

/// The keys of a usage row's script: the recording counter, the all-rows set, the session's set if any.
fn usage_keys(record: &UsageRecord) -> Vec<String> {
    let mut keys = vec![format!("{PREFIX}usage:seq"), usage_all_key()];
    if let Some(session) = &record.session_id {
        keys.push(usage_session_key(session));
    }
    keys
}

/// A usage row's JSON member payload.
fn usage_json(record: &UsageRecord) -> StoreResult<String> {
    serde_json::to_string(record).map_err(|e| StoreError::Redis(format!("encode usage row: {e}")))
}

/// Parses a log member `"{seq}:{ts_ms}:{body}"`.
fn parse_log_member(member: &[u8]) -> StoreResult<LogEntry> {
    let corrupt = || StoreError::Corrupt("malformed log entry in redis".to_owned());
    let text = std::str::from_utf8(member).map_err(|_| corrupt())?;
    let mut parts = text.splitn(3, ':');
    let (Some(seq), Some(ts_ms), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(corrupt());
    };
    Ok(LogEntry {
        seq: seq.parse().map_err(|_| corrupt())?,
        ts_ms: ts_ms.parse().map_err(|_| corrupt())?,
        body: body.to_owned(),
    })
}

/// Parses a usage member: recording number, then the record's JSON.
fn parse_usage_member(member: &[u8]) -> StoreResult<UsageRecord> {
    let json = member.get(USAGE_SEQ_WIDTH..).unwrap_or_default();
    // serde_json's message can quote the input; report only where it failed.
    serde_json::from_slice(json).map_err(|e| {
        StoreError::Corrupt(format!("usage row in redis is not valid JSON (line {}, column {})", e.line(), e.column()))
    })
}

#[async_trait::async_trait]
impl Store for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn get(&self, ns: &str, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read("GET", redis::cmd("GET").arg(kv_key(ns, key))).await
    }

    async fn put(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<()> {
        let _: Value = self.query("SET", &set_cmd(&kv_key(ns, key), value, ttl, false)).await?;
        Ok(())
    }

    async fn put_if_absent(&self, ns: &str, key: &str, value: &[u8], ttl: Option<Duration>) -> StoreResult<bool> {
        let reply: Value = self.query("SET NX", &set_cmd(&kv_key(ns, key), value, ttl, true)).await?;
        Ok(reply != Value::Nil)
    }

    async fn delete(&self, ns: &str, key: &str) -> StoreResult<()> {
        let _: Value = self.query("DEL", redis::cmd("DEL").arg(kv_key(ns, key))).await?;
        Ok(())
    }

    async fn keys(&self, ns: &str, prefix: &str, limit: usize) -> StoreResult<Vec<String>> {
        let ns_prefix = kv_prefix(ns);
        let found = self.scan(&format!("{}{}*", glob_escape(&ns_prefix), glob_escape(prefix))).await?;
        let keys = found.into_iter().filter_map(|k| k.strip_prefix(&ns_prefix).map(str::to_owned));
        Ok(if limit == 0 { keys.collect() } else { keys.take(limit).collect() })
    }

    async fn incr(&self, ns: &str, key: &str, by: i64) -> StoreResult<i64> {
        self.query("INCRBY", redis::cmd("INCRBY").arg(kv_key(ns, key)).arg(by)).await
    }

    async fn assign_ordinal(&self, scope: &str, member: &str) -> StoreResult<u64> {
        let mut conn = self.conn.clone();
        let key = format!("{PREFIX}ord:{scope}");
        scripts::ASSIGN_ORDINAL
            .key(key)
            .arg(member)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error("assign_ordinal", &e))
    }

    async fn append(&self, log: &str, ts_ms: i64, body: &str) -> StoreResult<u64> {
        let mut conn = self.conn.clone();
        scripts::APPEND
            .key(log_key(log))
            .arg(ts_ms)
            .arg(body)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error("append", &e))
    }

    async fn read_log(&self, log: &str, after: u64, limit: usize) -> StoreResult<Vec<LogEntry>> {
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(log_key(log)).arg(format!("({after}")).arg("+inf");
        if limit != 0 {
            cmd.arg("LIMIT").arg(0).arg(limit);
        }
        let members: Vec<Vec<u8>> = self.read("ZRANGEBYSCORE", &cmd).await?;
        members.iter().map(|m| parse_log_member(m)).collect()
    }

    async fn logs(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let key_prefix = log_key("");
        let found = self.scan(&format!("{}{}*", glob_escape(&key_prefix), glob_escape(prefix))).await?;
        Ok(found.into_iter().filter_map(|k| k.strip_prefix(&key_prefix).map(str::to_owned)).collect())
    }

    async fn record_usage(&self, record: &UsageRecord) -> StoreResult<()> {
        let json = usage_json(record)?;
        let mut conn = self.conn.clone();
        let mut invocation = scripts::RECORD_USAGE.prepare_invoke();
        for key in usage_keys(record) {
            invocation.key(key);
        }
        let _: Value = invocation
            .arg(record.ts_ms)
            .arg(json)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error("record_usage", &e))?;
        Ok(())
    }

    async fn usage(&self, query: &UsageQuery) -> StoreResult<Vec<UsageRecord>> {
        let key = query.session_id.as_deref().map_or_else(usage_all_key, usage_session_key);
        let mut cmd = redis::cmd("ZREVRANGEBYSCORE");
        cmd.arg(key).arg("+inf").arg("-inf");
        if query.limit != 0 {
            cmd.arg("LIMIT").arg(0).arg(query.limit);
        }
        let members: Vec<Vec<u8>> = self.read("ZREVRANGEBYSCORE", &cmd).await?;
        members.iter().map(|m| parse_usage_member(m)).collect()
    }

    async fn write_batch(&self, ops: &[WriteOp]) -> StoreResult<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for op in ops {
            match op {
                WriteOp::Put { ns, key, value, ttl } => {
                    pipe.add_command(set_cmd(&kv_key(ns, key), value, *ttl, false)).ignore();
                }
                WriteOp::PutIfAbsent { ns, key, value, ttl } => {
                    pipe.add_command(set_cmd(&kv_key(ns, key), value, *ttl, true)).ignore();
                }
                WriteOp::Append { log, ts_ms, body } => {
                    pipe.cmd("EVAL").arg(scripts::APPEND_SRC).arg(1).arg(log_key(log)).arg(*ts_ms).arg(body).ignore();
                }
                WriteOp::Usage(record) => {
                    let keys = usage_keys(record);
                    pipe.cmd("EVAL")
                        .arg(scripts::RECORD_USAGE_SRC)
                        .arg(keys.len())
                        .arg(keys)
                        .arg(record.ts_ms)
                        .arg(usage_json(record)?)
                        .ignore();
                }
            }
        }
        let mut conn = self.conn.clone();
        pipe.exec_async(&mut conn).await.map_err(|e| self.error("write_batch", &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_drops_credentials() {
        assert_eq!(redact_url("redis://user:hunter2@10.0.0.1:6379/2"), "redis://10.0.0.1:6379/2");
        assert_eq!(redact_url("redis://:hunter2@host"), "redis://host");
        assert_eq!(redact_url("redis://host:1"), "redis://host:1");
        assert_eq!(password_of("redis://user:hunter2@h/0"), Some("hunter2"));
        assert_eq!(password_of("redis://h:1/0"), None);
    }

    #[test]
    fn glob_escape_quotes_metacharacters() {
        assert_eq!(glob_escape(r"a*b?c[d]e\f"), r"a\*b\?c\[d\]e\\f");
    }

    #[test]
    fn namespaces_cannot_collide() {
        assert_ne!(kv_key("a", "b:c"), kv_key("a:b", "c"));
    }
}
