//! `flip`: the mirror flip of a sample — reverse the receiver axis, reverse the
//! source order, mirror the velocity map's x axis — with probability `p`.
//!
//! **The middle-source trap (docs/domain.md, "Augmentations and their traps").** The sources sit at x = 0, 17, 34,
//! 52, 69, which are not mirror-symmetric on a 70-cell line: mirroring puts
//! the middle source at x = 35, not 34. Channels 0, 1, 3 and 4 of a mirrored
//! sample are exact (their mirrored positions 69, 52, 17, 0 are real source
//! positions); channel 2 is the data of a source one cell (10 m) away from
//! where a real survey puts it. This stage is that plain mirror and records
//! `"middle_source": "approximate (x=35 after mirror, standard is 34)"` in
//! provenance for every flipped sample.
//!
//! **`exact = true`** (needs labels and (5, 1000, 70) data) mirrors the
//! velocity map and re-simulates with the standard sources
//! ([`crate::physics`]), so the flipped sample is physically exact. With
//! `resimulate_channels = "all"` (default) every channel is simulated; with
//! `resimulate_channels = "middle"` only the middle source (x = 34 on the mirrored map)
//! is simulated and channels 0, 1, 3, 4 keep the mirrored data. The scheme is
//! mirror-symmetric to the bit (symmetric sponge, edge padding and stencil;
//! `a + b = b + a` in IEEE arithmetic), so for data that is itself this
//! simulator's output of its label the two modes give identical bytes
//! (tested); for measured or foreign data "middle" keeps the original data in
//! four channels.

use ndarray::Axis;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{draw_apply, Instance, ParamError, PlanEnv, Planned, Record, Stage, StageCtx};
use crate::cpu::Isa;
use crate::error::StageError;
use crate::sample::Sample;

/// Version of the bytes this stage writes (see [`super::algorithm`]); with
/// `exact = true` the simulator's own version is recorded too.
/// 1: mirror of receivers, sources and the map's x axis.
pub const ALGORITHM: u32 = 1;

/// `seispipe stages` entry.
pub const DOC: super::StageDoc = super::StageDoc {
    name: "flip",
    parse: super::parse_as::<FlipSpec>,
    summary: "mirror flip: receivers reversed, source order reversed, velocity x mirrored (middle source approximate: lands at x=35, not 34)",
    required: "",
    params: &[
        ("p", "", "probability of flipping each copy, 0 ≤ p ≤ 1"),
        (
            "exact",
            "",
            "mirror the velocity map and re-simulate (needs labels): the middle source is exact",
        ),
        (
            "resimulate_channels",
            "\"all\"",
            "with exact: \"all\" channels, or only the \"middle\" one (4× cheaper)",
        ),
    ],
};

/// `type = "flip"`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlipSpec {
    /// Probability of flipping a copy, in [0, 1].
    #[serde(default = "default_p")]
    pub p: f64,
    /// Mirror the velocity map and re-simulate (exact middle source).
    #[serde(default)]
    pub exact: bool,
    /// With `exact`: which channels to simulate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resimulate_channels: Option<Resimulate>,
}

/// Which channels an exact flip simulates.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Resimulate {
    /// Every channel, from the mirrored velocity map.
    #[default]
    All,
    /// Only the middle source (x = 34 on the mirrored map); channels 0, 1, 3, 4
    /// keep the mirrored data.
    Middle,
}

fn default_p() -> f64 {
    0.5
}

/// `p` must be a probability.
///
/// # Errors
/// A message naming `p` and the allowed range.
pub fn check_probability(p: f64) -> Result<(), ParamError> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(ParamError::out_of_range("p", p, "0 ≤ p ≤ 1"))
    }
}

/// Runtime flip.
pub struct Flip {
    p: f64,
    exact: Option<Resimulate>,
    compute: crate::cpu::Compute,
}

impl Stage for Flip {
    fn apply(&self, sample: &mut Sample, ctx: &mut StageCtx<'_>) -> Result<Record, StageError> {
        if !draw_apply(self.p, &mut ctx.rng) {
            return Ok(json!({ "applied": false }));
        }
        mirror_sample_on(self.compute.isa, sample);
        match self.exact {
            None => Ok(json!({
                "applied": true,
                "middle_source": "approximate (x=35 after mirror, standard is 34)",
            })),
            Some(mode) => {
                exact_after_mirror(sample, mode, self.compute)?;
                Ok(json!({
                    "applied": true,
                    "middle_source": "exact (re-simulated at x=34 on the mirrored map)",
                    "resimulated": match mode {
                        Resimulate::All => "all",
                        Resimulate::Middle => "middle",
                    },
                }))
            }
        }
    }
}

/// Re-simulate a mirrored sample from its (mirrored) velocity map with
/// `compute`.
///
/// # Errors
/// No velocity map, or a bad one.
pub fn exact_after_mirror(
    sample: &mut Sample,
    mode: Resimulate,
    compute: crate::cpu::Compute,
) -> Result<(), StageError> {
    let vel = sample
        .velocity
        .clone()
        .ok_or_else(|| StageError::new("flip with exact = true needs a velocity map"))?;
    match mode {
        Resimulate::All => {
            super::simulate::resimulate(sample, &vel, &crate::physics::SOURCE_X, false, compute)
        }
        Resimulate::Middle => {
            let v = vel.as_standard_layout();
            let m = crate::physics::Medium::new(v.as_slice().expect("standard"), false)
                .map_err(StageError::new)?
                .with_compute(compute);
            let data = sample
                .seismic
                .as_slice_mut()
                .ok_or_else(|| StageError::new("seismic data is not contiguous"))?;
            let n = crate::physics::PER_SOURCE;
            m.simulate_source(crate::physics::SOURCE_X[2], &mut data[2 * n..3 * n]);
            Ok(())
        }
    }
}

/// Mirror a sample in place: sources reversed, receivers reversed, velocity x reversed.
pub fn mirror_sample(sample: &mut Sample) {
    mirror_sample_on(Isa::detect(), sample);
}

/// [`mirror_sample`] with the vector copy of `isa` (the same bits on every copy).
pub fn mirror_sample_on(isa: Isa, sample: &mut Sample) {
    mirror_seismic_on(isa, &mut sample.seismic);
    if let Some(v) = sample.velocity.as_mut() {
        let last = Axis(v.ndim() - 1);
        v.invert_axis(last);
        *v = v.as_standard_layout().into_owned();
    }
}

/// Reverse the first (source) and last (receiver) axes, in place.
pub fn mirror_seismic(a: &mut ndarray::ArrayD<f32>) {
    mirror_seismic_on(Isa::detect(), a);
}

/// [`mirror_seismic`] with the vector copy of `isa` (or a narrower one where
/// the CPU lacks it): the same bits on every copy, as it only moves values.
pub fn mirror_seismic_on(isa: Isa, a: &mut ndarray::ArrayD<f32>) {
    if !a.is_standard_layout() {
        *a = a.as_standard_layout().into_owned();
    }
    let shape = a.shape().to_vec();
    let s = shape[0];
    let r = *shape.last().expect("rank ≥ 2");
    let data = a.as_slice_mut().expect("standard layout");
    #[cfg(target_arch = "x86_64")]
    match isa {
        Isa::Avx512 if std::arch::is_x86_feature_detected!("avx512f") => {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            unsafe { mirror_avx512(data, s, r) };
            return;
        }
        Isa::Avx512 | Isa::Avx2 if std::arch::is_x86_feature_detected!("avx2") => {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { mirror_avx2(data, s, r) };
            return;
        }
        _ => {}
    }
    let _ = isa;
    mirror(data, s, r);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn mirror_avx512(data: &mut [f32], s: usize, r: usize) {
    mirror(data, s, r);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn mirror_avx2(data: &mut [f32], s: usize, r: usize) {
    mirror(data, s, r);
}

/// Swap channel i of `data` (`s` channels of rows of `r` values) with
/// channel s − 1 − i, reversing every row on the way; the middle channel's
/// rows are reversed in place. Always inlined: each `#[target_feature]`
/// wrapper above gets its own vector copy.
#[allow(clippy::inline_always)]
#[inline(always)]
fn mirror(data: &mut [f32], s: usize, r: usize) {
    let block = data.len() / s.max(1);
    for i in 0..s / 2 {
        let (head, tail) = data.split_at_mut((s - 1 - i) * block);
        let x = &mut head[i * block..(i + 1) * block];
        let y = &mut tail[..block];
        for (xr, yr) in x.chunks_exact_mut(r).zip(y.chunks_exact_mut(r)) {
            swap_reversed(xr, yr);
        }
    }
    if s % 2 == 1 {
        let mid = &mut data[(s / 2) * block..(s / 2 + 1) * block];
        for row in mid.chunks_exact_mut(r) {
            // Its first half with its last half reversed (an odd row's
            // middle value stays).
            let (x, rest) = row.split_at_mut(r / 2);
            swap_reversed(x, &mut rest[r % 2..]);
        }
    }
}

/// `x[i]` ↔ `y[n − 1 − i]` for every i (`x` and `y` of one length n): whole
/// 16-value pieces as fixed-size arrays, which the compiler turns into
/// vector loads, lane reversals and stores; the rest one by one.
#[allow(clippy::inline_always)]
#[inline(always)]
fn swap_reversed(x: &mut [f32], y: &mut [f32]) {
    const W: usize = 16;
    let n = x.len();
    assert_eq!(y.len(), n);
    let mut i = 0;
    while i + W <= n {
        let a: [f32; W] = x[i..i + W].try_into().expect("W values");
        let b: [f32; W] = y[n - i - W..n - i].try_into().expect("W values");
        for k in 0..W {
            x[i + k] = b[W - 1 - k];
            y[n - i - W + k] = a[W - 1 - k];
        }
        i += W;
    }
    // x[i..] pairs with y[..n − i], reversed.
    for (p, q) in x[i..].iter_mut().zip(y[..n - i].iter_mut().rev()) {
        std::mem::swap(p, q);
    }
}

impl super::StageType for FlipSpec {
    const DOC: super::StageDoc = DOC;

    /// `p` outside [0, 1]; a seismic rank below 2; `exact` without labels or
    /// (5, 1000, 70) data.
    fn plan(&self, env: &PlanEnv) -> Result<Planned, ParamError> {
        self.exact_mode(env)?;
        Ok(Planned::same(
            env,
            super::algorithm("flip", ALGORITHM, self.exact),
        ))
    }

    fn instantiate(
        &self,
        plan: &super::StagePlan,
        env: &super::RunEnv<'_>,
    ) -> Result<Instance, ParamError> {
        let exact = self.exact_mode(&plan.input)?;
        Ok(Instance::sample(Flip {
            p: self.p,
            exact,
            compute: env.compute,
        }))
    }
}

impl FlipSpec {
    /// The exact-flip mode after checking the parameters (`None`: plain flip).
    fn exact_mode(&self, env: &PlanEnv) -> Result<Option<Resimulate>, ParamError> {
        check_probability(self.p)?;
        if env.shape.len() < 2 {
            return Err(ParamError::SampleShape {
                what: "flip",
                needs: "(source, …, receiver) data",
                shape: env.shape.clone(),
            });
        }
        if self.exact {
            super::simulate::require_labels(env, "flip with exact = true")?;
            super::simulate::require_standard_shape(env, "flip with exact = true")?;
            Ok(Some(self.resimulate_channels.unwrap_or_default()))
        } else if self.resimulate_channels.is_some() {
            Err(ParamError::Invalid(
                "resimulate_channels is only used with exact = true".into(),
            ))
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};

    /// Every copy, on rows shorter and longer than a 16-value piece, whole
    /// pieces and not, odd and even, with odd and even channel counts.
    #[test]
    fn mirror_matches_index_formula() {
        for isa in Isa::available() {
            for (s, t, r) in [
                (5, 4, 7),
                (4, 3, 6),
                (1, 2, 3),
                (5, 3, 70),
                (3, 2, 33),
                (2, 2, 16),
                (5, 2, 32),
                (1, 3, 47),
                (5, 1, 1),
            ] {
                check_mirror(isa, s, t, r);
            }
        }
    }

    fn check_mirror(isa: Isa, s: usize, t: usize, r: usize) {
        let v: Vec<f32> = (0..s * t * r).map(|i| i as f32).collect();
        let orig = ArrayD::from_shape_vec(IxDyn(&[s, t, r]), v).unwrap();
        let mut a = orig.clone();
        mirror_seismic_on(isa, &mut a);
        for si in 0..s {
            for ti in 0..t {
                for ri in 0..r {
                    assert_eq!(
                        a[[si, ti, ri]],
                        orig[[s - 1 - si, ti, r - 1 - ri]],
                        "{}: shape ({s}, {t}, {r}) at ({si}, {ti}, {ri})",
                        isa.name()
                    );
                }
            }
        }
        mirror_seismic_on(isa, &mut a);
        assert_eq!(a, orig);
    }

    #[test]
    fn rejects_bad_probability() {
        assert!(check_probability(1.5)
            .unwrap_err()
            .to_string()
            .contains("0 ≤ p ≤ 1"));
        assert!(check_probability(-0.1).is_err());
        assert!(check_probability(f64::NAN).is_err());
    }
}
