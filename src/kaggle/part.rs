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
