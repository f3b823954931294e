//! Codex-backend error bodies made useful: `usage_limit_reached` (HTTP 429) gets a message naming the plan
//! and the reset time and a `Retry-After` header; every other upstream error keeps its status and message
//! ([`crate::errors::upstream_error_body`]).

use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Map, Value};

/// The client body for an upstream error; adds `Retry-After` to `headers` for a usage limit.
pub fn map_upstream_error(status: u16, body: &[u8], now_ms: i64, headers: &mut HeaderMap) -> String {
    match usage_limit(body, now_ms) {
        Some((mapped, retry_after)) => {
            headers.insert("retry-after", HeaderValue::from(retry_after));
            mapped
        }
        None => crate::errors::upstream_error_body(status, body),
    }
}

/// `(body, retry-after seconds)` for a `usage_limit_reached` error body.
fn usage_limit(body: &[u8], now_ms: i64) -> Option<(String, u64)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let error = value.get("error")?.as_object()?;
    let kind = error.get("type").or_else(|| error.get("code")).and_then(Value::as_str)?;
    if kind != "usage_limit_reached" {
        return None;
    }
    let now_s = now_ms / 1000;
    let resets_at = error
        .get("resets_at")
        .and_then(Value::as_i64)
        .or_else(|| error.get("resets_in_seconds").and_then(Value::as_i64).map(|s| now_s + s));
    let wait = resets_at.map_or(60, |at| (at - now_s).max(1));
    let plan = error.get("plan_type").and_then(Value::as_str).map(|p| format!(" ({} plan)", p.to_lowercase()));
    let when = match resets_at {
        Some(at) => format!(" It resets at {} (in about {} min).", utc(at), (wait + 59) / 60),
        None => " Try again later.".to_owned(),
    };
    let mut mapped: Map<String, Value> = error.clone();
    mapped.insert(
        "message".to_owned(),
        Value::from(format!("You have hit your ChatGPT usage limit{}.{when}", plan.unwrap_or_default())),
    );
    mapped.entry("code").or_insert_with(|| Value::from("usage_limit_reached"));
    mapped.entry("param").or_insert(Value::Null);
    Some((serde_json::json!({ "error": mapped }).to_string(), u64::try_from(wait).unwrap_or(1)))
}

/// `YYYY-MM-DD HH:MM UTC` for Unix seconds (proleptic Gregorian calendar).
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_795_413_970), "2026-11-23 06:06 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn resets_in_seconds_is_understood() {
        let (body, wait) =
            usage_limit(br#"{"error":{"type":"usage_limit_reached","resets_in_seconds":90}}"#, 1_000_000).unwrap();
        assert_eq!(wait, 90);
        assert!(body.contains("in about 2 min"), "{body}");
        assert!(usage_limit(br#"{"error":{"type":"rate_limit_exceeded"}}"#, 0).is_none());
    }
}
