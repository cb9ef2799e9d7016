//! The libtorch half of seispipe: TorchScript models ([`torchscript`]), the
//! demo model ([`demo`]) and the backend the `seispipe-torch` binary installs
//! into the `seispipe` library ([`install`]). It is a crate of its own so
//! that the `seispipe` binary never links libtorch and starts in
//! milliseconds; see `seispipe::app` for the hand-over.

pub mod demo;
pub mod torchscript;

use seispipe::cli::DemoModelArgs;
use seispipe::model::{Model, TorchBackend};
use seispipe::stage::pseudo_label::{resolve_path, PseudoLabelSpec};
use seispipe::stage::BuildEnv;

use torchscript::{resolve_device, LoadOptions, TorchScriptModel};

/// Install the libtorch backend into this process's `seispipe` library.
pub fn install() {
    seispipe::model::install_torch_backend(TorchBackend {
        load_models,
        make_demo_model,
    });
}

/// Load every model through libtorch (installed as
/// [`seispipe::model::TorchBackend::load_models`]).
///
/// # Errors
/// A bad device, a missing or corrupt model, a pinned SHA-256 that differs.
pub fn load_models(spec: &PseudoLabelSpec, env: &BuildEnv) -> Result<Vec<Box<dyn Model>>, String> {
    let device = resolve_device(&spec.device)?;
    if let Some(t) = spec.torch_threads {
        tch::set_num_threads(i32::try_from(t).unwrap_or(i32::MAX));
    }
    let half = spec.half && device != tch::Device::Cpu;
    if spec.half && spec.device != "auto" && !half {
        return Err(
            "half = true needs a CUDA device; set half = false or device = \"cuda:N\"".into(),
        );
    }
    let opts = LoadOptions {
        device,
        half,
        input: spec.input_transform,
        input_bounds: spec.input_bounds.unwrap_or([-1.0, 1.0]),
        output: spec.output_transform,
        output_bounds: spec.output_bounds,
        output_scale: spec.output_scale.unwrap_or(1.0),
        sample_shape: env.shape.clone(),
    };
    let mut out: Vec<Box<dyn Model>> = Vec::new();
    for (i, m) in spec.models.iter().enumerate() {
        let path = resolve_path(&env.pipeline_dir, &m.path);
        let model =
            TorchScriptModel::load(&path, opts.clone()).map_err(|e| format!("models[{i}]: {e}"))?;
        if let Some(want) = &m.sha256 {
            if !want.eq_ignore_ascii_case(model.sha256()) {
                return Err(format!(
                    "models[{i}]: {} has SHA-256 {}, but the pipeline pins {want}",
                    path.display(),
                    model.sha256()
                ));
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
pub fn make_demo_model(args: &DemoModelArgs) -> seispipe::Result<String> {
    let r = demo::make_demo_model(
        &args.out,
        &demo::DemoOptions {
            data: args.data.clone(),
            max_samples: args.max_samples,
            steps: args.steps,
            seed: args.seed,
        },
    )?;
    Ok(format!(
        "wrote {}: fitted on {} samples for {} steps, mean abs. error {:.0} → {:.0} m/s (input sign_log1p, output minmax 1500–4500)\n",
        r.path.display(),
        r.samples,
        r.steps,
        r.mae_before,
        r.mae_after
    ))
}
