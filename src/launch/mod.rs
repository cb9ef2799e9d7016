//! Launchers: files that run one pipeline as N partitions on the engines our
//! users already have — a Slurm job array with a dependent merge job
//! ([`slurm`]) and a Kubernetes Indexed Job with a merge Job ([`k8s`]). Both
//! only write readable, editable files; seispipe schedules nothing itself.
//!
//! Each task runs `seispipe run PIPELINE --partitions N` and takes its index
//! from the engine (`SLURM_ARRAY_TASK_ID`, `JOB_COMPLETION_INDEX`; see
//! `pipeline::partition`), so a task requeued after a node failure resumes
//! its own shards; the merge runs `seispipe merge OUT` once every task
//! succeeded.

pub mod k8s;
pub mod slurm;

/// What every launcher needs to know about the job.
#[derive(Debug, Clone)]
pub struct Job {
    /// A name for the jobs (letters, digits, `-`), from the output directory.
    pub name: String,
    /// The pipeline file as the tasks name it (relative to `workdir`, or absolute).
    pub pipeline: String,
    /// `--set` overrides, passed on to every task.
    pub overrides: Vec<String>,
    /// The output directory as the tasks name it.
    pub output: String,
    /// Number of partitions (tasks).
    pub partitions: usize,
    /// Shards of the output, for comments and checks.
    pub shards: usize,
}

/// A job name from an output directory: its last component, lower case,
/// other characters replaced by `-`.
#[must_use]
pub fn job_name(output: &str) -> String {
    let last = output
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("run");
    let name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    // Kubernetes names are at most 63 characters; "seispipe-" and "-merge" are added.
    let name: String = name.trim_matches('-').chars().take(40).collect();
    let name = name.trim_end_matches('-').to_string();
    if name.is_empty() {
        "run".into()
    } else {
        name
    }
}

/// `s` quoted for a POSIX shell (single quotes; `'` as `'\''`).
#[must_use]
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_and_shell_quoting() {
        assert_eq!(job_name("out/Big Run_2/"), "big-run-2");
        assert_eq!(job_name("/"), "run");
        assert_eq!(shell_quote("out/p.toml"), "out/p.toml");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }
}
