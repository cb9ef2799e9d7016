//! The layering of `src/` stays true: no cycle between top-level modules.
//! Intended flow: app, cli, commands, settings → pipeline, kaggle, synth,
//! report → stage → model, physics, dsp → io, rng, sample, progress, error.
//! Edges are the `crate::…` paths in code (comments and `#[cfg(test)]`
//! modules left out).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Edges = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// Top-level module → module it refers to → files that do.
fn edges(src: &Path) -> Edges {
    let files: Vec<_> = crate::util::files_below(src)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    let mut out = Edges::new();
    for f in files {
        let rel = f
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut targets = Vec::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // use crate::{a, b::c, …}
                let group = &group[..group.find('}').unwrap_or(group.len())];
                targets.extend(
                    group
                        .split(',')
                        .map(|p| p.trim().split("::").next().unwrap().to_string()),
                );
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                targets.push(name);
            }
        }
        for t in targets {
            if !t.is_empty() && t != top && t.starts_with(|c: char| c.is_ascii_lowercase()) {
                out.entry(top.clone())
                    .or_default()
                    .entry(t)
                    .or_default()
                    .insert(rel.clone());
            }
        }
    }
    out
}

/// Every pair of modules that reach each other, with the files of each edge.
fn cycles(e: &Edges) -> Vec<String> {
    let mut nodes: BTreeSet<&String> = e.keys().collect();
    nodes.extend(e.values().flat_map(BTreeMap::keys));
    let nodes: Vec<&String> = nodes.into_iter().collect();
    let idx = |n: &String| nodes.iter().position(|m| *m == n).unwrap();
    let k = nodes.len();
    let mut reach = vec![vec![false; k]; k];
    for (a, to) in e {
        for b in to.keys() {
            reach[idx(a)][idx(b)] = true;
        }
    }
    for m in 0..k {
        for a in 0..k {
            for b in 0..k {
                reach[a][b] |= reach[a][m] && reach[m][b];
            }
        }
    }
    let mut out = Vec::new();
    for a in 0..k {
        for b in a + 1..k {
            if reach[a][b] && reach[b][a] {
                out.push(format!("{} ⇄ {}", nodes[a], nodes[b]));
            }
        }
    }
    out
}

#[test]
fn no_cycle_between_top_level_modules() {
    let e = edges(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        e.contains_key("stage") && e["stage"].contains_key("physics"),
        "the scan found no edges: {e:?}"
    );
    let found = cycles(&e);
    let detail: Vec<String> = e
        .iter()
        .flat_map(|(a, to)| {
            to.iter().map(move |(b, files)| {
                format!(
                    "{a} → {b} ({})",
                    files.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            })
        })
        .collect();
    assert!(
        found.is_empty(),
        "cycles between top-level modules: {found:?}\nedges:\n{}",
        detail.join("\n")
    );
}

/// The detector itself finds a cycle through a third module.
#[test]
fn the_cycle_detector_finds_cycles() {
    fn add(e: &mut Edges, a: &str, b: &str) {
        e.entry(a.into())
            .or_default()
            .entry(b.into())
            .or_default()
            .insert("x.rs".into());
    }
    let mut e = Edges::new();
    add(&mut e, "io", "error");
    add(&mut e, "stage", "io");
    assert!(cycles(&e).is_empty());
    add(&mut e, "io", "pipeline");
    add(&mut e, "pipeline", "stage");
    assert_eq!(cycles(&e).len(), 3, "{:?}", cycles(&e));
}

/// Folder (relative to `src`, `/`-separated) → file or subfolder in it → the
/// siblings it refers to → files that do. A folder's `mod.rs` declares its
/// files and re-exports from them, so it is left out; edges are
/// `crate::folder::x` paths and `super::x` paths that name a sibling.
fn folder_edges(src: &Path) -> BTreeMap<String, Edges> {
    let files: Vec<String> = crate::util::files_below(src)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .map(|p| {
            p.strip_prefix(src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    // The children (files and subfolders, without mod) of every folder.
    let mut children: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let parts: Vec<&str> = f.split('/').collect();
        for depth in 1..parts.len() {
            let folder = parts[..depth].join("/");
            let child = parts[depth].trim_end_matches(".rs").to_string();
            if child != "mod" {
                children.entry(folder).or_default().insert(child);
            }
        }
    }
    let mut out: BTreeMap<String, Edges> = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(src.join(f)).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let parts: Vec<&str> = f.split('/').collect();
        // The module path of this file, as components (mod.rs is its folder).
        let mut module: Vec<&str> = parts.clone();
        let last = module.pop().unwrap().trim_end_matches(".rs");
        if last != "mod" {
            module.push(last);
        }
        // Every `crate::a::b::…` and `super::…` path, as absolute components.
        let mut paths: Vec<Vec<String>> = Vec::new();
        for (i, _) in code.match_indices("crate::") {
            paths.extend(expand(&code[i + "crate::".len()..], &[]));
        }
        for (i, _) in code.match_indices("super::") {
            if code[..i].ends_with("super::")
                || code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
            {
                continue; // counted from the first `super::` of a chain
            }
            let mut rest = &code[i..];
            let mut base: Vec<&str> = module.clone();
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            let base: Vec<String> = base.iter().map(|s| (*s).to_string()).collect();
            paths.extend(expand(rest, &base));
        }
        for p in paths {
            // For every folder containing this file, the edge between the
            // file's child and the path's child of that folder.
            for depth in 1..parts.len() {
                let folder: Vec<&str> = parts[..depth].to_vec();
                if p.len() <= depth
                    || p[..depth] != folder.iter().map(|s| (*s).to_string()).collect::<Vec<_>>()[..]
                {
                    continue;
                }
                let from = parts[depth].trim_end_matches(".rs");
                let to = &p[depth];
                let kids = &children[&folder.join("/")];
                if from != "mod" && from != to && kids.contains(from) && kids.contains(to) {
                    out.entry(folder.join("/"))
                        .or_default()
                        .entry(from.to_string())
                        .or_default()
                        .entry(to.clone())
                        .or_default()
                        .insert(f.clone());
                }
            }
        }
    }
    out
}

/// The module paths a `use`-like text starting at `rest` names, prefixed
/// with `base`: `a::b::c` and `{a, b::c}` (one level of braces).
fn expand(rest: &str, base: &[String]) -> Vec<Vec<String>> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut head: Vec<String> = base.to_vec();
    let mut r = rest;
    loop {
        if let Some(group) = r.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            return group
                .split(',')
                .map(|p| {
                    let mut v = head.clone();
                    v.extend(p.trim().split("::").map(ident).filter(|s| !s.is_empty()));
                    v
                })
                .collect();
        }
        let name = ident(r);
        if name.is_empty() {
            return vec![head];
        }
        head.push(name.clone());
        match r[name.len()..].strip_prefix("::") {
            Some(next) => r = next,
            None => return vec![head],
        }
    }
}

#[test]
fn no_cycle_between_files_of_one_folder() {
    let all = folder_edges(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        all.get("pipeline")
            .is_some_and(|e| e.contains_key("executor")),
        "the scan found no edges: {all:?}"
    );
    let mut problems = Vec::new();
    for (folder, e) in &all {
        for c in cycles(e) {
            let (a, b) = c.split_once(" ⇄ ").unwrap();
            let files = |x: &str, y: &str| {
                e.get(x).and_then(|t| t.get(y)).map_or_else(
                    || "through others".into(),
                    |f| f.iter().cloned().collect::<Vec<_>>().join(", "),
                )
            };
            problems.push(format!(
                "{folder}/: {c} ({a} → {b}: {}; {b} → {a}: {})",
                files(a, b),
                files(b, a)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "files that import each other:\n{}",
        problems.join("\n")
    );
}
