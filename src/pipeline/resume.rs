//! Resuming: the run fingerprint (everything that determines the output bytes,
//! with the algorithm [`versions`] of the code), opening an output directory
//! (a fresh one gets its state, an earlier run of the same pipeline is
//! resumed, anything else is refused with the first difference as a sentence)
//! and the journal scan that finds the shards an earlier run finished.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::io::atomic;
use crate::io::layout::InputSet;
use crate::io::manifest::{self, Journal, Shard, ShardRecord, StageVersion, Versions, STATE_DIR};
use crate::io::npy;
use crate::pipeline::plan::Plan;
use crate::rng::RNG_DERIVATION;

/// What determines the output bytes: the JSON that the fingerprint hashes.
#[derive(Serialize)]
struct Determines<'a> {
    format: u32,
    rng: &'a str,
    pipeline: Value,
    inputs: Vec<FingerprintInput<'a>>,
    versions: Versions,
}

/// One input file as the fingerprint sees it.
#[derive(Serialize)]
struct FingerprintInput<'a> {
    path: &'a str,
    bytes: u64,
    samples: usize,
    label_bytes: Option<u64>,
}

/// `.seispipe/run.json`: the fingerprint and the value it hashes, and the
/// pipeline as the first process resolved it (file and every key, paths
/// included), so that `seispipe merge OUT` can rebuild it.
#[derive(Serialize)]
struct RunState<'a> {
    fingerprint: &'a str,
    determines_output: &'a Value,
    pipeline_file: &'a str,
    pipeline: Value,
}

/// What `.seispipe/run.json` says about the pipeline that started an output.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RunOrigin {
    /// The run fingerprint.
    pub fingerprint: String,
    /// The pipeline file as named on the command line.
    #[serde(default)]
    pub pipeline_file: String,
    /// The pipeline after overrides, with resolved paths.
    #[serde(default)]
    pub pipeline: Value,
    /// What the fingerprint hashes.
    #[serde(default)]
    pub determines_output: Value,
}

/// Read `.seispipe/run.json` of an output directory.
///
/// # Errors
/// No seispipe run in `dir`, or a damaged state file.
pub fn run_origin(dir: &Path) -> Result<RunOrigin> {
    let run_json = dir.join(STATE_DIR).join("run.json");
    let text = std::fs::read_to_string(&run_json).map_err(|e| Error::Resume {
        dir: dir.to_path_buf(),
        reason: format!("holds no seispipe run ({}: {e})", run_json.display()),
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Resume {
        dir: dir.to_path_buf(),
        reason: format!("{} is damaged: {e}", run_json.display()),
    })
}

/// The versions of the code that computes the output bytes: the output format
/// and each built stage's algorithm (see [`crate::stage::algorithm`]).
#[must_use]
pub fn versions(pipeline: &Plan) -> Versions {
    Versions {
        output_format: manifest::OUTPUT_FORMAT_VERSION,
        stages: pipeline
            .stages
            .iter()
            .map(|s| StageVersion {
                stage: s.kind.to_string(),
                algorithm: s
                    .planned
                    .algorithm
                    .as_object()
                    .cloned()
                    .expect("an algorithm record is an object"),
            })
            .collect(),
    }
}

/// The JSON of everything that determines the output bytes, and its SHA-256:
/// the pipeline (without paths and speed settings), the inputs, the random
/// number derivation and the [`versions`] of the code.
#[must_use]
pub fn fingerprint(pipeline: &Plan, inputs: &InputSet) -> (String, Value) {
    let spec = determining(serde_json::to_value(&pipeline.spec).expect("spec serialises"));
    let determines = Determines {
        format: 1,
        rng: RNG_DERIVATION,
        pipeline: spec,
        inputs: inputs
            .files
            .iter()
            .map(|f| FingerprintInput {
                path: &f.rel,
                bytes: f.data_header.file_bytes(),
                samples: f.samples,
                label_bytes: f.label_header.as_ref().map(npy::NpyHeader::file_bytes),
            })
            .collect(),
        versions: versions(pipeline),
    };
    let v = serde_json::to_value(determines).expect("fingerprint serialises");
    (fingerprint_hash(&v), v)
}

/// The part of a pipeline's JSON that determines the output bytes: without
/// where things live (`output.dir`, `input.path`, model paths — models are
/// identified by their SHA-256 in the versions) and how fast they run
/// (`run`, `kaggle`).
fn determining(mut spec: Value) -> Value {
    if let Some(o) = spec.as_object_mut() {
        o.remove("run");
        o.remove("kaggle");
        if let Some(out) = o.get_mut("output").and_then(Value::as_object_mut) {
            out.remove("dir");
        }
        if let Some(inp) = o.get_mut("input").and_then(Value::as_object_mut) {
            inp.remove("path");
        }
        for stage in o
            .get_mut("stages")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            for m in stage
                .get_mut("models")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(m) = m.as_object_mut() {
                    m.remove("path");
                }
            }
        }
    }
    spec
}

/// What an output's recorded `determines_output` means to this build: its
/// pipeline read again by today's parser — so a parameter added since, whose
/// default does not change the bytes, is filled in as this build would —
/// and its versions without the simulator a stage ran on (recorded per shard
/// now, not in the versions). A pipeline this build cannot read stays as
/// recorded, and then differs where it differs.
fn as_this_build_reads(old: &Value) -> Value {
    let mut old = old.clone();
    if let Some(p) = old.get("pipeline") {
        let mut filled = p.clone();
        // The paths the fingerprint leaves out are required by the parser.
        if let Some(o) = filled.get_mut("input").and_then(Value::as_object_mut) {
            o.entry("path").or_insert_with(|| Value::from(""));
        }
        if let Some(o) = filled.get_mut("output").and_then(Value::as_object_mut) {
            o.entry("dir").or_insert_with(|| Value::from(""));
        }
        for stage in filled
            .get_mut("stages")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            for m in stage
                .get_mut("models")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(m) = m.as_object_mut() {
                    m.entry("path").or_insert_with(|| Value::from(""));
                }
            }
        }
        if let Ok(spec) = serde_json::from_value::<crate::pipeline::spec::PipelineSpec>(filled) {
            old["pipeline"] = determining(serde_json::to_value(&spec).expect("spec serialises"));
        }
    }
    for st in old
        .get_mut("versions")
        .and_then(|v| v.get_mut("stages"))
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(a) = st.get_mut("algorithm").and_then(Value::as_object_mut) {
            a.remove("simulator");
        }
    }
    old
}

fn fingerprint_hash(v: &Value) -> String {
    npy::hex(&Sha256::digest(serde_json::to_vec(v).expect("json")))
}

/// The first version that differs between an output's recorded versions and
/// this build's, as a sentence.
fn version_difference(old: &Value, new: &Value) -> Option<String> {
    let (o, n) = (&old["output_format"], &new["output_format"]);
    if o != n {
        return Some(format!(
            "output format: version {o} in the output, {n} in this build"
        ));
    }
    let empty = Vec::new();
    let old_stages = old["stages"].as_array().unwrap_or(&empty);
    let new_stages = new["stages"].as_array().unwrap_or(&empty);
    for (i, (a, b)) in old_stages.iter().zip(new_stages).enumerate() {
        let kind = b["stage"].as_str().unwrap_or("?");
        if a["stage"] != b["stage"] {
            return Some(format!(
                "built stage {i}: {} in the output, {kind} in this build",
                a["stage"]
            ));
        }
        let (x, y) = (&a["algorithm"], &b["algorithm"]);
        let keys: BTreeSet<&String> = x
            .as_object()
            .into_iter()
            .chain(y.as_object())
            .flat_map(serde_json::Map::keys)
            .collect();
        for k in keys {
            if x.get(k) != y.get(k) {
                let show = |v: Option<&Value>| v.map_or_else(|| "none".into(), Value::to_string);
                let what = if k == kind {
                    "algorithm".to_string()
                } else {
                    format!("{k} algorithm")
                };
                return Some(format!(
                    "{kind} (built stage {i}): {what} {} in the output, {} in this build",
                    show(x.get(k)),
                    show(y.get(k))
                ));
            }
        }
    }
    (old_stages.len() != new_stages.len()).then(|| {
        format!(
            "{} built stages in the output, {} in this build",
            old_stages.len(),
            new_stages.len()
        )
    })
}

/// The first place two JSON values differ, as a dotted path with both values.
fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                first_difference(
                    &p,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                )
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(&format!("{path}[{i}]"), p, q)),
        _ if a == b => None,
        _ => Some(format!("{path}: was {a}, now {b}")),
    }
}

/// Prepare the output directory for this run: a fresh directory gets its
/// state; an earlier run of the same pipeline is resumed; anything else is
/// refused. Partitions starting together on a fresh output are safe: exactly
/// one creates `run.json`, the others compare against it.
///
/// Returns whether the output recorded no algorithm versions and was accepted
/// anyway (`accept_unversioned`).
pub(super) fn open_output(
    dir: &Path,
    pipeline: &Plan,
    fingerprint_hash: &str,
    fingerprint_value: &Value,
    accept_unversioned: bool,
) -> Result<bool> {
    let run_json = dir.join(STATE_DIR).join("run.json");
    if !run_json.is_file() {
        check_output(dir, fingerprint_hash, fingerprint_value, accept_unversioned)?;
        let state = dir.join(STATE_DIR);
        std::fs::create_dir_all(&state)
            .map_err(|e| Error::io(&state, "create output directory", e))?;
        let body = RunState {
            fingerprint: fingerprint_hash,
            determines_output: fingerprint_value,
            pipeline_file: &pipeline.file,
            pipeline: serde_json::to_value(&pipeline.spec).expect("spec serialises"),
        };
        let text = serde_json::to_string_pretty(&body).expect("json");
        if atomic::write_new(&run_json, text.as_bytes())? {
            return Ok(false);
        }
        // Another process created it first: compare with theirs.
    }
    check_output(dir, fingerprint_hash, fingerprint_value, accept_unversioned)
}

/// The read-only half of [`open_output`]: refuse an output that holds
/// something else (files of no seispipe run, a run of another pipeline or
/// code) without creating or changing anything, so a refused start leaves the
/// directory as it found it. An absent directory, an empty one, or one with
/// only seispipe's state directory and no run in it are fresh.
///
/// Returns whether the output recorded no algorithm versions and was accepted
/// anyway (`accept_unversioned`).
///
/// # Errors
/// The refusals of [`open_output`].
pub(super) fn check_output(
    dir: &Path,
    fingerprint_hash: &str,
    fingerprint_value: &Value,
    accept_unversioned: bool,
) -> Result<bool> {
    let run_json = dir.join(STATE_DIR).join("run.json");
    if !run_json.is_file() {
        // Anything but our state directory means this is not ours to write.
        if dir.exists() {
            if !dir.is_dir() {
                return Err(Error::Resume {
                    dir: dir.to_path_buf(),
                    reason: "exists and is not a directory; choose an empty or new output.dir"
                        .into(),
                });
            }
            let foreign = std::fs::read_dir(dir)
                .map_err(|e| Error::io(dir, "list directory", e))?
                .filter_map(std::result::Result::ok)
                .any(|e| e.file_name() != STATE_DIR);
            if foreign {
                return Err(Error::Resume {
                    dir: dir.to_path_buf(),
                    reason: "exists, is not empty and holds no seispipe run; choose an empty or new output.dir".into(),
                });
            }
        }
        return Ok(false);
    }
    let text = std::fs::read_to_string(&run_json).map_err(|e| Error::io(&run_json, "read", e))?;
    let old: Value = serde_json::from_str(&text).map_err(|e| Error::Resume {
        dir: dir.to_path_buf(),
        reason: format!(
            "{} is damaged ({e}); remove the directory to start over",
            run_json.display()
        ),
    })?;
    if old.get("fingerprint").and_then(Value::as_str) == Some(fingerprint_hash) {
        return Ok(false);
    }
    refuse_or_accept(dir, &old, fingerprint_value, accept_unversioned)
}

/// An earlier run with another fingerprint (`old` is its `run.json`): the
/// same run as recorded by an older build (resume it), an unversioned
/// output (resume only when accepted), or something else (refuse, saying
/// what differs — the code first, then the pipeline and inputs).
fn refuse_or_accept(
    dir: &Path,
    old: &Value,
    fingerprint_value: &Value,
    accept_unversioned: bool,
) -> Result<bool> {
    let recorded = old.get("determines_output").unwrap_or(&Value::Null);
    let mut old_rest = as_this_build_reads(recorded);
    let old_versions = old_rest.as_object_mut().and_then(|o| o.remove("versions"));
    let mut new_rest = fingerprint_value.clone();
    let new_versions = new_rest
        .as_object_mut()
        .and_then(|o| o.remove("versions"))
        .unwrap_or(Value::Null);
    let pipeline_difference = first_difference("", &old_rest, &new_rest);
    let refuse = |reason: String| Error::Resume {
        dir: dir.to_path_buf(),
        reason,
    };
    let different_pipeline = |what: &str| {
        refuse(format!(
            "holds a run of a different pipeline, so resuming would mix outputs ({what}); restore the old settings to resume, or choose a new output.dir"
        ))
    };
    let Some(old_versions) = old_versions else {
        // Written by a release that recorded no algorithm versions.
        if !accept_unversioned {
            let also = pipeline_difference
                .as_deref()
                .map(|w| format!(" (its pipeline or inputs also differ from this one: {w})"))
                .unwrap_or_default();
            return Err(refuse(format!(
                "was written by an older seispipe, one that recorded no algorithm versions{also}: this build may compute different bytes for the shards still to come, and resuming would mix them. Finish it with that build; or pass --accept-unversioned to continue with this one (the shards it cannot check are written again, and the manifest says the output was resumed so); or choose a new output.dir"
            )));
        }
        if let Some(what) = pipeline_difference {
            return Err(different_pipeline(&what));
        }
        return Ok(true);
    };
    if let Some(what) = version_difference(&old_versions, &new_versions) {
        return Err(refuse(format!(
            "was written by other code: {what} — finish with the old build or start a new output"
        )));
    }
    match pipeline_difference {
        Some(what) => Err(different_pipeline(&what)),
        // The same run, recorded by a build that wrote its pipeline with
        // fewer defaults or its simulator in the versions.
        None => Ok(false),
    }
}

/// Whether the output's `run.json` (`origin`) records the run this build
/// computes as `fingerprint_value` (hash `fingerprint_hash`): the same
/// fingerprint, or the same pipeline, inputs and versions as this build
/// reads them. For `merge`, which needs no `--accept-unversioned`: an
/// unversioned output is never the same run.
///
/// # Errors
/// What differs, as [`check_output`] says it.
pub(super) fn same_run(
    dir: &Path,
    origin: &RunOrigin,
    fingerprint_hash: &str,
    fingerprint_value: &Value,
) -> Result<()> {
    if origin.fingerprint == fingerprint_hash {
        return Ok(());
    }
    let old = serde_json::json!({ "determines_output": origin.determines_output });
    refuse_or_accept(dir, &old, fingerprint_value, false).map(|_| ())
}

/// Create the shard directories: `data/`, `provenance/`, and `model/` when `labels`.
pub(super) fn create_shard_dirs(out_dir: &Path, labels: bool) -> Result<()> {
    for sub in ["data", "provenance"]
        .iter()
        .chain(labels.then_some(&"model"))
    {
        let d = out_dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, "create directory", e))?;
    }
    Ok(())
}

/// The journalled shards (of the first `shards`) whose files are still there
/// at the recorded size, from every journal of the output (the whole run's
/// and each partition's: a shard's bytes do not depend on who wrote it); a
/// later record of a shard replaces an earlier one.
pub(super) fn finished_shards(
    out_dir: &Path,
    shards: usize,
) -> Result<BTreeMap<Shard, ShardRecord>> {
    let mut done = BTreeMap::new();
    for journal in Journal::all(out_dir)? {
        for rec in journal.read()? {
            let Some(shard) = rec.shard().filter(|s| s.position() < shards) else {
                continue;
            };
            let intact = rec.all_files().all(|f| {
                std::fs::metadata(out_dir.join(&f.path)).is_ok_and(|m| m.len() == f.bytes)
            });
            if intact {
                done.insert(shard, rec);
            } else {
                done.remove(&shard);
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn first_difference_names_the_dotted_path_and_both_values() {
        let a = json!({"seed": 1, "output": {"dtype": "f32", "samples_per_shard": 8}});
        assert_eq!(first_difference("", &a, &a.clone()), None);
        let b = json!({"seed": 1, "output": {"dtype": "f16", "samples_per_shard": 8}});
        assert_eq!(
            first_difference("", &a, &b).as_deref(),
            Some(r#"output.dtype: was "f32", now "f16""#)
        );
        // Keys are visited in sorted order, so the first difference is stable.
        let c = json!({"seed": 2, "output": {"dtype": "f16", "samples_per_shard": 8}});
        assert_eq!(
            first_difference("", &a, &c).as_deref(),
            Some(r#"output.dtype: was "f32", now "f16""#)
        );
        // A key on one side only compares with null.
        let d = json!({"seed": 1});
        let e = json!({"seed": 1, "copies": 2});
        assert_eq!(
            first_difference("", &d, &e).as_deref(),
            Some("copies: was null, now 2")
        );
    }

    #[test]
    fn first_difference_walks_arrays_of_equal_length_only() {
        let a = json!({"stages": [{"p": 0.5}, {"snr_db": 20.0}]});
        let b = json!({"stages": [{"p": 0.5}, {"snr_db": 10.0}]});
        assert_eq!(
            first_difference("", &a, &b).as_deref(),
            Some("stages[1].snr_db: was 20.0, now 10.0")
        );
        let c = json!({"stages": [{"p": 0.5}]});
        assert_eq!(
            first_difference("", &a, &c).as_deref(),
            Some(r#"stages: was [{"p":0.5},{"snr_db":20.0}], now [{"p":0.5}]"#)
        );
        assert_eq!(
            first_difference("x", &json!(1), &json!("1")).as_deref(),
            Some(r#"x: was 1, now "1""#)
        );
    }

    fn v(format: u32, stages: &Value) -> Value {
        json!({"output_format": format, "stages": stages})
    }

    #[test]
    fn version_difference_reports_the_output_format_first() {
        let s = json!([{"stage": "flip", "algorithm": {"flip": 1}}]);
        assert_eq!(version_difference(&v(1, &s), &v(1, &s)), None);
        assert_eq!(
            version_difference(&v(1, &s), &v(2, &json!([]))).as_deref(),
            Some("output format: version 1 in the output, 2 in this build")
        );
    }

    #[test]
    fn version_difference_names_the_stage_and_the_algorithm() {
        let old = json!([
            {"stage": "flip", "algorithm": {"flip": 1}},
            {"stage": "simulate", "algorithm": {"simulate": 1, "physics": 2}},
        ]);
        let own = json!([
            {"stage": "flip", "algorithm": {"flip": 1}},
            {"stage": "simulate", "algorithm": {"simulate": 2, "physics": 2}},
        ]);
        assert_eq!(
            version_difference(&v(1, &old), &v(1, &own)).as_deref(),
            Some("simulate (built stage 1): algorithm 1 in the output, 2 in this build")
        );
        let physics = json!([
            {"stage": "flip", "algorithm": {"flip": 1}},
            {"stage": "simulate", "algorithm": {"simulate": 1, "physics": 3}},
        ]);
        assert_eq!(
            version_difference(&v(1, &old), &v(1, &physics)).as_deref(),
            Some("simulate (built stage 1): physics algorithm 2 in the output, 3 in this build")
        );
        // A version that one side does not record shows as none.
        let unrecorded = json!([
            {"stage": "flip", "algorithm": {"flip": 1}},
            {"stage": "simulate", "algorithm": {"simulate": 1}},
        ]);
        assert_eq!(
            version_difference(&v(1, &unrecorded), &v(1, &old)).as_deref(),
            Some("simulate (built stage 1): physics algorithm none in the output, 2 in this build")
        );
    }

    #[test]
    fn version_difference_reports_other_stages_and_counts() {
        let flip = json!([{"stage": "flip", "algorithm": {"flip": 1}}]);
        let noise = json!([{"stage": "gaussian_noise", "algorithm": {"gaussian_noise": 1}}]);
        assert_eq!(
            version_difference(&v(1, &flip), &v(1, &noise)).as_deref(),
            Some(r#"built stage 0: "flip" in the output, gaussian_noise in this build"#)
        );
        let two = json!([
            {"stage": "flip", "algorithm": {"flip": 1}},
            {"stage": "gaussian_noise", "algorithm": {"gaussian_noise": 1}},
        ]);
        assert_eq!(
            version_difference(&v(1, &flip), &v(1, &two)).as_deref(),
            Some("1 built stages in the output, 2 in this build")
        );
    }

    fn record(index: usize, bytes: u64) -> ShardRecord {
        ShardRecord {
            index,
            samples: 1,
            dropped: Vec::new(),
            files: vec![npy::WrittenFile {
                path: format!("data/data{index}.npy"),
                shape: vec![1],
                dtype: "<f4".into(),
                bytes,
                sha256: String::new(),
            }],
            provenance: npy::WrittenFile {
                path: format!("provenance/prov{index}.jsonl"),
                shape: vec![1],
                dtype: "jsonl".into(),
                bytes: 2,
                sha256: String::new(),
            },
            devices: BTreeMap::new(),
        }
    }

    #[test]
    fn shard_dirs_and_a_journal_scan_keep_intact_shards_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        create_shard_dirs(out, false).unwrap();
        assert!(out.join("data").is_dir());
        assert!(!out.join("model").exists());
        create_shard_dirs(out, true).unwrap();
        assert!(out.join("model").is_dir());
        let journal = Journal::new(out);
        // No journal yet: nothing finished.
        assert!(finished_shards(out, 3).unwrap().is_empty());
        std::fs::create_dir_all(out.join(STATE_DIR)).unwrap();
        for (i, len) in [(1, 10), (2, 20), (3, 30)] {
            std::fs::write(out.join(format!("data/data{i}.npy")), vec![0u8; len]).unwrap();
            std::fs::write(out.join(format!("provenance/prov{i}.jsonl")), "{}").unwrap();
        }
        journal.append(&record(1, 10)).unwrap();
        journal.append(&record(2, 99)).unwrap(); // truncated or replaced since
        journal.append(&record(3, 30)).unwrap();
        journal.append(&record(4, 0)).unwrap(); // beyond the plan
        journal.append(&record(0, 0)).unwrap(); // not a shard
        let done = finished_shards(out, 3).unwrap();
        assert_eq!(
            done.keys().map(|s| s.number()).collect::<Vec<_>>(),
            vec![1, 3]
        );
        // A later record of a shard whose file no longer matches drops it.
        journal.append(&record(3, 31)).unwrap();
        let done = finished_shards(out, 3).unwrap();
        assert_eq!(done.keys().map(|s| s.number()).collect::<Vec<_>>(), vec![1]);
        // Fewer shards planned: later ones are ignored.
        assert_eq!(finished_shards(out, 0).unwrap().len(), 0);
    }
}
