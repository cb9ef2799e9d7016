//! `report.html`: one self-contained page per output (CSS inline, charts as
//! inline SVG, previews as PNG data URIs; nothing fetched), written at the
//! end of `seispipe run` and `seispipe merge` and by `seispipe report`, and
//! named by the manifest (`report`, without a hash: it shows run times).
//! Its sections: what was
//! run, previews, drawn stage parameters, value distributions per shard,
//! throughput over time, disk use. The same output gives the same bytes.

use std::fmt::Write as _;
use std::path::Path;

use base64::Engine as _;
use rayon::prelude::*;

use sha2::{Digest, Sha256};

use super::preview::{self, DEFAULT_CLIP_PERCENTILE};
use super::sections::{disk_section, distributions_section, params_section, throughput_section};
use super::source::Source;
use super::stats;
use super::svg::esc;
use crate::error::Result;
use crate::io::atomic;
use crate::io::manifest::Manifest;
use crate::io::npy::{self, WrittenFile};

pub use crate::io::manifest::REPORT_NAME;

/// What goes into a report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Preview images (augmented copies, from the first and last shards).
    pub previews: usize,
    /// Samples read from each shard for its value distributions.
    pub samples_per_shard: usize,
    /// Previews the run drew ahead, taken where they equal the report's.
    pub drafts: Option<std::sync::Arc<super::Drafts>>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            previews: 2,
            samples_per_shard: 2,
            drafts: None,
        }
    }
}

const CSS: &str = "body{font-family:sans-serif;margin:24px auto;max-width:1240px;color:#222;line-height:1.4}\
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:32px}\
h3{font-size:15px;margin-bottom:4px}table{border-collapse:collapse;margin:8px 0}\
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;font-size:13px;vertical-align:top}\
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.flag{color:#c0392b;font-weight:bold}.note{color:#666;font-size:13px}img{max-width:100%;border:1px solid #eee}\
.param{display:inline-block;margin:4px 16px 12px 0;vertical-align:top}code,pre{font-size:12px;background:#f7f7f7}\
pre{padding:8px;overflow-x:auto}";

/// Write `DIR/report.html` for the output in `dir`; returns its entry for
/// the manifest's `extra_files`.
///
/// # Errors
/// No readable manifest, provenance that cannot be read, or the file cannot
/// be written. Problems with single shards or previews are shown in the report.
pub fn write_report(dir: &Path, opts: &ReportOptions) -> Result<WrittenFile> {
    // The manifest is read once, however large: the previews' source owns
    // it and the other sections borrow it from there.
    let source = Source::of_output(dir, Manifest::load(dir)?);
    let html = render(dir, &source, opts)?;
    let path = dir.join(REPORT_NAME);
    atomic::write_atomic(&path, html.as_bytes())?;
    Ok(WrittenFile {
        path: REPORT_NAME.into(),
        shape: Vec::new(),
        dtype: "text".into(),
        bytes: html.len() as u64,
        sha256: npy::hex(&Sha256::digest(html.as_bytes())),
    })
}

/// The whole page.
fn render(dir: &Path, source: &Source, opts: &ReportOptions) -> Result<String> {
    let m = source
        .manifest()
        .expect("an output's source has its manifest");
    // The previews (PNG encoding is most of the report's time) render on
    // the other cores while this thread reads the statistics.
    let positions = preview_positions(dir, m, opts.previews);
    let ((params, sampled, timeline), pngs) = rayon::join(
        || {
            (
                stats::stage_params(dir, m),
                stats::sampled(dir, m, opts.samples_per_shard),
                stats::timeline(dir),
            )
        },
        || {
            positions
                .par_iter()
                .map(|&i| {
                    preview::render(source, i, DEFAULT_CLIP_PERCENTILE, opts.drafts.as_deref())
                })
                .collect::<Vec<_>>()
        },
    );
    let (params, timeline) = (params?, timeline?);
    let name = dir.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>seispipe report: {}</title><style>{CSS}</style></head><body>\n<h1>seispipe report: {}</h1>\n",
        esc(&name),
        esc(&name)
    );
    run_section(&mut h, dir, m);
    let mut rest = String::new();
    params_section(&mut rest, &params);
    distributions_section(&mut rest, m, &sampled, opts);
    throughput_section(&mut rest, &timeline);
    disk_section(&mut rest, dir, m);
    previews_section(&mut h, dir, &positions, pngs);
    h.push_str(&rest);
    h.push_str("</body></html>\n");
    Ok(h)
}

fn row(h: &mut String, label: &str, id: &str, value: &str) {
    let _ = writeln!(
        h,
        "<tr><th>{}</th><td id=\"{id}\">{value}</td></tr>",
        esc(label)
    );
}

/// One escaped line per stage: "[i] type (key = value, …)".
fn stage_list(m: &Manifest) -> Vec<String> {
    m.pipeline["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, s)| {
            let params: Vec<String> = s
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "type")
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            esc(&format!(
                "[{i}] {} ({})",
                s["type"].as_str().unwrap_or("?"),
                params.join(", ")
            ))
        })
        .collect()
}

fn run_section(h: &mut String, dir: &Path, m: &Manifest) {
    h.push_str("<section id=\"run\"><h2>What was run</h2><table>\n");
    row(h, "output", "output", &esc(&dir.display().to_string()));
    row(h, "pipeline file", "pipeline-file", &esc(&m.pipeline_file));
    row(
        h,
        "seispipe version",
        "seispipe-version",
        &esc(&m.seispipe_version),
    );
    row(h, "seed", "seed", &m.seed.to_string());
    row(
        h,
        "fingerprint",
        "fingerprint",
        &format!("<code>{}</code>", esc(&m.fingerprint)),
    );
    let copies = format!(
        "{} augmented {} input sample{}",
        m.pipeline["copies"],
        if m.pipeline["copies"] == 1 {
            "copy per"
        } else {
            "copies per"
        },
        if m.pipeline["keep_original"] == true {
            ", plus the original"
        } else {
            ""
        }
    );
    row(h, "copies", "copies", &esc(&copies));
    let stages = stage_list(m);
    row(
        h,
        "stages",
        "stages",
        &if stages.is_empty() {
            "none".into()
        } else {
            stages.join("<br>")
        },
    );
    if let Some(v) = &m.versions {
        row(
            h,
            "algorithm versions",
            "versions",
            &format!(
                "<code>{}</code>",
                esc(&serde_json::to_string(v).expect("versions serialise"))
            ),
        );
    }
    if let Some(note) = &m.unversioned_resume {
        row(
            h,
            "warning",
            "unversioned",
            &format!("<span class=\"flag\">{}</span>", esc(note)),
        );
    }
    row(h, "random numbers", "rng", &esc(&m.rng));
    let shape = format!(
        "{:?} {}{}",
        m.sample_shape,
        m.dtype,
        m.label_shape
            .as_ref()
            .map_or(String::new(), |l| format!(", labels {l:?}"))
    );
    row(h, "sample shape", "sample-shape", &esc(&shape));
    row(h, "input root", "input-root", &esc(&m.input_root));
    row(h, "input files", "input-files", &m.inputs.len().to_string());
    row(h, "samples in", "samples-in", &m.samples_in.to_string());
    row(h, "samples out", "samples-out", &m.samples_out.to_string());
    row(
        h,
        "samples dropped",
        "samples-dropped",
        &m.samples_dropped.to_string(),
    );
    row(h, "shards", "shards", &m.shards.len().to_string());
    row(
        h,
        "files skipped",
        "files-skipped",
        &m.skipped_files.len().to_string(),
    );
    h.push_str("</table>\n");
    let _ = writeln!(
        h,
        "<details><summary>the pipeline as run</summary><pre>{}</pre></details>",
        esc(&serde_json::to_string_pretty(&m.pipeline).unwrap_or_default())
    );
    inputs_and_losses(h, m);
    h.push_str("</section>\n");
}

/// The input files (the first 50), skipped files, and dropped samples by reason.
fn inputs_and_losses(h: &mut String, m: &Manifest) {
    // Inputs: the first 50, then how many more.
    h.push_str("<h3>Inputs</h3><table id=\"inputs\"><tr><th>file</th><th>label</th><th>samples</th><th>dtype</th></tr>\n");
    for e in m.inputs.iter().take(50) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(&e.path),
            esc(e.label.as_deref().unwrap_or("—")),
            e.samples,
            esc(&e.dtype)
        );
    }
    h.push_str("</table>\n");
    if m.inputs.len() > 50 {
        let _ = writeln!(
            h,
            "<p class=\"note\">… and {} more input files.</p>",
            m.inputs.len() - 50
        );
    }
    h.push_str("<h3>Skipped files</h3>");
    if m.skipped_files.is_empty() {
        h.push_str("<p id=\"skipped\">none</p>\n");
    } else {
        h.push_str("<table id=\"skipped\"><tr><th>file</th><th>reason</th></tr>\n");
        for s in &m.skipped_files {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&s.path),
                esc(&s.reason)
            );
        }
        h.push_str("</table>\n");
    }
    // Dropped samples, by reason.
    let mut reasons: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for d in m.shards.iter().flat_map(|s| s.dropped.iter()) {
        reasons
            .entry(d.reason.clone())
            .or_default()
            .push(format!("{} (copy {})", d.sample.id, d.sample.copy));
    }
    h.push_str("<h3>Dropped samples</h3>");
    if reasons.is_empty() {
        h.push_str("<p id=\"dropped\">none</p>\n");
    } else {
        h.push_str(
            "<table id=\"dropped\"><tr><th>reason</th><th>samples</th><th>first ones</th></tr>\n",
        );
        for (reason, ids) in &reasons {
            let first: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                esc(reason),
                ids.len(),
                esc(&first.join(", "))
            );
        }
        h.push_str("</table>\n");
    }
}

/// Positions of augmented copies (a stage applied) to preview: the first one
/// of the first shard, then of the last, then of the shards between.
fn preview_positions(dir: &Path, m: &Manifest, n: usize) -> Vec<usize> {
    let mut starts = Vec::with_capacity(m.shards.len());
    let mut at = 0;
    for s in &m.shards {
        starts.push(at);
        at += s.samples;
    }
    let mut order: Vec<usize> = (0..m.shards.len()).collect();
    if order.len() > 1 {
        let last = order.pop().expect("two or more");
        order.insert(1, last);
    }
    let mut out = Vec::new();
    for k in order {
        if out.len() >= n {
            break;
        }
        let Ok(recs) = super::provenance_of(dir, &m.shards[k]) else {
            continue;
        };
        let augmented = recs.iter().position(|r| {
            r.sample.copy > 0 && r.stages.iter().any(|st| st.applied() == Some(true))
        });
        if let Some(j) = augmented {
            out.push(starts[k] + j);
        }
    }
    if out.is_empty() && m.samples_out > 0 && n > 0 {
        out.push(0);
    }
    out
}

fn previews_section(h: &mut String, dir: &Path, positions: &[usize], pngs: Vec<Result<Vec<u8>>>) {
    h.push_str("<section id=\"previews\"><h2>Previews</h2>\n");
    let _ = writeln!(
        h,
        "<p class=\"note\">Augmented copies beside the samples they were made from (<code>seispipe preview {} --samples {}</code> draws the same).</p>",
        esc(&dir.display().to_string()),
        positions.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
    );
    for (&i, png) in positions.iter().zip(pngs) {
        match png {
            Ok(png) => {
                let _ = writeln!(
                    h,
                    "<figure><img alt=\"sample {i}\" src=\"data:image/png;base64,{}\"><figcaption class=\"note\">sample {i}</figcaption></figure>",
                    base64::engine::general_purpose::STANDARD.encode(png)
                );
            }
            Err(e) => {
                let _ = writeln!(
                    h,
                    "<p class=\"flag\">sample {i}: no preview: {}</p>",
                    esc(&e.to_string())
                );
            }
        }
    }
    h.push_str("</section>\n");
}
