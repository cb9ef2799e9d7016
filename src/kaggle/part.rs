//! What the packaging steps share: a part rendered in memory, its summary,
//! the marker of a finished packaging and the configuration error about the
//! target folder.

use std::path::Path;

use crate::error::Error;

/// Marker written last into a finished packaging.
pub const MARKER_NAME: &str = ".seispipe-package.json";
/// Marker format.
pub const MARKER_FORMAT: &str = "seispipe-kaggle/1";

/// One part of a packaging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSummary {
    /// Folder name and slug.
    pub slug: String,
    /// Shard numbers it holds, ascending.
    pub shards: Vec<usize>,
    /// Samples it holds.
    pub samples: usize,
    /// Files in its folder, metadata and manifest included.
    pub files: usize,
    /// Bytes in its folder, metadata and manifest included.
    pub bytes: u64,
}

/// A part, rendered in memory.
pub(super) struct Part {
    /// Folder name and slug.
    pub(super) slug: String,
    /// Indices of its units.
    pub(super) units: Vec<usize>,
    /// Its `manifest.json`.
    pub(super) manifest: Vec<u8>,
    /// Its `dataset-metadata.json`.
    pub(super) metadata: Vec<u8>,
    /// What it holds.
    pub(super) summary: PartSummary,
}

/// A configuration error about the folder `into`.
pub(super) fn config(into: &Path, reason: impl std::fmt::Display) -> Error {
    Error::config(into.display().to_string(), reason)
}

/// A seispipe wheel uploaded beside the parts, checked.
#[derive(Debug, Clone)]
pub(super) struct Wheel {
    /// The file given.
    pub(super) path: std::path::PathBuf,
    /// Its file name, kept in the dataset.
    pub(super) name: String,
    /// Its SHA-256 (part of the packaging's identity).
    pub(super) sha256: String,
}

/// The dataset (folder and slug) a wheel is uploaded as.
pub(super) fn wheel_slug(prefix: &str) -> String {
    format!("{prefix}-wheel")
}

/// The wheel the settings name, checked: a file named like a seispipe wheel
/// (`seispipe-VERSION-…-PLATFORM.whl`).
///
/// # Errors
/// A missing file, or one that is not a seispipe wheel by its name.
pub(super) fn checked_wheel(s: &super::Settings) -> crate::error::Result<Option<Wheel>> {
    let Some(path) = &s.wheel else {
        return Ok(None);
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let is_wheel = std::path::Path::new(&name)
        .extension()
        .is_some_and(|x| x == "whl");
    if !(name.starts_with("seispipe-") && is_wheel) {
        return Err(config(
            path,
            "is not a seispipe wheel (seispipe-VERSION-…-PLATFORM.whl, as `make wheels` writes them)",
        ));
    }
    if !path.is_file() {
        return Err(config(path, "does not exist (or is not a file)"));
    }
    let sha256 = crate::io::npy::sha256_file(path)?;
    Ok(Some(Wheel {
        path: path.clone(),
        name,
        sha256,
    }))
}
