//! One function per subcommand; `main` only dispatches and maps errors to exit codes.

mod kaggle;
pub mod launch;
mod partition;
mod verify;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::cli::{CheckArgs, RunArgs};
use crate::error::{Error, Result};
use crate::io::manifest;
use crate::io::npy;
use crate::model::Backend;
use crate::pipeline::executor::{self, RunOptions, ShardPlan, Summary};
use crate::progress::{human_bytes, Mode, Printer};
use crate::settings;
use partition::{partition_of, partition_text};
use verify::versions_line;
pub use verify::{devices_lines, inspect, verify};

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code for a failed run (bad data, I/O).
pub const EXIT_FAILED: i32 = 1;
/// Exit code for an invalid pipeline or arguments.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code when verify finds differences.
pub const EXIT_VERIFY: i32 = 3;
/// Exit code after Ctrl-C / SIGTERM.
pub const EXIT_INTERRUPTED: i32 = 130;

/// The exit code for an error.
#[must_use]
pub fn exit_code(e: &Error) -> i32 {
    match e {
        Error::Config { .. } | Error::Resume { .. } => EXIT_CONFIG,
        Error::Verify { .. } => EXIT_VERIFY,
        Error::Interrupted => EXIT_INTERRUPTED,
        _ => EXIT_FAILED,
    }
}

/// `seispipe check`: the plan, as text.
///
/// # Errors
/// Any configuration or layout problem.
/// A plan that needs libtorch is also made ready to run (models loaded,
/// devices chosen) — refused as `run` would refuse it when this process has
/// no libtorch — and where each stage with a `device` would run is shown.
pub fn check(args: &CheckArgs, host: &settings::Host) -> Result<String> {
    let partition = partition_of(&args.partition)?;
    let args = &args.pipeline;
    let r = settings::resolve(&args.pipeline, &args.set)?;
    let plan = ShardPlan::new(&r.plan, &r.inputs);
    let p = &r.plan;
    let mut s = String::new();
    let _ = writeln!(s, "pipeline {}: OK", p.file);
    let _ = writeln!(
        s,
        "inputs: {} files under {} ({}), {} samples",
        r.inputs.files.len(),
        r.inputs.root.display(),
        if r.inputs.labelled {
            "labelled"
        } else {
            "unlabelled"
        },
        plan.samples_in
    );
    for sk in &r.inputs.skipped {
        let _ = writeln!(s, "  skipped {}: {}", sk.path, sk.reason);
    }
    let _ = writeln!(
        s,
        "outputs: {} samples ({} per input: {}{} copies), {} shards of ≤ {} samples in {}",
        plan.samples_out,
        plan.per_input,
        if p.spec.keep_original {
            "original + "
        } else {
            ""
        },
        p.spec.copies,
        plan.shards,
        plan.samples_per_shard,
        p.spec.output.dir
    );
    let _ = writeln!(
        s,
        "sample shape {:?} {}{}; about {} in all ({} per data shard)",
        p.out_shape,
        npy::descr(p.spec.output.dtype),
        if p.out_labels {
            " with (1, 70, 70) labels"
        } else {
            ""
        },
        human_bytes(plan.total_bytes),
        human_bytes(plan.data_shard_bytes)
    );
    let _ = writeln!(s, "stages:");
    if p.stages.is_empty() {
        let _ = writeln!(s, "  (none)");
    }
    // [k] is the position in the plan, which provenance records as "stage".
    for (k, st) in p.stages.iter().enumerate() {
        let _ = write!(s, "  [{k}] {} {}", st.kind, st.params);
        if let Some(e) = st.at.expansion {
            let _ = write!(
                s,
                " — added by stages[{}] ({}, {e})",
                st.at.index, st.at.written
            );
        } else if st.at.index != k {
            let _ = write!(s, " — stages[{}]", st.at.index);
        }
        s.push('\n');
    }
    // What run would refuse (no libtorch, a missing device), check refuses.
    if p.needs_torch() {
        let ready = crate::pipeline::build::instantiate(r.plan.clone(), &host.stage_env())?;
        for (stage, device) in &ready.devices {
            let _ = writeln!(s, "runs here: {stage} on {device}");
        }
    }
    if let Some(k) = kaggle::check_text(p, &plan)? {
        s.push_str(&k);
    }
    let _ = writeln!(
        s,
        "memory bound for sample data in flight: {}",
        human_bytes(executor::memory_bound_bytes(p))
    );
    partition_text(
        &mut s,
        partition,
        &plan,
        &p.spec.output.dir,
        host.disk.as_ref(),
    );
    Ok(s)
}

/// `seispipe run`.
///
/// # Errors
/// Anything that stops the run; see [`exit_code`].
/// `host` says what this process has (libtorch, disk probe, settings).
pub fn run(args: &RunArgs, stop: Arc<AtomicBool>, host: &settings::Host) -> Result<Summary> {
    run_drafting(
        args,
        stop,
        host,
        &Arc::new(crate::report::Drafts::default()),
    )
}

/// [`run`], drawing the report's previews into `drafts` while the shards
/// are written (see [`crate::report::Drafts`]), for the report after it.
///
/// # Errors
/// As [`run`].
pub fn run_drafting(
    args: &RunArgs,
    stop: Arc<AtomicBool>,
    host: &settings::Host,
    drafts: &Arc<crate::report::Drafts>,
) -> Result<Summary> {
    let r = settings::resolve(&args.pipeline.pipeline, &args.pipeline.set)?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let mut printer = Printer::new(Mode::detect(args.quiet));
    for sk in &r.inputs.skipped {
        printer.info(&format!("skipped {}: {}", sk.path, sk.reason));
    }
    let partition = partition_of(&args.partition)?;
    let disk_reserve = match &args.disk_reserve {
        Some(text) => {
            crate::kaggle::parse_bytes(text).map_err(|e| Error::config("--disk-reserve", e))?
        }
        None => crate::pipeline::claim::DEFAULT_DISK_RESERVE,
    };
    let opts = RunOptions {
        threads,
        stop,
        accept_unversioned: args.accept_unversioned,
        partition,
        disk_reserve,
        allow_overfill: args.allow_overfill,
        io: args.io.map_or(host.io, crate::cli::IoArg::mode),
        disk: host.disk.clone(),
        previews: (!args.no_report).then(|| Arc::clone(drafts)),
    };
    // A [kaggle] section is validated before the run and packages the output
    // after it (a partition leaves packaging to `seispipe merge`).
    let kaggle = kaggle::before_run(&r.plan, &ShardPlan::new(&r.plan, &r.inputs))?;
    let pipeline = crate::pipeline::build::instantiate(r.plan, &host.stage_env())?;
    let summary = executor::run(&pipeline, &r.inputs, &opts, &mut printer)?;
    if !args.quiet {
        eprintln!("{}", summary_text(&summary, &pipeline.plan.spec.output.dir));
    }
    if summary.partition.is_some() {
        return Ok(summary);
    }
    let out_dir = Path::new(&pipeline.plan.spec.output.dir);
    if !args.no_report {
        write_report_after_run(out_dir, drafts, args.quiet)?;
    }
    if let Some(k) = kaggle {
        let out = kaggle::after_run(&pipeline.plan, &k)?;
        if !args.quiet {
            eprint!("{}", out.text);
        }
    }
    Ok(summary)
}

/// The report at the end of `seispipe run`, with the previews the run drew.
fn write_report_after_run(
    out_dir: &Path,
    drafts: &Arc<crate::report::Drafts>,
    quiet: bool,
) -> Result<()> {
    // The shards and manifest are complete whatever happens here; a report
    // that cannot be written fails the command with that said, and
    // `seispipe report` (or the same run again) writes it.
    write_report(out_dir, Some(Arc::clone(drafts))).map_err(|e| Error::Layout {
        path: out_dir.join(crate::report::REPORT_NAME),
        reason: format!(
            "the run finished (every shard and manifest.json are written), but the report could not be written: {e}; `seispipe report {}` writes it again",
            out_dir.display()
        ),
    })?;
    if !quiet {
        eprintln!(
            "report: {}",
            out_dir.join(crate::report::REPORT_NAME).display()
        );
    }
    Ok(())
}

/// `seispipe merge OUT`: check that every partition finished, write the
/// manifest (and package a `[kaggle]` section) as a single run would.
///
/// # Errors
/// Unfinished or damaged partitions, partitions still running, or inputs
/// and code that changed since the run started.
/// Merging plans the recorded pipeline again; it loads no model and touches
/// no device, so any machine can merge what GPU machines wrote.
pub fn merge(dir: &Path) -> Result<String> {
    let (r, origin) = settings::resolve_recorded(dir)?;
    let kaggle = kaggle::before_run(&r.plan, &ShardPlan::new(&r.plan, &r.inputs))?;
    let summary = crate::pipeline::merge::merge(&r.plan, &r.inputs, dir, &origin)?;
    write_report(dir, None).map_err(|e| Error::Layout {
        path: dir.join(crate::report::REPORT_NAME),
        reason: format!(
            "the merge finished (manifest.json is written), but the report could not be written: {e}; `seispipe report {}` writes it again",
            dir.display()
        ),
    })?;
    let mut text = format!(
        "merged {}: {} samples in → {} samples out ({} dropped) in {} shards, {}; manifest written\n",
        dir.display(),
        summary.samples_in,
        summary.samples_out,
        summary.samples_dropped,
        summary.shards_resumed,
        human_bytes(summary.bytes_total)
    );
    // The versions of the code that computed every shard (the fingerprint
    // check above guarantees they are this build's).
    if let Ok(m) = manifest::Manifest::load(dir) {
        text.push_str(&versions_line(&m));
        text.push('\n');
        for line in devices_lines(&m.shards) {
            text.push_str(&line);
            text.push('\n');
        }
    }
    if let Some(k) = kaggle {
        text.push_str(&kaggle::after_run(&r.plan, &k)?.text);
    }
    Ok(text)
}

/// The final summary for people.
#[must_use]
pub fn summary_text(s: &Summary, dir: &str) -> String {
    if let Some(part) = s.partition {
        return format!(
            "partition {part} done: {} samples in {} shards ({} written now, {} kept from an earlier run), {}; wrote {} in {:.1} s. Run `seispipe merge {dir}` when every partition is done",
            s.samples_out,
            s.shards_written + s.shards_resumed,
            s.shards_written,
            s.shards_resumed,
            human_bytes(s.bytes_total),
            human_bytes(s.bytes_written),
            s.elapsed.as_secs_f64()
        );
    }
    let secs = s.elapsed.as_secs_f64();
    let rate = s.bytes_written as f64 / secs.max(1e-9) / 1e6;
    let io =
        s.io.as_ref()
            .map_or_else(String::new, |w| format!("\nio: {w}"));
    format!(
        "done: {} samples in → {} samples out ({} dropped) in {} shards ({} written now, {} kept from an earlier run), {} in {dir}; wrote {} in {secs:.1} s ({rate:.0} MB/s); {} input files skipped{io}",
        s.samples_in,
        s.samples_out,
        s.samples_dropped,
        s.shards_written + s.shards_resumed,
        s.shards_written,
        s.shards_resumed,
        human_bytes(s.bytes_total),
        human_bytes(s.bytes_written),
        s.files_skipped
    )
}

/// `seispipe host`: the CPU, its SIMD flags, the kernel copy, how it meets
/// subnormal values and the I/O setting (what benches print beside their
/// figures).
#[must_use]
pub fn host(host: &settings::Host) -> String {
    let cpu = crate::cpu::model_name();
    let subnormals = format!(
        "{}{} (a multiplication on a subnormal value takes {:.1}x as long here)",
        host.compute.subnormals.name(),
        if host.compute.scaled() {
            ": the scaled kernel"
        } else {
            ""
        },
        crate::cpu::Subnormals::slowdown()
    );
    format!(
        "cpu: {cpu}\nsimd: {}\nkernel: {}{}\nsubnormals: {subnormals}\nio: {}\n",
        crate::cpu::simd_flags().join(" "),
        host.compute.describe(),
        if host.compute.isa == crate::cpu::Isa::detect() {
            String::new()
        } else {
            format!(
                " (forced by {}; widest here: {})",
                crate::cpu::Compute::ISA_ENV,
                crate::cpu::Isa::detect().name()
            )
        },
        host.io.name()
    )
}

/// `seispipe stages`.
#[must_use]
pub fn stages() -> String {
    let mut s = String::new();
    for d in crate::stage::catalog() {
        let _ = writeln!(s, "{}\n  {}", d.name, d.summary);
        for (k, def, doc) in d
            .listing()
            .expect("every stage's documented required keys parse")
        {
            let _ = writeln!(s, "    {k:<16} default {def:<10} {doc}");
        }
    }
    s
}

/// `seispipe synth`: the files written, one line each.
///
/// # Errors
/// A bad family (a configuration error), simulation or I/O failures.
pub fn synth(args: &crate::cli::SynthArgs, host: &settings::Host) -> Result<String> {
    use crate::pipeline::spec::DType;
    let family =
        crate::synth::Family::parse(&args.family).map_err(|r| Error::config("--family", r))?;
    let dtype = match args.dtype {
        crate::cli::DTypeArg::F32 => DType::F32,
        crate::cli::DTypeArg::F16 => DType::F16,
    };
    let opts = crate::synth::SynthOptions {
        out: args.out.clone(),
        family,
        samples: args.samples,
        files: args.files,
        seed: args.seed,
        dtype,
        unlabelled: args.unlabelled,
        compute: host.compute,
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::config("--threads", e.to_string()))?;
    let start = std::time::Instant::now();
    let files = pool.install(|| crate::synth::synth(&opts))?;
    let mut s = String::new();
    for f in &files {
        let _ = writeln!(s, "wrote {} {:?} {}", f.path, f.shape, f.dtype);
    }
    let n = if args.unlabelled {
        args.samples
    } else {
        args.samples * args.files
    };
    let secs = start.elapsed().as_secs_f64();
    let rate = n as f64 / secs.max(1e-9);
    let _ = writeln!(
        s,
        "synth: {n} samples of {} in {secs:.2} s ({rate:.2} samples/s, {threads} threads, kernel {}{})",
        family.name(),
        host.compute.describe(),
        if host.compute.scaled() { ", scaled" } else { "" }
    );
    Ok(s)
}

/// `seispipe package`: the summary table and the upload plan's path.
///
/// # Errors
/// See [`crate::kaggle::package`].
pub fn package(args: &crate::cli::PackageArgs) -> Result<String> {
    kaggle::package(args)
}

/// `seispipe preview`: the PNGs written, one line each.
///
/// # Errors
/// See [`crate::report::preview`].
pub fn preview(args: &crate::cli::PreviewArgs) -> Result<String> {
    use crate::report::{PreviewOptions, Selection};
    let selection = match args.random {
        Some(n) => Selection::Random { n, seed: args.seed },
        None if args.samples.is_empty() => Selection::Indices(vec![0]),
        None => Selection::Indices(args.samples.clone()),
    };
    let files = crate::report::preview(
        &args.path,
        &PreviewOptions {
            selection,
            out: args.out.clone(),
            clip_percentile: args.clip_percentile,
            input_root: args.input_root.clone(),
        },
    )?;
    let mut s = String::new();
    for f in files {
        let _ = writeln!(s, "wrote {}", f.display());
    }
    Ok(s)
}

/// `seispipe make-demo-model`: what was written and how well it fits, as text.
///
/// # Errors
/// No labelled inputs, libtorch failures, or no libtorch in this process.
pub fn make_demo_model(
    args: &crate::cli::DemoModelArgs,
    models: Option<Backend>,
) -> Result<String> {
    let Some(backend) = models else {
        return Err(crate::Error::config(
            args.out.display().to_string(),
            crate::stage::pseudo_label::NEEDS_TORCH.replace("pseudo_label", "make-demo-model"),
        ));
    };
    backend.0.make_demo_model(&crate::model::DemoModelRequest {
        out: args.out.clone(),
        data: args.data.clone(),
        max_samples: args.max_samples,
        steps: args.steps,
        seed: args.seed,
    })
}

/// `seispipe report`: where the report went.
///
/// # Errors
/// See [`crate::report::write_report`].
pub fn report(dir: &Path) -> Result<String> {
    write_report(dir, None)?;
    Ok(format!(
        "wrote {}\n",
        dir.join(crate::report::REPORT_NAME).display()
    ))
}

/// Write `DIR/report.html` (after `run`, after `merge`, and for `seispipe
/// report`). The manifest names it (`report`) without a hash: its bytes
/// depend on when shards were written.
/// `drafts`: previews a run drew ahead (see [`crate::report::Drafts`]).
fn write_report(dir: &Path, drafts: Option<Arc<crate::report::Drafts>>) -> Result<()> {
    let opts = crate::report::ReportOptions {
        drafts,
        ..crate::report::ReportOptions::default()
    };
    crate::report::write_report(dir, &opts).map(|_| ())
}
