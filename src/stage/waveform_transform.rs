//! `waveform_transform`: the input scalings OpenFWI baselines apply to the
//! seismic data (docs/domain.md, "Augmentations and their traps"), element-wise on the seismic array (any shape;
//! velocity maps are untouched):
//!
//! * `log1p`: `sign(x)·log1p(|k·x|)` — OpenFWI's `log_transform(data, k)`.
//! * `minmax`: `2·(x − min)/(max − min) − 1`, mapping `[min, max]` to `[−1, 1]`
//!   — OpenFWI's `minmax_normalize(x, min, max, scale=2)`.
//! * `log1p_minmax`: `log1p`, then `minmax` with both bounds put through the
//!   same `log1p` — OpenFWI's `LogTransform` followed by
//!   `MinMaxNormalize(log_transform(min), log_transform(max))`. `min`/`max`
//!   are therefore given in raw data units for every transform.
//!
//! Values outside `[min, max]` land outside `[−1, 1]` as in OpenFWI, unless
//! `clip_output = true`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Instance, ParamError, PlanEnv, Planned, Record, Stage, StageCtx};
use crate::error::StageError;
use crate::sample::Sample;

/// Version of the bytes this stage writes (see [`super::algorithm`]).
/// 1: sign·log1p and min-max scalings in f32.
pub const ALGORITHM: u32 = 1;

/// `seispipe stages` entry.
pub const DOC: super::StageDoc = super::StageDoc {
    name: "waveform_transform",
    parse: super::parse_as::<WaveformTransformSpec>,
    summary: "baseline input scalings: sign(x)·log1p(|k·x|), min-max to [−1, 1], or both (OpenFWI)",
    required: "transform = \"log1p\"",
    params: &[
        (
            "transform",
            "",
            "log1p | minmax | log1p_minmax (log1p, then min-max with log1p'd bounds)",
        ),
        ("k", "", "log1p scale: sign(x)·log1p(|k·x|), k > 0"),
        (
            "min",
            "",
            "minmax kinds: raw-data value mapped to −1 (required)",
        ),
        (
            "max",
            "",
            "minmax kinds: raw-data value mapped to +1 (required, > min)",
        ),
        ("clip_output", "", "clip the min-max result to [−1, 1]"),
    ],
};

/// `type = "waveform_transform"`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WaveformTransformSpec {
    /// Which scaling.
    pub transform: Transform,
    /// Scale inside the log: `sign(x)·log1p(|k·x|)`.
    #[serde(default = "default_k")]
    pub k: f64,
    /// Raw value mapped to −1.
    #[serde(default)]
    pub min: Option<f64>,
    /// Raw value mapped to +1.
    #[serde(default)]
    pub max: Option<f64>,
    /// Clip the min-max output to [−1, 1].
    #[serde(default)]
    pub clip_output: bool,
}

fn default_k() -> f64 {
    1.0
}

/// The scalings (`transform = "…"` in pipeline files).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// `sign(x)·log1p(|k·x|)`
    Log1p,
    /// `2·(x − min)/(max − min) − 1`
    Minmax,
    /// `log1p`, then `minmax` with both bounds put through the same `log1p`.
    Log1pMinmax,
}

/// `sign(x)·log1p(|k·x|)` in f64.
#[must_use]
pub fn signed_log1p(x: f64, k: f64) -> f64 {
    (k * x).abs().ln_1p().copysign(x)
}

impl WaveformTransformSpec {
    /// The validated runtime (see [`StageType::plan`](super::StageType::plan)).
    ///
    /// # Errors
    /// See [`StageType::plan`](super::StageType::plan).
    pub fn runtime(&self) -> Result<WaveformTransform, ParamError> {
        let (log, minmax) = match self.transform {
            Transform::Log1p => (true, false),
            Transform::Minmax => (false, true),
            Transform::Log1pMinmax => (true, true),
        };
        if !(self.k.is_finite() && self.k > 0.0) {
            return Err(ParamError::Invalid(format!(
                "k = {} is out of range; expected a finite k > 0",
                self.k
            )));
        }
        let bounds = if minmax {
            let (Some(lo), Some(hi)) = (self.min, self.max) else {
                return Err(ParamError::Invalid(format!(
                    "transform = {} needs both min and max (raw data units)",
                    serde_json::to_value(self.transform).expect("serialises")
                )));
            };
            if !(lo.is_finite() && hi.is_finite() && hi > lo) {
                return Err(ParamError::Invalid(format!(
                    "min = {lo}, max = {hi} are out of range; expected finite bounds with max > min"
                )));
            }
            let (lo, hi) = if log {
                (signed_log1p(lo, self.k), signed_log1p(hi, self.k))
            } else {
                (lo, hi)
            };
            Some((lo, hi))
        } else {
            if self.min.is_some() || self.max.is_some() || self.clip_output {
                return Err(ParamError::Invalid(
                    "min, max and clip are only used by transform = \"minmax\" or \"log1p_minmax\"; remove them"
                        .into(),
                ));
            }
            None
        };
        Ok(WaveformTransform {
            log_k: log.then_some(self.k),
            bounds,
            clip: self.clip_output,
        })
    }
}

/// Runtime waveform transform.
pub struct WaveformTransform {
    log_k: Option<f64>,
    /// Bounds in the (possibly log1p'd) domain.
    bounds: Option<(f64, f64)>,
    clip: bool,
}

impl WaveformTransform {
    /// Transform `x` in place (arithmetic in f64, rounded once to f32).
    pub fn apply_slice(&self, x: &mut [f32]) {
        for v in x {
            let mut y = f64::from(*v);
            if let Some(k) = self.log_k {
                y = signed_log1p(y, k);
            }
            if let Some((lo, hi)) = self.bounds {
                y = 2.0 * (y - lo) / (hi - lo) - 1.0;
                if self.clip {
                    y = y.clamp(-1.0, 1.0);
                }
            }
            *v = y as f32;
        }
    }
}

impl Stage for WaveformTransform {
    fn apply(&self, sample: &mut Sample, _ctx: &mut StageCtx<'_>) -> Result<Record, StageError> {
        if !sample.seismic.is_standard_layout() {
            sample.seismic = sample.seismic.as_standard_layout().into_owned();
        }
        let data = sample
            .seismic
            .as_slice_mut()
            .ok_or_else(|| StageError::new("seismic data is not contiguous"))?;
        self.apply_slice(data);
        Ok(Value::Null)
    }
}

impl super::StageType for WaveformTransformSpec {
    const DOC: super::StageDoc = DOC;

    /// Bad parameters (see [`WaveformTransformSpec::runtime`]).
    fn plan(&self, env: &PlanEnv) -> Result<Planned, ParamError> {
        self.runtime()?;
        Ok(Planned::same(
            env,
            super::algorithm("waveform_transform", ALGORITHM, false),
        ))
    }

    fn instantiate(
        &self,
        _plan: &super::StagePlan,
        _env: &super::RunEnv<'_>,
    ) -> Result<Instance, ParamError> {
        Ok(Instance::sample(self.runtime()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build(v: Value) -> Result<crate::stage::BuiltStage, ParamError> {
        let s: WaveformTransformSpec = serde_json::from_value(v).unwrap();
        crate::stage::build_one(
            &s,
            &PlanEnv {
                shape: vec![5, 1000, 70],
                labels: true,
            },
            &crate::stage::RunEnv::default(),
        )
    }

    #[test]
    fn formulas() {
        let t = |v: Value, x: f32| -> f32 {
            let s: WaveformTransformSpec = serde_json::from_value(v).unwrap();
            let mut y = [x];
            s.runtime().unwrap().apply_slice(&mut y);
            y[0]
        };
        let l = json!({"transform": "log1p"});
        assert!((t(l.clone(), 3.0) - 4f32.ln()).abs() < 1e-7);
        assert!((t(l.clone(), -3.0) + 4f32.ln()).abs() < 1e-7);
        assert_eq!(t(l, 0.0), 0.0);
        let m = json!({"transform": "minmax", "min": -10.0, "max": 30.0});
        assert!((t(m.clone(), -10.0) + 1.0).abs() < 1e-7);
        assert!((t(m.clone(), 30.0) - 1.0).abs() < 1e-7);
        assert!((t(m, 10.0)).abs() < 1e-7);
        let lm = json!({"transform": "log1p_minmax", "min": -26.0, "max": 52.0});
        assert!((t(lm.clone(), 52.0) - 1.0).abs() < 1e-6);
        assert!((t(lm.clone(), -26.0) + 1.0).abs() < 1e-6);
        let c = json!({"transform": "minmax", "min": 0.0, "max": 1.0, "clip_output": true});
        assert_eq!(t(c, 5.0), 1.0);
    }

    #[test]
    fn rejects_bad_parameters_by_name() {
        let e = |v: Value| build(v).err().expect("must fail").to_string();
        let m = serde_json::from_value::<WaveformTransformSpec>(json!({"transform": "log"}))
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("unknown variant `log`") && m.contains("`log1p`, `minmax`, `log1p_minmax`"),
            "{m}"
        );
        let m = e(json!({"transform": "minmax", "min": 1.0}));
        assert!(m.contains("min and max"), "{m}");
        let m = e(json!({"transform": "minmax", "min": 1.0, "max": 1.0}));
        assert!(m.contains("max > min"), "{m}");
        let m = e(json!({"transform": "log1p", "k": 0.0}));
        assert!(m.contains("k = 0"), "{m}");
        let m = e(json!({"transform": "log1p", "min": 0.0}));
        assert!(m.contains("only used by"), "{m}");
    }
}
