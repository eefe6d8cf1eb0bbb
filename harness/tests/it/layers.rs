//! The layer rule, kept by a test (ARCHITECTURE.md, "Layers"): no crate of
//! the workspace has an import cycle among its modules, and the harness's
//! folders import only downwards, in the order [`HARNESS_LAYERS`] gives.
//!
//! The imports are read from the sources ([`source`], [`graph`]): paths
//! from `crate::`, `super::` and `self::`, `use` groups expanded, bare
//! child-module paths, outside comments, literals and `#[cfg(test)]`
//! items. `../shared/tools/import_cycles.py` sees only `crate::` paths and
//! not a child importing its `mod.rs`; this reads those too.

mod graph;
mod source;

use graph::Graph;
use std::path::{Path, PathBuf};

/// Crates whose `mod.rs` files are registries above their children, so
/// that a child importing its ancestor is an upward import (a cycle when
/// the ancestor imports it); elsewhere a `mod.rs` is its folder's interface.
const ANCESTORS_COUNT: &[&str] = &["harness"];

/// Crates whose cycles other work is removing: reported, not failed on.
/// A crate listed here that has no cycle fails the test until it is taken
/// off, so the list only shrinks.
const CYCLIC_FOR_NOW: &[&str] = &[];

/// The harness's layers, top to bottom: a module imports only from its own
/// layer or those after it. Every top-level module of `harness/src` is
/// listed; a new one takes its place here and in ARCHITECTURE.md.
const HARNESS_LAYERS: &[&str] = &[
    "cli", "soak", "run", "plan", "nemesis", "judge", "cluster", "runtime", "sut", "history",
    "store", "binary",
];

/// The workspace root (the harness's parent directory).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("harness/ has a parent")
        .to_path_buf()
}

/// Every crate of the workspace: a directory with a `Cargo.toml` and a
/// `src/`, by name.
fn crates() -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(workspace())
        .expect("reading the workspace root")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file() && p.join("src").is_dir())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                p.join("src"),
            )
        })
        .collect();
    out.sort();
    out
}

/// The cycles of a graph, each written as the imports that close it.
fn describe(graph: &Graph, cycles: &[Vec<String>]) -> String {
    let mut out = String::new();
    for set in cycles {
        out.push_str(&format!("  {} modules: {}\n", set.len(), set.join(" ")));
        for (from, import) in graph.cycle_through(set) {
            out.push_str(&format!(
                "    {from} -> {} ({}: {})\n",
                import.to, import.at, import.path
            ));
        }
    }
    out
}

#[test]
fn no_crate_has_an_import_cycle() {
    let mut failures = String::new();
    let mut checked = 0;
    for (name, src) in crates() {
        let graph = Graph::of_crate(&src, ANCESTORS_COUNT.contains(&name.as_str()));
        let cycles = graph.cycles();
        let largest = cycles.first().map_or(0, Vec::len);
        eprintln!(
            "{name}: largest import cycle: {largest} modules; cycles: {}; modules: {}",
            cycles.len(),
            graph.modules.len()
        );
        let listed = CYCLIC_FOR_NOW.contains(&name.as_str());
        if !cycles.is_empty() {
            eprint!("{}", describe(&graph, &cycles));
        }
        match (cycles.is_empty(), listed) {
            (false, false) => failures.push_str(&format!(
                "{name} has import cycles:\n{}",
                describe(&graph, &cycles)
            )),
            (true, true) => failures.push_str(&format!(
                "{name} has no import cycle any more: take it off CYCLIC_FOR_NOW\n"
            )),
            _ => {}
        }
        checked += 1;
    }
    assert!(
        checked >= 7,
        "only {checked} crates found under {}",
        workspace().display()
    );
    assert!(failures.is_empty(), "{failures}");
}

#[test]
fn the_harness_layers_import_only_downwards() {
    let graph = Graph::of_crate(&workspace().join("harness").join("src"), true);
    let layer = |module: &str| {
        let top = module.split("::").next().unwrap_or(module);
        HARNESS_LAYERS.iter().position(|l| *l == top)
    };
    let mut failures = String::new();
    for module in graph.modules.keys() {
        if layer(module).is_none() {
            failures.push_str(&format!(
                "{module} is in no layer: add its folder to HARNESS_LAYERS (and ARCHITECTURE.md)\n"
            ));
        }
    }
    for (from, imports) in &graph.imports {
        for import in imports {
            if let (Some(a), Some(b)) = (layer(from), layer(&import.to)) {
                if a > b {
                    failures.push_str(&format!(
                        "{from} (layer {}) imports {} (layer {}), a higher layer: {} names {}\n",
                        HARNESS_LAYERS[a], import.to, HARNESS_LAYERS[b], import.at, import.path
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures}");
}

/// A crate written into a temporary directory, for the reader's own tests.
fn temporary_crate(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let file = dir.path().join("src").join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    dir
}

fn cycles_of(files: &[(&str, &str)]) -> Vec<Vec<String>> {
    let dir = temporary_crate(files);
    Graph::of_crate(&dir.path().join("src"), true).cycles()
}

#[test]
fn cycles_are_found_through_every_kind_of_path() {
    let lib = ("lib.rs", "mod a; mod b; mod c; mod d;");
    // `crate::` paths, and a `use crate::{…}` group with a nested group.
    assert_eq!(
        cycles_of(&[
            lib,
            ("a.rs", "use crate::b::X;"),
            ("b.rs", "use crate::{c::{self, Y}, d};"),
            ("c.rs", "fn f() { crate::a::g(); }"),
            ("d.rs", "")
        ]),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
    // `super::` between siblings, and a child naming its `mod.rs` while
    // the `mod.rs` names the child by its bare name.
    let runtime = [
        ("lib.rs", "mod runtime;"),
        (
            "runtime/mod.rs",
            "pub mod docker; pub mod reaper; pub enum Any { D(docker::Docker) }",
        ),
        ("runtime/docker.rs", "use super::reaper::Reaper;"),
        ("runtime/reaper.rs", "fn f() { super::docker::sweep(); }"),
    ];
    let cycles = cycles_of(&runtime);
    assert_eq!(
        cycles,
        vec![vec![
            "runtime::docker".to_string(),
            "runtime::reaper".into()
        ]]
    );
    let trait_in_mod = [
        ("lib.rs", "mod sut;"),
        (
            "sut/mod.rs",
            "pub mod ordeal; pub trait System {} fn f() -> ordeal::Ordeal { todo!() }",
        ),
        ("sut/ordeal.rs", "use super::System;"),
    ];
    assert_eq!(
        cycles_of(&trait_in_mod),
        vec![vec!["sut".to_string(), "sut::ordeal".into()]]
    );
}

#[test]
fn comments_literals_tests_and_other_crates_are_no_imports() {
    let files = [
        ("lib.rs", "mod a; mod b;"),
        (
            "a.rs",
            "// crate::b::x\n/* crate::b::y /* nested */ */\nconst S: &str = \"crate::b::z\";\nconst R: &str = r#\"crate::b::w\"#;\nconst C: char = '\\'';\nfn f<'x>(s: &'x str) -> &'x str { s }\nuse std::process::Command;\n#[cfg(test)]\nmod tests { use crate::b::T; }\n#[cfg(test)]\nuse crate::b::U;\n",
        ),
        ("b.rs", "use crate::a::A;"),
    ];
    assert!(cycles_of(&files).is_empty());
    let dir = temporary_crate(&files);
    let graph = Graph::of_crate(&dir.path().join("src"), true);
    assert!(graph.imports["a"].is_empty(), "{:?}", graph.imports["a"]);
    assert_eq!(graph.imports["b"][0].to, "a");
    assert_eq!(graph.imports["b"][0].at, "src/b.rs:1");
}
