//! Input discovery and pairing for the OpenFWI / Kaggle layouts, and reading
//! single samples out of them.
//!
//! * `…/data/dataN.npy` pairs with `…/model/modelN.npy`; flat `seisA_B_C.npy`
//!   pairs with `velA_B_C.npy`. The rule (docs/domain.md, "Files on disk"): label path = seismic
//!   path with `seis`→`vel` and `data`→`model`.
//! * Any other `.npy` of shape (5, 1000, 70) is a one-sample unlabelled input
//!   (the Kaggle `test/<oid>.npy`), whose id is its file stem.
//!
//! * A seispipe output or Kaggle part (a folder with `manifest.json`) is read
//!   through its manifest ([`crate::io::source`]): labels paired as the
//!   source paired them, a part's files named as in the output it came from,
//!   and every sample keeping its original id.
//!
//! Files are ordered by a natural sort of their path relative to the input
//! root (`data2` before `data10`; for a part, the path in its output), so the
//! order, and every seed derived from it, is the same on every machine.

use std::path::{Path, PathBuf};

use ndarray::{Array3, ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::npy::{self, NpyHeader};
use crate::io::source::{SourceShard, Sources};
use crate::io::walk::{self, natural_cmp};
use crate::sample::{SEISMIC_SHAPE, VELOCITY_SHAPE};

/// `[input]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// A directory (searched recursively), a single `.npy` file, or a glob.
    /// Relative paths in a pipeline file are relative to the file's directory
    /// (with `--set`, to the current directory).
    pub path: String,
    /// How velocity-map partners are handled.
    #[serde(default)]
    pub labels: LabelMode,
    /// What to do with an input file that cannot be read (bad header, wrong
    /// shape, missing partner): stop, or skip it and record it.
    #[serde(default)]
    pub on_bad_file: Policy,
    /// What to do with a sample holding NaN or Inf: stop, or skip it and count it.
    #[serde(default)]
    pub on_nonfinite: Policy,
}

/// How labels are paired with seismic files.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LabelMode {
    /// `data*`/`seis*` shards must have their `model*`/`vel*` partner; other
    /// files (Kaggle test files) are unlabelled.
    #[default]
    Auto,
    /// Every seismic file must have a partner.
    Required,
    /// Ignore velocity maps entirely.
    None,
}

/// Stop or skip.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Stop the run with an error naming the file and sample.
    #[default]
    Error,
    /// Skip it, count it, and record it in the manifest.
    Skip,
}

/// One input file (with its label partner, if any).
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Seismic file.
    pub data: PathBuf,
    /// Its header.
    pub data_header: NpyHeader,
    /// Velocity-map partner.
    pub label: Option<PathBuf>,
    /// The partner's header.
    pub label_header: Option<NpyHeader>,
    /// Path relative to the input root, `/`-separated: the identity used for
    /// seeds. A Kaggle part's file is named as in the output it came from
    /// (see [`SourceShard::input_rel`]).
    pub rel: String,
    /// True for a one-sample (5, 1000, 70) file, whose id is its stem.
    pub single: bool,
    /// Samples in the file.
    pub samples: usize,
    /// The shard record of a file that a seispipe output or part lists in
    /// its manifest: the original id of every sample, and where it came from.
    pub source: Option<SourceShard>,
}

pub use crate::io::format::SkippedFile;

/// All inputs of a run, in order.
#[derive(Debug, Clone)]
pub struct InputSet {
    /// The root that relative ids are taken from.
    pub root: PathBuf,
    /// Files in deterministic order.
    pub files: Vec<InputFile>,
    /// `offsets[i]` = global index of the first sample of `files[i]`; one extra
    /// entry holds the total.
    pub offsets: Vec<usize>,
    /// Files skipped by policy.
    pub skipped: Vec<SkippedFile>,
    /// Whether every file is labelled.
    pub labelled: bool,
}

/// Find the `.npy` files named by `path`: a file, a directory (recursive), or a glob.
fn list_npy(path: &str) -> Result<(PathBuf, Vec<PathBuf>)> {
    let p = Path::new(path);
    if p.is_file() {
        let root = p
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        return Ok((root, vec![p.to_path_buf()]));
    }
    if p.is_dir() {
        return Ok((p.to_path_buf(), npy_files_under(p)?));
    }
    if path.contains(['*', '?', '[']) {
        let entries =
            glob::glob(path).map_err(|e| Error::config(path, format!("bad glob: {e}")))?;
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(|e| Error::io(e.path().to_path_buf(), "read", e.into()))?;
            if e.is_dir() {
                out.extend(npy_files_under(&e)?);
            } else if e.extension().is_some_and(|x| x == "npy") {
                out.push(e);
            }
        }
        // The root is the glob's literal prefix directory.
        let literal: String = path
            .chars()
            .take_while(|c| !matches!(c, '*' | '?' | '['))
            .collect();
        let root = Path::new(&literal);
        let root = if literal.ends_with('/') {
            root.to_path_buf()
        } else {
            root.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        };
        return Ok((root, out));
    }
    Err(Error::NoInputs(format!(
        "{path} (no such file or directory)"
    )))
}

/// The `.npy` files under `dir`, leaving out hidden names (dot files, the
/// writers' `.NAME.partial` temporaries, the `.seispipe` state directory).
fn npy_files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = walk::files(dir, walk::is_hidden)?;
    files.retain(|p| p.extension().is_some_and(|x| x == "npy"));
    Ok(files)
}

/// Whether a file name marks a label (velocity) file.
fn is_label_name(p: &Path) -> bool {
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent_is_model = p
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "model");
    // `modelN.npy` is a label inside a `model/` folder, or beside its
    // `dataN.npy` (the flat layout of a Kaggle part).
    let beside_data = stem
        .strip_prefix("model")
        .is_some_and(|rest| p.with_file_name(format!("data{rest}.npy")).is_file());
    stem.starts_with("vel") || (stem.starts_with("model") && (parent_is_model || beside_data))
}

/// Whether a file name marks a training shard that must have a label partner.
fn is_train_data_name(p: &Path) -> bool {
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    stem.starts_with("seis") || stem.starts_with("data")
}

/// The label partner path by the community rule: `seis`→`vel`, `data`→`model`
/// in the file name, and a parent directory named `data` → `model`.
#[must_use]
pub fn partner_of(data: &Path) -> PathBuf {
    let name = data
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let new_name = if let Some(rest) = name.strip_prefix("seis") {
        format!("vel{rest}")
    } else if let Some(rest) = name.strip_prefix("data") {
        format!("model{rest}")
    } else {
        name
    };
    let parent = data.parent().unwrap_or_else(|| Path::new(""));
    let parent = if parent.file_name().is_some_and(|n| n == "data") {
        parent.with_file_name("model")
    } else {
        parent.to_path_buf()
    };
    parent.join(new_name)
}

impl InputSet {
    /// Discover, pair and check every input named by `spec`. Only headers are
    /// read.
    ///
    /// # Errors
    /// No inputs, unreadable headers, unpaired files, shape or count mismatches
    /// (under `on_bad_file = "error"`), or a mix of labelled and unlabelled inputs.
    pub fn discover(spec: &InputSpec) -> Result<InputSet> {
        let (root, mut paths) = list_npy(&spec.path)?;
        paths.sort_by(|a, b| natural_cmp(&walk::rel_path(&root, a), &walk::rel_path(&root, b)));
        paths.dedup();
        if paths.is_empty() {
            return Err(Error::NoInputs(spec.path.clone()));
        }
        let all: std::collections::BTreeSet<PathBuf> = paths.iter().cloned().collect();
        let mut claimed = std::collections::BTreeSet::new();
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        let problem = |e: Error, skipped: &mut Vec<SkippedFile>, path: &Path| -> Result<()> {
            match spec.on_bad_file {
                Policy::Error => Err(e),
                Policy::Skip => {
                    skipped.push(SkippedFile {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    });
                    Ok(())
                }
            }
        };
        let mut sources = Sources::default();
        for p in &paths {
            if spec.labels != LabelMode::None && is_label_name(p) {
                continue;
            }
            let opened = sources
                .shard_of(p)
                .and_then(|source| Self::open_one(&root, p, &all, spec.labels, source));
            match opened {
                Ok(f) => {
                    if let Some(l) = &f.label {
                        claimed.insert(l.clone());
                    }
                    files.push(f);
                }
                Err(e) => {
                    // A bad data file still claims its partner so the partner is
                    // not reported twice.
                    claimed.insert(partner_of(p));
                    problem(e, &mut skipped, p)?;
                }
            }
        }
        if spec.labels != LabelMode::None {
            for p in &paths {
                if is_label_name(p) && !claimed.contains(p) {
                    let e = Error::Layout {
                        path: p.clone(),
                        reason: "label file has no seismic partner (expected the same path with vel→seis / model→data)".into(),
                    };
                    problem(e, &mut skipped, p)?;
                }
            }
        }
        if files.is_empty() {
            return Err(Error::NoInputs(if skipped.is_empty() {
                spec.path.clone()
            } else {
                format!("{} (every file was skipped as bad)", spec.path)
            }));
        }
        // A part's files take their names in the output they came from: order
        // by those names, and refuse two files standing for the same one.
        files.sort_by(|a, b| natural_cmp(&a.rel, &b.rel));
        if let Some([a, b]) = files.windows(2).find(|w| w[0].rel == w[1].rel) {
            return Err(same_identity(a, b));
        }
        let labelled = files.iter().all(|f| f.label.is_some());
        if !labelled && files.iter().any(|f| f.label.is_some()) {
            let l = files
                .iter()
                .find(|f| f.label.is_some())
                .expect("one is labelled");
            let u = files
                .iter()
                .find(|f| f.label.is_none())
                .expect("one is not");
            return Err(Error::Layout {
                path: PathBuf::from(&spec.path),
                reason: format!(
                    "mixes labelled inputs ({}) with unlabelled ones ({}); run them separately or set input.labels = \"none\"",
                    l.rel, u.rel
                ),
            });
        }
        let mut offsets = Vec::with_capacity(files.len() + 1);
        let mut total = 0;
        for f in &files {
            offsets.push(total);
            total += f.samples;
        }
        offsets.push(total);
        Ok(InputSet {
            root,
            files,
            offsets,
            skipped,
            labelled,
        })
    }

    fn open_one(
        root: &Path,
        p: &Path,
        all: &std::collections::BTreeSet<PathBuf>,
        mode: LabelMode,
        source: Option<SourceShard>,
    ) -> Result<InputFile> {
        let h = npy::read_header(p)?;
        let (single, samples) = match h.shape.as_slice() {
            [s, t, r] if [*s, *t, *r] == SEISMIC_SHAPE => (true, 1),
            [n, s, t, r] if [*s, *t, *r] == SEISMIC_SHAPE => (false, *n),
            other => {
                return Err(Error::Layout {
                    path: p.to_path_buf(),
                    reason: format!(
                        "seismic array has shape {other:?}; expected (N, 5, 1000, 70) for a shard or (5, 1000, 70) for one sample"
                    ),
                })
            }
        };
        if let Some(s) = &source {
            if s.samples != samples {
                return Err(Error::Layout {
                    path: p.to_path_buf(),
                    reason: format!(
                        "holds {samples} samples but {} lists {} for shard {}",
                        s.dir.join(crate::io::format::MANIFEST_NAME).display(),
                        s.samples,
                        s.index
                    ),
                });
            }
        }
        // A seispipe output or part pairs as its manifest says; a shard it
        // lists without labels is unlabelled, whatever its name.
        let (partner, listed_unlabelled) = match &source {
            Some(s) => (
                s.label.clone().unwrap_or_else(|| partner_of(p)),
                s.label.is_none(),
            ),
            None => (partner_of(p), false),
        };
        let has_partner =
            !listed_unlabelled && partner != p && (all.contains(&partner) || partner.is_file());
        let (label, label_header) = match mode {
            LabelMode::None => (None, None),
            _ if has_partner => {
                let lh = npy::read_header(&partner)?;
                let n = match lh.shape.as_slice() {
                    [n, c, z, x] if [*c, *z, *x] == VELOCITY_SHAPE => *n,
                    [n, z, x] if [*z, *x] == VELOCITY_SHAPE[1..] => *n,
                    other => {
                        return Err(Error::Layout {
                            path: partner.clone(),
                            reason: format!(
                                "velocity array has shape {other:?}; expected (N, 1, 70, 70)"
                            ),
                        })
                    }
                };
                if n != samples || single {
                    return Err(Error::Layout {
                        path: p.to_path_buf(),
                        reason: format!(
                            "holds {samples} samples but its label file {} holds {n}",
                            partner.display()
                        ),
                    });
                }
                (Some(partner), Some(lh))
            }
            LabelMode::Required => {
                return Err(Error::Layout {
                    path: p.to_path_buf(),
                    reason: format!("no label partner: expected {}", partner.display()),
                })
            }
            LabelMode::Auto if !single && is_train_data_name(p) && !listed_unlabelled => {
                return Err(Error::Layout {
                    path: p.to_path_buf(),
                    reason: format!(
                        "no label partner: expected {} (set input.labels = \"none\" to read seismic only)",
                        partner.display()
                    ),
                })
            }
            LabelMode::Auto => (None, None),
        };
        Ok(InputFile {
            rel: source
                .as_ref()
                .map_or_else(|| walk::rel_path(root, p), |s| s.input_rel(root, p)),
            data: p.to_path_buf(),
            data_header: h,
            label,
            label_header,
            single,
            samples,
            source,
        })
    }

    /// Total input samples.
    #[must_use]
    pub fn total(&self) -> usize {
        *self.offsets.last().unwrap_or(&0)
    }

    /// (file index, sample index in file) of a global sample index.
    #[must_use]
    pub fn locate(&self, global: usize) -> (usize, usize) {
        let f = self.offsets.partition_point(|&o| o <= global) - 1;
        (f, global - self.offsets[f])
    }

    /// The id of a sample: its id in the source manifest when the input is a
    /// seispipe output or part, else the stem of a one-sample file, else
    /// `rel#index`.
    #[must_use]
    pub fn sample_id(&self, file: usize, index: usize) -> String {
        let f = &self.files[file];
        if let Some(id) = f.source.as_ref().and_then(|s| s.ids.get(index)) {
            id.clone()
        } else if f.single {
            f.data
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            format!("{}#{index}", f.rel)
        }
    }

    /// Read the seismic data of one sample.
    ///
    /// # Errors
    /// I/O failures, named with the path.
    pub fn read_seismic(&self, file: usize, index: usize) -> Result<ArrayD<f32>> {
        let f = &self.files[file];
        let per: usize = SEISMIC_SHAPE.iter().product();
        let v = npy::read_f32_vec(&f.data, &f.data_header, index * per, per)?;
        Ok(ArrayD::from_shape_vec(IxDyn(&SEISMIC_SHAPE), v).expect("shape matches length"))
    }

    /// Read the velocity map of one sample, if the file is labelled.
    ///
    /// # Errors
    /// I/O failures, named with the path.
    pub fn read_velocity(&self, file: usize, index: usize) -> Result<Option<Array3<f32>>> {
        let f = &self.files[file];
        let (Some(lp), Some(lh)) = (&f.label, &f.label_header) else {
            return Ok(None);
        };
        let per: usize = VELOCITY_SHAPE.iter().product();
        let v = npy::read_f32_vec(lp, lh, index * per, per)?;
        Ok(Some(
            Array3::from_shape_vec(VELOCITY_SHAPE, v).expect("shape matches length"),
        ))
    }
}

/// The error for two input files that stand for the same file of an output
/// (a part given twice, or parts of different outputs side by side).
fn same_identity(a: &InputFile, b: &InputFile) -> Error {
    let what = match (&a.source, &b.source) {
        (Some(x), Some(y)) if x.fingerprint != y.fingerprint => format!(
            "; they come from different outputs (fingerprints {} and {}): give each output's parts as a separate input",
            short(&x.fingerprint),
            short(&y.fingerprint)
        ),
        _ => "; give each part once".to_string(),
    };
    Error::Layout {
        path: b.data.clone(),
        reason: format!(
            "stands for the same file `{}` as {}{what}",
            b.rel,
            a.data.display()
        ),
    }
}

fn short(fingerprint: &str) -> &str {
    fingerprint.get(..12).unwrap_or(fingerprint)
}

/// Whether every value is finite: a branch-free reduction that vectorises
/// (NaN and ±Inf are exactly the values with an all-ones exponent), compiled
/// for AVX2 too where the CPU has it.
#[must_use]
pub fn all_finite(values: &[f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { all_finite_avx2(values) };
    }
    all_finite_lanes(values)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn all_finite_avx2(values: &[f32]) -> bool {
    all_finite_lanes(values)
}

// Inlined into each caller, so the AVX2 copy above is compiled for AVX2.
#[allow(clippy::inline_always)]
#[inline(always)]
fn all_finite_lanes(values: &[f32]) -> bool {
    values.iter().fold(0u32, |acc, v| {
        acc | u32::from(v.to_bits() & 0x7f80_0000 == 0x7f80_0000)
    }) == 0
}

/// Error if any value is NaN or infinite, naming the first one.
///
/// # Errors
/// [`Error::Sample`] with the count and the first flat index.
pub fn check_finite(values: &[f32], path: &Path, index: usize, what: &str) -> Result<()> {
    if all_finite(values) {
        return Ok(());
    }
    let nan = values.iter().filter(|v| v.is_nan()).count();
    let inf = values.iter().filter(|v| v.is_infinite()).count();
    let first = values.iter().position(|v| !v.is_finite()).unwrap_or(0);
    Err(Error::Sample {
        path: path.to_path_buf(),
        index,
        reason: format!(
            "{what} holds {nan} NaN and {inf} Inf values (first at flat index {first})"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NaN and ±Inf are found at every position of slices of every length
    /// around the vector widths; the largest, the smallest subnormal and -0
    /// are finite. The AVX2 copy agrees with the portable one.
    #[test]
    fn all_finite_finds_every_nonfinite_value() {
        for len in 0..80 {
            let mut v: Vec<f32> = (0..len).map(|i| i as f32 - 20.5).collect();
            if len > 2 {
                (v[0], v[1], v[2]) = (f32::MAX, f32::from_bits(1), -0.0);
            }
            assert!(all_finite(&v) && all_finite_lanes(&v), "{len}");
            for at in 0..len {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let keep = v[at];
                    v[at] = bad;
                    assert!(!all_finite(&v) && !all_finite_lanes(&v), "{len} {at} {bad}");
                    v[at] = keep;
                }
            }
        }
    }

    #[test]
    fn partner_rule() {
        assert_eq!(
            partner_of(Path::new("x/FlatVel_A/data/data1.npy")),
            PathBuf::from("x/FlatVel_A/model/model1.npy")
        );
        assert_eq!(
            partner_of(Path::new("x/CurveFault_A/seis2_1_0.npy")),
            PathBuf::from("x/CurveFault_A/vel2_1_0.npy")
        );
    }
}
