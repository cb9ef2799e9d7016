//! The Kaggle steps of `seispipe check`, `seispipe run` and `seispipe
//! package`: turning a pipeline, its plan and the command-line flags into the
//! plain data that [`crate::kaggle`] takes (settings, the planned shards, the
//! output folder), so that `kaggle` depends on neither `pipeline` nor `cli`.

use std::path::Path;

use crate::cli::PackageArgs;
use crate::error::{Error, Result};
use crate::io::manifest::Manifest;
use crate::kaggle::{
    self, ByteSize, KaggleSpec, Licenses, LinkMode, PackOptions, PackOutcome, PlannedOutput,
    PlannedShard, Settings,
};
use crate::pipeline::executor::ShardPlan;
use crate::pipeline::plan::Plan;

/// The `--owner … --slug …` settings of `seispipe package`.
pub(super) fn spec_from_cli(a: &PackageArgs) -> KaggleSpec {
    let mode = if a.copy {
        Some(LinkMode::Copy)
    } else if a.r#move {
        Some(LinkMode::Move)
    } else if a.link {
        Some(LinkMode::Link)
    } else {
        None
    };
    KaggleSpec {
        into: a.into.as_ref().map(|p| p.display().to_string()),
        owner: a.owner.clone(),
        slug: a.slug.clone(),
        title: a.title.clone(),
        subtitle: a.subtitle.clone(),
        license: (!a.license.is_empty()).then(|| Licenses::Many(a.license.clone())),
        max_dataset_bytes: a.max_dataset_bytes.clone().map(ByteSize::Text),
        max_files: a.max_files,
        mode,
        after_run: None,
        wheel: a.wheel.as_ref().map(|p| p.display().to_string()),
    }
}

/// `seispipe package OUT_DIR …`: the output's own `[kaggle]` section (if its
/// pipeline had one) overlaid by the flags.
///
/// # Errors
/// See [`crate::kaggle::package`].
pub(super) fn package(args: &PackageArgs) -> Result<String> {
    let origin = "seispipe package";
    let from_manifest: KaggleSpec = Manifest::load(&args.out_dir)
        .ok()
        .and_then(|m| m.pipeline.get("kaggle").cloned())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    let spec = from_manifest.overlaid(&spec_from_cli(args));
    let s = Settings::resolve(&spec, origin, &args.out_dir)?;
    let opts = PackOptions {
        rehash: !args.sizes_only,
        dry_run: args.dry_run,
    };
    Ok(kaggle::package(&args.out_dir, &s, origin, &opts)?.text)
}

/// What the run of `pipeline` by `plan` will write, as [`kaggle::predict`]
/// needs it: every shard's samples and file bytes (headers included).
fn planned_output(pipeline: &Plan, plan: &ShardPlan) -> PlannedOutput {
    let shards = plan
        .all()
        .map(|j| PlannedShard {
            index: j.number(),
            samples: plan.shard_range(j).len(),
            bytes: plan.shard_bytes(j),
            // data (unless output.data = false), labels, provenance
            files: 1 + usize::from(pipeline.spec.output.data) + usize::from(pipeline.out_labels),
        })
        .collect();
    PlannedOutput {
        shards,
        stages: pipeline.stages.len(),
        spec_bytes: serde_json::to_string_pretty(&pipeline.spec).map_or(0, |t| t.len()) as u64,
    }
}

/// The settings of a pipeline's `[kaggle]` section, if it has one, and
/// whether the run packages its output.
///
/// # Errors
/// See [`Settings::for_run`].
fn pipeline_settings(pipeline: &Plan) -> Result<Option<(Settings, bool)>> {
    let Some(k) = &pipeline.spec.kaggle else {
        return Ok(None);
    };
    let out_dir = Path::new(&pipeline.spec.output.dir);
    Settings::for_run(k, &pipeline.file, out_dir).map(Some)
}

/// `seispipe check`: the predicted parts of a pipeline with `[kaggle]`.
///
/// # Errors
/// Settings Kaggle would refuse, or a shard larger than a part.
pub(super) fn check_text(pipeline: &Plan, plan: &ShardPlan) -> Result<Option<String>> {
    let Some((s, after_run)) = pipeline_settings(pipeline)? else {
        return Ok(None);
    };
    let mut t = kaggle::predict(&planned_output(pipeline, plan), &s, &pipeline.file)?;
    if !after_run {
        t.push_str("  (after_run = false: package with `seispipe package` when the run is done)\n");
    }
    Ok(Some(t))
}

/// Before `seispipe run`: validate the `[kaggle]` section against the plan, so
/// a bad slug fails now rather than after days of work. Returns the settings
/// when the run should package itself at the end.
///
/// # Errors
/// See [`check_text`].
pub(super) fn before_run(pipeline: &Plan, plan: &ShardPlan) -> Result<Option<Settings>> {
    let Some((s, after_run)) = pipeline_settings(pipeline)? else {
        return Ok(None);
    };
    kaggle::predict(&planned_output(pipeline, plan), &s, &pipeline.file)?;
    Ok(after_run.then_some(s))
}

/// After a successful `seispipe run`: package the output (file sizes are
/// checked; the run has just hashed every file).
///
/// # Errors
/// See [`crate::kaggle::package`].
pub(super) fn after_run(pipeline: &Plan, s: &Settings) -> Result<PackOutcome> {
    let dir = &pipeline.spec.output.dir;
    kaggle::package(Path::new(dir), s, &pipeline.file, &PackOptions::default()).map_err(|e| match e {
        // Say that the output itself is complete, and how to retry.
        Error::Config { file, reason } => Error::Config {
            file,
            reason: format!(
                "the run finished and {dir} is complete, but packaging for Kaggle failed: {reason} (then run `seispipe package {dir}`)"
            ),
        },
        other => other,
    })
}
