//! An SVG bar chart of cache benchmark results: per scenario and routing mode, the share of input tokens
//! served from cache client-direct, through the bridge, and at the limit.

use std::fmt::Write as _;

use crate::cache::ScenarioResult;

const BAR: f64 = 9.0;
const GROUP_GAP: f64 = 10.0;
const LEFT: f64 = 210.0;
const WIDTH: f64 = 420.0;
const SERIES: [(&str, &str); 3] = [("client-direct", "#9e9e9e"), ("bridge", "#1f77b4"), ("limit", "#2ca02c")];

/// The chart as a standalone SVG document.
pub fn svg(results: &[ScenarioResult]) -> String {
    let group = BAR * 3.0 + GROUP_GAP;
    let height = 60.0 + group * results.len() as f64 + 30.0;
    let total_width = LEFT + WIDTH + 80.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{total_width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">Cached share of input tokens per scenario (codex-bridge bench cache)</text>"#
    );
    for (i, (name, color)) in SERIES.iter().enumerate() {
        let x = LEFT + i as f64 * 120.0;
        let _ = writeln!(
            out,
            r#"<rect x="{x}" y="30" width="10" height="10" fill="{color}"/><text x="{}" y="39">{name}</text>"#,
            x + 14.0
        );
    }
    for pct in [0, 25, 50, 75, 100] {
        let x = LEFT + WIDTH * f64::from(pct) / 100.0;
        let _ = writeln!(
            out,
            r##"<line x1="{x}" y1="50" x2="{x}" y2="{}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle">{pct}%</text>"##,
            height - 25.0,
            height - 12.0
        );
    }
    for (row, r) in results.iter().enumerate() {
        let y0 = 55.0 + row as f64 * group;
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{} ({})</text>"#,
            LEFT - 6.0,
            y0 + BAR * 2.0,
            xml(&r.scenario),
            xml(&r.routing)
        );
        for (i, value) in [r.direct_cached, r.bridge_cached, r.limit_cached].into_iter().enumerate() {
            let share = if r.input_tokens == 0 { 0.0 } else { value as f64 / r.input_tokens as f64 };
            let _ = writeln!(
                out,
                r#"<rect x="{LEFT}" y="{}" width="{:.1}" height="{}" fill="{}"><title>{} {:.1}%</title></rect>"#,
                y0 + i as f64 * BAR,
                WIDTH * share,
                BAR - 1.0,
                SERIES[i].1,
                SERIES[i].0,
                share * 100.0
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_group_of_three_bars_per_result() {
        let r = ScenarioResult {
            scenario: "a<b".into(),
            transport: "http".into(),
            http_affinity: 1.0,
            routing_seed: 0,
            bridge_reached: true,
            routing: "docs".into(),
            requests: 1,
            input_tokens: 100,
            direct_cached: 10,
            bridge_cached: 50,
            limit_cached: 100,
        };
        let doc = svg(&[r.clone(), r]);
        assert_eq!(doc.matches("<title>").count(), 6);
        assert!(doc.contains("a&lt;b (docs)"));
        assert!(doc.contains(r#"width="210.0""#), "the bridge bar is half the axis: {doc}");
        assert!(doc.starts_with("<svg") && doc.ends_with("</svg>\n"));
    }
}
