//! The runtime `pseudo_label` batch stage, [`PseudoLabel`]: it splits each
//! chunk into model batches, runs every model on every view (with TTA, the
//! mirror-flipped sample too), combines the views into the weighted ensemble
//! mean, measures the disagreement, drops non-finite or too uncertain
//! predictions, clips, sets the sample's velocity map and returns one record
//! per sample; its `finish` hands the finished shards to `submission.rs`.
//!
//! Per sample: each model sees the sample (and, with `tta = true`, its mirror
//! flip, whose prediction is mirrored back); every view goes through the
//! declared input transform, the model (no gradients; float16 on CUDA when
//! `half = true`) and the output transform. The views are averaged — members
//! by their `weight`, the two TTA views of a member equally — and clipped to
//! `velocity_range`. The *disagreement* (the weighted mean over views of each view's
//! mean absolute difference from the average, m/s, before the clip) is
//! recorded; above `max_disagreement` the sample is dropped (counted and
//! listed in the manifest). A non-finite prediction drops the sample too.
//!
//! Batching: the executor hands this stage one chunk (`run.chunk_samples`
//! samples) at a time on its own thread, so reading, decoding and writing of
//! other chunks overlap inference. `batch_size` splits a chunk into model
//! batches; it cannot merge chunks, so the effective batch is
//! `min(batch_size, chunk_samples)` — set `run.chunk_samples` to a multiple
//! of `batch_size` (0 = the whole chunk, the default).

use serde_json::{json, Value};

use crate::error::StageError;
use crate::model::{combine_views, mirror_velocity_x, Model, VELOCITY_VALUES};
use crate::sample::Sample;
use crate::stage::{BatchStage, Record, StageCtx};

/// One sample's combined map and disagreement, or why it has none.
type Prediction = Result<(Vec<f32>, f64), String>;

/// The runtime stage.
pub struct PseudoLabel {
    pub(super) models: Vec<Box<dyn Model>>,
    pub(super) weights: Vec<f64>,
    pub(super) model_sha: Vec<Value>,
    pub(super) sample_values: usize,
    pub(super) batch_size: usize,
    pub(super) tta: bool,
    pub(super) clip: [f32; 2],
    pub(super) max_disagreement: Option<f64>,
    /// The submission file, when one is written (`finish` writes it; the
    /// runtime checks that every input has one prediction).
    pub(super) submission: Option<String>,
}

impl PseudoLabel {
    /// Predict one model batch: per sample, the combined map and its disagreement,
    /// or why it has none.
    fn predict_batch(&self, samples: &[Sample]) -> Result<Vec<Prediction>, StageError> {
        let n = samples.len();
        let views_per_model = if self.tta { 2 } else { 1 };
        let mut input = Vec::with_capacity(n * views_per_model * self.sample_values);
        for s in samples {
            if s.seismic.len() != self.sample_values {
                return Err(StageError::new(format!(
                    "sample {} has shape {:?}; the models were checked for {} values per sample",
                    s.id,
                    s.seismic.shape(),
                    self.sample_values
                )));
            }
            let a = s.seismic.as_standard_layout();
            input.extend_from_slice(a.as_slice().expect("standard layout"));
        }
        if self.tta {
            for s in samples {
                let mut m = s.seismic.as_standard_layout().into_owned();
                crate::stage::flip::mirror_seismic(&mut m);
                input.extend_from_slice(m.as_slice().expect("standard layout"));
            }
        }
        // preds[model][view] = n × 4900
        let mut preds: Vec<Vec<f32>> = Vec::with_capacity(self.models.len());
        for (k, m) in self.models.iter().enumerate() {
            let mut p = m
                .predict(&input, n * views_per_model)
                .map_err(|e| StageError::new(format!("model {k}: {e}")))?;
            if p.len() != n * views_per_model * VELOCITY_VALUES {
                return Err(StageError::new(format!(
                    "model {k} returned {} values for {} maps",
                    p.len(),
                    n * views_per_model
                )));
            }
            if self.tta {
                mirror_velocity_x(&mut p[n * VELOCITY_VALUES..]);
            }
            preds.push(p);
        }
        let mut weights = Vec::with_capacity(self.models.len() * views_per_model);
        for &w in &self.weights {
            for _ in 0..views_per_model {
                weights.push(w / views_per_model as f64);
            }
        }
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let mut views: Vec<&[f32]> = Vec::with_capacity(weights.len());
            for p in &preds {
                for v in 0..views_per_model {
                    let at = (v * n + i) * VELOCITY_VALUES;
                    views.push(&p[at..at + VELOCITY_VALUES]);
                }
            }
            let bad = views
                .iter()
                .enumerate()
                .find(|(_, v)| v.iter().any(|x| !x.is_finite()));
            if let Some((j, _)) = bad {
                out.push(Err(format!(
                    "model {} predicted NaN or Inf{}",
                    j / views_per_model,
                    if self.tta {
                        if j % 2 == 1 {
                            " (mirrored view)"
                        } else {
                            " (plain view)"
                        }
                    } else {
                        ""
                    }
                )));
                continue;
            }
            let (mut mean, dis) = combine_views(&views, &weights);
            for x in &mut mean {
                *x = x.clamp(self.clip[0], self.clip[1]);
            }
            out.push(Ok((mean, dis)));
        }
        Ok(out)
    }
}

impl BatchStage for PseudoLabel {
    fn apply_batch(
        &self,
        samples: &mut [Sample],
        _ctxs: &mut [StageCtx<'_>],
    ) -> Result<Vec<Record>, StageError> {
        if self.submission.is_some() {
            if let Some(s) = samples.iter().find(|s| s.origin.copy > 1) {
                return Err(StageError::new(format!(
                    "sample {} is copy {} of its input: a submission needs one prediction per input; set copies = 1 (and keep_original = false), or submission = \"\"",
                    s.id, s.origin.copy
                )));
            }
        }
        let step = if self.batch_size == 0 {
            samples.len().max(1)
        } else {
            self.batch_size
        };
        let mut records = Vec::with_capacity(samples.len());
        for batch in samples.chunks_mut(step) {
            let results = self.predict_batch(batch)?;
            for (s, r) in batch.iter_mut().zip(results) {
                match r {
                    Err(reason) => {
                        s.dropped = Some(reason.clone());
                        records.push(json!({ "dropped": reason }));
                    }
                    Ok((mean, dis)) => {
                        let rec = json!({
                            "model_sha256": self.model_sha,
                            "tta": self.tta,
                            "disagreement": dis,
                            "replaced_label": s.velocity.is_some(),
                        });
                        if let Some(max) = self.max_disagreement {
                            if dis > max {
                                s.dropped = Some(format!(
                                    "disagreement {dis:.3} m/s > max_disagreement {max}"
                                ));
                            }
                        }
                        s.velocity = Some(
                            ndarray::Array3::from_shape_vec((1, 70, 70), mean)
                                .expect("4900 values"),
                        );
                        records.push(rec);
                    }
                }
            }
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use sha2::{Digest, Sha256};

    use super::super::tests::{env, spec};
    use super::*;
    use crate::io::layout::InputSet;
    use crate::sample::Origin;
    use crate::stage::{BuiltStage, Runtime};

    /// map[z][x] = offset + x + (first value of the sample), or NaN when asked.
    struct Fake {
        offset: f32,
        nan: bool,
    }

    /// Two finite stand-in models whose predictions differ by 100.
    fn fakes_0_and_100() -> Vec<Box<dyn Model>> {
        vec![
            Box::new(Fake {
                offset: 0.0,
                nan: false,
            }),
            Box::new(Fake {
                offset: 100.0,
                nan: false,
            }),
        ]
    }

    impl Model for Fake {
        fn predict(
            &self,
            seismic: &[f32],
            batch: usize,
        ) -> Result<Vec<f32>, crate::model::ModelError> {
            let per = seismic.len() / batch;
            let mut out = Vec::with_capacity(batch * 4900);
            for b in 0..batch {
                let first = seismic[b * per];
                for _z in 0..70 {
                    for x in 0..70 {
                        out.push(if self.nan {
                            f32::NAN
                        } else {
                            self.offset + x as f32 + first
                        });
                    }
                }
            }
            Ok(out)
        }
        fn describe(&self) -> Value {
            json!({ "file": "fake", "sha256": "00" })
        }
    }

    fn sample(k: usize) -> Sample {
        let v: Vec<f32> = (0..700).map(|i| (i * (k + 1)) as f32 * 0.01).collect();
        Sample {
            id: format!("id{k}"),
            origin: Origin {
                input: 0,
                index: k,
                global: k,
                copy: 1,
            },
            seismic: ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[5, 2, 70]), v).unwrap(),
            velocity: None,
            dropped: None,
        }
    }

    fn run(built: &BuiltStage, samples: &mut [Sample]) -> Vec<Record> {
        let inputs = InputSet {
            root: PathBuf::new(),
            files: Vec::new(),
            offsets: vec![0],
            skipped: Vec::new(),
            labelled: false,
        };
        let mut ctxs: Vec<StageCtx<'_>> = samples
            .iter()
            .map(|_| StageCtx {
                rng: crate::rng::stage_rng(0, "x", 0, 1, 0),
                inputs: &inputs,
                seed: 0,
                stage_index: 0,
            })
            .collect();
        let Runtime::Batch(b) = &built.runtime else {
            panic!("pseudo_label is a batch stage")
        };
        b.apply_batch(samples, &mut ctxs).unwrap()
    }

    include!("../../../tests/goldens/check.rs");

    /// pseudo_label's golden (see tests/goldens/check.rs): its arithmetic
    /// (input scaling, TTA, weighted ensemble, output transform, clip) over
    /// stand-in models, whose "SHA-256" is part of the versions it records.
    #[test]
    fn labels_match_the_golden_for_this_version() {
        let s = spec(
            "models = [{ path = \"a\" }, { path = \"b\", weight = 3.0 }]\ntta = true\ninput_transform = \"log1p\"\noutput_transform = \"minmax\"\noutput_bounds = [1500.0, 4500.0]\nvelocity_range = [1500.0, 4500.0]\nbatch_size = 2",
        );
        let built = s.build_with(&env(), fakes_0_and_100()).unwrap();
        let mut samples: Vec<Sample> = (0..3).map(sample).collect();
        let records = run(&built, &mut samples);
        let mut h = Sha256::new();
        for (smp, rec) in samples.iter().zip(&records) {
            for v in smp
                .seismic
                .iter()
                .chain(smp.velocity.as_ref().unwrap().iter())
            {
                h.update(v.to_le_bytes());
            }
            h.update(rec.to_string().as_bytes());
        }
        let hash = crate::io::npy::hex(&h.finalize());
        check_golden(
            "pseudo_label_stand_in_models",
            &built.plan.planned.algorithm,
            &hash,
        )
        .unwrap();
    }

    #[test]
    fn tta_and_weighted_ensemble_are_the_hand_computed_means() {
        let s = spec(
            "models = [{ path = \"a\" }, { path = \"b\", weight = 3.0 }]\ntta = true\nvelocity_range = [-1e6, 1e6]\nbatch_size = 2",
        );
        let models = fakes_0_and_100();
        let built = s.build_with(&env(), models).unwrap();
        assert!(built.plan.planned.out_labels);
        let mut samples: Vec<Sample> = (0..3).map(sample).collect();
        let recs = run(&built, &mut samples);
        for (s, r) in samples.iter().zip(&recs) {
            // Plain view of model m: o_m + x + a, a = s[0,0,0]. Mirrored view,
            // mirrored back: o_m + (69 − x) + b, b = s[4,0,69] (the first value
            // of the mirrored sample). Weights 1 and 3, each view half of its
            // member: mean = (1·(69+a+b)/2 + 3·(100 + (69+a+b)/2)) / 4.
            let a = f64::from(s.seismic[[0, 0, 0]]);
            let b = f64::from(s.seismic[[4, 0, 69]]);
            let want = 75.0 + (69.0 + a + b) / 2.0;
            let v = s.velocity.as_ref().unwrap();
            for &x in v {
                assert!((f64::from(x) - want).abs() < 1e-3, "{x} vs {want}");
            }
            // Disagreement: Σ w_k · mean_x |view_k − want| / Σ w.
            let mut dis = 0.0;
            for (o, w) in [(0.0, 0.5), (100.0, 1.5)] {
                let mut plain = 0.0;
                let mut mirrored = 0.0;
                for x in 0..70 {
                    let x = f64::from(x);
                    plain += (o + x + a - want).abs() / 70.0;
                    mirrored += (o + 69.0 - x + b - want).abs() / 70.0;
                }
                dis += w * (plain + mirrored);
            }
            dis /= 4.0;
            let got = r["disagreement"].as_f64().unwrap();
            assert!((got - dis).abs() < 1e-5, "{got} vs {dis}");
        }
    }

    #[test]
    fn clip_threshold_and_nan_drop_samples() {
        let s = spec("models = [{ path = \"a\" }]\nvelocity_range = [10.0, 20.0]");
        let built = s
            .build_with(
                &env(),
                vec![Box::new(Fake {
                    offset: 0.0,
                    nan: false,
                })],
            )
            .unwrap();
        let mut samples = vec![sample(0)];
        run(&built, &mut samples);
        let v = samples[0].velocity.as_ref().unwrap();
        assert_eq!(v[[0, 0, 0]], 10.0);
        assert_eq!(v[[0, 0, 15]], 15.0);
        assert_eq!(v[[0, 0, 69]], 20.0);

        // Two members 100 m/s apart disagree by 50 m/s.
        let s = spec("models = [{ path = \"a\" }, { path = \"b\" }]\nmax_disagreement = 49.0\nvelocity_range = [-1e6, 1e6]");
        let built = s.build_with(&env(), fakes_0_and_100()).unwrap();
        let mut samples = vec![sample(0)];
        let r = run(&built, &mut samples);
        assert!((r[0]["disagreement"].as_f64().unwrap() - 50.0).abs() < 1e-9);
        assert!(samples[0]
            .dropped
            .as_deref()
            .unwrap()
            .contains("max_disagreement 49"));

        let s = spec("models = [{ path = \"a\" }]");
        let built = s
            .build_with(
                &env(),
                vec![Box::new(Fake {
                    offset: 0.0,
                    nan: true,
                })],
            )
            .unwrap();
        let mut samples = vec![sample(0), sample(1)];
        run(&built, &mut samples);
        assert!(samples
            .iter()
            .all(|s| s.dropped.as_deref().unwrap().contains("predicted NaN")));
    }
}
