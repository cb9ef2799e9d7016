//! What an output or a file holds: `seispipe inspect` (one line per `.npy`
//! file), `seispipe verify` (an output against its manifest, or what an
//! unfinished one has left), and the lines `verify` and `merge` print about
//! the code versions and the devices that computed an output.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::manifest;
use crate::io::npy;
use crate::io::walk;

/// Where the stages with a `device` ran, one line per stage:
/// `devices: stages[0]: tch-cuda:0 (shards 1–6), rust (shards 7–12)`.
/// Nothing for an output without such stages.
#[must_use]
pub fn devices_lines(shards: &[manifest::ShardRecord]) -> Vec<String> {
    let mut per_stage: std::collections::BTreeMap<&str, Vec<(&str, Vec<usize>)>> =
        std::collections::BTreeMap::new();
    for sh in shards {
        for (stage, device) in &sh.devices {
            let runs = per_stage.entry(stage).or_default();
            match runs.iter_mut().find(|(d, _)| d == device) {
                Some((_, v)) => v.push(sh.index),
                None => runs.push((device, vec![sh.index])),
            }
        }
    }
    per_stage
        .into_iter()
        .map(|(stage, runs)| {
            let shown: Vec<String> = runs
                .iter()
                .map(|(d, idx)| format!("{d} (shards {})", ranges(idx)))
                .collect();
            let mixed = if runs.len() > 1 {
                " — a mix: simulators and devices agree to rounding, not to the bit"
            } else {
                ""
            };
            format!("devices: {stage}: {}{mixed}", shown.join(", "))
        })
        .collect()
}

/// `1, 2, 3, 5` → `1–3, 5`.
fn ranges(idx: &[usize]) -> String {
    let mut v = idx.to_vec();
    v.sort_unstable();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}–{}", v[i], v[j])
        });
        i = j + 1;
    }
    out.join(", ")
}

/// What `seispipe inspect` found: one line per `.npy` file, and how many of
/// them could not be read.
pub struct Inspection {
    /// The report.
    pub text: String,
    /// Files whose line is an error.
    pub unreadable: usize,
}

/// `seispipe inspect`: one line per `.npy` file.
///
/// # Errors
/// The path does not exist or cannot be listed (per-file problems are lines of the report).
pub fn inspect(path: &Path) -> Result<Inspection> {
    let files = if path.is_dir() {
        // Every `.npy`, hidden ones included: `inspect` shows what is there.
        let mut files = walk::files(path, |_| false)?;
        files.retain(|p| p.extension().is_some_and(|x| x == "npy"));
        files
    } else if path.exists() {
        vec![path.to_path_buf()]
    } else {
        return Err(Error::NoInputs(path.display().to_string()));
    };
    let mut s = String::new();
    let mut unreadable = 0;
    for f in files {
        match inspect_file(&f) {
            Ok(line) => {
                let _ = writeln!(s, "{}: {line}", f.display());
            }
            Err(e) => {
                unreadable += 1;
                let _ = writeln!(s, "error: {e}");
            }
        }
    }
    Ok(Inspection {
        text: s,
        unreadable,
    })
}

fn inspect_file(p: &Path) -> Result<String> {
    let h = npy::read_header(p)?;
    let n = h.len();
    let mut buf = vec![0f32; (1 << 20).min(n.max(1))];
    let (mut min, mut max, mut sum) = (f32::INFINITY, f32::NEG_INFINITY, 0f64);
    let (mut nan, mut inf, mut finite) = (0usize, 0usize, 0usize);
    let file = std::fs::File::open(p).map_err(|e| Error::io(p, "open", e))?;
    let mut at = 0;
    while at < n {
        let k = buf.len().min(n - at);
        npy::read_f32_from(&file, p, &h, at, &mut buf[..k])?;
        for &v in &buf[..k] {
            if v.is_nan() {
                nan += 1;
            } else if v.is_infinite() {
                inf += 1;
            } else {
                finite += 1;
                min = min.min(v);
                max = max.max(v);
                sum += f64::from(v);
            }
        }
        at += k;
    }
    let mean = if finite > 0 {
        sum / finite as f64
    } else {
        f64::NAN
    };
    Ok(format!(
        "shape {:?} {} min {min} max {max} mean {mean:.6} NaN {nan} Inf {inf}",
        h.shape,
        npy::descr(h.dtype)
    ))
}

/// One line naming the code versions a manifest records.
pub(super) fn versions_line(m: &manifest::Manifest) -> String {
    let Some(v) = &m.versions else {
        return format!(
            "versions: none recorded (written by seispipe {} before algorithm versions were recorded)",
            m.seispipe_version
        );
    };
    let stages: Vec<String> = v
        .stages
        .iter()
        .map(|s| {
            let alg = s
                .algorithm
                .iter()
                .map(|(k, v)| match v {
                    serde_json::Value::Array(shas) => format!(
                        "{k} {}",
                        shas.iter()
                            .map(|h| h.as_str().map_or("?", |h| &h[..h.len().min(12)]))
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                    other => format!("{k} {other}"),
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("{} ({alg})", s.stage)
        })
        .collect();
    let mut line = format!(
        "versions: seispipe {}, output format {}, stages: {}",
        m.seispipe_version,
        v.output_format,
        if stages.is_empty() {
            "none".into()
        } else {
            stages.join("; ")
        }
    );
    if let Some(note) = &m.unversioned_resume {
        let _ = write!(line, "\nwarning: {note}");
    }
    line
}

/// `seispipe verify`: the report and whether it is clean.
///
/// # Errors
/// No manifest in `dir`.
pub fn verify(dir: &Path) -> Result<(String, bool)> {
    let unfinished = !dir.join(manifest::MANIFEST_NAME).exists()
        && dir.join(manifest::STATE_DIR).join("run.json").is_file();
    if unfinished {
        return Ok((verify_unfinished(dir)?, false));
    }
    let rep = manifest::verify_output(dir)?;
    let mut s = String::new();
    let m = manifest::Manifest::load(dir)?;
    let _ = writeln!(s, "{}", versions_line(&m));
    for line in devices_lines(&m.shards) {
        let _ = writeln!(s, "{line}");
    }
    for m in &rep.missing {
        let _ = writeln!(s, "missing: {m}");
    }
    for c in &rep.corrupt {
        let _ = writeln!(s, "corrupt: {c}");
    }
    for x in &rep.extra {
        let _ = writeln!(s, "extra: {x}");
    }
    let _ = writeln!(
        s,
        "{}: {} files intact, {} missing, {} corrupt, {} extra",
        dir.display(),
        rep.ok,
        rep.missing.len(),
        rep.corrupt.len(),
        rep.extra.len()
    );
    Ok((s, rep.is_clean()))
}

/// `verify` on an output with a run but no manifest yet: its journalled
/// shards checked, leftovers named. Never clean: the output is not finished.
fn verify_unfinished(dir: &Path) -> Result<String> {
    let (rep, shards) = manifest::verify_unfinished(dir)?;
    let mut s = String::new();
    for m in &rep.missing {
        let _ = writeln!(s, "missing: {m}");
    }
    for c in &rep.corrupt {
        let _ = writeln!(s, "corrupt: {c}");
    }
    for x in &rep.extra {
        let _ = writeln!(
            s,
            "leftover: {x} (no journalled shard lists it; the next run rewrites or ignores it)"
        );
    }
    let _ = writeln!(
        s,
        "{}: unfinished (no {} yet): {shards} shards journalled, {} files intact, {} missing, {} corrupt, {} leftover; run the same command again to finish it",
        dir.display(),
        manifest::MANIFEST_NAME,
        rep.ok,
        rep.missing.len(),
        rep.corrupt.len(),
        rep.extra.len()
    );
    Ok(s)
}
