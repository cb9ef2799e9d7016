//! The partition a command runs (from flags and the engine's environment)
//! and what `check` says about it.

use std::fmt::Write as _;
use std::path::Path;

use crate::cli::PartitionArgs;
use crate::error::{Error, Result};
use crate::pipeline::executor::ShardPlan;
use crate::pipeline::partition::{self, Partition};
use crate::progress::human_bytes;

/// `check`'s lines about the partition and the free space.
pub(super) fn partition_text(
    s: &mut String,
    partition: Option<Partition>,
    plan: &ShardPlan,
    out_dir: &str,
    disk: &dyn crate::io::disk::DiskProbe,
) {
    if let Some(part) = partition {
        let mine = part.shards(plan.shards);
        let samples: usize = part
            .owned(plan.shards)
            .map(|j| plan.shard_range(j).len())
            .sum();
        let bytes: u64 = part.owned(plan.shards).map(|j| plan.shard_bytes(j)).sum();
        if mine.is_empty() {
            let _ = writeln!(
                s,
                "partition {part}: no shards (the output has {} shards for {} partitions); it succeeds with nothing to do",
                plan.shards, part.count
            );
        } else {
            let _ = writeln!(
                s,
                "partition {part}: shards {}–{} of {}, {samples} samples, {}",
                mine.start + 1,
                mine.end,
                plan.shards,
                human_bytes(bytes)
            );
        }
    }
    let free = disk.free_bytes(
        Path::new(out_dir)
            .ancestors()
            .find(|a| a.exists())
            .unwrap_or(Path::new(".")),
    );
    if let Ok(free) = free {
        let _ = writeln!(
            s,
            "free space where the output goes: {}{}",
            human_bytes(free),
            if free < plan.total_bytes {
                " — LESS than the output needs"
            } else {
                ""
            }
        );
    }
}

/// The partition from `--partition`/`--partitions` and the engine's
/// environment (`None`: the whole output).
///
/// # Errors
/// A malformed partition or flags and environment that disagree.
pub(super) fn partition_of(args: &PartitionArgs) -> Result<Option<Partition>> {
    let flag = args
        .partition
        .as_deref()
        .map(Partition::parse)
        .transpose()
        .map_err(|e| Error::config("--partition", e))?;
    if args.partitions == Some(0) {
        return Err(Error::config(
            "--partitions",
            "the partition count must be at least 1",
        ));
    }
    partition::resolve(flag, args.partitions, &|k| std::env::var(k).ok())
        .map_err(|e| Error::config("--partition", e))
}
