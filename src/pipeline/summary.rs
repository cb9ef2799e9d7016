//! The outcome of a run or a merge, in counts: what the executor, the
//! manifest and `merge` share.

use std::time::Duration;

use crate::io::manifest::ShardRecord;
use crate::pipeline::partition::Partition;

/// The outcome of a run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The partition this run wrote (`None`: the whole output).
    pub partition: Option<Partition>,
    /// Input samples.
    pub samples_in: usize,
    /// Output samples in the finished output (all shards; for a partition, its shards).
    pub samples_out: usize,
    /// Output samples dropped by policy.
    pub samples_dropped: usize,
    /// Shards written by this run.
    pub shards_written: usize,
    /// Shards kept from an earlier, interrupted run.
    pub shards_resumed: usize,
    /// Bytes written by this run.
    pub bytes_written: u64,
    /// Bytes of the whole output (for a partition, of its shards).
    pub bytes_total: u64,
    /// Input files skipped by policy.
    pub files_skipped: usize,
    /// Wall time of this run.
    pub elapsed: Duration,
    /// How this run wrote its shards (direct or buffered, and why), when it
    /// wrote any.
    pub io: Option<String>,
}

impl Summary {
    /// Count the shards this run wrote, and their bytes.
    pub(super) fn count_written(&mut self, written: &[ShardRecord]) {
        self.shards_written += written.len();
        self.bytes_written += written
            .iter()
            .flat_map(|s| &s.files)
            .map(|f| f.bytes)
            .sum::<u64>();
    }

    /// Count the samples, drops and bytes of the finished output.
    pub(super) fn count_output(&mut self, shards: &[ShardRecord]) {
        self.samples_out = shards.iter().map(|s| s.samples).sum();
        self.samples_dropped = shards.iter().map(|s| s.dropped.len()).sum();
        self.bytes_total = shards.iter().flat_map(|s| &s.files).map(|f| f.bytes).sum();
    }
}
