//! Wall-clock time in Unix milliseconds and TTL deadlines, shared by the SQLite and memory backends.
//!
//! Invariant: a row whose deadline is `<= now_ms()` is expired; a TTL shorter than 1 ms counts as 1 ms,
//! matching Redis `PX`, which refuses 0.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The TTL in whole milliseconds, at least 1, saturating.
pub(crate) fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// The absolute deadline for a TTL starting now, or `None` for no TTL.
pub(crate) fn deadline_ms(ttl: Option<Duration>) -> Option<i64> {
    ttl.map(|t| now_ms().saturating_add(ttl_ms(t)))
}
