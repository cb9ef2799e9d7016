//! The stage contract, and one file per stage type.
//!
//! A [`Stage`] transforms one sample, single-threaded, drawing any randomness
//! from the [`StageCtx`] it is handed; the executor owns all parallelism. A
//! [`BatchStage`] (batched model inference) sees a whole chunk of samples at
//! once and is scheduled on its own thread between per-sample segments.
//!
//! Adding a stage: write `src/stage/NAME.rs` with a `NameSpec` (serde, `deny_unknown_fields`)
//! and its runtime type, add the spec to [`crate::pipeline::spec::StageSpec`], and
//! one arm in [`crate::pipeline::build`]. The executor does not change.

pub mod flip;
pub mod noise;
pub mod normal;
pub mod pseudo_label;
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

    /// Called once after every shard of the run is finished (also on a rerun
    /// that found all shards done), before the manifest is written: write any
    /// side outputs (a submission CSV…) from the finished shards, atomically,
    /// and return them for the manifest's `extra_files`.
    ///
    /// # Errors
    /// A failure that fails the run (the shards stay; a rerun retries this).
    fn finish(
        &self,
        _out_dir: &std::path::Path,
        _shards: &[crate::io::manifest::ShardRecord],
    ) -> Result<Vec<crate::io::npy::WrittenFile>, StageError> {
        Ok(Vec::new())
    }
}

/// A built stage of either kind.
pub enum Runtime {
    /// Per-sample, run in parallel by the executor.
    Sample(Box<dyn Stage>),
    /// Batched, run on its own thread.
    Batch(Box<dyn BatchStage>),
}

/// A validated, ready-to-run stage.
pub struct BuiltStage {
    /// The stage type as written in the pipeline file (`flip`, …).
    pub kind: &'static str,
    /// Its parameters as configured (JSON), for the manifest and `check`.
    pub params: Value,
    /// Seismic sample shape after this stage.
    pub out_shape: Vec<usize>,
    /// Whether samples carry a velocity map after this stage.
    pub out_labels: bool,
    /// Layout facts for the manifest (axis names, bin frequencies…), if any.
    pub info: Option<Value>,
    /// The versions of the code that computes this stage's bytes (see
    /// [`algorithm`]): part of the run fingerprint and of the manifest.
    pub algorithm: Value,
    /// The runtime.
    pub runtime: Runtime,
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

/// What `build` knows about the samples entering a stage.
#[derive(Debug, Clone)]
pub struct BuildEnv {
    /// Seismic shape entering the stage.
    pub shape: Vec<usize>,
    /// Whether samples carry velocity maps.
    pub labels: bool,
    /// Index of the stage in the pipeline.
    pub stage_index: usize,
    /// The model backend (libtorch) when this process has one.
    pub models: Option<crate::model::Backend>,
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
    pub parse: fn(&str) -> Result<Value, String>,
    /// (parameter, what leaving it unset means — only for parameters without
    /// a default value, e.g. "n_fft / 4"; empty: "none" —, meaning).
    pub params: &'static [(&'static str, &'static str, &'static str)],
}

/// Parse TOML as the spec `T` and serialise it to JSON (for
/// [`StageDoc::parse`]).
///
/// # Errors
/// The parser's message.
pub fn parse_as<T: serde::de::DeserializeOwned + serde::Serialize>(
    text: &str,
) -> Result<Value, String> {
    let spec: T = toml::from_str(text).map_err(|e| e.to_string())?;
    serde_json::to_value(spec).map_err(|e| e.to_string())
}

impl StageDoc {
    /// Every parameter's value in a stage table holding only the
    /// [`StageDoc::required`] keys, as the parser fills it in (JSON).
    ///
    /// # Errors
    /// The required keys do not parse (a defect in the stage's `DOC`).
    pub fn defaults(&self) -> Result<serde_json::Map<String, Value>, String> {
        match (self.parse)(self.required) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(format!("{}: serialised as {other}", self.name)),
            Err(e) => Err(format!("{}: {e}", self.name)),
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
    pub fn listing(&self) -> Result<Vec<(&'static str, String, &'static str)>, String> {
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

/// Every stage type, in the order `seispipe stages` lists them.
#[must_use]
pub fn catalog() -> Vec<&'static StageDoc> {
    vec![
        &flip::DOC,
        &noise::DOC,
        &simulate::DOC,
        &velocity_mixup::DOC,
        &velocity_affine::DOC,
        &spectrogram::DOC,
        &waveform_transform::DOC,
        &pseudo_label::DOC,
    ]
}

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
