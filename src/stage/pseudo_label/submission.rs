//! The side outputs `pseudo_label` writes after the run, from
//! [`super::PseudoLabel`]'s `finish`: the Kaggle submission CSV (or the list
//! of ids it would lack) and, with `per_id_npy`, `predictions/{id}.npy`, all
//! read back from the label shards actually written.
//!
//! The submission (`submission`, default `submission.csv`) is streamed shard
//! by shard from the label files actually written (so it matches the shards
//! byte for byte, f16 rounding included). It never silently lacks ids: when a
//! sample was dropped or an input file was skipped, no CSV is written unless
//! `fallback_velocity` is set; instead `submission_missing.txt` lists each
//! missing id and why. With `fallback_velocity`, those ids get rows of that
//! constant and `submission_filled.txt` lists them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::io::atomic::{write_atomic, Partial};
use crate::io::layout::SkippedFile;
use crate::io::manifest::ShardRecord;
use crate::io::npy::{self, WrittenFile};
use crate::model::VELOCITY_VALUES;

/// The (70, 70) odd-column header of a Kaggle submission.
#[must_use]
pub fn submission_header() -> String {
    let mut h = String::from("oid_ypos");
    for x in (1..70).step_by(2) {
        let _ = write!(h, ",x_{x}");
    }
    h
}

/// A streaming, hashed writer of a text file under a temporary name
/// (removed if the writer is dropped unfinished).
struct TextWriter {
    /// Declared before `partial`: the file is closed before an unfinished
    /// temporary is removed.
    file: std::io::BufWriter<std::fs::File>,
    partial: Partial,
    hasher: Sha256,
    bytes: u64,
}

impl TextWriter {
    fn create(final_path: &Path) -> crate::Result<Self> {
        let partial = Partial::new(final_path);
        let f = std::fs::File::create(partial.tmp())
            .map_err(|e| crate::Error::io(partial.tmp(), "create", e))?;
        Ok(TextWriter {
            file: std::io::BufWriter::with_capacity(1 << 20, f),
            partial,
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    fn put(&mut self, s: &str) -> crate::Result<()> {
        self.file
            .write_all(s.as_bytes())
            .map_err(|e| crate::Error::io(self.partial.tmp(), "write", e))?;
        self.hasher.update(s.as_bytes());
        self.bytes += s.len() as u64;
        Ok(())
    }

    fn finish(self, rel: &str, shape: Vec<usize>) -> crate::Result<WrittenFile> {
        let f = self
            .file
            .into_inner()
            .map_err(|e| crate::Error::io(self.partial.tmp(), "write", e.into_error()))?;
        self.partial.commit(f)?;
        Ok(WrittenFile {
            path: rel.to_string(),
            shape,
            dtype: "text".into(),
            bytes: self.bytes,
            sha256: npy::hex(&self.hasher.finalize()),
        })
    }
}

fn csv_rows(out: &mut String, id: &str, map: &[f32]) {
    out.clear();
    for (y, row) in map.chunks_exact(70).enumerate() {
        let _ = write!(out, "{id}_y_{y}");
        for x in (1..70).step_by(2) {
            let _ = write!(out, ",{}", row[x]);
        }
        out.push('\n');
    }
}

/// A file name for an id (ids of shard samples hold `/` and `#`).
fn file_safe(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Write the submission (or the list of missing ids) and the per-id arrays
/// from finished shards. Returns the files for the manifest.
///
/// # Errors
/// Unreadable label shards, an id a CSV cannot hold, duplicate ids, I/O.
#[allow(clippy::too_many_lines)] // one pass over the shards feeding three outputs
pub fn write_outputs(
    out_dir: &Path,
    shards: &[ShardRecord],
    skipped: &[SkippedFile],
    submission: Option<&str>,
    fallback: Option<f32>,
    per_id_npy: bool,
) -> crate::Result<Vec<WrittenFile>> {
    let mut written = Vec::new();
    // Ids without a prediction: dropped samples, then skipped input files.
    let mut missing: Vec<(String, String)> = Vec::new();
    for sh in shards {
        for d in &sh.dropped {
            if d.sample.copy == 0 {
                continue;
            }
            missing.push((d.sample.id.clone(), d.reason.clone()));
        }
    }
    for s in skipped {
        let stem = Path::new(&s.path)
            .file_stem()
            .map_or_else(|| s.path.clone(), |x| x.to_string_lossy().into_owned());
        missing.push((stem, format!("input file skipped: {}", s.reason)));
    }
    let bad_id = |id: &str| id.is_empty() || id.contains([',', '"', '\n', '\r']);
    if let Some(name) = submission {
        for stale in [name, "submission_missing.txt", "submission_filled.txt"] {
            let _ = std::fs::remove_file(out_dir.join(stale));
        }
    }
    let write_csv = submission.is_some() && (missing.is_empty() || fallback.is_some());
    let mut csv = match submission {
        Some(name) if write_csv => Some(TextWriter::create(&out_dir.join(name))?),
        _ => None,
    };
    if let Some(w) = csv.as_mut() {
        w.put(&submission_header())?;
        w.put("\n")?;
    }
    let pred_dir = out_dir.join("predictions");
    if per_id_npy {
        std::fs::create_dir_all(&pred_dir)
            .map_err(|e| crate::Error::io(&pred_dir, "create directory", e))?;
    }
    let mut seen = std::collections::HashSet::new();
    let mut rows = 0usize;
    let mut text = String::with_capacity(70 * 400);
    let mut map = vec![0f32; VELOCITY_VALUES];
    for sh in shards {
        let Some(label) = sh.label_file() else {
            return Err(crate::Error::Layout {
                path: out_dir.join(sh.files.first().map_or("", |f| f.path.as_str())),
                reason: "shard has no label file to read predictions from".into(),
            });
        };
        let lp = out_dir.join(&label.path);
        let header = npy::read_header(&lp)?;
        let file = std::fs::File::open(&lp).map_err(|e| crate::Error::io(&lp, "open", e))?;
        let records = crate::io::manifest::read_provenance(out_dir, sh)?;
        for (j, p) in records.into_iter().enumerate() {
            if p.sample.copy == 0 {
                continue;
            }
            let id = p.sample.id;
            if bad_id(&id) {
                return Err(crate::Error::Layout {
                    path: lp.clone(),
                    reason: format!("sample id {id:?} cannot be a submission id (empty, or holds a comma, quote or newline)"),
                });
            }
            if !seen.insert(id.clone()) {
                return Err(crate::Error::Layout {
                    path: lp.clone(),
                    reason: format!("id {id} has two predictions; a submission needs one per input (copies = 1)"),
                });
            }
            npy::read_f32_from(&file, &lp, &header, j * VELOCITY_VALUES, &mut map)?;
            if let Some(w) = csv.as_mut() {
                csv_rows(&mut text, &id, &map);
                w.put(&text)?;
                rows += 70;
            }
            if per_id_npy {
                let rel = format!("predictions/{}.npy", file_safe(&id));
                let mut f = npy::write_array(
                    &out_dir.join(&rel),
                    crate::io::npy::DType::F32,
                    &[70, 70],
                    &map,
                )?;
                f.path = rel;
                written.push(f);
            }
        }
    }
    if let Some(mut w) = csv {
        let mut listed = String::new();
        if let Some(v) = fallback {
            let fill = vec![v; VELOCITY_VALUES];
            for (id, reason) in &missing {
                if bad_id(id) || !seen.insert(id.clone()) {
                    continue;
                }
                csv_rows(&mut text, id, &fill);
                w.put(&text)?;
                rows += 70;
                let _ = writeln!(listed, "{id}\t{reason}");
            }
        }
        written.push(w.finish(submission.unwrap_or_default(), vec![rows, 36])?);
        if !listed.is_empty() {
            let p = out_dir.join("submission_filled.txt");
            let body = format!("# ids written with fallback_velocity = {} m/s, and why they had no prediction\n{listed}", fallback.unwrap_or_default());
            written.push(write_text(
                &p,
                "submission_filled.txt",
                &body,
                missing.len(),
            )?);
        }
    } else if submission.is_some() {
        let mut body = format!(
            "# {} was NOT written: {} id(s) have no prediction. Set fallback_velocity (m/s) to write it with constant rows for them.\n",
            submission.unwrap_or_default(),
            missing.len()
        );
        for (id, reason) in &missing {
            let _ = writeln!(body, "{id}\t{reason}");
        }
        let p = out_dir.join("submission_missing.txt");
        written.push(write_text(
            &p,
            "submission_missing.txt",
            &body,
            missing.len(),
        )?);
    }
    Ok(written)
}

fn write_text(path: &Path, rel: &str, body: &str, lines: usize) -> crate::Result<WrittenFile> {
    write_atomic(path, body.as_bytes())?;
    Ok(WrittenFile {
        path: rel.to_string(),
        shape: vec![lines],
        dtype: "text".into(),
        bytes: body.len() as u64,
        sha256: npy::hex(&Sha256::digest(body.as_bytes())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_header_has_35_odd_columns() {
        let h = submission_header();
        assert!(h.starts_with("oid_ypos,x_1,x_3,"));
        assert!(h.ends_with(",x_67,x_69"));
        assert_eq!(h.split(',').count(), 36);
    }
}
