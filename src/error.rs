//! The library's error type: every variant carries the file, sample or key it
//! is about, so a message read days after a run started still says where to look.

use std::path::PathBuf;

/// Errors raised by seispipe's library code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named file (open, read, write, rename, fsync).
    #[error("{path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A `.npy` file whose header or size is not what seispipe can read.
    #[error("{path}: {reason}")]
    Npy { path: PathBuf, reason: String },
    /// Inputs that are present but do not fit together (pairs, shapes, counts).
    #[error("{path}: {reason}")]
    Layout { path: PathBuf, reason: String },
    /// No input files matched.
    #[error("no input files found at {0} (expected .npy shards in the OpenFWI layout, or one-sample test files)")]
    NoInputs(String),
    /// A pipeline file (or `--set` override) that is not valid.
    #[error("{file}: {reason}")]
    Config { file: String, reason: String },
    /// A value inside a sample that a stage or the writer refuses.
    #[error("{path}, sample {index}: {reason}")]
    Sample {
        path: PathBuf,
        index: usize,
        reason: String,
    },
    /// The output directory holds a run that the current pipeline cannot resume.
    #[error("{dir}: {reason}")]
    Resume { dir: PathBuf, reason: String },
    /// Files under an output directory that do not match its manifest.
    #[error("{dir}: {reason}")]
    Verify { dir: PathBuf, reason: String },
    /// Free space on the output's filesystem fell below the reserve; the run
    /// stopped after a finished shard and resumes when rerun.
    #[error("{dir}: {reason}")]
    DiskLow { dir: PathBuf, reason: String },
    /// The user pressed Ctrl-C (or sent SIGTERM); finished shards are kept.
    #[error("interrupted: finished shards are kept; run the same command again to resume")]
    Interrupted,
}

/// Shorthand used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wrap an I/O error with the path and what was being done.
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// A configuration error in `file`.
    pub fn config(file: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Config {
            file: file.into(),
            reason: reason.to_string(),
        }
    }
}

/// An error raised by a stage while transforming one sample; the executor adds
/// the file and sample index before reporting it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StageError {
    /// What is wrong.
    pub message: String,
    /// For a batch stage: the index, within the batch it was handed, of the
    /// sample the error is about (the executor names that sample's file and
    /// index); `None`: the first sample of the batch.
    pub batch_index: Option<usize>,
}

impl StageError {
    /// A stage error with a message.
    pub fn new(msg: impl std::fmt::Display) -> Self {
        StageError {
            message: msg.to_string(),
            batch_index: None,
        }
    }

    /// A batch stage's error about sample `index` of its batch.
    pub fn in_batch(index: usize, msg: impl std::fmt::Display) -> Self {
        StageError {
            message: msg.to_string(),
            batch_index: Some(index),
        }
    }
}
