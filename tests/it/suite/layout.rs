//! The crate's shape, as issue 14 left it: no module names another that
//! names it back (directly or around a circle), no source file grows past
//! `MAX_LINES` without saying why in its first lines, and the Layout section
//! of `lib.rs` names every top-level module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Past this a file holds several rooms; its first lines must say why not.
const MAX_LINES: usize = 600;
/// How many of a long file's first lines may carry its reason.
const REASON_LINES: usize = 5;

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`; `src/lib.rs` is the root.
fn module_of(path: &Path) -> String {
    let relative = path.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts
        .last()
        .is_some_and(|last| last == "mod" || last == "lib")
    {
        parts.pop();
    }
    parts.join("::")
}

/// The code of a file without its unit tests: a test module may reach
/// anywhere without making the modules depend on each other.
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests")
        .map_or(text, |start| &text[..start])
}

/// The modules `code` (of `module`) names through `crate::…` or `super::…`,
/// each resolved to the longest known module prefix.
fn references(module: &str, code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let parent = module.rsplit_once("::").map_or("", |(parent, _)| parent);
    let mut found = BTreeSet::new();
    for (prefix, base) in [("crate::", ""), ("super::", parent)] {
        for (at, _) in code.match_indices(prefix) {
            let preceded = code[..at].chars().next_back();
            if preceded.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let path: String = code[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let parts: Vec<&str> = path.split("::").filter(|part| !part.is_empty()).collect();
            // `super::Item` with no module between names the parent itself.
            let named = (1..=parts.len())
                .rev()
                .map(|end| match base {
                    "" => parts[..end].join("::"),
                    base => format!("{base}::{}", parts[..end].join("::")),
                })
                .find(|candidate| modules.contains(candidate))
                .or_else(|| (!base.is_empty()).then(|| base.to_string()));
            if let Some(named) = named.filter(|named| named != module) {
                found.insert(named);
            }
        }
    }
    found
}

/// The strongly connected components of more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, node: &'a str) {
            let next = self.index.len();
            self.index.insert(node, next);
            self.low.insert(node, next);
            self.stack.push(node);
            for target in self.edges.get(node).into_iter().flatten() {
                if !self.index.contains_key(target.as_str()) {
                    self.visit(target);
                    let low = self.low[node].min(self.low[target.as_str()]);
                    self.low.insert(node, low);
                } else if self.stack.contains(&target.as_str()) {
                    let low = self.low[node].min(self.index[target.as_str()]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(top) = self.stack.pop() {
                    component.push(top.to_string());
                    if top == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for node in edges.keys() {
        if !walk.index.contains_key(node.as_str()) {
            walk.visit(node);
        }
    }
    walk.found
}

fn sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect()
}

#[test]
fn no_module_names_one_that_names_it_back() {
    let files: Vec<_> = sources()
        .into_iter()
        .filter(|(path, _)| path.file_name().is_some_and(|name| name != "tests.rs"))
        .collect();
    let modules: BTreeSet<String> = files.iter().map(|(path, _)| module_of(path)).collect();
    let edges: BTreeMap<String, BTreeSet<String>> = files
        .iter()
        .map(|(path, text)| {
            let module = module_of(path);
            let named = references(&module, without_tests(text), &modules);
            (module, named)
        })
        .collect();
    assert!(
        edges.values().map(BTreeSet::len).sum::<usize>() > 100,
        "the reference scan found almost nothing: {edges:?}"
    );
    let found = cycles(&edges);
    assert!(found.is_empty(), "module cycles: {found:?}");
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let modules: BTreeSet<String> = ["a", "a::b", "c"].map(String::from).into();
    let a = references("a", "use crate::a::b::Thing;", &modules);
    let b = references(
        "a::b",
        "use super::Top; fn f() { crate::c::go() }",
        &modules,
    );
    let c = references("c", "use crate::a::b;", &modules);
    assert_eq!(a, ["a::b".to_string()].into());
    let edges: BTreeMap<_, _> = [("a".into(), a), ("a::b".into(), b), ("c".into(), c)].into();
    assert_eq!(
        cycles(&edges),
        vec![vec!["a".to_string(), "a::b".into(), "c".into()]]
    );
}

#[test]
fn no_source_file_is_over_600_lines_without_saying_why() {
    let long: Vec<_> = sources()
        .into_iter()
        .filter(|(_, text)| text.lines().count() > MAX_LINES)
        .filter(|(_, text)| {
            !text
                .lines()
                .take(REASON_LINES)
                .any(|line| line.contains(&MAX_LINES.to_string()))
        })
        .map(|(path, text)| (path, text.lines().count()))
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines with no reason given: {long:?}"
    );
}

#[test]
fn the_layout_names_every_module() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|line| line.strip_prefix("pub mod "))
        .map(|name| name.trim_end_matches(';'))
        .collect();
    assert!(declared.len() > 10, "{declared:?}");
    let missing: Vec<_> = declared
        .iter()
        .filter(|name| !lib.contains(&format!("[`{name}`]")))
        .collect();
    assert!(
        missing.is_empty(),
        "lib.rs's Layout does not name {missing:?}"
    );
}
