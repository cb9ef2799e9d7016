//! `pseudo_label`: run one or more trained TorchScript models over the
//! samples and make their prediction the sample's velocity map, so
//! unlabelled inputs (the Kaggle test files) become labelled training shards;
//! after the run, write the Kaggle submission CSV from the finished shards.
//! This file is the pipeline-file side of the stage: [`PseudoLabelSpec`] and
//! its validation, the model load request for the backend, and building the
//! runtime stage; `runtime.rs` holds the batch stage (inference, TTA,
//! ensemble, disagreement filter), `submission.rs` the submission CSV and the
//! per-id arrays written after the run.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{BuiltStage, Instance, ParamError, PlanEnv, Planned, Runtime, StagePlan, StageType};
use crate::model::{InputTransform, Model, OutputTransform};

mod runtime;
mod submission;

pub use runtime::PseudoLabel;
pub use submission::{submission_header, write_outputs};

/// Version of this stage's own arithmetic (see [`super::algorithm`]); the
/// SHA-256 of every model file is recorded beside it, since a different model
/// writes different labels.
/// 1: batched TorchScript inference, weighted mean over models and TTA views.
pub const ALGORITHM: u32 = 1;

/// `seispipe stages` entry.
pub const DOC: super::StageDoc = super::StageDoc {
    name: "pseudo_label",
    parse: super::parse_as::<PseudoLabelSpec>,
    summary: "label samples with trained TorchScript model(s) (TTA, weighted ensembles, confidence filter); writes a Kaggle submission CSV (needs libtorch: the `seispipe-torch` binary)",
    required: "models = [{ path = \"m.pt\" }]",
    params: &[
        ("models", "", "list of { path = \"m.pt\", weight = 1.0, sha256 = \"…\" (optional pin) }; paths relative to the pipeline file (with --set: to the current directory)"),
        ("device", "", "\"auto\" (cuda:0 if libtorch sees a GPU, else cpu), \"cpu\" or \"cuda:N\""),
        ("half", "", "float16 inference (CUDA only)"),
        ("batch_size", "", "model batch; 0 = the whole chunk (run.chunk_samples); chunks are never merged"),
        ("input_transform", "", "none | log1p (sign·log1p) | minmax | log1p_minmax, as waveform_transform"),
        ("input_min", "", "minmax kinds: raw-data value mapped to −1 (put through log1p by log1p_minmax)"),
        ("input_max", "", "minmax kinds: raw-data value mapped to +1"),
        ("output_transform", "", "identity (m/s) | minmax ([−1, 1] → output_bounds) | sigmoid (sigmoid·output_scale)"),
        ("output_bounds", "", "m/s range of the minmax output transform"),
        ("output_scale", "", "m/s scale of the sigmoid output transform"),
        ("velocity_range", "", "the prediction is clipped into [lo, hi], m/s"),
        ("tta", "", "also predict the mirror-flipped sample and average (mirrored back)"),
        ("max_disagreement", "", "drop samples whose views disagree by more than this (mean abs. deviation, m/s)"),
        ("submission", "", "Kaggle CSV in the output directory; \"\" = none"),
        ("fallback_velocity", "", "m/s written for ids without a prediction; unset = no CSV when any id lacks one"),
        ("per_id_npy", "", "also write predictions/{id}.npy, (70, 70) f32"),
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
#[allow(clippy::struct_excessive_bools)] // pipeline-file switches, as users write them
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
    /// Raw data value mapped to −1 by the min-max input transforms (put
    /// through log1p first by `log1p_minmax`), as `waveform_transform`'s `min`.
    #[serde(default)]
    pub input_min: Option<f32>,
    /// Raw data value mapped to +1 (see `input_min`).
    #[serde(default)]
    pub input_max: Option<f32>,
    /// Output transform.
    #[serde(default)]
    pub output_transform: OutputTransform,
    /// Bounds of the min-max output transform (m/s).
    #[serde(default = "default_bounds")]
    pub output_bounds: [f32; 2],
    /// Scale of the sigmoid output transform (m/s).
    #[serde(default)]
    pub output_scale: Option<f32>,
    /// The range the prediction is clipped into (m/s).
    #[serde(default = "default_bounds")]
    pub velocity_range: [f32; 2],
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
pub const NEEDS_TORCH: &str = "pseudo_label needs libtorch, which is in the `seispipe-torch` binary: build it with `make build` (or `cargo build --release --workspace` with LIBTORCH set) and keep it beside `seispipe` (the pip wheel does not ship it; docs/install.md says how to add it)";

impl PseudoLabelSpec {
    /// Check the values that need no libtorch.
    ///
    /// # Errors
    /// A message naming the key, the value and what is allowed.
    pub fn validate(&self, env: &PlanEnv) -> Result<(), ParamError> {
        if self.models.is_empty() {
            return Err(ParamError::Invalid(
                "models is empty; give at least one { path = \"model.pt\" }".into(),
            ));
        }
        for (i, m) in self.models.iter().enumerate() {
            if !(m.weight.is_finite() && m.weight > 0.0) {
                return Err(ParamError::Invalid(format!(
                    "models[{i}].weight = {} is out of range; expected a finite weight > 0",
                    m.weight
                )));
            }
            if let Some(h) = &m.sha256 {
                if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(ParamError::Invalid(format!(
                        "models[{i}].sha256 = \"{h}\" is not a SHA-256 (64 hex digits)"
                    )));
                }
            }
        }
        if self.input_transform.needs_bounds() {
            match (self.input_min, self.input_max) {
                (Some(lo), Some(hi)) if !(lo.is_finite() && hi.is_finite() && lo < hi) => {
                    return Err(ParamError::Invalid(format!(
                        "input_min = {lo}, input_max = {hi} are out of range; expected finite bounds with input_max > input_min"
                    )))
                }
                (Some(_), Some(_)) => {}
                _ => {
                    return Err(ParamError::Invalid(format!(
                        "input_transform = \"{}\" needs input_min and input_max (raw data units)",
                        enum_name(&self.input_transform)
                    )))
                }
            }
        } else if self.input_min.is_some() || self.input_max.is_some() {
            return Err(ParamError::Invalid(format!(
                "input_min and input_max are only used by input_transform = \"minmax\" or \"log1p_minmax\" (here \"{}\"); remove them",
                enum_name(&self.input_transform)
            )));
        }
        let [lo, hi] = self.output_bounds;
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(ParamError::Invalid(format!(
                "output_bounds = [{lo}, {hi}] is out of range; expected finite lo < hi (m/s)"
            )));
        }
        if self.output_transform == OutputTransform::Sigmoid {
            match self.output_scale {
                Some(s) if s.is_finite() && s > 0.0 => {}
                Some(s) => {
                    return Err(ParamError::Invalid(format!(
                        "output_scale = {s} is out of range; expected a finite scale > 0 (m/s)"
                    )))
                }
                None => {
                    return Err(ParamError::Invalid(
                        "output_transform = \"sigmoid\" needs output_scale (m/s)".into(),
                    ))
                }
            }
        }
        let [lo, hi] = self.velocity_range;
        if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
            return Err(ParamError::Invalid(format!(
                "velocity_range = [{lo}, {hi}] is out of range; expected finite lo ≤ hi (m/s)"
            )));
        }
        if let Some(d) = self.max_disagreement {
            if !(d.is_finite() && d >= 0.0) {
                return Err(ParamError::Invalid(format!(
                    "max_disagreement = {d} is out of range; expected a finite value ≥ 0 (m/s)"
                )));
            }
        }
        if let Some(f) = self.fallback_velocity {
            if !f.is_finite() {
                return Err(ParamError::Invalid(format!(
                    "fallback_velocity = {f} is not a finite velocity (m/s)"
                )));
            }
        }
        if self.submission.contains('/') || self.submission.starts_with('.') {
            return Err(ParamError::Invalid(format!(
                "submission = \"{}\" must be a plain file name in the output directory (or \"\" for none)",
                self.submission
            )));
        }
        if self.torch_threads == Some(0) {
            return Err(ParamError::Invalid(
                "torch_threads = 0 is out of range; expected at least 1 (or leave it out)".into(),
            ));
        }
        if env.shape.len() < 2 {
            return Err(ParamError::Invalid(format!(
                "pseudo_label needs (source, …, receiver) samples for its models; samples here have shape {:?}",
                env.shape
            )));
        }
        Ok(())
    }

    /// What the backend needs to load this stage's models: paths as
    /// resolved against the pipeline file's directory, each with the SHA-256
    /// the plan identified (`sha256`, in model order; else the one the user
    /// wrote), and the transforms.
    #[must_use]
    pub fn load_request(
        &self,
        sample_shape: &[usize],
        sha256: &[Option<String>],
    ) -> crate::model::LoadRequest {
        crate::model::LoadRequest {
            models: self
                .models
                .iter()
                .enumerate()
                .map(|(i, m)| crate::model::ModelFile {
                    path: PathBuf::from(&m.path),
                    sha256: sha256
                        .get(i)
                        .cloned()
                        .flatten()
                        .or_else(|| m.sha256.clone()),
                })
                .collect(),
            device: self.device.clone(),
            half: self.half,
            torch_threads: self.torch_threads,
            input_transform: self.input_transform,
            input_bounds: self.model_input_bounds(),
            output_transform: self.output_transform,
            output_bounds: self.output_bounds,
            output_scale: self.output_scale.unwrap_or(1.0),
            sample_shape: sample_shape.to_vec(),
        }
    }

    /// The min-max bounds in the units the model's input is scaled from:
    /// `[input_min, input_max]`, put through `sign·log1p` for `log1p_minmax`.
    #[must_use]
    pub fn model_input_bounds(&self) -> [f32; 2] {
        let (lo, hi) = (
            self.input_min.unwrap_or(-1.0),
            self.input_max.unwrap_or(1.0),
        );
        if self.input_transform == InputTransform::Log1pMinmax {
            let sl = |v: f32| v.signum() * v.abs().ln_1p();
            [sl(lo), sl(hi)]
        } else {
            [lo, hi]
        }
    }

    /// The manifest's facts about this stage, with the models' SHA-256 as
    /// identified (`null` before).
    fn info(&self, sha256: &[Value]) -> Value {
        let models: Vec<Value> = self
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| {
                json!({
                    "file": m.path,
                    "sha256": sha256.get(i).cloned().unwrap_or(Value::Null),
                    "weight": m.weight,
                })
            })
            .collect();
        json!({
            "pseudo_label": {
                "models": models,
                "device": self.device,
                "half": self.half,
                "input_transform": self.input_transform,
                "input_min": self.input_min,
                "input_max": self.input_max,
                "output_transform": self.output_transform,
                "output_bounds": self.output_bounds,
                "output_scale": self.output_scale,
                "velocity_range": self.velocity_range,
                "tta": self.tta,
                "tta_flip": if self.tta { json!("mirror: sources and receivers reversed, prediction mirrored back in x (middle source approximate, see flip)") } else { Value::Null },
                "disagreement": "weighted mean over views of mean |view − combined| (m/s), before clip",
                "max_disagreement": self.max_disagreement,
            }
        })
    }

    /// The SHA-256 of each model as identified in `plan` (`None` before).
    fn identified_sha(plan: &Planned) -> Vec<Option<String>> {
        plan.algorithm["model_sha256"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    /// Plan, identify the models by what `models` report and run with them
    /// (tests use stand-in models).
    ///
    /// # Errors
    /// Bad values (see [`PseudoLabelSpec::validate`]) or a model count that
    /// differs from `models`.
    pub fn build_with(
        &self,
        env: &PlanEnv,
        models: Vec<Box<dyn Model>>,
    ) -> Result<BuiltStage, ParamError> {
        let mut planned = self.plan(env)?;
        let sha: Vec<String> = models
            .iter()
            .map(|m| {
                m.describe()["sha256"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        self.identified(&mut planned, &sha);
        let plan = StagePlan {
            kind: "pseudo_label",
            at: super::StageAt {
                index: 0,
                written: "pseudo_label",
                expansion: None,
            },
            spec: self.clone().into(),
            params: serde_json::to_value(self).expect("spec serialises"),
            input: env.clone(),
            planned,
        };
        let inst = self.instantiate_with(&plan, models)?;
        Ok(BuiltStage {
            plan,
            runtime: inst.runtime,
        })
    }

    /// The runtime over already loaded `models`.
    ///
    /// # Errors
    /// A model count that differs from the spec's.
    pub fn instantiate_with(
        &self,
        plan: &StagePlan,
        models: Vec<Box<dyn Model>>,
    ) -> Result<Instance, ParamError> {
        if models.len() != self.models.len() {
            return Err(ParamError::Invalid(format!(
                "{} models loaded for {} entries",
                models.len(),
                self.models.len()
            )));
        }
        let device = models.first().map(|m| device_name(&m.describe()));
        let stage = PseudoLabel {
            weights: self.models.iter().map(|m| m.weight).collect(),
            models,
            model_sha: Self::identified_sha(&plan.planned)
                .into_iter()
                .map(|s| s.map_or(Value::Null, Value::from))
                .collect(),
            sample_values: plan.input.shape.iter().product(),
            batch_size: self.batch_size,
            tta: self.tta,
            clip: self.velocity_range,
            max_disagreement: self.max_disagreement,
            submission: (!self.submission.is_empty()).then(|| self.submission.clone()),
        };
        Ok(Instance {
            runtime: Runtime::Batch(Box::new(stage)),
            device,
        })
    }
}

/// What a shard records about where the models ran: `tch-cpu`,
/// `tch-cuda:N` (from the backend's `"device"`: `Cpu`, `Cuda(N)`), or the
/// backend's own word.
fn device_name(described: &Value) -> String {
    match described["device"].as_str() {
        Some("Cpu") => "tch-cpu".into(),
        Some(d) => match d.strip_prefix("Cuda(").and_then(|r| r.strip_suffix(')')) {
            Some(n) => format!("tch-cuda:{n}"),
            None => d.to_lowercase(),
        },
        None => "unknown".into(),
    }
}

impl super::StageType for PseudoLabelSpec {
    const DOC: super::StageDoc = DOC;

    /// Any bad value (see [`PseudoLabelSpec::validate`]). The models are
    /// identified (hashed) after planning and loaded by `instantiate`.
    fn plan(&self, env: &PlanEnv) -> Result<Planned, ParamError> {
        self.validate(env)?;
        let unknown = vec![Value::Null; self.models.len()];
        let mut algorithm = super::algorithm("pseudo_label", ALGORITHM, false);
        algorithm["model_sha256"] = Value::Array(unknown.clone());
        Ok(Planned {
            out_labels: true,
            info: Some(self.info(&unknown)),
            batch: true,
            files: self.models.iter().map(|m| PathBuf::from(&m.path)).collect(),
            has_device: true,
            ..Planned::same(env, algorithm)
        })
    }

    fn identified(&self, planned: &mut Planned, sha256: &[String]) {
        let sha: Vec<Value> = sha256.iter().map(|s| Value::from(s.as_str())).collect();
        planned.algorithm["model_sha256"] = Value::Array(sha.clone());
        planned.info = Some(self.info(&sha));
    }

    /// Load every model (checked on a probe batch).
    ///
    /// # Errors
    /// A missing or corrupt model, one whose SHA-256 is not the one
    /// identified, a model with the wrong output shape, CUDA asked for where
    /// none is — or a process without the libtorch backend (see
    /// [`crate::model::ModelBackend`]).
    fn instantiate(
        &self,
        plan: &StagePlan,
        env: &super::RunEnv<'_>,
    ) -> Result<Instance, ParamError> {
        let Some(b) = env.models else {
            return Err(ParamError::NeedsTorch(NEEDS_TORCH.into()));
        };
        let sha = Self::identified_sha(&plan.planned);
        let models =
            b.0.load_models(&self.load_request(&plan.input.shape, &sha))?;
        self.instantiate_with(plan, models)
    }

    fn needs_torch(&self) -> bool {
        true
    }

    fn expansions(&self) -> Vec<(&'static str, super::StageSpec)> {
        if !self.resimulate {
            return Vec::new();
        }
        // `resimulate = true` is a `simulate` stage right after the model:
        // per-sample, so it runs on every worker in parallel.
        let sim = crate::stage::simulate::SimulateSpec {
            source_positions: crate::stage::simulate::default_sources(),
            clip_velocity: false,
            device: None,
        };
        vec![("resimulate = true", sim.into())]
    }

    fn finish(
        &self,
        out_dir: &std::path::Path,
        shards: &[crate::io::manifest::ShardRecord],
        skipped: &[crate::io::layout::SkippedFile],
    ) -> Result<Vec<crate::io::npy::WrittenFile>, crate::error::StageError> {
        let submission = (!self.submission.is_empty()).then_some(self.submission.as_str());
        write_outputs(
            out_dir,
            shards,
            skipped,
            submission,
            self.fallback_velocity,
            self.per_id_npy,
        )
        .map_err(|e| crate::error::StageError::new(e.to_string()))
    }
}

fn enum_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn spec(toml_text: &str) -> PseudoLabelSpec {
        toml::from_str(toml_text).unwrap()
    }

    pub(super) fn env() -> PlanEnv {
        PlanEnv {
            shape: vec![5, 2, 70],
            labels: false,
        }
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = |t: &str| spec(t).validate(&env()).unwrap_err().to_string();
        assert!(e("models = [{ path = \"a\", weight = 0.0 }]").contains("models[0].weight = 0"));
        assert!(
            e("models = [{ path = \"a\" }]\noutput_transform = \"sigmoid\"")
                .contains("needs output_scale")
        );
        assert!(
            e("models = [{ path = \"a\" }]\nvelocity_range = [5.0, 1.0]")
                .contains("velocity_range = [5, 1]")
        );
        assert!(
            e("models = [{ path = \"a\" }]\nsubmission = \"../x.csv\"").contains("plain file name")
        );
        assert!(
            e("models = [{ path = \"a\" }]\nmax_disagreement = -1.0").contains("max_disagreement")
        );
    }
}
