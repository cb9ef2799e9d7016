//! Partitions: the share of one run's output shards that one process
//! produces, so that a job array (Slurm, a Kubernetes Indexed Job, a loop over
//! machines) writes one output together.
//!
//! Partition `I/N` (0-based, `0 ≤ I < N`) owns the contiguous shard range
//! `⌊I·S/N⌋ .. ⌊(I+1)·S/N⌋` of an output of `S` shards: every shard belongs to
//! exactly one partition, ranges differ in length by at most one, and a
//! partition beyond the shards (`N > S`) owns nothing and succeeds at once.
//! The bytes of a shard never depend on which partition wrote it (every random
//! draw comes from [`crate::rng`]).
//!
//! `I` and `N` come from `--partition I/N`, or from the engine's environment:
//! Slurm job arrays (`SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN` of
//! `SLURM_ARRAY_TASK_COUNT`, step 1) or Kubernetes Indexed Jobs
//! (`JOB_COMPLETION_INDEX` of `--partitions N` or `SEISPIPE_PARTITIONS`). A
//! flag and an environment that disagree is an error: an array launched with
//! the wrong size would otherwise skip or repeat shards.

use std::fmt;
use std::ops::Range;

use crate::io::format::Shard;

/// Partition `index` of `count` (0-based).
/// A partition that does not exist, or flags and a launcher's environment
/// that do not name one partition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// A partition count of 0.
    #[error("the partition count must be at least 1")]
    NoPartitions,
    /// An index beyond the count.
    #[error("partition {index} of {count} does not exist: partitions are numbered 0 to {last} (0-based)", last = count - 1)]
    NoSuch { index: usize, count: usize },
    /// Text that is not `I/N`.
    #[error("{text:?} is not a partition: write I/N with 0 ≤ I < N, e.g. 0/4")]
    NotAPartition { text: String },
    /// Flags and the launcher's variables (Slurm, Kubernetes) that are
    /// malformed or disagree; the sentence names both.
    #[error("{0}")]
    Launch(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// Which partition, `0 ≤ index < count`.
    pub index: usize,
    /// How many partitions share the output.
    pub count: usize,
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Partition {
    /// The whole output as one partition (a run without `--partition`).
    pub const WHOLE: Partition = Partition { index: 0, count: 1 };

    /// `index/count`, checked.
    ///
    /// # Errors
    /// `count` is 0 or `index ≥ count`, as a sentence.
    pub fn new(index: usize, count: usize) -> Result<Partition, PartitionError> {
        if count == 0 {
            return Err(PartitionError::NoPartitions);
        }
        if index >= count {
            return Err(PartitionError::NoSuch { index, count });
        }
        Ok(Partition { index, count })
    }

    /// Parse `I/N`.
    ///
    /// # Errors
    /// Not of the form `I/N` with whole numbers, or out of range.
    pub fn parse(text: &str) -> Result<Partition, PartitionError> {
        let bad = || PartitionError::NotAPartition {
            text: text.to_string(),
        };
        let (i, n) = text.trim().split_once('/').ok_or_else(bad)?;
        let i: usize = i.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        Partition::new(i, n)
    }

    /// The 0-based shard indices this partition owns of an output of `shards`.
    #[must_use]
    pub fn shards(&self, shards: usize) -> Range<usize> {
        self.index * shards / self.count..(self.index + 1) * shards / self.count
    }

    /// The shards this partition owns of an output of `shards`, in order.
    pub fn owned(&self, shards: usize) -> impl Iterator<Item = Shard> + Clone {
        self.shards(shards).map(Shard::at)
    }

    /// File-name form, `I-of-N`.
    #[must_use]
    pub fn file_stem(&self) -> String {
        format!("{}-of-{}", self.index, self.count)
    }

    /// Parse [`Partition::file_stem`]'s form back.
    #[must_use]
    pub fn from_file_stem(stem: &str) -> Option<Partition> {
        let (i, n) = stem.split_once("-of-")?;
        Partition::new(i.parse().ok()?, n.parse().ok()?).ok()
    }

    /// Whether this is the whole output.
    #[must_use]
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }
}

/// Which partition this process runs: from the flags (`--partition I/N`,
/// `--partitions N`) and the engine's environment (`env` looks a variable up).
/// `None`: no flag and no engine variables, the whole output.
///
/// # Errors
/// A malformed variable, a Slurm array with a step, or flags and environment
/// that disagree, as a sentence naming both.
pub fn resolve(
    flag: Option<Partition>,
    count_flag: Option<usize>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Partition>, PartitionError> {
    if let (Some(p), Some(n)) = (flag, count_flag) {
        if p.count != n {
            return Err(PartitionError::Launch(format!(
                "--partition {p} and --partitions {n} disagree on the partition count"
            )));
        }
    }
    let from_env = from_environment(count_flag.or(flag.map(|p| p.count)), env)?;
    match (flag, from_env) {
        (Some(p), Some((e, source))) if p != e => Err(PartitionError::Launch(format!(
            "--partition {p} disagrees with the environment, which says partition {e} ({source}); launch the array with as many tasks as partitions, or drop the flag"
        ))),
        (Some(p), _) => Ok(Some(p)),
        (None, Some((e, _))) => Ok(Some(e)),
        (None, None) => match count_flag {
            Some(n) => Err(PartitionError::Launch(format!(
                "--partitions {n} needs the partition index: pass --partition I/{n}, or run as a Slurm array task or a Kubernetes Indexed Job (SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX)"
            ))),
            None => Ok(None),
        },
    }
}

/// The partition the engine's variables name, with a description of where it
/// came from. `count` is the partition count from the flags, if any.
fn from_environment(
    count: Option<usize>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<(Partition, String)>, PartitionError> {
    let number = |name: &str| -> Result<Option<usize>, PartitionError> {
        env(name)
            .map(|v| {
                v.trim().parse::<usize>().map_err(|_| {
                    PartitionError::Launch(format!("{name}={v:?} is not a whole number"))
                })
            })
            .transpose()
    };
    if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
        let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1);
        if step != 1 {
            return Err(PartitionError::Launch(format!(
                "SLURM_ARRAY_TASK_STEP={step}: seispipe partitions need an array with step 1 (e.g. --array=0-{})",
                count.map_or_else(|| "N-1".to_string(), |n| n.saturating_sub(1).to_string())
            )));
        }
        let Some(n) = number("SLURM_ARRAY_TASK_COUNT")? else {
            return Err(PartitionError::Launch(
                "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not".into(),
            ));
        };
        if let Some(c) = count {
            if c != n {
                return Err(PartitionError::Launch(format!(
                    "the Slurm array has {n} tasks (SLURM_ARRAY_TASK_COUNT) but the run asks for {c} partitions; submit the array as --array=0-{}",
                    c.saturating_sub(1)
                )));
            }
        }
        let i = id.checked_sub(min).ok_or_else(|| {
            PartitionError::Launch(format!(
                "SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}"
            ))
        })?;
        let p = Partition::new(i, n)
            .map_err(|e| PartitionError::Launch(format!("from the Slurm array: {e}")))?;
        return Ok(Some((
            p,
            format!(
                "SLURM_ARRAY_TASK_ID={id}, SLURM_ARRAY_TASK_MIN={min}, SLURM_ARRAY_TASK_COUNT={n}"
            ),
        )));
    }
    if let Some(i) = number("JOB_COMPLETION_INDEX")? {
        let from_var = number("SEISPIPE_PARTITIONS")?;
        if let (Some(c), Some(v)) = (count, from_var) {
            if c != v {
                return Err(PartitionError::Launch(format!(
                    "--partitions {c} disagrees with SEISPIPE_PARTITIONS={v}"
                )));
            }
        }
        let Some(n) = count.or(from_var) else {
            return Err(PartitionError::Launch(format!(
                "JOB_COMPLETION_INDEX={i} is set but the partition count is not: pass --partitions N or set SEISPIPE_PARTITIONS (the Indexed Job's completions)"
            )));
        };
        let p = Partition::new(i, n)
            .map_err(|e| PartitionError::Launch(format!("from the Kubernetes job: {e}")))?;
        return Ok(Some((p, format!("JOB_COMPLETION_INDEX={i} of {n}"))));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn parse_accepts_i_of_n_and_names_what_is_wrong() {
        assert_eq!(
            Partition::parse("2/4"),
            Ok(Partition { index: 2, count: 4 })
        );
        assert_eq!(Partition::parse(" 0 / 1 "), Ok(Partition::WHOLE));
        let e = Partition::parse("4/4").unwrap_err().to_string();
        assert!(e.contains("numbered 0 to 3"), "{e}");
        let e = Partition::parse("0/0").unwrap_err().to_string();
        assert!(e.contains("at least 1"), "{e}");
        for bad in ["x/4", "1", "1/", "-1/4", "1/4/5", ""] {
            let e = Partition::parse(bad).unwrap_err().to_string();
            assert!(e.contains("is not a partition"), "{bad}: {e}");
        }
    }

    #[test]
    fn shard_ranges_tile_the_output_for_every_count() {
        for shards in 0..30 {
            for count in 1..12 {
                let mut next = 0;
                for index in 0..count {
                    let r = Partition { index, count }.shards(shards);
                    assert_eq!(r.start, next, "{shards} shards, {index}/{count}");
                    // Balanced: lengths differ by at most one.
                    assert!(r.len() == shards / count || r.len() == shards.div_ceil(count));
                    next = r.end;
                }
                assert_eq!(next, shards);
            }
        }
        // More partitions than shards: the extra ones own nothing.
        let empty = (0..7)
            .filter(|&i| Partition { index: i, count: 7 }.shards(3).is_empty())
            .count();
        assert_eq!(empty, 4);
    }

    #[test]
    fn file_stems_round_trip() {
        let p = Partition { index: 3, count: 7 };
        assert_eq!(p.file_stem(), "3-of-7");
        assert_eq!(Partition::from_file_stem("3-of-7"), Some(p));
        assert_eq!(Partition::from_file_stem("7-of-7"), None);
        assert_eq!(Partition::from_file_stem("journal"), None);
    }

    #[test]
    fn slurm_arrays_give_the_partition_from_the_task_id() {
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "12"),
            ("SLURM_ARRAY_TASK_MIN", "10"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        let p = Partition { index: 2, count: 4 };
        assert_eq!(resolve(None, None, &slurm), Ok(Some(p)));
        assert_eq!(resolve(None, Some(4), &slurm), Ok(Some(p)));
        assert_eq!(resolve(Some(p), None, &slurm), Ok(Some(p)));
        // A flag that disagrees, and an array of the wrong size, are errors.
        let e = resolve(Some(Partition { index: 1, count: 4 }), None, &slurm)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("disagrees") && e.contains("SLURM_ARRAY_TASK_ID=12"),
            "{e}"
        );
        let e = resolve(None, Some(5), &slurm).unwrap_err().to_string();
        assert!(
            e.contains("has 4 tasks") && e.contains("--array=0-4"),
            "{e}"
        );
        let step = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ]);
        assert!(resolve(None, None, &step)
            .unwrap_err()
            .to_string()
            .contains("step 1"));
        let junk = env(&[("SLURM_ARRAY_TASK_ID", "two")]);
        assert!(resolve(None, None, &junk)
            .unwrap_err()
            .to_string()
            .contains("not a whole number"));
    }

    #[test]
    fn kubernetes_indexed_jobs_need_the_count() {
        let k8s = env(&[("JOB_COMPLETION_INDEX", "3")]);
        assert_eq!(
            resolve(None, Some(5), &k8s),
            Ok(Some(Partition { index: 3, count: 5 }))
        );
        assert!(resolve(None, None, &k8s)
            .unwrap_err()
            .to_string()
            .contains("--partitions N"));
        let with_var = env(&[("JOB_COMPLETION_INDEX", "3"), ("SEISPIPE_PARTITIONS", "4")]);
        assert_eq!(
            resolve(None, None, &with_var),
            Ok(Some(Partition { index: 3, count: 4 }))
        );
        assert!(resolve(None, Some(5), &with_var)
            .unwrap_err()
            .to_string()
            .contains("disagrees"));
        let beyond = env(&[("JOB_COMPLETION_INDEX", "4"), ("SEISPIPE_PARTITIONS", "4")]);
        assert!(resolve(None, None, &beyond)
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
    }

    #[test]
    fn without_engine_variables_the_flags_decide() {
        let none = env(&[]);
        assert_eq!(resolve(None, None, &none), Ok(None));
        let p = Partition { index: 1, count: 3 };
        assert_eq!(resolve(Some(p), None, &none), Ok(Some(p)));
        assert_eq!(resolve(Some(p), Some(3), &none), Ok(Some(p)));
        assert!(resolve(Some(p), Some(4), &none)
            .unwrap_err()
            .to_string()
            .contains("disagree"));
        assert!(resolve(None, Some(3), &none)
            .unwrap_err()
            .to_string()
            .contains("needs the partition index"));
    }
}
