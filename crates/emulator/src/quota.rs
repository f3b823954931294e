//! Plan quota: a token budget per 5-hour (primary) and weekly (secondary) window on the emulator clock,
//! reported as Codex's rate-limit headers, the WebSocket `codex.rate_limits` event and
//! `GET /backend-api/wham/usage`, and enforced with `usage_limit_reached`.
//!
//! Invariants: every report is built from one [`QuotaSnapshot`], so headers, event and usage endpoint
//! agree for the same state; a window starts at its first request and rolls over (used = 0) once
//! `window` has passed since its start; a request is refused only when a window's budget is already
//! spent (the request that crosses the budget is served), and a refused request is not charged; without
//! a budget a window reports 0% and is never refused.

use std::sync::Mutex;

use serde_json::{Value, json};

/// Primary window: 5 hours.
pub const PRIMARY_WINDOW_MS: u64 = 5 * 60 * 60 * 1000;
/// Secondary window: 7 days.
pub const SECONDARY_WINDOW_MS: u64 = 7 * 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, Copy)]
struct Window {
    len_ms: u64,
    budget: Option<u64>,
    start_ms: Option<u64>,
    used: u64,
}

impl Window {
    fn roll(&mut self, now_ms: u64) {
        if self.start_ms.is_some_and(|s| now_ms.saturating_sub(s) >= self.len_ms) {
            self.start_ms = None;
            self.used = 0;
        }
    }

    fn snap(&self, now_ms: u64) -> WindowSnapshot {
        let start = self.start_ms.unwrap_or(now_ms);
        let used_percent = match self.budget {
            Some(b) if b > 0 => (self.used as f64 * 100.0 / b as f64).min(100.0),
            Some(_) => 100.0,
            None => 0.0,
        };
        WindowSnapshot {
            used_percent: (used_percent * 10.0).round() / 10.0,
            window_minutes: self.len_ms / 60_000,
            reset_at_s: start.saturating_add(self.len_ms) / 1000,
            now_s: now_ms / 1000,
            spent: self.budget.is_some_and(|b| self.used >= b),
        }
    }
}

/// One window as reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowSnapshot {
    /// Share of the budget used, 0-100 (one decimal).
    pub used_percent: f64,
    /// Window length in minutes (300 or 10080).
    pub window_minutes: u64,
    /// When the window resets (unix seconds).
    pub reset_at_s: u64,
    /// The time of the snapshot (unix seconds).
    pub now_s: u64,
    /// The budget is spent.
    pub spent: bool,
}

impl WindowSnapshot {
    fn wham(&self) -> Value {
        json!({"used_percent": self.used_percent, "limit_window_seconds": self.window_minutes * 60,
            "reset_after_seconds": self.reset_at_s.saturating_sub(self.now_s), "reset_at": self.reset_at_s})
    }

    fn event(&self) -> Value {
        json!({"used_percent": self.used_percent, "window_minutes": self.window_minutes, "reset_at": self.reset_at_s})
    }
}

/// Both windows at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaSnapshot {
    /// Plan type (`plus` by default).
    pub plan_type: String,
    /// The 5-hour window.
    pub primary: WindowSnapshot,
    /// The weekly window.
    pub secondary: WindowSnapshot,
}

impl QuotaSnapshot {
    /// The spent window with the latest reset, if any (the time a refused client may retry).
    pub fn exhausted_until(&self) -> Option<u64> {
        [self.primary, self.secondary].iter().filter(|w| w.spent).map(|w| w.reset_at_s).max()
    }

    /// Codex's rate-limit headers (codex-wire.md §5: `x-codex-{primary,secondary}-{used-percent,
    /// window-minutes,reset-at}`).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("x-codex-primary-used-percent", self.primary.used_percent.to_string()),
            ("x-codex-primary-window-minutes", self.primary.window_minutes.to_string()),
            ("x-codex-primary-reset-at", self.primary.reset_at_s.to_string()),
            ("x-codex-secondary-used-percent", self.secondary.used_percent.to_string()),
            ("x-codex-secondary-window-minutes", self.secondary.window_minutes.to_string()),
            ("x-codex-secondary-reset-at", self.secondary.reset_at_s.to_string()),
        ]
    }

    /// The headers as a JSON object (the `headers` of a wrapped WebSocket error).
    pub fn headers_json(&self) -> Value {
        Value::Object(self.headers().into_iter().map(|(k, v)| (k.to_owned(), Value::String(v))).collect())
    }

    /// The WebSocket `codex.rate_limits` event.
    pub fn event(&self) -> Value {
        let reached = self.exhausted_until().is_some();
        json!({"type": "codex.rate_limits", "plan_type": self.plan_type,
            "rate_limits": {"allowed": !reached, "limit_reached": reached,
                "primary": self.primary.event(), "secondary": self.secondary.event()},
            "credits": null})
    }

    /// `GET /backend-api/wham/usage`.
    pub fn wham_usage(&self) -> Value {
        let reached = self.exhausted_until().is_some();
        json!({"plan_type": self.plan_type,
            "rate_limit": {"allowed": !reached, "limit_reached": reached,
                "primary_window": self.primary.wham(), "secondary_window": self.secondary.wham()},
            "credits": {"has_credits": false, "unlimited": false, "balance": null}})
    }
}

/// The plan's two windows.
#[derive(Debug)]
pub struct Quota {
    plan_type: String,
    windows: Mutex<[Window; 2]>,
}

impl Quota {
    /// Windows with these budgets (tokens; `None` = unlimited).
    pub fn new(plan_type: &str, primary: Option<u64>, secondary: Option<u64>) -> Self {
        let w = |len_ms, budget| Window { len_ms, budget, start_ms: None, used: 0 };
        Self {
            plan_type: plan_type.to_owned(),
            windows: Mutex::new([w(PRIMARY_WINDOW_MS, primary), w(SECONDARY_WINDOW_MS, secondary)]),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [Window; 2]> {
        self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn snapshot_of(&self, w: &mut [Window; 2], now_ms: u64) -> QuotaSnapshot {
        for win in w.iter_mut() {
            win.roll(now_ms);
        }
        QuotaSnapshot { plan_type: self.plan_type.clone(), primary: w[0].snap(now_ms), secondary: w[1].snap(now_ms) }
    }

    /// The state at `now_ms`.
    pub fn snapshot(&self, now_ms: u64) -> QuotaSnapshot {
        let mut w = self.lock();
        self.snapshot_of(&mut w, now_ms)
    }

    /// Admit a request at `now_ms`: `Err(snapshot)` when a budget is spent.
    pub fn admit(&self, now_ms: u64) -> Result<(), QuotaSnapshot> {
        let snap = self.snapshot(now_ms);
        if snap.exhausted_until().is_some() { Err(snap) } else { Ok(()) }
    }

    /// Charge `tokens` at `now_ms` (starting windows that have not started) and return the new state.
    pub fn charge(&self, tokens: u64, now_ms: u64) -> QuotaSnapshot {
        let mut w = self.lock();
        for win in w.iter_mut() {
            win.roll(now_ms);
            win.start_ms.get_or_insert(now_ms);
            win.used = win.used.saturating_add(tokens);
        }
        self.snapshot_of(&mut w, now_ms)
    }

    /// Forget all usage.
    pub fn reset(&self) {
        for win in self.lock().iter_mut() {
            win.start_ms = None;
            win.used = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_windows_roll_and_refuse_when_spent() {
        let q = Quota::new("plus", Some(100), Some(1000));
        assert!(q.admit(0).is_ok());
        let s = q.charge(60, 1_000);
        assert_eq!((s.primary.used_percent, s.secondary.used_percent), (60.0, 6.0));
        assert_eq!(s.primary.reset_at_s, (1_000 + PRIMARY_WINDOW_MS) / 1000);
        q.charge(60, 2_000);
        let refused = q.admit(3_000).unwrap_err();
        assert_eq!(refused.exhausted_until(), Some((1_000 + PRIMARY_WINDOW_MS) / 1000));
        assert_eq!(refused.primary.used_percent, 100.0);
        // after 5 hours the primary window rolls over; the weekly one keeps counting
        let later = q.snapshot(1_000 + PRIMARY_WINDOW_MS);
        assert_eq!((later.primary.used_percent, later.secondary.used_percent), (0.0, 12.0));
        assert!(q.admit(1_000 + PRIMARY_WINDOW_MS).is_ok());
    }

    #[test]
    fn unlimited_reports_zero() {
        let q = Quota::new("plus", None, None);
        let s = q.charge(1 << 40, 5);
        assert_eq!(s.primary.used_percent, 0.0);
        assert!(s.exhausted_until().is_none());
    }
}
