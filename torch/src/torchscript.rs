//! TorchScript models through libtorch (`tch`): load a `.pt` file saved by
//! `torch.jit.save` (scripted or traced) on the chosen device, apply the
//! declared input transform, run it without gradient tracking (optionally in
//! half precision on CUDA), check the output shape, apply the output
//! transform, and hand back f32 velocity maps. One copy on the way in
//! (`Tensor::from_slice`), one on the way out.

use std::path::{Path, PathBuf};

use serde_json::json;
use tch::{CModule, Device, Kind, Tensor};

use seispipe::model::{InputTransform, Model, ModelError, OutputTransform, VELOCITY_VALUES};

/// Resolve a `device` setting: `auto` (first CUDA device when libtorch sees
/// one, else CPU), `cpu`, or `cuda:N`.
///
/// # Errors
/// An unknown name, or CUDA asked for where libtorch sees no such device.
pub fn resolve_device(name: &str) -> Result<Device, ModelError> {
    device_of(name).map_err(ModelError::Device)
}

fn device_of(name: &str) -> Result<Device, String> {
    match name {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        _ => {
            let Some(n) =
                name.strip_prefix("cuda:")
                    .or(if name == "cuda" { Some("0") } else { None })
            else {
                return Err(format!(
                    "device = \"{name}\" is not a device; expected \"auto\", \"cpu\" or \"cuda:N\""
                ));
            };
            let n: usize = n.parse().map_err(|_| {
                format!("device = \"{name}\": `{n}` is not a CUDA device number; expected \"cuda:0\", \"cuda:1\", …")
            })?;
            let count = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
            if !tch::Cuda::is_available() || count == 0 {
                return Err(format!(
                    "device = \"{name}\", but libtorch sees no CUDA device on this machine (no GPU, no driver, or a CPU-only libtorch); use device = \"cpu\" or \"auto\""
                ));
            }
            if n >= count {
                return Err(format!(
                    "device = \"{name}\", but libtorch sees only {count} CUDA device(s) (cuda:0 … cuda:{})",
                    count - 1
                ));
            }
            Ok(Device::Cuda(n))
        }
    }
}

/// How to load and run one model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where it runs.
    pub device: Device,
    /// Run in float16 (CUDA only).
    pub half: bool,
    /// Input transform and its bounds.
    pub input: InputTransform,
    /// Bounds of a min-max input transform.
    pub input_bounds: [f32; 2],
    /// Output transform.
    pub output: OutputTransform,
    /// Bounds of a min-max output transform (m/s).
    pub output_bounds: [f32; 2],
    /// Scale of a sigmoid output transform (m/s).
    pub output_scale: f32,
    /// Shape of one input sample (normally (5, 1000, 70)).
    pub sample_shape: Vec<usize>,
}

/// A loaded TorchScript model.
pub struct TorchScriptModel {
    module: CModule,
    path: PathBuf,
    sha256: String,
    opts: LoadOptions,
}

impl TorchScriptModel {
    /// Load `path` (its SHA-256 is computed for provenance) and check it on a
    /// one-sample batch of zeros, so a model that cannot take the input or
    /// returns the wrong shape is refused before any data is read.
    ///
    /// # Errors
    /// Missing or unreadable file, not a TorchScript archive, a model that
    /// fails on the probe batch or returns the wrong shape.
    pub fn load(path: &Path, opts: LoadOptions) -> Result<Self, ModelError> {
        Self::load_checked(path, opts).map_err(ModelError::Model)
    }

    fn load_checked(path: &Path, opts: LoadOptions) -> Result<Self, String> {
        if opts.half && opts.device == Device::Cpu {
            return Err("half = true needs a CUDA device (float16 inference on CPU is slow and often unsupported); set half = false or device = \"cuda:N\"".into());
        }
        if !path.is_file() {
            return Err(format!("model file {} does not exist", path.display()));
        }
        let sha256 = seispipe::io::npy::sha256_file(path).map_err(|e| e.to_string())?;
        let mut module = CModule::load_on_device(path, opts.device).map_err(|e| {
            format!(
                "model file {} is not a TorchScript model libtorch can load (save it with torch.jit.save of a scripted or traced module): {}",
                path.display(),
                first_line(&e.to_string())
            )
        })?;
        module.set_eval();
        if opts.half {
            module.to(opts.device, Kind::Half, false);
        }
        let m = TorchScriptModel {
            module,
            path: path.to_path_buf(),
            sha256,
            opts,
        };
        let per: usize = m.opts.sample_shape.iter().product();
        m.predict(&vec![0f32; per], 1)
            .map_err(|e| format!("model file {}: {e}", path.display()))?;
        Ok(m)
    }

    /// The model file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lower-case hex SHA-256 of the model file.
    #[must_use]
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    fn transform_input(&self, x: Tensor) -> Tensor {
        let [lo, hi] = self.opts.input_bounds;
        let mm = |t: Tensor| (t - f64::from(lo)) * (2.0 / f64::from(hi - lo)) - 1.0;
        match self.opts.input {
            InputTransform::None => x,
            InputTransform::Log1p => x.sign() * x.abs().log1p(),
            InputTransform::Minmax => mm(x),
            InputTransform::Log1pMinmax => mm(x.sign() * x.abs().log1p()),
        }
    }

    fn transform_output(&self, y: Tensor) -> Tensor {
        let [lo, hi] = self.opts.output_bounds;
        match self.opts.output {
            OutputTransform::Identity => y,
            OutputTransform::Minmax => (y + 1.0) * (0.5 * f64::from(hi - lo)) + f64::from(lo),
            OutputTransform::Sigmoid => y.sigmoid() * f64::from(self.opts.output_scale),
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s)
}

impl TorchScriptModel {
    fn predict_batch(&self, seismic: &[f32], batch: usize) -> Result<Vec<f32>, String> {
        let _guard = tch::no_grad_guard();
        let mut shape = vec![i64::try_from(batch).map_err(|e| e.to_string())?];
        shape.extend(self.opts.sample_shape.iter().map(|&d| d as i64));
        let expected: usize = shape
            .iter()
            .product::<i64>()
            .try_into()
            .unwrap_or(usize::MAX);
        if seismic.len() != expected {
            return Err(format!(
                "{} values given for an input of shape {shape:?}",
                seismic.len()
            ));
        }
        let x = if self.opts.input == InputTransform::None && self.opts.device == Device::Cpu {
            // The model gets its own copy: it may write into its input.
            Tensor::from_slice(seismic).view(shape.as_slice())
        } else {
            let mut strides = vec![1i64; shape.len()];
            for d in (0..shape.len().saturating_sub(1)).rev() {
                strides[d] = strides[d + 1] * shape[d + 1];
            }
            // SAFETY: `seismic` holds exactly `shape`'s elements (checked
            // above), C-contiguous, and outlives this view, which is only
            // read: the input transform or the device copy below makes a new
            // tensor before the model sees it. This saves one copy per batch.
            let view = unsafe {
                Tensor::from_blob(
                    seismic.as_ptr().cast::<u8>(),
                    &shape,
                    &strides,
                    Kind::Float,
                    Device::Cpu,
                )
            };
            view.to_device(self.opts.device)
        };
        let mut x = self.transform_input(x);
        if self.opts.half {
            x = x.to_kind(Kind::Half);
        }
        // The model may write into its input: it must never see the sample
        // memory the view above borrows (one pointer comparison, always on;
        // debug builds also check the samples' bits after the call).
        assert_ne!(
            x.data_ptr().cast::<f32>().cast_const(),
            seismic.as_ptr(),
            "the model input aliases the borrowed sample memory"
        );
        #[cfg(debug_assertions)]
        let before: Vec<u32> = seismic.iter().map(|v| v.to_bits()).collect();
        let y = self
            .module
            .forward_ts(&[x])
            .map_err(|e| format!("the model failed: {}", first_line(&e.to_string())))?;
        #[cfg(debug_assertions)]
        debug_assert!(
            seismic.iter().map(|v| v.to_bits()).eq(before),
            "the model wrote into the borrowed sample memory"
        );
        let size = y.size();
        let b = shape[0];
        let ok = size == [b, 1, 70, 70] || size == [b, 70, 70];
        if !ok {
            return Err(format!(
                "the model returned shape {size:?} for an input of shape {shape:?}; expected ({b}, 1, 70, 70) or ({b}, 70, 70)"
            ));
        }
        let y = self
            .transform_output(y.to_kind(Kind::Float))
            .to_device(Device::Cpu)
            .contiguous();
        let mut out = vec![0f32; batch * VELOCITY_VALUES];
        y.f_copy_data(&mut out, batch * VELOCITY_VALUES)
            .map_err(|e| format!("copying the model output: {e}"))?;
        Ok(out)
    }
}

impl Model for TorchScriptModel {
    fn predict(&self, seismic: &[f32], batch: usize) -> Result<Vec<f32>, ModelError> {
        self.predict_batch(seismic, batch).map_err(ModelError::Run)
    }

    fn describe(&self) -> serde_json::Value {
        json!({
            "file": self.path.display().to_string(),
            "sha256": self.sha256,
            "device": format!("{:?}", self.opts.device),
            "half": self.opts.half,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A traced model that adds 1 to its input in place and returns it:
    /// input (b, 1, 70, 70), output the same.
    fn writes_into_its_input(name: &str) -> PathBuf {
        let example = Tensor::zeros([1, 1, 70, 70], (Kind::Float, Device::Cpu));
        let m = CModule::create_by_tracing("WritesIn", "forward", &[example], &mut |t| {
            let mut x = t[0].shallow_clone();
            let _ = x.g_add_scalar_(1.0);
            vec![x]
        })
        .unwrap();
        let path = std::env::temp_dir().join(format!(
            "seispipe-torch-test-{}-{name}.pt",
            std::process::id()
        ));
        m.save(&path).unwrap();
        path
    }

    fn opts(input: InputTransform) -> LoadOptions {
        LoadOptions {
            device: Device::Cpu,
            half: false,
            input,
            input_bounds: [-2.0, 2.0],
            output: OutputTransform::Identity,
            output_bounds: [1500.0, 4500.0],
            output_scale: 1.0,
            sample_shape: vec![1, 70, 70],
        }
    }

    /// Whatever the input transform (a copy, or a view of the sample that the
    /// transform replaces), a model that writes into its input leaves the
    /// caller's samples untouched and sees the transformed values.
    #[test]
    fn a_model_writing_into_its_input_never_touches_the_samples() {
        let path = writes_into_its_input("samples");
        let seismic: Vec<f32> = (0..2 * 4900)
            .map(|i| (i % 97) as f32 * 0.01 - 0.5)
            .collect();
        for (input, f) in [
            (InputTransform::None, (|x: f32| x) as fn(f32) -> f32),
            (InputTransform::Minmax, |x: f32| 2.0 * (x + 2.0) / 4.0 - 1.0),
        ] {
            let m = TorchScriptModel::load(&path, opts(input)).unwrap();
            let original = seismic.clone();
            let out = m.predict(&seismic, 2).unwrap();
            assert_eq!(seismic, original, "{input:?}: the samples changed");
            for (o, &x) in out.iter().zip(&seismic) {
                assert!(
                    (o - (f(x) + 1.0)).abs() < 1e-5,
                    "{input:?}: {o} vs {}",
                    f(x) + 1.0
                );
            }
        }
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn bad_batches_and_devices_are_named() {
        let path = writes_into_its_input("errors");
        let m = TorchScriptModel::load(&path, opts(InputTransform::None)).unwrap();
        let e = m.predict(&[0.0; 10], 1).unwrap_err().to_string();
        assert!(
            e.contains("10 values") && e.contains("[1, 1, 70, 70]"),
            "{e}"
        );
        assert!(resolve_device("gpu")
            .unwrap_err()
            .to_string()
            .contains("\"auto\", \"cpu\" or \"cuda:N\""));
        assert_eq!(resolve_device("cpu").unwrap(), Device::Cpu);
        let mut half = opts(InputTransform::None);
        half.half = true;
        assert!(TorchScriptModel::load(&path, half)
            .err()
            .unwrap()
            .to_string()
            .contains("CUDA"));
        let missing =
            TorchScriptModel::load(Path::new("/nonexistent/m.pt"), opts(InputTransform::None));
        assert!(missing
            .err()
            .unwrap()
            .to_string()
            .contains("does not exist"));
        std::fs::remove_file(path).unwrap();
    }
}
