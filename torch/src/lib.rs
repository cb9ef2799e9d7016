//! The libtorch half of seispipe: TorchScript models ([`torchscript`]), the
//! demo model ([`demo`]), the batched wave simulation on CPU or CUDA
//! ([`simulate`]) and [`Torch`], the model backend the
//! `seispipe-torch` binary passes to `seispipe::app::main_with`. It is a
//! crate of its own so that the `seispipe` binary never links libtorch and
//! starts in milliseconds; see `seispipe::app` for the hand-over.

pub mod demo;
pub mod simulate;
pub mod torchscript;

use std::sync::Arc;

use seispipe::model::{
    Backend, DemoModelRequest, LoadRequest, Model, ModelBackend, ModelError, Simulator,
};

use torchscript::{resolve_device, LoadOptions, TorchScriptModel};

/// The libtorch model backend.
pub struct Torch;

/// The backend, ready for `seispipe::app::main_with`.
#[must_use]
pub fn backend() -> Backend {
    Backend(Arc::new(Torch))
}

impl ModelBackend for Torch {
    fn load_models(&self, req: &LoadRequest) -> Result<Vec<Box<dyn Model>>, ModelError> {
        load_models(req)
    }

    fn make_demo_model(&self, req: &DemoModelRequest) -> seispipe::Result<String> {
        make_demo_model(req)
    }

    fn cuda_device_count(&self) -> usize {
        if tch::Cuda::is_available() {
            usize::try_from(tch::Cuda::device_count()).unwrap_or(0)
        } else {
            0
        }
    }

    fn simulator(&self, device: &str) -> Result<Box<dyn Simulator>, ModelError> {
        Ok(Box::new(simulate::TchSimulator::new(device)?))
    }
}

/// Load every model of a pseudo_label stage through libtorch.
///
/// # Errors
/// A bad device, a missing or corrupt model, a pinned SHA-256 that differs.
pub fn load_models(req: &LoadRequest) -> Result<Vec<Box<dyn Model>>, ModelError> {
    let device = resolve_device(&req.device)?;
    if let Some(t) = req.torch_threads {
        tch::set_num_threads(i32::try_from(t).unwrap_or(i32::MAX));
    }
    let half = req.half && device != tch::Device::Cpu;
    if req.half && req.device != "auto" && !half {
        return Err(ModelError::Device(
            "half = true needs a CUDA device; set half = false or device = \"cuda:N\"".into(),
        ));
    }
    let opts = LoadOptions {
        device,
        half,
        input: req.input_transform,
        input_bounds: req.input_bounds,
        output: req.output_transform,
        output_bounds: req.output_bounds,
        output_scale: req.output_scale,
        sample_shape: req.sample_shape.clone(),
    };
    let mut out: Vec<Box<dyn Model>> = Vec::new();
    for (i, m) in req.models.iter().enumerate() {
        let model = TorchScriptModel::load(&m.path, opts.clone())
            .map_err(|e| ModelError::Model(format!("models[{i}]: {e}")))?;
        if let Some(want) = &m.sha256 {
            if !want.eq_ignore_ascii_case(model.sha256()) {
                return Err(ModelError::Model(format!(
                    "models[{i}]: {} has SHA-256 {}, but the pipeline pins {want}",
                    m.path.display(),
                    model.sha256()
                )));
            }
        }
        out.push(Box::new(model));
    }
    Ok(out)
}

/// `seispipe make-demo-model`: fit and save the demo model (see [`demo`]).
///
/// # Errors
/// No labelled inputs, or a libtorch failure.
pub fn make_demo_model(req: &DemoModelRequest) -> seispipe::Result<String> {
    let r = demo::make_demo_model(
        &req.out,
        &demo::DemoOptions {
            data: req.data.clone(),
            max_samples: req.max_samples,
            steps: req.steps,
            seed: req.seed,
        },
    )?;
    Ok(format!(
        "wrote {}: fitted on {} samples for {} steps, mean abs. error {:.0} → {:.0} m/s (input log1p, output minmax 1500–4500)\n",
        r.path.display(),
        r.samples,
        r.steps,
        r.mae_before,
        r.mae_after
    ))
}
