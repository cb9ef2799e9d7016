//! The text a packaging writes, rendered in memory: each part's
//! `dataset-metadata.json` and `manifest.json`, `upload.sh`, `PLAN.md`, the
//! summary table of the parts and the summary printed after packaging.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Value};

use super::metadata;
use super::part::PartSummary;
use super::plan::Strategy;
use super::Settings;
use crate::io::manifest::{Manifest, ShardRecord};
use crate::io::npy::WrittenFile;
use crate::progress::human_bytes;

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
pub(super) struct PartNumbers {
    /// Part number, 1-based.
    pub(super) i: usize,
    /// Number of parts.
    pub(super) n: usize,
    /// Shards in the part.
    pub(super) shards: usize,
    /// Its first shard number.
    pub(super) first: usize,
    /// Its last shard number.
    pub(super) last: usize,
    /// Samples in the part.
    pub(super) samples: usize,
    /// Samples dropped from its shards.
    pub(super) dropped: usize,
}

impl PartNumbers {
    /// The widest numbers.
    pub(super) const WIDEST: PartNumbers = PartNumbers {
        i: usize::MAX,
        n: usize::MAX,
        shards: usize::MAX,
        first: usize::MAX,
        last: usize::MAX,
        samples: usize::MAX,
        dropped: usize::MAX,
    };
}

/// A part's `dataset-metadata.json`.
pub(super) fn render_metadata(m: &Manifest, s: &Settings, p: PartNumbers) -> Vec<u8> {
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

/// A part's `manifest.json`: the output's manifest cut to the part's shards and files.
pub(super) fn render_manifest(
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
    part.report = None; // parts leave the report out
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

/// Shard numbers as ranges: `1–3,5,7–8`.
pub(super) fn shard_ranges(shards: &[usize]) -> String {
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

/// `upload.sh`.
pub(super) fn upload_script(s: &Settings, parts: &[PartSummary]) -> String {
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
    if let Some(name) = wheel_name(s) {
        let slug = super::part::wheel_slug(&s.slug);
        let _ = writeln!(
            sc,
            "# the seispipe wheel: {}/{slug}, {name}\n\
             upload {slug}\n",
            s.owner
        );
    }
    sc
}

/// The file name of the wheel the settings upload, if any.
fn wheel_name(s: &Settings) -> Option<String> {
    s.wheel
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
}

/// The `dataset-metadata.json` of the wheel's dataset (`SLUG-wheel`).
pub(super) fn wheel_metadata(s: &Settings, file: &str) -> Vec<u8> {
    let slug = super::part::wheel_slug(&s.slug);
    let v = serde_json::json!({
        "title": format!("{} (seispipe)", s.title),
        "subtitle": "The seispipe command and seispipe_data, to pip install",
        "id": format!("{}/{slug}", s.owner),
        "licenses": [{ "name": s.licenses.first().map_or("CC0-1.0", String::as_str) }],
        "description": format!(
            "The seispipe wheel that goes with the `{prefix}-part-…` datasets: the `seispipe` command (without libtorch) and the `seispipe_data` reader. In a notebook:\n\n```\n!pip install /kaggle/input/{slug}/{file}\n```\n",
            prefix = s.slug
        ),
    });
    (serde_json::to_string_pretty(&v).expect("metadata serialises") + "\n").into_bytes()
}

/// `PLAN.md`.
pub(super) fn plan_markdown(
    out_dir: &Path,
    s: &Settings,
    strategy: Strategy,
    parts: &[PartSummary],
) -> String {
    format!(
        "# Kaggle packaging of `{}`\n\n\
         Limits per part: {} bytes ({}) and {} files, dataset-metadata.json and manifest.json included.\n\
         Packing: {}. Datasets: `{}/{}-part-…`, license {}.\n\n{}\n\
         {}Upload with `sh upload.sh` (first time) or `sh upload.sh --version \"message\"`.\n\
         Check a part, here or in a Kaggle notebook: `seispipe verify PART`.\n",
        out_dir.display(),
        s.max_dataset_bytes,
        human_bytes(s.max_dataset_bytes),
        s.max_files,
        strategy.name(),
        s.owner,
        s.slug,
        s.licenses.first().map_or("", String::as_str),
        table(parts),
        wheel_name(s).map_or_else(String::new, |name| format!(
            "The seispipe wheel `{name}` is the dataset `{}/{}`: in a notebook, `pip install /kaggle/input/{}/{name}`.\n\n",
            s.owner,
            super::part::wheel_slug(&s.slug),
            super::part::wheel_slug(&s.slug)
        ))
    )
}

/// What packaging did (or would do, or found done), with the table.
pub(super) fn summary_text(
    out_dir: &Path,
    s: &Settings,
    strategy: Strategy,
    parts: &[PartSummary],
    what: &str,
) -> String {
    format!(
        "{what} {} into {}: {} parts ({}), each ≤ {} and ≤ {} files\n{}{}upload plan: {}\n",
        out_dir.display(),
        s.into.display(),
        parts.len(),
        strategy.name(),
        human_bytes(s.max_dataset_bytes),
        s.max_files,
        table(parts),
        wheel_name(s).map_or_else(String::new, |name| format!(
            "wheel: {name} as the dataset {}\n",
            super::part::wheel_slug(&s.slug)
        )),
        s.into.join("upload.sh").display()
    )
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
