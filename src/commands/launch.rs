//! `seispipe slurm` and `seispipe k8s`: resolve the pipeline (so a broken one
//! fails here, not in N tasks), then write the launcher's files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::cli::{K8sArgs, SlurmArgs};
use crate::error::{Error, Result};
use crate::io::atomic;
use crate::launch::{self, job_name, k8s, slurm, Job};
use crate::pipeline::executor::ShardPlan;
use crate::settings;

/// The job every task runs, checked.
fn job(pipeline: &crate::cli::PipelineArgs, partitions: usize) -> Result<Job> {
    if partitions == 0 {
        return Err(Error::config(
            "--partitions",
            "the partition count must be at least 1",
        ));
    }
    let r = settings::resolve(&pipeline.pipeline, &pipeline.set)?;
    let plan = ShardPlan::new(&r.plan, &r.inputs);
    let output = r.plan.spec.output.dir.clone();
    Ok(Job {
        name: job_name(&output),
        pipeline: pipeline.pipeline.display().to_string(),
        overrides: pipeline.set.clone(),
        output,
        partitions,
        shards: plan.shards,
    })
}

/// Write `files` into `dir` (created), executables with mode 0755.
fn write_files(dir: &Path, files: &[(&'static str, String, bool)]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create directory", e))?;
    for (name, text, exec) in files {
        let p = dir.join(name);
        atomic::write_atomic(&p, text.as_bytes())?;
        if *exec {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io(&p, "chmod", e))?;
        }
    }
    Ok(())
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io(p, "resolve path", e))
}

fn note_empty(job: &Job) -> String {
    if job.partitions > job.shards {
        format!(
            "note: {} partitions for {} shards: {} tasks will have nothing to do\n",
            job.partitions,
            job.shards,
            job.partitions - job.shards
        )
    } else {
        String::new()
    }
}

/// `seispipe slurm`.
///
/// # Errors
/// An invalid pipeline or count, files that cannot be written, or a failed
/// submission.
pub fn slurm(args: &SlurmArgs) -> Result<String> {
    let job = job(&args.pipeline, args.partitions)?;
    if args.cpus_per_task == 0 {
        return Err(Error::config("--cpus-per-task", "must be at least 1"));
    }
    let into = args
        .into
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}-slurm", job.output.trim_end_matches('/'))));
    let into = absolute(&into)?;
    let seispipe = match &args.seispipe {
        Some(p) => absolute(p)?,
        None => std::env::current_exe()
            .map_err(|e| Error::io(Path::new("seispipe"), "find own binary", e))?,
    };
    let workdir = absolute(Path::new("."))?;
    let logs = into.join("logs");
    let res = slurm::Resources {
        cpus_per_task: args.cpus_per_task,
        gpus_per_task: args.gpus_per_task,
        mem: args.mem.clone(),
        time: args.time.clone(),
        slurm_partition: args.slurm_partition.clone(),
    };
    let files = slurm::render(
        &job,
        &res,
        &seispipe.display().to_string(),
        &workdir.display().to_string(),
        &logs.display().to_string(),
    );
    write_files(&into, &files)?;
    std::fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, "create directory", e))?;
    let mut text = format!(
        "wrote {}/{{array.sbatch, merge.sbatch, submit.sh}}: {} array tasks over {} shards of {}\n{}",
        into.display(),
        job.partitions,
        job.shards,
        job.output,
        note_empty(&job)
    );
    let submit = into.join("submit.sh");
    if !args.submit {
        let _ = writeln!(
            text,
            "submit with: {}",
            launch::shell_quote(&submit.display().to_string())
        );
        return Ok(text);
    }
    let o = std::process::Command::new("bash")
        .arg(&submit)
        .output()
        .map_err(|e| Error::io(&submit, "run", e))?;
    if !o.status.success() {
        return Err(Error::Layout {
            path: submit,
            reason: format!(
                "submission failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        });
    }
    text.push_str(&String::from_utf8_lossy(&o.stdout));
    Ok(text)
}

/// `seispipe k8s`.
///
/// # Errors
/// An invalid pipeline or count, or files that cannot be written.
pub fn k8s(args: &K8sArgs) -> Result<String> {
    let job = job(&args.pipeline, args.partitions)?;
    if args.pipeline.pipeline.is_absolute() {
        return Err(Error::config(
            "k8s",
            "give the pipeline file relative to the volume's root (the pods' working directory), not as an absolute path",
        ));
    }
    if args.cpus == 0 {
        return Err(Error::config("--cpus", "must be at least 1"));
    }
    let into = args
        .into
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}-k8s", job.output.trim_end_matches('/'))));
    let spec = k8s::Spec {
        image: args.image.clone(),
        volume_claim: args.volume_claim.clone(),
        mount: args.mount.clone(),
        namespace: args.namespace.clone(),
        parallelism: args.parallelism,
        cpus: args.cpus,
        memory: args.memory.clone(),
        gpus: args.gpus,
        retries_per_index: args.retries_per_index,
    };
    write_files(&into, &k8s::render(&job, &spec))?;
    Ok(format!(
        "wrote {}/{{job.yaml, merge-job.yaml, apply.sh}}: an Indexed Job of {} completions over {} shards of {}\n{}apply with: {}/apply.sh\n",
        into.display(),
        job.partitions,
        job.shards,
        job.output,
        note_empty(&job),
        into.display()
    ))
}
