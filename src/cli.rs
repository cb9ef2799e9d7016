//! Raw command-line arguments (clap derive). No logic: [`crate::settings`]
//! turns these plus the pipeline file into resolved settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Build training data for seismic velocity-inversion models.
#[derive(Debug, Parser)]
#[command(name = "seispipe", version, about, long_about = None)]
#[command(
    after_help = "Exit codes: 0 success · 1 run failed (bad data, I/O) · 2 invalid pipeline or arguments · 3 verify found differences · 130 interrupted (finished shards kept; rerun to resume)"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline (resumes an interrupted run in the same output directory).
    Run(RunArgs),
    /// Validate a pipeline and print its plan without touching any data.
    Check(CheckArgs),
    /// Write the manifest of an output whose partitions have all finished
    /// (`seispipe run --partition I/N` on several machines or array tasks).
    Merge {
        /// The output directory the partitions wrote.
        dir: PathBuf,
        /// No summary on stderr.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Print shape, dtype, min/max/mean and NaN/Inf counts of .npy files.
    Inspect {
        /// A .npy file or a directory of them.
        path: PathBuf,
    },
    /// Write (and optionally submit) a Slurm job array that runs a pipeline as
    /// N partitions, with a merge job that runs when all of them succeeded.
    Slurm(SlurmArgs),
    /// Write a Kubernetes Indexed Job that runs a pipeline as N partitions,
    /// a merge Job, and a script that applies them in order.
    K8s(K8sArgs),
    /// Re-hash every file of an output directory against its manifest.
    Verify {
        /// The output directory.
        dir: PathBuf,
    },
    /// List stage types with their parameters and defaults.
    Stages,
    /// Split a finished output into Kaggle dataset folders with metadata and an upload plan.
    Package(PackageArgs),
    /// Draw OpenFWI-like velocity maps and write them with their simulated seismic data.
    Synth(SynthArgs),
    /// Fit a tiny demo net on labelled shards and save it as TorchScript (for pseudo_label).
    MakeDemoModel(DemoModelArgs),
    /// Draw samples as PNGs: gathers, velocity map, spectrograms; an augmented copy beside its input.
    Preview(PreviewArgs),
    /// Write report.html for a finished output (`run` writes it; this writes it again).
    Report {
        /// The output directory (holds manifest.json).
        dir: PathBuf,
    },
    /// Print what this machine gives seispipe: the CPU, its vector
    /// instruction sets, the kernel copy and the I/O mode a run would use.
    Host,
}

/// `seispipe preview`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").args(["samples", "random"])))]
pub struct PreviewArgs {
    /// An output directory, a Kaggle part, a shard file, a directory of inputs, or one .npy file.
    pub path: PathBuf,
    /// Sample positions in PATH, 0-based (default 0): --samples 0,5,17.
    #[arg(long, value_delimiter = ',', value_name = "I,J,…")]
    pub samples: Vec<usize>,
    /// Preview N samples drawn at random (with --seed).
    #[arg(long, value_name = "N")]
    pub random: Option<usize>,
    /// Seed of --random.
    #[arg(long, default_value_t = 0, requires = "random")]
    pub seed: u64,
    /// Folder for the PNGs (one per sample, named PATHSTEM-INDEX.png).
    #[arg(long, default_value = "previews")]
    pub out: PathBuf,
    /// Clip gathers at ± this percentile of |amplitude| of the sample.
    #[arg(long, default_value_t = crate::report::DEFAULT_CLIP_PERCENTILE, value_name = "P")]
    pub clip_percentile: f64,
    /// Where the inputs an output was made from are (default: the manifest's input_root).
    #[arg(long, value_name = "DIR")]
    pub input_root: Option<PathBuf>,
}

/// `seispipe make-demo-model`.
#[derive(Debug, Args)]
pub struct DemoModelArgs {
    /// Where to write the TorchScript model (`.pt`).
    pub out: PathBuf,
    /// Labelled shards to fit on (directory, file or glob).
    #[arg(long, default_value = "data/train_samples")]
    pub data: String,
    /// At most this many samples, spread evenly over the inputs.
    #[arg(long, default_value_t = 64)]
    pub max_samples: usize,
    /// Optimiser steps (batches of 8).
    #[arg(long, default_value_t = 60)]
    pub steps: usize,
    /// Seed of the initial weights and batch order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// A pipeline file and overrides.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// The pipeline file (TOML).
    pub pipeline: PathBuf,
    /// Override a key of the pipeline file, e.g. `--set seed=7 --set stages.0.p=0.3`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Which partition of the output to run or check (also read from Slurm array
/// and Kubernetes Indexed Job variables).
#[derive(Debug, Args, Clone, Default)]
pub struct PartitionArgs {
    /// Write only partition I of N (0-based) of the output's shards into the
    /// shared output directory; `seispipe merge` finishes the output. Default
    /// from SLURM_ARRAY_TASK_ID/_MIN/_COUNT or JOB_COMPLETION_INDEX.
    #[arg(long, value_name = "I/N")]
    pub partition: Option<String>,
    /// The partition count N, when the index comes from the environment
    /// (a Kubernetes Indexed Job; also SEISPIPE_PARTITIONS).
    #[arg(long, value_name = "N")]
    pub partitions: Option<usize>,
}

/// `seispipe check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Pipeline and overrides.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Partition flags.
    #[command(flatten)]
    pub partition: PartitionArgs,
}

/// `seispipe run`.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // each is a command-line switch
pub struct RunArgs {
    /// Pipeline and overrides.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Partition flags.
    #[command(flatten)]
    pub partition: PartitionArgs,
    /// Free space to keep on the output's filesystem (default 2GB): a run that
    /// cannot fit is refused, and one that sees free space fall below this
    /// stops after the current shard (resumable). 0 turns it off.
    #[arg(long, value_name = "BYTES")]
    pub disk_reserve: Option<String>,
    /// Start even if the bytes still to write exceed the free space.
    #[arg(long)]
    pub allow_overfill: bool,
    /// Worker threads (default: all cores). Never changes the output bytes.
    #[arg(long)]
    pub threads: Option<usize>,
    /// How shards reach the disk: `direct` (O_DIRECT, no page-cache copy),
    /// `buffered` (through the page cache), or `auto` (the default: direct,
    /// and on runs of 20 shards or more one shard of each mode is timed and
    /// the faster writes the rest). Same bytes and the same durability
    /// either way.
    #[arg(long, value_enum, value_name = "MODE")]
    pub io: Option<IoArg>,
    /// No progress output on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// Leave report.html out (the manifest still names it; `seispipe report
    /// OUT` writes it later, with the same bytes).
    #[arg(long)]
    pub no_report: bool,
    /// Resume an output written by a seispipe build that recorded no algorithm
    /// versions. Its shards may then come from code that computed different
    /// bytes (the manifest records that this happened).
    #[arg(long)]
    pub accept_unversioned: bool,
}

/// `--io`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum IoArg {
    /// Measure both on the output's filesystem and keep the faster.
    Auto,
    /// O_DIRECT where the filesystem takes it.
    Direct,
    /// Through the page cache.
    Buffered,
}

impl IoArg {
    /// The setting it names.
    #[must_use]
    pub fn mode(self) -> crate::io::mode::IoMode {
        use crate::io::mode::IoMode;
        match self {
            IoArg::Auto => IoMode::Auto,
            IoArg::Direct => IoMode::Direct,
            IoArg::Buffered => IoMode::Buffered,
        }
    }
}

/// `seispipe slurm`.
#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// Pipeline and overrides (the tasks get the same).
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Number of partitions: one array task each.
    #[arg(long, value_name = "N")]
    pub partitions: usize,
    /// CPUs per task (also the run's --threads).
    #[arg(long, default_value_t = 8, value_name = "C")]
    pub cpus_per_task: usize,
    /// GPUs per task (Slurm sets CUDA_VISIBLE_DEVICES for each).
    #[arg(long, value_name = "G")]
    pub gpus_per_task: Option<usize>,
    /// Memory per task, as sbatch --mem takes it (e.g. 64G).
    #[arg(long, value_name = "M")]
    pub mem: Option<String>,
    /// Time limit per task, as sbatch --time takes it (e.g. 2-00:00:00).
    #[arg(long, value_name = "T")]
    pub time: Option<String>,
    /// Slurm partition (queue) to submit to.
    #[arg(long, value_name = "P")]
    pub slurm_partition: Option<String>,
    /// Folder for the scripts and task logs (default OUTPUT_DIR-slurm).
    #[arg(long, value_name = "DIR")]
    pub into: Option<PathBuf>,
    /// The seispipe binary the tasks run (default: this one, by absolute path;
    /// it must be reachable from the compute nodes).
    #[arg(long, value_name = "PATH")]
    pub seispipe: Option<PathBuf>,
    /// Submit the array and the merge job with sbatch and print their job ids.
    #[arg(long)]
    pub submit: bool,
}

/// `seispipe k8s`.
#[derive(Debug, Args)]
pub struct K8sArgs {
    /// Pipeline and overrides; its paths must be relative to the volume's root.
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    /// Number of partitions: one completion index each.
    #[arg(long, value_name = "N")]
    pub partitions: usize,
    /// Container image with seispipe on PATH (see the repository's Dockerfile).
    #[arg(long)]
    pub image: String,
    /// PersistentVolumeClaim holding the pipeline file, inputs and output.
    #[arg(long, value_name = "NAME")]
    pub volume_claim: String,
    /// Where the volume is mounted in the pods; also their working directory.
    #[arg(long, default_value = "/work")]
    pub mount: String,
    /// Namespace (default: the current kubectl context's).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Pods at once (default: all partitions).
    #[arg(long)]
    pub parallelism: Option<usize>,
    /// CPUs per pod (request and limit; also the run's --threads).
    #[arg(long, default_value_t = 8)]
    pub cpus: usize,
    /// Memory per pod (request and limit), e.g. 64Gi.
    #[arg(long)]
    pub memory: Option<String>,
    /// GPUs per pod (nvidia.com/gpu).
    #[arg(long)]
    pub gpus: Option<usize>,
    /// Retries of one index before it counts as failed (backoffLimitPerIndex).
    #[arg(long, default_value_t = 3)]
    pub retries_per_index: usize,
    /// Folder for the manifests (default OUTPUT_DIR-k8s).
    #[arg(long, value_name = "DIR")]
    pub into: Option<PathBuf>,
}

/// An element type on the command line (`--dtype f32|f16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DTypeArg {
    /// `<f4`
    F32,
    /// `<f2`
    F16,
}

/// `seispipe synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output directory (labelled families go to `OUT/<family>/…`; unlabelled files to `OUT/<id>.npy`).
    pub out: PathBuf,
    /// Velocity family: FlatVel_A|B, CurveVel_A|B, FlatFault_A|B, CurveFault_A|B.
    #[arg(long)]
    pub family: String,
    /// Samples per file (labelled), or number of one-sample files (--unlabelled).
    #[arg(long, default_value_t = 500)]
    pub samples: usize,
    /// Number of shard files (labelled only).
    #[arg(long, default_value_t = 1)]
    pub files: usize,
    /// Seed of the velocity maps.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Element type written.
    #[arg(long, value_enum, default_value_t = DTypeArg::F32)]
    pub dtype: DTypeArg,
    /// Write one-sample (5, 1000, 70) files named by 10 hex digits, without labels.
    #[arg(long)]
    pub unlabelled: bool,
    /// Worker threads (default: all cores). Never changes the output bytes.
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `seispipe package`: flags override the output's `[kaggle]` section.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("mode").args(["link", "copy", "move"])))]
#[allow(clippy::struct_excessive_bools)] // command-line flags, as the user types them
pub struct PackageArgs {
    /// The finished output directory (holds manifest.json).
    pub out_dir: PathBuf,
    /// Folder to create with one sub-folder per part, upload.sh and PLAN.md (default OUT_DIR-kaggle).
    #[arg(long, value_name = "KAGGLEDIR")]
    pub into: Option<PathBuf>,
    /// Kaggle user that will own the datasets.
    #[arg(long)]
    pub owner: Option<String>,
    /// Slug prefix: parts become PREFIX-part-001, … (lowercase letters, digits, hyphens).
    #[arg(long, value_name = "PREFIX")]
    pub slug: Option<String>,
    /// Dataset title; each part adds " (part i of n)" (6–50 characters in all).
    #[arg(long)]
    pub title: Option<String>,
    /// Subtitle, 20–80 characters (default names the samples and the part).
    #[arg(long)]
    pub subtitle: Option<String>,
    /// License name (default CC0-1.0); Kaggle takes exactly one.
    #[arg(long)]
    pub license: Vec<String>,
    /// Byte cap per part, metadata included: 150GB, 1.5TB, 64GiB or bytes (default 100GB).
    #[arg(long, value_name = "N")]
    pub max_dataset_bytes: Option<String>,
    /// File cap per part, metadata and manifest included (default 1000).
    #[arg(long, value_name = "N")]
    pub max_files: Option<usize>,
    /// Hard-link shard files into the parts (default; no extra disk).
    #[arg(long)]
    pub link: bool,
    /// Copy shard files (when the parts are on another file system).
    #[arg(long)]
    pub copy: bool,
    /// Link (or copy), then remove the shard files from the output.
    #[arg(long = "move")]
    pub r#move: bool,
    /// Print the plan and check everything; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Check only presence and sizes of the output's files (default: re-hash every file against the manifest).
    #[arg(long)]
    pub sizes_only: bool,
    /// A seispipe wheel (`make wheels`) to upload beside the parts, as the
    /// dataset SLUG-wheel: a notebook that reads the parts can then
    /// `pip install /kaggle/input/SLUG-wheel/*.whl`.
    #[arg(long, value_name = "FILE")]
    pub wheel: Option<PathBuf>,
}
