//! `simulate`: replace a sample's seismic data by the OpenFWI-exact simulation
//! of its velocity map ([`crate::physics`]), for any list of source positions.
//! Also the helper the velocity-space stages (`velocity_mixup`,
//! `velocity_affine`, `flip` with `exact = true`) use to re-simulate.
//!
//! A stage runs on one executor worker: the simulation here is
//! single-threaded (the executor parallelises across samples) and reuses that
//! worker's scratch fields.

use ndarray::{Array3, ArrayD, IxDyn};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{BuildEnv, BuiltStage, Record, Runtime, Stage, StageCtx};
use crate::error::StageError;
use crate::physics::{self, NT, NX, SOURCE_X};
use crate::sample::{Sample, SEISMIC_SHAPE};

/// Version of this stage's own handling (see [`super::algorithm`]); the
/// simulator's version ([`crate::physics::ALGORITHM`]) is recorded beside it.
/// 1: validate (and optionally clip) the map, simulate every listed source.
pub const ALGORITHM: u32 = 1;

/// `seispipe stages` entry.
pub const DOC: super::StageDoc = super::StageDoc {
    name: "simulate",
    parse: super::parse_as::<SimulateSpec>,
    summary: "replace the seismic data by the OpenFWI-exact acoustic simulation of the velocity map (needs labels)",
    required: "",
    params: &[
        (
            "source_positions",
            "",
            "source x indices (0..=69), at depth index 1; output has one channel per source",
        ),
        (
            "clip_velocity",
            "",
            "clip velocities into 1500–4500 m/s instead of refusing values outside 1000–6000",
        ),
    ],
};

/// `type = "simulate"`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimulateSpec {
    /// Source x indices, depth index 1.
    #[serde(default = "default_sources")]
    pub source_positions: Vec<usize>,
    /// Clip velocities into 1500–4500 m/s instead of refusing bad ones.
    #[serde(default)]
    pub clip_velocity: bool,
}

/// OpenFWI's five sources.
#[must_use]
pub fn default_sources() -> Vec<usize> {
    SOURCE_X.to_vec()
}

/// Build-time check shared by every stage that simulates: labels must be
/// present (`what` names the stage).
///
/// # Errors
/// A message saying labels are needed.
pub fn require_labels(env: &BuildEnv, what: &str) -> Result<(), String> {
    if env.labels {
        Ok(())
    } else {
        Err(format!(
            "{what} simulates from velocity maps, but the samples here carry no labels (input unlabelled, or labels = \"none\")"
        ))
    }
}

/// Build-time check for stages that re-simulate with the standard sources and
/// keep the sample's shape: the data entering must be (5, 1000, 70).
///
/// # Errors
/// A message naming the shape found.
pub fn require_standard_shape(env: &BuildEnv, what: &str) -> Result<(), String> {
    if env.shape == SEISMIC_SHAPE {
        Ok(())
    } else {
        Err(format!(
            "{what} writes (5, 1000, 70) simulated data, but samples here have shape {:?}; put it before stages that change the shape",
            env.shape
        ))
    }
}

impl SimulateSpec {
    /// Validate and build.
    ///
    /// # Errors
    /// No labels, or bad source positions.
    pub fn build(&self, env: &BuildEnv) -> Result<BuiltStage, String> {
        require_labels(env, "simulate")?;
        physics::check_sources(&self.source_positions)?;
        Ok(BuiltStage {
            kind: "simulate",
            params: serde_json::to_value(self).expect("spec serialises"),
            out_shape: vec![self.source_positions.len(), NT, NX],
            out_labels: true,
            info: None,
            algorithm: super::algorithm("simulate", ALGORITHM, true),
            runtime: Runtime::Sample(Box::new(Simulate {
                sources: self.source_positions.clone(),
                clip: self.clip_velocity,
            })),
        })
    }
}

/// Runtime `simulate`.
pub struct Simulate {
    sources: Vec<usize>,
    clip: bool,
}

impl Stage for Simulate {
    fn apply(&self, sample: &mut Sample, _ctx: &mut StageCtx<'_>) -> Result<Record, StageError> {
        let vel = sample.velocity.take().ok_or_else(|| {
            StageError::new("simulate needs a velocity map; this sample has none")
        })?;
        let r = resimulate(sample, &vel, &self.sources, self.clip);
        r.map(|()| json!({ "applied": true }))
    }
}

/// Simulate `vel` for `sources` (single-threaded) and make it the sample's
/// data and label (the label is the clipped map when `clip`).
///
/// # Errors
/// A bad velocity map (non-finite, out of range, CFL), with the cell named.
pub fn resimulate(
    sample: &mut Sample,
    vel: &Array3<f32>,
    sources: &[usize],
    clip: bool,
) -> Result<(), StageError> {
    if vel.shape() != [1, 70, 70] {
        return Err(StageError::new(format!(
            "velocity map has shape {:?}; expected (1, 70, 70)",
            vel.shape()
        )));
    }
    let v = vel.as_standard_layout();
    let flat = v.as_slice().expect("standard layout");
    let medium = physics::Medium::new(flat, clip).map_err(StageError::new)?;
    let mut out = vec![0f32; sources.len() * physics::PER_SOURCE];
    for (&sx, o) in sources
        .iter()
        .zip(out.chunks_exact_mut(physics::PER_SOURCE))
    {
        medium.simulate_source(sx, o);
    }
    sample.seismic =
        ArrayD::from_shape_vec(IxDyn(&[sources.len(), NT, NX]), out).expect("shape matches length");
    sample.velocity = Some(
        Array3::from_shape_vec((1, 70, 70), medium.velocity().to_vec())
            .expect("shape matches length"),
    );
    Ok(())
}
