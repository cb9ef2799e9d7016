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
