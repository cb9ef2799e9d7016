//! Dividing an output into parts: what a packing item costs, the room a part
//! leaves after its metadata and manifest, the settings check for the number
//! of parts, every part of a finished output planned and rendered in memory
//! (`render_parts`), and the parts predicted before a run from plain numbers
//! about its shards ([`predict`], [`PlannedOutput`]).

use std::fmt::Write as _;
use std::path::Path;

use super::metadata;
use super::part::{config, Part, PartSummary};
use super::place::Unit;
use super::plan::{self, Capacity, Item, Strategy};
use super::render::{render_manifest, render_metadata, shard_ranges, PartNumbers};
use super::Settings;
use crate::error::{Error, Result};
use crate::io::manifest::Manifest;
use crate::progress::human_bytes;

/// Files every part holds besides its items.
const FIXED_FILES: usize = 2;

/// Pretty JSON of a record, padded for the indentation it gets inside a
/// manifest's `shards` list, plus the separator.
fn manifest_cost<T: serde::Serialize>(v: &T) -> u64 {
    let s = serde_json::to_string_pretty(v).expect("records serialise");
    (s.len() + 8 * s.lines().count() + 8) as u64
}

/// The bytes and files a unit adds to a part, its manifest entry included.
fn item_of(u: &Unit) -> Item {
    let files: u64 = u.files().iter().map(|p| p.file.bytes).sum();
    let json = match u {
        Unit::Shard(rec, _) => manifest_cost(rec),
        Unit::Extra(p) => manifest_cost(&p.file),
    };
    Item {
        bytes: files + json,
        files: u.files().len(),
    }
}

/// Bytes reserved in every part for `dataset-metadata.json` and the parts of
/// `manifest.json` that do not depend on its shards.
fn reserve(m: &Manifest, s: &Settings) -> u64 {
    let w = PartNumbers::WIDEST;
    (render_metadata(m, s, w).len() + render_manifest(m, s, w, Vec::new(), Vec::new()).len()) as u64
        + 1024
}

/// The room a part leaves for items.
fn capacity(s: &Settings, reserve: u64, into: &Path) -> Result<Capacity> {
    if s.max_dataset_bytes <= reserve {
        return Err(config(
            into,
            format!(
                "max_dataset_bytes {} leaves no room: dataset-metadata.json and manifest.json of a part need up to {reserve} bytes",
                s.max_dataset_bytes
            ),
        ));
    }
    if s.max_files <= FIXED_FILES {
        return Err(config(
            into,
            format!(
                "max_files {} leaves no room: every part holds {FIXED_FILES} files besides its shards (dataset-metadata.json, manifest.json)",
                s.max_files
            ),
        ));
    }
    Ok(Capacity {
        bytes: s.max_dataset_bytes - reserve,
        files: s.max_files - FIXED_FILES,
    })
}

/// Settings Kaggle would refuse for `parts` parts, as one error.
fn check_settings(s: &Settings, parts: usize, origin: &str) -> Result<()> {
    let problems = s.problems(parts);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::config(
            origin,
            format!(
                "Kaggle would refuse this packaging: {}",
                problems.join("; ")
            ),
        ))
    }
}

/// Why `what` fits in no part.
fn too_large(what: &str, item: Item, cap: Capacity, s: &Settings) -> String {
    format!(
        "{what} ({} and {} files with its manifest entry) does not fit in one part: \
         max_dataset_bytes {} leaves {} and max_files {} leaves {} files per part after \
         dataset-metadata.json and manifest.json; raise the limits (a data shard and its \
         labels always go to the same part)",
        human_bytes(item.bytes),
        item.files,
        s.max_dataset_bytes,
        human_bytes(cap.bytes),
        s.max_files,
        cap.files
    )
}

/// Plan and render every part in memory.
pub(super) fn render_parts(
    m: &Manifest,
    s: &Settings,
    units: &[Unit],
    origin: &str,
) -> Result<(Vec<Part>, Strategy)> {
    let into = &s.into;
    let cap = capacity(s, reserve(m, s), into)?;
    let items: Vec<Item> = units.iter().map(item_of).collect();
    let (groups, strategy) = plan::pack(&items, cap).map_err(|k| {
        let what = match &units[k] {
            Unit::Shard(rec, f) => format!(
                "shard {} ({})",
                rec.index,
                f.iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" + ")
            ),
            Unit::Extra(p) => format!("file {}", p.name),
        };
        config(into, too_large(&what, items[k], cap, s))
    })?;
    let n = groups.len();
    check_settings(s, n, origin)?;
    let mut parts = Vec::with_capacity(n);
    for (gi, group) in groups.into_iter().enumerate() {
        let i = gi + 1;
        let slug = metadata::part_slug(&s.slug, i, n);
        let mut shards = Vec::new();
        let mut extras = Vec::new();
        for &u in &group {
            match &units[u] {
                Unit::Shard(rec, _) => shards.push(rec.clone()),
                Unit::Extra(p) => extras.push(p.file.clone()),
            }
        }
        let numbers = PartNumbers {
            i,
            n,
            shards: shards.len(),
            first: shards.first().map_or(0, |r| r.index),
            last: shards.last().map_or(0, |r| r.index),
            samples: shards.iter().map(|r| r.samples).sum(),
            dropped: shards.iter().map(|r| r.dropped.len()).sum(),
        };
        if s.subtitle.is_none() {
            let pr =
                metadata::subtitle_problems(&metadata::default_subtitle(numbers.samples, i, n));
            if !pr.is_empty() {
                return Err(Error::config(origin, pr.join("; ")));
            }
        }
        let shard_numbers: Vec<usize> = shards.iter().map(|r| r.index).collect();
        let manifest = render_manifest(m, s, numbers, shards, extras);
        let meta = render_metadata(m, s, numbers);
        let files = group.iter().map(|&u| units[u].files().len()).sum::<usize>() + FIXED_FILES;
        let bytes = group
            .iter()
            .flat_map(|&u| units[u].files())
            .map(|p| p.file.bytes)
            .sum::<u64>()
            + (manifest.len() + meta.len()) as u64;
        if bytes > s.max_dataset_bytes || files > s.max_files {
            return Err(config(
                into,
                format!(
                    "internal: part {slug} would hold {bytes} bytes in {files} files, over the limits; please report this"
                ),
            ));
        }
        parts.push(Part {
            summary: PartSummary {
                slug: slug.clone(),
                shards: shard_numbers,
                samples: numbers.samples,
                files,
                bytes,
            },
            slug,
            units: group,
            manifest,
            metadata: meta,
        });
    }
    Ok((parts, strategy))
}

/// One shard a run is planned to write, as far as packaging needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedShard {
    /// 1-based shard number (`dataN.npy`).
    pub index: usize,
    /// Samples it will hold.
    pub samples: usize,
    /// Bytes of its files (data, and labels if any), headers included.
    pub bytes: u64,
    /// Number of its files (data, and labels if any).
    pub files: usize,
}

/// What a run is planned to write, as far as packaging needs it (the caller
/// computes it from the run's plan).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlannedOutput {
    /// The shards, in order.
    pub shards: Vec<PlannedShard>,
    /// Stages of the pipeline (a manifest's provenance grows with them).
    pub stages: usize,
    /// Bytes of the pipeline as pretty JSON (every part's manifest and
    /// metadata record it).
    pub spec_bytes: u64,
}

/// Predict the parts of a pipeline's `[kaggle]` section before the run (for
/// `seispipe check` and to validate settings before `seispipe run` starts):
/// shard sizes from the plan, manifest sizes estimated. `origin` names the
/// settings' source (the pipeline file) in messages.
///
/// # Errors
/// Settings Kaggle would refuse, or a shard larger than a part.
pub fn predict(out: &PlannedOutput, s: &Settings, origin: &str) -> Result<String> {
    // Provenance is a few hundred bytes per sample and stage (in the shard's
    // provenance file), plus the shard's entry in the manifest.
    let per_sample = 300 + 200 * out.stages as u64;
    let items: Vec<Item> = out
        .shards
        .iter()
        .map(|sh| Item {
            bytes: sh.bytes + 1024 + per_sample * sh.samples as u64,
            files: sh.files,
        })
        .collect();
    let reserve = 16 * 1024 + 3 * out.spec_bytes;
    let cap = capacity(s, reserve, &s.into)?;
    let (groups, strategy) = plan::pack(&items, cap).map_err(|k| {
        config(
            &s.into,
            too_large(&format!("shard {}", out.shards[k].index), items[k], cap, s),
        )
    })?;
    check_settings(s, groups.len(), origin)?;
    let n = groups.len();
    let mut t = String::new();
    let _ = writeln!(
        t,
        "kaggle: about {n} parts ({}) in {}, each ≤ {} and ≤ {} files; datasets {}/{}{}",
        strategy.name(),
        s.into.display(),
        human_bytes(s.max_dataset_bytes),
        s.max_files,
        s.owner,
        metadata::part_slug(&s.slug, 1, n),
        if n > 1 {
            format!(" … {}/{}", s.owner, metadata::part_slug(&s.slug, n, n))
        } else {
            String::new()
        }
    );
    for (k, g) in groups.iter().enumerate() {
        let shards: Vec<usize> = g.iter().map(|&j| out.shards[j].index).collect();
        let samples: usize = g.iter().map(|&j| out.shards[j].samples).sum();
        let bytes: u64 = g.iter().map(|&j| items[j].bytes).sum();
        let _ = writeln!(
            t,
            "  part {}: shards {}, {samples} samples, {} files, about {}",
            k + 1,
            shard_ranges(&shards),
            g.iter().map(|&j| items[j].files).sum::<usize>() + FIXED_FILES,
            human_bytes(bytes)
        );
    }
    Ok(t)
}
