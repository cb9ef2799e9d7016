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
