//! The numbers behind the report, each from the cheapest source that has
//! them: drawn stage parameters from the provenance records; value
//! distributions per shard from a fixed number of sampled samples (partial
//! reads: one channel of each, never a whole shard); throughput from the
//! journal's times; disk use from the manifest's sizes and `stat`.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde_json::Value;

use crate::error::Result;
use crate::io::manifest::{Journal, Manifest, ShardRecord, STATE_DIR};
use crate::io::npy;

/// Categories kept per parameter before it is summarised as "many values".
const MAX_CATEGORIES: usize = 12;

/// The values one drawn parameter took.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Field {
    /// Numbers, one per record that has the parameter.
    Numbers(Vec<f64>),
    /// Counts of each value (yes/no for booleans); `more` counts records
    /// whose value was not kept because there were too many distinct ones.
    Categories {
        counts: BTreeMap<String, usize>,
        more: usize,
    },
}

/// What one stage drew over the whole output.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StageParams {
    /// Stage index in the pipeline.
    pub index: usize,
    /// Stage type.
    pub kind: String,
    /// Records with `applied: true`.
    pub applied: usize,
    /// Records with `applied: false`.
    pub not_applied: usize,
    /// Every other recorded key (nested keys joined with '.').
    pub fields: BTreeMap<String, Field>,
}

impl StageParams {
    fn add(&mut self, key: String, v: &Value) {
        match v {
            Value::Number(n) => {
                if let Some(x) = n.as_f64() {
                    if let Field::Numbers(xs) = self
                        .fields
                        .entry(key)
                        .or_insert_with(|| Field::Numbers(Vec::new()))
                    {
                        xs.push(x);
                    }
                }
            }
            Value::Bool(_) | Value::String(_) => {
                let name = match v {
                    Value::Bool(true) => "yes".to_string(),
                    Value::Bool(false) => "no".to_string(),
                    Value::String(s) => s.clone(),
                    _ => unreachable!("matched above"),
                };
                if let Field::Categories { counts, more } =
                    self.fields.entry(key).or_insert_with(|| Field::Categories {
                        counts: BTreeMap::new(),
                        more: 0,
                    })
                {
                    if let Some(c) = counts.get_mut(&name) {
                        *c += 1;
                    } else if counts.len() < MAX_CATEGORIES {
                        counts.insert(name, 1);
                    } else {
                        *more += 1;
                    }
                }
            }
            Value::Object(o) => {
                for (k, v) in o {
                    self.add(format!("{key}.{k}"), v);
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    self.add(format!("{key}[{i}]"), v);
                }
            }
            Value::Null => {}
        }
    }
}

/// Every stage's drawn parameters, from the provenance of every shard.
///
/// # Errors
/// Provenance that cannot be read (see [`super::provenance_of`]).
pub(super) fn stage_params(dir: &Path, m: &Manifest) -> Result<Vec<StageParams>> {
    let mut out: Vec<StageParams> = m.pipeline["stages"]
        .as_array()
        .map(|a| {
            a.iter()
                .enumerate()
                .map(|(index, s)| StageParams {
                    index,
                    kind: s["type"].as_str().unwrap_or("?").to_string(),
                    applied: 0,
                    not_applied: 0,
                    fields: BTreeMap::new(),
                })
                .collect()
        })
        .unwrap_or_default();
    for shard in &m.shards {
        for rec in &super::provenance_of(dir, shard)? {
            for st in &rec.stages {
                let Some(p) = out.get_mut(st.stage) else {
                    continue;
                };
                match st.applied() {
                    Some(true) => p.applied += 1,
                    Some(false) => p.not_applied += 1,
                    None => {}
                }
                for (k, v) in &st.fields {
                    if k != "applied" {
                        p.add(k.clone(), v);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Order statistics of a set of values (finite ones only; `nonfinite` counts the rest).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Quantiles {
    pub min: f64,
    pub p1: f64,
    pub p25: f64,
    pub p50: f64,
    pub p75: f64,
    pub p99: f64,
    pub max: f64,
    /// Root mean square.
    pub rms: f64,
    /// Finite values.
    pub n: usize,
    /// NaN and ±Inf values.
    pub nonfinite: usize,
}

/// The quantiles of `values` (numpy's default linear interpolation), or
/// `None` when none is finite. Reorders `values`.
pub(super) fn quantiles(values: &mut Vec<f32>) -> Option<Quantiles> {
    let before = values.len();
    values.retain(|v| v.is_finite());
    let nonfinite = before - values.len();
    let n = values.len();
    if n == 0 {
        return None;
    }
    let rms = (values
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        / n as f64)
        .sqrt();
    // Successive selections, each in the part above the previous one, so the
    // seven order statistics cost a few passes rather than a sort.
    let mut at = |p: f64, from: &mut usize| -> f64 {
        let pos = p / 100.0 * (n - 1) as f64;
        let k = pos.floor() as usize;
        let frac = pos - k as f64;
        let slice = &mut values[*from..];
        let (_, lo, upper) = slice.select_nth_unstable_by(k - *from, f32::total_cmp);
        let lo = f64::from(*lo);
        let hi = upper.iter().copied().fold(f32::INFINITY, f32::min);
        *from = k;
        if frac > 0.0 && hi.is_finite() {
            lo + (f64::from(hi) - lo) * frac
        } else {
            lo
        }
    };
    let mut from = 0;
    Some(Quantiles {
        min: at(0.0, &mut from),
        p1: at(1.0, &mut from),
        p25: at(25.0, &mut from),
        p50: at(50.0, &mut from),
        p75: at(75.0, &mut from),
        p99: at(99.0, &mut from),
        max: at(100.0, &mut from),
        rms,
        n,
        nonfinite,
    })
}

/// The sampled values of one shard.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ShardSample {
    /// 1-based shard number.
    pub index: usize,
    /// Samples read.
    pub samples_read: usize,
    /// Of the data (one channel of each sample read).
    pub data: Option<Quantiles>,
    /// Of the velocity maps of the samples read.
    pub velocity: Option<Quantiles>,
    /// Why the shard could not be read.
    pub error: Option<String>,
}

/// The positions and channels read from a shard of `n` samples: `k` samples
/// spread evenly, sample `j` read at channel `2j mod channels`.
pub(super) fn sample_plan(n: usize, k: usize, channels: usize) -> Vec<(usize, usize)> {
    let k = k.min(n);
    (0..k)
        .map(|j| ((2 * j + 1) * n / (2 * k), (2 * j) % channels.max(1)))
        .collect()
}

/// Distributions of `per_shard` samples of every shard.
pub(super) fn sampled(dir: &Path, m: &Manifest, per_shard: usize) -> Vec<ShardSample> {
    m.shards
        .iter()
        .map(|s| match sample_shard(dir, m, s, per_shard) {
            Ok(v) => v,
            Err(e) => ShardSample {
                index: s.index,
                samples_read: 0,
                data: None,
                velocity: None,
                error: Some(e.to_string()),
            },
        })
        .collect()
}

fn sample_shard(
    dir: &Path,
    m: &Manifest,
    s: &ShardRecord,
    per_shard: usize,
) -> Result<ShardSample> {
    let per: usize = m.sample_shape.iter().product();
    let channels = m.sample_shape.first().copied().unwrap_or(1).max(1);
    let per_channel = per / channels;
    let check = |path: &Path, item: &[usize]| -> Result<npy::NpyHeader> {
        let h = npy::read_header(path)?;
        if h.shape.first() != Some(&s.samples) || h.shape[1..] != *item {
            return Err(crate::Error::Layout {
                path: path.to_path_buf(),
                reason: format!(
                    "has shape {:?}; the manifest says {} samples of {item:?}",
                    h.shape, s.samples
                ),
            });
        }
        Ok(h)
    };
    let plan = sample_plan(s.samples, per_shard, channels);
    let data_path = dir.join(&s.files[0].path);
    let h = check(&data_path, &m.sample_shape)?;
    let mut values = Vec::with_capacity(plan.len() * per_channel);
    for &(i, ch) in &plan {
        values.extend(npy::read_f32_vec(
            &data_path,
            &h,
            i * per + ch * per_channel,
            per_channel,
        )?);
    }
    let velocity = match (&m.label_shape, s.files.get(1)) {
        (Some(shape), Some(f)) => {
            let path = dir.join(&f.path);
            let h = check(&path, shape)?;
            let per: usize = shape.iter().product();
            let mut v = Vec::with_capacity(plan.len() * per);
            for &(i, _) in &plan {
                v.extend(npy::read_f32_vec(&path, &h, i * per, per)?);
            }
            quantiles(&mut v)
        }
        _ => None,
    };
    Ok(ShardSample {
        index: s.index,
        samples_read: plan.len(),
        data: quantiles(&mut values),
        velocity,
        error: None,
    })
}

/// One journalled shard, placed in time.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Finished {
    pub shard: usize,
    pub samples: usize,
    pub bytes: u64,
    /// Seconds since the first run started.
    pub at: f64,
    /// Seconds since the previous shard of the same run finished (or the run started).
    pub took: f64,
    /// Which run (0-based, in order of start).
    pub run: usize,
}

/// What the journal says about time.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Timeline {
    /// No journal here (a Kaggle part carries none).
    NoJournal,
    /// Journal lines without times (written before they were recorded).
    NoTimes(usize),
    /// Every timed shard line, in order, with the runs' start times (Unix s).
    Timed {
        runs: Vec<f64>,
        shards: Vec<Finished>,
    },
}

/// The throughput timeline of the output in `dir`.
///
/// # Errors
/// A journal that exists but cannot be read.
pub(super) fn timeline(dir: &Path) -> Result<Timeline> {
    let journals = Journal::all(dir)?;
    if journals.is_empty() {
        return Ok(Timeline::NoJournal);
    }
    let mut lines = Vec::new();
    for j in journals {
        lines.extend(j.read_timed()?);
    }
    let timed: Vec<_> = lines
        .iter()
        .filter_map(|(r, t)| t.map(|t| (r, t)))
        .collect();
    if timed.is_empty() {
        return Ok(Timeline::NoTimes(lines.len()));
    }
    let mut runs: Vec<f64> = timed.iter().map(|(_, t)| t.run_started_at).collect();
    runs.sort_by(f64::total_cmp);
    runs.dedup();
    let t0 = runs[0];
    let mut last_in_run: BTreeMap<usize, f64> = BTreeMap::new();
    let mut shards = Vec::new();
    let mut ordered = timed;
    ordered.sort_by(|a, b| a.1.finished_at.total_cmp(&b.1.finished_at));
    for (r, t) in ordered {
        let run = runs.partition_point(|&s| s < t.run_started_at);
        let prev = last_in_run.get(&run).copied().unwrap_or(t.run_started_at);
        last_in_run.insert(run, t.finished_at);
        shards.push(Finished {
            shard: r.index,
            samples: r.samples,
            bytes: r.files.iter().map(|f| f.bytes).sum(),
            at: t.finished_at - t0,
            took: (t.finished_at - prev).max(0.0),
            run,
        });
    }
    Ok(Timeline::Timed { runs, shards })
}

/// One line of the disk table: files, bytes as listed, bytes allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DiskLine {
    pub what: String,
    pub files: usize,
    pub bytes: u64,
    pub allocated: u64,
}

/// Disk use by kind of file: sizes from the manifest, allocation from `stat`
/// (sparse or compressed file systems differ). `manifest.json` and the report
/// are left out: the manifest lists the report's hash, so counting either
/// would change the report each time it is written.
pub(super) fn disk(dir: &Path, m: &Manifest) -> Vec<DiskLine> {
    let allocated = |rel: &str| std::fs::metadata(dir.join(rel)).map_or(0, |md| md.blocks() * 512);
    let mut lines = Vec::new();
    let mut add = |what: &str, files: Vec<(&str, u64)>| {
        if !files.is_empty() {
            lines.push(DiskLine {
                what: what.into(),
                files: files.len(),
                bytes: files.iter().map(|f| f.1).sum(),
                allocated: files.iter().map(|f| allocated(f.0)).sum(),
            });
        }
    };
    add(
        "data (seismic) files",
        m.shards
            .iter()
            .filter_map(|s| s.files.first())
            .map(|f| (f.path.as_str(), f.bytes))
            .collect(),
    );
    add(
        "label (velocity) files",
        m.shards
            .iter()
            .filter_map(|s| s.files.get(1))
            .map(|f| (f.path.as_str(), f.bytes))
            .collect(),
    );
    add(
        "other files",
        m.extra_files
            .iter()
            .filter(|f| f.path != super::REPORT_NAME)
            .map(|f| (f.path.as_str(), f.bytes))
            .collect(),
    );
    let state: Vec<(String, u64)> = crate::io::walk::files(&dir.join(STATE_DIR), |_| false)
        .unwrap_or_default()
        .iter()
        .map(|p| {
            (
                crate::io::walk::rel_path(dir, p),
                std::fs::metadata(p).map_or(0, |md| md.len()),
            )
        })
        .collect();
    add(
        ".seispipe (journal, run state)",
        state.iter().map(|(p, b)| (p.as_str(), *b)).collect(),
    );
    lines
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of Unix seconds.
pub(super) fn utc(unix: f64) -> String {
    let secs = unix.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-from-civil, inverted.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy_linear_interpolation() {
        // numpy.percentile(range(101), [0, 1, 25, 50, 75, 99, 100]) → the
        // values themselves; with a NaN and ±Inf counted apart.
        let mut v: Vec<f32> = (0..=100).rev().map(|i| i as f32).collect();
        v.extend([f32::NAN, f32::INFINITY]);
        let q = quantiles(&mut v).unwrap();
        assert_eq!(
            (q.min, q.p1, q.p25, q.p50, q.p75, q.p99, q.max),
            (0.0, 1.0, 25.0, 50.0, 75.0, 99.0, 100.0)
        );
        assert_eq!((q.n, q.nonfinite), (101, 2));
        // np.percentile([1, 2, 3, 4], 25) = 1.75; 99 → 3.97.
        let q = quantiles(&mut vec![4.0, 1.0, 3.0, 2.0]).unwrap();
        assert!(
            (q.p25 - 1.75).abs() < 1e-12 && (q.p99 - 3.97).abs() < 1e-6,
            "{q:?}"
        );
        assert!((q.rms - (30.0f64 / 4.0).sqrt()).abs() < 1e-12);
        assert_eq!(quantiles(&mut vec![f32::NAN]), None);
    }

    #[test]
    fn sample_plans_spread_over_the_shard_and_its_channels() {
        assert_eq!(sample_plan(500, 2, 5), vec![(125, 0), (375, 2)]);
        assert_eq!(sample_plan(8, 4, 5), vec![(1, 0), (3, 2), (5, 4), (7, 1)]);
        assert_eq!(sample_plan(1, 2, 5), vec![(0, 0)]);
        assert_eq!(sample_plan(0, 2, 5), Vec::new());
    }

    #[test]
    fn parameters_are_flattened_and_counted() {
        let mut p = StageParams {
            index: 0,
            kind: "x".into(),
            applied: 0,
            not_applied: 0,
            fields: BTreeMap::new(),
        };
        p.add(
            "warp".into(),
            &serde_json::json!({"fx": 0.5, "theta_deg": -3.0}),
        );
        p.add(
            "warp".into(),
            &serde_json::json!({"fx": 0.7, "theta_deg": 2.0}),
        );
        p.add("flipped".into(), &serde_json::json!(true));
        assert_eq!(p.fields["warp.fx"], Field::Numbers(vec![0.5, 0.7]));
        assert_eq!(p.fields["warp.theta_deg"], Field::Numbers(vec![-3.0, 2.0]));
        for i in 0..20 {
            p.add("partner".into(), &serde_json::json!(format!("f.npy#{i}")));
        }
        let Field::Categories { counts, more } = &p.fields["partner"] else {
            panic!()
        };
        assert_eq!((counts.len(), *more), (MAX_CATEGORIES, 20 - MAX_CATEGORIES));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00");
        assert_eq!(utc(1_767_225_599.9), "2025-12-31 23:59:59");
    }
}
