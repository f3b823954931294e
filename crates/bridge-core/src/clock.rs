//! Wall-clock time for records and rates. The one place the bridge reads the system clock for timestamps
//! (durations use `Instant` where they are measured).

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
