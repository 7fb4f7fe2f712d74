//! The modules of rpc-core form layers: no module imports one that imports it back, directly
//! or round a circle; and no source file grows past the size a reader can hold in mind.
//!
//! Read from the source: every `use crate::…` / `use super::…` path, and every inline
//! `crate::…` / `super::…` path outside plain comments and test modules (doc links count), is
//! an edge from the module of the file to the deepest module the path names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`conn::shared`) → file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            out.insert(parts.join("::"), path);
        }
    }
    out
}

/// The source without plain comments and without what follows the first `#[cfg(test)]`.
/// Doc comments stay: a doc link to a module above (`[`x`](crate::login)`) points the reader
/// upward as an import would, and `shared/tools/layers.py` counts it too.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap();
    text.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("///") || trimmed.starts_with("//!") {
                trimmed.trim_start_matches('/').trim_start_matches('!')
            } else {
                line.split("//").next().unwrap()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b` / `super::a` path in `code`, with `use` groups expanded.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for stmt in code.split(';') {
        let stmt: String = stmt.split_whitespace().collect();
        if let Some(rest) = stmt
            .strip_prefix("use")
            .or_else(|| stmt.strip_prefix("pubuse"))
        {
            expand("", rest, &mut out);
        }
    }
    // Inline paths (`crate::codec::encode(..)`).
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let at = from + at;
            let mut end = at;
            while end < bytes.len()
                && (bytes[end].is_ascii_alphanumeric() || b"_:".contains(&bytes[end]))
            {
                end += 1;
            }
            out.push(code[at..end].trim_end_matches(':').to_owned());
            from = end.max(at + 1);
        }
    }
    out
}

fn expand(prefix: &str, rest: &str, out: &mut Vec<String>) {
    match rest.find('{') {
        None => out.push(format!("{prefix}{rest}")),
        Some(open) => {
            let head = &rest[..open];
            let inner = &rest[open + 1..rest.rfind('}').unwrap()];
            let mut depth = 0;
            let mut item = String::new();
            for ch in inner.chars().chain([',']) {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !item.is_empty() {
                            expand(&format!("{prefix}{head}"), &item, out);
                        }
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(ch);
            }
        }
    }
}

/// The deepest module a path from module `from` names.
fn target(from: &str, path: &str, modules: &BTreeMap<String, PathBuf>) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = if from.is_empty() {
        Vec::new()
    } else {
        from.split("::").collect()
    };
    match segs.first() {
        Some(&"crate") => {
            base.clear();
            segs.remove(0);
        }
        Some(&"super") => {
            while segs.first() == Some(&"super") {
                base.pop();
                segs.remove(0);
            }
        }
        _ => return None,
    }
    let mut best = None;
    for i in 0..=segs.len() {
        let candidate = base
            .iter()
            .chain(&segs[..i])
            .copied()
            .collect::<Vec<_>>()
            .join("::");
        if modules.contains_key(&candidate) {
            best = Some(candidate);
        }
    }
    best
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, file) in &modules {
        let mut to = BTreeSet::new();
        for path in paths(&code(file)) {
            if let Some(t) = target(name, &path, &modules) {
                // The crate root only re-exports; a module's own ancestors hold it.
                let ancestor = name.starts_with(&format!("{t}::"));
                if t != *name && !t.is_empty() && !ancestor {
                    to.insert(t);
                }
            }
        }
        edges.insert(name.clone(), to);
    }
    assert!(
        edges["conn::refctx"].contains("conn::shared"),
        "the parser sees imports"
    );

    // Depth-first search for a cycle.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in &edges[node] {
            match state.get(next.as_str()) {
                Some(1) => {
                    let at = stack.iter().position(|s| s == next).unwrap();
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(cycle) = visit(next, edges, state, stack) {
                        return Some(cycle);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for name in edges.keys() {
        if !state.contains_key(name) {
            let cycle = visit(name, &edges, &mut state, &mut Vec::new());
            assert!(
                cycle.is_none(),
                "module cycle: {}",
                cycle.unwrap().join(" -> ")
            );
        }
    }
}

#[test]
fn no_source_file_is_over_500_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (name, file) in modules(&src) {
        let lines = std::fs::read_to_string(&file).unwrap().lines().count();
        assert!(
            lines <= 500,
            "{name} ({}) has {lines} lines",
            file.display()
        );
    }
}
