//! Command line + pipeline file → one resolved value the rest of the code trusts.

use std::path::Path;

use crate::error::Result;
use crate::io::layout::InputSet;
use crate::pipeline::build::{self, Pipeline};
use crate::pipeline::spec;

/// A pipeline resolved against its inputs.
pub struct Resolved {
    /// Built pipeline.
    pub pipeline: Pipeline,
    /// Discovered inputs (headers only).
    pub inputs: InputSet,
}

/// Load the pipeline file with overrides, check it, discover inputs (reading
/// headers only) and build every stage.
///
/// # Errors
/// Any configuration or input-layout problem, before any sample is read.
/// `models` is the libtorch backend when this process has one.
pub fn resolve(
    pipeline_file: &Path,
    overrides: &[String],
    models: Option<crate::model::Backend>,
) -> Result<Resolved> {
    let file = pipeline_file.display().to_string();
    let spec = spec::load(pipeline_file, overrides)?;
    build::check_top_level(&spec, &file)?;
    let inputs = InputSet::discover(&spec.input)?;
    let pipeline = build::build(spec, &file, inputs.labelled, models)?;
    Ok(Resolved { pipeline, inputs })
}

/// Rebuild the pipeline an output was started with, from its
/// `.seispipe/run.json` (for `seispipe merge`): the same spec, paths as
/// resolved then, inputs discovered again.
///
/// # Errors
/// No run in `out_dir`, a state file this build cannot read, or any
/// configuration or input-layout problem.
pub fn resolve_recorded(
    out_dir: &Path,
    models: Option<crate::model::Backend>,
) -> Result<(Resolved, String)> {
    let origin = crate::pipeline::resume::run_origin(out_dir)?;
    let spec: spec::PipelineSpec =
        serde_json::from_value(origin.pipeline.clone()).map_err(|e| crate::error::Error::Resume {
            dir: out_dir.to_path_buf(),
            reason: format!(
                "the pipeline recorded in .seispipe/run.json cannot be read by this build ({e}); merge with the build that ran it"
            ),
        })?;
    let file = origin.pipeline_file.clone();
    build::check_top_level(&spec, &file)?;
    let inputs = InputSet::discover(&spec.input)?;
    let pipeline = build::build(spec, &file, inputs.labelled, models)?;
    Ok((Resolved { pipeline, inputs }, origin.fingerprint))
}
