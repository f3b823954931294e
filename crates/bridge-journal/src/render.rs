//! Renders a [`TaskGraph`] as Graphviz DOT, Mermaid or JSON. Edges point from a dependency to the task
//! that waits for it. Titles are escaped for each format.

use crate::tasks::{Task, TaskGraph};

/// Output formats of `codex-bridge tasks graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    Dot,
    Mermaid,
    Json,
}

/// Renders the graph.
pub fn render(graph: &TaskGraph, format: GraphFormat) -> String {
    match format {
        GraphFormat::Dot => dot(graph),
        GraphFormat::Mermaid => mermaid(graph),
        GraphFormat::Json => serde_json::to_string_pretty(graph).unwrap_or_default(),
    }
}

fn label(task: &Task) -> String {
    format!("{}: {} ({})", task.id, task.title, task.status.as_str())
}

fn dot(graph: &TaskGraph) -> String {
    let mut out = String::from("digraph tasks {\n  rankdir=LR;\n");
    for task in &graph.tasks {
        let text = label(task).replace('\\', "\\\\").replace('"', "\\\"");
        out.push_str(&format!("  \"{}\" [label=\"{text}\"];\n", task.id));
    }
    for task in &graph.tasks {
        for dep in &task.depends_on {
            out.push_str(&format!("  \"{dep}\" -> \"{}\";\n", task.id));
        }
    }
    out.push_str("}\n");
    out
}

fn mermaid(graph: &TaskGraph) -> String {
    let mut out = String::from("graph TD\n");
    for task in &graph.tasks {
        let text = label(task).replace('"', "#quot;");
        out.push_str(&format!("  {}[\"{text}\"]\n", task.id));
    }
    for task in &graph.tasks {
        for dep in &task.depends_on {
            out.push_str(&format!("  {dep} --> {}\n", task.id));
        }
    }
    out
}
