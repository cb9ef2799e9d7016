//! A Slurm job array for a partitioned run: `array.sbatch` (one task per
//! partition, requeued on node failure, one log per task), `merge.sbatch`
//! (runs after every task succeeded: `afterok`), and `submit.sh`, which
//! submits both with the dependency and prints the job ids.

use std::fmt::Write as _;

use super::{shell_quote, Job};

/// Resources and placement of the array tasks (`sbatch` options).
#[derive(Debug, Clone, Default)]
pub struct Resources {
    /// `--cpus-per-task`; also the run's `--threads`.
    pub cpus_per_task: usize,
    /// `--gpus-per-task` (Slurm sets `CUDA_VISIBLE_DEVICES` for each task).
    pub gpus_per_task: Option<usize>,
    /// `--mem`, as Slurm writes it (`16G`).
    pub mem: Option<String>,
    /// `--time`, as Slurm writes it (`2-00:00:00`).
    pub time: Option<String>,
    /// `--partition` (the Slurm partition, not seispipe's).
    pub slurm_partition: Option<String>,
}

/// The three files, as (name, contents, executable).
#[must_use]
pub fn render(
    job: &Job,
    res: &Resources,
    seispipe: &str,
    workdir: &str,
    logs: &str,
) -> Vec<(&'static str, String, bool)> {
    let n = job.partitions;
    let mut head = String::new();
    let _ = writeln!(head, "#!/bin/bash");
    let _ = writeln!(head, "#SBATCH --job-name=seispipe-{}", job.name);
    let mut array = head.clone();
    let _ = writeln!(array, "#SBATCH --array=0-{}", n - 1);
    let _ = writeln!(array, "#SBATCH --cpus-per-task={}", res.cpus_per_task);
    if let Some(g) = res.gpus_per_task {
        let _ = writeln!(array, "#SBATCH --gpus-per-task={g}");
    }
    if let Some(m) = &res.mem {
        let _ = writeln!(array, "#SBATCH --mem={m}");
    }
    if let Some(t) = &res.time {
        let _ = writeln!(array, "#SBATCH --time={t}");
    }
    if let Some(p) = &res.slurm_partition {
        let _ = writeln!(array, "#SBATCH --partition={p}");
    }
    let _ = writeln!(array, "#SBATCH --requeue");
    let _ = writeln!(array, "#SBATCH --open-mode=append");
    let _ = write!(
        array,
        "\n# Partition $SLURM_ARRAY_TASK_ID of {n} ({} shards in all). seispipe reads the\n\
         # index from SLURM_ARRAY_TASK_ID; a requeued task resumes its own shards.\n\
         # submit.sh passes the working directory and the log file to sbatch.\n\
         set -euo pipefail\n\
         cd {}\n\
         exec {} run {}{} --partitions {n} --threads \"${{SLURM_CPUS_PER_TASK:-{}}}\" --quiet\n",
        job.shards,
        shell_quote(workdir),
        shell_quote(seispipe),
        shell_quote(&job.pipeline),
        overrides(&job.overrides),
        res.cpus_per_task,
    );
    let mut merge = head;
    let _ = writeln!(merge, "#SBATCH --cpus-per-task=1");
    if let Some(p) = &res.slurm_partition {
        let _ = writeln!(merge, "#SBATCH --partition={p}");
    }
    let _ = write!(
        merge,
        "\n# Runs after every array task succeeded (submit.sh adds --dependency=afterok).\n\
         set -euo pipefail\n\
         cd {}\n\
         exec {} merge {}\n",
        shell_quote(workdir),
        shell_quote(seispipe),
        shell_quote(&job.output)
    );
    let submit = format!(
        "#!/bin/bash\n\
         # Submit the array, then the merge job that waits for all of it.\n\
         # If a task fails, Slurm cancels the merge job (--kill-on-invalid-dep);\n\
         # rerun the failed partitions (`seispipe run {p} --partition I/{n}`), then `seispipe merge {o}`.\n\
         set -euo pipefail\n\
         cd \"$(dirname \"$0\")\"\n\
         # Paths go on sbatch's command line, quoted for the shell: #SBATCH\n\
         # lines cannot hold every path (spaces, quotes).\n\
         mkdir -p {logs}\n\
         array=$(sbatch --parsable --chdir={workdir} --output={task_log} array.sbatch)\n\
         array=${{array%%;*}}\n\
         merge=$(sbatch --parsable --chdir={workdir} --output={merge_log} --dependency=afterok:$array --kill-on-invalid-dep=yes merge.sbatch)\n\
         merge=${{merge%%;*}}\n\
         echo \"array job $array ({n} tasks), merge job $merge\"\n",
        p = shell_quote(&job.pipeline),
        o = shell_quote(&job.output),
        logs = shell_quote(logs),
        workdir = shell_quote(workdir),
        task_log = shell_quote(&format!("{}/task-%a.log", slurm_pattern_escape(logs))),
        merge_log = shell_quote(&format!("{}/merge.log", slurm_pattern_escape(logs))),
    );
    vec![
        ("array.sbatch", array, false),
        ("merge.sbatch", merge, false),
        ("submit.sh", submit, true),
    ]
}

/// `path` with Slurm's filename-pattern character escaped (`%` → `%%`), for
/// `--output`.
fn slurm_pattern_escape(path: &str) -> String {
    path.replace('%', "%%")
}

/// ` --set K=V …`, quoted.
fn overrides(sets: &[String]) -> String {
    let mut out = String::new();
    for s in sets {
        let _ = write!(out, " --set {}", shell_quote(s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            name: "big".into(),
            pipeline: "pipelines/big run.toml".into(),
            overrides: vec!["seed=3".into()],
            output: "out/big".into(),
            partitions: 8,
            shards: 100,
        }
    }

    #[test]
    fn the_array_runs_one_partition_per_task_and_the_merge_waits() {
        let res = Resources {
            cpus_per_task: 72,
            gpus_per_task: Some(1),
            mem: Some("200G".into()),
            time: Some("2-00:00:00".into()),
            slurm_partition: Some("gh200".into()),
        };
        let files = render(
            &job(),
            &res,
            "/opt/seispipe/bin/seispipe",
            "/scratch/me",
            "/scratch/me/logs",
        );
        let get = |n: &str| &files.iter().find(|f| f.0 == n).unwrap().1;
        let array = get("array.sbatch");
        for line in [
            "#SBATCH --array=0-7",
            "#SBATCH --cpus-per-task=72",
            "#SBATCH --gpus-per-task=1",
            "#SBATCH --mem=200G",
            "#SBATCH --time=2-00:00:00",
            "#SBATCH --partition=gh200",
            "#SBATCH --requeue",
            "cd /scratch/me",
            "exec /opt/seispipe/bin/seispipe run 'pipelines/big run.toml' --set seed=3 --partitions 8 --threads \"${SLURM_CPUS_PER_TASK:-72}\" --quiet",
        ] {
            assert!(array.lines().any(|l| l == line), "{line} missing from\n{array}");
        }
        let merge = get("merge.sbatch");
        assert!(
            merge.contains("exec /opt/seispipe/bin/seispipe merge out/big"),
            "{merge}"
        );
        let submit = get("submit.sh");
        assert!(
            submit.contains("--dependency=afterok:$array --kill-on-invalid-dep=yes merge.sbatch"),
            "{submit}"
        );
        assert!(files.iter().find(|f| f.0 == "submit.sh").unwrap().2);
    }
}
