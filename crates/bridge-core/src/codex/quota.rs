//! The ChatGPT plan's quota as the upstream last reported it: the 5-hour (primary) and weekly (secondary)
//! windows' used percent, window length and reset time, the plan and whether a limit was reached.
//!
//! Sources, newest wins: Codex's rate-limit response headers (`x-codex-{primary,secondary}-{used-percent,
//! window-minutes,reset-at|reset-after-seconds}`, `x-codex-plan-type`), the `codex.rate_limits` stream event
//! (WebSocket), and a `usage_limit_reached` error body (`plan_type`, `resets_at`).
//!
//! Invariants: a field the upstream never sent stays `None` (the dashboard shows "unknown", never 0); one
//! observation replaces only the windows it carries; observing is a short lock and no I/O, so it can sit on
//! the request path.

use std::sync::Mutex;

use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::Value;

/// One quota window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QuotaWindow {
    /// Share of the window's budget used, 0-100.
    pub used_percent: f64,
    pub window_minutes: Option<u64>,
    /// When the window resets (Unix seconds).
    pub reset_at_s: Option<i64>,
}

/// What is known about the plan's quota; every field `None` until the upstream says something.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QuotaSnapshot {
    pub plan: Option<String>,
    /// The 5-hour window.
    pub primary: Option<QuotaWindow>,
    /// The weekly window.
    pub secondary: Option<QuotaWindow>,
    pub limit_reached: Option<bool>,
    /// When the newest observation arrived (Unix ms).
    pub observed_ms: Option<i64>,
    /// `headers`, `event` or `usage-limit-error`.
    pub source: Option<&'static str>,
}

/// The bridge's latest quota observation; one per bridge.
#[derive(Debug, Default)]
pub struct QuotaBoard {
    latest: Mutex<QuotaSnapshot>,
}

impl QuotaBoard {
    /// The latest snapshot.
    pub fn snapshot(&self) -> QuotaSnapshot {
        self.latest.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Reads Codex's rate-limit headers of an upstream response; responses without them change nothing.
    pub fn observe_headers(&self, headers: &HeaderMap, now_ms: i64) {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let window = |which: &str| {
            let used = text(&format!("x-codex-{which}-used-percent"))?.parse::<f64>().ok()?;
            let reset_at_s = text(&format!("x-codex-{which}-reset-at")).and_then(|v| v.parse().ok()).or_else(|| {
                text(&format!("x-codex-{which}-reset-after-seconds"))
                    .and_then(|v| v.parse::<i64>().ok())
                    .map(|after| now_ms / 1000 + after)
            });
            Some(QuotaWindow {
                used_percent: used,
                window_minutes: text(&format!("x-codex-{which}-window-minutes")).and_then(|v| v.parse().ok()),
                reset_at_s,
            })
        };
        let (primary, secondary) = (window("primary"), window("secondary"));
        let plan = text("x-codex-plan-type").map(str::to_owned);
        if primary.is_none() && secondary.is_none() && plan.is_none() {
            return;
        }
        self.update(now_ms, "headers", |s| {
            s.primary = primary.or(s.primary);
            s.secondary = secondary.or(s.secondary);
            s.plan = plan.or_else(|| s.plan.take());
        });
    }

    /// Reads a `codex.rate_limits` event (`{"plan_type", "rate_limits": {"limit_reached", "primary":
    /// {"used_percent", "window_minutes", "reset_at"}, "secondary": {...}}}`); other events change nothing.
    pub fn observe_event(&self, event: &Value, now_ms: i64) {
        if event.get("type").and_then(Value::as_str) != Some("codex.rate_limits") {
            return;
        }
        let limits = event.get("rate_limits");
        let window = |which: &str| {
            let w = limits?.get(which)?;
            Some(QuotaWindow {
                used_percent: w.get("used_percent")?.as_f64()?,
                window_minutes: w.get("window_minutes").and_then(Value::as_u64),
                reset_at_s: w.get("reset_at").and_then(Value::as_i64),
            })
        };
        let (primary, secondary) = (window("primary"), window("secondary"));
        let plan = event.get("plan_type").and_then(Value::as_str).map(str::to_owned);
        let reached = limits.and_then(|l| l.get("limit_reached")).and_then(Value::as_bool);
        self.update(now_ms, "event", |s| {
            s.primary = primary.or(s.primary);
            s.secondary = secondary.or(s.secondary);
            s.plan = plan.or_else(|| s.plan.take());
            s.limit_reached = reached.or(s.limit_reached);
        });
    }

    /// Reads an upstream error body: a `usage_limit_reached` marks the limit reached (with its plan).
    pub fn observe_error(&self, status: u16, body: &[u8], now_ms: i64) {
        if status != 429 {
            return;
        }
        let Ok(value) = serde_json::from_slice::<Value>(body) else { return };
        let Some(error) = value.get("error") else { return };
        let kind = error.get("type").or_else(|| error.get("code")).and_then(Value::as_str);
        if kind != Some("usage_limit_reached") {
            return;
        }
        let plan = error.get("plan_type").and_then(Value::as_str).map(str::to_owned);
        self.update(now_ms, "usage-limit-error", |s| {
            s.plan = plan.or_else(|| s.plan.take());
            s.limit_reached = Some(true);
        });
    }

    fn update(&self, now_ms: i64, source: &'static str, edit: impl FnOnce(&mut QuotaSnapshot)) {
        if let Ok(mut s) = self.latest.lock() {
            edit(&mut s);
            s.observed_ms = Some(now_ms);
            s.source = Some(source);
            if source == "headers" && s.limit_reached.is_none() {
                // Headers alone do not say whether a limit is reached; a window at 100% does.
                let full = [s.primary, s.secondary].iter().flatten().any(|w| w.used_percent >= 100.0);
                s.limit_reached = full.then_some(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn nothing_known_until_the_upstream_says_it() {
        let board = QuotaBoard::default();
        board.observe_headers(&HeaderMap::new(), 5);
        assert_eq!(board.snapshot(), QuotaSnapshot::default());
    }

    #[test]
    fn headers_then_an_event_then_a_usage_limit() {
        let board = QuotaBoard::default();
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-codex-primary-used-percent", "12.5"),
            ("x-codex-primary-window-minutes", "300"),
            ("x-codex-primary-reset-at", "1700000000"),
            ("x-codex-secondary-used-percent", "3"),
            ("x-codex-secondary-reset-after-seconds", "60"),
        ] {
            h.insert(k, HeaderValue::from_static(v));
        }
        board.observe_headers(&h, 1_000_000);
        let s = board.snapshot();
        assert_eq!(
            s.primary,
            Some(QuotaWindow { used_percent: 12.5, window_minutes: Some(300), reset_at_s: Some(1_700_000_000) })
        );
        assert_eq!(s.secondary.unwrap().reset_at_s, Some(1060));
        assert_eq!(s.secondary.unwrap().window_minutes, None);
        assert_eq!((s.plan, s.limit_reached, s.source), (None, None, Some("headers")));

        let event = serde_json::json!({"type": "codex.rate_limits", "plan_type": "plus",
            "rate_limits": {"limit_reached": false, "secondary": {"used_percent": 4.0, "window_minutes": 10080, "reset_at": 9}}});
        board.observe_event(&event, 2);
        let s = board.snapshot();
        assert_eq!(s.primary.unwrap().used_percent, 12.5, "the event did not carry the primary window");
        assert_eq!(s.secondary.unwrap().used_percent, 4.0);
        assert_eq!((s.plan.as_deref(), s.limit_reached), (Some("plus"), Some(false)));

        board.observe_error(429, br#"{"error":{"type":"usage_limit_reached","plan_type":"pro","resets_at":5}}"#, 3);
        let s = board.snapshot();
        assert_eq!((s.plan.as_deref(), s.limit_reached, s.observed_ms), (Some("pro"), Some(true), Some(3)));
        board.observe_error(429, br#"{"error":{"type":"rate_limit_exceeded"}}"#, 4);
        assert_eq!(board.snapshot().observed_ms, Some(3));
    }
}
