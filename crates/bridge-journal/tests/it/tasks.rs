//! The task graph: edits, refusal of cycles and dangling dependencies, plans, rendering.

use bridge_journal::plan::PlanItem;
use bridge_journal::render::{GraphFormat, render};
use bridge_journal::tasks::{TaskError, TaskGraph, TaskStatus};

#[test]
fn cycles_and_dangling_dependencies_are_refused() {
    let mut g = TaskGraph::default();
    let a = g.add("design", &[], None).unwrap();
    let b = g.add("build", std::slice::from_ref(&a), None).unwrap();
    let c = g.add("ship", std::slice::from_ref(&b), None).unwrap();
    assert_eq!((a.as_str(), b.as_str(), c.as_str()), ("t1", "t2", "t3"));
    let before = g.clone();
    assert_eq!(g.depend(&a, &c), Err(TaskError::Cycle(vec!["t3".into(), "t2".into(), "t1".into(), "t3".into()])));
    assert_eq!(g.depend(&a, &a).unwrap_err().to_string(), "refused: the dependency would create a cycle t1 -> t1");
    assert!(matches!(g.add("x", &["t9".into()], None), Err(TaskError::Dangling { .. })));
    assert!(matches!(g.depend(&a, "t9"), Err(TaskError::Dangling { .. })));
    assert_eq!(g, before, "refused edits change nothing");
    assert_eq!(g.add("y", &[], None).unwrap(), "t4", "a refused add does not use up an id");
}

#[test]
fn next_follows_dependencies() {
    let mut g = TaskGraph::default();
    let a = g.add("a", &[], None).unwrap();
    let b = g.add("b", std::slice::from_ref(&a), None).unwrap();
    assert_eq!(g.next().iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["t1"]);
    assert!(g.set_status(&a, TaskStatus::Completed, Some("abc123")).unwrap());
    assert!(!g.set_status(&a, TaskStatus::Completed, None).unwrap(), "completing twice is not news");
    assert_eq!(g.next().iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), [b.as_str()]);
    assert_eq!(g.get(&a).unwrap().evidence, ["abc123"]);
}

#[test]
fn plans_update_tasks_by_title() {
    let mut g = TaskGraph::default();
    let items = |s: &[(&str, TaskStatus)]| {
        s.iter().map(|(t, st)| PlanItem { step: (*t).into(), status: *st }).collect::<Vec<_>>()
    };
    let e = g.apply_plan(&items(&[("Parse", TaskStatus::InProgress), ("Test", TaskStatus::Pending)]), "s1", Some("h1"));
    assert_eq!(e.added, ["t1", "t2"]);
    let e =
        g.apply_plan(&items(&[("parse", TaskStatus::Completed), ("Test", TaskStatus::InProgress)]), "s2", Some("h2"));
    assert_eq!(e.completed, ["t1"]);
    assert!(e.added.is_empty());
    let t1 = g.get("t1").unwrap();
    assert_eq!(
        (t1.status, t1.target_commit.as_deref(), t1.owner_session.as_deref()),
        (TaskStatus::Completed, Some("h2"), Some("s2"))
    );
}

#[test]
fn graphs_render_in_three_formats() {
    let mut g = TaskGraph::default();
    let a = g.add("say \"hi\"", &[], None).unwrap();
    g.add("b", &[a], None).unwrap();
    let m = render(&g, GraphFormat::Mermaid);
    assert!(m.starts_with("graph TD\n"));
    assert!(m.contains("  t1[\"t1: say #quot;hi#quot; (pending)\"]\n"), "{m}");
    assert!(m.contains("  t1 --> t2\n"));
    let d = render(&g, GraphFormat::Dot);
    assert!(d.starts_with("digraph tasks {") && d.contains("\"t1\" -> \"t2\";") && d.contains("say \\\"hi\\\""), "{d}");
    let j: serde_json::Value = serde_json::from_str(&render(&g, GraphFormat::Json)).unwrap();
    assert_eq!(j["tasks"][1]["depends_on"][0], "t1");
}
