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

/// One shard of an output, by its position (0-based) in the shard plan. Its
/// number in file names and records (`data/dataN.npy`, the journal's
/// `index`) is 1-based: [`Shard::number`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shard(usize);

impl Shard {
    /// The shard at position `j` (0-based) of the plan.
    #[must_use]
    pub const fn at(j: usize) -> Shard {
        Shard(j)
    }

    /// The shard numbered `n` (1-based) in file names and records; `None`
    /// for 0.
    #[must_use]
    pub fn from_number(n: usize) -> Option<Shard> {
        n.checked_sub(1).map(Shard)
    }

    /// Its position in the plan (0-based).
    #[must_use]
    pub const fn position(self) -> usize {
        self.0
    }

    /// Its number in file names and records (1-based).
    #[must_use]
    pub const fn number(self) -> usize {
        self.0 + 1
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard {}", self.number())
    }
}

/// The versions of the code that computed an output's bytes (the manifest's
/// `versions`, part of the run fingerprint).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Versions {
    /// The output encoding's version (`crate::io::manifest::OUTPUT_FORMAT_VERSION`).
    pub output_format: u32,
    /// One entry per planned stage, in order.
    pub stages: Vec<StageVersion>,
}

/// One planned stage's algorithm versions: `{"flip": 1}`, plus `"physics"`
/// for a stage that simulates and `"model_sha256"` for one that runs models.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageVersion {
    /// The stage type.
    pub stage: String,
    /// Algorithm name → version (or the models' SHA-256 list).
    pub algorithm: serde_json::Map<String, serde_json::Value>,
}

/// One input file as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputEntry {
    /// Relative to the input root.
    pub path: String,
    /// The label file, relative to the input root, if labelled.
    pub label: Option<String>,
    /// Samples in the file.
    pub samples: usize,
    /// numpy descr of the input data.
    pub dtype: String,
}
