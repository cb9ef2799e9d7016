//! The `package` entry point: writing the Kaggle packaging of a finished
//! output (one folder per part, `SLUG-part-001/`, with flat files `dataN.npy` +
//! `modelN.npy`, a per-part `manifest.json` that `seispipe verify` accepts and
//! `dataset-metadata.json`, plus `upload.sh` and `PLAN.md`), its options and
//! outcome, and what the target folder already holds. Everything is checked
//! before anything is written; parts are built in a hidden staging folder
//! (see `place`) that is renamed into place last, with a marker
//! (`.seispipe-package.json`) that makes packaging the same output with the
//! same settings a no-op.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::part::{checked_wheel, config, PartSummary, Wheel, MARKER_FORMAT, MARKER_NAME};
use super::parts::render_parts;
use super::place::{
    check_sources, remove_sources, staging_path, units_of, write_staging, Marker, Unit,
    STAGING_MARK,
};
use super::plan::Strategy;
use super::render::summary_text;
use super::{LinkMode, Settings};
use crate::error::{Error, Result};
use crate::io::atomic::sync_parent;
use crate::io::manifest::{Manifest, MANIFEST_NAME};
use crate::io::npy;

/// How to package.
#[derive(Debug, Clone, Copy, Default)]
pub struct PackOptions {
    /// Re-hash every output file against the manifest before packaging
    /// (otherwise presence and sizes are checked).
    pub rehash: bool,
    /// Plan and validate only; write nothing.
    pub dry_run: bool,
}

/// What [`package`] did.
#[derive(Debug, Clone)]
pub struct PackOutcome {
    /// The target folder.
    pub into: PathBuf,
    /// The parts.
    pub parts: Vec<PartSummary>,
    /// The target already held this packaging; nothing was written.
    pub already_packaged: bool,
    /// The summary table (also in `PLAN.md`) and what was done.
    pub text: String,
}

/// What identifies a packaging: the output's manifest bytes and every setting
/// that changes what is written (not the link mode or the target path),
/// the wheel included.
fn identity(manifest_bytes: &[u8], s: &Settings, wheel: Option<&Wheel>) -> String {
    let mut settings = json!({
        "format": MARKER_FORMAT,
        "owner": s.owner, "slug": s.slug, "title": s.title, "subtitle": s.subtitle,
        "licenses": s.licenses, "max_dataset_bytes": s.max_dataset_bytes, "max_files": s.max_files,
    });
    // Only with a wheel, so packagings without one keep their identity.
    if let Some(w) = wheel {
        settings["wheel"] = json!({ "name": w.name, "sha256": w.sha256 });
    }
    let mut h = Sha256::new();
    h.update(manifest_bytes);
    h.update(settings.to_string().as_bytes());
    npy::hex(&h.finalize())
}

fn is_inside(a: &Path, b: &Path) -> bool {
    let (Ok(a), Ok(b)) = (std::path::absolute(a), std::path::absolute(b)) else {
        return false;
    };
    a.starts_with(b)
}

/// What the target folder holds now.
enum Target {
    Absent,
    Empty,
    Same(Value),
    Different(String),
    Foreign,
}

fn inspect_target(into: &Path, id: &str) -> Result<Target> {
    if !into.exists() {
        return Ok(Target::Absent);
    }
    if !into.is_dir() {
        return Ok(Target::Foreign);
    }
    let marker = into.join(MARKER_NAME);
    if let Ok(text) = std::fs::read_to_string(&marker) {
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        return Ok(if v.get("identity").and_then(Value::as_str) == Some(id) {
            Target::Same(v)
        } else {
            Target::Different(
                v.get("source")
                    .and_then(Value::as_str)
                    .unwrap_or("another output")
                    .to_string(),
            )
        });
    }
    let mut rd = std::fs::read_dir(into).map_err(|e| Error::io(into, "list directory", e))?;
    Ok(if rd.next().is_none() {
        Target::Empty
    } else {
        Target::Foreign
    })
}

/// The packaging already in place: check its parts are whole and finish a
/// `--move` that stopped before removing the sources.
fn already_packaged(
    out_dir: &Path,
    s: &Settings,
    marker: &Value,
    units: &[Unit],
) -> Result<PackOutcome> {
    let count = |v: &Value| {
        v.as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .unwrap_or(0)
    };
    let parts: Vec<PartSummary> = marker
        .get("parts")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|p| PartSummary {
                    slug: p["slug"].as_str().unwrap_or_default().to_string(),
                    shards: p["shards"]
                        .as_array()
                        .map(|v| v.iter().map(count).collect())
                        .unwrap_or_default(),
                    samples: count(&p["samples"]),
                    files: count(&p["files"]),
                    bytes: p["bytes"].as_u64().unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    for p in &parts {
        let dir = s.into.join(&p.slug);
        let rep = size_problems(&dir);
        if !rep.is_empty() {
            return Err(config(
                &s.into,
                format!(
                    "holds this packaging, but part {} changed ({}); delete {} and package again",
                    p.slug,
                    rep.join("; "),
                    s.into.display()
                ),
            ));
        }
    }
    if s.mode == LinkMode::Move {
        remove_sources(units)?;
    }
    let strategy = match marker.get("strategy").and_then(Value::as_str) {
        Some("first-fit decreasing") => Strategy::FirstFitDecreasing,
        Some("best-fit decreasing") => Strategy::BestFitDecreasing,
        _ => Strategy::InOrder,
    };
    Ok(PackOutcome {
        into: s.into.clone(),
        text: summary_text(
            out_dir,
            s,
            strategy,
            &parts,
            "already packaged (nothing to do):",
        ),
        parts,
        already_packaged: true,
    })
}

/// Files of a part that are missing or have another size than its manifest says.
fn size_problems(dir: &Path) -> Vec<String> {
    let m = match Manifest::load(dir) {
        Ok(m) => m,
        Err(e) => return vec![e.to_string()],
    };
    m.all_files()
        .filter_map(|f| match std::fs::metadata(dir.join(&f.path)) {
            Err(_) => Some(format!("{} is missing", f.path)),
            Ok(md) if md.len() != f.bytes => Some(format!("{} has another size", f.path)),
            Ok(_) => None,
        })
        .collect()
}

/// Package the finished output `out_dir` as Kaggle datasets under `s.into`.
/// `origin` names the settings' source in messages (a pipeline file or
/// `seispipe package`).
///
/// # Errors
/// No manifest or files that do not match it; settings Kaggle would refuse; a
/// shard larger than a part; a target folder holding something else; I/O.
/// Every check happens before anything is written.
pub fn package(
    out_dir: &Path,
    s: &Settings,
    origin: &str,
    opts: &PackOptions,
) -> Result<PackOutcome> {
    let mpath = out_dir.join(MANIFEST_NAME);
    let manifest_bytes = std::fs::read(&mpath).map_err(|e| Error::Verify {
        dir: out_dir.to_path_buf(),
        reason: format!(
            "no readable {MANIFEST_NAME} ({e}): not a finished seispipe output (a run writes it when every shard is done; run `seispipe run` again to finish)"
        ),
    })?;
    let m = Manifest::load(out_dir)?;
    if m.shards.is_empty() {
        return Err(Error::Verify {
            dir: out_dir.to_path_buf(),
            reason: "the manifest lists no shards: nothing to package".into(),
        });
    }
    if is_inside(&s.into, out_dir) || is_inside(out_dir, &s.into) {
        return Err(config(
            &s.into,
            format!(
                "the target folder must be outside the output {} (and not contain it); e.g. `{}-kaggle`",
                out_dir.display(),
                out_dir.display()
            ),
        ));
    }
    let units = units_of(&m, out_dir)?;
    let wheel = checked_wheel(s)?;
    let id = identity(&manifest_bytes, s, wheel.as_ref());
    match inspect_target(&s.into, &id)? {
        Target::Same(marker) if !opts.dry_run => {
            return already_packaged(out_dir, s, &marker, &units)
        }
        Target::Different(src) => {
            return Err(config(
                &s.into,
                format!(
                    "already holds a different packaging (of {src}, or with other settings); choose another target folder or delete this one"
                ),
            ))
        }
        Target::Foreign => {
            return Err(config(
                &s.into,
                "exists and holds files that are not a seispipe packaging; choose a new or empty folder",
            ))
        }
        _ => {}
    }
    let (parts, strategy) = render_parts(&m, s, &units, origin)?;
    let summaries: Vec<PartSummary> = parts.iter().map(|p| p.summary.clone()).collect();
    if opts.dry_run {
        return Ok(PackOutcome {
            into: s.into.clone(),
            text: summary_text(out_dir, s, strategy, &summaries, "would package (dry run)"),
            parts: summaries,
            already_packaged: false,
        });
    }
    check_sources(out_dir, &units, opts.rehash)?;

    let staging = staging_path(&s.into)?;
    if staging.exists() {
        if staging.join(STAGING_MARK).exists() {
            std::fs::remove_dir_all(&staging)
                .map_err(|e| Error::io(&staging, "remove an unfinished earlier packaging", e))?;
        } else {
            return Err(config(
                &staging,
                "exists and is not a seispipe staging folder; move it away",
            ));
        }
    }
    let marker = Marker {
        identity: &id,
        wheel: wheel.as_ref(),
    };
    let res = write_staging(out_dir, s, &units, &parts, strategy, &staging, &marker);
    if let Err(e) = res {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    if s.into.exists() {
        // An empty folder (checked above): make way for the rename.
        std::fs::remove_dir(&s.into).map_err(|e| Error::io(&s.into, "replace empty folder", e))?;
    }
    // A directory, so not `atomic::Partial`: the staging folder is filled by
    // many writes (each file fsynced, then the folder), is recognised and
    // cleared by its marker on a rerun rather than removed on drop, and may
    // have to replace an empty folder. Only the last step is shared: rename,
    // then fsync the parent.
    std::fs::rename(&staging, &s.into).map_err(|e| Error::io(&s.into, "rename into place", e))?;
    sync_parent(&s.into)?;
    if s.mode == LinkMode::Move {
        remove_sources(&units)?;
    }
    Ok(PackOutcome {
        into: s.into.clone(),
        text: summary_text(out_dir, s, strategy, &summaries, "packaged"),
        parts: summaries,
        already_packaged: false,
    })
}
