//! The shard plan and its arithmetic: which output samples go to which shard,
//! the shard file names, the bytes of every shard file (npy header included)
//! and the bound on the sample data a run holds in memory. Nothing here reads
//! or writes a file.

use crate::io::format::Shard;
use crate::io::layout::InputSet;
use crate::io::npy::{self, DType};
use crate::pipeline::plan::Plan;
use crate::sample::{SEISMIC_SHAPE, VELOCITY_SHAPE};

/// The shard plan: which output samples go where.
#[derive(Debug, Clone)]
pub struct ShardPlan {
    /// Input samples.
    pub samples_in: usize,
    /// Output samples per input sample.
    pub per_input: usize,
    /// Output samples.
    pub samples_out: usize,
    /// Samples per shard.
    pub samples_per_shard: usize,
    /// Number of shards.
    pub shards: usize,
    /// Bytes of one full data shard file (header included).
    pub data_shard_bytes: u64,
    /// Bytes of one full label shard file, if labelled.
    pub label_shard_bytes: Option<u64>,
    /// Bytes of the whole output (before drops).
    pub total_bytes: u64,
    /// Element type, output seismic shape and whether labels are written.
    dtype: DType,
    out_shape: Vec<usize>,
    labels: bool,
    /// Whether data files are written (`output.data`).
    data: bool,
}

impl ShardPlan {
    /// ShardPlan `pipeline` over `inputs`.
    #[must_use]
    pub fn new(pipeline: &Plan, inputs: &InputSet) -> ShardPlan {
        let mut plan = ShardPlan::from_counts(
            inputs.total(),
            pipeline.outputs_per_input(),
            pipeline.spec.output.samples_per_shard,
            pipeline.spec.output.dtype,
            &pipeline.out_shape,
            pipeline.out_labels,
        );
        if !pipeline.spec.output.data {
            plan.without_data();
        }
        plan
    }

    /// The plan of an output that writes no seismic data (`output.data = false`).
    fn without_data(&mut self) {
        self.data = false;
        self.total_bytes = self.all().map(|j| self.shard_bytes(j)).sum();
        self.data_shard_bytes = 0;
    }

    /// ShardPlan `samples_in` input samples making `per_input` output samples each,
    /// `samples_per_shard` to a shard, each output sample of seismic shape
    /// `out_shape` (and a velocity map when `labels`), written as `dtype`.
    #[must_use]
    pub fn from_counts(
        samples_in: usize,
        per_input: usize,
        samples_per_shard: usize,
        dtype: DType,
        out_shape: &[usize],
        labels: bool,
    ) -> ShardPlan {
        let samples_out = samples_in * per_input;
        let sps = samples_per_shard;
        let shards = samples_out.div_ceil(sps);
        let mut total = 0;
        for j in 0..shards {
            let n = (samples_out - j * sps).min(sps);
            total += npy_file_bytes(dtype, n, out_shape);
            if labels {
                total += npy_file_bytes(dtype, n, &VELOCITY_SHAPE);
            }
        }
        let full = sps.min(samples_out.max(1));
        ShardPlan {
            samples_in,
            per_input,
            samples_out,
            samples_per_shard: sps,
            shards,
            data_shard_bytes: npy_file_bytes(dtype, full, out_shape),
            label_shard_bytes: labels.then(|| npy_file_bytes(dtype, full, &VELOCITY_SHAPE)),
            total_bytes: total,
            dtype,
            out_shape: out_shape.to_vec(),
            labels,
            data: true,
        }
    }

    /// Every shard of the plan, in order.
    pub fn all(&self) -> impl Iterator<Item = Shard> + Clone {
        (0..self.shards).map(Shard::at)
    }

    /// Bytes of `shard`'s files (data and label, headers included, before
    /// drops).
    #[must_use]
    pub fn shard_bytes(&self, shard: Shard) -> u64 {
        let n = self.shard_range(shard).len();
        let data = if self.data {
            npy_file_bytes(self.dtype, n, &self.out_shape)
        } else {
            0
        };
        data + if self.labels {
            npy_file_bytes(self.dtype, n, &VELOCITY_SHAPE)
        } else {
            0
        }
    }

    /// Output sample range of `shard`.
    #[must_use]
    pub fn shard_range(&self, shard: Shard) -> std::ops::Range<usize> {
        let a = shard.position() * self.samples_per_shard;
        a..(a + self.samples_per_shard).min(self.samples_out)
    }
}

/// The shape of a file holding `n` samples of shape `shape`: `[n, shape…]`.
#[must_use]
pub fn stacked(n: usize, shape: &[usize]) -> Vec<usize> {
    let mut s = Vec::with_capacity(shape.len() + 1);
    s.push(n);
    s.extend_from_slice(shape);
    s
}

/// Bytes of an npy file of `n` samples of shape `shape` as `dtype`, header included.
#[must_use]
pub fn npy_file_bytes(dtype: DType, n: usize, shape: &[usize]) -> u64 {
    npy::header_bytes(dtype, &stacked(n, shape)).len() as u64
        + (n * shape.iter().product::<usize>() * npy::itemsize(dtype)) as u64
}

/// Relative paths of `shard`'s data and label files.
#[must_use]
pub fn shard_paths(shard: Shard) -> (String, String) {
    (
        format!("data/data{}.npy", shard.number()),
        format!("model/model{}.npy", shard.number()),
    )
}

/// Relative path of `shard`'s provenance file.
#[must_use]
pub fn provenance_path(shard: Shard) -> String {
    format!("provenance/prov{}.jsonl", shard.number())
}

/// Upper bound of the sample data held in memory at once, in bytes: every
/// channel slot and every thread holds at most one chunk.
#[must_use]
pub fn memory_bound_bytes(pipeline: &Plan) -> u64 {
    memory_bound(
        pipeline.batch_stages(),
        &pipeline.out_shape,
        pipeline.spec.run.chunk_samples,
    )
}

/// [`memory_bound_bytes`] of a pipeline with `batch_stages` batch stages,
/// output seismic shape `out_shape` and chunks of `chunk_samples` samples.
#[must_use]
pub fn memory_bound(batch_stages: usize, out_shape: &[usize], chunk_samples: usize) -> u64 {
    let segments = 1 + batch_stages;
    let in_bytes =
        (SEISMIC_SHAPE.iter().product::<usize>() + VELOCITY_SHAPE.iter().product::<usize>()) * 4;
    let out_bytes =
        (out_shape.iter().product::<usize>() + VELOCITY_SHAPE.iter().product::<usize>()) * 4;
    // Per segment: one chunk being built and one in the channel; the hash
    // thread and the writer each hold one, with one in the channel between.
    let chunks = (2 * segments + 3) as u64;
    // A sample in flight may hold its input and its output at once.
    chunks * chunk_samples as u64 * (in_bytes + out_bytes) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(samples_in: usize, per_input: usize, sps: usize) -> ShardPlan {
        ShardPlan::from_counts(samples_in, per_input, sps, DType::F32, &SEISMIC_SHAPE, true)
    }

    #[test]
    fn shard_bytes_add_up_to_the_total() {
        for (n, per, sps) in [(5, 2, 4), (4, 2, 4), (3, 1, 8), (0, 3, 8)] {
            let p = plan(n, per, sps);
            let sum: u64 = p.all().map(|j| p.shard_bytes(j)).sum();
            assert_eq!(sum, p.total_bytes, "{n} × {per}, {sps} to a shard");
        }
    }

    fn ranges(p: &ShardPlan) -> Vec<std::ops::Range<usize>> {
        p.all().map(|j| p.shard_range(j)).collect()
    }

    #[test]
    fn shard_ranges_cover_the_output_and_the_last_shard_is_partial() {
        // 5 inputs × 2 outputs = 10 samples, 4 to a shard: 4 + 4 + 2.
        let p = plan(5, 2, 4);
        assert_eq!((p.samples_out, p.shards), (10, 3));
        assert_eq!(ranges(&p), vec![0..4, 4..8, 8..10]);
        // An exact multiple has no partial shard.
        let p = plan(4, 2, 4);
        assert_eq!(ranges(&p), vec![0..4, 4..8]);
        // Fewer samples than a shard holds: one short shard.
        let p = plan(3, 1, 8);
        assert_eq!(ranges(&p), vec![0..3]);
        // One sample to a shard.
        let p = plan(3, 1, 1);
        assert_eq!(ranges(&p), vec![0..1, 1..2, 2..3]);
        // Nothing in, nothing planned.
        let p = plan(0, 3, 8);
        assert_eq!((p.samples_out, p.shards, p.total_bytes), (0, 0, 0));
    }

    #[test]
    fn shard_file_bytes_for_f32_and_f16() {
        let sample: u64 = 5 * 1000 * 70;
        let label: u64 = 70 * 70;
        // An npy v1 header is padded to a multiple of 64 bytes: 128 here.
        let header = npy::header_bytes(DType::F32, &stacked(8, &SEISMIC_SHAPE)).len() as u64;
        assert_eq!(header, 128);
        assert_eq!(
            npy_file_bytes(DType::F32, 8, &SEISMIC_SHAPE),
            header + 8 * sample * 4
        );
        assert_eq!(
            npy_file_bytes(DType::F16, 8, &SEISMIC_SHAPE),
            header + 8 * sample * 2
        );
        let p = plan(5, 2, 4);
        assert_eq!(p.data_shard_bytes, header + 4 * sample * 4);
        assert_eq!(p.label_shard_bytes, Some(header + 4 * label * 4));
        // Two full shards and one of 2 samples, data and labels.
        assert_eq!(
            p.total_bytes,
            6 * header + (4 + 4 + 2) * (sample + label) * 4
        );
        let f16 = ShardPlan::from_counts(5, 2, 4, DType::F16, &SEISMIC_SHAPE, false);
        assert_eq!(f16.data_shard_bytes, header + 4 * sample * 2);
        assert_eq!(f16.label_shard_bytes, None);
        assert_eq!(f16.total_bytes, 3 * header + 10 * sample * 2);
        // A shard plan over no samples still sizes a one-sample shard.
        assert_eq!(plan(0, 1, 8).data_shard_bytes, header + sample * 4);
    }

    #[test]
    fn shard_paths_are_one_based() {
        assert_eq!(
            shard_paths(Shard::at(0)),
            ("data/data1.npy".into(), "model/model1.npy".into())
        );
        assert_eq!(
            shard_paths(Shard::at(11)),
            ("data/data12.npy".into(), "model/model12.npy".into())
        );
    }

    #[test]
    fn memory_bound_counts_chunks_in_flight() {
        // A sample in and out: (5·1000·70 + 70·70) f32 each way.
        let per_sample: u64 = 2 * (350_000 + 4_900) * 4;
        // No batch stage: one segment, so 2·1 + 3 = 5 chunks.
        assert_eq!(memory_bound(0, &SEISMIC_SHAPE, 32), 5 * 32 * per_sample);
        assert_eq!(memory_bound(0, &SEISMIC_SHAPE, 32), 454_272_000);
        // Each batch stage adds a segment: 2 more chunks.
        assert_eq!(memory_bound(2, &SEISMIC_SHAPE, 1), 9 * per_sample);
        // A smaller output shape shrinks the output half only.
        let out = [5, 16, 47];
        let small = (350_000 + 4_900 + 5 * 16 * 47 + 4_900) * 4;
        assert_eq!(memory_bound(0, &out, 4), 5 * 4 * small);
    }
}
