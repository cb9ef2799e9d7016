//! Handing the report's previews to [`crate::report::Drafts`] while the run
//! writes them. The report shows the first augmented copy (a copy with a
//! stage applied) of the first shard and of the last, or the first sample
//! when no copy is marked (originals only, spectrograms); the writer
//! watches those shards and hands over that sample, as the finished output
//! will read it, with the original kept before it. The report checks every
//! draft against its own drawing, so a guess that turns out wrong (drops
//! that move positions, say) costs only the draft.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::io::layout::InputSet;
use crate::io::manifest::{Manifest, Provenance, Shard};
use crate::pipeline::finish::draft_manifest;
use crate::pipeline::plan::Plan;
use crate::pipeline::shards::shard_paths;
use crate::pipeline::spec::DType;
use crate::pipeline::work::{standard, Ctx};
use crate::report::{Draft, Drafts, SampleView};
use crate::sample::Sample;

/// What a whole run needs to draft its report's previews.
pub(super) struct Previewing {
    /// Where drafts go.
    pub drafts: Arc<Drafts>,
    /// The output directory, as the report is given it.
    pub dir: PathBuf,
    /// The manifest the run will write, without shards and counts.
    pub manifest: Arc<Manifest>,
}

impl Previewing {
    /// Drafting into `drafts` for a whole run of `plan` over `inputs` into `dir`.
    pub fn new(drafts: &Arc<Drafts>, plan: &Plan, inputs: &InputSet, dir: &Path) -> Previewing {
        Previewing {
            drafts: Arc::clone(drafts),
            dir: dir.to_path_buf(),
            manifest: Arc::new(draft_manifest(plan, inputs, dir)),
        }
    }
}

/// Samples of a watched shard looked at for its preview; past them the
/// report encodes it after the run.
const WATCHED: usize = 64;

/// Watches the writes for the samples the report previews: the first
/// augmented copy of the first and of the last shard, and the original each
/// was made from (in the same shard, or at the end of the one before).
pub(super) struct Watch<'a> {
    previewing: &'a Previewing,
    /// The last original (copy 0) kept, with its position.
    original: Option<(usize, SampleView)>,
    /// Shards (positions) whose draft is started.
    drafted: Vec<usize>,
}

impl<'a> Watch<'a> {
    pub fn new(previewing: &'a Previewing) -> Watch<'a> {
        Watch {
            previewing,
            original: None,
            drafted: Vec::new(),
        }
    }

    /// See the `j`th sample written to `shard` (`data` and `label` its file
    /// bytes when encoded apart from its arrays).
    #[allow(clippy::too_many_arguments)]
    pub fn see(
        &mut self,
        ctx: &Ctx<'_>,
        shard: Shard,
        j: usize,
        sample: &Sample,
        rec: &Provenance,
        data: Option<&[u8]>,
        label: Option<&[u8]>,
    ) {
        let plan = &ctx.pipeline.plan;
        let (k, last) = (shard.position(), ctx.plan.shards.saturating_sub(1));
        let position = ctx.plan.shard_range(shard).start + j;
        // Copies none of whose stages records `applied` (spectrograms) are
        // never "augmented": the report then shows sample 0 (drafted when it
        // is such a copy).
        let unmarked = rec.sample.copy > 0 && rec.stages.iter().all(|st| st.applied().is_none());
        let (keep, draw) = if plan.spec.copies == 0 {
            // Originals only: the report shows the first sample.
            (false, position == 0)
        } else {
            // A shard is watched for its first WATCHED samples, so that
            // stages that seldom apply cost at most that many copies.
            let watched = (k == 0 || k == last) && j < WATCHED && !self.drafted.contains(&k);
            let augmented =
                rec.sample.copy > 0 && rec.stages.iter().any(|st| st.applied() == Some(true));
            // An original is kept only where a watched copy may follow it:
            // in a watched shard, or within one input's outputs of the last.
            let before_last =
                k + 1 == last && position + ctx.plan.per_input >= ctx.plan.shard_range(shard).end;
            let keep = rec.sample.copy == 0 && (watched || before_last);
            (keep, watched && (augmented || (position == 0 && unmarked)))
        };
        if !plan.spec.output.data || !(keep || draw) {
            return;
        }
        let dtype = plan.spec.output.dtype;
        let view = SampleView {
            place: format!("{} #{j}", shard_paths(shard).0),
            values: values(data, standard(&sample.seismic), dtype),
            shape: plan.out_shape.clone(),
            velocity: match sample.velocity.as_ref() {
                Some(v) if plan.out_labels => {
                    Some(values(label, v.as_slice().expect("standard layout"), dtype))
                }
                _ => None,
            },
            record: Some(rec.clone()),
        };
        if keep {
            self.original = Some((position, view));
            return;
        }
        let p = self.previewing;
        self.drafted.push(k);
        let mut known = vec![(position, view)];
        known.extend(self.original.take());
        p.drafts.start(Draft {
            dir: p.dir.clone(),
            manifest: Manifest::clone(&p.manifest),
            len: ctx.plan.samples_out,
            position,
            known,
        });
    }
}

/// The values a reader of the file gets: `bytes` decoded as `dtype`, or the
/// array's own values when it is written as it is.
fn values(bytes: Option<&[u8]>, own: &[f32], dtype: DType) -> Vec<f32> {
    match bytes {
        Some(b) => {
            let mut v = vec![0.0; b.len() / crate::io::npy::itemsize(dtype)];
            crate::io::npy::decode_into(b, dtype, &mut v);
            v
        }
        None => own.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use clap::Parser as _;

    use crate::cli::{Cli, Command};
    use crate::io::npy::{DType, NpyWriter};
    use crate::report::{self, Drafts, ReportOptions};

    /// `n` values in [-scale, scale) from an xorshift stream.
    fn noise(n: usize, mut x: u64, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    fn write(path: &Path, shape: &[usize], data: &[f32]) {
        let per: usize = shape[1..].iter().product();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut w = NpyWriter::create(path, "x", DType::F32, shape).unwrap();
        for item in data.chunks(per) {
            w.write_item(item).unwrap();
        }
        w.finish().unwrap();
    }

    /// Two labelled files of 3 samples under `dir/in/FlatVel_A`; with `nan`,
    /// sample 0 of the first holds a NaN.
    fn inputs(dir: &Path, nan: bool) {
        for f in 1..=2u64 {
            let root = dir.join("in/FlatVel_A");
            let mut seismic = noise(3 * 350_000, 21 + f, 10.0);
            if nan && f == 1 {
                seismic[12_345] = f32::NAN;
            }
            let vel: Vec<f32> = noise(3 * 4900, 31 + f, 1.0)
                .iter()
                .map(|u| 3000.0 + 1500.0 * u)
                .collect();
            write(
                &root.join(format!("data/data{f}.npy")),
                &[3, 5, 1000, 70],
                &seismic,
            );
            write(
                &root.join(format!("model/model{f}.npy")),
                &[3, 1, 70, 70],
                &vel,
            );
        }
    }

    /// Run `body` (the pipeline without its paths) over `dir/in` into
    /// `dir/out/NAME` in this process; returns the run's report, the one
    /// written again without drafts, and the drafts the run's report used.
    fn run(dir: &Path, name: &str, body: &str) -> (Vec<u8>, Vec<u8>, usize) {
        let out = dir.join("out").join(name);
        let file = dir.join(format!("{name}.toml"));
        let text = body
            .replace("IN", &dir.join("in").display().to_string())
            .replace("OUT", &out.display().to_string());
        std::fs::write(&file, text).unwrap();
        let cli = Cli::parse_from([
            "seispipe",
            "run",
            "-q",
            "--threads",
            "2",
            file.to_str().unwrap(),
        ]);
        let Command::Run(args) = &cli.command else {
            unreachable!("parsed a run")
        };
        let host = crate::settings::Host::read(None, Arc::new(crate::io::disk::Statvfs), &|_| None)
            .unwrap();
        let drafts = Arc::new(Drafts::default());
        crate::commands::run_drafting(args, Arc::new(AtomicBool::new(false)), &host, &drafts)
            .unwrap();
        let ran = std::fs::read(out.join(report::REPORT_NAME)).unwrap();
        report::write_report(&out, &ReportOptions::default()).unwrap();
        let again = std::fs::read(out.join(report::REPORT_NAME)).unwrap();
        (ran, again, drafts.used())
    }

    const TOP: &str = "seed = 9\n[input]\npath = \"IN\"\n";

    /// The report of a run takes the previews drawn during it, for the first
    /// and the last shard, with the original kept beside the copy or read
    /// from the input, in f32 and f16; its bytes are those of the report
    /// written again afterwards without drafts. Drafts that guessed wrong
    /// (samples dropped later move the count in the caption) are not used,
    /// and the bytes are still the same.
    #[test]
    fn a_runs_report_uses_its_drafts_and_writes_the_same_bytes() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        inputs(dir, false);
        let flip_noise = "[[stages]]\ntype = \"flip\"\np = 0.5\n\n[[stages]]\ntype = \"gaussian_noise\"\np = 0.7\nsnr_db = 15.0\n";
        let kept = format!(
            "copies = 2\nkeep_original = true\n{TOP}[output]\ndir = \"OUT\"\nsamples_per_shard = 4\n{flip_noise}"
        );
        let (ran, again, used) = run(dir, "kept", &kept);
        assert_eq!(used, 2, "the first and the last shard's previews");
        assert!(ran == again, "the same report bytes");

        let f16 = format!(
            "copies = 1\nkeep_original = false\n{TOP}[output]\ndir = \"OUT\"\nsamples_per_shard = 3\ndtype = \"f16\"\n[[stages]]\ntype = \"flip\"\np = 1.0\n"
        );
        let (ran, again, used) = run(dir, "f16", &f16);
        assert_eq!(
            used, 2,
            "inputs read through the draft's manifest; f16 decoded"
        );
        assert!(ran == again);

        // Spectrograms (another output shape, drawn from stage_info).
        let spectrogram = format!(
            "copies = 1\nkeep_original = false\n{TOP}[output]\ndir = \"OUT\"\nsamples_per_shard = 4\ndtype = \"f16\"\n[[stages]]\ntype = \"spectrogram\"\nn_fft = 256\nhop_length = 64\noutput = \"log_magnitude\"\n"
        );
        let (ran, again, used) = run(dir, "spectrogram", &spectrogram);
        assert_eq!(used, 1, "no stage marks a copy applied: sample 0 alone");
        assert!(ran == again);
        // Re-simulated copies beside the originals.
        let simulated = format!(
            "copies = 1\nkeep_original = true\n{TOP}[output]\ndir = \"OUT\"\nsamples_per_shard = 4\n[[stages]]\ntype = \"simulate\"\n"
        );
        let (ran, again, used) = run(dir, "simulated", &simulated);
        assert_eq!(used, 2);
        assert!(ran == again);

        // Originals only: the report shows the first sample.
        let originals = format!(
            "copies = 0\nkeep_original = true\n{TOP}[output]\ndir = \"OUT\"\nsamples_per_shard = 4\n[[stages]]\ntype = \"flip\"\np = 1.0\n"
        );
        let (ran, again, used) = run(dir, "originals", &originals);
        assert_eq!(used, 1);
        assert!(ran == again);

        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        inputs(dir, true);
        let dropped = kept.replace("IN\"\n", "IN\"\non_nonfinite = \"skip\"\n");
        let (ran, again, used) = run(dir, "dropped", &dropped);
        assert_eq!(used, 0, "captions drawn before the drops differ");
        assert!(ran == again);
        let m = crate::io::manifest::Manifest::load(&dir.join("out/dropped")).unwrap();
        assert_eq!(m.samples_out, 15, "three samples dropped");
    }
}
