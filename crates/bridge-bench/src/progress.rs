//! A one-line progress bar on stderr, shown only when stderr is a terminal.

use std::io::{IsTerminal, Write};

/// Progress over a known number of steps.
pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    shown: bool,
    last_percent: u64,
}

impl Progress {
    /// Starts a bar (silent when stderr is not a terminal).
    pub fn new(label: impl Into<String>, total: u64) -> Self {
        let mut p = Self {
            label: label.into(),
            total: total.max(1),
            done: 0,
            shown: std::io::stderr().is_terminal(),
            last_percent: u64::MAX,
        };
        p.draw();
        p
    }

    /// Advances by `n` steps.
    pub fn inc(&mut self, n: u64) {
        self.done = (self.done + n).min(self.total);
        self.draw();
    }

    /// Clears the line.
    pub fn finish(self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{:width$}\r", "", width = self.label.len() + 40);
            let _ = err.flush();
        }
    }

    fn draw(&mut self) {
        if !self.shown {
            return;
        }
        let percent = self.done * 100 / self.total;
        if percent == self.last_percent {
            return;
        }
        self.last_percent = percent;
        let filled = (percent / 4) as usize;
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{} [{}{}] {percent:>3}%", self.label, "#".repeat(filled), ".".repeat(25 - filled));
        let _ = err.flush();
    }
}
