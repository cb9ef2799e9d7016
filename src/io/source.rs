//! Inputs that are themselves seispipe outputs or Kaggle parts, read back
//! through their `manifest.json` (the read side only; `io::manifest` writes
//! it): which shard each `.npy` file is, its label partner as the source
//! paired it, its path in the original output (a part's flat `dataN.npy` is
//! the output's `data/dataN.npy`), and the id of every sample it holds — the
//! provenance `id`, inline in a `seispipe-manifest/1` shard record or in the
//! JSON Lines file that a `seispipe-manifest/2` shard record names.
//!
//! A part stands for its output at the part folder's parent (or at the input
//! root when the root is the part itself), so a pipeline over
//! `SLUG-part-*` names, seeds and orders its inputs exactly as the same
//! pipeline over the output directory that was packaged, and writes the same
//! bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::io::format::MANIFEST_NAME;
use crate::io::walk;

/// Where a data file sits in the output a manifest describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceShard {
    /// The folder holding the manifest: an output directory or a part.
    pub dir: PathBuf,
    /// Whether that folder is a Kaggle part (flat file names).
    pub part: bool,
    /// Shard number in the whole output (`data/data{index}.npy`).
    pub index: usize,
    /// Samples the shard record lists.
    pub samples: usize,
    /// The label file the record pairs with the data file, if any.
    pub label: Option<PathBuf>,
    /// The data file's path in the original output, `/`-separated.
    pub output_path: String,
    /// Fingerprint of the run that wrote the output.
    pub fingerprint: String,
    /// The id of every sample of the shard, in order.
    pub ids: Vec<String>,
}

impl SourceShard {
    /// The input identity of the data file under `root`: its path relative
    /// to `root`, except that a part's file is named as in the original
    /// output, placed where the part stands for it.
    #[must_use]
    pub fn input_rel(&self, root: &Path, data: &Path) -> String {
        if !self.part {
            return walk::rel_path(root, data);
        }
        // `.` (a glob with no folder before its first wildcard) is the
        // empty prefix, which every relative path starts with.
        let root = if root == Path::new(".") {
            Path::new("")
        } else {
            root
        };
        let stand_in = if self.dir == root || !self.dir.starts_with(root) {
            root
        } else {
            self.dir.parent().unwrap_or(root)
        };
        let prefix = walk::rel_path(root, stand_in);
        if prefix.is_empty() {
            self.output_path.clone()
        } else {
            format!("{prefix}/{}", self.output_path)
        }
    }
}

/// The manifests met during one discovery, read once per folder.
#[derive(Default)]
pub struct Sources {
    by_dir: BTreeMap<PathBuf, Option<Rc<Listing>>>,
}

/// A manifest's data files, by path relative to its folder.
struct Listing {
    files: BTreeMap<String, SourceShard>,
}

impl Sources {
    /// The shard record of the data file `data`, when the folder holding it
    /// (a part) or the folder above its `data/` folder (an output) has a
    /// seispipe manifest listing it as a shard's data file.
    ///
    /// # Errors
    /// A seispipe manifest that cannot be read, or whose provenance does not
    /// match its shard records; named with its path.
    pub fn shard_of(&mut self, data: &Path) -> Result<Option<SourceShard>> {
        let Some(parent) = data.parent() else {
            return Ok(None);
        };
        let mut dirs = vec![parent.to_path_buf()];
        if parent.file_name().is_some_and(|n| n == "data") {
            if let Some(up) = parent.parent() {
                dirs.push(up.to_path_buf());
            }
        }
        for dir in dirs {
            let listing = if let Some(l) = self.by_dir.get(&dir) {
                l.clone()
            } else {
                let l = read_listing(&dir)?.map(Rc::new);
                self.by_dir.insert(dir.clone(), l.clone());
                l
            };
            if let Some(s) = listing.and_then(|l| l.files.get(&walk::rel_path(&dir, data)).cloned())
            {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }
}

/// The parts of a manifest this module reads; everything else is skipped.
#[derive(Deserialize)]
struct ManifestHead {
    format: String,
    #[serde(default)]
    fingerprint: String,
    #[serde(default)]
    layout: String,
    #[serde(default)]
    kaggle_part: Option<IgnoredAny>,
    #[serde(default)]
    shards: Vec<ShardHead>,
}

#[derive(Deserialize)]
struct ShardHead {
    index: usize,
    samples: usize,
    files: Vec<FileHead>,
    #[serde(default)]
    provenance: Option<ProvenanceForm>,
}

#[derive(Deserialize)]
struct FileHead {
    path: String,
}

/// `seispipe-manifest/1` lists the records inline; `/2` names a JSON Lines
/// file beside the manifest.
#[derive(Deserialize)]
#[serde(untagged)]
enum ProvenanceForm {
    Inline(Vec<IdOnly>),
    File { path: String },
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: String,
}

/// Enough of a `manifest.json` to tell seispipe's from another tool's.
#[derive(Deserialize)]
struct FormatOnly {
    #[serde(default)]
    format: String,
}

/// The manifest of `dir`: `None` when there is none, or when its
/// `manifest.json` is not a seispipe manifest (another tool's file).
fn read_listing(dir: &Path) -> Result<Option<Listing>> {
    let path = dir.join(MANIFEST_NAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, "read manifest", e)),
    };
    let bad = |reason: String| Error::Layout {
        path: path.clone(),
        reason,
    };
    let is_seispipe = serde_json::from_str::<FormatOnly>(&text)
        .is_ok_and(|f| f.format.starts_with("seispipe-manifest/"));
    if !is_seispipe {
        return Ok(None);
    }
    let m: ManifestHead = serde_json::from_str(&text)
        .map_err(|e| bad(format!("not a readable seispipe manifest: {e}")))?;
    let part = m.kaggle_part.is_some() || m.layout == "openfwi-flat";
    let mut files = BTreeMap::new();
    for sh in m.shards {
        let Some(data) = sh.files.first() else {
            return Err(bad(format!("shard {} lists no files", sh.index)));
        };
        if data
            .path
            .rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with("model"))
        {
            return Err(bad(format!(
                "shard {} has no seismic data file: the output was written with output.data = false (predictions only), so it cannot be an input",
                sh.index
            )));
        }
        let ids = shard_ids(dir, &path, &m.format, &sh)?;
        let name = data.path.rsplit('/').next().unwrap_or(&data.path);
        let shard = SourceShard {
            dir: dir.to_path_buf(),
            part,
            index: sh.index,
            samples: sh.samples,
            label: sh.files.get(1).map(|l| dir.join(&l.path)),
            output_path: if part {
                format!("data/{name}")
            } else {
                data.path.clone()
            },
            fingerprint: m.fingerprint.clone(),
            ids,
        };
        files.insert(data.path.clone(), shard);
    }
    Ok(Some(Listing { files }))
}

/// The sample ids of one shard record, checked against its sample count.
fn shard_ids(dir: &Path, manifest: &Path, format: &str, sh: &ShardHead) -> Result<Vec<String>> {
    let (ids, from): (Vec<String>, PathBuf) = match &sh.provenance {
        None => {
            return Err(Error::Layout {
                path: manifest.to_path_buf(),
                reason: format!("shard {} has no provenance ({format})", sh.index),
            })
        }
        Some(ProvenanceForm::Inline(records)) => (
            records.iter().map(|r| r.id.clone()).collect(),
            manifest.to_path_buf(),
        ),
        Some(ProvenanceForm::File { path }) => {
            let p = dir.join(path);
            let text =
                std::fs::read_to_string(&p).map_err(|e| Error::io(&p, "read provenance", e))?;
            let mut ids = Vec::with_capacity(sh.samples);
            for (line, l) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let r: IdOnly = serde_json::from_str(l).map_err(|e| Error::Layout {
                    path: p.clone(),
                    reason: format!("line {}: not a provenance record: {e}", line + 1),
                })?;
                ids.push(r.id);
            }
            (ids, p)
        }
    };
    if ids.len() != sh.samples {
        return Err(Error::Layout {
            path: from,
            reason: format!(
                "shard {} lists {} samples but {} provenance records",
                sh.index,
                sh.samples,
                ids.len()
            ),
        });
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(dir: &str, part: bool) -> SourceShard {
        SourceShard {
            dir: PathBuf::from(dir),
            part,
            index: 3,
            samples: 1,
            label: None,
            output_path: "data/data3.npy".into(),
            fingerprint: String::new(),
            ids: vec!["a#0".into()],
        }
    }

    #[test]
    fn a_part_stands_for_its_output_at_its_parent_or_at_the_root() {
        let p = shard("kg/fwi-part-002", true);
        let data = Path::new("kg/fwi-part-002/data3.npy");
        // A glob over the parts: the root is their common folder.
        assert_eq!(p.input_rel(Path::new("kg"), data), "data/data3.npy");
        // The part itself as the input.
        assert_eq!(
            p.input_rel(Path::new("kg/fwi-part-002"), data),
            "data/data3.npy"
        );
        // A folder above: the parts' folder keeps its place.
        assert_eq!(p.input_rel(Path::new("."), data), "kg/data/data3.npy");
        assert_eq!(p.input_rel(Path::new(""), data), "kg/data/data3.npy");
        // An output directory keeps the file's own relative path.
        let o = shard("runs/out", false);
        assert_eq!(
            o.input_rel(Path::new("runs"), Path::new("runs/out/data/data3.npy")),
            "out/data/data3.npy"
        );
    }

    #[test]
    fn both_provenance_forms_give_the_ids_and_a_count_mismatch_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("provenance")).unwrap();
        std::fs::write(
            d.join("provenance/prov2.jsonl"),
            "{\"id\":\"x#0\",\"copy\":0}\n{\"id\":\"x#1\",\"copy\":0}\n",
        )
        .unwrap();
        let manifest = serde_json::json!({
            "format": "seispipe-manifest/2", "fingerprint": "f", "layout": "openfwi-flat",
            "kaggle_part": {"part": 1},
            "shards": [
                {"index": 1, "samples": 1, "files": [{"path": "data1.npy"}, {"path": "model1.npy"}],
                 "provenance": [{"id": "y#0", "copy": 0}]},
                {"index": 2, "samples": 2, "files": [{"path": "data2.npy"}],
                 "provenance": {"path": "provenance/prov2.jsonl", "bytes": 0, "sha256": ""}},
            ]
        });
        std::fs::write(d.join(MANIFEST_NAME), manifest.to_string()).unwrap();
        let mut s = Sources::default();
        let one = s.shard_of(&d.join("data1.npy")).unwrap().unwrap();
        assert_eq!(one.ids, ["y#0"]);
        assert_eq!(one.label, Some(d.join("model1.npy")));
        assert!(one.part);
        let two = s.shard_of(&d.join("data2.npy")).unwrap().unwrap();
        assert_eq!(
            (two.ids.as_slice(), two.label.as_ref()),
            (&["x#0".to_string(), "x#1".to_string()][..], None)
        );
        assert_eq!(two.output_path, "data/data2.npy");
        assert!(s.shard_of(&d.join("data9.npy")).unwrap().is_none());

        std::fs::write(d.join("provenance/prov2.jsonl"), "{\"id\":\"x#0\"}\n").unwrap();
        let e = Sources::default()
            .shard_of(&d.join("data2.npy"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("prov2.jsonl")
                && e.contains("shard 2 lists 2 samples but 1 provenance records"),
            "{e}"
        );
    }

    #[test]
    fn another_tools_manifest_is_not_a_source() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_NAME), "{\"files\": []}").unwrap();
        let mut s = Sources::default();
        assert!(s.shard_of(&dir.path().join("data1.npy")).unwrap().is_none());
    }
}
