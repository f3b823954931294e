//! The crate's modules form no import cycle: each `crate::<module>` named in a source file is an edge, and
//! the graph of those edges must be acyclic (the check `grep -oE 'crate::[a-z_]+'` per file does by hand).

use std::collections::{BTreeMap, BTreeSet};

/// Module → the modules it names.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut graph = BTreeMap::new();
    for entry in walk(std::path::Path::new(src)) {
        let rel = entry.strip_prefix(src).unwrap().with_extension("");
        // `git/read.rs` belongs to `git`; `lib.rs` is the root.
        let module = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&entry).unwrap();
        let named: &mut BTreeSet<String> = graph.entry(module.clone()).or_default();
        for (at, _) in text.match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() && name != module {
                named.insert(name);
            }
        }
    }
    graph
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
    out
}

#[test]
fn modules_import_each_other_without_a_cycle() {
    let graph = edges();
    assert!(graph.contains_key("turn") && graph.contains_key("tasks"), "{graph:?}");
    // Depth-first search with colours; a grey node reached again closes a cycle.
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, bool>,
        path: &mut Vec<&'a str>,
    ) {
        match state.get(node) {
            Some(true) => return,
            Some(false) => panic!("import cycle: {} -> {node}", path.join(" -> ")),
            None => {}
        }
        state.insert(node, false);
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, state, path);
        }
        path.pop();
        state.insert(node, true);
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        visit(node, &graph, &mut state, &mut Vec::new());
    }
}
