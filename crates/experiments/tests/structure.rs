//! The crate's modules import one another one way only: no circle among the `crate::` paths
//! that production code (test modules left out) names, as `../shared/tools/structure.py`
//! counts them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

mod common;

/// Every .rs file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `run/train/mod.rs` -> `run::train`; `lib.rs` and `main.rs` -> the crate root, "".
fn module_of(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// The lines outside `#[cfg(test)]` items.
fn production_lines(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < lines.len() {
        if lines[i].trim().starts_with("#[cfg(test)]") {
            let (mut depth, mut seen) = (0i64, false);
            i += 1;
            while i < lines.len() {
                depth +=
                    lines[i].matches('{').count() as i64 - lines[i].matches('}').count() as i64;
                seen |= lines[i].contains('{');
                i += 1;
                if (seen && depth <= 0) || (!seen && lines[i - 1].trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        out.push(lines[i]);
        i += 1;
    }
    out
}

/// Module -> the modules it names through `crate::` paths.
fn imports(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(root, &mut files);
    let modules: BTreeSet<String> = files.iter().map(|p| module_of(root, p)).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let me = module_of(root, path);
        let text = std::fs::read_to_string(path).unwrap();
        for line in production_lines(&text) {
            for (at, _) in line.match_indices("crate::") {
                let path: String = line[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
                let target = (1..=parts.len())
                    .rev()
                    .map(|cut| parts[..cut].join("::"))
                    .find(|m| modules.contains(m));
                if let Some(target) = target.filter(|t| *t != me && !t.is_empty()) {
                    edges.entry(me.clone()).or_default().insert(target);
                }
            }
        }
    }
    edges
}

/// A path of imports from `from` back to itself, if there is one.
fn circle_through(from: &str, edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_string()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().unwrap();
        for next in edges.get(last).into_iter().flatten() {
            if next == from {
                let mut circle = path.clone();
                circle.push(next.clone());
                return Some(circle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let root = common::crate_dir().join("src");
    let edges = imports(&root);
    assert!(
        edges.contains_key("run::stack"),
        "the walk found the modules: {edges:?}"
    );
    let circles: Vec<String> = edges
        .keys()
        .filter_map(|m| circle_through(m, &edges))
        .map(|c| c.join(" -> "))
        .collect();
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

/// The check finds a circle when there is one.
#[test]
fn a_planted_circle_is_found() {
    let dir = std::env::temp_dir().join(format!("smartmixed-structure-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(dir.join("lib.rs"), "pub mod a;\n").unwrap();
    std::fs::write(dir.join("a/mod.rs"), "use crate::a::b::X;\n").unwrap();
    std::fs::write(
        dir.join("a/b.rs"),
        "use crate::a::Y;\n#[cfg(test)]\nmod tests {\n    use crate::lib;\n}\n",
    )
    .unwrap();
    let edges = imports(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        circle_through("a", &edges),
        Some(vec!["a".to_string(), "a::b".to_string(), "a".to_string()])
    );
}
