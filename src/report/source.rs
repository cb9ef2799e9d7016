//! Where previewed samples come from: an output directory or a Kaggle part
//! (through its `manifest.json`), a shard file inside one, a directory of
//! inputs without a manifest (discovered as `[input] path` would be), or one
//! `.npy` file. Samples are numbered 0… in the order the path holds them and
//! read one at a time with partial reads; for an augmented copy in an output,
//! [`Source::before`] finds the input it was made from through its provenance.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::layout::{self, InputSet, InputSpec, LabelMode, Policy};
use crate::io::manifest::{Manifest, Provenance, ShardRecord, MANIFEST_NAME};
use crate::io::npy::{self, NpyHeader};
use crate::sample::{SEISMIC_SHAPE, VELOCITY_SHAPE};

/// One sample as a preview reads it.
#[derive(Debug, Clone)]
pub struct SampleView {
    /// Where it is, for captions: the file and the index in it.
    pub place: String,
    /// The data: (5, 1000, 70) seismic, or another output shape.
    pub values: Vec<f32>,
    /// Its shape.
    pub shape: Vec<usize>,
    /// The velocity map (70 × 70), when labelled.
    pub velocity: Option<Vec<f32>>,
    /// Its provenance record, when read through a manifest.
    pub record: Option<Provenance>,
}

/// What an augmented copy is compared with.
pub(super) enum Before {
    /// The input sample (or the original copy kept in the same output).
    Found(Box<SampleView>),
    /// The sample is itself an original (copy 0) or has no provenance.
    NotACopy,
    /// It should have one, but it could not be found; why.
    Missing(String),
}

enum Kind {
    /// An output or a Kaggle part; `shards` (positions in the manifest's
    /// list) in order, `starts` their first
    /// sample positions (one extra entry: the total).
    Output {
        dir: PathBuf,
        manifest: Box<Manifest>,
        shards: Vec<usize>,
        starts: Vec<usize>,
    },
    /// A directory of inputs, or one input file.
    Inputs(InputSet),
    /// A file of velocity maps only.
    Velocity { path: PathBuf, header: NpyHeader },
    /// An output still being written (see [`super::Drafts`]): the samples
    /// the run handed over, by position, and a manifest without shards;
    /// inputs are read through it.
    Draft {
        dir: PathBuf,
        manifest: Box<Manifest>,
        len: usize,
        known: Vec<(usize, SampleView)>,
    },
}

/// A path to preview samples from.
pub(super) struct Source {
    /// As given.
    pub path: PathBuf,
    kind: Kind,
    /// Where to look for inputs first (`--input-root`).
    input_root: Option<PathBuf>,
}

/// An error about sample `index` of `path`, keeping the reason of a read
/// error that already names that file.
fn in_sample(e: Error, path: &Path, index: usize) -> Error {
    let reason = match e {
        Error::Npy { path: p, reason } | Error::Layout { path: p, reason } if p == path => reason,
        Error::Io {
            path: p,
            action,
            source,
        } if p == path => format!("{action}: {source}"),
        other => other.to_string(),
    };
    Error::Sample {
        path: path.to_path_buf(),
        index,
        reason,
    }
}

/// Read sample `index` (of `per` values) of the array in `path`, checking
/// that the file holds `[n, item…]` arrays of the expected item shape.
fn read_item(path: &Path, item: &[usize], index: usize) -> Result<Vec<f32>> {
    let h = npy::read_header(path).map_err(|e| in_sample(e, path, index))?;
    let per: usize = item.iter().product();
    let (n, rest) = match h.shape.split_first() {
        Some((n, rest)) if rest == item => (*n, rest),
        _ if h.shape == item => (1, item),
        _ => {
            return Err(Error::Sample {
                path: path.to_path_buf(),
                index,
                reason: format!("holds shape {:?}; expected (N, {item:?}) samples", h.shape),
            })
        }
    };
    debug_assert_eq!(rest.iter().product::<usize>(), per);
    if index >= n {
        return Err(Error::Sample {
            path: path.to_path_buf(),
            index,
            reason: format!("the file holds {n} samples"),
        });
    }
    npy::read_f32_vec(path, &h, index * per, per).map_err(|e| in_sample(e, path, index))
}

impl Source {
    /// Open `path`: a directory with a `manifest.json`, a shard file of one,
    /// a directory of inputs, or a `.npy` file.
    ///
    /// # Errors
    /// Nothing readable there, with what was expected.
    pub fn open(path: &Path, input_root: Option<PathBuf>) -> Result<Source> {
        let kind = if path.is_dir() {
            if path.join(MANIFEST_NAME).is_file() {
                Self::output(path, None)?
            } else {
                Kind::Inputs(Self::inputs(path).map_err(|e| Error::Layout {
                    path: path.to_path_buf(),
                    reason: format!(
                        "no {MANIFEST_NAME} here (so no before/after), and not a directory of inputs either: {e}"
                    ),
                })?)
            }
        } else if path.is_file() {
            Self::file(path)?
        } else {
            return Err(Error::Layout {
                path: path.to_path_buf(),
                reason: "no such file or directory".into(),
            });
        };
        Ok(Source {
            path: path.to_path_buf(),
            kind,
            input_root,
        })
    }

    fn inputs(path: &Path) -> Result<InputSet> {
        InputSet::discover(&InputSpec {
            path: path.display().to_string(),
            labels: LabelMode::Auto,
            on_bad_file: Policy::Error,
            on_nonfinite: Policy::Error,
        })
    }

    /// The output in `dir` whose manifest is already read.
    pub fn of_output(dir: &Path, manifest: Manifest) -> Source {
        Source {
            path: dir.to_path_buf(),
            kind: Self::output_of(dir, manifest, None),
            input_root: None,
        }
    }

    /// An output's shards (all, or only the one whose files include `only`).
    fn output(dir: &Path, only: Option<&str>) -> Result<Kind> {
        Ok(Self::output_of(dir, Manifest::load(dir)?, only))
    }

    fn output_of(dir: &Path, manifest: Manifest, only: Option<&str>) -> Kind {
        let mut shards: Vec<usize> = (0..manifest.shards.len())
            .filter(|&k| only.is_none_or(|f| manifest.shards[k].files.iter().any(|x| x.path == f)))
            .collect();
        shards.sort_by_key(|&k| manifest.shards[k].index);
        let mut starts = vec![0];
        for &k in &shards {
            starts.push(starts.last().copied().unwrap_or(0) + manifest.shards[k].samples);
        }
        Kind::Output {
            dir: dir.to_path_buf(),
            manifest: Box::new(manifest),
            shards,
            starts,
        }
    }

    /// An output still being written, as the finished one is expected to
    /// read: `len` samples, of which `known` (by position) are in memory;
    /// `manifest` has no shards yet.
    pub fn draft(
        dir: &Path,
        manifest: Manifest,
        len: usize,
        known: Vec<(usize, SampleView)>,
    ) -> Source {
        Source {
            path: dir.to_path_buf(),
            kind: Kind::Draft {
                dir: dir.to_path_buf(),
                manifest: Box::new(manifest),
                len,
                known,
            },
            input_root: None,
        }
    }

    /// A `.npy` file: a shard listed by a manifest one or two folders up, an
    /// input file, or velocity maps.
    fn file(path: &Path) -> Result<Kind> {
        for up in path.ancestors().skip(1).take(2) {
            if up.join(MANIFEST_NAME).is_file() {
                let rel = path
                    .strip_prefix(up)
                    .map(|r| r.to_string_lossy().replace('\\', "/"))
                    .unwrap_or_default();
                if let Ok(Kind::Output {
                    dir,
                    manifest,
                    shards,
                    starts,
                }) = Self::output(up, Some(&rel))
                {
                    if !shards.is_empty() {
                        return Ok(Kind::Output {
                            dir,
                            manifest,
                            shards,
                            starts,
                        });
                    }
                }
            }
        }
        let h = npy::read_header(path)?;
        let vel = &VELOCITY_SHAPE[..];
        match h.shape.as_slice() {
            [_, rest @ ..] if rest == vel || rest == &vel[1..] => Ok(Kind::Velocity {
                path: path.to_path_buf(),
                header: h,
            }),
            s if s == vel => Ok(Kind::Velocity {
                path: path.to_path_buf(),
                header: h,
            }),
            _ => Self::inputs(path).map(Kind::Inputs).map_err(|e| Error::Layout {
                path: path.to_path_buf(),
                reason: format!(
                    "cannot preview it: {e} (expected seismic (N, 5, 1000, 70) or (5, 1000, 70), velocity maps (N, 1, 70, 70), or a shard listed in a {MANIFEST_NAME} beside it)"
                ),
            }),
        }
    }

    /// Samples the path holds.
    pub fn len(&self) -> usize {
        match &self.kind {
            Kind::Output { starts, .. } => *starts.last().unwrap_or(&0),
            Kind::Draft { len, .. } => *len,
            Kind::Inputs(set) => set.total(),
            Kind::Velocity { header, .. } => {
                if header.shape.len() == 3 && header.shape[0] == 1 && header.shape[1] == 70 {
                    1
                } else {
                    header.shape[0]
                }
            }
        }
    }

    /// The manifest, when read through one.
    pub fn manifest(&self) -> Option<&Manifest> {
        match &self.kind {
            Kind::Output { manifest, .. } | Kind::Draft { manifest, .. } => Some(manifest),
            _ => None,
        }
    }

    /// Check `i` is a sample of this path.
    ///
    /// # Errors
    /// Out of range, naming the path and how many samples it holds.
    pub fn check_index(&self, i: usize) -> Result<()> {
        let n = self.len();
        if i < n {
            return Ok(());
        }
        Err(Error::Sample {
            path: self.path.clone(),
            index: i,
            reason: if n == 0 {
                "out of range: it holds no samples".into()
            } else {
                format!("out of range: it holds {n} samples (0–{})", n - 1)
            },
        })
    }

    /// Read sample `i`.
    ///
    /// # Errors
    /// Out of range, or a shard that cannot be read (named with the index in it).
    pub fn sample(&self, i: usize) -> Result<SampleView> {
        self.check_index(i)?;
        match &self.kind {
            Kind::Output {
                dir,
                manifest,
                shards,
                starts,
            } => {
                let k = starts.partition_point(|&s| s <= i) - 1;
                let (shard, j) = (&manifest.shards[shards[k]], i - starts[k]);
                read_output(dir, manifest, shard, j)
            }
            Kind::Inputs(set) => {
                let (f, j) = set.locate(i);
                let file = &set.files[f];
                let values = set
                    .read_seismic(f, j)
                    .map_err(|e| in_sample(e, &file.data, j))?
                    .into_raw_vec_and_offset()
                    .0;
                let velocity = set
                    .read_velocity(f, j)
                    .map_err(|e| in_sample(e, file.label.as_deref().unwrap_or(&file.data), j))?
                    .map(|v| v.into_raw_vec_and_offset().0);
                Ok(SampleView {
                    place: format!("{} #{j}", file.data.display()),
                    values,
                    shape: SEISMIC_SHAPE.to_vec(),
                    velocity,
                    record: None,
                })
            }
            Kind::Velocity { path, .. } => Ok(SampleView {
                place: format!("{} #{i}", path.display()),
                values: Vec::new(),
                shape: Vec::new(),
                velocity: Some(
                    read_item(path, &VELOCITY_SHAPE[1..], i)
                        .or_else(|_| read_item(path, &VELOCITY_SHAPE, i))?,
                ),
                record: None,
            }),
            Kind::Draft { known, .. } => known
                .iter()
                .find(|(p, _)| *p == i)
                .map(|(_, s)| s.clone())
                .ok_or_else(|| Error::Sample {
                    path: self.path.clone(),
                    index: i,
                    reason: "not yet written".into(),
                }),
        }
    }

    /// What sample `i`, read as `shown`, was made from.
    pub fn before(&self, i: usize, shown: &SampleView) -> Before {
        let (Kind::Output { dir, manifest, .. } | Kind::Draft { dir, manifest, .. }, Some(rec)) =
            (&self.kind, &shown.record)
        else {
            return Before::NotACopy;
        };
        if rec.sample.copy == 0 {
            return Before::NotACopy;
        }
        // The original kept beside it (keep_original) is exact and travels
        // with the output; otherwise the input file.
        if let Some(kept) = self.kept_original(i, rec) {
            return kept;
        }
        match self.read_input(dir, manifest, rec) {
            Ok(s) => Before::Found(Box::new(s)),
            Err(why) => Before::Missing(why),
        }
    }

    /// The original of the copy `rec` at `i`, if the output keeps it.
    fn kept_original(&self, i: usize, rec: &Provenance) -> Option<Before> {
        let is_original = |r: &Provenance| r.sample.copy == 0 && r.sample.id == rec.sample.id;
        match &self.kind {
            Kind::Output {
                dir,
                manifest,
                shards,
                starts,
            } => {
                // An original is written just before its copies, so it is in
                // this shard or the one before.
                let k = starts.partition_point(|&s| s <= i) - 1;
                for shard in [Some(k), k.checked_sub(1)]
                    .into_iter()
                    .flatten()
                    .map(|k| &manifest.shards[shards[k]])
                {
                    let records = match super::provenance_of(dir, shard) {
                        Ok(r) => r,
                        Err(e) => return Some(Before::Missing(e.to_string())),
                    };
                    if let Some(j) = records.iter().position(is_original) {
                        return Some(match read_output(dir, manifest, shard, j) {
                            Ok(s) => Before::Found(Box::new(s)),
                            Err(e) => {
                                Before::Missing(format!("the original copy could not be read: {e}"))
                            }
                        });
                    }
                }
                None
            }
            Kind::Draft { known, .. } => known
                .iter()
                .find(|(_, s)| s.record.as_ref().is_some_and(is_original))
                .map(|(_, s)| Before::Found(Box::new(s.clone()))),
            Kind::Inputs(_) | Kind::Velocity { .. } => None,
        }
    }

    /// The input sample a provenance record names, under the input root.
    fn read_input(
        &self,
        dir: &Path,
        m: &Manifest,
        rec: &Provenance,
    ) -> std::result::Result<SampleView, String> {
        let input = rec.sample.input.as_str();
        let index = rec.sample.input_index;
        let root = self.input_root_for(dir, m, input).ok_or_else(|| {
            format!(
                "input {input} not found under the manifest's input_root {} (relative to the current directory or a folder above the output); give --input-root",
                m.input_root
            )
        })?;
        let data = root.join(input);
        let values = read_item(&data, &SEISMIC_SHAPE, index).map_err(|e| e.to_string())?;
        let label = m
            .inputs
            .iter()
            .find(|e| e.path == input)
            .and_then(|e| e.label.as_deref())
            .map_or_else(|| layout::partner_of(&data), |l| root.join(l));
        let velocity = if m.label_shape.is_some() && label.is_file() {
            Some(
                read_item(&label, &VELOCITY_SHAPE, index)
                    .or_else(|_| read_item(&label, &VELOCITY_SHAPE[1..], index))
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        Ok(SampleView {
            place: format!("{} #{index}", data.display()),
            values,
            shape: SEISMIC_SHAPE.to_vec(),
            velocity,
            record: None,
        })
    }

    /// The folder `input` is found under: `--input-root`, else the
    /// manifest's `input_root` as written (absolute, or relative to the
    /// current directory), else relative to each folder above the output.
    fn input_root_for(&self, dir: &Path, m: &Manifest, input: &str) -> Option<PathBuf> {
        let root = Path::new(&m.input_root);
        let mut candidates: Vec<PathBuf> = self.input_root.iter().cloned().collect();
        candidates.push(root.to_path_buf());
        if root.is_relative() {
            if let Ok(abs) = std::fs::canonicalize(dir) {
                candidates.extend(abs.ancestors().skip(1).map(|a| a.join(root)));
            }
        }
        candidates.into_iter().find(|c| c.join(input).is_file())
    }
}

/// Sample `j` of an output shard, with its label and provenance record.
fn read_output(dir: &Path, m: &Manifest, shard: &ShardRecord, j: usize) -> Result<SampleView> {
    let data = dir.join(&shard.files[0].path);
    let values = read_item(&data, &m.sample_shape, j)?;
    let velocity = match (&m.label_shape, shard.files.get(1)) {
        (Some(shape), Some(f)) => Some(read_item(&dir.join(&f.path), shape, j)?),
        _ => None,
    };
    Ok(SampleView {
        place: format!("{} #{j}", shard.files[0].path),
        values,
        shape: m.sample_shape.clone(),
        velocity,
        record: super::provenance_of(dir, shard)?.into_iter().nth(j),
    })
}
