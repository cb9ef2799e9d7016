//! `velocity_affine`: a random crop-and-resize with a small rotation of the
//! velocity map, clipped to 1500–4500 m/s, then re-simulated (standard
//! sources).
//!
//! Draw order, part of the output's definition: the apply decision (only
//! when 0 < p < 1), then (all f64, `random_range`): crop width fraction `fx ~ U(crop_min, 1)`, crop height fraction
//! `fz ~ U(crop_min, 1)`, left edge `x0 ~ U(0, 1 − fx)`, top edge
//! `z0 ~ U(0, 1 − fz)`, angle `θ ~ U(−max_rotate_deg, max_rotate_deg)`
//! (a bound of 0 draws nothing for θ; `crop_min = 1` draws nothing for the
//! crop). Output cell (z, x) maps to unit coordinates `u = x/69`, `w = z/69`,
//! rotated by θ about the centre (0.5, 0.5), then into the crop box:
//! `x_in = 69·(x0 + fx·u')`, `z_in = 69·(z0 + fz·w')`. The map is sampled
//! there by bilinear interpolation with cell centres on integer coordinates
//! (`align_corners = True` in torch terms) and coordinates clamped to the map
//! (edge replication). The drawn parameters go into provenance.

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::simulate::{require_labels, require_standard_shape, resimulate};
use super::{Instance, ParamError, PlanEnv, Planned, Record, Stage, StageCtx};
use crate::error::StageError;
use crate::physics::{CLIP_RANGE, NX, NZ, SOURCE_X};
use crate::sample::Sample;

/// Version of the bytes this stage writes (see [`super::algorithm`]); the
/// simulator's version is recorded beside it.
/// 1: bilinear crop-and-resize with rotation, clipped to 1500–4500 m/s.
pub const ALGORITHM: u32 = 1;

/// `seispipe stages` entry.
pub const DOC: super::StageDoc = super::StageDoc {
    name: "velocity_affine",
    parse: super::parse_as::<VelocityAffineSpec>,
    summary: "random crop-and-resize + small rotation of the velocity map (bilinear), clipped to 1500–4500, then re-simulate (needs labels)",
    required: "",
    params: &[
        ("p", "", "probability of warping each copy, 0 ≤ p ≤ 1"),
        ("crop_min", "", "smallest crop side as a fraction of the map, 0 < crop_min ≤ 1"),
        ("max_rotate_deg", "", "rotation θ ~ U(−max, max) degrees, 0 ≤ max ≤ 45"),
    ],
};

/// `type = "velocity_affine"`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VelocityAffineSpec {
    /// Probability of warping a copy, in [0, 1].
    #[serde(default = "default_p")]
    pub p: f64,
    /// Smallest crop side (fraction of the map).
    #[serde(default = "default_crop")]
    pub crop_min: f64,
    /// Largest rotation in degrees.
    #[serde(default = "default_rot")]
    pub max_rotate_deg: f64,
}

fn default_p() -> f64 {
    1.0
}
fn default_crop() -> f64 {
    0.8
}
fn default_rot() -> f64 {
    5.0
}

/// The drawn warp.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Warp {
    /// Crop width fraction.
    pub fx: f64,
    /// Crop height fraction.
    pub fz: f64,
    /// Crop left edge (fraction).
    pub x0: f64,
    /// Crop top edge (fraction).
    pub z0: f64,
    /// Rotation in degrees.
    pub theta_deg: f64,
}

/// Runtime affine warp.
pub struct VelocityAffine {
    spec: VelocityAffineSpec,
    compute: crate::cpu::Compute,
}

impl VelocityAffine {
    fn draw(&self, rng: &mut impl Rng) -> Warp {
        let m = self.spec.crop_min;
        let (fx, fz) = if m < 1.0 {
            (rng.random_range(m..=1.0), rng.random_range(m..=1.0))
        } else {
            (1.0, 1.0)
        };
        let x0 = if fx < 1.0 {
            rng.random_range(0.0..1.0 - fx)
        } else {
            0.0
        };
        let z0 = if fz < 1.0 {
            rng.random_range(0.0..1.0 - fz)
        } else {
            0.0
        };
        let r = self.spec.max_rotate_deg;
        let theta_deg = if r > 0.0 {
            rng.random_range(-r..=r)
        } else {
            0.0
        };
        Warp {
            fx,
            fz,
            x0,
            z0,
            theta_deg,
        }
    }
}

/// Warp a 70 × 70 map (z then x) as described in the module docs, clipped
/// into 1500–4500 m/s.
#[must_use]
pub fn warp_map(v: &[f32], w: &Warp) -> Vec<f32> {
    let last = (NX - 1) as f64;
    let (s, c) = w.theta_deg.to_radians().sin_cos();
    let mut out = vec![0f32; NX * NZ];
    for z in 0..NZ {
        for x in 0..NX {
            let (u, ww) = (x as f64 / last - 0.5, z as f64 / last - 0.5);
            let ur = c * u - s * ww + 0.5;
            let wr = s * u + c * ww + 0.5;
            let xi = (last * (w.x0 + w.fx * ur)).clamp(0.0, last);
            let zi = (last * (w.z0 + w.fz * wr)).clamp(0.0, last);
            out[z * NX + x] = bilinear(v, zi, xi).clamp(CLIP_RANGE.0, CLIP_RANGE.1);
        }
    }
    out
}

/// Bilinear sample at (z, x) in cell coordinates, both within [0, 69].
#[must_use]
pub fn bilinear(v: &[f32], z: f64, x: f64) -> f32 {
    let (z0, x0) = (
        (z.floor() as usize).min(NZ - 2),
        (x.floor() as usize).min(NX - 2),
    );
    let (tz, tx) = (z - z0 as f64, x - x0 as f64);
    let at = |zz: usize, xx: usize| f64::from(v[zz * NX + xx]);
    let top = at(z0, x0) * (1.0 - tx) + at(z0, x0 + 1) * tx;
    let bot = at(z0 + 1, x0) * (1.0 - tx) + at(z0 + 1, x0 + 1) * tx;
    (top * (1.0 - tz) + bot * tz) as f32
}

impl Stage for VelocityAffine {
    fn apply(&self, sample: &mut Sample, ctx: &mut StageCtx<'_>) -> Result<Record, StageError> {
        let vel = sample
            .velocity
            .take()
            .ok_or_else(|| StageError::new("velocity_affine needs a velocity map"))?;
        if !super::draw_apply(self.spec.p, &mut ctx.rng) {
            sample.velocity = Some(vel);
            return Ok(json!({ "applied": false }));
        }
        let w = self.draw(&mut ctx.rng);
        let v = vel.as_standard_layout();
        let warped = warp_map(v.as_slice().expect("standard layout"), &w);
        let arr = ndarray::Array3::from_shape_vec((1, NZ, NX), warped).expect("shape");
        resimulate(sample, &arr, &SOURCE_X, false, self.compute)?;
        Ok(json!({ "applied": true, "warp": w }))
    }
}

impl super::StageType for VelocityAffineSpec {
    const DOC: super::StageDoc = DOC;

    /// `p`, `crop_min` or `max_rotate_deg` out of range; no labels or
    /// another shape.
    fn plan(&self, env: &PlanEnv) -> Result<Planned, ParamError> {
        super::flip::check_probability(self.p)?;
        if !(self.crop_min > 0.0 && self.crop_min <= 1.0) {
            return Err(ParamError::Invalid(format!(
                "crop_min = {} is out of range; expected 0 < crop_min ≤ 1",
                self.crop_min
            )));
        }
        if !(0.0..=45.0).contains(&self.max_rotate_deg) {
            return Err(ParamError::Invalid(format!(
                "max_rotate_deg = {} is out of range; expected 0 ≤ max_rotate_deg ≤ 45",
                self.max_rotate_deg
            )));
        }
        require_labels(env, "velocity_affine")?;
        require_standard_shape(env, "velocity_affine")?;
        Ok(Planned::same(
            env,
            super::algorithm("velocity_affine", ALGORITHM, true),
        ))
    }

    fn instantiate(
        &self,
        _plan: &super::StagePlan,
        env: &super::RunEnv<'_>,
    ) -> Result<Instance, ParamError> {
        Ok(Instance::sample(VelocityAffine {
            spec: self.clone(),
            compute: env.compute,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_warp_is_identity() {
        let v: Vec<f32> = (0..4900)
            .map(|i| 1500.0 + (i % 300) as f32 * 10.0)
            .collect();
        let w = Warp {
            fx: 1.0,
            fz: 1.0,
            x0: 0.0,
            z0: 0.0,
            theta_deg: 0.0,
        };
        let out = warp_map(&v, &w);
        for (a, b) in out.iter().zip(&v) {
            assert!((a - b).abs() < 1e-3, "{a} {b}");
        }
    }

    #[test]
    fn crop_resizes_bilinearly() {
        // A linear ramp in x stays linear under crop-and-resize.
        let v: Vec<f32> = (0..4900).map(|i| 1500.0 + (i % 70) as f32 * 10.0).collect();
        let w = Warp {
            fx: 0.5,
            fz: 1.0,
            x0: 0.25,
            z0: 0.0,
            theta_deg: 0.0,
        };
        let out = warp_map(&v, &w);
        for (x, &got) in out[..70].iter().enumerate() {
            let xin = 69.0 * (0.25 + 0.5 * x as f64 / 69.0);
            let want = 1500.0 + 10.0 * xin;
            assert!((f64::from(got) - want).abs() < 1e-2, "x={x}");
        }
        let r = bilinear(&v, 3.0, 68.5);
        assert!((r - (1500.0 + 685.0)).abs() < 1e-3);
    }
}
