//! Writing the Kaggle packaging of a finished output: one folder per part
//! (`SLUG-part-001/`, flat files `dataN.npy` + `modelN.npy`, a per-part
//! `manifest.json` that `seispipe verify` accepts, `dataset-metadata.json`),
//! plus `upload.sh` and `PLAN.md`. Everything is checked before anything is
//! written; parts are built in a hidden staging folder that is renamed into
//! place last, with a marker (`.seispipe-package.json`) that makes packaging
//! the same output with the same settings a no-op.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::metadata::{self, METADATA_NAME};
use super::plan::{self, Capacity, Item, Strategy};
use super::{KaggleSpec, LinkMode, Settings};
use crate::error::{Error, Result};
use crate::io::manifest::{write_atomic, Manifest, ShardRecord, MANIFEST_NAME};
use crate::io::npy::{self, WrittenFile};
use crate::pipeline::build::Pipeline;
use crate::pipeline::executor::Plan;
use crate::progress::human_bytes;
use crate::sample::VELOCITY_SHAPE;

/// Marker written last into a finished packaging.
pub const MARKER_NAME: &str = ".seispipe-package.json";
/// Marker format.
pub const MARKER_FORMAT: &str = "seispipe-kaggle/1";
/// Marker of a staging folder (safe to delete: it holds only links or copies).
const STAGING_MARK: &str = ".seispipe-staging";
/// Files every part holds besides its items.
const FIXED_FILES: usize = 2;

/// How to package.
#[derive(Debug, Clone, Copy, Default)]
pub struct PackOptions {
    /// Re-hash every output file against the manifest before packaging
    /// (otherwise presence and sizes are checked).
    pub rehash: bool,
    /// Plan and validate only; write nothing.
    pub dry_run: bool,
}

/// One part of a packaging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSummary {
    /// Folder name and slug.
    pub slug: String,
    /// Shard numbers it holds, ascending.
    pub shards: Vec<usize>,
    /// Samples it holds.
    pub samples: usize,
    /// Files in its folder, metadata and manifest included.
    pub files: usize,
    /// Bytes in its folder, metadata and manifest included.
    pub bytes: u64,
}

/// What [`package`] did.
#[derive(Debug, Clone)]
pub struct PackOutcome {
    /// The target folder.
    pub into: PathBuf,
    /// The parts.
    pub parts: Vec<PartSummary>,
    /// The target already held this packaging; nothing was written.
    pub already_packaged: bool,
    /// The summary table (also in `PLAN.md`) and what was done.
    pub text: String,
}

/// A file of the output and its name inside a part.
#[derive(Debug, Clone)]
struct Placed {
    source: PathBuf,
    name: String,
    file: WrittenFile,
}

/// One packing item: a shard (data + labels) or a side file.
#[derive(Debug, Clone)]
enum Unit {
    Shard(ShardRecord, Vec<Placed>),
    Extra(Placed),
}

impl Unit {
    fn files(&self) -> &[Placed] {
        match self {
            Unit::Shard(_, f) => f,
            Unit::Extra(p) => std::slice::from_ref(p),
        }
    }
}

/// A part, rendered in memory.
struct Part {
    slug: String,
    units: Vec<usize>,
    manifest: Vec<u8>,
    metadata: Vec<u8>,
    summary: PartSummary,
}

fn base_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// Pretty JSON of a record, padded for the indentation it gets inside a
/// manifest's `shards` list, plus the separator.
fn manifest_cost<T: serde::Serialize>(v: &T) -> u64 {
    let s = serde_json::to_string_pretty(v).expect("records serialise");
    (s.len() + 8 * s.lines().count() + 8) as u64
}

fn config(into: &Path, reason: impl Into<String>) -> Error {
    Error::config(into.display().to_string(), reason)
}

/// Stage kinds of the pipeline recorded in a manifest.
fn stage_kinds(pipeline: &Value) -> String {
    let kinds: Vec<&str> = pipeline
        .get("stages")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.get("type").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if kinds.is_empty() {
        "none".into()
    } else {
        kinds.join(" → ")
    }
}

/// Numbers that describe one part (placeholders of maximal width give the
/// upper bound used to reserve room for the metadata and manifest).
#[derive(Clone, Copy)]
struct PartNumbers {
    i: usize,
    n: usize,
    shards: usize,
    first: usize,
    last: usize,
    samples: usize,
    dropped: usize,
}

impl PartNumbers {
    const WIDEST: PartNumbers = PartNumbers {
        i: usize::MAX,
        n: usize::MAX,
        shards: usize::MAX,
        first: usize::MAX,
        last: usize::MAX,
        samples: usize::MAX,
        dropped: usize::MAX,
    };
}

fn render_metadata(m: &Manifest, s: &Settings, p: PartNumbers) -> Vec<u8> {
    let slug = metadata::part_slug(&s.slug, p.i, p.n);
    let title = metadata::part_title(&s.title, p.i, p.n);
    let subtitle = s
        .subtitle
        .clone()
        .unwrap_or_else(|| metadata::default_subtitle(p.samples, p.i, p.n));
    let labels = m.label_shape.as_ref().map_or_else(
        || "no velocity maps".to_string(),
        |l| format!("velocity maps {l:?} in `modelN.npy`"),
    );
    let pipeline = {
        let mut p = m.pipeline.clone();
        if let Some(o) = p.as_object_mut() {
            o.remove("kaggle");
        }
        serde_json::to_string_pretty(&p).expect("pipeline serialises")
    };
    let description = format!(
        "Part {i} of {n} of one seispipe output: {shards} shard(s) (`data{first}.npy` to `data{last}.npy`), {samples} samples.\n\n\
         * Files: seismic samples {shape:?} `{dtype}` in `dataN.npy` ({labels}); file N of both kinds holds the same samples in the same order.\n\
         * Whole output: {total} samples in {all_shards} shards, in {n} datasets `{owner}/{prefix}-part-…`.\n\
         * Made by seispipe {ver} from {samples_in} input samples with pipeline `{file}`, seed {seed}, fingerprint `{fp}`.\n\
         * Stages: {stages}.\n\
         * `manifest.json` lists the SHA-256 of every file and where each sample came from; check a download with `seispipe verify /kaggle/input/{slug}`.\n\n\
         Pipeline:\n\n```json\n{pipeline}\n```\n",
        i = p.i,
        n = p.n,
        shards = p.shards,
        first = p.first,
        last = p.last,
        samples = p.samples,
        shape = m.sample_shape,
        dtype = m.dtype,
        total = m.samples_out,
        all_shards = m.shards.len(),
        owner = s.owner,
        prefix = s.slug,
        ver = m.seispipe_version,
        samples_in = m.samples_in,
        file = m.pipeline_file,
        seed = m.seed,
        fp = m.fingerprint,
        stages = stage_kinds(&m.pipeline),
    );
    let v = metadata::render(
        &s.owner,
        &slug,
        &title,
        &subtitle,
        s.licenses.first().map_or("", String::as_str),
        &description,
    );
    let mut out = serde_json::to_vec_pretty(&v).expect("metadata serialises");
    out.push(b'\n');
    out
}

fn render_manifest(
    m: &Manifest,
    s: &Settings,
    p: PartNumbers,
    shards: Vec<ShardRecord>,
    extras: Vec<WrittenFile>,
) -> Vec<u8> {
    let mut part = m.clone();
    part.layout = "openfwi-flat".into();
    part.samples_out = p.samples;
    part.samples_dropped = p.dropped;
    part.shards = shards;
    part.extra_files = extras;
    let mut v = serde_json::to_value(&part).expect("manifest serialises");
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "kaggle_part".into(),
            json!({
                "part": p.i,
                "parts": p.n,
                "id": format!("{}/{}", s.owner, metadata::part_slug(&s.slug, p.i, p.n)),
                "output_samples_out": m.samples_out,
                "output_shards": m.shards.len(),
                "note": "only this part's shards; file paths are flat (dataN.npy, modelN.npy)",
            }),
        );
    }
    let mut out = serde_json::to_vec_pretty(&v).expect("manifest serialises");
    out.push(b'\n');
    out
}

/// What identifies a packaging: the output's manifest bytes and every setting
/// that changes what is written (not the link mode or the target path).
fn identity(manifest_bytes: &[u8], s: &Settings) -> String {
    let settings = json!({
        "format": MARKER_FORMAT,
        "owner": s.owner, "slug": s.slug, "title": s.title, "subtitle": s.subtitle,
        "licenses": s.licenses, "max_dataset_bytes": s.max_dataset_bytes, "max_files": s.max_files,
    });
    let mut h = Sha256::new();
    h.update(manifest_bytes);
    h.update(settings.to_string().as_bytes());
    npy::hex(&h.finalize())
}

/// The units of an output, in shard order then side files.
fn units_of(m: &Manifest, out_dir: &Path) -> Result<Vec<Unit>> {
    let mut names = std::collections::BTreeMap::<String, String>::new();
    let mut place = |f: &WrittenFile| -> Result<Placed> {
        let name = base_name(&f.path);
        if let Some(prev) = names.insert(name.clone(), f.path.clone()) {
            return Err(Error::Verify {
                dir: out_dir.to_path_buf(),
                reason: format!(
                    "{prev} and {} would both be `{name}` in a flat Kaggle folder",
                    f.path
                ),
            });
        }
        let mut file = f.clone();
        file.path.clone_from(&name);
        Ok(Placed {
            source: out_dir.join(&f.path),
            name,
            file,
        })
    };
    let mut shards: Vec<&ShardRecord> = m.shards.iter().collect();
    shards.sort_by_key(|s| s.index);
    let mut units = Vec::new();
    for sh in shards {
        let placed = sh
            .files
            .iter()
            .map(&mut place)
            .collect::<Result<Vec<_>>>()?;
        let mut rec = sh.clone();
        rec.files = placed.iter().map(|p| p.file.clone()).collect();
        units.push(Unit::Shard(rec, placed));
    }
    for x in &m.extra_files {
        units.push(Unit::Extra(place(x)?));
    }
    Ok(units)
}

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
fn render_parts(
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

fn shard_ranges(shards: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < shards.len() {
        let mut j = i;
        while j + 1 < shards.len() && shards[j + 1] == shards[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            shards[i].to_string()
        } else {
            format!("{}–{}", shards[i], shards[j])
        });
        i = j + 1;
    }
    if out.is_empty() {
        "–".into()
    } else {
        out.join(",")
    }
}

/// The summary table (Markdown, readable as text).
fn table(parts: &[PartSummary]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| part | folder / slug | shards | samples | files | bytes |"
    );
    let _ = writeln!(s, "|---:|---|---|---:|---:|---:|");
    for (k, p) in parts.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} ({}) |",
            k + 1,
            p.slug,
            shard_ranges(&p.shards),
            p.samples,
            p.files,
            p.bytes,
            human_bytes(p.bytes)
        );
    }
    let _ = writeln!(
        s,
        "| all | {} parts | {} | {} | {} | {} ({}) |",
        parts.len(),
        parts.iter().map(|p| p.shards.len()).sum::<usize>(),
        parts.iter().map(|p| p.samples).sum::<usize>(),
        parts.iter().map(|p| p.files).sum::<usize>(),
        parts.iter().map(|p| p.bytes).sum::<u64>(),
        human_bytes(parts.iter().map(|p| p.bytes).sum::<u64>())
    );
    s
}

fn upload_script(s: &Settings, parts: &[PartSummary]) -> String {
    let mut sc = String::new();
    let _ = writeln!(
        sc,
        "#!/bin/sh\n\
         # Upload plan written by `seispipe package`: one Kaggle dataset per part.\n\
         # seispipe never uploads and never reads credentials: install the Kaggle CLI\n\
         # (`pip install kaggle`), put your API token in ~/.kaggle/kaggle.json, then run\n\
         #   sh upload.sh                      first upload (`kaggle datasets create`, private)\n\
         #   sh upload.sh --version \"message\"  new version of every part (`kaggle datasets version`)\n\
         # Part folders are flat (no sub-folders), so no --dir-mode is needed.\n\
         # Datasets are created private; add --public to `create`, or publish on kaggle.com.\n\
         set -eu\n\
         cd \"$(dirname \"$0\")\"\n\
         mode=create\n\
         msg=\"\"\n\
         if [ \"${{1:-}}\" = \"--version\" ]; then\n  mode=version\n  msg=\"${{2:?usage: sh upload.sh --version MESSAGE}}\"\nfi\n\
         upload() {{\n  if [ \"$mode\" = version ]; then\n    kaggle datasets version -p \"$1\" -m \"$msg\"\n  else\n    kaggle datasets create -p \"$1\"\n  fi\n}}\n"
    );
    for (k, p) in parts.iter().enumerate() {
        let _ = writeln!(
            sc,
            "# part {} of {}: {}/{}, shards {}, {} samples, {} files, {}\n\
             # kaggle datasets create -p {slug}\n\
             # kaggle datasets version -p {slug} -m \"MESSAGE\"\n\
             upload {slug}\n",
            k + 1,
            parts.len(),
            s.owner,
            p.slug,
            shard_ranges(&p.shards),
            p.samples,
            p.files,
            human_bytes(p.bytes),
            slug = p.slug
        );
    }
    sc
}

fn plan_markdown(
    out_dir: &Path,
    s: &Settings,
    strategy: Strategy,
    parts: &[PartSummary],
) -> String {
    format!(
        "# Kaggle packaging of `{}`\n\n\
         Limits per part: {} bytes ({}) and {} files, dataset-metadata.json and manifest.json included.\n\
         Packing: {}. Datasets: `{}/{}-part-…`, license {}.\n\n{}\n\
         Upload with `sh upload.sh` (first time) or `sh upload.sh --version \"message\"`.\n\
         Check a part, here or in a Kaggle notebook: `seispipe verify PART`.\n",
        out_dir.display(),
        s.max_dataset_bytes,
        human_bytes(s.max_dataset_bytes),
        s.max_files,
        strategy.name(),
        s.owner,
        s.slug,
        s.licenses.first().map_or("", String::as_str),
        table(parts)
    )
}

fn summary_text(
    out_dir: &Path,
    s: &Settings,
    strategy: Strategy,
    parts: &[PartSummary],
    what: &str,
) -> String {
    format!(
        "{what} {} into {}: {} parts ({}), each ≤ {} and ≤ {} files\n{}upload plan: {}\n",
        out_dir.display(),
        s.into.display(),
        parts.len(),
        strategy.name(),
        human_bytes(s.max_dataset_bytes),
        s.max_files,
        table(parts),
        s.into.join("upload.sh").display()
    )
}

/// Check that every file the parts need is present with its size (and hash).
fn check_sources(out_dir: &Path, units: &[Unit], rehash: bool) -> Result<()> {
    let mut bad = Vec::new();
    for p in units.iter().flat_map(Unit::files) {
        match std::fs::metadata(&p.source) {
            Err(_) => bad.push(format!("{} is missing", p.source.display())),
            Ok(md) if md.len() != p.file.bytes => bad.push(format!(
                "{} has {} bytes, the manifest says {}",
                p.source.display(),
                md.len(),
                p.file.bytes
            )),
            Ok(_) if rehash => match npy::sha256_file(&p.source) {
                Ok(h) if h == p.file.sha256 => {}
                Ok(h) => bad.push(format!(
                    "{} has sha256 {h}, the manifest says {}",
                    p.source.display(),
                    p.file.sha256
                )),
                Err(e) => bad.push(e.to_string()),
            },
            Ok(_) => {}
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    let n = bad.len();
    bad.truncate(10);
    Err(Error::Verify {
        dir: out_dir.to_path_buf(),
        reason: format!(
            "the output does not match its manifest ({n} problems), nothing packaged: {}",
            bad.join("; ")
        ),
    })
}

fn place(src: &Path, dst: &Path, mode: LinkMode) -> Result<()> {
    match mode {
        LinkMode::Link => std::fs::hard_link(src, dst).map_err(|e| {
            Error::io(
                dst,
                "hard-link (parts must be on the output's file system; else use --copy)",
                e,
            )
        }),
        LinkMode::Move => {
            if std::fs::hard_link(src, dst).is_ok() {
                Ok(())
            } else {
                copy(src, dst)
            }
        }
        LinkMode::Copy => copy(src, dst),
    }
}

fn copy(src: &Path, dst: &Path) -> Result<()> {
    std::fs::copy(src, dst).map_err(|e| Error::io(dst, "copy", e))?;
    std::fs::File::open(dst)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dst, "fsync", e))
}

fn staging_path(into: &Path) -> Result<PathBuf> {
    let name = into
        .file_name()
        .ok_or_else(|| config(into, "the target folder needs a name (not `.` or `/`)"))?;
    Ok(into.with_file_name(format!(".{}.partial", name.to_string_lossy())))
}

fn is_inside(a: &Path, b: &Path) -> bool {
    let (Ok(a), Ok(b)) = (std::path::absolute(a), std::path::absolute(b)) else {
        return false;
    };
    a.starts_with(b)
}

/// What the target folder holds now.
enum Target {
    Absent,
    Empty,
    Same(Value),
    Different(String),
    Foreign,
}

fn inspect_target(into: &Path, id: &str) -> Result<Target> {
    if !into.exists() {
        return Ok(Target::Absent);
    }
    if !into.is_dir() {
        return Ok(Target::Foreign);
    }
    let marker = into.join(MARKER_NAME);
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        return Ok(if v.get("identity").and_then(Value::as_str) == Some(id) {
            Target::Same(v)
        } else {
            Target::Different(
                v.get("source")
                    .and_then(Value::as_str)
                    .unwrap_or("another output")
                    .to_string(),
            )
        });
    }
    let mut rd = std::fs::read_dir(into).map_err(|e| Error::io(into, "list directory", e))?;
    Ok(if rd.next().is_none() {
        Target::Empty
    } else {
        Target::Foreign
    })
}

/// The packaging already in place: check its parts are whole and finish a
/// `--move` that stopped before removing the sources.
fn already_packaged(
    out_dir: &Path,
    s: &Settings,
    marker: &Value,
    units: &[Unit],
) -> Result<PackOutcome> {
    let count = |v: &Value| {
        v.as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .unwrap_or(0)
    };
    let parts: Vec<PartSummary> = marker
        .get("parts")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|p| PartSummary {
                    slug: p["slug"].as_str().unwrap_or_default().to_string(),
                    shards: p["shards"]
                        .as_array()
                        .map(|v| v.iter().map(count).collect())
                        .unwrap_or_default(),
                    samples: count(&p["samples"]),
                    files: count(&p["files"]),
                    bytes: p["bytes"].as_u64().unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    for p in &parts {
        let dir = s.into.join(&p.slug);
        let rep = size_problems(&dir);
        if !rep.is_empty() {
            return Err(config(
                &s.into,
                format!(
                    "holds this packaging, but part {} changed ({}); delete {} and package again",
                    p.slug,
                    rep.join("; "),
                    s.into.display()
                ),
            ));
        }
    }
    if s.mode == LinkMode::Move {
        remove_sources(units)?;
    }
    let strategy = match marker.get("strategy").and_then(Value::as_str) {
        Some("first-fit decreasing") => Strategy::FirstFitDecreasing,
        Some("best-fit decreasing") => Strategy::BestFitDecreasing,
        _ => Strategy::InOrder,
    };
    Ok(PackOutcome {
        into: s.into.clone(),
        text: summary_text(
            out_dir,
            s,
            strategy,
            &parts,
            "already packaged (nothing to do):",
        ),
        parts,
        already_packaged: true,
    })
}

/// Files of a part that are missing or have another size than its manifest says.
fn size_problems(dir: &Path) -> Vec<String> {
    let m = match Manifest::load(dir) {
        Ok(m) => m,
        Err(e) => return vec![e.to_string()],
    };
    m.all_files()
        .filter_map(|f| match std::fs::metadata(dir.join(&f.path)) {
            Err(_) => Some(format!("{} is missing", f.path)),
            Ok(md) if md.len() != f.bytes => Some(format!("{} has another size", f.path)),
            Ok(_) => None,
        })
        .collect()
}

fn remove_sources(units: &[Unit]) -> Result<()> {
    for p in units.iter().flat_map(Unit::files) {
        match std::fs::remove_file(&p.source) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p.source, "remove after --move", e)),
        }
    }
    Ok(())
}

/// Package the finished output `out_dir` as Kaggle datasets under `s.into`.
/// `origin` names the settings' source in messages (a pipeline file or
/// `seispipe package`).
///
/// # Errors
/// No manifest or files that do not match it; settings Kaggle would refuse; a
/// shard larger than a part; a target folder holding something else; I/O.
/// Every check happens before anything is written.
pub fn package(
    out_dir: &Path,
    s: &Settings,
    origin: &str,
    opts: &PackOptions,
) -> Result<PackOutcome> {
    let mpath = out_dir.join(MANIFEST_NAME);
    let manifest_bytes = std::fs::read(&mpath).map_err(|e| Error::Verify {
        dir: out_dir.to_path_buf(),
        reason: format!(
            "no readable {MANIFEST_NAME} ({e}): not a finished seispipe output (a run writes it when every shard is done; run `seispipe run` again to finish)"
        ),
    })?;
    let m = Manifest::load(out_dir)?;
    if m.shards.is_empty() {
        return Err(Error::Verify {
            dir: out_dir.to_path_buf(),
            reason: "the manifest lists no shards: nothing to package".into(),
        });
    }
    if is_inside(&s.into, out_dir) || is_inside(out_dir, &s.into) {
        return Err(config(
            &s.into,
            format!(
                "the target folder must be outside the output {} (and not contain it); e.g. `{}-kaggle`",
                out_dir.display(),
                out_dir.display()
            ),
        ));
    }
    let units = units_of(&m, out_dir)?;
    let id = identity(&manifest_bytes, s);
    match inspect_target(&s.into, &id)? {
        Target::Same(marker) if !opts.dry_run => {
            return already_packaged(out_dir, s, &marker, &units)
        }
        Target::Different(src) => {
            return Err(config(
                &s.into,
                format!(
                    "already holds a different packaging (of {src}, or with other settings); choose another target folder or delete this one"
                ),
            ))
        }
        Target::Foreign => {
            return Err(config(
                &s.into,
                "exists and holds files that are not a seispipe packaging; choose a new or empty folder",
            ))
        }
        _ => {}
    }
    let (parts, strategy) = render_parts(&m, s, &units, origin)?;
    let summaries: Vec<PartSummary> = parts.iter().map(|p| p.summary.clone()).collect();
    if opts.dry_run {
        return Ok(PackOutcome {
            into: s.into.clone(),
            text: summary_text(out_dir, s, strategy, &summaries, "would package (dry run)"),
            parts: summaries,
            already_packaged: false,
        });
    }
    check_sources(out_dir, &units, opts.rehash)?;

    let staging = staging_path(&s.into)?;
    if staging.exists() {
        if staging.join(STAGING_MARK).exists() {
            std::fs::remove_dir_all(&staging)
                .map_err(|e| Error::io(&staging, "remove an unfinished earlier packaging", e))?;
        } else {
            return Err(config(
                &staging,
                "exists and is not a seispipe staging folder; move it away",
            ));
        }
    }
    let res = write_staging(out_dir, s, &units, &parts, strategy, &staging, &id);
    if let Err(e) = res {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    if s.into.exists() {
        // An empty folder (checked above): make way for the rename.
        std::fs::remove_dir(&s.into).map_err(|e| Error::io(&s.into, "replace empty folder", e))?;
    }
    std::fs::rename(&staging, &s.into).map_err(|e| Error::io(&s.into, "rename into place", e))?;
    if let Some(parent) = s.into.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        npy::sync_dir(parent)?;
    }
    if s.mode == LinkMode::Move {
        remove_sources(&units)?;
    }
    Ok(PackOutcome {
        into: s.into.clone(),
        text: summary_text(out_dir, s, strategy, &summaries, "packaged"),
        parts: summaries,
        already_packaged: false,
    })
}

fn write_staging(
    out_dir: &Path,
    s: &Settings,
    units: &[Unit],
    parts: &[Part],
    strategy: Strategy,
    staging: &Path,
    id: &str,
) -> Result<()> {
    std::fs::create_dir_all(staging).map_err(|e| Error::io(staging, "create", e))?;
    write_atomic(
        &staging.join(STAGING_MARK),
        b"seispipe package in progress\n",
    )?;
    let mut marker_parts = Vec::new();
    for p in parts {
        let dir = staging.join(&p.slug);
        std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, "create", e))?;
        for &u in &p.units {
            for f in units[u].files() {
                place(&f.source, &dir.join(&f.name), s.mode)?;
            }
        }
        write_atomic(&dir.join(MANIFEST_NAME), &p.manifest)?;
        write_atomic(&dir.join(METADATA_NAME), &p.metadata)?;
        npy::sync_dir(&dir)?;
        marker_parts.push(json!({
            "slug": p.slug,
            "shards": p.summary.shards,
            "samples": p.summary.samples,
            "files": p.summary.files,
            "bytes": p.summary.bytes,
        }));
    }
    let summaries: Vec<PartSummary> = parts.iter().map(|p| p.summary.clone()).collect();
    let script = staging.join("upload.sh");
    write_atomic(&script, upload_script(s, &summaries).as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(&script, "make executable", e))?;
    }
    write_atomic(
        &staging.join("PLAN.md"),
        plan_markdown(out_dir, s, strategy, &summaries).as_bytes(),
    )?;
    let marker = json!({
        "format": MARKER_FORMAT,
        "identity": id,
        "source": out_dir.display().to_string(),
        "strategy": strategy.name(),
        "parts": marker_parts,
    });
    write_atomic(
        &staging.join(MARKER_NAME),
        serde_json::to_string_pretty(&marker)
            .expect("marker serialises")
            .as_bytes(),
    )?;
    std::fs::remove_file(staging.join(STAGING_MARK))
        .map_err(|e| Error::io(staging, "finish staging", e))?;
    npy::sync_dir(staging)
}

/// Predict the parts of a pipeline's `[kaggle]` section before the run (for
/// `seispipe check` and to validate settings before `seispipe run` starts):
/// shard sizes from the plan, manifest sizes estimated.
///
/// # Errors
/// Settings Kaggle would refuse, or a shard larger than a part.
pub fn predict(pipeline: &Pipeline, plan: &Plan, s: &Settings) -> Result<String> {
    let dt = pipeline.spec.output.dtype;
    let file_bytes = |n: usize, shape: &[usize]| -> u64 {
        let mut sh = vec![n];
        sh.extend_from_slice(shape);
        npy::header_bytes(dt, &sh).len() as u64
            + (n * shape.iter().product::<usize>() * npy::itemsize(dt)) as u64
    };
    // Provenance is a few hundred bytes per sample and stage in a manifest.
    let per_sample = 300 + 200 * pipeline.stages.len() as u64;
    let items: Vec<Item> = (0..plan.shards)
        .map(|j| {
            let n = plan.shard_range(j).len();
            let mut b = file_bytes(n, &pipeline.out_shape) + 1024 + per_sample * n as u64;
            if pipeline.out_labels {
                b += file_bytes(n, &VELOCITY_SHAPE);
            }
            Item {
                bytes: b,
                files: 1 + usize::from(pipeline.out_labels),
            }
        })
        .collect();
    let spec_len = serde_json::to_string_pretty(&pipeline.spec).map_or(0, |t| t.len()) as u64;
    let reserve = 16 * 1024 + 3 * spec_len;
    let cap = capacity(s, reserve, &s.into)?;
    let (groups, strategy) = plan::pack(&items, cap).map_err(|k| {
        config(
            &s.into,
            too_large(&format!("shard {}", k + 1), items[k], cap, s),
        )
    })?;
    check_settings(s, groups.len(), &pipeline.file)?;
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
        let shards: Vec<usize> = g.iter().map(|j| j + 1).collect();
        let samples: usize = g.iter().map(|&j| plan.shard_range(j).len()).sum();
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

/// `seispipe package OUT_DIR …`: the output's own `[kaggle]` section (if its
/// pipeline had one) overlaid by the flags.
///
/// # Errors
/// See [`package`].
pub fn package_cli(args: &crate::cli::PackageArgs) -> Result<String> {
    let origin = "seispipe package";
    let from_manifest: KaggleSpec = Manifest::load(&args.out_dir)
        .ok()
        .and_then(|m| m.pipeline.get("kaggle").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let spec = from_manifest.overlaid(&KaggleSpec::from_cli(args));
    let s = Settings::resolve(&spec, origin, &args.out_dir)?;
    let opts = PackOptions {
        rehash: !args.sizes_only,
        dry_run: args.dry_run,
    };
    Ok(package(&args.out_dir, &s, origin, &opts)?.text)
}

/// The settings of a pipeline's `[kaggle]` section, if it has one.
///
/// # Errors
/// A missing owner, slug or title, or a bad byte size.
pub fn pipeline_settings(pipeline: &Pipeline) -> Result<Option<(Settings, bool)>> {
    let Some(k) = &pipeline.spec.kaggle else {
        return Ok(None);
    };
    let out_dir = Path::new(&pipeline.spec.output.dir);
    let s = Settings::resolve(k, &pipeline.file, out_dir)?;
    let after_run = k.after_run.unwrap_or(true);
    if after_run && s.mode == LinkMode::Move {
        // A rerun of the pipeline would find the moved shards missing and
        // compute them again; links already cost no disk.
        return Err(Error::config(
            &pipeline.file,
            "kaggle.mode = \"move\" cannot be used with after_run = true (a rerun would regenerate the moved shards); use \"link\" (no extra disk), or set after_run = false and run `seispipe package --move` yourself",
        ));
    }
    Ok(Some((s, after_run)))
}

/// `seispipe check`: the predicted parts of a pipeline with `[kaggle]`.
///
/// # Errors
/// Settings Kaggle would refuse, or a shard larger than a part.
pub fn check_text(pipeline: &Pipeline, plan: &Plan) -> Result<Option<String>> {
    let Some((s, after_run)) = pipeline_settings(pipeline)? else {
        return Ok(None);
    };
    let mut t = predict(pipeline, plan, &s)?;
    if !after_run {
        t.push_str("  (after_run = false: package with `seispipe package` when the run is done)\n");
    }
    Ok(Some(t))
}

/// Before `seispipe run`: validate the `[kaggle]` section against the plan, so
/// a bad slug fails now rather than after days of work. Returns the settings
/// when the run should package itself at the end.
///
/// # Errors
/// See [`check_text`].
pub fn before_run(pipeline: &Pipeline, plan: &Plan) -> Result<Option<Settings>> {
    let Some((s, after_run)) = pipeline_settings(pipeline)? else {
        return Ok(None);
    };
    predict(pipeline, plan, &s)?;
    Ok(after_run.then_some(s))
}

/// After a successful `seispipe run`: package the output (file sizes are
/// checked; the run has just hashed every file).
///
/// # Errors
/// See [`package`].
pub fn after_run(pipeline: &Pipeline, s: &Settings) -> Result<PackOutcome> {
    let dir = &pipeline.spec.output.dir;
    package(Path::new(dir), s, &pipeline.file, &PackOptions::default()).map_err(|e| match e {
        // Say that the output itself is complete, and how to retry.
        Error::Config { file, reason } => Error::Config {
            file,
            reason: format!(
                "the run finished and {dir} is complete, but packaging for Kaggle failed: {reason} (then run `seispipe package {dir}`)"
            ),
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_well() {
        assert_eq!(shard_ranges(&[1, 2, 3, 5, 7, 8]), "1–3,5,7–8");
        assert_eq!(shard_ranges(&[]), "–");
    }

    #[test]
    fn bytes_read_well() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(100_000_000_000), "100.0 GB");
    }
}
