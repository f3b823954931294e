//! Lua scripts for the Redis backend's read-modify-writes. Redis runs a script as one atomic
//! step, so concurrent callers (any number of bridge replicas) cannot interleave inside one.
//!
//! Invariants: ordinals are dense per scope (next = number of members + 1, members are never
//! removed); log `seq` is the highest score + 1; the usage recording number only grows. The sources of the
//! scripts used in batches are public to the backend so a `MULTI` pipeline can send them with `EVAL` (an
//! `EVALSHA` inside `MULTI` cannot fall back to loading the script).

use std::sync::LazyLock;

use redis::Script;

/// KEYS[1] = ordinal hash, ARGV[1] = member. Returns the member's ordinal, assigning the next
/// one if it has none.
pub(super) static ASSIGN_ORDINAL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local have = redis.call('HGET', KEYS[1], ARGV[1])
        if have then return tonumber(have) end
        local next = redis.call('HLEN', KEYS[1]) + 1
        redis.call('HSET', KEYS[1], ARGV[1], next)
        return next
        ",
    )
});

/// KEYS[1] = log sorted set, ARGV[1] = ts_ms, ARGV[2] = body. Adds `"{seq}:{ts_ms}:{body}"`
/// scored by `seq` and returns `seq`.
pub(super) const APPEND_SRC: &str = r"
        local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
        local seq = 1
        if last[2] then seq = tonumber(last[2]) + 1 end
        redis.call('ZADD', KEYS[1], seq, string.format('%d', seq) .. ':' .. ARGV[1] .. ':' .. ARGV[2])
        return seq
        ";

/// [`APPEND_SRC`], invoked by hash.
pub(super) static APPEND: LazyLock<Script> = LazyLock::new(|| Script::new(APPEND_SRC));

/// KEYS[1] = recording counter, KEYS[2] = all-rows sorted set, KEYS[3] (optional) = the session's
/// sorted set; ARGV[1] = ts_ms (the score), ARGV[2] = record JSON. The member is the zero-padded
/// recording number followed by the JSON, so rows with equal `ts_ms` sort by recording order.
pub(super) const RECORD_USAGE_SRC: &str = r"
        local n = redis.call('INCR', KEYS[1])
        local member = string.format('%020d', n) .. ARGV[2]
        redis.call('ZADD', KEYS[2], ARGV[1], member)
        if KEYS[3] then redis.call('ZADD', KEYS[3], ARGV[1], member) end
        return n
        ";

/// [`RECORD_USAGE_SRC`], invoked by hash.
pub(super) static RECORD_USAGE: LazyLock<Script> = LazyLock::new(|| Script::new(RECORD_USAGE_SRC));
