//! Percentiles over recorded latencies, and process memory from /proc.

use std::time::Duration;

/// Sorted latencies of one series.
#[derive(Debug, Clone, Default)]
pub struct Series {
    sorted_us: Vec<u64>,
}

impl Series {
    /// Builds a series from raw durations.
    pub fn new(samples: &[Duration]) -> Self {
        let mut sorted_us: Vec<u64> = samples.iter().map(|d| d.as_micros() as u64).collect();
        sorted_us.sort_unstable();
        Self { sorted_us }
    }

    /// The `p`-th percentile (nearest rank), in microseconds; 0 for an empty series.
    pub fn percentile_us(&self, p: f64) -> u64 {
        if self.sorted_us.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * self.sorted_us.len() as f64).ceil() as usize;
        self.sorted_us[rank.clamp(1, self.sorted_us.len()) - 1]
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.sorted_us.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.sorted_us.is_empty()
    }
}

/// Peak resident set size (VmHWM) of a process in KiB, from /proc/PID/status; `None` off Linux.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmHWM:")
}

/// Current resident set size (VmRSS) of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Series::new(&(1..=100).map(Duration::from_micros).collect::<Vec<_>>());
        assert_eq!(s.percentile_us(50.0), 50);
        assert_eq!(s.percentile_us(99.0), 99);
        assert_eq!(s.percentile_us(100.0), 100);
        assert_eq!(Series::new(&[]).percentile_us(50.0), 0);
    }

    #[test]
    fn reads_own_rss() {
        let rss = rss_kib(std::process::id()).unwrap();
        assert!(rss > 0);
        assert!(peak_rss_kib(std::process::id()).unwrap() >= rss);
    }
}
