//! Pictures of the data: `seispipe preview` ([`preview()`]: PNGs of samples,
//! an augmented copy beside the input it was made from) and the
//! `report.html` of an output ([`write_report`]: what was run, previews,
//! drawn stage parameters, sampled value distributions per shard,
//! throughput, disk). Everything is drawn here, without Python and without
//! system fonts: a small RGB canvas (`canvas`), an embedded font (`font`),
//! matplotlib's colour maps (`colormap`), the preview blocks (`figure`), and
//! for the report inline SVG charts (`svg`) built from manifests, the journal
//! and a fixed number of sampled samples per shard (`stats`), so it scales
//! with shards, not samples.

mod canvas;
mod colormap;
mod figure;
mod font;
mod html;
mod preview;
mod sections;
mod source;
mod stats;
mod svg;

use std::borrow::Cow;
use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::io::manifest::ShardRecord;

pub use html::{list_in_manifest, write_report, ReportOptions, REPORT_NAME};
pub use preview::{
    abs_percentile, pair, preview, Pair, PreviewOptions, Selection, DEFAULT_CLIP_PERCENTILE,
};
pub use source::SampleView;

/// The provenance records of `shard` of the output in `dir`, one per written
/// sample, in order. The one place provenance is read, for both forms a
/// shard record can hold: the records inline (`"provenance": [{…}, …]`,
/// manifest format 1) or a JSON Lines file beside the manifest
/// (`"provenance": {"path": "provenance/prov1.jsonl", "bytes": N, "sha256":
/// "…"}`, one object a line).
///
/// # Errors
/// A provenance file that is missing, unreadable or not one JSON object a
/// line, or one whose record count differs from the shard's samples.
pub fn provenance_of<'a>(dir: &Path, shard: &'a ShardRecord) -> Result<Cow<'a, [Value]>> {
    provenance_value(dir, shard.index, shard.samples, &shard.provenance)
}

/// [`provenance_of`] for the JSON the shard record holds; `Value`, rather
/// than the record's field type, so the file form can be read today.
fn provenance_value<'a>(
    dir: &Path,
    shard: usize,
    samples: usize,
    provenance: &'a (impl AsProvenance + ?Sized),
) -> Result<Cow<'a, [Value]>> {
    let records = match provenance.as_provenance() {
        Provenance::Inline(v) => Cow::Borrowed(v),
        Provenance::File(rel) => {
            let path = dir.join(rel);
            let f =
                std::fs::File::open(&path).map_err(|e| Error::io(&path, "open provenance", e))?;
            let mut out = Vec::with_capacity(samples);
            for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
                let line = line.map_err(|e| Error::io(&path, "read provenance", e))?;
                if line.trim().is_empty() {
                    continue;
                }
                out.push(serde_json::from_str(&line).map_err(|e| Error::Layout {
                    path: path.clone(),
                    reason: format!("line {}: not a provenance record: {e}", n + 1),
                })?);
            }
            Cow::Owned(out)
        }
        Provenance::Bad(why) => {
            return Err(Error::Layout {
                path: dir.join(crate::io::manifest::MANIFEST_NAME),
                reason: format!("shard {shard}: {why}"),
            })
        }
    };
    if records.len() != samples {
        return Err(Error::Layout {
            path: dir.join(crate::io::manifest::MANIFEST_NAME),
            reason: format!(
                "shard {shard} has {samples} samples but {} provenance records",
                records.len()
            ),
        });
    }
    Ok(records)
}

/// The two forms of a shard's provenance.
enum Provenance<'a> {
    Inline(&'a [Value]),
    File(&'a str),
    Bad(String),
}

/// What a shard record's `provenance` field can be read as.
trait AsProvenance {
    fn as_provenance(&self) -> Provenance<'_>;
}

impl AsProvenance for [Value] {
    fn as_provenance(&self) -> Provenance<'_> {
        Provenance::Inline(self)
    }
}

impl AsProvenance for Vec<Value> {
    fn as_provenance(&self) -> Provenance<'_> {
        Provenance::Inline(self)
    }
}

impl AsProvenance for Value {
    fn as_provenance(&self) -> Provenance<'_> {
        match self {
            Value::Array(v) => Provenance::Inline(v),
            Value::Object(o) => match o.get("path").and_then(Value::as_str) {
                Some(p) => Provenance::File(p),
                None => Provenance::Bad("provenance object has no \"path\"".into()),
            },
            other => Provenance::Bad(format!("provenance is neither a list nor a file: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn provenance_reads_inline_and_file_forms_alike() {
        let dir = tempfile::tempdir().unwrap();
        let recs = vec![
            json!({"output_index": 0, "id": "a#0", "copy": 1}),
            json!({"output_index": 1, "id": "a#0", "copy": 2}),
        ];
        let inline = Value::Array(recs.clone());
        assert_eq!(
            provenance_value(dir.path(), 1, 2, &inline)
                .unwrap()
                .as_ref(),
            recs.as_slice()
        );
        std::fs::create_dir_all(dir.path().join("provenance")).unwrap();
        let text = recs.iter().fold(String::new(), |mut t, r| {
            t.push_str(&r.to_string());
            t.push('\n');
            t
        });
        std::fs::write(dir.path().join("provenance/prov1.jsonl"), text).unwrap();
        let file = json!({"path": "provenance/prov1.jsonl", "bytes": 1, "sha256": "x"});
        assert_eq!(
            provenance_value(dir.path(), 1, 2, &file).unwrap().as_ref(),
            recs.as_slice()
        );
        // A count that does not match, a missing file, a bad line: named.
        let e = provenance_value(dir.path(), 1, 3, &file)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("shard 1 has 3 samples but 2 provenance records"),
            "{e}"
        );
        let gone = json!({"path": "provenance/prov9.jsonl"});
        let e = provenance_value(dir.path(), 9, 2, &gone)
            .unwrap_err()
            .to_string();
        assert!(e.contains("prov9.jsonl"), "{e}");
        std::fs::write(
            dir.path().join("provenance/prov1.jsonl"),
            "{\"id\": 1}\nnot json\n",
        )
        .unwrap();
        let e = provenance_value(dir.path(), 1, 2, &file)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2: not a provenance record"), "{e}");
    }
}
