//! The executor: the one place with threads. It plans output shards, resumes
//! from the journal, and runs a chain of threads joined by bounded channels:
//!
//! ```text
//! producer (rayon: read + per-sample stages) ─chunk→ [batch stage thread
//!   (+ following per-sample stages, rayon)] ─chunk→ … ─chunk→ hash thread
//!   (checks, f16, SHA-256) ─chunk→ writer (npy + fsync + rename, journal append)
//! ```
//!
//! Output order is fixed by the plan (input sample by input sample, original
//! then copies), every random draw comes from [`crate::rng`], and chunks are
//! collected in order, so the bytes never depend on `--threads`. Each shard is
//! written under a temporary name and recorded in the journal only after its
//! rename; a rerun skips journalled shards and redoes the rest. Peak memory is
//! bounded by the chunks in flight: see [`memory_bound_bytes`].
//!
//! [`run`] is the outline; the pieces live beside it: the shard plan and its
//! arithmetic in [`super::shards`], the fingerprint and resuming in
//! [`super::resume`], the threads in `threads.rs`, the work on samples and
//! chunks in `work.rs`, the per-sample records in `records.rs` and the
//! manifest in `finish.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::io::layout::InputSet;
use crate::io::manifest::{Journal, Shard, ShardRecord, STATE_DIR};
use crate::pipeline::build::Pipeline;
use crate::pipeline::claim;
use crate::pipeline::drafting::Previewing;
use crate::pipeline::finish::{write_manifest, Outcome, UNVERSIONED_MARK};
use crate::pipeline::partition::Partition;
use crate::pipeline::resume::{check_output, create_shard_dirs, finished_shards, open_output};
use crate::pipeline::threads::{run_chain, Sink};
use crate::pipeline::work::Ctx;
use crate::progress::Printer;

pub use crate::pipeline::resume::{fingerprint, versions};
pub use crate::pipeline::shards::{memory_bound_bytes, shard_paths, ShardPlan};
pub use crate::pipeline::summary::Summary;

/// Options that change speed, what people see and which share of the output
/// this process writes — never the output bytes.
pub struct RunOptions {
    /// Worker threads for per-sample work (rayon).
    pub threads: usize,
    /// Set by Ctrl-C / SIGTERM: stop after the chunk in progress.
    pub stop: Arc<AtomicBool>,
    /// Resume an output that recorded no algorithm versions (written before
    /// seispipe recorded them), accepting that its shards may come from code
    /// that computed different bytes.
    pub accept_unversioned: bool,
    /// The partition this process writes (`None`: the whole output, which
    /// also writes the manifest; a partition leaves that to `seispipe merge`).
    pub partition: Option<Partition>,
    /// Free space to keep on the output's filesystem: a run that cannot fit
    /// is refused, and one that sees free space fall below it stops after the
    /// shard in progress (0: no reserve).
    pub disk_reserve: u64,
    /// Start even if the remaining bytes do not fit in the free space.
    pub allow_overfill: bool,
    /// Direct or buffered writes, or a trial that picks the faster (`--io`).
    pub io: crate::io::mode::IoMode,
    /// How free space is measured.
    pub disk: std::sync::Arc<dyn crate::io::disk::DiskProbe>,
    /// Where to draw the report's previews during the run (a whole run's
    /// only; see [`crate::report::Drafts`]).
    pub previews: Option<Arc<crate::report::Drafts>>,
}

/// Run `pipeline` over `inputs` (all of it, or one partition), resuming any
/// earlier run in the same output directory.
///
/// # Errors
/// Any input, stage, or output failure (with file and sample), a refused
/// resume or claim, too little disk space, or [`Error::Interrupted`].
pub fn run(
    pipeline: &Pipeline,
    inputs: &InputSet,
    opts: &RunOptions,
    printer: &mut Printer,
) -> Result<Summary> {
    let plan = ShardPlan::new(&pipeline.plan, inputs);
    let out_dir = PathBuf::from(&pipeline.plan.spec.output.dir);
    let part = opts.partition.unwrap_or(Partition::WHOLE);
    let (fp, fp_value) = fingerprint(&pipeline.plan, inputs);
    // Every check that can refuse the start runs before anything is created
    // in the output directory, so a refused start leaves it as it found it.
    check_output(&out_dir, &fp, &fp_value, opts.accept_unversioned)?;
    claim::check_claim(&out_dir, part, plan.shards)?;
    let mine = part.shards(plan.shards);
    let check_room = |done: &BTreeMap<Shard, ShardRecord>| room(&plan, part, &out_dir, opts, done);
    let journalled = if out_dir.join(STATE_DIR).is_dir() {
        finished_shards(&out_dir, plan.shards)?
    } else {
        BTreeMap::new() // a new output (one that cannot be created is named below)
    };
    check_room(&journalled)?;
    // Now create the output, take this partition's lock (both check again:
    // another process may have started since) and read the journals again.
    let unversioned = open_output(
        &out_dir,
        &pipeline.plan,
        &fp,
        &fp_value,
        opts.accept_unversioned,
    )?;
    let _claim = claim::claim(&out_dir, part, plan.shards)?;
    create_shard_dirs(&out_dir, pipeline.plan.out_labels)?;
    let stem = (!part.is_whole()).then(|| part.file_stem());
    let journal = Journal::of_partition(&out_dir, stem.as_deref());
    // Keep journalled shards whose files are still there at the recorded size.
    let mut done = finished_shards(&out_dir, plan.shards)?;
    let pending: Vec<Shard> = part
        .owned(plan.shards)
        .filter(|j| !done.contains_key(j))
        .collect();
    let to_write = check_room(&done)?;
    done.retain(|j, _| mine.contains(&j.position()));
    let mut summary = Summary {
        partition: opts.partition.filter(|p| !p.is_whole()),
        samples_in: plan.samples_in,
        shards_resumed: done.len(),
        files_skipped: inputs.skipped.len(),
        ..Summary::default()
    };
    announce(printer, &plan, part, &out_dir, &done);
    let pool = worker_pool(opts.threads)?;
    let ctx = Ctx {
        pipeline,
        inputs,
        plan: &plan,
    };
    let io = crate::io::mode::IoDecision::new(opts.io, pending.len());
    let previewing = (opts.previews.as_ref()).filter(|_| part.is_whole());
    let previewing = previewing.map(|d| Previewing::new(d, &pipeline.plan, inputs, &out_dir));
    let sink = Sink {
        dir: &out_dir,
        journal: &journal,
        printer,
        disk_reserve: opts.disk_reserve,
        to_write,
        io: &io,
        disk: opts.disk.as_ref(),
        previews: previewing.as_ref(),
    };
    let (written, cause) = run_chain(&ctx, &pool, &pending, &sink, &opts.stop);
    printer.finish();
    summary.count_written(&written);
    done.extend(
        written
            .into_iter()
            .filter_map(|rec| Some((rec.shard()?, rec))),
    );
    summary.elapsed = printer.elapsed();
    if summary.shards_written > 0 {
        summary.io = Some(io.why());
    }
    log_run(&out_dir, part, &summary, cause.as_ref());
    if let Some(e) = cause {
        return Err(e);
    }
    if unversioned {
        mark_unversioned(&out_dir)?;
    }
    let shards: Vec<ShardRecord> = done.into_values().collect();
    summary.count_output(&shards);
    if !part.is_whole() {
        // The manifest is written by `seispipe merge` once every partition is done.
        claim::mark_finished(
            &out_dir,
            part,
            mine,
            summary.samples_out,
            summary.bytes_total,
        )?;
        return Ok(summary);
    }
    let outcome = Outcome {
        fingerprint: fp,
        summary: &summary,
        shards,
        out_dir: &out_dir,
    };
    write_manifest(&pipeline.plan, inputs, outcome)?;
    Ok(summary)
}

/// The bytes this partition still has to write, after checking that they
/// (and the whole output's) fit on the filesystem (unless `--allow-overfill`).
fn room(
    plan: &ShardPlan,
    part: Partition,
    out_dir: &Path,
    opts: &RunOptions,
    done: &BTreeMap<Shard, ShardRecord>,
) -> Result<u64> {
    let left = |shards: &mut dyn Iterator<Item = Shard>| {
        shards
            .filter(|j| !done.contains_key(j))
            .map(|j| plan.shard_bytes(j))
            .sum::<u64>()
    };
    let to_write = left(&mut part.owned(plan.shards));
    if !opts.allow_overfill {
        claim::check_fits(
            opts.disk.as_ref(),
            out_dir,
            part,
            to_write,
            left(&mut plan.all()),
            opts.disk_reserve,
        )?;
    }
    Ok(to_write)
}

/// The rayon pool of `threads` workers for per-sample work.
fn worker_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("seispipe-worker-{i}"))
        .build()
        .map_err(|e| Error::config("--threads", e.to_string()))
}

/// Say what an earlier run left, and start the progress display.
fn announce(
    printer: &mut Printer,
    plan: &ShardPlan,
    part: Partition,
    out_dir: &Path,
    done: &std::collections::BTreeMap<Shard, ShardRecord>,
) {
    let mine = part.shards(plan.shards);
    let resumed_samples: usize = done.keys().map(|&j| plan.shard_range(j).len()).sum();
    let samples: usize = part
        .owned(plan.shards)
        .map(|j| plan.shard_range(j).len())
        .sum();
    if !part.is_whole() {
        printer.info(&format!(
            "partition {part}: shards {}–{} of {} ({samples} samples)",
            mine.start + 1,
            mine.end,
            plan.shards
        ));
    }
    if !done.is_empty() {
        printer.info(&format!(
            "resuming {}: {} of {} shards already finished",
            out_dir.display(),
            done.len(),
            mine.len()
        ));
    }
    printer.start(samples, mine.len(), resumed_samples, done.len());
}

/// Append this process's line to the run log (hosts and timings live there,
/// never in the manifest).
fn log_run(out_dir: &Path, part: Partition, summary: &Summary, cause: Option<&Error>) {
    let host = crate::io::lock::host_name();
    let elapsed = summary.elapsed.as_secs_f64();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let outcome = match cause {
        None => "finished",
        Some(Error::Interrupted) => "interrupted",
        Some(Error::DiskLow { .. }) => "stopped: disk space",
        Some(_) => "failed",
    };
    claim::log_run(
        out_dir,
        &claim::RunLogLine {
            host: &host,
            pid: std::process::id(),
            partition: part.to_string(),
            started_unix_s: (now - elapsed).max(0.0) as u64,
            seconds: elapsed,
            shards_written: summary.shards_written,
            bytes_written: summary.bytes_written,
            outcome,
        },
    );
}

/// Record that a run resumed an unversioned output (the manifest says so).
fn mark_unversioned(out_dir: &Path) -> Result<()> {
    let p = out_dir.join(STATE_DIR).join(UNVERSIONED_MARK);
    crate::io::atomic::write_atomic(&p, b"resumed with --accept-unversioned\n")
}
