//! Wall-clock time for records and rates. The one place the bridge reads the system clock for timestamps
//! (durations use `Instant` where they are measured).
//!
//! Invariant: a served bridge always reads the system clock. A benchmark that replays a recorded timeline
//! through an in-process bridge (`bench cache`) may pin the time to each request's recorded time with
//! [`replay_at`], so rates and idle times follow the timeline the emulator sees instead of the compressed
//! replay.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The pinned replay time in ms, 0 when the system clock is used.
static REPLAY_MS: AtomicI64 = AtomicI64::new(0);

/// Unix time in milliseconds (0 if the clock is before 1970), or the pinned replay time.
pub fn now_ms() -> i64 {
    match REPLAY_MS.load(Ordering::Relaxed) {
        0 => SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0),
        pinned => pinned,
    }
}

/// Pins [`now_ms`] to `ms` for a replay (`None` goes back to the system clock). Benchmarks only.
pub fn replay_at(ms: Option<i64>) {
    REPLAY_MS.store(ms.unwrap_or(0), Ordering::Relaxed);
}
