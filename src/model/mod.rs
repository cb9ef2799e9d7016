//! Trained models as the pipeline sees them: a [`Model`] maps a batch of
//! seismic samples to velocity maps in m/s. The declared input/output
//! transforms ([`InputTransform`], [`OutputTransform`]) are plain data here;
//! the `seispipe-torch` crate (`torch/`) runs TorchScript files through
//! libtorch and applies them. The arithmetic that combines several views of a
//! sample (test-time augmentation, ensembles) lives here too, in plain Rust,
//! so it is tested without libtorch.

use serde::{Deserialize, Serialize};

/// Values in one predicted velocity map (70 × 70).
pub const VELOCITY_VALUES: usize = 70 * 70;

/// A failure of a model backend, by what failed; the sentence names the
/// device, the file or the step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A device that is not there or cannot be used as asked.
    #[error("{0}")]
    Device(String),
    /// A model file that cannot be used: missing, not TorchScript, another
    /// SHA-256 than the plan identified, or outputs of the wrong shape.
    #[error("{0}")]
    Model(String),
    /// Inference or simulation that failed inside the backend.
    #[error("{0}")]
    Run(String),
}

/// A model that predicts velocity maps.
pub trait Model: Send + Sync {
    /// Predict `batch` velocity maps (m/s, after the model's output transform,
    /// before any clip) from `batch` seismic samples laid out contiguously in
    /// C order. Returns `batch × 4900` values: (batch, 70, 70).
    ///
    /// # Errors
    /// A message saying what failed (the model raised, wrong output shape…).
    fn predict(&self, seismic: &[f32], batch: usize) -> Result<Vec<f32>, ModelError>;

    /// What provenance records about this model (file, SHA-256, device…).
    fn describe(&self) -> serde_json::Value;
}

/// How raw seismic values are turned into what the model was trained on.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InputTransform {
    /// Values as read.
    #[default]
    None,
    /// `sign(x)·log1p(|x|)` (OpenFWI's amplitude compression), named as in
    /// the `waveform_transform` stage.
    Log1p,
    /// Min-max from the bounds to [−1, 1].
    Minmax,
    /// `sign(x)·log1p(|x|)`, then min-max from the bounds to [−1, 1]. The
    /// bounds a model backend receives are in log1p units (the stage puts
    /// the user's raw-unit `input_min`/`input_max` through the same log1p).
    Log1pMinmax,
}

impl InputTransform {
    /// Whether this transform needs bounds (`input_min`, `input_max`).
    #[must_use]
    pub fn needs_bounds(self) -> bool {
        matches!(self, InputTransform::Minmax | InputTransform::Log1pMinmax)
    }

    /// The transform of one value (the reference the tensor code must match).
    #[must_use]
    pub fn apply(self, x: f32, bounds: [f32; 2]) -> f32 {
        let mm = |v: f32| 2.0 * (v - bounds[0]) / (bounds[1] - bounds[0]) - 1.0;
        let sl = |v: f32| v.signum() * v.abs().ln_1p();
        match self {
            InputTransform::None => x,
            InputTransform::Log1p => {
                if x == 0.0 {
                    0.0
                } else {
                    sl(x)
                }
            }
            InputTransform::Minmax => mm(x),
            InputTransform::Log1pMinmax => mm(if x == 0.0 { 0.0 } else { sl(x) }),
        }
    }
}

/// How the model's raw output becomes metres per second.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OutputTransform {
    /// The model outputs m/s.
    #[default]
    Identity,
    /// The model outputs [−1, 1]; map back to `output_bounds` (default 1500–4500 m/s).
    Minmax,
    /// `sigmoid(y)·output_scale`.
    Sigmoid,
}

impl OutputTransform {
    /// The transform of one value (the reference the tensor code must match).
    #[must_use]
    pub fn apply(self, y: f32, bounds: [f32; 2], scale: f32) -> f32 {
        match self {
            OutputTransform::Identity => y,
            OutputTransform::Minmax => (y + 1.0) * 0.5 * (bounds[1] - bounds[0]) + bounds[0],
            OutputTransform::Sigmoid => scale / (1.0 + (-y).exp()),
        }
    }
}

/// Mirror a batch of velocity maps `(n, 70, 70)` along x, in place (undoes
/// the mirror flip of the input for test-time augmentation).
pub fn mirror_velocity_x(maps: &mut [f32]) {
    for row in maps.chunks_exact_mut(70) {
        row.reverse();
    }
}

/// Combine several views of one sample's prediction (TTA views and ensemble
/// members) into their weighted mean, and measure how much they disagree.
///
/// `views[k]` is a (70, 70) map with weight `weights[k]` (> 0). Returns the
/// weighted mean map and the *disagreement*: the weighted mean, over views,
/// of each view's mean absolute difference from the combined map (m/s).
/// One view gives disagreement 0.
///
/// # Panics
/// When `views` is empty or the lengths differ (caller bugs).
#[must_use]
pub fn combine_views(views: &[&[f32]], weights: &[f64]) -> (Vec<f32>, f64) {
    assert!(!views.is_empty() && views.len() == weights.len());
    let n = views[0].len();
    let total: f64 = weights.iter().sum();
    let mut mean = vec![0f64; n];
    for (v, &w) in views.iter().zip(weights) {
        assert_eq!(v.len(), n);
        for (m, &x) in mean.iter_mut().zip(v.iter()) {
            *m += w * f64::from(x);
        }
    }
    for m in &mut mean {
        *m /= total;
    }
    let mut dis = 0f64;
    if views.len() > 1 {
        for (v, &w) in views.iter().zip(weights) {
            let mad: f64 = v
                .iter()
                .zip(&mean)
                .map(|(&x, &m)| (f64::from(x) - m).abs())
                .sum::<f64>()
                / n as f64;
            dis += w * mad;
        }
        dis /= total;
    }
    let mean = mean.into_iter().map(|m| m as f32).collect();
    (mean, dis)
}

/// What a backend needs to load a pseudo_label stage's models: resolved
/// paths and plain settings (built by the stage, see
/// [`crate::stage::pseudo_label`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LoadRequest {
    /// The model files, in order, with the SHA-256 each is pinned to (if any).
    pub models: Vec<ModelFile>,
    /// `"auto"`, `"cpu"` or `"cuda:N"`.
    pub device: String,
    /// float16 inference (CUDA only).
    pub half: bool,
    /// libtorch intra-op threads (None: libtorch's default).
    pub torch_threads: Option<usize>,
    /// Scaling applied to the seismic data before the model.
    pub input_transform: InputTransform,
    /// Bounds of the min-max input transforms, in the units the min-max
    /// applies to (after the log for `log1p_minmax`).
    pub input_bounds: [f32; 2],
    /// Mapping of the model's output to m/s.
    pub output_transform: OutputTransform,
    /// m/s range of the min-max output transform.
    pub output_bounds: [f32; 2],
    /// m/s scale of the sigmoid output transform.
    pub output_scale: f32,
    /// Shape of one input sample.
    pub sample_shape: Vec<usize>,
}

/// One model file of a [`LoadRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFile {
    /// Path, resolved against the pipeline file's directory.
    pub path: std::path::PathBuf,
    /// SHA-256 the file must have, when pinned.
    pub sha256: Option<String>,
}

/// What `seispipe make-demo-model` asks of a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoModelRequest {
    /// Where to write the TorchScript model.
    pub out: std::path::PathBuf,
    /// Labelled shards to fit on (directory, file or glob).
    pub data: String,
    /// At most this many samples.
    pub max_samples: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Seed of the weights and batch order.
    pub seed: u64,
}

/// The libtorch half of seispipe, which lives in the `seispipe-torch` crate
/// (`torch/`) so that this library never links libtorch. The
/// `seispipe-torch` binary passes it to [`crate::app::main_with`]; the
/// `seispipe` binary has none, starts without loading libtorch (0.4 s, most of
/// a small run) and hands a command that needs a model over to
/// `seispipe-torch` (see [`crate::app`]).
pub trait ModelBackend: Send + Sync {
    /// Load the models of a pseudo_label stage.
    ///
    /// # Errors
    /// A bad device, a missing or corrupt model, a pinned SHA-256 that differs.
    fn load_models(&self, request: &LoadRequest) -> Result<Vec<Box<dyn Model>>, ModelError>;

    /// Fit and save the demo model; returns the line to print.
    ///
    /// # Errors
    /// No labelled inputs, or a libtorch failure.
    fn make_demo_model(&self, request: &DemoModelRequest) -> crate::Result<String>;

    /// How many CUDA devices the backend sees (0: none, or no CUDA support).
    fn cuda_device_count(&self) -> usize {
        0
    }

    /// A batched wave simulator on `device` (`"cpu"` or `"cuda:N"`), for the
    /// `simulate` stage's `device` key.
    ///
    /// # Errors
    /// A device that does not exist here, or a backend that cannot simulate.
    fn simulator(&self, device: &str) -> Result<Box<dyn Simulator>, ModelError> {
        Err(ModelError::Device(format!(
            "device = \"{device}\": this model backend has no simulator"
        )))
    }
}

/// The OpenFWI-exact simulation ([`crate::physics`]: same grid, sponge,
/// periodic outer edge, wavelet, injection and receivers) of many maps and
/// sources at once, on a tensor device.
pub trait Simulator: Send + Sync {
    /// Simulate `maps.len() / 4900` validated (and, where asked, clipped)
    /// 70 × 70 maps, each for every source x index of `sources`; returns
    /// `(maps, sources, 1000, 70)` values in C order.
    ///
    /// # Errors
    /// A tensor library failure (out of device memory…).
    fn simulate(&self, maps: &[f32], sources: &[usize]) -> Result<Vec<f32>, ModelError>;

    /// The device it runs on (`"cpu"`, `"cuda:0"`…).
    fn device(&self) -> String;
}

/// A shared handle on a [`ModelBackend`], carried by the build environment.
#[derive(Clone)]
pub struct Backend(pub std::sync::Arc<dyn ModelBackend>);

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Backend(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_is_weighted_mean_with_mean_abs_deviation() {
        let a = [1.0f32, 2.0, 3.0];
        let b = [3.0f32, 2.0, 0.0];
        let (m, d) = combine_views(&[&a, &b], &[1.0, 3.0]);
        // (1·1 + 3·3)/4 = 2.5, (2 + 6)/4 = 2, (3 + 0)/4 = 0.75
        assert_eq!(m, vec![2.5, 2.0, 0.75]);
        // |a − m| = 1.5, 0, 2.25 → 1.25; |b − m| = 0.5, 0, 0.75 → 0.41667
        let want = (1.0 * 1.25 + 3.0 * (1.25 / 3.0)) / 4.0;
        assert!((d - want).abs() < 1e-12, "{d} vs {want}");
        let (m1, d1) = combine_views(&[&a], &[2.0]);
        assert_eq!(m1, a.to_vec());
        assert!(d1.abs() < f64::EPSILON);
    }

    #[test]
    fn velocity_mirror_matches_sample_mirror() {
        // The TTA un-flip of a map must be the flip stage's velocity mirror.
        let v: Vec<f32> = (0..2 * 4900).map(|i| i as f32).collect();
        let mut mine = v.clone();
        mirror_velocity_x(&mut mine);
        for k in 0..2 {
            let arr =
                ndarray::Array3::from_shape_vec((1, 70, 70), v[k * 4900..(k + 1) * 4900].to_vec())
                    .unwrap();
            let mut s = crate::sample::Sample {
                id: String::new(),
                origin: crate::sample::Origin {
                    input: 0,
                    index: 0,
                    global: 0,
                    copy: 1,
                },
                seismic: ndarray::ArrayD::zeros(ndarray::IxDyn(&[5, 2, 70])),
                velocity: Some(arr),
                dropped: None,
            };
            crate::stage::flip::mirror_sample(&mut s);
            let want = s.velocity.unwrap();
            assert_eq!(&mine[k * 4900..(k + 1) * 4900], want.as_slice().unwrap());
        }
    }

    #[test]
    fn transforms_match_their_formulas() {
        let b = [-2.0f32, 6.0];
        assert!((InputTransform::Minmax.apply(2.0, b) - 0.0).abs() < 1e-7);
        assert!((InputTransform::Log1p.apply(-1.0, b) + 2f32.ln()).abs() < 1e-7);
        assert!((OutputTransform::Minmax.apply(-1.0, [1500.0, 4500.0], 0.0) - 1500.0).abs() < 1e-3);
        assert!((OutputTransform::Minmax.apply(1.0, [1500.0, 4500.0], 0.0) - 4500.0).abs() < 1e-3);
        assert!((OutputTransform::Sigmoid.apply(0.0, [0.0, 0.0], 4000.0) - 2000.0).abs() < 1e-3);
    }
}
