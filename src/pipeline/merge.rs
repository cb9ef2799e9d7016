//! `seispipe merge`: the end of a partitioned run. Once every partition has
//! finished, the shards recorded in all partitions' journals are checked and
//! the manifest is written exactly as a single-process run writes it (the same
//! function, the same records), so a merged output is byte-identical to the
//! single-machine run. Nothing is written unless every shard is there.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::layout::InputSet;
use crate::io::manifest::{Shard, ShardRecord, STATE_DIR};
use crate::io::npy;
use crate::pipeline::claim;
use crate::pipeline::finish::{write_manifest, Outcome};
use crate::pipeline::partition::Partition;
use crate::pipeline::plan::Plan;
use crate::pipeline::resume::{fingerprint, finished_shards, same_run, RunOrigin};
use crate::pipeline::shards::ShardPlan;
use crate::pipeline::summary::Summary;

/// Merge the partitions of the output in `out_dir`, started by `pipeline`
/// over `inputs` as its `run.json` (`origin`) records. Only plans are read:
/// no model is loaded, no device touched.
///
/// # Errors
/// The inputs or code changed since the run started, a partition is still
/// running, shards are missing or damaged (each unfinished partition named),
/// or the manifest cannot be written.
pub fn merge(
    pipeline: &Plan,
    inputs: &InputSet,
    out_dir: &Path,
    origin: &RunOrigin,
) -> Result<Summary> {
    let started = std::time::Instant::now();
    let fail = |reason: String| Error::Resume {
        dir: out_dir.to_path_buf(),
        reason,
    };
    let (fp, fp_value) = fingerprint(pipeline, inputs);
    same_run(out_dir, origin, &fp, &fp_value).map_err(|e| match e {
        Error::Resume { reason, .. } => fail(format!(
            "cannot be merged by this build: it {reason}; merge with the build and inputs that ran it"
        )),
        other => other,
    })?;
    let live = claim::running(out_dir)?;
    if !live.is_empty() {
        return Err(fail(format!(
            "cannot be merged while partitions are still running: {}",
            live.join(", ")
        )));
    }
    let plan = ShardPlan::new(pipeline, inputs);
    let done = finished_shards(out_dir, plan.shards)?;
    let damaged = damaged_shards(out_dir, pipeline, &plan, &done);
    let missing: Vec<Shard> = plan
        .all()
        .filter(|j| !done.contains_key(j) || damaged.contains_key(j))
        .collect();
    if !missing.is_empty() {
        return Err(fail(unfinished_text(out_dir, &plan, &missing, &damaged)));
    }
    let shards: Vec<ShardRecord> = done.into_values().collect();
    let mut summary = Summary {
        samples_in: plan.samples_in,
        shards_resumed: shards.len(),
        files_skipped: inputs.skipped.len(),
        samples_out: shards.iter().map(|s| s.samples).sum(),
        samples_dropped: shards.iter().map(|s| s.dropped.len()).sum(),
        bytes_total: shards.iter().flat_map(|s| &s.files).map(|f| f.bytes).sum(),
        ..Summary::default()
    };
    write_manifest(
        pipeline,
        inputs,
        Outcome {
            fingerprint: fp,
            summary: &summary,
            shards,
            out_dir,
        },
    )?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Journalled shards whose data or label file does not hold the shape the
/// journal recorded (a header check, O(shards)), with what is wrong.
fn damaged_shards(
    out_dir: &Path,
    pipeline: &Plan,
    plan: &ShardPlan,
    done: &BTreeMap<Shard, ShardRecord>,
) -> BTreeMap<Shard, String> {
    let mut bad = BTreeMap::new();
    for (&i, rec) in done {
        let expect_files =
            usize::from(pipeline.spec.output.data) + usize::from(pipeline.out_labels);
        if rec.files.len() != expect_files {
            bad.insert(
                i,
                format!(
                    "{} files recorded, {expect_files} expected",
                    rec.files.len()
                ),
            );
            continue;
        }
        for f in &rec.files {
            let p = out_dir.join(&f.path);
            match npy::read_header(&p) {
                Ok(h) if h.shape == f.shape => {}
                Ok(h) => {
                    bad.insert(
                        i,
                        format!(
                            "{} has shape {:?}, the journal recorded {:?}",
                            f.path, h.shape, f.shape
                        ),
                    );
                }
                Err(e) => {
                    bad.insert(i, e.to_string());
                }
            }
        }
        if rec.samples + rec.dropped.len() != plan.shard_range(i).len() {
            bad.insert(
                i,
                format!(
                    "{} samples and {} dropped recorded, the plan has {}",
                    rec.samples,
                    rec.dropped.len(),
                    plan.shard_range(i).len()
                ),
            );
        }
    }
    bad
}

/// Which partitions are unfinished: every partition of each partition count
/// that claimed shards of this output (its lock file), with the missing shards
/// in its range and whether it ever started; then shards no partitioning covers.
fn unfinished_text(
    out_dir: &Path,
    plan: &ShardPlan,
    missing: &[Shard],
    damaged: &BTreeMap<Shard, String>,
) -> String {
    let started: Vec<Partition> = std::fs::read_dir(out_dir.join(STATE_DIR).join("locks"))
        .into_iter()
        .flatten()
        .filter_map(std::result::Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".lock")
                .and_then(Partition::from_file_stem)
        })
        .collect();
    let mut counts: Vec<usize> = started.iter().map(|p| p.count).collect();
    counts.sort_unstable();
    counts.dedup();
    let mut s = format!(
        "is not finished: {} of {} shards are missing or damaged",
        missing.len(),
        plan.shards
    );
    let mut covered = vec![false; plan.shards];
    for count in counts {
        for index in 0..count {
            let p = Partition { index, count };
            let range = p.shards(plan.shards);
            let lacking: Vec<Shard> = missing
                .iter()
                .copied()
                .filter(|j| range.contains(&j.position()))
                .collect();
            for j in range.clone() {
                covered[j] = true;
            }
            if lacking.is_empty() {
                continue;
            }
            let _ = write!(
                s,
                "; {} lacks {} of its shards {}–{} (first: {}{})",
                claim::what(p),
                lacking.len(),
                range.start + 1,
                range.end,
                lacking[0],
                if started.contains(&p) {
                    ""
                } else {
                    "; never started"
                }
            );
        }
    }
    let never: Vec<Shard> = missing
        .iter()
        .copied()
        .filter(|j| !covered[j.position()])
        .collect();
    if !never.is_empty() {
        let _ = write!(
            s,
            "; {} shards that no run has started (first: {})",
            never.len(),
            never[0]
        );
    }
    for (i, why) in damaged.iter().take(5) {
        let _ = write!(s, "; {i} is damaged: {why}");
    }
    s.push_str(
        "; rerun the unfinished partitions (each resumes where it stopped), then merge again",
    );
    s
}
