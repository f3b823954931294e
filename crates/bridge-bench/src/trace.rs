//! Saving and replaying scenarios as JSONL traces: one line per request,
//! `{"scenario", "at_ms", "headers": [[name, value], ...], "body": {...}}`, scenarios in order.
//!
//! Invariants: `load(save(s)) == s` for generated scenarios (names, times, headers, bodies); a line that
//! does not parse is an error naming its line number, never skipped.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::BenchError;
use crate::workload::{Request, Scenario};

#[derive(Serialize, Deserialize)]
struct Line {
    scenario: String,
    at_ms: u64,
    headers: Vec<(String, String)>,
    body: Value,
}

/// Writes scenarios as JSONL.
pub fn save(scenarios: &[Scenario], mut out: impl Write) -> Result<(), BenchError> {
    for s in scenarios {
        for r in &s.requests {
            let line =
                Line { scenario: s.name.to_owned(), at_ms: r.at_ms, headers: r.headers.clone(), body: r.body.clone() };
            serde_json::to_writer(&mut out, &line).map_err(|e| BenchError::Other(format!("trace: {e}")))?;
            out.write_all(b"\n").map_err(|e| BenchError::Other(format!("trace: {e}")))?;
        }
    }
    Ok(())
}

/// Reads a JSONL trace back into scenarios (consecutive lines with one name form one scenario).
pub fn load(input: impl BufRead) -> Result<Vec<Scenario>, BenchError> {
    let mut scenarios: Vec<Scenario> = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| BenchError::Other(format!("trace line {}: {e}", n + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        let l: Line =
            serde_json::from_str(&line).map_err(|e| BenchError::Other(format!("trace line {}: {e}", n + 1)))?;
        let request = Request { at_ms: l.at_ms, headers: l.headers, body: l.body };
        match scenarios.last_mut() {
            Some(s) if s.name == l.scenario => s.requests.push(request),
            _ => scenarios.push(Scenario {
                name: crate::workload::intern(&l.scenario),
                description: "replayed from a trace",
                requests: vec![request],
            }),
        }
    }
    Ok(scenarios)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_line_errors() {
        let scenarios: Vec<Scenario> =
            ["multi-turn", "opencode"].iter().map(|n| crate::workload::scenario(n, 3).unwrap()).collect();
        let mut buf = Vec::new();
        save(&scenarios, &mut buf).unwrap();
        let back = load(buf.as_slice()).unwrap();
        assert_eq!(back.len(), 2);
        for (a, b) in scenarios.iter().zip(&back) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.requests.len(), b.requests.len());
            assert!(
                a.requests
                    .iter()
                    .zip(&b.requests)
                    .all(|(x, y)| x.at_ms == y.at_ms && x.headers == y.headers && x.body == y.body)
            );
        }
        let err =
            load("{\"scenario\":\"a\",\"at_ms\":1,\"headers\":[],\"body\":{}}\nnot json\n".as_bytes()).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
