//! `Sample`: one seismic array with its optional velocity map, its identity and
//! where it came from. Stages receive and transform samples one at a time.

use ndarray::{Array3, ArrayD};

/// The seismic shape of one OpenFWI sample: (source, time, receiver).
pub const SEISMIC_SHAPE: [usize; 3] = [5, 1000, 70];
/// The shape of one velocity map: (channel, depth z, x).
pub const VELOCITY_SHAPE: [usize; 3] = [1, 70, 70];

/// Where a sample was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Index of the input file in the deterministic input order.
    pub input: usize,
    /// Index of the sample inside that file (0 for a one-sample file).
    pub index: usize,
    /// Index over all input samples (input files in order, samples in order).
    pub global: usize,
    /// 0 for the untouched original, `k + 1` for augmented copy `k`.
    pub copy: u64,
}

/// One sample moving through a pipeline.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Identity used in provenance and for submission rows: the file stem for
    /// one-sample inputs (the Kaggle `oid`), otherwise `relative/path.npy#index`.
    pub id: String,
    /// Where it came from.
    pub origin: Origin,
    /// Seismic data; (5, 1000, 70) as read, other shapes after transforms such
    /// as spectrograms.
    pub seismic: ArrayD<f32>,
    /// The velocity map (1, 70, 70) in m/s, when labelled.
    pub velocity: Option<Array3<f32>>,
    /// Set by a stage that filters the sample out (e.g. a confidence filter);
    /// later stages skip it and the writer counts it instead of writing it.
    pub dropped: Option<String>,
}
