//! The work on samples and chunks, apart from the threads that do it: an
//! [`Item`] is one output sample with its stage records, a [`Chunk`] the run of
//! items that moves between threads, a [`Segment`] a run of stages that one
//! thread applies. [`Ctx`] reads an output sample from its input, hands each
//! stage its deterministic random stream, applies per-sample and batch
//! stages, and drops or fails a sample by the `on_nonfinite` policy.

use crate::error::{Error, Result, StageError};
use crate::io::layout::{check_finite, InputSet};
use crate::pipeline::build::Pipeline;
use crate::pipeline::records::stage_record;
use crate::pipeline::shards::{stacked, ShardPlan};
use crate::pipeline::spec::{DType, Policy};
use crate::rng::stage_rng;
use crate::sample::{Sample, VELOCITY_SHAPE};
use crate::stage::{BatchStage, Runtime, Stage, StageCtx};

/// One output sample on its way to the writer.
pub(super) struct Item {
    /// Index over all output samples of the run.
    pub out_index: usize,
    /// The sample (`dropped` set when policy dropped it).
    pub sample: Sample,
    /// One record per stage applied (see [`stage_record`]).
    pub records: Vec<crate::io::manifest::StageRecord>,
    /// The file bytes of the seismic and the velocity map, when they are not
    /// the arrays' own memory (f16 output); filled by [`Ctx::prepare_output`]
    /// or the hash thread.
    pub encoded: Option<(Vec<u8>, Option<Vec<u8>>)>,
    /// The result of [`check_output`], when [`Ctx::prepare_output`] ran it;
    /// the hash thread applies it in output order (so the first bad sample is
    /// the one reported, whichever thread checked it first).
    pub checked: Option<Result<()>>,
}

/// Consecutive output samples of one shard: what moves between threads.
pub(super) struct Chunk {
    /// The shard.
    pub shard: crate::io::manifest::Shard,
    /// Whether this chunk starts the shard.
    pub first_of_shard: bool,
    /// Whether this chunk ends the shard.
    pub last_of_shard: bool,
    /// The samples, in output order.
    pub items: Vec<Item>,
    /// On a shard's last chunk, after the hash thread: SHA-256 (hex) of the
    /// data file and of the label file as planned.
    pub digests: Option<(Option<String>, Option<String>)>,
}

/// A run of stages that one thread applies to a chunk.
pub(super) enum Segment<'p> {
    /// Per-sample stages (index, stage), run by rayon.
    Samples(Vec<(usize, &'p dyn Stage)>),
    /// A batch stage, on its own thread.
    Batch(usize, &'p dyn BatchStage),
}

/// The stages in groups: the per-sample stages before the first batch stage,
/// then each batch stage with the per-sample stages after it. Each group after
/// the first runs on a thread of its own.
pub(super) fn segments(pipeline: &Pipeline) -> Vec<Vec<Segment<'_>>> {
    segments_of(&pipeline.runtimes)
}

/// [`segments`] over the stages' runtimes, in pipeline order.
fn segments_of<'p>(runtimes: impl IntoIterator<Item = &'p Runtime>) -> Vec<Vec<Segment<'p>>> {
    // Group: [first per-sample run], then for each batch stage: [batch, following per-sample run].
    let mut groups: Vec<Vec<Segment<'p>>> = vec![vec![Segment::Samples(Vec::new())]];
    for (i, runtime) in runtimes.into_iter().enumerate() {
        match runtime {
            Runtime::Sample(st) => {
                let g = groups.last_mut().expect("one group");
                if let Some(Segment::Samples(v)) = g.last_mut() {
                    v.push((i, st.as_ref()));
                } else {
                    g.push(Segment::Samples(vec![(i, st.as_ref())]));
                }
            }
            Runtime::Batch(b) => groups.push(vec![Segment::Batch(i, b.as_ref())]),
        }
    }
    groups
}

/// What every thread reads: the pipeline, its inputs and the shard plan.
pub(super) struct Ctx<'a> {
    pub pipeline: &'a Pipeline,
    pub inputs: &'a InputSet,
    pub plan: &'a ShardPlan,
}

impl Ctx<'_> {
    /// The file shapes of shard `shard` (0-based): data, then labels.
    pub fn shard_shapes(&self, shard: crate::io::manifest::Shard) -> (Vec<usize>, Vec<usize>) {
        let n = self.plan.shard_range(shard).len();
        (
            stacked(n, &self.pipeline.plan.out_shape),
            stacked(n, &VELOCITY_SHAPE),
        )
    }

    fn stage_ctx(&self, sample: &Sample, stage_index: usize) -> StageCtx<'_> {
        let f = &self.inputs.files[sample.origin.input];
        StageCtx {
            rng: stage_rng(
                self.pipeline.plan.spec.seed,
                &f.rel,
                sample.origin.index as u64,
                sample.origin.copy,
                stage_index as u64,
            ),
            inputs: self.inputs,
            seed: self.pipeline.plan.spec.seed,
            stage_index,
        }
    }

    fn stage_error(&self, sample: &Sample, stage_index: usize, e: &StageError) -> Error {
        let f = &self.inputs.files[sample.origin.input];
        Error::Sample {
            path: f.data.clone(),
            index: sample.origin.index,
            reason: format!("{}: {e}", self.pipeline.plan.stages[stage_index].at),
        }
    }

    /// Fail with `err`, or drop the sample for it (`on_nonfinite = "skip"`).
    pub fn drop_or_fail(&self, item: &mut Item, err: Error) -> Result<()> {
        match self.pipeline.plan.spec.input.on_nonfinite {
            Policy::Error => Err(err),
            Policy::Skip => {
                item.sample.dropped = Some(err.to_string());
                Ok(())
            }
        }
    }

    /// Read output sample `o` and run the first per-sample segment on it.
    pub fn produce(&self, o: usize, first: &[(usize, &dyn Stage)]) -> Result<Item> {
        let global = o / self.plan.per_input;
        let k = (o % self.plan.per_input) as u64;
        let copy = if self.pipeline.plan.spec.keep_original {
            k
        } else {
            k + 1
        };
        let (file, index) = self.inputs.locate(global);
        let f = &self.inputs.files[file];
        let sample = Sample {
            id: self.inputs.sample_id(file, index),
            origin: crate::sample::Origin {
                input: file,
                index,
                global,
                copy,
            },
            seismic: self.inputs.read_seismic(file, index)?,
            velocity: self.inputs.read_velocity(file, index)?,
            dropped: None,
        };
        let mut item = Item {
            out_index: o,
            sample,
            records: Vec::new(),
            encoded: None,
            checked: None,
        };
        let mut bad = check_finite(standard(&item.sample.seismic), &f.data, index, "seismic").err();
        if bad.is_none() {
            if let (Some(v), Some(lp)) = (&item.sample.velocity, &f.label) {
                bad = check_finite(
                    v.as_slice().expect("read arrays are standard"),
                    lp,
                    index,
                    "velocity",
                )
                .err();
            }
        }
        if let Some(e) = bad {
            self.drop_or_fail(&mut item, e)?;
            return Ok(item);
        }
        if copy > 0 {
            self.run_samples(&mut item, first)?;
        }
        Ok(item)
    }

    /// Apply per-sample `stages` to a copy (originals pass untouched).
    pub fn run_samples(&self, item: &mut Item, stages: &[(usize, &dyn Stage)]) -> Result<()> {
        if item.sample.origin.copy == 0 {
            return Ok(());
        }
        for &(i, st) in stages {
            if item.sample.dropped.is_some() {
                break;
            }
            let mut ctx = self.stage_ctx(&item.sample, i);
            let rec = st
                .apply(&mut item.sample, &mut ctx)
                .map_err(|e| self.stage_error(&item.sample, i, &e))?;
            item.records
                .push(stage_record(i, self.pipeline.plan.stages[i].kind, rec));
        }
        Ok(())
    }

    /// Apply batch stage `i` to the live copies of `chunk`.
    pub fn run_batch(&self, chunk: &mut Chunk, i: usize, b: &dyn BatchStage) -> Result<()> {
        let live: Vec<usize> = chunk
            .items
            .iter()
            .enumerate()
            .filter(|(_, it)| it.sample.dropped.is_none() && it.sample.origin.copy > 0)
            .map(|(j, _)| j)
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        let mut samples: Vec<Sample> = live
            .iter()
            .map(|&j| {
                let origin = chunk.items[j].sample.origin.clone();
                std::mem::replace(
                    &mut chunk.items[j].sample,
                    Sample {
                        id: String::new(),
                        origin,
                        seismic: ndarray::ArrayD::zeros(ndarray::IxDyn(&[0])),
                        velocity: None,
                        dropped: None,
                    },
                )
            })
            .collect();
        let mut ctxs: Vec<StageCtx<'_>> = samples.iter().map(|s| self.stage_ctx(s, i)).collect();
        let recs = b.apply_batch(&mut samples, &mut ctxs).map_err(|e| {
            let k = e.batch_index.filter(|&k| k < samples.len()).unwrap_or(0);
            self.stage_error(&samples[k], i, &e)
        });
        for (&j, s) in live.iter().zip(samples) {
            chunk.items[j].sample = s;
        }
        let recs = recs?;
        for (&j, r) in live.iter().zip(recs) {
            chunk.items[j]
                .records
                .push(stage_record(i, self.pipeline.plan.stages[i].kind, r));
        }
        Ok(())
    }

    /// The per-sample work between the last stage and the hash, run in
    /// parallel by the thread of the last stages so the hash thread only
    /// hashes: the arrays made standard layout, the output check (kept in
    /// `item.checked`), and for f16 output the file bytes.
    pub fn prepare_output(&self, item: &mut Item) {
        if item.sample.dropped.is_some() || item.checked.is_some() {
            return;
        }
        standardize(&mut item.sample);
        let dtype = self.pipeline.plan.spec.output.dtype;
        let checked = check_output(self, &item.sample, dtype);
        let labels = self.pipeline.plan.out_labels;
        let s = &item.sample;
        if checked.is_ok() && dtype != DType::F32 && !(labels && s.velocity.is_none()) {
            let mut data = Vec::new();
            if self.pipeline.plan.spec.output.data {
                crate::io::npy::encode_item(standard(&s.seismic), dtype, &mut data);
            }
            let mut label = Vec::new();
            if let (true, Some(v)) = (labels, s.velocity.as_ref()) {
                crate::io::npy::encode_item(standard(v), dtype, &mut label);
            }
            item.encoded = Some((data, labels.then_some(label)));
        }
        item.checked = Some(checked);
    }
}

/// Make a sample's arrays standard layout (a stage may hand back a view's
/// strides).
pub(super) fn standardize(s: &mut Sample) {
    if !s.seismic.is_standard_layout() {
        s.seismic = s.seismic.as_standard_layout().into_owned();
    }
    if let Some(v) = s.velocity.as_mut() {
        if !v.is_standard_layout() {
            *v = v.as_standard_layout().into_owned();
        }
    }
}

/// The elements of a standard-layout array (stages hand back owned arrays).
pub(super) fn standard<D: ndarray::Dimension>(a: &ndarray::Array<f32, D>) -> &[f32] {
    a.as_slice()
        .expect("arrays read from disk are standard layout")
}

/// Check an output sample: finite values, and the float16 range for f16.
pub(super) fn check_output(ctx: &Ctx<'_>, s: &Sample, dtype: DType) -> Result<()> {
    let f = &ctx.inputs.files[s.origin.input];
    let seismic = s.seismic.as_standard_layout();
    let seismic = seismic.as_slice().expect("standard layout");
    check_finite(seismic, &f.data, s.origin.index, "output seismic")?;
    let velocity = s
        .velocity
        .as_ref()
        .map(ndarray::ArrayBase::as_standard_layout);
    let velocity = velocity
        .as_ref()
        .map(|v| v.as_slice().expect("standard layout"));
    if let Some(v) = velocity {
        check_finite(v, &f.data, s.origin.index, "output velocity")?;
    }
    if dtype == DType::F16 {
        let max = seismic
            .iter()
            .chain(velocity.unwrap_or(&[]))
            .fold(0f32, |m, v| m.max(v.abs()));
        if max > 65504.0 {
            return Err(Error::Sample {
                path: f.data.clone(),
                index: s.origin.index,
                reason: format!(
                    "value {max} does not fit float16 (max 65504); write f32 or rescale"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::StageError;
    use crate::stage::{Record, StageCtx};

    struct PerSample;
    impl Stage for PerSample {
        fn apply(&self, _: &mut Sample, _: &mut StageCtx<'_>) -> Result<Record, StageError> {
            unreachable!("grouping never runs a stage")
        }
    }
    struct Batched;
    impl BatchStage for Batched {
        fn apply_batch(
            &self,
            _: &mut [Sample],
            _: &mut [StageCtx<'_>],
        ) -> Result<Vec<Record>, StageError> {
            unreachable!("grouping never runs a stage")
        }
    }

    /// The grouping of a pipeline written as `s` (per-sample) and `B`
    /// (batch) letters, as text: groups separated by `|`, each segment as
    /// its stage indices, e.g. `"[0 1] | B2 [3]"`.
    fn grouping(kinds: &str) -> String {
        let runtimes: Vec<Runtime> = kinds
            .chars()
            .map(|c| match c {
                's' => Runtime::Sample(Box::new(PerSample)),
                _ => Runtime::Batch(Box::new(Batched)),
            })
            .collect();
        segments_of(&runtimes)
            .iter()
            .map(|g| {
                g.iter()
                    .map(|seg| match seg {
                        Segment::Samples(v) => format!(
                            "[{}]",
                            v.iter()
                                .map(|(i, _)| i.to_string())
                                .collect::<Vec<_>>()
                                .join(" ")
                        ),
                        Segment::Batch(i, _) => format!("B{i}"),
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(" | ")
    }

    #[test]
    fn per_sample_stages_share_the_first_group() {
        assert_eq!(grouping(""), "[]");
        assert_eq!(grouping("sss"), "[0 1 2]");
    }

    #[test]
    fn each_batch_stage_starts_a_group_with_the_stages_after_it() {
        assert_eq!(grouping("B"), "[] | B0");
        assert_eq!(grouping("ssBs"), "[0 1] | B2 [3]");
        assert_eq!(grouping("sBBss"), "[0] | B1 | B2 [3 4]");
        assert_eq!(grouping("BsB"), "[] | B0 [1] | B2");
    }

    #[test]
    fn standard_gives_the_elements_in_row_major_order() {
        let a = ndarray::Array2::from_shape_fn((2, 3), |(i, j)| (i * 3 + j) as f32);
        assert_eq!(standard(&a), &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }
}
