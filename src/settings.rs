//! Command line + pipeline file → one resolved value the rest of the code trusts.

use std::path::Path;

use crate::error::Result;
use crate::io::layout::InputSet;
use crate::pipeline::plan::{self, Plan};
use crate::pipeline::spec;

/// A pipeline planned against its inputs.
pub struct Resolved {
    /// The plan, with the files it names (models) identified.
    pub plan: Plan,
    /// Discovered inputs (headers only).
    pub inputs: InputSet,
}

/// Load the pipeline file with overrides, check it, discover inputs (reading
/// headers only), plan every stage and identify the models it names. No
/// model is loaded and no device is touched.
///
/// # Errors
/// Any configuration or input-layout problem, before any sample is read.
pub fn resolve(pipeline_file: &Path, overrides: &[String]) -> Result<Resolved> {
    let file = pipeline_file.display().to_string();
    let spec = spec::load(pipeline_file, overrides)?;
    plan_over_inputs(spec, &file)
}

fn plan_over_inputs(spec: spec::PipelineSpec, file: &str) -> Result<Resolved> {
    plan::check_top_level(&spec, file)?;
    let inputs = InputSet::discover(&spec.input)?;
    let mut plan = plan::plan(spec, file, inputs.labelled)?;
    plan::identify(&mut plan)?;
    Ok(Resolved { plan, inputs })
}

/// Plan again the pipeline an output was started with, from its
/// `.seispipe/run.json` (for `seispipe merge`): the same spec, paths as
/// resolved then, inputs discovered again.
///
/// # Errors
/// No run in `out_dir`, a state file this build cannot read, or any
/// configuration or input-layout problem.
pub fn resolve_recorded(out_dir: &Path) -> Result<(Resolved, crate::pipeline::resume::RunOrigin)> {
    let origin = crate::pipeline::resume::run_origin(out_dir)?;
    let spec: spec::PipelineSpec =
        serde_json::from_value(origin.pipeline.clone()).map_err(|e| crate::error::Error::Resume {
            dir: out_dir.to_path_buf(),
            reason: format!(
                "the pipeline recorded in .seispipe/run.json cannot be read by this build ({e}); merge with the build that ran it"
            ),
        })?;
    let resolved = plan_over_inputs(spec, &origin.pipeline_file)?;
    Ok((resolved, origin))
}

/// What a command gets from the process it runs in: the model backend, how
/// free space is measured, and the settings of its environment — each read
/// once, at start, by `crate::app`, and passed down.
#[derive(Clone)]
pub struct Host {
    /// The libtorch backend when this process has one (`seispipe-torch`).
    pub models: Option<crate::model::Backend>,
    /// How free space is measured.
    pub disk: std::sync::Arc<dyn crate::io::disk::DiskProbe>,
    /// `SEISPIPE_FD_KERNEL`, `SEISPIPE_ISA` and `SEISPIPE_SUBNORMALS`: the
    /// time-loop kernel, the vector copy and how it meets subnormal values
    /// (same bits either way).
    pub compute: crate::cpu::Compute,
    /// `SEISPIPE_IO` (`auto`, `direct`, `buffered`; `SEISPIPE_DIRECT_IO=0|1`
    /// is read as buffered | direct): how shards reach the disk when
    /// `--io` does not say.
    pub io: crate::io::mode::IoMode,
}

impl Host {
    /// The host of a process with `models` and `disk`, its settings read
    /// from `get` (the environment); an unknown value is refused here, the
    /// one place that reads them.
    ///
    /// # Errors
    /// A value of `SEISPIPE_FD_KERNEL`, `SEISPIPE_ISA`,
    /// `SEISPIPE_SUBNORMALS` or `SEISPIPE_DIRECT_IO` that names nothing (or an instruction set this
    /// CPU lacks), with the allowed ones.
    pub fn read(
        models: Option<crate::model::Backend>,
        disk: std::sync::Arc<dyn crate::io::disk::DiskProbe>,
        get: &dyn Fn(&str) -> Option<String>,
    ) -> crate::error::Result<Host> {
        use crate::cpu::{Compute, Isa, Subnormals};
        use crate::io::mode::IoMode;
        use crate::physics::fd::Kernel;
        let kernel = Kernel::from_name(&get(Kernel::ENV).unwrap_or_default())
            .map_err(|e| crate::error::Error::config("environment", e))?;
        let isa = match get(Compute::ISA_ENV).as_deref() {
            None | Some("") => Isa::detect(),
            Some(name) => {
                Isa::from_name(name).map_err(|e| crate::error::Error::config("environment", e))?
            }
        };
        let subnormals = Subnormals::from_name(&get(Subnormals::ENV).unwrap_or_default())
            .map_err(|e| crate::error::Error::config("environment", e))?;
        let set = |name: &str| get(name).filter(|v| !v.is_empty());
        let io = match (set(IO_ENV).as_deref(), set(DIRECT_IO_ENV).as_deref()) {
            (None | Some("auto"), None) | (Some("auto"), _) => IoMode::Auto,
            (Some("direct"), _) | (None, Some("1")) => IoMode::Direct,
            (Some("buffered"), _) | (None, Some("0")) => IoMode::Buffered,
            (Some(other), _) => {
                return Err(crate::error::Error::config(
                    "environment",
                    format!("{IO_ENV}={other:?} is not a setting; expected \"auto\" (the default: tried on the run's first shards), \"direct\" or \"buffered\""),
                ))
            }
            (None, Some(other)) => {
                return Err(crate::error::Error::config(
                    "environment",
                    format!("{DIRECT_IO_ENV}={other:?} is not a setting; expected \"0\" (write through the page cache) or \"1\" (direct I/O where the filesystem takes it); {IO_ENV} or --io also choose \"auto\", the default"),
                ))
            }
        };
        Ok(Host {
            models,
            disk,
            compute: Compute {
                kernel,
                isa,
                subnormals,
            },
            io,
        })
    }
}

impl Host {
    /// What stages are made ready with in this process.
    #[must_use]
    pub fn stage_env(&self) -> crate::stage::RunEnv<'_> {
        crate::stage::RunEnv {
            models: self.models.as_ref(),
            compute: self.compute,
        }
    }
}

/// The environment variable that forces direct (`1`) or buffered (`0`) writes.
pub const DIRECT_IO_ENV: &str = "SEISPIPE_DIRECT_IO";

/// The environment variable that sets `--io`'s default.
pub const IO_ENV: &str = "SEISPIPE_IO";
