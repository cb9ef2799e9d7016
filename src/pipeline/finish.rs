//! The end of a run whose shards are all done: let each batch stage write its
//! extra files, assemble the manifest (pipeline, fingerprint, versions, layout,
//! inputs and every shard with its provenance) and write it atomically.

use std::path::Path;

use crate::error::{Error, Result};
use crate::io::atomic;
use crate::io::layout::InputSet;
use crate::io::manifest::{self, InputEntry, Manifest, ShardRecord, MANIFEST_NAME};
use crate::io::npy;
use crate::pipeline::plan::Plan;
use crate::pipeline::resume::versions;
use crate::pipeline::summary::Summary;
use crate::rng::RNG_DERIVATION;
use crate::sample::VELOCITY_SHAPE;

/// The note a manifest carries when the run resumed an unversioned output.
const UNVERSIONED_RESUME: &str = "resumed with --accept-unversioned over an output that recorded no algorithm versions: shards written before may come from code that computed different bytes";

/// The file in `OUT/.seispipe/` that says some run resumed this output with
/// `--accept-unversioned`.
pub(super) const UNVERSIONED_MARK: &str = "unversioned-resume";

/// What the run determined, for the manifest.
pub(super) struct Outcome<'a> {
    /// The run fingerprint (see [`super::resume::fingerprint`]).
    pub fingerprint: String,
    /// The counts of the run, over all shards.
    pub summary: &'a Summary,
    /// Every shard of the output, in order.
    pub shards: Vec<ShardRecord>,
    /// The output directory.
    pub out_dir: &'a Path,
}

/// Let the batch stages finish, then write `manifest.json`.
pub(super) fn write_manifest(plan: &Plan, inputs: &InputSet, outcome: Outcome<'_>) -> Result<()> {
    let out_dir = outcome.out_dir;
    let shards = outcome.shards;
    let mut extra_files = Vec::new();
    for st in &plan.stages {
        let files = st
            .spec
            .finish(out_dir, &shards, &inputs.skipped)
            .map_err(|e| Error::Layout {
                path: out_dir.to_path_buf(),
                reason: format!("{} could not finish: {e}", st.at),
            })?;
        extra_files.extend(files);
    }
    let mut m = draft_manifest(plan, inputs, out_dir);
    m.fingerprint = outcome.fingerprint;
    m.samples_in = outcome.summary.samples_in;
    m.samples_out = outcome.summary.samples_out;
    m.samples_dropped = outcome.summary.samples_dropped;
    m.shards = shards;
    m.extra_files = extra_files;
    atomic::write_atomic(
        &out_dir.join(MANIFEST_NAME),
        serde_json::to_string_pretty(&m)
            .expect("manifest serialises")
            .as_bytes(),
    )
}

/// The manifest of a run of `plan` over `inputs` into `out_dir`, without
/// what only the run's end knows (fingerprint, counts, shards, extra
/// files): what previews drawn during the run read (see
/// [`crate::report::Drafts`]).
pub(super) fn draft_manifest(plan: &Plan, inputs: &InputSet, out_dir: &Path) -> Manifest {
    Manifest {
        format: manifest::MANIFEST_FORMAT.into(),
        seispipe_version: env!("CARGO_PKG_VERSION").into(),
        pipeline_file: plan.file.clone(),
        pipeline: serde_json::to_value(&plan.spec).expect("spec serialises"),
        fingerprint: String::new(),
        versions: Some(versions(plan)),
        unversioned_resume: out_dir
            .join(manifest::STATE_DIR)
            .join(UNVERSIONED_MARK)
            .is_file()
            .then(|| UNVERSIONED_RESUME.to_string()),
        seed: plan.spec.seed,
        rng: RNG_DERIVATION.into(),
        layout: "openfwi".into(),
        sample_shape: plan.out_shape.clone(),
        label_shape: plan.out_labels.then(|| VELOCITY_SHAPE.to_vec()),
        dtype: npy::descr(plan.spec.output.dtype).into(),
        stage_info: plan
            .stages
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.planned.info.clone().map(|v| (i.to_string(), v)))
            .collect(),
        input_root: inputs.root.display().to_string(),
        inputs: input_entries(inputs),
        skipped_files: inputs.skipped.clone(),
        samples_in: 0,
        samples_out: 0,
        samples_dropped: 0,
        shards: Vec::new(),
        extra_files: Vec::new(),
        report: Some(manifest::REPORT_NAME.into()),
    }
}

/// The manifest's list of input files.
fn input_entries(inputs: &InputSet) -> Vec<InputEntry> {
    inputs
        .files
        .iter()
        .map(|f| {
            InputEntry {
                path: f.rel.clone(),
                label: f.label.as_ref().map(|l| match &f.source {
                    // A Kaggle part's label is named as in the output it came
                    // from, like its data file (`rel`).
                    Some(src) if src.part => f.rel.replacen("data/data", "model/model", 1),
                    _ => l
                        .strip_prefix(&inputs.root)
                        .unwrap_or(l)
                        .display()
                        .to_string(),
                }),
                samples: f.samples,
                dtype: npy::descr(f.data_header.dtype).to_string(),
            }
        })
        .collect()
}
