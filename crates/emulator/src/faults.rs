//! Fault injection: parse fault specs (from `--fault` or the `x-emulator-fault` header) and decide,
//! per request, which fault applies.
//!
//! Syntax: `key=value` pairs separated by `;` (bare words for kinds), e.g. `status=429;retry_after=2`,
//! `usage_limit;resets_in=600`, `expired`, `cut_after=3`, `stall_ms=500;at=1`, `slow_bytes=16;delay_ms=5`,
//! `fail_at=2;code=server_is_overloaded`, WebSocket-only `close=1012` / `close=1013;cut_after=3` /
//! `stale_anchor`, with `times=K`, `skip=K` and `id=NAME` limiting a fault to some
//! requests. Invariants: parsing never panics; each spec's counter is keyed by its `id` (else its text),
//! counts every request that consulted it, and a spec applies to request number `n` (0-based) iff
//! `skip <= n < skip + times`.

use std::collections::HashMap;
use std::sync::Mutex;

/// Request header carrying a per-request fault spec.
pub const FAULT_HEADER: &str = "x-emulator-fault";

/// A fault answered before any stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Immediate {
    /// An HTTP error with this status (429, 500, 502, 503, …), optional `Retry-After` seconds and
    /// `error.code`.
    Status {
        /// HTTP status.
        status: u16,
        /// `Retry-After` header in seconds.
        retry_after: Option<u64>,
        /// `error.code` in the body.
        code: Option<String>,
    },
    /// 429 `usage_limit_reached` with `plan_type` and `resets_at` = now + `resets_in` seconds.
    UsageLimit {
        /// `plan_type` in the body (default: the configured plan).
        plan: Option<String>,
        /// Seconds until the limit resets (default 3600).
        resets_in: u64,
    },
    /// 401 with `code: token_expired`.
    Expired,
}

/// Where a stall happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallAt {
    /// Before event number `n` (0 = before the first event).
    Before(usize),
    /// Before every event.
    Each,
}

/// One fault spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSpec {
    /// The text it was parsed from.
    pub raw: String,
    /// Counter identity (`id=`), else `raw`.
    pub id: Option<String>,
    /// Apply to at most this many requests (after `skip`).
    pub times: Option<u64>,
    /// Let this many requests pass first.
    pub skip: u64,
    /// Error answered instead of a stream.
    pub immediate: Option<Immediate>,
    /// Close the connection (abort) after this many events, without `response.completed`.
    pub cut_after: Option<usize>,
    /// Replace event number `n` and everything after it with one `response.failed`.
    pub fail_at: Option<usize>,
    /// `error.code` for `response.failed` (default `server_error`).
    pub fail_code: Option<String>,
    /// `error.message` for `response.failed`.
    pub message: Option<String>,
    /// Stall this long (ms).
    pub stall_ms: Option<u64>,
    /// Where to stall.
    pub stall_at: StallAt,
    /// Write the stream in chunks of this many bytes.
    pub slow_bytes: Option<usize>,
    /// Delay between slow chunks (ms, default 10).
    pub slow_delay_ms: u64,
    /// WebSocket only: close with this code (`close=1012`); alone at the handshake, with `cut_after=N`
    /// after N events of the response.
    pub close_code: Option<u16>,
    /// WebSocket only: the connection forgets its last response before this create, so a
    /// `previous_response_id` gets `previous_response_not_found`.
    pub stale_anchor: bool,
}

impl FaultSpec {
    /// Parse a spec; errors name the offending part.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut spec = FaultSpec {
            raw: text.trim().to_owned(),
            id: None,
            times: None,
            skip: 0,
            immediate: None,
            cut_after: None,
            fail_at: None,
            fail_code: None,
            message: None,
            stall_ms: None,
            stall_at: StallAt::Before(0),
            slow_bytes: None,
            slow_delay_ms: 10,
            close_code: None,
            stale_anchor: false,
        };
        let mut status: Option<u16> = None;
        let mut retry_after = None;
        let mut code: Option<String> = None;
        let mut usage_limit = false;
        let mut plan = None;
        let mut resets_in = 3600;
        let mut expired = false;
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (part, None),
            };
            let num = |v: Option<&str>| -> Result<u64, String> {
                v.and_then(|v| v.parse::<u64>().ok()).ok_or_else(|| format!("{key} needs a number: {part:?}"))
            };
            match (key, value) {
                ("status", v) => {
                    let s = num(v)?;
                    status =
                        Some(u16::try_from(s).ok().filter(|s| (400..600).contains(s)).ok_or("status must be 400-599")?);
                }
                ("retry_after", v) => retry_after = Some(num(v)?),
                ("code", Some(v)) => code = Some(v.to_owned()),
                ("message", Some(v)) => spec.message = Some(v.to_owned()),
                ("usage_limit" | "usage_limit_reached", None) => usage_limit = true,
                ("kind", Some("usage_limit" | "usage_limit_reached")) => usage_limit = true,
                ("expired", None) | ("kind", Some("expired")) => expired = true,
                ("plan", Some(v)) => plan = Some(v.to_owned()),
                ("resets_in", v) => resets_in = num(v)?,
                ("cut_after", v) => spec.cut_after = Some(num(v)? as usize),
                ("fail_at", v) => spec.fail_at = Some(num(v)? as usize),
                ("stall_ms", v) => spec.stall_ms = Some(num(v)?),
                ("at", Some("each")) => spec.stall_at = StallAt::Each,
                ("at", v) => spec.stall_at = StallAt::Before(num(v)? as usize),
                ("slow_bytes", v) => spec.slow_bytes = Some((num(v)? as usize).max(1)),
                ("delay_ms", v) => spec.slow_delay_ms = num(v)?,
                ("close", v) => {
                    let c = num(v)?;
                    spec.close_code = Some(
                        u16::try_from(c).ok().filter(|c| (1000..5000).contains(c)).ok_or("close must be 1000-4999")?,
                    );
                }
                ("stale_anchor", None) => spec.stale_anchor = true,
                ("times", v) => spec.times = Some(num(v)?),
                ("skip", v) => spec.skip = num(v)?,
                ("id", Some(v)) => spec.id = Some(v.to_owned()),
                _ => return Err(format!("unknown fault part {part:?}")),
            }
        }
        spec.immediate = if usage_limit {
            Some(Immediate::UsageLimit { plan, resets_in })
        } else if expired || status == Some(401) {
            Some(Immediate::Expired)
        } else {
            status.map(|status| Immediate::Status { status, retry_after, code: code.clone() })
        };
        if spec.immediate.is_none() {
            spec.fail_code = code;
        }
        Ok(spec)
    }

    /// A WebSocket handshake fault: `close=CODE` alone (no stream position, no immediate error).
    pub fn at_handshake(&self) -> bool {
        self.close_code.is_some() && self.cut_after.is_none() && self.immediate.is_none()
    }

    fn counter_key(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.raw)
    }
}

impl std::str::FromStr for FaultSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Per-spec request counters.
#[derive(Debug, Default)]
pub struct FaultCounters {
    seen: Mutex<HashMap<String, u64>>,
}

impl FaultCounters {
    /// Count one request against `spec`; true if the fault applies to it.
    pub fn admit(&self, spec: &FaultSpec) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = seen.entry(spec.counter_key().to_owned()).or_insert(0);
        let this = *n;
        *n += 1;
        this >= spec.skip && spec.times.is_none_or(|t| this < spec.skip.saturating_add(t))
    }

    /// Forget all counts.
    pub fn reset(&self) {
        self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }
}

/// Pick the fault for one request: the header spec if the header is present (config faults are then
/// ignored), else the first admitted config fault.
pub fn select(header: Option<&FaultSpec>, config: &[FaultSpec], counters: &FaultCounters) -> Option<FaultSpec> {
    if let Some(spec) = header {
        return counters.admit(spec).then(|| spec.clone());
    }
    config.iter().find(|s| counters.admit(s)).cloned()
}

/// [`select`] among the specs for which `wanted` holds (the WebSocket transport consults handshake faults
/// at the handshake and the others per `response.create`); a header spec that is not wanted selects
/// nothing and is not counted.
pub fn select_where(
    header: Option<&FaultSpec>,
    config: &[FaultSpec],
    counters: &FaultCounters,
    wanted: impl Fn(&FaultSpec) -> bool,
) -> Option<FaultSpec> {
    if let Some(spec) = header {
        return (wanted(spec) && counters.admit(spec)).then(|| spec.clone());
    }
    config.iter().filter(|s| wanted(s)).find(|s| counters.admit(s)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        let s = FaultSpec::parse("status=429;retry_after=2;times=1").unwrap();
        assert_eq!(s.immediate, Some(Immediate::Status { status: 429, retry_after: Some(2), code: None }));
        assert_eq!(s.times, Some(1));
        assert_eq!(FaultSpec::parse("expired").unwrap().immediate, Some(Immediate::Expired));
        assert_eq!(
            FaultSpec::parse("usage_limit;resets_in=60;plan=pro").unwrap().immediate,
            Some(Immediate::UsageLimit { plan: Some("pro".into()), resets_in: 60 })
        );
        let s = FaultSpec::parse("stall_ms=500;at=each;slow_bytes=7;delay_ms=1;cut_after=3").unwrap();
        assert_eq!((s.stall_ms, s.stall_at, s.slow_bytes, s.cut_after), (Some(500), StallAt::Each, Some(7), Some(3)));
        let s = FaultSpec::parse("fail_at=2;code=server_is_overloaded").unwrap();
        assert_eq!((s.fail_at, s.fail_code.as_deref()), (Some(2), Some("server_is_overloaded")));
        let s = FaultSpec::parse("close=1012").unwrap();
        assert!(s.at_handshake());
        let s = FaultSpec::parse("close=1013;cut_after=2").unwrap();
        assert!(!s.at_handshake() && s.close_code == Some(1013));
        assert!(FaultSpec::parse("stale_anchor").unwrap().stale_anchor);
        assert!(FaultSpec::parse("close=99").is_err());
        assert!(FaultSpec::parse("bogus=1").is_err());
        assert!(FaultSpec::parse("status=abc").is_err());
        assert!(FaultSpec::parse("status=200").is_err());
    }

    #[test]
    fn times_and_skip_window() {
        let c = FaultCounters::default();
        let s = FaultSpec::parse("status=500;skip=1;times=2").unwrap();
        let got: Vec<bool> = (0..5).map(|_| c.admit(&s)).collect();
        assert_eq!(got, [false, true, true, false, false]);
    }
}
