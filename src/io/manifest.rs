//! The output manifest (`manifest.json`): an index of every shard with its
//! files (shape, dtype, bytes, SHA-256) and its provenance file — one JSON
//! line per output sample, `provenance/provN.jsonl`, written and hashed with
//! the shard — so assembling the manifest is O(shards) in time and memory
//! whatever the sample count; the resume journal it is assembled from; and
//! `verify`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::io::format::SkippedFile;
pub use crate::io::format::{InputEntry, Shard, StageVersion, Versions};
use crate::io::npy::{self, WrittenFile};
use crate::io::walk;

pub use crate::io::format::{
    MANIFEST_FORMAT, MANIFEST_NAME, OUTPUT_FORMAT_VERSION, REPORT_NAME, STATE_DIR,
};

/// One output shard: its files and where each of its samples came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardRecord {
    /// 1-based shard number (`data/data{index}.npy`).
    pub index: usize,
    /// Samples written.
    pub samples: usize,
    /// Samples dropped by policy (non-finite values, filters), with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<Dropped>,
    /// The data file, then the label file when present.
    pub files: Vec<WrittenFile>,
    /// The provenance file: one JSON object per written sample, in order
    /// (`shape` is `[samples]`, `dtype` is `"jsonl"`); see [`read_provenance`].
    pub provenance: WrittenFile,
    /// Where the stages that choose (`device`) ran for this shard:
    /// `stages[i]` → `rust`, `tch-cpu`, `tch-cuda:N`. Partitions on different
    /// machines may differ; `merge` and `verify` report the mix. Absent when
    /// no stage has a `device`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub devices: BTreeMap<String, String>,
}

impl ShardRecord {
    /// The shard this record is about (`None` for the invalid index 0).
    #[must_use]
    pub fn shard(&self) -> Option<Shard> {
        Shard::from_number(self.index)
    }

    /// The shard's files: data, label when present, provenance.
    pub fn all_files(&self) -> impl Iterator<Item = &WrittenFile> {
        self.files.iter().chain(std::iter::once(&self.provenance))
    }

    /// The seismic data file (`data/dataN.npy`, `dataN.npy` in a Kaggle
    /// part); none in an output written with `output.data = false`.
    #[must_use]
    pub fn data_file(&self) -> Option<&WrittenFile> {
        self.files
            .iter()
            .find(|f| file_name(&f.path).starts_with("data"))
    }

    /// The label file (`model/modelN.npy`, `modelN.npy` in a Kaggle part).
    #[must_use]
    pub fn label_file(&self) -> Option<&WrittenFile> {
        self.files
            .iter()
            .find(|f| file_name(&f.path).starts_with("model"))
    }
}

/// Whether a journal line is a shard record of output format 1: a JSON
/// object with a shard `index` whose `provenance` is the list of records
/// itself rather than a file.
fn is_older_format(line: &str) -> bool {
    serde_json::from_str::<Value>(line)
        .is_ok_and(|v| v["index"].is_u64() && v["provenance"].is_array())
}

/// The last component of a `/`-separated relative path.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The provenance records of a shard, read from its file under `dir` (the
/// output directory, or a Kaggle part holding the shard).
///
/// # Errors
/// The file is missing or unreadable, a line is not JSON, or it holds another
/// number of records than the shard's samples.
pub fn read_provenance(dir: &Path, shard: &ShardRecord) -> Result<Vec<Provenance>> {
    let p = dir.join(&shard.provenance.path);
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, "read provenance", e))?;
    let records = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::Layout {
                path: p.clone(),
                reason: format!("line {} is not a provenance record: {e}", i + 1),
            })
        })
        .collect::<Result<Vec<Provenance>>>()?;
    if records.len() != shard.samples {
        return Err(Error::Layout {
            path: p,
            reason: format!(
                "holds {} provenance records; shard {} has {} samples",
                records.len(),
                shard.index,
                shard.samples
            ),
        });
    }
    Ok(records)
}

/// Which output sample a record is about, and the input sample it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampleRef {
    /// Index over all output samples of the run.
    pub output_index: usize,
    /// The sample id (input file, and index in it when it holds several).
    pub id: String,
    /// The input file, relative to the input root.
    pub input: String,
    /// Index of the sample in that file.
    pub input_index: usize,
    /// 0 for the original, `k + 1` for augmented copy `k`.
    pub copy: u64,
}

/// What one stage did to a sample: `{"stage": k, "type": kind, …}` with the
/// fields the stage recorded (`applied`, the parameters it drew…); `k` is
/// the stage's position in the plan (`seispipe check` lists it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// Position in the plan.
    pub stage: usize,
    /// The stage type.
    #[serde(rename = "type")]
    pub kind: String,
    /// What the stage recorded, in its order.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, Value>,
}

impl StageRecord {
    /// Whether the stage changed the sample, when it says.
    #[must_use]
    pub fn applied(&self) -> Option<bool> {
        self.fields.get("applied").and_then(Value::as_bool)
    }
}

/// A written sample: where it came from and what each stage did to it (one
/// line of a shard's provenance file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The sample.
    #[serde(flatten)]
    pub sample: SampleRef,
    /// One record per stage applied, in order (none for an original).
    pub stages: Vec<StageRecord>,
}

/// A sample dropped by policy, and why (in its shard's record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    /// The sample.
    #[serde(flatten)]
    pub sample: SampleRef,
    /// The error that dropped it.
    pub reason: String,
}

/// The whole manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// seispipe version that wrote it.
    pub seispipe_version: String,
    /// Pipeline file as given.
    pub pipeline_file: String,
    /// The pipeline (after overrides), as JSON: a record of what ran, kept
    /// as written so that outputs of any build stay readable; its Rust type
    /// (`crate::pipeline::spec::PipelineSpec`) belongs to the layer above,
    /// which parses it where it rebuilds a run.
    pub pipeline: Value,
    /// Fingerprint of everything that determines the output bytes.
    pub fingerprint: String,
    /// Versions of the code that computed the bytes: the output format and
    /// each stage's algorithm (absent in manifests written before they were
    /// recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<Versions>,
    /// Set when a run was resumed with `--accept-unversioned` over an output
    /// that recorded no versions: its earlier shards may come from other code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unversioned_resume: Option<String>,
    /// Pipeline seed.
    pub seed: u64,
    /// How per-sample generators are derived.
    pub rng: String,
    /// Output layout: `openfwi` (`data/dataN.npy` + `model/modelN.npy`).
    pub layout: String,
    /// Shape of one output seismic sample.
    pub sample_shape: Vec<usize>,
    /// Shape of one output velocity map, when labelled.
    pub label_shape: Option<Vec<usize>>,
    /// numpy descr of written arrays.
    pub dtype: String,
    /// Extra per-stage layout facts (axis names, bin frequencies…), keyed by stage index.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub stage_info: serde_json::Map<String, Value>,
    /// Input root.
    pub input_root: String,
    /// Input files with their sample counts.
    pub inputs: Vec<InputEntry>,
    /// Input files skipped by policy.
    #[serde(default)]
    pub skipped_files: Vec<SkippedFile>,
    /// Input samples.
    pub samples_in: usize,
    /// Output samples written.
    pub samples_out: usize,
    /// Output samples dropped by policy.
    pub samples_dropped: usize,
    /// Shards, in order.
    pub shards: Vec<ShardRecord>,
    /// Other files a stage wrote (submission CSVs…), relative paths with hashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_files: Vec<WrittenFile>,
    /// The output's report ([`REPORT_NAME`]), named but not hashed: it shows
    /// when and how fast shards were written, so its bytes differ between
    /// runs that wrote the same output; `verify` accepts it as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

impl Manifest {
    /// Read `DIR/manifest.json`.
    ///
    /// # Errors
    /// Missing or unparsable manifest.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let p = dir.join(MANIFEST_NAME);
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, "read manifest", e))?;
        serde_json::from_str(&text).map_err(|e| Error::Verify {
            dir: dir.to_path_buf(),
            reason: format!("{MANIFEST_NAME} is not a seispipe manifest: {e}"),
        })
    }

    /// Every file the manifest lists.
    pub fn all_files(&self) -> impl Iterator<Item = &WrittenFile> {
        self.shards
            .iter()
            .flat_map(ShardRecord::all_files)
            .chain(self.extra_files.iter())
    }
}

/// The append-only record of finished shards, one JSON line each, fsynced.
/// Each line is the [`ShardRecord`] with two more keys, `run_started_at` (when
/// this `Journal` was opened: the run that wrote the shard) and `finished_at`
/// (when the line was appended), Unix seconds to the millisecond, for the
/// report's throughput over time. The times stay in the journal: the manifest
/// is built from the records alone.
pub struct Journal {
    path: PathBuf,
    opened_at: f64,
}

/// When a journalled shard was finished, and by which run.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct ShardTiming {
    /// When the run that wrote the shard started (Unix seconds).
    pub run_started_at: f64,
    /// When the shard was journalled (Unix seconds).
    pub finished_at: f64,
}

/// Now, in Unix seconds to the millisecond.
fn unix_now() -> f64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_millis() as f64 / 1000.0
}

impl Journal {
    /// The journal of an output directory.
    #[must_use]
    pub fn new(out_dir: &Path) -> Journal {
        Journal {
            path: out_dir.join(STATE_DIR).join("journal.jsonl"),
            opened_at: unix_now(),
        }
    }

    /// The journal of one partition (`stem` as `I-of-N`, see
    /// `pipeline::partition`), or of the whole run when `None`. Each process
    /// appends only to its own; a resume reads them all ([`Journal::all`]).
    #[must_use]
    pub fn of_partition(out_dir: &Path, stem: Option<&str>) -> Journal {
        match stem {
            None => Journal::new(out_dir),
            Some(s) => Journal {
                path: out_dir.join(STATE_DIR).join(format!("journal-{s}.jsonl")),
                opened_at: unix_now(),
            },
        }
    }

    /// Every journal of an output directory (the whole run's and each
    /// partition's), in name order.
    ///
    /// # Errors
    /// The state directory exists but cannot be listed.
    pub fn all(out_dir: &Path) -> Result<Vec<Journal>> {
        let state = out_dir.join(STATE_DIR);
        let entries = match std::fs::read_dir(&state) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&state, "list directory", e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(std::result::Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("journal") && n.rsplit('.').next() == Some("jsonl"))
            .collect();
        names.sort();
        Ok(names
            .into_iter()
            .map(|n| Journal {
                path: state.join(n),
                opened_at: unix_now(),
            })
            .collect())
    }

    /// Every finished shard's journal line, in order, with its times when it
    /// has them (lines written before times were recorded have none). A shard
    /// redone by a later run appears again. See [`Journal::read`] for the
    /// lines that are left out.
    ///
    /// # Errors
    /// The journal exists but cannot be read, or a line other than the last
    /// is damaged (named with its line number).
    pub fn read_timed(&self) -> Result<Vec<(ShardRecord, Option<ShardTiming>)>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.path, "read journal", e)),
        };
        let lines: Vec<&str> = text.lines().collect();
        let mut out = Vec::with_capacity(lines.len());
        for (n, l) in lines.iter().enumerate() {
            match serde_json::from_str::<ShardRecord>(l) {
                Ok(rec) => out.push((rec, serde_json::from_str::<ShardTiming>(l).ok())),
                Err(_) if is_older_format(l) => {}
                // A torn last line: the append it belongs to never finished.
                Err(_) if n + 1 == lines.len() && !text.ends_with('\n') => {}
                Err(e) => {
                    return Err(Error::Layout {
                        path: self.path.clone(),
                        reason: format!(
                            "line {} is not a shard record ({e}); the journal is damaged — remove that line to redo its shard",
                            n + 1
                        ),
                    })
                }
            }
        }
        Ok(out)
    }

    /// The journal file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Finished shards recorded so far. A torn last line (power loss during an
    /// append) is ignored: that shard is simply redone. So are the lines of
    /// an output written by a seispipe of output format 1 (each shard's
    /// provenance inside its journal line): this build cannot check those
    /// shards' provenance files, so a resume accepted over such an output
    /// (`--accept-unversioned`) writes them again.
    ///
    /// # Errors
    /// The journal exists but cannot be read, or a line other than the last
    /// is damaged (named with its line number).
    pub fn read(&self) -> Result<Vec<ShardRecord>> {
        Ok(self.read_timed()?.into_iter().map(|(r, _)| r).collect())
    }

    /// Append one finished shard durably. A torn last line left by an
    /// append that never finished (power loss) is cut off first, so every
    /// line but the last is always whole.
    ///
    /// # Errors
    /// I/O failures, named with the path.
    pub fn append(&self, rec: &ShardRecord) -> Result<()> {
        self.cut_torn_tail()?;
        let mut v = serde_json::to_value(rec).expect("records serialise");
        if let Value::Object(o) = &mut v {
            o.insert("run_started_at".into(), Value::from(self.opened_at));
            o.insert("finished_at".into(), Value::from(unix_now()));
        }
        let mut line = v.to_string();
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, "open journal", e))?;
        f.write_all(line.as_bytes())
            .map_err(|e| Error::io(&self.path, "append to journal", e))?;
        f.sync_data()
            .map_err(|e| Error::io(&self.path, "fsync journal", e))
    }

    /// Truncate the journal after its last newline when it does not end
    /// with one (the torn line of an unfinished append).
    fn cut_torn_tail(&self) -> Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&self.path, "open journal", e)),
        };
        let len = f
            .metadata()
            .map_err(|e| Error::io(&self.path, "read journal", e))?
            .len();
        if len == 0 {
            return Ok(());
        }
        let mut last = [0u8];
        f.seek(SeekFrom::Start(len - 1))
            .and_then(|_| f.read_exact(&mut last))
            .map_err(|e| Error::io(&self.path, "read journal", e))?;
        if last[0] == b'\n' {
            return Ok(());
        }
        let mut text = Vec::new();
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.read_to_end(&mut text))
            .map_err(|e| Error::io(&self.path, "read journal", e))?;
        let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        f.set_len(keep as u64)
            .and_then(|()| f.sync_data())
            .map_err(|e| Error::io(&self.path, "cut the torn last line of the journal", e))
    }
}

/// What `verify` found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Files checked and intact.
    pub ok: usize,
    /// Files listed but absent.
    pub missing: Vec<String>,
    /// Files whose size or SHA-256 differs.
    pub corrupt: Vec<String>,
    /// Files present but not listed.
    pub extra: Vec<String>,
}

impl VerifyReport {
    /// Whether everything matched.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.corrupt.is_empty() && self.extra.is_empty()
    }
}

/// Re-hash every file in `files` under `dir` and list files that are not in
/// it (ignoring `allowed_extra` names and the state directory).
///
/// # Errors
/// Only failures to list `dir`; per-file problems go into the report.
pub fn verify_files(
    dir: &Path,
    files: &[&WrittenFile],
    allowed_extra: &[&str],
) -> Result<VerifyReport> {
    let mut rep = VerifyReport::default();
    let listed: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
    for f in files {
        let p = dir.join(&f.path);
        match std::fs::metadata(&p) {
            Err(_) => rep.missing.push(f.path.clone()),
            Ok(m) if m.len() != f.bytes => rep.corrupt.push(format!(
                "{} (size {} bytes, manifest says {})",
                f.path,
                m.len(),
                f.bytes
            )),
            Ok(_) => match npy::sha256_file(&p) {
                Ok(h) if h == f.sha256 => rep.ok += 1,
                Ok(h) => rep.corrupt.push(format!(
                    "{} (sha256 {h}, manifest says {})",
                    f.path, f.sha256
                )),
                Err(e) => rep.corrupt.push(format!("{} ({e})", f.path)),
            },
        }
    }
    for p in walk::files(dir, |name| name == STATE_DIR)? {
        let p = walk::rel_path(dir, &p);
        if !listed.contains(p.as_str()) && !allowed_extra.contains(&p.as_str()) {
            rep.extra.push(p);
        }
    }
    Ok(rep)
}

/// Verify an output directory against its `manifest.json`.
///
/// # Errors
/// No readable manifest.
pub fn verify_output(dir: &Path) -> Result<VerifyReport> {
    let m = Manifest::load(dir)?;
    let files: Vec<&WrittenFile> = m.all_files().collect();
    // A Kaggle part (see `crate::kaggle`) also holds its dataset-metadata.json,
    // which Kaggle does not serve back with the download, so it is not listed.
    verify_files(
        dir,
        &files,
        &[MANIFEST_NAME, "dataset-metadata.json", REPORT_NAME],
    )
}

/// Verify an output that has no manifest yet (a run in progress, stopped or
/// interrupted): every journalled shard's files against the hashes its
/// journal line recorded, and every other file as a leftover — such as the
/// provenance file of a shard whose data write failed, which the next run
/// rewrites. Returns the report (leftovers in `extra`) and the number of
/// journalled shards.
///
/// # Errors
/// A journal or the directory cannot be read.
pub fn verify_unfinished(dir: &Path) -> Result<(VerifyReport, usize)> {
    let mut shards: BTreeMap<usize, ShardRecord> = BTreeMap::new();
    for journal in Journal::all(dir)? {
        for rec in journal.read()? {
            shards.insert(rec.index, rec);
        }
    }
    let files: Vec<&WrittenFile> = shards.values().flat_map(ShardRecord::all_files).collect();
    let rep = verify_files(dir, &files, &[REPORT_NAME])?;
    Ok((rep, shards.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provenance_files_are_read_with_their_count_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("provenance")).unwrap();
        std::fs::write(
            dir.path().join("provenance/prov1.jsonl"),
            concat!(
                r#"{"output_index":0,"id":"a#0","input":"a","input_index":0,"copy":1,"stages":[]}"#,
                "\n",
                r#"{"output_index":1,"id":"a#0","input":"a","input_index":0,"copy":2,"stages":[]}"#,
                "\n"
            ),
        )
        .unwrap();
        let shard = |samples: usize, path: &str| ShardRecord {
            index: 1,
            samples,
            dropped: Vec::new(),
            files: Vec::new(),
            provenance: WrittenFile {
                path: path.into(),
                shape: vec![samples],
                dtype: "jsonl".into(),
                bytes: 0,
                sha256: String::new(),
            },
            devices: BTreeMap::new(),
        };
        let recs = read_provenance(dir.path(), &shard(2, "provenance/prov1.jsonl")).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].sample.copy, 2);
        let e = read_provenance(dir.path(), &shard(3, "provenance/prov1.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("holds 2 provenance records; shard 1 has 3 samples"),
            "{e}"
        );
        let e = read_provenance(dir.path(), &shard(2, "provenance/prov9.jsonl"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("prov9.jsonl"), "{e}");
        let good =
            r#"{"output_index":0,"id":"a#0","input":"a","input_index":0,"copy":1,"stages":[]}"#;
        for (text, says) in [
            (
                format!("{good}\nnot json\n"),
                "line 2 is not a provenance record",
            ),
            // A record without its fields is refused, never defaulted.
            (
                format!("{good}\n{{}}\n"),
                "line 2 is not a provenance record: missing field",
            ),
        ] {
            std::fs::write(dir.path().join("provenance/prov1.jsonl"), text).unwrap();
            let e = read_provenance(dir.path(), &shard(2, "provenance/prov1.jsonl"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says) && e.contains("prov1.jsonl"), "{e}");
        }
    }

    #[test]
    fn journal_lines_carry_times_that_records_leave_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(STATE_DIR)).unwrap();
        let j = Journal::new(dir.path());
        let rec = ShardRecord {
            index: 1,
            samples: 2,
            dropped: Vec::new(),
            files: Vec::new(),
            provenance: WrittenFile {
                path: "provenance/prov1.jsonl".into(),
                shape: vec![2],
                dtype: "jsonl".into(),
                bytes: 10,
                sha256: String::new(),
            },
            devices: BTreeMap::new(),
        };
        j.append(&rec).unwrap();
        j.append(&ShardRecord {
            index: 2,
            ..rec.clone()
        })
        .unwrap();
        // The records read back exactly, without the times…
        assert_eq!(
            j.read().unwrap(),
            vec![
                rec.clone(),
                ShardRecord {
                    index: 2,
                    ..rec.clone()
                }
            ]
        );
        // …which are there for whoever asks.
        let timed = j.read_timed().unwrap();
        assert_eq!(timed.len(), 2);
        let (t1, t2) = (timed[0].1.unwrap(), timed[1].1.unwrap());
        assert_eq!(t1.run_started_at, t2.run_started_at);
        assert!(t1.run_started_at <= t1.finished_at && t1.finished_at <= t2.finished_at);
        assert!(t1.run_started_at > 1.6e9, "{t1:?}");
        // A line from before times were recorded: a record without times.
        let path = dir.path().join(STATE_DIR).join("journal.jsonl");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&serde_json::to_string(&rec).unwrap());
        text.push('\n');
        std::fs::write(&path, text).unwrap();
        let timed = j.read_timed().unwrap();
        assert_eq!(timed.len(), 3);
        assert_eq!(timed[2], (rec, None));
    }
}
