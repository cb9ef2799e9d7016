//! The stage contract, and one file per stage type.
//!
//! A [`Stage`] transforms one sample, single-threaded, drawing any randomness
//! from the [`StageCtx`] it is handed; the executor owns all parallelism. A
//! [`BatchStage`] (batched model inference) sees a whole chunk of samples at
//! once and is scheduled on its own thread between per-sample segments.
//!
//! Every stage type implements [`StageType`] on its spec: a pure
//! [`StageType::plan`] (shapes, labels, algorithm versions, expansions —
//! no file, no device) and [`StageType::instantiate`], which makes the
//! runtime in the process that runs it. Adding a stage: write
//! `src/stage/NAME.rs` with a `NameSpec` (serde, `deny_unknown_fields`), its
//! runtime and its `StageType` impl, and add one line to [`registry`]. The
//! executor does not change.

pub mod flip;
pub mod noise;
pub mod normal;
pub mod pseudo_label;
pub mod registry;
pub mod simulate;
pub mod spectrogram;
pub mod velocity_affine;
pub mod velocity_mixup;
pub mod waveform_transform;

use crate::error::StageError;
use crate::io::layout::InputSet;
use crate::rng::StageRng;
use crate::sample::Sample;
use serde_json::Value;

/// What a stage hands back for provenance: whether it did anything, and the
/// parameters it drew (a JSON object, recorded verbatim in the manifest).
pub type Record = Value;

/// Per-sample context: the sample's own random stream and read access to every
/// input sample (for stages that need a partner, like mixup).
pub struct StageCtx<'a> {
    /// The generator for this (seed, input, sample, copy, stage).
    pub rng: StageRng,
    /// All inputs, for stages that read another sample (partners).
    pub inputs: &'a InputSet,
    /// The pipeline seed (stages that derive extra streams must use [`crate::rng`]).
    pub seed: u64,
    /// Index of this stage in the pipeline.
    pub stage_index: usize,
}

/// A transform of one sample. Must be deterministic given the sample and the
/// generator in `ctx`; must not spawn threads.
pub trait Stage: Send + Sync {
    /// Transform `sample` in place and return the provenance record.
    ///
    /// # Errors
    /// A [`StageError`] saying what is wrong with this sample; the executor
    /// adds the file and sample index.
    fn apply(&self, sample: &mut Sample, ctx: &mut StageCtx<'_>) -> Result<Record, StageError>;
}

/// A transform that needs a batch of samples at once (model inference).
pub trait BatchStage: Send + Sync {
    /// Transform every sample of `samples` (none is dropped on entry) and return
    /// one record per sample, in order. `ctxs[i]` belongs to `samples[i]`.
    ///
    /// # Errors
    /// A failure that ends the run (per-sample problems should set
    /// `Sample::dropped` instead).
    fn apply_batch(
        &self,
        samples: &mut [Sample],
        ctxs: &mut [StageCtx<'_>],
    ) -> Result<Vec<Record>, StageError>;
}

/// What is wrong with a stage's parameters, or with where it stands in the
/// pipeline; the planner adds the file and the user's `stages[i]`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// A parameter outside its range.
    #[error("{key} = {value} is out of range; expected {expected}")]
    OutOfRange {
        /// The key (`p`, `crop_min`, …).
        key: String,
        /// Its value, as written.
        value: String,
        /// What is allowed.
        expected: String,
    },
    /// Any other wrong value, or parameters that do not go together; the
    /// sentence names the keys and what is allowed.
    #[error("{0}")]
    Invalid(String),
    /// A stage that simulates from velocity maps where samples carry none.
    #[error("{what} simulates from velocity maps, but the samples here carry no labels (input unlabelled, or labels = \"none\")")]
    NeedsLabels {
        /// The stage (and setting) that needs them.
        what: &'static str,
    },
    /// A stage that writes (5, 1000, 70) data where samples have another shape.
    #[error("{what} writes (5, 1000, 70) simulated data, but samples here have shape {shape:?}; put it before stages that change the shape")]
    NeedsStandardShape {
        /// The stage (and setting).
        what: &'static str,
        /// The shape entering it.
        shape: Vec<usize>,
    },
    /// Samples of a rank or layout the stage cannot read.
    #[error("{what} needs {needs}; samples here have shape {shape:?}")]
    SampleShape {
        /// The stage.
        what: &'static str,
        /// What it needs (`(source, time, receiver) samples`).
        needs: &'static str,
        /// The shape entering it.
        shape: Vec<usize>,
    },
    /// The stage needs libtorch, which this process does not have; the
    /// sentence says what to build.
    #[error("{0}")]
    NeedsTorch(String),
    /// Simulator checks (sources, maps).
    #[error(transparent)]
    Physics(#[from] crate::physics::PhysicsError),
    /// A spectrogram that cannot be computed as configured.
    #[error(transparent)]
    Stft(#[from] crate::dsp::stft::StftError),
    /// The model backend could not provide a device or a model.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
}

impl ParamError {
    /// `key = value is out of range; expected …`.
    pub fn out_of_range(
        key: &str,
        value: impl std::fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        ParamError::OutOfRange {
            key: key.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

/// A built stage of either kind.
pub enum Runtime {
    /// Per-sample, run in parallel by the executor.
    Sample(Box<dyn Stage>),
    /// Batched, run on its own thread.
    Batch(Box<dyn BatchStage>),
}

/// What planning knows about the samples entering a stage. Planning reads no
/// file and touches no device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEnv {
    /// Seismic shape entering the stage.
    pub shape: Vec<usize>,
    /// Whether samples carry velocity maps.
    pub labels: bool,
}

/// What a stage type's [`StageType::plan`] decides: the same on every
/// machine, whatever hardware or libtorch the process has.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Seismic sample shape after this stage.
    pub out_shape: Vec<usize>,
    /// Whether samples carry a velocity map after this stage.
    pub out_labels: bool,
    /// Layout facts for the manifest (axis names, bin frequencies…), if any.
    pub info: Option<Value>,
    /// The versions of the code that computes this stage's bytes (see
    /// [`algorithm`]): part of the run fingerprint and of the manifest.
    pub algorithm: Value,
    /// Whether the stage may run as a batch stage (on its own thread): an
    /// upper bound for the memory bound, decided without looking for devices.
    pub batch: bool,
    /// Files the stage reads whose contents determine its bytes (models):
    /// identified by SHA-256 after planning ([`StageType::identified`]).
    pub files: Vec<std::path::PathBuf>,
    /// Whether the stage chooses where it runs (`device`): each shard then
    /// records the simulator or device this process used for it.
    pub has_device: bool,
}

impl Planned {
    /// A stage that keeps the shape and labels of `env`.
    #[must_use]
    pub fn same(env: &PlanEnv, algorithm: Value) -> Planned {
        Planned {
            out_shape: env.shape.clone(),
            out_labels: env.labels,
            info: None,
            algorithm,
            batch: false,
            files: Vec::new(),
            has_device: false,
        }
    }
}

/// Where a planned stage comes from: the user's `stages[index]`, or a stage
/// that entry expands into (`pseudo_label`'s `resimulate = true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageAt {
    /// The index in the pipeline file's `stages`.
    pub index: usize,
    /// The user's stage type.
    pub written: &'static str,
    /// The setting that expanded the entry into this stage, if any.
    pub expansion: Option<&'static str>,
}

impl std::fmt::Display for StageAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stages[{}] ({}", self.index, self.written)?;
        if let Some(e) = self.expansion {
            write!(f, ", {e}")?;
        }
        f.write_str(")")
    }
}

/// One stage of a pipeline plan: what it does, where it came from, and what
/// it turns its input into. Plans are computed without devices or files, so
/// the fingerprint, `check`, `merge` and the manifest never depend on the
/// machine that computes them.
#[derive(Debug, Clone, PartialEq)]
pub struct StagePlan {
    /// The stage type that runs (`simulate` for an expansion).
    pub kind: &'static str,
    /// The user's entry it comes from.
    pub at: StageAt,
    /// The spec that runs (for an expansion: the stage it expands into).
    pub spec: StageSpec,
    /// Its parameters as configured (JSON), for `check`.
    pub params: Value,
    /// What enters the stage.
    pub input: PlanEnv,
    /// What the stage decided.
    pub planned: Planned,
}

/// What a stage is made ready with in the process that runs it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunEnv<'a> {
    /// The libtorch backend when this process has one.
    pub models: Option<&'a crate::model::Backend>,
    /// The simulator's time-loop kernel (same bits either way).
    pub compute: crate::cpu::Compute,
}

/// A stage made ready to run in this process ([`StageType::instantiate`]).
pub struct Instance {
    /// The runtime.
    pub runtime: Runtime,
    /// Where this process runs a stage that chooses (`device`): `rust`,
    /// `tch-cpu` or `tch-cuda:N`; recorded with every shard it computes.
    pub device: Option<String>,
}

impl Instance {
    /// A per-sample stage without a device choice.
    #[must_use]
    pub fn sample(stage: impl Stage + 'static) -> Instance {
        Instance {
            runtime: Runtime::Sample(Box::new(stage)),
            device: None,
        }
    }
}

/// One stage type: its parser (the spec type itself, through serde), its
/// documentation, how it plans and how it runs. Each lives in its own file
/// and has one line in [`registry`].
pub trait StageType: serde::Serialize + serde::de::DeserializeOwned + Clone {
    /// `seispipe stages` entry.
    const DOC: StageDoc;

    /// Check the parameters against what enters the stage and decide what it
    /// produces. Pure: no file, no device, no model.
    ///
    /// # Errors
    /// A message naming the parameter and the allowed values.
    fn plan(&self, env: &PlanEnv) -> Result<Planned, ParamError>;

    /// Make the runtime for this process (`env`: its libtorch backend, if
    /// any, and kernel).
    ///
    /// # Errors
    /// A device or model that this process cannot provide.
    fn instantiate(&self, plan: &StagePlan, env: &RunEnv<'_>) -> Result<Instance, ParamError>;

    /// Whether running it needs libtorch (the `seispipe-torch` binary).
    fn needs_torch(&self) -> bool {
        false
    }

    /// Stages this entry expands into, run right after it: (the setting that
    /// asks for it, the stage).
    fn expansions(&self) -> Vec<(&'static str, StageSpec)> {
        Vec::new()
    }

    /// Record the SHA-256 of [`Planned::files`] (in order) in the plan.
    fn identified(&self, _planned: &mut Planned, _sha256: &[String]) {}

    /// Called once after every shard of the run is finished (also by `merge`,
    /// and on a rerun that found all shards done), before the manifest is
    /// written: write any side outputs (a submission CSV…) from the finished
    /// shards, atomically, and return them for the manifest's `extra_files`.
    ///
    /// # Errors
    /// A failure that fails the run (the shards stay; a rerun retries this).
    fn finish(
        &self,
        _out_dir: &std::path::Path,
        _shards: &[crate::io::manifest::ShardRecord],
        _skipped: &[crate::io::layout::SkippedFile],
    ) -> Result<Vec<crate::io::npy::WrittenFile>, StageError> {
        Ok(Vec::new())
    }
}

/// A planned stage with its runtime (tests and single stages; the executor
/// uses [`crate::pipeline::build::Pipeline`]).
pub struct BuiltStage {
    /// The plan.
    pub plan: StagePlan,
    /// The runtime.
    pub runtime: Runtime,
}

/// Plan and instantiate one stage entering `env`, as `stages[0]` (tests and
/// tools that run a single stage).
///
/// # Errors
/// The stage's planning or instantiation error.
pub fn build_one<T: StageType + Into<StageSpec>>(
    spec: &T,
    env: &PlanEnv,
    run: &RunEnv<'_>,
) -> Result<BuiltStage, ParamError> {
    let full: StageSpec = spec.clone().into();
    let plan = StagePlan {
        kind: T::DOC.name,
        at: StageAt {
            index: 0,
            written: T::DOC.name,
            expansion: None,
        },
        params: serde_json::to_value(spec).expect("spec serialises"),
        spec: full,
        input: env.clone(),
        planned: spec.plan(env)?,
    };
    let inst = spec.instantiate(&plan, run)?;
    Ok(BuiltStage {
        plan,
        runtime: inst.runtime,
    })
}

/// The algorithm versions of a stage: `{"<kind>": version}`, plus
/// `"physics": `[`crate::physics::ALGORITHM`] when the stage runs the wave
/// simulator. A stage's version is bumped whenever the bytes it writes for the
/// same inputs and parameters change, so that a resume (or a partition) never
/// mixes shards computed by different code; `tests/integration/versions.rs`
/// fails when the bytes change and the version does not.
#[must_use]
pub fn algorithm(kind: &str, version: u32, simulates: bool) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(kind.into(), version.into());
    if simulates {
        m.insert("physics".into(), crate::physics::ALGORITHM.into());
    }
    Value::Object(m)
}

/// What `seispipe stages` prints about a stage type. Defaults are not
/// written here: they are read from the spec itself ([`StageDoc::defaults`]),
/// so the listing cannot drift from what the parser does.
pub struct StageDoc {
    /// The `type` value.
    pub name: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// The keys a stage table must have, with example values (TOML lines);
    /// `seispipe stages` lists them as required.
    pub required: &'static str,
    /// Parse a stage table (without its `type` key) as this stage's spec and
    /// serialise it back: [`parse_as`] of the spec type.
    pub parse: fn(&str) -> Result<Value, toml::de::Error>,
    /// (parameter, what leaving it unset means — only for parameters without
    /// a default value, e.g. "n_fft / 4"; empty: "none" —, meaning).
    pub params: &'static [(&'static str, &'static str, &'static str)],
}

/// Parse TOML as the spec `T` and serialise it to JSON (for
/// [`StageDoc::parse`]).
///
/// # Errors
/// The parser's error.
pub fn parse_as<T: serde::de::DeserializeOwned + serde::Serialize>(
    text: &str,
) -> Result<Value, toml::de::Error> {
    let spec: T = toml::from_str(text)?;
    Ok(serde_json::to_value(spec).expect("specs serialise"))
}

/// A stage's `DOC` whose required keys do not parse as its spec: a defect
/// of the stage (`tests` catch it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{stage}: the DOC's required keys do not parse: {source}")]
pub struct DocError {
    /// The stage type.
    pub stage: &'static str,
    /// The parser's error.
    #[source]
    pub source: toml::de::Error,
}

impl StageDoc {
    /// Every parameter's value in a stage table holding only the
    /// [`StageDoc::required`] keys, as the parser fills it in (JSON).
    ///
    /// # Errors
    /// The required keys do not parse (a defect in the stage's `DOC`).
    pub fn defaults(&self) -> Result<serde_json::Map<String, Value>, DocError> {
        match (self.parse)(self.required) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => panic!("{}: a spec serialised as {other}, not a table", self.name),
            Err(source) => Err(DocError {
                stage: self.name,
                source,
            }),
        }
    }

    /// The keys listed in [`StageDoc::required`].
    #[must_use]
    pub fn required_keys(&self) -> Vec<&'static str> {
        self.required
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
            .collect()
    }

    /// (parameter, default as shown, meaning) for `seispipe stages`.
    ///
    /// # Errors
    /// See [`StageDoc::defaults`].
    pub fn listing(&self) -> Result<Vec<(&'static str, String, &'static str)>, DocError> {
        let defaults = self.defaults()?;
        let required = self.required_keys();
        Ok(self
            .params
            .iter()
            .map(|&(key, unset, meaning)| {
                let shown = if required.contains(&key) {
                    "(required)".to_string()
                } else {
                    match defaults.get(key) {
                        Some(v) if !v.is_null() => v.to_string(),
                        _ if unset.is_empty() => "(none)".to_string(),
                        _ => unset.to_string(),
                    }
                };
                (key, shown, meaning)
            })
            .collect())
    }
}

pub use registry::{catalog, StageSpec};

/// Draw the "apply with probability p" decision. p = 1 and p = 0 draw nothing,
/// so such stages consume no randomness.
pub fn draw_apply(p: f64, rng: &mut StageRng) -> bool {
    use rand::Rng;
    if p >= 1.0 {
        true
    } else if p <= 0.0 {
        false
    } else {
        rng.random::<f64>() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    /// A JSON value as TOML (nulls, which TOML lacks, left out).
    fn toml_of(v: &Value) -> String {
        fn strip(v: &Value) -> Value {
            match v {
                Value::Object(m) => Value::Object(
                    m.iter()
                        .filter(|(_, x)| !x.is_null())
                        .map(|(k, x)| (k.clone(), strip(x)))
                        .collect(),
                ),
                Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
                other => other.clone(),
            }
        }
        toml::Value::try_from(strip(v)).map_or_else(|_| v.to_string(), |t| t.to_string())
    }

    /// `seispipe stages` shows the parser's own defaults: every field the
    /// parser fills in is documented, every documented key is a field, no
    /// documented key carries a hand-written default where the spec has one,
    /// and writing every shown default out explicitly parses to the same spec.
    #[test]
    fn documented_defaults_are_the_parsed_defaults() {
        for doc in catalog() {
            let defaults = doc.defaults().unwrap();
            let keys: Vec<&str> = doc.params.iter().map(|p| p.0).collect();
            for k in defaults.keys() {
                assert!(
                    keys.contains(&k.as_str()),
                    "{}: field {k} is not documented",
                    doc.name
                );
            }
            for &(key, unset, _) in doc.params {
                let probe = format!(
                    "type = \"{}\"\n{}\n{key} = \"__probe__\"",
                    doc.name, doc.required
                );
                let e = toml::from_str::<crate::pipeline::spec::StageSpec>(&probe).err();
                let unknown = e.is_some_and(|e| e.to_string().contains("unknown field"));
                assert!(
                    !unknown,
                    "{}: documented key {key} is not a field",
                    doc.name
                );
                let has_default = defaults.get(key).is_some_and(|v| !v.is_null());
                assert!(
                    !has_default || unset.is_empty(),
                    "{}: {key} has a default in the spec; its note {unset:?} would only repeat it",
                    doc.name
                );
            }
            let mut explicit = String::new();
            for (k, v) in &defaults {
                if !v.is_null() {
                    writeln!(explicit, "{k} = {}", toml_of(v)).unwrap();
                }
            }
            let a = (doc.parse)(doc.required).unwrap();
            let b =
                (doc.parse)(&explicit).unwrap_or_else(|e| panic!("{}: {explicit}\n{e}", doc.name));
            assert_eq!(
                a, b,
                "{}: the shown defaults parse to another spec",
                doc.name
            );
            assert_eq!(doc.listing().unwrap().len(), doc.params.len());
        }
    }
}
