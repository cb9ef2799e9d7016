//! `simulate`: replace a sample's seismic data by the OpenFWI-exact simulation
//! of its velocity map ([`crate::physics`]), for any list of source positions.
//! Also the helper the velocity-space stages (`velocity_mixup`,
//! `velocity_affine`, `flip` with `exact = true`) use to re-simulate.
//!
//! By default a stage runs on one executor worker: the simulation here is
//! single-threaded (the executor parallelises across samples) and reuses that
//! worker's scratch fields. With `device = "cpu" | "cuda:N"` (or `"auto"`
//! finding a GPU) the stage is a batch stage instead: each chunk's maps go to
//! the libtorch backend's [`crate::model::Simulator`] at once (`seispipe-torch`).

use ndarray::{Array3, ArrayD, IxDyn};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{BatchStage, Instance, ParamError, PlanEnv, Planned, Record, Runtime, Stage, StageCtx};
use crate::error::StageError;
use crate::model::Simulator;
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
        (
            "device",
            "the built-in Rust CPU kernel",
            "\"cpu\" or \"cuda:N\": batched simulation through libtorch (the `seispipe-torch` binary), equal to the Rust kernel to rounding; \"auto\": cuda:0 when libtorch sees a GPU, else the Rust kernel",
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
    /// Where to simulate: unset = the Rust kernel; `cpu`, `cuda:N` or `auto`
    /// (see [`DeviceChoice`]). Serialised only when set, so the fingerprints
    /// of pipelines without it are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// What a `device` value asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceChoice {
    /// No `device`: the built-in Rust kernel ([`crate::physics`]).
    Rust,
    /// `"cpu"` or `"cuda:N"`: the libtorch simulator on that device.
    Tch(String),
    /// `"auto"`: `cuda:0` when the libtorch backend sees a GPU, else the Rust kernel.
    Auto,
}

/// How to rebuild when the binary lacks libtorch.
pub const NEEDS_TORCH: &str = "runs the simulation through libtorch, which is in the `seispipe-torch` binary: build it with `make build` (or `cargo build --release --workspace` with LIBTORCH set) and keep it beside `seispipe` (the pip wheel does not ship it; docs/install.md says how to add it), or leave device out for the built-in Rust kernel";

/// Parse a `device` value (no libtorch needed).
///
/// # Errors
/// A value that is not `cpu`, `cuda:N` or `auto`, with the allowed values.
pub fn parse_device(device: Option<&str>) -> Result<DeviceChoice, ParamError> {
    let Some(d) = device else {
        return Ok(DeviceChoice::Rust);
    };
    let cuda_n = d
        .strip_prefix("cuda:")
        .is_some_and(|n| !n.is_empty() && n.len() <= 4 && n.bytes().all(|b| b.is_ascii_digit()));
    match d {
        "auto" => Ok(DeviceChoice::Auto),
        "cpu" => Ok(DeviceChoice::Tch(d.to_string())),
        _ if cuda_n => Ok(DeviceChoice::Tch(d.to_string())),
        _ => Err(ParamError::Invalid(format!(
            "device = \"{d}\" is not a device; expected \"cpu\", \"cuda:N\" (N = 0, 1, …) or \"auto\" (or leave device out for the built-in Rust kernel)"
        ))),
    }
}

/// The simulator a `device` value selects in this process: `None` for the
/// Rust kernel.
///
/// # Errors
/// A bad value, a tch device without the libtorch backend, or a device the
/// backend does not have (e.g. `cuda:3` on a machine with fewer GPUs).
pub fn resolve_device(
    device: Option<&str>,
    backend: Option<&crate::model::Backend>,
) -> Result<Option<Box<dyn Simulator>>, ParamError> {
    let name = match parse_device(device)? {
        DeviceChoice::Rust => return Ok(None),
        DeviceChoice::Auto => match backend {
            Some(b) if b.0.cuda_device_count() > 0 => "cuda:0".to_string(),
            _ => return Ok(None),
        },
        DeviceChoice::Tch(name) => name,
    };
    let Some(b) = backend else {
        return Err(ParamError::NeedsTorch(format!(
            "device = \"{name}\" {NEEDS_TORCH}"
        )));
    };
    Ok(Some(b.0.simulator(&name)?))
}

/// What a shard records about where a stage with a `device` simulated:
/// `rust` (the built-in kernel), `tch-cpu` or `tch-cuda:N`.
#[must_use]
pub fn simulator_name(sim: Option<&dyn Simulator>) -> String {
    match sim {
        None => "rust".into(),
        Some(s) => format!("tch-{}", s.device()),
    }
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
pub fn require_labels(env: &PlanEnv, what: &'static str) -> Result<(), ParamError> {
    if env.labels {
        Ok(())
    } else {
        Err(ParamError::NeedsLabels { what })
    }
}

/// Build-time check for stages that re-simulate with the standard sources and
/// keep the sample's shape: the data entering must be (5, 1000, 70).
///
/// # Errors
/// A message naming the shape found.
pub fn require_standard_shape(env: &PlanEnv, what: &'static str) -> Result<(), ParamError> {
    if env.shape == SEISMIC_SHAPE {
        Ok(())
    } else {
        Err(ParamError::NeedsStandardShape {
            what,
            shape: env.shape.clone(),
        })
    }
}

impl super::StageType for SimulateSpec {
    const DOC: super::StageDoc = DOC;

    /// No labels, bad source positions, or a `device` that is no device.
    /// Which simulator runs is decided by [`StageType::instantiate`](super::StageType::instantiate) in
    /// the process that runs it; the plan holds what the user asked for.
    fn plan(&self, env: &PlanEnv) -> Result<Planned, ParamError> {
        let choice = parse_device(self.device.as_deref())?;
        require_labels(env, "simulate")?;
        physics::check_sources(&self.source_positions)?;
        Ok(Planned {
            out_shape: vec![self.source_positions.len(), NT, NX],
            out_labels: true,
            batch: choice != DeviceChoice::Rust,
            has_device: self.device.is_some(),
            ..Planned::same(env, super::algorithm("simulate", ALGORITHM, true))
        })
    }

    fn instantiate(
        &self,
        _plan: &super::StagePlan,
        env: &super::RunEnv<'_>,
    ) -> Result<Instance, ParamError> {
        let sim = resolve_device(self.device.as_deref(), env.models)?;
        let device = self
            .device
            .is_some()
            .then(|| simulator_name(sim.as_deref()));
        let (sources, clip) = (self.source_positions.clone(), self.clip_velocity);
        let runtime = match sim {
            None => Runtime::Sample(Box::new(Simulate {
                sources,
                clip,
                compute: env.compute,
            })),
            Some(sim) => Runtime::Batch(Box::new(SimulateBatch { sources, clip, sim })),
        };
        Ok(Instance { runtime, device })
    }

    fn needs_torch(&self) -> bool {
        // A tch device, or "auto" (which looks for a GPU through libtorch).
        self.device.is_some()
    }
}

/// Runtime `simulate` on a tch device: a batch stage.
pub struct SimulateBatch {
    sources: Vec<usize>,
    clip: bool,
    sim: Box<dyn Simulator>,
}

impl BatchStage for SimulateBatch {
    fn apply_batch(
        &self,
        samples: &mut [Sample],
        _ctxs: &mut [StageCtx<'_>],
    ) -> Result<Vec<Record>, StageError> {
        // Every map is checked (and clipped) before anything is simulated.
        let mut maps = Vec::with_capacity(samples.len() * 4900);
        for (k, s) in samples.iter().enumerate() {
            let vel = s.velocity.as_ref().ok_or_else(|| {
                StageError::in_batch(k, "simulate needs a velocity map; this sample has none")
            })?;
            let flat = velocity_values(vel).map_err(|e| StageError::in_batch(k, e.message))?;
            let m =
                physics::Medium::new(&flat, self.clip).map_err(|e| StageError::in_batch(k, e))?;
            maps.extend_from_slice(m.velocity());
        }
        let out = self
            .sim
            .simulate(&maps, &self.sources)
            .map_err(|e| StageError::new(format!("simulation on {}: {e}", self.sim.device())))?;
        let per = self.sources.len() * physics::PER_SOURCE;
        for ((s, o), v) in samples
            .iter_mut()
            .zip(out.chunks_exact(per))
            .zip(maps.chunks_exact(4900))
        {
            s.seismic = ArrayD::from_shape_vec(IxDyn(&[self.sources.len(), NT, NX]), o.to_vec())
                .expect("shape matches length");
            s.velocity = Some(
                Array3::from_shape_vec((1, 70, 70), v.to_vec()).expect("shape matches length"),
            );
        }
        Ok(vec![json!({ "applied": true }); samples.len()])
    }
}

/// A (1, 70, 70) map's values in C order.
fn velocity_values(vel: &Array3<f32>) -> Result<Vec<f32>, StageError> {
    if vel.shape() != [1, 70, 70] {
        return Err(StageError::new(format!(
            "velocity map has shape {:?}; expected (1, 70, 70)",
            vel.shape()
        )));
    }
    Ok(vel.iter().copied().collect())
}

/// Runtime `simulate`.
pub struct Simulate {
    sources: Vec<usize>,
    clip: bool,
    compute: crate::cpu::Compute,
}

impl Stage for Simulate {
    fn apply(&self, sample: &mut Sample, _ctx: &mut StageCtx<'_>) -> Result<Record, StageError> {
        let vel = sample.velocity.take().ok_or_else(|| {
            StageError::new("simulate needs a velocity map; this sample has none")
        })?;
        let r = resimulate(sample, &vel, &self.sources, self.clip, self.compute);
        r.map(|()| json!({ "applied": true }))
    }
}

/// Simulate `vel` for `sources` (in parallel on the current rayon pool) and
/// make it the sample's data and label (the label is the clipped map when `clip`).
///
/// # Errors
/// A bad velocity map (non-finite, out of range, CFL), with the cell named.
pub fn resimulate(
    sample: &mut Sample,
    vel: &Array3<f32>,
    sources: &[usize],
    clip: bool,
    compute: crate::cpu::Compute,
) -> Result<(), StageError> {
    if vel.shape() != [1, 70, 70] {
        return Err(StageError::new(format!(
            "velocity map has shape {:?}; expected (1, 70, 70)",
            vel.shape()
        )));
    }
    let v = vel.as_standard_layout();
    let flat = v.as_slice().expect("standard layout");
    let medium = physics::Medium::new(flat, clip)
        .map_err(StageError::new)?
        .with_compute(compute);
    // The sources in parallel on the calling pool: a chunk's last samples
    // then share out as five pieces each rather than keep one worker busy
    // while the others wait for the next chunk.
    let mut out = vec![0f32; sources.len() * physics::PER_SOURCE];
    out.par_chunks_exact_mut(physics::PER_SOURCE)
        .zip(sources.par_iter())
        .for_each(|(o, &sx)| medium.simulate_source(sx, o));
    sample.seismic =
        ArrayD::from_shape_vec(IxDyn(&[sources.len(), NT, NX]), out).expect("shape matches length");
    sample.velocity = Some(
        Array3::from_shape_vec((1, 70, 70), medium.velocity().to_vec())
            .expect("shape matches length"),
    );
    Ok(())
}
