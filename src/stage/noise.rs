//! `gaussian_noise`: additive white Gaussian noise, by absolute `std` or by
//! `snr_db` over the whole sample (OpenFWI's convention: noise power =
//! mean(x²) / 10^(snr/10)), with probability `p`.
//!
//! Draw order, part of the output's definition: the apply decision (only when
//! 0 < p < 1), then one standard-normal f32 per element in C order from
//! [`super::normal::Normals`] (a ziggurat over the stage's ChaCha8 stream).

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::flip::check_probability;
use super::normal::Normals;
use super::{draw_apply, Instance, ParamError, PlanEnv, Planned, Record, Stage, StageCtx};
use crate::error::StageError;
use crate::sample::Sample;

/// Version of the bytes this stage writes (see [`super::algorithm`]).
/// 1: ziggurat normals on u32 draws from the sample's ChaCha stream.
pub const ALGORITHM: u32 = 1;

/// `seispipe stages` entry.
pub const DOC: super::StageDoc = super::StageDoc {
    name: "gaussian_noise",
    parse: super::parse_as::<GaussianNoiseSpec>,
    summary: "additive white Gaussian noise, by absolute std or by SNR over the whole sample",
    required: "",
    params: &[
        (
            "p",
            "",
            "probability of adding noise to each copy, 0 ≤ p ≤ 1",
        ),
        (
            "std",
            "",
            "absolute standard deviation, ≥ 0 (give std or snr_db)",
        ),
        (
            "snr_db",
            "",
            "SNR in dB: noise power = mean(x²) / 10^(snr_db/10)",
        ),
    ],
};

/// `type = "gaussian_noise"`: exactly one of `std` and `snr_db`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GaussianNoiseSpec {
    /// Probability of adding noise to a copy, in [0, 1].
    #[serde(default = "default_p")]
    pub p: f64,
    /// Absolute standard deviation (same units as the data), ≥ 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Signal-to-noise ratio in dB over the whole sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snr_db: Option<f64>,
}

fn default_p() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy)]
enum Level {
    Std(f32),
    SnrDb(f64),
}

/// Runtime noise stage.
pub struct GaussianNoise {
    p: f64,
    level: Level,
    isa: crate::cpu::Isa,
}

/// Noise std for a target SNR over `x`: sqrt(mean(x²) / 10^(snr/10)).
#[must_use]
pub fn std_for_snr(x: &[f32], snr_db: f64) -> f64 {
    let power = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / x.len().max(1) as f64;
    (power / 10f64.powf(snr_db / 10.0)).sqrt()
}

impl Stage for GaussianNoise {
    fn apply(&self, sample: &mut Sample, ctx: &mut StageCtx<'_>) -> Result<Record, StageError> {
        if !draw_apply(self.p, &mut ctx.rng) {
            return Ok(json!({ "applied": false }));
        }
        let data = sample
            .seismic
            .as_slice_mut()
            .ok_or_else(|| StageError::new("seismic data is not contiguous"))?;
        let std = match self.level {
            Level::Std(s) => s,
            Level::SnrDb(d) => std_for_snr(data, d) as f32,
        };
        Normals::new(&mut ctx.rng).add_scaled_on(self.isa, data, std);
        Ok(json!({ "applied": true, "std": std }))
    }
}

/// `x[i] += std · n_i`, n_i ~ N(0, 1) drawn in order by [`super::normal::Normals`].
pub fn add_noise<G: RngCore + 'static>(x: &mut [f32], std: f32, rng: &mut G) {
    Normals::new(rng).add_scaled(x, std);
}

impl super::StageType for GaussianNoiseSpec {
    const DOC: super::StageDoc = DOC;

    /// `p` outside [0, 1]; no level, both levels, or a bad one.
    fn plan(&self, env: &PlanEnv) -> Result<Planned, ParamError> {
        self.level()?;
        Ok(Planned::same(
            env,
            super::algorithm("gaussian_noise", ALGORITHM, false),
        ))
    }

    fn instantiate(
        &self,
        _plan: &super::StagePlan,
        env: &super::RunEnv<'_>,
    ) -> Result<Instance, ParamError> {
        Ok(Instance::sample(GaussianNoise {
            p: self.p,
            level: self.level()?,
            isa: env.compute.isa,
        }))
    }
}

impl GaussianNoiseSpec {
    /// The checked noise level.
    fn level(&self) -> Result<Level, ParamError> {
        check_probability(self.p)?;
        match (self.std, self.snr_db) {
            (Some(s), None) => {
                if !(s.is_finite() && s >= 0.0) {
                    return Err(ParamError::Invalid(format!(
                        "std = {s} is out of range; expected a finite std ≥ 0"
                    )));
                }
                Ok(Level::Std(s as f32))
            }
            (None, Some(d)) => {
                if !d.is_finite() {
                    return Err(ParamError::Invalid(format!(
                        "snr_db = {d} must be a finite number of decibels"
                    )));
                }
                Ok(Level::SnrDb(d))
            }
            (Some(_), Some(_)) => Err(ParamError::Invalid(
                "give either std or snr_db, not both".into(),
            )),
            (None, None) => Err(ParamError::Invalid(
                "missing the noise level: set std (absolute) or snr_db".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snr_formula() {
        let x = [3.0f32, -3.0, 3.0, -3.0];
        // power 9, 10 dB → noise power 0.9
        assert!((std_for_snr(&x, 10.0) - 0.9f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn noise_statistics() {
        let mut rng = crate::rng::stage_rng(7, "x", 0, 1, 0);
        let mut x = vec![0f32; 200_000];
        add_noise(&mut x, 2.0, &mut rng);
        let n = x.len() as f64;
        let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = x
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.02, "std {}", var.sqrt());
    }
}
