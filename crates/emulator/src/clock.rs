//! The emulator clock: real time, or a virtual time set by config or by the `x-emulator-time` header.
//!
//! Invariants: every TTL, rate and token-expiry decision reads time through [`Clock`]; once a virtual
//! time has been set the clock stays virtual until [`Clock::set_real`] (so a replayed day of traffic
//! takes seconds). Times are unix milliseconds.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Name of the request header that sets the virtual time (unix ms) for that request and after.
pub const TIME_HEADER: &str = "x-emulator-time";

/// Real or virtual time source.
#[derive(Debug, Default)]
pub struct Clock {
    virtual_ms: Mutex<Option<u64>>,
}

fn real_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Clock {
    /// A clock that starts virtual at `start_ms`, or real when `None`.
    pub fn new(start_ms: Option<u64>) -> Self {
        Self { virtual_ms: Mutex::new(start_ms) }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.virtual_ms.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Current time in unix ms.
    pub fn now_ms(&self) -> u64 {
        (*self.slot()).unwrap_or_else(real_ms)
    }

    /// Whether the clock is virtual.
    pub fn is_virtual(&self) -> bool {
        self.slot().is_some()
    }

    /// Switch to virtual time `ms`.
    pub fn set_ms(&self, ms: u64) {
        *self.slot() = Some(ms);
    }

    /// Advance the clock by `delta_ms` (switching to virtual time if it was real).
    pub fn advance_ms(&self, delta_ms: u64) {
        let mut slot = self.slot();
        let base = (*slot).unwrap_or_else(real_ms);
        *slot = Some(base.saturating_add(delta_ms));
    }

    /// Back to real time.
    pub fn set_real(&self) {
        *self.slot() = None;
    }

    /// The time for one request: the `x-emulator-time` header value if present and valid (which also
    /// sets the virtual clock), else [`Clock::now_ms`].
    pub fn for_request(&self, headers: &http::HeaderMap) -> u64 {
        match headers.get(TIME_HEADER).and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(ms) => {
                self.set_ms(ms);
                ms
            }
            None => self.now_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_when_told() {
        let c = Clock::new(Some(1000));
        assert_eq!(c.now_ms(), 1000);
        c.advance_ms(500);
        assert_eq!(c.now_ms(), 1500);
        let mut h = http::HeaderMap::new();
        h.insert(TIME_HEADER, http::HeaderValue::from_static("9000"));
        assert_eq!(c.for_request(&h), 9000);
        assert_eq!(c.now_ms(), 9000);
        c.set_real();
        assert!(!c.is_virtual());
    }
}
