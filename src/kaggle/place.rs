//! The output's files on their way into part folders: the packing units (a
//! shard's data and label files, or a side file) with their flat names, the
//! check that every source file still matches the manifest, the staging folder
//! that receives hard links or copies plus the rendered manifests, metadata,
//! `upload.sh`, `PLAN.md` and marker, and the removal of the sources after
//! `--move`.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::metadata::METADATA_NAME;
use super::part::{config, wheel_slug, Part, PartSummary, Wheel, MARKER_FORMAT, MARKER_NAME};
use super::plan::Strategy;
use super::render::{plan_markdown, upload_script, wheel_metadata};
use super::{LinkMode, Settings};
use crate::error::{Error, Result};
use crate::io::atomic::{sync_dir, temp_path_for, write_atomic};
use crate::io::manifest::{Manifest, ShardRecord, MANIFEST_NAME, REPORT_NAME};
use crate::io::npy::{self, WrittenFile};

/// Marker of a staging folder (safe to delete: it holds only links or copies).
pub(super) const STAGING_MARK: &str = ".seispipe-staging";

/// A file of the output and its name inside a part.
#[derive(Debug, Clone)]
pub(super) struct Placed {
    /// Where it is in the output.
    pub(super) source: PathBuf,
    /// Its name in a part folder.
    pub(super) name: String,
    /// Its manifest record, with the flat name as path.
    pub(super) file: WrittenFile,
}

/// One packing item: a shard (data + labels) or a side file.
#[derive(Debug, Clone)]
pub(super) enum Unit {
    Shard(ShardRecord, Vec<Placed>),
    Extra(Placed),
}

impl Unit {
    /// Its files.
    pub(super) fn files(&self) -> &[Placed] {
        match self {
            Unit::Shard(_, f) => f,
            Unit::Extra(p) => std::slice::from_ref(p),
        }
    }
}

fn base_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// The units of an output, in shard order then side files.
pub(super) fn units_of(m: &Manifest, out_dir: &Path) -> Result<Vec<Unit>> {
    let mut names = std::collections::BTreeMap::<String, String>::new();
    let mut place = |f: &WrittenFile| -> Result<Placed> {
        let name = base_name(&f.path);
        if let Some(prev) = names.insert(name.clone(), f.path.clone()) {
            return Err(Error::Verify {
                dir: out_dir.to_path_buf(),
                reason: format!(
                    "{prev} and {} would both be `{name}` in a flat Kaggle folder",
                    f.path
                ),
            });
        }
        let mut file = f.clone();
        file.path.clone_from(&name);
        Ok(Placed {
            source: out_dir.join(&f.path),
            name,
            file,
        })
    };
    let mut shards: Vec<&ShardRecord> = m.shards.iter().collect();
    shards.sort_by_key(|s| s.index);
    let mut units = Vec::new();
    for sh in shards {
        let mut placed = sh
            .files
            .iter()
            .map(&mut place)
            .collect::<Result<Vec<_>>>()?;
        let mut rec = sh.clone();
        rec.files = placed.iter().map(|p| p.file.clone()).collect();
        let provenance = place(&sh.provenance)?;
        rec.provenance = provenance.file.clone();
        placed.push(provenance);
        units.push(Unit::Shard(rec, placed));
    }
    for x in m.extra_files.iter().filter(|x| x.path != REPORT_NAME) {
        units.push(Unit::Extra(place(x)?));
    }
    Ok(units)
}

/// Check that every file the parts need is present with its size (and hash).
pub(super) fn check_sources(out_dir: &Path, units: &[Unit], rehash: bool) -> Result<()> {
    let mut bad = Vec::new();
    for p in units.iter().flat_map(Unit::files) {
        match std::fs::metadata(&p.source) {
            Err(_) => bad.push(format!("{} is missing", p.source.display())),
            Ok(md) if md.len() != p.file.bytes => bad.push(format!(
                "{} has {} bytes, the manifest says {}",
                p.source.display(),
                md.len(),
                p.file.bytes
            )),
            Ok(_) if rehash => match npy::sha256_file(&p.source) {
                Ok(h) if h == p.file.sha256 => {}
                Ok(h) => bad.push(format!(
                    "{} has sha256 {h}, the manifest says {}",
                    p.source.display(),
                    p.file.sha256
                )),
                Err(e) => bad.push(e.to_string()),
            },
            Ok(_) => {}
        }
    }
    if bad.is_empty() {
        return Ok(());
    }
    let n = bad.len();
    bad.truncate(10);
    Err(Error::Verify {
        dir: out_dir.to_path_buf(),
        reason: format!(
            "the output does not match its manifest ({n} problems), nothing packaged: {}",
            bad.join("; ")
        ),
    })
}

/// Put `src` at `dst` as the link mode says.
fn place(src: &Path, dst: &Path, mode: LinkMode) -> Result<()> {
    match mode {
        LinkMode::Link => std::fs::hard_link(src, dst).map_err(|e| {
            Error::io(
                dst,
                "hard-link (parts must be on the output's file system; else use --copy)",
                e,
            )
        }),
        LinkMode::Move => {
            if std::fs::hard_link(src, dst).is_ok() {
                Ok(())
            } else {
                copy(src, dst)
            }
        }
        LinkMode::Copy => copy(src, dst),
    }
}

fn copy(src: &Path, dst: &Path) -> Result<()> {
    std::fs::copy(src, dst).map_err(|e| Error::io(dst, "copy", e))?;
    std::fs::File::open(dst)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dst, "fsync", e))
}

/// The hidden folder beside `into` where a packaging is built: the name a
/// file would be written under ([`temp_path_for`]), but a folder, filled and
/// renamed by `pack` itself (see there why not through `atomic::Partial`).
pub(super) fn staging_path(into: &Path) -> Result<PathBuf> {
    if into.file_name().is_none() {
        return Err(config(
            into,
            "the target folder needs a name (not `.` or `/`)",
        ));
    }
    Ok(temp_path_for(into))
}

/// Remove the output's files that went into the parts (`--move`).
pub(super) fn remove_sources(units: &[Unit]) -> Result<()> {
    for p in units.iter().flat_map(Unit::files) {
        match std::fs::remove_file(&p.source) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p.source, "remove after --move", e)),
        }
    }
    Ok(())
}

/// What a packaging adds beside its parts: its identity (for the marker)
/// and the wheel uploaded with it, if any.
pub(super) struct Marker<'a> {
    /// See `pack::identity`.
    pub(super) identity: &'a str,
    /// The wheel dataset's file.
    pub(super) wheel: Option<&'a Wheel>,
}

/// Write every part (and the wheel's dataset), `upload.sh`, `PLAN.md` and
/// the marker into `staging`.
pub(super) fn write_staging(
    out_dir: &Path,
    s: &Settings,
    units: &[Unit],
    parts: &[Part],
    strategy: Strategy,
    staging: &Path,
    marker: &Marker<'_>,
) -> Result<()> {
    let (id, wheel) = (marker.identity, marker.wheel);
    std::fs::create_dir_all(staging).map_err(|e| Error::io(staging, "create", e))?;
    write_atomic(
        &staging.join(STAGING_MARK),
        b"seispipe package in progress\n",
    )?;
    let mut marker_parts = Vec::new();
    for p in parts {
        let dir = staging.join(&p.slug);
        std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, "create", e))?;
        for &u in &p.units {
            for f in units[u].files() {
                place(&f.source, &dir.join(&f.name), s.mode)?;
            }
        }
        write_atomic(&dir.join(MANIFEST_NAME), &p.manifest)?;
        write_atomic(&dir.join(METADATA_NAME), &p.metadata)?;
        sync_dir(&dir)?;
        marker_parts.push(json!({
            "slug": p.slug,
            "shards": p.summary.shards,
            "samples": p.summary.samples,
            "files": p.summary.files,
            "bytes": p.summary.bytes,
        }));
    }
    if let Some(w) = wheel {
        let dir = staging.join(wheel_slug(&s.slug));
        std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, "create", e))?;
        copy(&w.path, &dir.join(&w.name))?;
        write_atomic(&dir.join(METADATA_NAME), &wheel_metadata(s, &w.name))?;
        sync_dir(&dir)?;
    }
    let summaries: Vec<PartSummary> = parts.iter().map(|p| p.summary.clone()).collect();
    let script = staging.join("upload.sh");
    write_atomic(&script, upload_script(s, &summaries).as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(&script, "make executable", e))?;
    }
    write_atomic(
        &staging.join("PLAN.md"),
        plan_markdown(out_dir, s, strategy, &summaries).as_bytes(),
    )?;
    let marker = json!({
        "format": MARKER_FORMAT,
        "identity": id,
        "source": out_dir.display().to_string(),
        "strategy": strategy.name(),
        "parts": marker_parts,
    });
    let mut marker = marker;
    if let Some(w) = wheel {
        marker["wheel"] = json!({
            "slug": wheel_slug(&s.slug),
            "file": w.name,
            "sha256": w.sha256,
        });
    }
    write_atomic(
        &staging.join(MARKER_NAME),
        serde_json::to_string_pretty(&marker)
            .expect("marker serialises")
            .as_bytes(),
    )?;
    std::fs::remove_file(staging.join(STAGING_MARK))
        .map_err(|e| Error::io(staging, "finish staging", e))?;
    sync_dir(staging)
}
