//! What one process claims in a shared output: the lock on its partition
//! (refusing a second process on the same shards, naming the holder), the
//! disk-space check before a run and while it writes, the marker a finished
//! partition leaves, and the run log of hosts and timings.
//!
//! Everything here lives in `OUT/.seispipe/`: `locks/I-of-N.lock`,
//! `partitions/I-of-N.json` and `run-log.jsonl`. None of it is part of the
//! output's canonical bytes (the manifest never mentions hosts or times).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::io::atomic;
use crate::io::lock::{self, FileLock};
use crate::io::manifest::STATE_DIR;
use crate::pipeline::partition::Partition;
use crate::progress::human_bytes;

/// Free space kept on the output's filesystem unless `--disk-reserve` says
/// otherwise: a run stops cleanly, resumable, when free space falls below it.
pub const DEFAULT_DISK_RESERVE: u64 = 2_000_000_000;

/// The lock files of an output.
fn locks_dir(out_dir: &Path) -> PathBuf {
    out_dir.join(STATE_DIR).join("locks")
}

/// Claim partition `part` of an output of `shards` shards: lock it, and refuse
/// when another live process holds a partition (of any count) that shares
/// shards with it. The lock is held until the returned value is dropped or the
/// process ends.
///
/// # Errors
/// Another process writes the same shards (named by host and pid), or the
/// lock cannot be taken.
pub(super) fn claim(out_dir: &Path, part: Partition, shards: usize) -> Result<FileLock> {
    let dir = locks_dir(out_dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "create directory", e))?;
    let own = dir.join(format!("{}.lock", part.file_stem()));
    let refuse = |reason: String| Error::Resume {
        dir: out_dir.to_path_buf(),
        reason,
    };
    let lock = match lock::try_lock(&own)? {
        lock::Attempt::Acquired(lock) => lock,
        lock::Attempt::HeldBy(holder) => return Err(refuse(already_written(part, &holder))),
    };
    check_others(out_dir, part, shards)?;
    Ok(lock)
}

fn already_written(part: Partition, holder: &str) -> String {
    format!(
        "{} is already being written by {holder}; two processes must not write the same shards (wait for it, or stop it first)",
        what(part)
    )
}

/// The read-only half of [`claim`]: refuse when a live process holds
/// partition `part` or one that shares shards with it, creating nothing (a
/// refused start leaves the output as it was). [`claim`] checks again once
/// its own lock is taken, so two processes starting together cannot both pass.
///
/// # Errors
/// As [`claim`].
pub(super) fn check_claim(out_dir: &Path, part: Partition, shards: usize) -> Result<()> {
    if !locks_dir(out_dir).is_dir() {
        return Ok(()); // no output yet (or not one that can be created: said later)
    }
    let own = locks_dir(out_dir).join(format!("{}.lock", part.file_stem()));
    if let Some(holder) = lock::held_by(&own)? {
        return Err(Error::Resume {
            dir: out_dir.to_path_buf(),
            reason: already_written(part, &holder),
        });
    }
    check_others(out_dir, part, shards)
}

/// Refuse when a live process holds a partition other than `part` that
/// shares shards with it.
fn check_others(out_dir: &Path, part: Partition, shards: usize) -> Result<()> {
    let dir = locks_dir(out_dir);
    let refuse = |reason: String| Error::Resume {
        dir: out_dir.to_path_buf(),
        reason,
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(&dir, "list directory", e)),
    };
    let mine = part.shards(shards);
    let mut others: Vec<(Partition, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&dir, "list directory", e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(other) = name
            .strip_suffix(".lock")
            .and_then(Partition::from_file_stem)
        else {
            continue;
        };
        others.push((other, entry.path()));
    }
    // In partition order, so the message names the same one every time.
    others.sort_by_key(|(p, _)| (p.count, p.index));
    for (other, path) in others {
        let theirs = other.shards(shards);
        let shared = mine.start.max(theirs.start)..mine.end.min(theirs.end);
        if other == part || shared.is_empty() {
            continue;
        }
        if let Some(holder) = lock::held_by(&path)? {
            return Err(refuse(format!(
                "{} is being written by {holder} and shares shards {}–{} with {}; run one partitioning of an output at a time",
                what(other),
                shared.start + 1,
                shared.end,
                what(part)
            )));
        }
    }
    Ok(())
}

/// The live holders of an output's partition locks, as "partition I/N (holder)".
///
/// # Errors
/// The locks cannot be listed or probed.
pub fn running(out_dir: &Path) -> Result<Vec<String>> {
    let dir = locks_dir(out_dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut names: Vec<_> = entries
        .filter_map(std::result::Result::ok)
        .map(|e| e.path())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for p in names {
        let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned());
        let Some(part) = stem.as_deref().and_then(Partition::from_file_stem) else {
            continue;
        };
        if let Some(holder) = lock::held_by(&p)? {
            out.push(format!("{} ({holder})", what(part)));
        }
    }
    Ok(out)
}

/// "partition I/N", or "the whole output" for 0/1.
#[must_use]
pub fn what(part: Partition) -> String {
    if part.is_whole() {
        "the whole output (a run without --partition)".into()
    } else {
        format!("partition {part}")
    }
}

/// Refuse a run whose remaining bytes (this partition's, and the whole
/// output's: partitions share the filesystem) do not fit in the free space
/// minus the reserve.
///
/// # Errors
/// It cannot fit (both figures named), or the free space cannot be read.
pub(super) fn check_fits(
    disk: &dyn crate::io::disk::DiskProbe,
    out_dir: &Path,
    part: Partition,
    partition_left: u64,
    output_left: u64,
    reserve: u64,
) -> Result<()> {
    if !part.is_whole() && partition_left == 0 {
        return Ok(()); // nothing to write here
    }
    // The output may not exist yet (nothing is created before this check):
    // its filesystem is that of its nearest existing ancestor.
    let probe = out_dir
        .ancestors()
        .find(|a| a.is_dir())
        .unwrap_or_else(|| Path::new("."));
    let free = disk.free_bytes(probe)?;
    let room = free.saturating_sub(reserve);
    let need = if part.is_whole() {
        output_left
    } else {
        partition_left.max(output_left)
    };
    if need <= room {
        return Ok(());
    }
    let share = if part.is_whole() {
        String::new()
    } else {
        format!(
            "{} still to write for {}, ",
            human_bytes(partition_left),
            what(part)
        )
    };
    Err(Error::Resume {
        dir: out_dir.to_path_buf(),
        reason: format!(
            "does not have room: {share}{} still to write for the whole output, but its filesystem has {} free and {} is kept in reserve (--disk-reserve); free {} (the bytes to write plus the reserve, minus what is free), or lower --disk-reserve, or pass --allow-overfill to start anyway",
            human_bytes(output_left),
            human_bytes(free),
            human_bytes(reserve),
            human_bytes((need + reserve).saturating_sub(free))
        ),
    })
}

/// The marker a finished partition leaves: what it covered.
#[derive(Serialize)]
struct Finished<'a> {
    partition: String,
    first_shard: usize,
    last_shard: usize,
    samples: usize,
    bytes: u64,
    host: &'a str,
}

/// Record that `part` finished its shards `range` (1-based, inclusive as
/// written) with `samples` samples and `bytes` bytes.
///
/// # Errors
/// I/O failures.
pub(super) fn mark_finished(
    out_dir: &Path,
    part: Partition,
    range: std::ops::Range<usize>,
    samples: usize,
    bytes: u64,
) -> Result<()> {
    let dir = out_dir.join(STATE_DIR).join("partitions");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "create directory", e))?;
    let host = lock::host_name();
    let body = Finished {
        partition: part.to_string(),
        first_shard: range.start + 1,
        last_shard: range.end,
        samples,
        bytes,
        host: &host,
    };
    atomic::write_atomic(
        &dir.join(format!("{}.json", part.file_stem())),
        serde_json::to_string_pretty(&body)
            .expect("json")
            .as_bytes(),
    )
}

/// One line of `OUT/.seispipe/run-log.jsonl`: who ran what, when, how fast.
#[derive(Serialize)]
pub(super) struct RunLogLine<'a> {
    pub host: &'a str,
    pub pid: u32,
    pub partition: String,
    pub started_unix_s: u64,
    pub seconds: f64,
    pub shards_written: usize,
    pub bytes_written: u64,
    pub outcome: &'a str,
}

/// Append a line to the run log (best effort: the log is for people).
pub(super) fn log_run(out_dir: &Path, line: &RunLogLine<'_>) {
    let p = out_dir.join(STATE_DIR).join("run-log.jsonl");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
    {
        let mut text = serde_json::to_string(line).expect("json");
        text.push('\n');
        let _ = f.write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_refuse_overlapping_live_partitions_only() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        std::fs::create_dir_all(out.join(STATE_DIR)).unwrap();
        let p = |i, n| Partition::new(i, n).unwrap();
        // 10 shards: 0/2 owns 0..5, 1/2 owns 5..10, 1/3 owns 3..6.
        let a = claim(out, p(0, 2), 10).unwrap();
        let b = claim(out, p(1, 2), 10).unwrap();
        let e = claim(out, p(0, 2), 10).unwrap_err().to_string();
        assert!(
            e.contains("partition 0/2 is already being written by") && e.contains("pid"),
            "{e}"
        );
        let e = claim(out, p(1, 3), 10).unwrap_err().to_string();
        assert!(e.contains("shares shards"), "{e}");
        let e = claim(out, Partition::WHOLE, 10).unwrap_err().to_string();
        assert!(e.contains("shares shards 1–5"), "{e}");
        assert_eq!(running(out).unwrap().len(), 2);
        drop(a);
        // 1/3 (shards 4–6) still overlaps 1/2 (shards 6–10).
        assert!(claim(out, p(1, 3), 10).is_err());
        // 0/3 owns shards 1–3: free now that 0/2 is released.
        let c = claim(out, p(0, 3), 10).unwrap();
        drop((b, c));
        assert!(running(out).unwrap().is_empty());
        assert!(claim(out, Partition::WHOLE, 10).is_ok());
    }

    #[test]
    fn a_run_that_cannot_fit_is_refused_with_both_figures() {
        use crate::io::disk::DiskProbe;
        let dir = tempfile::tempdir().unwrap();
        assert!(crate::io::disk::Statvfs.free_bytes(dir.path()).unwrap() > 0);
        check_fits(
            &crate::io::disk::Statvfs,
            dir.path(),
            Partition::WHOLE,
            0,
            1000,
            0,
        )
        .unwrap();
        let e = check_fits(
            &crate::io::disk::Statvfs,
            dir.path(),
            Partition::new(1, 4).unwrap(),
            1,
            u64::MAX / 2,
            0,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("still to write for partition 1/4"), "{e}");
        assert!(
            e.contains("for the whole output") && e.contains("--allow-overfill"),
            "{e}"
        );
        // The reserve counts against the free space.
        assert!(check_fits(
            &crate::io::disk::Statvfs,
            dir.path(),
            Partition::WHOLE,
            0,
            1,
            u64::MAX
        )
        .is_err());
    }
}
