//! The server's modules import each other without a cycle (a directory such as `store/` counts
//! as one module): what the README's `tsort` command shows, checked on every `cargo test`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `crate::x` names in `text` before its first `#[cfg(test)]` (tests may reach anywhere).
fn imports(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let name: String = code[at + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut visit = |module: String, path: &Path| {
        let text = std::fs::read_to_string(path).expect("read a module");
        let deps = graph.entry(module.clone()).or_default();
        deps.extend(imports(&text).into_iter().filter(|d| *d != module));
    };
    for entry in std::fs::read_dir(&src).expect("src") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        if path.is_dir() {
            for inner in std::fs::read_dir(&path).expect("a module directory") {
                let inner = inner.expect("entry").path();
                if inner.extension().is_some_and(|e| e == "rs") {
                    visit(name.clone(), &inner);
                }
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            visit(name, &path);
        }
    }
    graph
}

/// A cycle through `module`, if there is one: the path back to where it started.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == at) {
            let mut found = path[start..].to_vec();
            found.push(at.to_owned());
            return Some(found);
        }
        if !done.insert(at.to_owned()) {
            return None;
        }
        path.push(at.to_owned());
        for next in graph.get(at).into_iter().flatten() {
            if let Some(found) = walk(graph, next, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| walk(graph, m, &mut Vec::new(), &mut done))
}

#[test]
fn the_server_modules_import_each_other_without_a_cycle() {
    let graph = graph();
    assert!(
        graph.contains_key("hub") && graph.contains_key("store"),
        "{graph:?}"
    );
    assert!(
        graph["store"].contains("settings"),
        "the scan sees directory modules' imports"
    );
    assert_eq!(cycle(&graph), None, "an import cycle");
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    graph.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    graph.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(cycle(&graph).map(|c| c.len()), Some(4));
    graph.get_mut("c").expect("c").clear();
    assert_eq!(cycle(&graph), None);
}
