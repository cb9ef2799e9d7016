//! `pseudo_label`: run one or more trained TorchScript models over the
//! samples and make their prediction the sample's velocity map, so
//! unlabelled inputs (the Kaggle test files) become labelled training shards;
//! after the run, write the Kaggle submission CSV from the finished shards.
//!
//! Per sample: each model sees the sample (and, with `tta = true`, its mirror
//! flip, whose prediction is mirrored back); every view goes through the
//! declared input transform, the model (no gradients; float16 on CUDA when
//! `half = true`) and the output transform. The views are averaged — members
//! by their `weight`, the two TTA views of a member equally — and clipped to
//! `clip`. The *disagreement* (the weighted mean over views of each view's
//! mean absolute difference from the average, m/s, before the clip) is
//! recorded; above `max_disagreement` the sample is dropped (counted and
//! listed in the manifest). A non-finite prediction drops the sample too.
//!
//! Batching: the executor hands this stage one chunk (`run.chunk_samples`
//! samples) at a time on its own thread, so reading, decoding and writing of
//! other chunks overlap inference. `batch_size` splits a chunk into model
//! batches; it cannot merge chunks, so the effective batch is
//! `min(batch_size, chunk_samples)` — set `run.chunk_samples` to a multiple
//! of `batch_size` (0 = the whole chunk, the default).
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
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{BatchStage, BuildEnv, BuiltStage, Record, Runtime, StageCtx};
use crate::error::StageError;
use crate::io::layout::SkippedFile;
use crate::io::manifest::ShardRecord;
use crate::io::npy::{self, WrittenFile};
use crate::model::{
    combine_views, mirror_velocity_x, InputTransform, Model, OutputTransform, VELOCITY_VALUES,
};
use crate::sample::Sample;

/// Version of this stage's own arithmetic (see [`super::algorithm`]); the
/// SHA-256 of every model file is recorded beside it, since a different model
/// writes different labels.
/// 1: batched TorchScript inference, weighted mean over models and TTA views.
pub const ALGORITHM: u32 = 1;

/// `seispipe stages` entry.
pub const DOC: super::StageDoc = super::StageDoc {
    name: "pseudo_label",
    summary: "label samples with trained TorchScript model(s) (TTA, weighted ensembles, confidence filter); writes a Kaggle submission CSV (needs libtorch: the `seispipe-torch` binary)",
    params: &[
        ("models", "(required)", "list of { path = \"m.pt\", weight = 1.0, sha256 = \"…\" (optional pin) }; paths relative to the pipeline file"),
        ("device", "\"auto\"", "\"auto\" (cuda:0 if libtorch sees a GPU, else cpu), \"cpu\" or \"cuda:N\""),
        ("half", "false", "float16 inference (CUDA only)"),
        ("batch_size", "0", "model batch; 0 = the whole chunk (run.chunk_samples); chunks are never merged"),
        ("input_transform", "\"none\"", "none | sign_log1p | minmax | sign_log1p_minmax"),
        ("input_bounds", "(none)", "[lo, hi] mapped to [−1, 1] by the minmax input transforms"),
        ("output_transform", "\"identity\"", "identity (m/s) | minmax ([−1, 1] → output_bounds) | sigmoid (sigmoid·output_scale)"),
        ("output_bounds", "[1500, 4500]", "m/s range of the minmax output transform"),
        ("output_scale", "(none)", "m/s scale of the sigmoid output transform"),
        ("clip", "[1500, 4500]", "final clip of the prediction, m/s"),
        ("tta", "false", "also predict the mirror-flipped sample and average (mirrored back)"),
        ("max_disagreement", "(none)", "drop samples whose views disagree by more than this (mean abs. deviation, m/s)"),
        ("submission", "\"submission.csv\"", "Kaggle CSV in the output directory; \"\" = none"),
        ("fallback_velocity", "(none)", "m/s written for ids without a prediction; unset = no CSV when any id lacks one"),
        ("per_id_npy", "false", "also write predictions/{id}.npy, (70, 70) f32"),
        ("resimulate", "false", "replace the input by the simulation of the predicted velocity (a simulate stage after this one)"),
        ("torch_threads", "(libtorch default)", "libtorch intra-op threads"),
    ],
};

/// One model of the ensemble.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// TorchScript file; relative paths are relative to the pipeline file.
    pub path: String,
    /// Weight in the ensemble mean (> 0).
    #[serde(default = "one")]
    pub weight: f64,
    /// Expected SHA-256 of the file (refused if different).
    #[serde(default)]
    pub sha256: Option<String>,
}

fn one() -> f64 {
    1.0
}
fn default_device() -> String {
    "auto".into()
}
fn default_bounds() -> [f32; 2] {
    [1500.0, 4500.0]
}
fn default_submission() -> String {
    "submission.csv".into()
}

/// `type = "pseudo_label"`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PseudoLabelSpec {
    /// The ensemble (one entry for a single model).
    pub models: Vec<ModelEntry>,
    /// `auto`, `cpu` or `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
    /// float16 inference on CUDA.
    #[serde(default)]
    pub half: bool,
    /// Model batch size; 0 = the whole chunk.
    #[serde(default)]
    pub batch_size: usize,
    /// Input transform.
    #[serde(default)]
    pub input_transform: InputTransform,
    /// Bounds of the min-max input transforms.
    #[serde(default)]
    pub input_bounds: Option<[f32; 2]>,
    /// Output transform.
    #[serde(default)]
    pub output_transform: OutputTransform,
    /// Bounds of the min-max output transform (m/s).
    #[serde(default = "default_bounds")]
    pub output_bounds: [f32; 2],
    /// Scale of the sigmoid output transform (m/s).
    #[serde(default)]
    pub output_scale: Option<f32>,
    /// Final clip (m/s).
    #[serde(default = "default_bounds")]
    pub clip: [f32; 2],
    /// Test-time augmentation with the mirror flip.
    #[serde(default)]
    pub tta: bool,
    /// Drop samples whose views disagree more than this (m/s).
    #[serde(default)]
    pub max_disagreement: Option<f64>,
    /// Submission CSV name in the output directory; empty = none.
    #[serde(default = "default_submission")]
    pub submission: String,
    /// m/s for ids without a prediction.
    #[serde(default)]
    pub fallback_velocity: Option<f32>,
    /// Also write `predictions/{id}.npy`.
    #[serde(default)]
    pub per_id_npy: bool,
    /// Iterative pseudo-labelling: replace each input by the simulation of
    /// its predicted velocity, so the pair is physically consistent. The
    /// pipeline builder runs it as a `simulate` stage right after this one
    /// (in parallel on every worker; the inference thread stays free).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resimulate: bool,
    /// libtorch intra-op threads.
    #[serde(default)]
    pub torch_threads: Option<usize>,
}

/// How to rebuild when the binary lacks libtorch.
pub const NEEDS_TORCH: &str = "pseudo_label needs libtorch, which is in the `seispipe-torch` binary: build it with `make build` (or `cargo build --release --workspace` with LIBTORCH set) and keep it beside `seispipe`";

impl PseudoLabelSpec {
    /// Check the values that need no libtorch.
    ///
    /// # Errors
    /// A message naming the key, the value and what is allowed.
    pub fn validate(&self, env: &BuildEnv) -> Result<(), String> {
        if self.models.is_empty() {
            return Err("models is empty; give at least one { path = \"model.pt\" }".into());
        }
        for (i, m) in self.models.iter().enumerate() {
            if !(m.weight.is_finite() && m.weight > 0.0) {
                return Err(format!(
                    "models[{i}].weight = {} is out of range; expected a finite weight > 0",
                    m.weight
                ));
            }
            if let Some(h) = &m.sha256 {
                if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(format!(
                        "models[{i}].sha256 = \"{h}\" is not a SHA-256 (64 hex digits)"
                    ));
                }
            }
        }
        if self.input_transform.needs_bounds() {
            match self.input_bounds {
                None => {
                    return Err(format!(
                        "input_transform = \"{}\" needs input_bounds = [lo, hi]",
                        enum_name(&self.input_transform)
                    ))
                }
                Some([lo, hi]) if !(lo.is_finite() && hi.is_finite() && lo < hi) => {
                    return Err(format!(
                        "input_bounds = [{lo}, {hi}] is out of range; expected finite lo < hi"
                    ))
                }
                _ => {}
            }
        }
        let [lo, hi] = self.output_bounds;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(format!(
                "output_bounds = [{lo}, {hi}] is out of range; expected finite lo < hi (m/s)"
            ));
        }
        if self.output_transform == OutputTransform::Sigmoid {
            match self.output_scale {
                Some(s) if s.is_finite() && s > 0.0 => {}
                Some(s) => {
                    return Err(format!(
                        "output_scale = {s} is out of range; expected a finite scale > 0 (m/s)"
                    ))
                }
                None => {
                    return Err("output_transform = \"sigmoid\" needs output_scale (m/s)".into())
                }
            }
        }
        let [lo, hi] = self.clip;
        if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
            return Err(format!(
                "clip = [{lo}, {hi}] is out of range; expected finite lo ≤ hi (m/s)"
            ));
        }
        if let Some(d) = self.max_disagreement {
            if !(d.is_finite() && d >= 0.0) {
                return Err(format!(
                    "max_disagreement = {d} is out of range; expected a finite value ≥ 0 (m/s)"
                ));
            }
        }
        if let Some(f) = self.fallback_velocity {
            if !f.is_finite() {
                return Err(format!(
                    "fallback_velocity = {f} is not a finite velocity (m/s)"
                ));
            }
        }
        if self.submission.contains('/') || self.submission.starts_with('.') {
            return Err(format!(
                "submission = \"{}\" must be a plain file name in the output directory (or \"\" for none)",
                self.submission
            ));
        }
        if self.torch_threads == Some(0) {
            return Err(
                "torch_threads = 0 is out of range; expected at least 1 (or leave it out)".into(),
            );
        }
        if env.shape.len() < 2 {
            return Err(format!(
                "pseudo_label needs (source, …, receiver) samples for its models; samples here have shape {:?}",
                env.shape
            ));
        }
        if self.tta && env.shape.len() < 2 {
            return Err("tta needs samples with a source and a receiver axis".into());
        }
        Ok(())
    }

    /// Validate, load every model (checked on a probe batch) and build.
    ///
    /// # Errors
    /// Any bad value, a missing or corrupt model, a model with the wrong
    /// output shape, CUDA asked for where none is — or a process without the
    /// libtorch backend (see [`crate::model::ModelBackend`]).
    pub fn build(&self, env: &BuildEnv) -> Result<BuiltStage, String> {
        self.validate(env)?;
        let models = self.load_models(env)?;
        self.build_with(env, models)
    }

    fn load_models(&self, env: &BuildEnv) -> Result<Vec<Box<dyn Model>>, String> {
        match &env.models {
            Some(b) => b.0.load_models(&self.load_request(env)),
            None => Err(NEEDS_TORCH.into()),
        }
    }

    /// What the backend needs to load this stage's models: paths resolved
    /// against the pipeline file's directory, and the transforms.
    #[must_use]
    pub fn load_request(&self, env: &BuildEnv) -> crate::model::LoadRequest {
        crate::model::LoadRequest {
            models: self
                .models
                .iter()
                .map(|m| crate::model::ModelFile {
                    path: resolve_path(&env.pipeline_dir, &m.path),
                    sha256: m.sha256.clone(),
                })
                .collect(),
            device: self.device.clone(),
            half: self.half,
            torch_threads: self.torch_threads,
            input_transform: self.input_transform,
            input_bounds: self.input_bounds.unwrap_or([-1.0, 1.0]),
            output_transform: self.output_transform,
            output_bounds: self.output_bounds,
            output_scale: self.output_scale.unwrap_or(1.0),
            sample_shape: env.shape.clone(),
        }
    }

    /// Build with already loaded models (tests use stand-in models).
    ///
    /// # Errors
    /// Bad values (see [`PseudoLabelSpec::validate`]) or a model count that
    /// differs from `models`.
    pub fn build_with(
        &self,
        env: &BuildEnv,
        models: Vec<Box<dyn Model>>,
    ) -> Result<BuiltStage, String> {
        self.validate(env)?;
        if models.len() != self.models.len() {
            return Err(format!(
                "{} models loaded for {} entries",
                models.len(),
                self.models.len()
            ));
        }
        let described: Vec<Value> = models
            .iter()
            .zip(&self.models)
            .map(|(m, e)| {
                let mut d = m.describe();
                if let Some(o) = d.as_object_mut() {
                    o.insert("weight".into(), json!(e.weight));
                }
                d
            })
            .collect();
        let sha: Vec<Value> = described
            .iter()
            .map(|d| d.get("sha256").cloned().unwrap_or(Value::Null))
            .collect();
        let info = json!({
            "pseudo_label": {
                "models": described,
                "input_transform": self.input_transform,
                "input_bounds": self.input_bounds,
                "output_transform": self.output_transform,
                "output_bounds": self.output_bounds,
                "output_scale": self.output_scale,
                "clip": self.clip,
                "tta": self.tta,
                "tta_flip": if self.tta { json!("mirror: sources and receivers reversed, prediction mirrored back in x (middle source approximate, see flip)") } else { Value::Null },
                "disagreement": "weighted mean over views of mean |view − combined| (m/s), before clip",
                "max_disagreement": self.max_disagreement,
            }
        });
        let stage = PseudoLabel {
            weights: self.models.iter().map(|m| m.weight).collect(),
            models,
            model_sha: sha,
            sample_values: env.shape.iter().product(),
            batch_size: self.batch_size,
            tta: self.tta,
            clip: self.clip,
            max_disagreement: self.max_disagreement,
            submission: (!self.submission.is_empty()).then(|| self.submission.clone()),
            fallback_velocity: self.fallback_velocity,
            per_id_npy: self.per_id_npy,
            skipped: Mutex::new(None),
        };
        Ok(BuiltStage {
            kind: "pseudo_label",
            params: serde_json::to_value(self).expect("spec serialises"),
            out_shape: env.shape.clone(),
            out_labels: true,
            info: Some(info),
            algorithm: {
                let mut a = super::algorithm("pseudo_label", ALGORITHM, false);
                a["model_sha256"] = Value::Array(stage.model_sha.clone());
                a
            },
            runtime: Runtime::Batch(Box::new(stage)),
        })
    }
}

fn enum_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A model path: absolute as is, relative to the pipeline file's directory otherwise.
#[must_use]
pub fn resolve_path(pipeline_dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        pipeline_dir.join(p)
    }
}

/// One sample's combined map and disagreement, or why it has none.
type Prediction = Result<(Vec<f32>, f64), String>;

/// The runtime stage.
pub struct PseudoLabel {
    models: Vec<Box<dyn Model>>,
    weights: Vec<f64>,
    model_sha: Vec<Value>,
    sample_values: usize,
    batch_size: usize,
    tta: bool,
    clip: [f32; 2],
    max_disagreement: Option<f64>,
    submission: Option<String>,
    fallback_velocity: Option<f32>,
    per_id_npy: bool,
    /// Input files skipped by policy, seen on the first batch (their ids are
    /// missing from the submission).
    skipped: Mutex<Option<Vec<SkippedFile>>>,
}

impl PseudoLabel {
    /// Predict one model batch: per sample, the combined map and its disagreement,
    /// or why it has none.
    fn predict_batch(&self, samples: &[Sample]) -> Result<Vec<Prediction>, StageError> {
        let n = samples.len();
        let views_per_model = if self.tta { 2 } else { 1 };
        let mut input = Vec::with_capacity(n * views_per_model * self.sample_values);
        for s in samples {
            if s.seismic.len() != self.sample_values {
                return Err(StageError::new(format!(
                    "sample {} has shape {:?}; the models were checked for {} values per sample",
                    s.id,
                    s.seismic.shape(),
                    self.sample_values
                )));
            }
            let a = s.seismic.as_standard_layout();
            input.extend_from_slice(a.as_slice().expect("standard layout"));
        }
        if self.tta {
            for s in samples {
                let mut m = s.seismic.as_standard_layout().into_owned();
                super::flip::mirror_seismic(&mut m);
                input.extend_from_slice(m.as_slice().expect("standard layout"));
            }
        }
        // preds[model][view] = n × 4900
        let mut preds: Vec<Vec<f32>> = Vec::with_capacity(self.models.len());
        for (k, m) in self.models.iter().enumerate() {
            let mut p = m
                .predict(&input, n * views_per_model)
                .map_err(|e| StageError::new(format!("model {k}: {e}")))?;
            if p.len() != n * views_per_model * VELOCITY_VALUES {
                return Err(StageError::new(format!(
                    "model {k} returned {} values for {} maps",
                    p.len(),
                    n * views_per_model
                )));
            }
            if self.tta {
                mirror_velocity_x(&mut p[n * VELOCITY_VALUES..]);
            }
            preds.push(p);
        }
        let mut weights = Vec::with_capacity(self.models.len() * views_per_model);
        for &w in &self.weights {
            for _ in 0..views_per_model {
                weights.push(w / views_per_model as f64);
            }
        }
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let mut views: Vec<&[f32]> = Vec::with_capacity(weights.len());
            for p in &preds {
                for v in 0..views_per_model {
                    let at = (v * n + i) * VELOCITY_VALUES;
                    views.push(&p[at..at + VELOCITY_VALUES]);
                }
            }
            let bad = views
                .iter()
                .enumerate()
                .find(|(_, v)| v.iter().any(|x| !x.is_finite()));
            if let Some((j, _)) = bad {
                out.push(Err(format!(
                    "model {} predicted NaN or Inf{}",
                    j / views_per_model,
                    if self.tta {
                        if j % 2 == 1 {
                            " (mirrored view)"
                        } else {
                            " (plain view)"
                        }
                    } else {
                        ""
                    }
                )));
                continue;
            }
            let (mut mean, dis) = combine_views(&views, &weights);
            for x in &mut mean {
                *x = x.clamp(self.clip[0], self.clip[1]);
            }
            out.push(Ok((mean, dis)));
        }
        Ok(out)
    }
}

impl BatchStage for PseudoLabel {
    fn apply_batch(
        &self,
        samples: &mut [Sample],
        ctxs: &mut [StageCtx<'_>],
    ) -> Result<Vec<Record>, StageError> {
        if let Some(c) = ctxs.first() {
            let mut g = self.skipped.lock().expect("skipped lock");
            if g.is_none() {
                *g = Some(c.inputs.skipped.clone());
            }
        }
        if self.submission.is_some() {
            if let Some(s) = samples.iter().find(|s| s.origin.copy > 1) {
                return Err(StageError::new(format!(
                    "sample {} is copy {} of its input: a submission needs one prediction per input; set copies = 1 (and keep_original = false), or submission = \"\"",
                    s.id, s.origin.copy
                )));
            }
        }
        let step = if self.batch_size == 0 {
            samples.len().max(1)
        } else {
            self.batch_size
        };
        let mut records = Vec::with_capacity(samples.len());
        for batch in samples.chunks_mut(step) {
            let results = self.predict_batch(batch)?;
            for (s, r) in batch.iter_mut().zip(results) {
                match r {
                    Err(reason) => {
                        s.dropped = Some(reason.clone());
                        records.push(json!({ "dropped": reason }));
                    }
                    Ok((mean, dis)) => {
                        let rec = json!({
                            "model_sha256": self.model_sha,
                            "tta": self.tta,
                            "disagreement": dis,
                            "replaced_label": s.velocity.is_some(),
                        });
                        if let Some(max) = self.max_disagreement {
                            if dis > max {
                                s.dropped = Some(format!(
                                    "disagreement {dis:.3} m/s > max_disagreement {max}"
                                ));
                            }
                        }
                        s.velocity = Some(
                            ndarray::Array3::from_shape_vec((1, 70, 70), mean)
                                .expect("4900 values"),
                        );
                        records.push(rec);
                    }
                }
            }
        }
        Ok(records)
    }

    fn finish(
        &self,
        out_dir: &Path,
        shards: &[ShardRecord],
    ) -> Result<Vec<WrittenFile>, StageError> {
        let skipped = self
            .skipped
            .lock()
            .expect("skipped lock")
            .clone()
            .unwrap_or_else(|| skipped_from_old_manifest(out_dir));
        write_outputs(
            out_dir,
            shards,
            &skipped,
            self.submission.as_deref(),
            self.fallback_velocity,
            self.per_id_npy,
        )
        .map_err(|e| StageError::new(e.to_string()))
    }
}

/// A rerun that found every shard done runs no batch, so it never saw the
/// skipped inputs; the manifest of the finished run lists them.
fn skipped_from_old_manifest(out_dir: &Path) -> Vec<SkippedFile> {
    crate::io::manifest::Manifest::load(out_dir)
        .map(|m| m.skipped_files)
        .unwrap_or_default()
}

/// The (70, 70) odd-column header of a Kaggle submission.
#[must_use]
pub fn submission_header() -> String {
    let mut h = String::from("oid_ypos");
    for x in (1..70).step_by(2) {
        let _ = write!(h, ",x_{x}");
    }
    h
}

/// A streaming, hashed writer of a text file under a temporary name.
struct TextWriter {
    final_path: PathBuf,
    tmp: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    hasher: Sha256,
    bytes: u64,
}

impl TextWriter {
    fn create(final_path: PathBuf) -> crate::Result<Self> {
        let name = final_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = final_path.with_file_name(format!(".{name}.partial"));
        let f = std::fs::File::create(&tmp).map_err(|e| crate::Error::io(&tmp, "create", e))?;
        Ok(TextWriter {
            final_path,
            tmp,
            file: Some(std::io::BufWriter::with_capacity(1 << 20, f)),
            hasher: Sha256::new(),
            bytes: 0,
        })
    }

    fn put(&mut self, s: &str) -> crate::Result<()> {
        self.file
            .as_mut()
            .expect("open")
            .write_all(s.as_bytes())
            .map_err(|e| crate::Error::io(&self.tmp, "write", e))?;
        self.hasher.update(s.as_bytes());
        self.bytes += s.len() as u64;
        Ok(())
    }

    fn finish(mut self, rel: &str, shape: Vec<usize>) -> crate::Result<WrittenFile> {
        let f = self.file.take().expect("open");
        let f = f
            .into_inner()
            .map_err(|e| crate::Error::io(&self.tmp, "write", e.into_error()))?;
        f.sync_all()
            .map_err(|e| crate::Error::io(&self.tmp, "fsync", e))?;
        std::fs::rename(&self.tmp, &self.final_path)
            .map_err(|e| crate::Error::io(&self.final_path, "rename into place", e))?;
        if let Some(d) = self.final_path.parent() {
            npy::sync_dir(d)?;
        }
        Ok(WrittenFile {
            path: rel.to_string(),
            shape,
            dtype: "text".into(),
            bytes: self.bytes,
            sha256: npy::hex(&std::mem::take(&mut self.hasher).finalize()),
        })
    }
}

impl Drop for TextWriter {
    fn drop(&mut self) {
        if self.file.is_some() {
            self.file = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
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
            if d.get("copy").and_then(Value::as_u64).unwrap_or(1) == 0 {
                continue;
            }
            missing.push((
                d.get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                d.get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ));
        }
    }
    for s in skipped {
        let stem = Path::new(&s.path)
            .file_stem()
            .map(|x| x.to_string_lossy().into_owned())
            .unwrap_or_else(|| s.path.clone());
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
        Some(name) if write_csv => Some(TextWriter::create(out_dir.join(name))?),
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
        let Some(label) = sh.files.get(1) else {
            return Err(crate::Error::Layout {
                path: out_dir.join(sh.files.first().map_or("", |f| f.path.as_str())),
                reason: "shard has no label file to read predictions from".into(),
            });
        };
        let lp = out_dir.join(&label.path);
        let header = npy::read_header(&lp)?;
        let file = std::fs::File::open(&lp).map_err(|e| crate::Error::io(&lp, "open", e))?;
        for (j, p) in sh.provenance.iter().enumerate() {
            if p.get("copy").and_then(Value::as_u64).unwrap_or(1) == 0 {
                continue;
            }
            let id = p
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
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
    crate::io::manifest::write_atomic(path, body.as_bytes())?;
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
    use crate::io::layout::InputSet;
    use crate::sample::Origin;

    /// map[z][x] = offset + x + (first value of the sample), or NaN when asked.
    struct Fake {
        offset: f32,
        nan: bool,
    }

    /// Two finite stand-in models whose predictions differ by 100.
    fn fakes_0_and_100() -> Vec<Box<dyn Model>> {
        vec![
            Box::new(Fake {
                offset: 0.0,
                nan: false,
            }),
            Box::new(Fake {
                offset: 100.0,
                nan: false,
            }),
        ]
    }

    impl Model for Fake {
        fn predict(&self, seismic: &[f32], batch: usize) -> Result<Vec<f32>, String> {
            let per = seismic.len() / batch;
            let mut out = Vec::with_capacity(batch * 4900);
            for b in 0..batch {
                let first = seismic[b * per];
                for _z in 0..70 {
                    for x in 0..70 {
                        out.push(if self.nan {
                            f32::NAN
                        } else {
                            self.offset + x as f32 + first
                        });
                    }
                }
            }
            Ok(out)
        }
        fn describe(&self) -> Value {
            json!({ "file": "fake", "sha256": "00" })
        }
    }

    fn spec(toml_text: &str) -> PseudoLabelSpec {
        toml::from_str(toml_text).unwrap()
    }

    fn env() -> BuildEnv {
        BuildEnv {
            shape: vec![5, 2, 70],
            labels: false,
            stage_index: 0,
            pipeline_dir: PathBuf::new(),
            models: None,
        }
    }

    fn sample(k: usize) -> Sample {
        let v: Vec<f32> = (0..700).map(|i| (i * (k + 1)) as f32 * 0.01).collect();
        Sample {
            id: format!("id{k}"),
            origin: Origin {
                input: 0,
                index: k,
                global: k,
                copy: 1,
            },
            seismic: ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[5, 2, 70]), v).unwrap(),
            velocity: None,
            dropped: None,
        }
    }

    fn run(built: &BuiltStage, samples: &mut [Sample]) -> Vec<Record> {
        let inputs = InputSet {
            root: PathBuf::new(),
            files: Vec::new(),
            offsets: vec![0],
            skipped: Vec::new(),
            labelled: false,
        };
        let mut ctxs: Vec<StageCtx<'_>> = samples
            .iter()
            .map(|_| StageCtx {
                rng: crate::rng::stage_rng(0, "x", 0, 1, 0),
                inputs: &inputs,
                seed: 0,
                stage_index: 0,
            })
            .collect();
        let Runtime::Batch(b) = &built.runtime else {
            panic!("pseudo_label is a batch stage")
        };
        b.apply_batch(samples, &mut ctxs).unwrap()
    }

    include!("../../tests/goldens/check.rs");

    /// pseudo_label's golden (see tests/goldens/check.rs): its arithmetic
    /// (input scaling, TTA, weighted ensemble, output transform, clip) over
    /// stand-in models, whose "SHA-256" is part of the versions it records.
    #[test]
    fn labels_match_the_golden_for_this_version() {
        let s = spec(
            "models = [{ path = \"a\" }, { path = \"b\", weight = 3.0 }]\ntta = true\ninput_transform = \"sign_log1p\"\noutput_transform = \"minmax\"\noutput_bounds = [1500.0, 4500.0]\nclip = [1500.0, 4500.0]\nbatch_size = 2",
        );
        let built = s.build_with(&env(), fakes_0_and_100()).unwrap();
        let mut samples: Vec<Sample> = (0..3).map(sample).collect();
        let records = run(&built, &mut samples);
        let mut h = Sha256::new();
        for (smp, rec) in samples.iter().zip(&records) {
            for v in smp
                .seismic
                .iter()
                .chain(smp.velocity.as_ref().unwrap().iter())
            {
                h.update(v.to_le_bytes());
            }
            h.update(rec.to_string().as_bytes());
        }
        let hash = crate::io::npy::hex(&h.finalize());
        check_golden("pseudo_label_stand_in_models", &built.algorithm, &hash).unwrap();
    }

    #[test]
    fn tta_and_weighted_ensemble_are_the_hand_computed_means() {
        let s = spec(
            "models = [{ path = \"a\" }, { path = \"b\", weight = 3.0 }]\ntta = true\nclip = [-1e6, 1e6]\nbatch_size = 2",
        );
        let models = fakes_0_and_100();
        let built = s.build_with(&env(), models).unwrap();
        assert!(built.out_labels);
        let mut samples: Vec<Sample> = (0..3).map(sample).collect();
        let recs = run(&built, &mut samples);
        for (s, r) in samples.iter().zip(&recs) {
            // Plain view of model m: o_m + x + a, a = s[0,0,0]. Mirrored view,
            // mirrored back: o_m + (69 − x) + b, b = s[4,0,69] (the first value
            // of the mirrored sample). Weights 1 and 3, each view half of its
            // member: mean = (1·(69+a+b)/2 + 3·(100 + (69+a+b)/2)) / 4.
            let a = f64::from(s.seismic[[0, 0, 0]]);
            let b = f64::from(s.seismic[[4, 0, 69]]);
            let want = 75.0 + (69.0 + a + b) / 2.0;
            let v = s.velocity.as_ref().unwrap();
            for &x in v.iter() {
                assert!((f64::from(x) - want).abs() < 1e-3, "{x} vs {want}");
            }
            // Disagreement: Σ w_k · mean_x |view_k − want| / Σ w.
            let mut dis = 0.0;
            for (o, w) in [(0.0, 0.5), (100.0, 1.5)] {
                let mut plain = 0.0;
                let mut mirrored = 0.0;
                for x in 0..70 {
                    let x = f64::from(x);
                    plain += (o + x + a - want).abs() / 70.0;
                    mirrored += (o + 69.0 - x + b - want).abs() / 70.0;
                }
                dis += w * (plain + mirrored);
            }
            dis /= 4.0;
            let got = r["disagreement"].as_f64().unwrap();
            assert!((got - dis).abs() < 1e-5, "{got} vs {dis}");
        }
    }

    #[test]
    fn clip_threshold_and_nan_drop_samples() {
        let s = spec("models = [{ path = \"a\" }]\nclip = [10.0, 20.0]");
        let built = s
            .build_with(
                &env(),
                vec![Box::new(Fake {
                    offset: 0.0,
                    nan: false,
                })],
            )
            .unwrap();
        let mut samples = vec![sample(0)];
        run(&built, &mut samples);
        let v = samples[0].velocity.as_ref().unwrap();
        assert_eq!(v[[0, 0, 0]], 10.0);
        assert_eq!(v[[0, 0, 15]], 15.0);
        assert_eq!(v[[0, 0, 69]], 20.0);

        // Two members 100 m/s apart disagree by 50 m/s.
        let s = spec("models = [{ path = \"a\" }, { path = \"b\" }]\nmax_disagreement = 49.0\nclip = [-1e6, 1e6]");
        let built = s.build_with(&env(), fakes_0_and_100()).unwrap();
        let mut samples = vec![sample(0)];
        let r = run(&built, &mut samples);
        assert!((r[0]["disagreement"].as_f64().unwrap() - 50.0).abs() < 1e-9);
        assert!(samples[0]
            .dropped
            .as_deref()
            .unwrap()
            .contains("max_disagreement 49"));

        let s = spec("models = [{ path = \"a\" }]");
        let built = s
            .build_with(
                &env(),
                vec![Box::new(Fake {
                    offset: 0.0,
                    nan: true,
                })],
            )
            .unwrap();
        let mut samples = vec![sample(0), sample(1)];
        run(&built, &mut samples);
        assert!(samples
            .iter()
            .all(|s| s.dropped.as_deref().unwrap().contains("predicted NaN")));
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = |t: &str| spec(t).validate(&env()).unwrap_err();
        assert!(e("models = [{ path = \"a\", weight = 0.0 }]").contains("models[0].weight = 0"));
        assert!(
            e("models = [{ path = \"a\" }]\noutput_transform = \"sigmoid\"")
                .contains("needs output_scale")
        );
        assert!(e("models = [{ path = \"a\" }]\nclip = [5.0, 1.0]").contains("clip = [5, 1]"));
        assert!(
            e("models = [{ path = \"a\" }]\nsubmission = \"../x.csv\"").contains("plain file name")
        );
        assert!(
            e("models = [{ path = \"a\" }]\nmax_disagreement = -1.0").contains("max_disagreement")
        );
    }

    #[test]
    fn csv_header_has_35_odd_columns() {
        let h = submission_header();
        assert!(h.starts_with("oid_ypos,x_1,x_3,"));
        assert!(h.ends_with(",x_67,x_69"));
        assert_eq!(h.split(',').count(), 36);
    }
}
