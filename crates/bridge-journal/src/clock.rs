//! Time and id formatting for journal files, without a date library.
//!
//! All times are UTC. Codex names rollout files in local time; the bridge uses UTC so that file names do
//! not depend on the host's time zone (docs/rollouts.md).

use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC instant split into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
    /// Milliseconds since the Unix epoch.
    pub unix_ms: i64,
}

impl Utc {
    /// The current time.
    pub fn now() -> Self {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        Self::from_unix_ms(ms)
    }

    /// Splits a Unix time in milliseconds (days-from-civil inverse, Howard Hinnant's algorithm).
    pub fn from_unix_ms(unix_ms: i64) -> Self {
        let secs = unix_ms.div_euclid(1000);
        let millis = unix_ms.rem_euclid(1000) as u32;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Self {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            millis,
            unix_ms,
        }
    }

    /// `2026-11-23T06:03:24.250Z`, the rollout line timestamp.
    pub fn iso(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millis
        )
    }

    /// `2026-11-23T06-03-24`, the timestamp in rollout and short-term state file names.
    pub fn file_stamp(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `2026/11/23`, the rollout directory below `sessions/`.
    pub fn date_dirs(&self) -> String {
        format!("{:04}/{:02}/{:02}", self.year, self.month, self.day)
    }

    /// Unix seconds.
    pub fn unix_secs(&self) -> i64 {
        self.unix_ms.div_euclid(1000)
    }
}

/// Whether `s` is a UUID in its canonical hyphenated form.
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() })
}

/// The thread id the rollout uses for a client session: the id itself when it is a UUID (Codex), else a
/// UUID derived from it (version 8, name-based with BLAKE3), so the same client id always maps to the same
/// rollout.
pub fn thread_uuid(session: &str) -> String {
    if is_uuid(session) {
        return session.to_ascii_lowercase();
    }
    uuid_from(&blake3::hash(format!("codex-bridge-session:{session}").as_bytes()))
}

/// A fresh UUID-shaped id (turn ids); unique per call within a process and across restarts.
pub fn fresh_uuid(seed: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = Utc::now().unix_ms;
    uuid_from(&blake3::hash(format!("{seed}:{now}:{}:{n}", std::process::id()).as_bytes()))
}

fn uuid_from(hash: &blake3::Hash) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&hash.as_bytes()[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let t = Utc::from_unix_ms(1_795_413_804_250);
        assert_eq!(t.iso(), "2026-11-23T06:03:24.250Z");
        assert_eq!(t.file_stamp(), "2026-11-23T06-03-24");
        assert_eq!(t.date_dirs(), "2026/11/23");
        assert_eq!(Utc::from_unix_ms(951_782_400_000).iso(), "2000-02-29T00:00:00.000Z");
        assert_eq!(Utc::from_unix_ms(0).iso(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn thread_ids_are_uuids_and_stable() {
        let codex = "01a20700-84bd-7fe0-a14b-b42097e1dc55";
        assert_eq!(thread_uuid(codex), codex);
        let oc = thread_uuid("ses_df8fe304effeBghxXlrApZcFon");
        assert!(is_uuid(&oc));
        assert_eq!(oc, thread_uuid("ses_df8fe304effeBghxXlrApZcFon"));
        assert_ne!(fresh_uuid("a"), fresh_uuid("a"));
    }
}
