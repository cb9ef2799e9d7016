//! `velocity_mixup`: blend the sample's velocity map with a partner's,
//! `v = α·v1 + (1 − α)·v2` with `α ~ U(alpha_min, alpha_max)`, then
//! re-simulate the seismic data from the blend (standard sources).
//!
//! The partner is another labelled input sample from the same `group`:
//! `"file"` (the same input file), `"family"` (the same top-level directory
//! under the input root, e.g. `FlatVel_A/`; files at the root form one group)
//! or `"any"`. Draw order, part of the output's definition: the apply
//! decision (only when 0 < p < 1), α (one f64), then
//! the partner's position among the group's other samples (one `random_range`
//! in input order). A group with no other sample uses the sample itself.
//! The partner's id and α go into provenance.

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::simulate::{require_labels, require_standard_shape, resimulate};
use super::{Instance, ParamError, PlanEnv, Planned, Record, Stage, StageCtx};
use crate::error::StageError;
use crate::io::layout::InputSet;
use crate::physics::SOURCE_X;
use crate::sample::Sample;

/// Version of the bytes this stage writes (see [`super::algorithm`]); the
/// simulator's version is recorded beside it.
/// 1: α ~ U(alpha_min, alpha_max), partner drawn from the sample's stream.
pub const ALGORITHM: u32 = 1;

/// `seispipe stages` entry.
pub const DOC: super::StageDoc = super::StageDoc {
    name: "velocity_mixup",
    parse: super::parse_as::<VelocityMixupSpec>,
    summary: "α·v1 + (1−α)·v2 of two velocity maps, then re-simulate (needs labels)",
    required: "",
    params: &[
        ("p", "", "probability of mixing each copy, 0 ≤ p ≤ 1"),
        (
            "alpha_min",
            "",
            "lower bound of α ~ U(alpha_min, alpha_max), in [0, 1]",
        ),
        (
            "alpha_max",
            "",
            "upper bound of α, alpha_min ≤ alpha_max ≤ 1",
        ),
        (
            "group",
            "",
            "where the partner comes from: \"file\", \"family\" (top-level directory) or \"any\"",
        ),
    ],
};

/// Where a mixup partner is drawn from.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// The same input file.
    File,
    /// The same top-level directory under the input root.
    #[default]
    Family,
    /// Any labelled input sample.
    Any,
}

/// `type = "velocity_mixup"`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VelocityMixupSpec {
    /// Probability of mixing a copy, in [0, 1].
    #[serde(default = "default_p")]
    pub p: f64,
    /// Lower bound of α.
    #[serde(default = "default_lo")]
    pub alpha_min: f64,
    /// Upper bound of α.
    #[serde(default = "default_hi")]
    pub alpha_max: f64,
    /// Partner group.
    #[serde(default)]
    pub group: Group,
}

fn default_p() -> f64 {
    1.0
}
fn default_lo() -> f64 {
    0.3
}
fn default_hi() -> f64 {
    0.7
}

/// Runtime mixup.
pub struct VelocityMixup {
    spec: VelocityMixupSpec,
    compute: crate::cpu::Compute,
}

fn family_of(rel: &str) -> &str {
    rel.split_once('/').map_or("", |(head, _)| head)
}

/// Global indices of the labelled samples in `own`'s group, other than `own`.
#[must_use]
pub fn partner_candidates(inputs: &InputSet, own_file: usize, group: Group) -> Vec<usize> {
    let fam = family_of(&inputs.files[own_file].rel);
    let mut out = Vec::new();
    for (i, f) in inputs.files.iter().enumerate() {
        let same = match group {
            Group::File => i == own_file,
            Group::Family => family_of(&f.rel) == fam,
            Group::Any => true,
        };
        if same && f.label.is_some() {
            out.extend(inputs.offsets[i]..inputs.offsets[i + 1]);
        }
    }
    out
}

impl Stage for VelocityMixup {
    fn apply(&self, sample: &mut Sample, ctx: &mut StageCtx<'_>) -> Result<Record, StageError> {
        if !super::draw_apply(self.spec.p, &mut ctx.rng) {
            return Ok(json!({ "applied": false }));
        }
        let v1 = sample
            .velocity
            .take()
            .ok_or_else(|| StageError::new("velocity_mixup needs a velocity map"))?;
        let alpha: f64 = if self.spec.alpha_min < self.spec.alpha_max {
            ctx.rng
                .random_range(self.spec.alpha_min..self.spec.alpha_max)
        } else {
            self.spec.alpha_min
        };
        let own = sample.origin.global;
        let mut cands = partner_candidates(ctx.inputs, sample.origin.input, self.spec.group);
        cands.retain(|&g| g != own);
        let partner = if cands.is_empty() {
            own
        } else {
            cands[ctx.rng.random_range(0..cands.len())]
        };
        let (pf, pi) = ctx.inputs.locate(partner);
        let partner_id = ctx.inputs.sample_id(pf, pi);
        let v2 = if partner == own {
            v1.clone()
        } else {
            ctx.inputs
                .read_velocity(pf, pi)
                .map_err(|e| StageError::new(format!("reading partner {partner_id}: {e}")))?
                .ok_or_else(|| StageError::new(format!("partner {partner_id} has no label")))?
        };
        let (a, b) = (alpha as f32, (1.0 - alpha) as f32);
        let mixed = ndarray::Zip::from(&v1)
            .and(&v2)
            .map_collect(|&x, &y| a * x + b * y);
        resimulate(sample, &mixed, &SOURCE_X, false, self.compute).map_err(|e| {
            StageError::new(format!(
                "mixup with partner {partner_id} (α = {alpha}): {e}"
            ))
        })?;
        Ok(json!({ "applied": true, "alpha": alpha, "partner": partner_id }))
    }
}

impl super::StageType for VelocityMixupSpec {
    const DOC: super::StageDoc = DOC;

    /// `p` or the alpha range out of range; no labels or another shape.
    fn plan(&self, env: &PlanEnv) -> Result<Planned, ParamError> {
        super::flip::check_probability(self.p)?;
        let ok = |a: f64| (0.0..=1.0).contains(&a);
        if !ok(self.alpha_min) || !ok(self.alpha_max) || self.alpha_min > self.alpha_max {
            return Err(ParamError::Invalid(format!(
                "alpha_min = {}, alpha_max = {} are out of range; expected 0 ≤ alpha_min ≤ alpha_max ≤ 1",
                self.alpha_min, self.alpha_max
            )));
        }
        require_labels(env, "velocity_mixup")?;
        require_standard_shape(env, "velocity_mixup")?;
        Ok(Planned::same(
            env,
            super::algorithm("velocity_mixup", ALGORITHM, true),
        ))
    }

    fn instantiate(
        &self,
        _plan: &super::StagePlan,
        env: &super::RunEnv<'_>,
    ) -> Result<Instance, ParamError> {
        Ok(Instance::sample(VelocityMixup {
            spec: self.clone(),
            compute: env.compute,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_is_first_component() {
        assert_eq!(family_of("FlatVel_A/data/data1.npy"), "FlatVel_A");
        assert_eq!(family_of("x.npy"), "");
    }
}
