//! `seispipe make-demo-model`: the small model the demo pseudo-labels with,
//! made by the project itself so nothing is downloaded. A tiny `tch::nn`
//! convolutional net (time axis averaged 10:1, two 3×3 convolutions, resized
//! to 70 × 70, `tanh` output) is fitted briefly on labelled shards, then
//! exported by tracing (`CModule::create_by_tracing`) to a TorchScript file
//! that loads in Python's `torch.jit.load` as well.
//!
//! Its contract, which the pipeline declares: input `log1p` (sign·log1p) of the raw
//! (5, 1000, 70) seismic; output in [−1, 1], `minmax` back to 1500–4500 m/s.
//! It is a demonstration model: a few seconds of fitting on a few samples
//! learns little more than the mean velocity profile.

use std::path::{Path, PathBuf};

use tch::nn::{self, Module, OptimizerConfig};
use tch::{CModule, Device, Kind, Tensor};

use seispipe::io::atomic::Partial;
use seispipe::io::layout::InputSet;
use seispipe::pipeline::spec::{InputSpec, LabelMode, Policy};
use seispipe::sample::SEISMIC_SHAPE;

/// What `make-demo-model` did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// The model file written.
    pub path: PathBuf,
    /// Samples it was fitted on.
    pub samples: usize,
    /// Optimiser steps.
    pub steps: usize,
    /// Mean absolute error (m/s) on the fitting samples before and after.
    pub mae_before: f64,
    /// See `mae_before`.
    pub mae_after: f64,
}

/// Options of [`make_demo_model`].
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Labelled shards to fit on (directory, file or glob).
    pub data: String,
    /// At most this many samples, spread evenly over the inputs.
    pub max_samples: usize,
    /// Adam steps (batches of 8).
    pub steps: usize,
    /// Seed of the weight initialisation and batch order.
    pub seed: u64,
}

fn net(vs: &nn::Path) -> impl Module {
    let c = nn::ConvConfig {
        padding: 1,
        ..Default::default()
    };
    nn::seq()
        .add_fn(|x| x.avg_pool2d([10, 1], [10, 1], [0, 0], false, true, None::<i64>))
        .add(nn::conv2d(vs / "c1", 5, 16, 3, c))
        .add_fn(Tensor::relu)
        .add_fn(|x| x.adaptive_avg_pool2d([70, 70]))
        .add(nn::conv2d(vs / "c2", 16, 16, 3, c))
        .add_fn(Tensor::relu)
        .add(nn::conv2d(vs / "c3", 16, 1, 1, nn::ConvConfig::default()))
        .add_fn(Tensor::tanh)
}

fn sign_log1p(x: &Tensor) -> Tensor {
    x.sign() * x.abs().log1p()
}

/// Fit the demo net on labelled shards under `opts.data` and save it, traced,
/// to `out` (atomically: written under a temporary name, fsynced, then renamed).
///
/// # Errors
/// No labelled inputs, unreadable inputs, or libtorch failures.
pub fn make_demo_model(out: &Path, opts: &DemoOptions) -> seispipe::Result<DemoReport> {
    let fail = |reason: String| seispipe::Error::Layout {
        path: out.to_path_buf(),
        reason,
    };
    let inputs = InputSet::discover(&InputSpec {
        path: opts.data.clone(),
        labels: LabelMode::Required,
        on_bad_file: Policy::Skip,
        on_nonfinite: Policy::Skip,
    })?;
    let total = inputs.total();
    if total == 0 || !inputs.labelled {
        return Err(fail(format!(
            "make-demo-model needs labelled shards (data*/model* pairs) under {}",
            opts.data
        )));
    }
    let n = opts.max_samples.clamp(1, total);
    let per: usize = SEISMIC_SHAPE.iter().product();
    let mut xs = Vec::with_capacity(n * per);
    let mut ys = Vec::with_capacity(n * 4900);
    for k in 0..n {
        let (f, i) = inputs.locate(k * total / n);
        xs.extend(inputs.read_seismic(f, i)?.iter().copied());
        let v = inputs
            .read_velocity(f, i)?
            .ok_or_else(|| fail("a labelled input has no velocity map".into()))?;
        ys.extend(v.iter().copied());
    }
    tch::manual_seed(i64::try_from(opts.seed % (1 << 62)).unwrap_or(0));
    let n64 = i64::try_from(n).expect("sample count fits i64");
    let x = sign_log1p(&Tensor::from_slice(&xs).view([n64, 5, 1000, 70]));
    let y = (Tensor::from_slice(&ys).view([n64, 1, 70, 70]) - 1500.0) / 1500.0 - 1.0;
    let vs = nn::VarStore::new(Device::Cpu);
    let model = net(&vs.root());
    let mae = |model: &dyn Module| -> f64 {
        let _g = tch::no_grad_guard();
        let p = model.forward(&x);
        ((p - &y).abs().mean(Kind::Float) * 1500.0).double_value(&[])
    };
    let mae_before = mae(&model);
    let mut opt = nn::Adam::default()
        .build(&vs, 3e-3)
        .map_err(|e| fail(e.to_string()))?;
    let batch = 8.min(n64);
    for step in 0..opts.steps {
        let perm = Tensor::randperm(n64, (Kind::Int64, Device::Cpu));
        let idx = perm.narrow(0, 0, batch);
        let loss = (model.forward(&x.index_select(0, &idx)) - y.index_select(0, &idx))
            .abs()
            .mean(Kind::Float);
        opt.backward_step(&loss);
        let _ = step;
    }
    let mae_after = mae(&model);
    let mut vs = vs;
    vs.freeze();
    let example = Tensor::zeros([1, 5, 1000, 70], (Kind::Float, Device::Cpu));
    let traced = CModule::create_by_tracing("SeispipeDemoNet", "forward", &[example], &mut |t| {
        vec![model.forward(&t[0])]
    })
    .map_err(|e| fail(format!("tracing the demo model: {e}")))?;
    if let Some(d) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| seispipe::Error::io(d, "create directory", e))?;
    }
    // libtorch writes the file itself, by name: save under the temporary
    // name, then reopen it only to fsync it before the rename.
    let partial = Partial::new(out);
    traced
        .save(partial.tmp())
        .map_err(|e| fail(format!("saving the traced model: {e}")))?;
    let saved = std::fs::File::open(partial.tmp())
        .map_err(|e| seispipe::Error::io(partial.tmp(), "open", e))?;
    partial.commit(saved)?;
    Ok(DemoReport {
        path: out.to_path_buf(),
        samples: n,
        steps: opts.steps,
        mae_before,
        mae_after,
    })
}
