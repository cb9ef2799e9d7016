//! Spec → runtime: checks every value of a pipeline before any data is read
//! and builds each stage with its precomputed state.

use crate::error::{Error, Result};
use crate::pipeline::spec::{PipelineSpec, StageSpec};
use crate::sample::SEISMIC_SHAPE;
use crate::stage::{BuildEnv, BuiltStage};

/// A pipeline ready to run.
pub struct Pipeline {
    /// The pipeline as written (after overrides).
    pub spec: PipelineSpec,
    /// The pipeline file, for messages and the manifest.
    pub file: String,
    /// Built stages, in order.
    pub stages: Vec<BuiltStage>,
    /// Seismic shape of every output sample.
    pub out_shape: Vec<usize>,
    /// Whether outputs carry velocity maps.
    pub out_labels: bool,
}

impl Pipeline {
    /// Output samples emitted per input sample.
    #[must_use]
    pub fn outputs_per_input(&self) -> usize {
        usize::from(self.spec.keep_original) + self.spec.copies as usize
    }
}

/// Check the values that need no input (shard size, copies…).
///
/// # Errors
/// A [`Error::Config`] naming the file, the key and the allowed values.
pub fn check_top_level(spec: &PipelineSpec, file: &str) -> Result<()> {
    if spec.output.samples_per_shard == 0 {
        return Err(Error::config(
            file,
            "output.samples_per_shard = 0 is out of range; expected at least 1 (OpenFWI uses 500)",
        ));
    }
    if spec.copies == 0 && !spec.keep_original {
        return Err(Error::config(
            file,
            "copies = 0 with keep_original = false emits nothing; set copies ≥ 1 or keep_original = true",
        ));
    }
    if spec.run.chunk_samples == 0 {
        return Err(Error::config(
            file,
            "run.chunk_samples = 0 is out of range; expected at least 1",
        ));
    }
    if spec.output.dir.trim().is_empty() {
        return Err(Error::config(file, "output.dir is empty"));
    }
    Ok(())
}

/// Build every stage for inputs that are (or are not) `labelled`.
///
/// # Errors
/// A [`Error::Config`] naming the file, `stages[i]` with its type, and the problem.
pub fn build(
    spec: PipelineSpec,
    file: &str,
    labelled: bool,
    models: Option<crate::model::Backend>,
) -> Result<Pipeline> {
    check_top_level(&spec, file)?;
    let mut env = BuildEnv {
        shape: SEISMIC_SHAPE.to_vec(),
        labels: labelled,
        stage_index: 0,
        models,
    };
    let mut stages = Vec::with_capacity(spec.stages.len());
    for (i, s) in spec.stages.iter().enumerate() {
        env.stage_index = i;
        let built = build_stage(s, &env)
            .map_err(|r| Error::config(file, format!("stages[{i}] ({}): {r}", s.kind())))?;
        env.shape.clone_from(&built.out_shape);
        env.labels = built.out_labels;
        stages.push(built);
        if let StageSpec::PseudoLabel(pl) = s {
            if pl.resimulate {
                // `resimulate = true` is a `simulate` stage right after the
                // model: per-sample, so it runs on every worker in parallel.
                let sim = crate::stage::simulate::SimulateSpec {
                    source_positions: crate::stage::simulate::default_sources(),
                    clip_velocity: false,
                    device: None,
                }
                .build(&env)
                .map_err(|r| {
                    Error::config(
                        file,
                        format!("stages[{i}] (pseudo_label, resimulate = true): {r}"),
                    )
                })?;
                env.shape.clone_from(&sim.out_shape);
                env.labels = sim.out_labels;
                stages.push(sim);
            }
        }
    }
    if !spec.output.data && !env.labels {
        return Err(Error::config(
            file,
            "output.data = false writes only the velocity maps (labels), but this pipeline's outputs have none: add a pseudo_label stage, use labelled inputs, or write the data",
        ));
    }
    if spec.keep_original && (env.shape != SEISMIC_SHAPE || env.labels != labelled) {
        return Err(Error::config(
            file,
            format!(
                "keep_original = true, but the stages change each sample's shape to {:?}; originals and copies must share one shape in a shard — set keep_original = false",
                env.shape
            ),
        ));
    }
    Ok(Pipeline {
        out_shape: env.shape,
        out_labels: env.labels,
        spec,
        file: file.to_string(),
        stages,
    })
}

fn build_stage(s: &StageSpec, env: &BuildEnv) -> std::result::Result<BuiltStage, String> {
    match s {
        StageSpec::Flip(x) => x.build(env),
        StageSpec::GaussianNoise(x) => x.build(env),
        StageSpec::Simulate(x) => x.build(env),
        StageSpec::VelocityMixup(x) => x.build(env),
        StageSpec::VelocityAffine(x) => x.build(env),
        StageSpec::Spectrogram(x) => x.build(env),
        StageSpec::WaveformTransform(x) => x.build(env),
        StageSpec::PseudoLabel(x) => x.build(env),
    }
}
