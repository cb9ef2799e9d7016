//! The executor: the one place with threads. It plans output shards, resumes
//! from the journal, and runs a chain of threads joined by bounded channels:
//!
//! ```text
//! producer (rayon: read + per-sample stages) ─chunk→ [batch stage thread
//!   (+ following per-sample stages, rayon)] ─chunk→ … ─chunk→ writer
//!   (npy + SHA-256 + fsync + rename, journal append)
//! ```
//!
//! Output order is fixed by the plan (input sample by input sample, original
//! then copies), every random draw comes from [`crate::rng`], and chunks are
//! collected in order, so the bytes never depend on `--threads`. Each shard is
//! written under a temporary name and recorded in the journal only after its
//! rename; a rerun skips journalled shards and redoes the rest. Peak memory is
//! bounded by the chunks in flight: see [`memory_bound_bytes`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};
use rayon::prelude::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result, StageError};
use crate::io::layout::{check_finite, InputSet};
use crate::io::manifest::{self, Journal, Manifest, ShardRecord, MANIFEST_NAME, STATE_DIR};
use crate::io::npy::{self, NpyWriter};
use crate::pipeline::build::Pipeline;
use crate::pipeline::spec::{DType, Policy};
use crate::progress::Printer;
use crate::rng::{stage_rng, RNG_DERIVATION};
use crate::sample::{Sample, SEISMIC_SHAPE, VELOCITY_SHAPE};
use crate::stage::{BatchStage, Runtime, Stage, StageCtx};

/// Options that change speed and what people see, never the output bytes.
pub struct RunOptions {
    /// Worker threads for per-sample work (rayon).
    pub threads: usize,
    /// Set by Ctrl-C / SIGTERM: stop after the chunk in progress.
    pub stop: Arc<AtomicBool>,
    /// Resume an output that recorded no algorithm versions (written before
    /// seispipe recorded them), accepting that its shards may come from code
    /// that computed different bytes.
    pub accept_unversioned: bool,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Input samples.
    pub samples_in: usize,
    /// Output samples in the finished output (all shards).
    pub samples_out: usize,
    /// Output samples dropped by policy.
    pub samples_dropped: usize,
    /// Shards written by this run.
    pub shards_written: usize,
    /// Shards kept from an earlier, interrupted run.
    pub shards_resumed: usize,
    /// Bytes written by this run.
    pub bytes_written: u64,
    /// Bytes of the whole output.
    pub bytes_total: u64,
    /// Input files skipped by policy.
    pub files_skipped: usize,
    /// Wall time of this run.
    pub elapsed: Duration,
}

/// The shard plan: which output samples go where.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Input samples.
    pub samples_in: usize,
    /// Output samples per input sample.
    pub per_input: usize,
    /// Output samples.
    pub samples_out: usize,
    /// Samples per shard.
    pub samples_per_shard: usize,
    /// Number of shards.
    pub shards: usize,
    /// Bytes of one full data shard file (header included).
    pub data_shard_bytes: u64,
    /// Bytes of one full label shard file, if labelled.
    pub label_shard_bytes: Option<u64>,
    /// Bytes of the whole output (before drops).
    pub total_bytes: u64,
}

impl Plan {
    /// Plan `pipeline` over `inputs`.
    #[must_use]
    pub fn new(pipeline: &Pipeline, inputs: &InputSet) -> Plan {
        let per_input = pipeline.outputs_per_input();
        let samples_in = inputs.total();
        let samples_out = samples_in * per_input;
        let sps = pipeline.spec.output.samples_per_shard;
        let shards = samples_out.div_ceil(sps);
        let dt = pipeline.spec.output.dtype;
        let file_bytes = |n: usize, shape: &[usize]| -> u64 {
            let mut s = vec![n];
            s.extend_from_slice(shape);
            npy::header_bytes(dt, &s).len() as u64
                + (n * shape.iter().product::<usize>() * npy::itemsize(dt)) as u64
        };
        let mut total = 0;
        for j in 0..shards {
            let n = (samples_out - j * sps).min(sps);
            total += file_bytes(n, &pipeline.out_shape);
            if pipeline.out_labels {
                total += file_bytes(n, &VELOCITY_SHAPE);
            }
        }
        Plan {
            samples_in,
            per_input,
            samples_out,
            samples_per_shard: sps,
            shards,
            data_shard_bytes: file_bytes(sps.min(samples_out.max(1)), &pipeline.out_shape),
            label_shard_bytes: pipeline
                .out_labels
                .then(|| file_bytes(sps.min(samples_out.max(1)), &VELOCITY_SHAPE)),
            total_bytes: total,
        }
    }

    /// Output sample range of 0-based shard `j`.
    #[must_use]
    pub fn shard_range(&self, j: usize) -> std::ops::Range<usize> {
        let a = j * self.samples_per_shard;
        a..(a + self.samples_per_shard).min(self.samples_out)
    }
}

/// Upper bound of the sample data held in memory at once, in bytes: every
/// channel slot and every thread holds at most one chunk.
#[must_use]
pub fn memory_bound_bytes(pipeline: &Pipeline) -> u64 {
    let segments = 1 + pipeline
        .stages
        .iter()
        .filter(|s| matches!(s.runtime, Runtime::Batch(_)))
        .count();
    let in_bytes =
        (SEISMIC_SHAPE.iter().product::<usize>() + VELOCITY_SHAPE.iter().product::<usize>()) * 4;
    let out_bytes = (pipeline.out_shape.iter().product::<usize>()
        + VELOCITY_SHAPE.iter().product::<usize>())
        * 4;
    // Per segment: one chunk being built and one in the channel; the hash
    // thread and the writer each hold one, with one in the channel between.
    let chunks = (2 * segments + 3) as u64;
    // A sample in flight may hold its input and its output at once.
    chunks * pipeline.spec.run.chunk_samples as u64 * (in_bytes + out_bytes) as u64
}

/// The versions of the code that computes the output bytes: the output format
/// and each built stage's algorithm (see [`crate::stage::algorithm`]).
#[must_use]
pub fn versions(pipeline: &Pipeline) -> Value {
    json!({
        "output_format": manifest::OUTPUT_FORMAT_VERSION,
        "stages": pipeline
            .stages
            .iter()
            .map(|s| json!({ "stage": s.kind, "algorithm": s.algorithm }))
            .collect::<Vec<_>>(),
    })
}

/// The JSON of everything that determines the output bytes, and its SHA-256:
/// the pipeline (without paths and speed settings), the inputs, the random
/// number derivation and the [`versions`] of the code.
#[must_use]
pub fn fingerprint(pipeline: &Pipeline, inputs: &InputSet) -> (String, Value) {
    let mut spec = serde_json::to_value(&pipeline.spec).expect("spec serialises");
    if let Some(o) = spec.as_object_mut() {
        // Where things live and how fast they run do not change the bytes.
        o.remove("run");
        o.remove("kaggle");
        if let Some(out) = o.get_mut("output").and_then(Value::as_object_mut) {
            out.remove("dir");
        }
        if let Some(inp) = o.get_mut("input").and_then(Value::as_object_mut) {
            inp.remove("path");
        }
    }
    let files: Vec<Value> = inputs
        .files
        .iter()
        .map(|f| {
            json!({
                "path": f.rel,
                "bytes": f.data_header.file_bytes(),
                "samples": f.samples,
                "label_bytes": f.label_header.as_ref().map(npy::NpyHeader::file_bytes),
            })
        })
        .collect();
    let v = json!({
        "format": 1,
        "rng": RNG_DERIVATION,
        "pipeline": spec,
        "inputs": files,
        "versions": versions(pipeline),
    });
    (fingerprint_hash(&v), v)
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
        let keys: std::collections::BTreeSet<&String> = x
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
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
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

struct Item {
    out_index: usize,
    sample: Sample,
    records: Vec<Value>,
    /// The file bytes of the seismic and the velocity map, when they are not
    /// the arrays' own memory (f16 output); filled by the hash thread.
    encoded: Option<(Vec<u8>, Option<Vec<u8>>)>,
}

struct Chunk {
    shard: usize,
    first_of_shard: bool,
    last_of_shard: bool,
    items: Vec<Item>,
    /// On a shard's last chunk, after the hash thread: SHA-256 (hex) of the
    /// data file and of the label file as planned.
    digests: Option<(String, Option<String>)>,
}

enum Segment<'p> {
    /// Per-sample stages (index, stage), run by rayon.
    Samples(Vec<(usize, &'p dyn Stage)>),
    /// A batch stage, on its own thread.
    Batch(usize, &'p dyn BatchStage),
}

fn segments(pipeline: &Pipeline) -> Vec<Vec<Segment<'_>>> {
    // Group: [first per-sample run], then for each batch stage: [batch, following per-sample run].
    let mut groups: Vec<Vec<Segment<'_>>> = vec![vec![Segment::Samples(Vec::new())]];
    for (i, s) in pipeline.stages.iter().enumerate() {
        match &s.runtime {
            Runtime::Sample(st) => {
                let g = groups.last_mut().expect("one group");
                if let Some(Segment::Samples(v)) = g.last_mut() {
                    v.push((i, st.as_ref()));
                } else {
                    g.push(Segment::Samples(vec![(i, st.as_ref())]));
                }
            }
            Runtime::Batch(b) => groups.push(vec![Segment::Batch(i, b.as_ref())]),
        }
    }
    groups
}

struct Ctx<'a> {
    pipeline: &'a Pipeline,
    inputs: &'a InputSet,
    plan: &'a Plan,
}

impl Ctx<'_> {
    fn stage_ctx(&self, sample: &Sample, stage_index: usize) -> StageCtx<'_> {
        let f = &self.inputs.files[sample.origin.input];
        StageCtx {
            rng: stage_rng(
                self.pipeline.spec.seed,
                &f.rel,
                sample.origin.index as u64,
                sample.origin.copy,
                stage_index as u64,
            ),
            inputs: self.inputs,
            seed: self.pipeline.spec.seed,
            stage_index,
        }
    }

    fn stage_error(&self, sample: &Sample, stage_index: usize, e: &StageError) -> Error {
        let f = &self.inputs.files[sample.origin.input];
        Error::Sample {
            path: f.data.clone(),
            index: sample.origin.index,
            reason: format!(
                "stage {stage_index} ({}): {e}",
                self.pipeline.stages[stage_index].kind
            ),
        }
    }

    fn drop_or_fail(&self, item: &mut Item, err: Error) -> Result<()> {
        match self.pipeline.spec.input.on_nonfinite {
            Policy::Error => Err(err),
            Policy::Skip => {
                item.sample.dropped = Some(err.to_string());
                Ok(())
            }
        }
    }

    /// Read output sample `o` and run the first per-sample segment on it.
    fn produce(&self, o: usize, first: &[(usize, &dyn Stage)]) -> Result<Item> {
        let global = o / self.plan.per_input;
        let k = (o % self.plan.per_input) as u64;
        let copy = if self.pipeline.spec.keep_original {
            k
        } else {
            k + 1
        };
        let (file, index) = self.inputs.locate(global);
        let f = &self.inputs.files[file];
        let sample = Sample {
            id: self.inputs.sample_id(file, index),
            origin: crate::sample::Origin {
                input: file,
                index,
                global,
                copy,
            },
            seismic: self.inputs.read_seismic(file, index)?,
            velocity: self.inputs.read_velocity(file, index)?,
            dropped: None,
        };
        let mut item = Item {
            out_index: o,
            sample,
            records: Vec::new(),
            encoded: None,
        };
        let mut bad = check_finite(standard(&item.sample.seismic), &f.data, index, "seismic").err();
        if bad.is_none() {
            if let (Some(v), Some(lp)) = (&item.sample.velocity, &f.label) {
                bad = check_finite(
                    v.as_slice().expect("read arrays are standard"),
                    lp,
                    index,
                    "velocity",
                )
                .err();
            }
        }
        if let Some(e) = bad {
            self.drop_or_fail(&mut item, e)?;
            return Ok(item);
        }
        if copy > 0 {
            self.run_samples(&mut item, first)?;
        }
        Ok(item)
    }

    fn run_samples(&self, item: &mut Item, stages: &[(usize, &dyn Stage)]) -> Result<()> {
        if item.sample.origin.copy == 0 {
            return Ok(());
        }
        for &(i, st) in stages {
            if item.sample.dropped.is_some() {
                break;
            }
            let mut ctx = self.stage_ctx(&item.sample, i);
            let rec = st
                .apply(&mut item.sample, &mut ctx)
                .map_err(|e| self.stage_error(&item.sample, i, &e))?;
            item.records
                .push(stage_record(i, self.pipeline.stages[i].kind, rec));
        }
        Ok(())
    }

    fn run_batch(&self, chunk: &mut Chunk, i: usize, b: &dyn BatchStage) -> Result<()> {
        let live: Vec<usize> = chunk
            .items
            .iter()
            .enumerate()
            .filter(|(_, it)| it.sample.dropped.is_none() && it.sample.origin.copy > 0)
            .map(|(j, _)| j)
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let mut samples: Vec<Sample> = live
            .iter()
            .map(|&j| {
                let origin = chunk.items[j].sample.origin.clone();
                std::mem::replace(
                    &mut chunk.items[j].sample,
                    Sample {
                        id: String::new(),
                        origin,
                        seismic: ndarray::ArrayD::zeros(ndarray::IxDyn(&[0])),
                        velocity: None,
                        dropped: None,
                    },
                )
            })
            .collect();
        let mut ctxs: Vec<StageCtx<'_>> = samples.iter().map(|s| self.stage_ctx(s, i)).collect();
        let recs = b
            .apply_batch(&mut samples, &mut ctxs)
            .map_err(|e| self.stage_error(&samples[0], i, &e));
        for (&j, s) in live.iter().zip(samples) {
            chunk.items[j].sample = s;
        }
        let recs = recs?;
        for (&j, r) in live.iter().zip(recs) {
            chunk.items[j]
                .records
                .push(stage_record(i, self.pipeline.stages[i].kind, r));
        }
        Ok(())
    }
}

fn stage_record(i: usize, kind: &str, rec: Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("stage".into(), json!(i));
    m.insert("type".into(), json!(kind));
    match rec {
        Value::Object(o) => m.extend(o),
        Value::Null => {}
        other => {
            m.insert("record".into(), other);
        }
    }
    Value::Object(m)
}

/// Prepare the output directory for this run: a fresh directory gets its
/// state; an earlier run of the same pipeline is resumed; anything else is refused.
///
/// Returns whether the output recorded no algorithm versions and was accepted
/// anyway (`accept_unversioned`).
fn open_output(
    dir: &Path,
    fingerprint_hash: &str,
    fingerprint_value: &Value,
    accept_unversioned: bool,
) -> Result<bool> {
    let state = dir.join(STATE_DIR);
    let run_json = state.join("run.json");
    if run_json.is_file() {
        let text =
            std::fs::read_to_string(&run_json).map_err(|e| Error::io(&run_json, "read", e))?;
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
        let old_value = old.get("determines_output").unwrap_or(&Value::Null);
        // The pipeline and inputs first: a different pipeline is the bigger news.
        let mut without_versions = fingerprint_value.clone();
        let new_versions = without_versions
            .as_object_mut()
            .and_then(|o| o.remove("versions"))
            .unwrap_or(Value::Null);
        let mut old_rest = old_value.clone();
        let old_versions = old_rest.as_object_mut().and_then(|o| o.remove("versions"));
        if let Some(what) = first_difference("", &old_rest, &without_versions) {
            return Err(Error::Resume {
                dir: dir.to_path_buf(),
                reason: format!(
                    "holds a run of a different pipeline, so resuming would mix outputs ({what}); restore the old settings to resume, or choose a new output.dir"
                ),
            });
        }
        let Some(old_versions) = old_versions else {
            if accept_unversioned {
                return Ok(true);
            }
            return Err(Error::Resume {
                dir: dir.to_path_buf(),
                reason: "was written by a seispipe build that recorded no algorithm versions, so this build may compute different bytes for the shards still to come (simulate's outer edge changed, for one) and resuming would mix them; finish it with the build that started it, or choose a new output.dir — or pass --accept-unversioned to resume anyway, knowing that the output may then mix shards computed by different code (the manifest says so)".into(),
            });
        };
        let what = version_difference(&old_versions, &new_versions)
            .unwrap_or_else(|| "the run fingerprint".into());
        return Err(Error::Resume {
            dir: dir.to_path_buf(),
            reason: format!(
                "was written by other code: {what} — finish with the old build or start a new output"
            ),
        });
    }
    if dir.exists() {
        let non_empty = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, "list directory", e))?
            .next()
            .is_some();
        if non_empty {
            return Err(Error::Resume {
                dir: dir.to_path_buf(),
                reason: "exists, is not empty and holds no seispipe run; choose an empty or new output.dir".into(),
            });
        }
    }
    std::fs::create_dir_all(&state).map_err(|e| Error::io(&state, "create output directory", e))?;
    let body = json!({ "fingerprint": fingerprint_hash, "determines_output": fingerprint_value });
    manifest::write_atomic(
        &run_json,
        serde_json::to_string_pretty(&body)
            .expect("json")
            .as_bytes(),
    )?;
    Ok(false)
}

/// Relative path of shard `j` (0-based): data and label files.
#[must_use]
pub fn shard_paths(j: usize) -> (String, String) {
    (
        format!("data/data{}.npy", j + 1),
        format!("model/model{}.npy", j + 1),
    )
}

/// Run `pipeline` over `inputs`, resuming any earlier run in the same output directory.
///
/// # Errors
/// Any input, stage, or output failure (with file and sample), a refused
/// resume, or [`Error::Interrupted`].
#[allow(clippy::too_many_lines)]
pub fn run(
    pipeline: &Pipeline,
    inputs: &InputSet,
    opts: &RunOptions,
    printer: &mut Printer,
) -> Result<Summary> {
    let plan = Plan::new(pipeline, inputs);
    let out_dir = PathBuf::from(&pipeline.spec.output.dir);
    let (fp, fp_value) = fingerprint(pipeline, inputs);
    let unversioned = open_output(&out_dir, &fp, &fp_value, opts.accept_unversioned)?;
    for sub in ["data"]
        .iter()
        .chain(pipeline.out_labels.then_some(&"model"))
    {
        let d = out_dir.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, "create directory", e))?;
    }
    let journal = Journal::new(&out_dir);
    // Keep journalled shards whose files are still there at the recorded size.
    let mut done: std::collections::BTreeMap<usize, ShardRecord> =
        std::collections::BTreeMap::new();
    for rec in journal.read()? {
        if rec.index == 0 || rec.index > plan.shards {
            continue;
        }
        let intact = rec
            .files
            .iter()
            .all(|f| std::fs::metadata(out_dir.join(&f.path)).is_ok_and(|m| m.len() == f.bytes));
        if intact {
            done.insert(rec.index, rec);
        } else {
            done.remove(&rec.index);
        }
    }
    let pending: Vec<usize> = (0..plan.shards)
        .filter(|j| !done.contains_key(&(j + 1)))
        .collect();
    let mut summary = Summary {
        samples_in: plan.samples_in,
        shards_resumed: done.len(),
        files_skipped: inputs.skipped.len(),
        ..Summary::default()
    };
    let resumed_samples: usize = done.keys().map(|&i| plan.shard_range(i - 1).len()).sum();
    if !done.is_empty() {
        printer.info(&format!(
            "resuming {}: {} of {} shards already finished",
            out_dir.display(),
            done.len(),
            plan.shards
        ));
    }
    printer.start(plan.samples_out, plan.shards, resumed_samples, done.len());

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.max(1))
        .thread_name(|i| format!("seispipe-worker-{i}"))
        .build()
        .map_err(|e| Error::config("--threads", e.to_string()))?;
    let ctx = Ctx {
        pipeline,
        inputs,
        plan: &plan,
    };
    let groups = segments(pipeline);
    let chunk_len = pipeline.spec.run.chunk_samples;
    let failed = AtomicBool::new(false);
    let new_records: std::sync::Mutex<Vec<ShardRecord>> = std::sync::Mutex::new(Vec::new());

    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        let (tx0, mut rx) = bounded::<Chunk>(1);
        // Middle groups: a batch stage and the per-sample stages after it.
        for group in groups.iter().skip(1) {
            let (tx, next_rx) = bounded::<Chunk>(1);
            let in_rx = std::mem::replace(&mut rx, next_rx);
            let ctx = &ctx;
            let pool = &pool;
            let failed = &failed;
            handles.push(scope.spawn(move || -> Result<()> {
                let r = middle_thread(ctx, pool, group, &in_rx, &tx);
                if r.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                r
            }));
        }
        // Hash thread: output checks, f16 encoding, SHA-256.
        {
            let (tx, next_rx) = bounded::<Chunk>(1);
            let in_rx = std::mem::replace(&mut rx, next_rx);
            let ctx = &ctx;
            let failed = &failed;
            handles.push(scope.spawn(move || -> Result<()> {
                let r = hash_thread(ctx, &in_rx, &tx);
                if r.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                r
            }));
        }
        // Writer.
        {
            let ctx = &ctx;
            let out_dir = &out_dir;
            let journal = &journal;
            let printer = &*printer;
            let failed = &failed;
            let new_records = &new_records;
            handles.push(scope.spawn(move || -> Result<()> {
                let r = writer_thread(ctx, out_dir, journal, printer, &rx, new_records);
                if r.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                r
            }));
        }
        // Producer, on this thread.
        let first: Vec<(usize, &dyn Stage)> = match groups[0].first() {
            Some(Segment::Samples(v)) => v.clone(),
            _ => Vec::new(),
        };
        let produced = producer(
            &ctx, &pool, &plan, &pending, chunk_len, &first, &tx0, &opts.stop, &failed,
        );
        if produced.is_err() {
            failed.store(true, Ordering::SeqCst);
        }
        drop(tx0);
        let mut all = vec![produced];
        all.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("pipeline thread panicked")),
        );
        all
    });
    // A thread whose neighbour failed stops quietly (a closed channel or the
    // `failed` flag), so the only errors here are causes; report the first.
    let cause = results.into_iter().find_map(Result::err);
    printer.finish();
    for rec in new_records.into_inner().expect("records lock") {
        summary.shards_written += 1;
        summary.bytes_written += rec.files.iter().map(|f| f.bytes).sum::<u64>();
        done.insert(rec.index, rec);
    }
    summary.elapsed = printer.elapsed();
    if let Some(e) = cause {
        return Err(e);
    }
    // All shards are done: assemble the manifest.
    let shards: Vec<ShardRecord> = done.into_values().collect();
    summary.samples_out = shards.iter().map(|s| s.samples).sum();
    summary.samples_dropped = shards.iter().map(|s| s.dropped.len()).sum();
    summary.bytes_total = shards.iter().flat_map(|s| &s.files).map(|f| f.bytes).sum();
    let mut extra_files = Vec::new();
    for (i, st) in pipeline.stages.iter().enumerate() {
        if let Runtime::Batch(b) = &st.runtime {
            extra_files.extend(b.finish(&out_dir, &shards).map_err(|e| Error::Layout {
                path: out_dir.clone(),
                reason: format!("stage {i} ({}) could not finish: {e}", st.kind),
            })?);
        }
    }
    let m = Manifest {
        format: manifest::MANIFEST_FORMAT.into(),
        seispipe_version: env!("CARGO_PKG_VERSION").into(),
        pipeline_file: pipeline.file.clone(),
        pipeline: serde_json::to_value(&pipeline.spec).expect("spec serialises"),
        fingerprint: fp,
        versions: Some(versions(pipeline)),
        unversioned_resume: unversioned.then(|| {
            "resumed with --accept-unversioned over an output that recorded no algorithm versions: shards written before may come from code that computed different bytes".to_string()
        }),
        seed: pipeline.spec.seed,
        rng: RNG_DERIVATION.into(),
        layout: "openfwi".into(),
        sample_shape: pipeline.out_shape.clone(),
        label_shape: pipeline.out_labels.then(|| VELOCITY_SHAPE.to_vec()),
        dtype: npy::descr(pipeline.spec.output.dtype).into(),
        stage_info: pipeline
            .stages
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.info.clone().map(|v| (i.to_string(), v)))
            .collect(),
        input_root: inputs.root.display().to_string(),
        inputs: inputs
            .files
            .iter()
            .map(|f| {
                json!({
                    "path": f.rel,
                    "label": f.label.as_ref().map(|l| l.strip_prefix(&inputs.root).unwrap_or(l).display().to_string()),
                    "samples": f.samples,
                    "dtype": npy::descr(f.data_header.dtype),
                })
            })
            .collect(),
        skipped_files: inputs.skipped.clone(),
        samples_in: plan.samples_in,
        samples_out: summary.samples_out,
        samples_dropped: summary.samples_dropped,
        shards,
        extra_files,
    };
    manifest::write_atomic(
        &out_dir.join(MANIFEST_NAME),
        serde_json::to_string_pretty(&m)
            .expect("manifest serialises")
            .as_bytes(),
    )?;
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
fn producer(
    ctx: &Ctx<'_>,
    pool: &rayon::ThreadPool,
    plan: &Plan,
    pending: &[usize],
    chunk_len: usize,
    first: &[(usize, &dyn Stage)],
    tx: &Sender<Chunk>,
    stop: &AtomicBool,
    failed: &AtomicBool,
) -> Result<()> {
    for &j in pending {
        let range = plan.shard_range(j);
        let mut start = range.start;
        while start < range.end {
            if stop.load(Ordering::SeqCst) {
                return Err(Error::Interrupted);
            }
            if failed.load(Ordering::SeqCst) {
                return Ok(()); // a later thread failed and reports why
            }
            let end = (start + chunk_len).min(range.end);
            let items: Result<Vec<Item>> = pool.install(|| {
                (start..end)
                    .into_par_iter()
                    .map(|o| ctx.produce(o, first))
                    .collect()
            });
            let chunk = Chunk {
                shard: j,
                first_of_shard: start == range.start,
                last_of_shard: end == range.end,
                items: items?,
                digests: None,
            };
            if tx.send(chunk).is_err() {
                return Ok(()); // the next thread failed and reports why
            }
            start = end;
        }
    }
    Ok(())
}

fn middle_thread(
    ctx: &Ctx<'_>,
    pool: &rayon::ThreadPool,
    group: &[Segment<'_>],
    rx: &Receiver<Chunk>,
    tx: &Sender<Chunk>,
) -> Result<()> {
    for mut chunk in rx {
        for seg in group {
            match seg {
                Segment::Batch(i, b) => ctx.run_batch(&mut chunk, *i, *b)?,
                Segment::Samples(stages) => pool.install(|| {
                    chunk
                        .items
                        .par_iter_mut()
                        .try_for_each(|it| ctx.run_samples(it, stages))
                })?,
            }
        }
        if tx.send(chunk).is_err() {
            return Ok(()); // the next thread failed and reports why
        }
    }
    Ok(())
}

/// Between the stages and the writer: check every output sample (finite
/// values, the f16 range), encode f16, and hash each file's bytes (header as
/// planned, then every sample kept) so that the writer only writes. SHA-256
/// runs at ~2 GB/s, the write copy at several; on one thread together they
/// were the slowest link of flip + noise.
fn hash_thread(ctx: &Ctx<'_>, rx: &Receiver<Chunk>, tx: &Sender<Chunk>) -> Result<()> {
    let dtype = ctx.pipeline.spec.output.dtype;
    let mut hashers: Option<(Sha256, Option<Sha256>)> = None;
    for mut chunk in rx {
        if chunk.first_of_shard {
            let n = ctx.plan.shard_range(chunk.shard).len();
            let mut dshape = vec![n];
            dshape.extend_from_slice(&ctx.pipeline.out_shape);
            let mut lshape = vec![n];
            lshape.extend_from_slice(&VELOCITY_SHAPE);
            let data = Sha256::new_with_prefix(npy::header_bytes(dtype, &dshape));
            let label = ctx
                .pipeline
                .out_labels
                .then(|| Sha256::new_with_prefix(npy::header_bytes(dtype, &lshape)));
            hashers = Some((data, label));
        }
        let (dh, lh) = hashers.as_mut().expect("a shard is open");
        for item in &mut chunk.items {
            if item.sample.dropped.is_none() {
                if let Err(e) = check_output(ctx, &item.sample, dtype) {
                    ctx.drop_or_fail(item, e)?;
                }
            }
            if item.sample.dropped.is_some() {
                continue;
            }
            let s = &mut item.sample;
            if !s.seismic.is_standard_layout() {
                s.seismic = s.seismic.as_standard_layout().into_owned();
            }
            if let Some(v) = s.velocity.as_mut() {
                if !v.is_standard_layout() {
                    *v = v.as_standard_layout().into_owned();
                }
            }
            if lh.is_some() && s.velocity.is_none() {
                return Err(Error::Sample {
                    path: ctx.inputs.files[s.origin.input].data.clone(),
                    index: s.origin.index,
                    reason: "a stage removed the velocity map of a labelled sample".into(),
                });
            }
            let mut data_buf = Vec::new();
            dh.update(npy::item_bytes(standard(&s.seismic), dtype, &mut data_buf));
            let mut label_buf = Vec::new();
            if let (Some(lh), Some(v)) = (lh.as_mut(), s.velocity.as_ref()) {
                lh.update(npy::item_bytes(
                    v.as_slice().expect("standard layout"),
                    dtype,
                    &mut label_buf,
                ));
            }
            if !data_buf.is_empty() {
                item.encoded = Some((data_buf, lh.is_some().then_some(label_buf)));
            }
        }
        if chunk.last_of_shard {
            let (dh, lh) = hashers.take().expect("a shard is open");
            chunk.digests = Some((
                npy::hex(&dh.finalize()),
                lh.map(|h| npy::hex(&h.finalize())),
            ));
        }
        if tx.send(chunk).is_err() {
            return Ok(()); // the writer failed and reports why
        }
    }
    Ok(())
}

struct OpenShard {
    index: usize,
    data: NpyWriter,
    label: Option<NpyWriter>,
    provenance: Vec<Value>,
    dropped: Vec<Value>,
}

fn writer_thread(
    ctx: &Ctx<'_>,
    out_dir: &Path,
    journal: &Journal,
    printer: &Printer,
    rx: &Receiver<Chunk>,
    records: &std::sync::Mutex<Vec<ShardRecord>>,
) -> Result<()> {
    let dtype = ctx.pipeline.spec.output.dtype;
    let mut open: Option<OpenShard> = None;
    for chunk in rx {
        if chunk.first_of_shard {
            let n = ctx.plan.shard_range(chunk.shard).len();
            let (dp, lp) = shard_paths(chunk.shard);
            let mut dshape = vec![n];
            dshape.extend_from_slice(&ctx.pipeline.out_shape);
            let mut lshape = vec![n];
            lshape.extend_from_slice(&VELOCITY_SHAPE);
            open = Some(OpenShard {
                index: chunk.shard + 1,
                data: NpyWriter::create_unhashed(&out_dir.join(&dp), &dp, dtype, &dshape)?,
                label: if ctx.pipeline.out_labels {
                    Some(NpyWriter::create_unhashed(
                        &out_dir.join(&lp),
                        &lp,
                        dtype,
                        &lshape,
                    )?)
                } else {
                    None
                },
                provenance: Vec::with_capacity(n),
                dropped: Vec::new(),
            });
        }
        let sh = open.as_mut().expect("a shard is open");
        let mut bytes = 0u64;
        let n_items = chunk.items.len();
        for mut item in chunk.items {
            let f = &ctx.inputs.files[item.sample.origin.input];
            if let Some(reason) = item.sample.dropped.take() {
                sh.dropped.push(json!({
                    "output_index": item.out_index,
                    "id": item.sample.id,
                    "input": f.rel,
                    "input_index": item.sample.origin.index,
                    "copy": item.sample.origin.copy,
                    "reason": reason,
                }));
                continue;
            }
            // The hash thread made both arrays standard and checked the label.
            let (data_bytes, label_bytes) = match item.encoded.take() {
                Some((d, l)) => (Some(d), l),
                None => (None, None),
            };
            match &data_bytes {
                Some(b) => sh.data.write_encoded_item(b)?,
                None => sh.data.write_item(standard(&item.sample.seismic))?,
            }
            bytes += (item.sample.seismic.len() * npy::itemsize(dtype)) as u64;
            if let (Some(lw), Some(v)) = (sh.label.as_mut(), item.sample.velocity.as_ref()) {
                match &label_bytes {
                    Some(b) => lw.write_encoded_item(b)?,
                    None => lw.write_item(v.as_slice().expect("standard layout"))?,
                }
                bytes += (v.len() * npy::itemsize(dtype)) as u64;
            }
            sh.provenance.push(json!({
                "output_index": item.out_index,
                "id": item.sample.id,
                "input": f.rel,
                "input_index": item.sample.origin.index,
                "copy": item.sample.origin.copy,
                "stages": item.records,
            }));
        }
        printer.samples_done(n_items, bytes);
        if chunk.last_of_shard {
            let sh = open.take().expect("a shard is open");
            let (data_sha, label_sha) = match chunk.digests {
                Some((d, l)) => (Some(d), l),
                None => (None, None),
            };
            let mut files = vec![sh.data.finish_with(data_sha)?];
            if let Some(l) = sh.label {
                files.push(l.finish_with(label_sha)?);
            }
            let rec = ShardRecord {
                index: sh.index,
                samples: sh.provenance.len(),
                dropped: sh.dropped,
                files,
                provenance: sh.provenance,
            };
            journal.append(&rec)?;
            printer.shard_done();
            records.lock().expect("records lock").push(rec);
        }
    }
    // A shard still open here was cut short (error or Ctrl-C upstream): its
    // writers are dropped, which deletes their temporary files.
    drop(open);
    Ok(())
}

/// The elements of a standard-layout array (stages hand back owned arrays).
fn standard<D: ndarray::Dimension>(a: &ndarray::Array<f32, D>) -> &[f32] {
    a.as_slice()
        .expect("arrays read from disk are standard layout")
}

fn check_output(ctx: &Ctx<'_>, s: &Sample, dtype: DType) -> Result<()> {
    let f = &ctx.inputs.files[s.origin.input];
    let seismic = s.seismic.as_standard_layout();
    let seismic = seismic.as_slice().expect("standard layout");
    check_finite(seismic, &f.data, s.origin.index, "output seismic")?;
    let velocity = s
        .velocity
        .as_ref()
        .map(ndarray::ArrayBase::as_standard_layout);
    let velocity = velocity
        .as_ref()
        .map(|v| v.as_slice().expect("standard layout"));
    if let Some(v) = velocity {
        check_finite(v, &f.data, s.origin.index, "output velocity")?;
    }
    if dtype == DType::F16 {
        let max = seismic
            .iter()
            .chain(velocity.unwrap_or(&[]))
            .fold(0f32, |m, v| m.max(v.abs()));
        if max > 65504.0 {
            return Err(Error::Sample {
                path: f.data.clone(),
                index: s.origin.index,
                reason: format!(
                    "value {max} does not fit float16 (max 65504); write f32 or rescale"
                ),
            });
        }
    }
    Ok(())
}
