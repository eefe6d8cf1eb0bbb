//! A crate's modules and who imports whom, from the paths each file names
//! ([`super::source`]), and the import cycles among them.
//!
//! A module is a file: `a/b.rs` and `a/b/mod.rs` are `a::b`; the crate
//! roots (`lib.rs`, `main.rs`) declare the modules and are left out. A
//! path names the longest module it reaches (`crate::run::run_test` names
//! `run`): paths from `crate::`, from `super::` (as many as written), from
//! `self::`, and from a child module by its bare name (`process::X` in
//! `runtime/mod.rs`). A module naming its own ancestor (`super::Item`
//! defined in the parent's `mod.rs`) counts only where the caller asks
//! (`ancestors`): the harness keeps its `mod.rs` files registries above
//! their children; elsewhere a `mod.rs` is its folder's interface, as
//! `import_cycles.py` takes it.

use super::source::{paths_named, Named};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// One import: the module named, and where.
#[derive(Debug, Clone)]
pub struct Import {
    /// The module imported.
    pub to: String,
    /// The file and line that names it.
    pub at: String,
    /// The path as written.
    pub path: String,
}

/// A crate's modules and their imports.
#[derive(Debug, Default)]
pub struct Graph {
    /// Module name → its file.
    pub modules: BTreeMap<String, PathBuf>,
    /// Module name → the modules it imports (first place each is named).
    pub imports: BTreeMap<String, Vec<Import>>,
    /// Whether a module naming its own ancestor imports it.
    ancestors: bool,
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The module a file under `src` is, `None` for a crate root.
fn module_of(src: &Path, file: &Path) -> Option<Vec<String>> {
    let rel = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        return None;
    }
    Some(parts)
}

impl Graph {
    /// Reads every module of the crate whose sources are in `src`;
    /// `ancestors`: whether a module's own ancestors count as imports.
    pub fn of_crate(src: &Path, ancestors: bool) -> Graph {
        let mut graph = Graph {
            ancestors,
            ..Graph::default()
        };
        let files: Vec<(Vec<String>, PathBuf)> = rust_files(src)
            .into_iter()
            .filter_map(|f| module_of(src, &f).map(|m| (m, f)))
            .collect();
        for (m, f) in &files {
            graph.modules.insert(m.join("::"), f.clone());
        }
        for (m, f) in &files {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let shown = f.strip_prefix(src.parent().unwrap_or(src)).unwrap_or(f);
            let mut seen = BTreeSet::new();
            let mut imports = Vec::new();
            for named in paths_named(&text) {
                let Some(to) = graph.resolve(m, &named) else {
                    continue;
                };
                if seen.insert(to.clone()) {
                    imports.push(Import {
                        to,
                        at: format!("{}:{}", shown.display(), named.line),
                        path: named.path.join("::"),
                    });
                }
            }
            graph.imports.insert(m.join("::"), imports);
        }
        graph
    }

    /// The module (other than `from` itself and the crate root) a path
    /// written in `from` names, if any.
    fn resolve(&self, from: &[String], named: &Named) -> Option<String> {
        let path = &named.path;
        let mut base: Vec<String> = match path[0].as_str() {
            "crate" => Vec::new(),
            "self" => from.to_vec(),
            "super" => {
                let ups = path.iter().take_while(|s| *s == "super").count();
                from[..from.len().checked_sub(ups)?].to_vec()
            }
            _ => from.to_vec(),
        };
        let rest = path
            .iter()
            .skip_while(|s| *s == "crate" || *s == "self" || *s == "super");
        let relative = !matches!(path[0].as_str(), "crate" | "self" | "super");
        // `super::Item` names the parent module itself.
        let mut found =
            (!relative && self.modules.contains_key(&base.join("::"))).then(|| base.join("::"));
        for (k, segment) in rest.enumerate() {
            base.push(segment.clone());
            let name = base.join("::");
            if self.modules.contains_key(&name) {
                found = Some(name);
            } else if k == 0 && relative {
                // A bare first segment that is no child module: a crate,
                // a type or a variable, not one of ours.
                return None;
            } else {
                break;
            }
        }
        let own = from.join("::");
        let ancestor = |f: &String| own.starts_with(&format!("{f}::"));
        found.filter(|f| *f != own && (self.ancestors || !ancestor(f)))
    }

    /// Strongly connected sets of more than one module, largest first.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let mut tarjan = Tarjan::new(self);
        for m in self.modules.keys() {
            if !tarjan.index.contains_key(m) {
                tarjan.visit(m);
            }
        }
        let mut out: Vec<Vec<String>> = tarjan.sccs.into_iter().filter(|c| c.len() > 1).collect();
        for c in &mut out {
            c.sort();
        }
        out.sort_by_key(|c| std::cmp::Reverse(c.len()));
        out
    }

    fn import(&self, from: &str, to: &str) -> Option<&Import> {
        self.imports.get(from)?.iter().find(|i| i.to == to)
    }

    /// One cycle through the first module of `set`, as the imports that
    /// make it (each naming its file and line).
    pub fn cycle_through(&self, set: &[String]) -> Vec<(String, Import)> {
        let start = &set[0];
        let inside: BTreeSet<&String> = set.iter().collect();
        let mut came_from: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = VecDeque::from([start.clone()]);
        while let Some(m) = queue.pop_front() {
            for i in self.imports.get(&m).into_iter().flatten() {
                if !inside.contains(&i.to) {
                    continue;
                }
                if i.to == *start {
                    let mut chain = vec![(m.clone(), i.clone())];
                    let mut at = m.clone();
                    while let Some(prev) = came_from.get(&at) {
                        let hop = self.import(prev, &at).expect("a step taken").clone();
                        chain.push((prev.clone(), hop));
                        at = prev.clone();
                    }
                    chain.reverse();
                    return chain;
                }
                if !came_from.contains_key(&i.to) && i.to != *start {
                    came_from.insert(i.to.clone(), m.clone());
                    queue.push_back(i.to.clone());
                }
            }
        }
        Vec::new()
    }
}

/// Tarjan's strongly connected components over a [`Graph`].
struct Tarjan<'a> {
    graph: &'a Graph,
    index: BTreeMap<String, usize>,
    low: BTreeMap<String, usize>,
    stack: Vec<String>,
    on_stack: BTreeSet<String>,
    sccs: Vec<Vec<String>>,
}

impl<'a> Tarjan<'a> {
    fn new(graph: &'a Graph) -> Tarjan<'a> {
        Tarjan {
            graph,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            sccs: Vec::new(),
        }
    }

    fn visit(&mut self, v: &str) {
        let i = self.index.len();
        self.index.insert(v.to_string(), i);
        self.low.insert(v.to_string(), i);
        self.stack.push(v.to_string());
        self.on_stack.insert(v.to_string());
        let targets: Vec<String> = self
            .graph
            .imports
            .get(v)
            .into_iter()
            .flatten()
            .map(|i| i.to.clone())
            .collect();
        for w in targets {
            if !self.index.contains_key(&w) {
                self.visit(&w);
                let low = self.low[v].min(self.low[&w]);
                self.low.insert(v.to_string(), low);
            } else if self.on_stack.contains(&w) {
                let low = self.low[v].min(self.index[&w]);
                self.low.insert(v.to_string(), low);
            }
        }
        if self.low[v] == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack.remove(&w);
                let done = w == v;
                component.push(w);
                if done {
                    break;
                }
            }
            self.sccs.push(component);
        }
    }
}
