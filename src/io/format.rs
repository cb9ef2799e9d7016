//! The names and shared records of the output format: what the manifest,
//! input discovery and outputs read back as inputs all need, kept apart so
//! that none of them imports another for it.

/// Version of the output encoding: npy headers and data layout, f16 rounding,
/// the manifest and provenance format. Recorded in the run fingerprint beside
/// every stage's algorithm version (see [`crate::stage::algorithm`]).
/// Version 2 moved per-sample provenance out of the manifest into per-shard
/// JSON Lines files.
pub const OUTPUT_FORMAT_VERSION: u32 = 2;
/// Manifest format name.
pub const MANIFEST_FORMAT: &str = "seispipe-manifest/2";
/// Manifest file name in an output directory.
pub const MANIFEST_NAME: &str = "manifest.json";
/// Hidden state directory (run fingerprint and journal) in an output directory.
pub const STATE_DIR: &str = ".seispipe";
/// The output's report (see `crate::report`), listed in `extra_files`. It
/// is not packaged into Kaggle parts: it describes the whole output, and its
/// size is not known when `check` plans the parts.
pub const REPORT_NAME: &str = "report.html";

/// A file that was skipped under `on_bad_file = "skip"`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SkippedFile {
    /// The file.
    pub path: String,
    /// Why.
    pub reason: String,
}
