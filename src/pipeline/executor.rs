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
//! arithmetic in [`super::plan`], the fingerprint and resuming in
//! [`super::resume`], the threads in `threads.rs`, the work on samples and
//! chunks in `work.rs`, the per-sample records in `records.rs` and the
//! manifest in `finish.rs`.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::io::layout::InputSet;
use crate::io::manifest::{Journal, ShardRecord};
use crate::pipeline::build::Pipeline;
use crate::pipeline::finish::{write_manifest, Outcome};
use crate::pipeline::resume::{create_shard_dirs, finished_shards, open_output};
use crate::pipeline::threads::{run_chain, Sink};
use crate::pipeline::work::Ctx;
use crate::progress::Printer;

pub use crate::pipeline::plan::{memory_bound_bytes, shard_paths, Plan};
pub use crate::pipeline::resume::{fingerprint, versions};

/// Options that change speed and what people see, never the output bytes.
pub struct RunOptions {
    /// Worker threads for per-sample work (rayon).
    pub threads: usize,
    /// Set by Ctrl-C / SIGTERM: stop after the chunk in progress.
    pub stop: Arc<AtomicBool>,
    /// Resume an output that recorded no algorithm versions (written before
    /// seispipe recorded them), accepting that its shards may come from code
    /// that computed different bytes.
    pub accept_unversioned: bool,
}

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Input samples.
    pub samples_in: usize,
    /// Output samples in the finished output (all shards).
    pub samples_out: usize,
    /// Output samples dropped by policy.
    pub samples_dropped: usize,
    /// Shards written by this run.
    pub shards_written: usize,
    /// Shards kept from an earlier, interrupted run.
    pub shards_resumed: usize,
    /// Bytes written by this run.
    pub bytes_written: u64,
    /// Bytes of the whole output.
    pub bytes_total: u64,
    /// Input files skipped by policy.
    pub files_skipped: usize,
    /// Wall time of this run.
    pub elapsed: Duration,
}

/// Run `pipeline` over `inputs`, resuming any earlier run in the same output directory.
///
/// # Errors
/// Any input, stage, or output failure (with file and sample), a refused
/// resume, or [`Error::Interrupted`].
pub fn run(
    pipeline: &Pipeline,
    inputs: &InputSet,
    opts: &RunOptions,
    printer: &mut Printer,
) -> Result<Summary> {
    let plan = Plan::new(pipeline, inputs);
    let out_dir = PathBuf::from(&pipeline.spec.output.dir);
    let (fp, fp_value) = fingerprint(pipeline, inputs);
    let unversioned = open_output(&out_dir, &fp, &fp_value, opts.accept_unversioned)?;
    create_shard_dirs(&out_dir, pipeline.out_labels)?;
    let journal = Journal::new(&out_dir);
    // Keep journalled shards whose files are still there at the recorded size.
    let mut done = finished_shards(&journal, &out_dir, plan.shards)?;
    let pending: Vec<usize> = (0..plan.shards)
        .filter(|j| !done.contains_key(&(j + 1)))
        .collect();
    let mut summary = Summary {
        samples_in: plan.samples_in,
        shards_resumed: done.len(),
        files_skipped: inputs.skipped.len(),
        ..Summary::default()
    };
    announce(printer, &plan, &out_dir, &done);
    let pool = worker_pool(opts.threads)?;
    let ctx = Ctx {
        pipeline,
        inputs,
        plan: &plan,
    };
    let sink = Sink {
        dir: &out_dir,
        journal: &journal,
        printer,
    };
    let (written, cause) = run_chain(&ctx, &pool, &pending, &sink, &opts.stop);
    printer.finish();
    summary.count_written(&written);
    done.extend(written.into_iter().map(|rec| (rec.index, rec)));
    summary.elapsed = printer.elapsed();
    if let Some(e) = cause {
        return Err(e);
    }
    // All shards are done: count them and write the manifest.
    let shards: Vec<ShardRecord> = done.into_values().collect();
    summary.count_output(&shards);
    let outcome = Outcome {
        fingerprint: fp,
        unversioned,
        summary: &summary,
        shards,
        out_dir: &out_dir,
    };
    write_manifest(pipeline, inputs, outcome)?;
    Ok(summary)
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
    plan: &Plan,
    out_dir: &std::path::Path,
    done: &std::collections::BTreeMap<usize, ShardRecord>,
) {
    let resumed_samples: usize = done.keys().map(|&i| plan.shard_range(i - 1).len()).sum();
    if !done.is_empty() {
        printer.info(&format!(
            "resuming {}: {} of {} shards already finished",
            out_dir.display(),
            done.len(),
            plan.shards
        ));
    }
    printer.start(plan.samples_out, plan.shards, resumed_samples, done.len());
}

impl Summary {
    /// Count the shards this run wrote, and their bytes.
    fn count_written(&mut self, written: &[ShardRecord]) {
        self.shards_written += written.len();
        self.bytes_written += written
            .iter()
            .flat_map(|s| &s.files)
            .map(|f| f.bytes)
            .sum::<u64>();
    }

    /// Count the samples, drops and bytes of the finished output.
    fn count_output(&mut self, shards: &[ShardRecord]) {
        self.samples_out = shards.iter().map(|s| s.samples).sum();
        self.samples_dropped = shards.iter().map(|s| s.dropped.len()).sum();
        self.bytes_total = shards.iter().flat_map(|s| &s.files).map(|f| f.bytes).sum();
    }
}
