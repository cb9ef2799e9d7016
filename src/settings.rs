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
