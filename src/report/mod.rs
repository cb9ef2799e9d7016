//! Pictures of the data: `seispipe preview` ([`preview()`]: PNGs of samples,
//! an augmented copy beside the input it was made from) and the
//! `report.html` of an output ([`write_report`]: what was run, previews,
//! drawn stage parameters, sampled value distributions per shard,
//! throughput, disk). Everything is drawn here, without Python and without
//! system fonts: a small RGB canvas (`canvas`), an embedded font (`font`),
//! matplotlib's colour maps (`colormap`), the preview blocks (`figure`), and
//! for the report inline SVG charts (`svg`) built from manifests, the journal
//! and a fixed number of sampled samples per shard (`stats`), so it scales
//! with shards, not samples.

mod canvas;
mod colormap;
mod draft;
mod figure;
mod font;
mod html;
mod preview;
mod sections;
mod source;
mod stats;
mod svg;

use std::path::Path;

use crate::error::Result;
use crate::io::manifest::{Provenance, ShardRecord};

pub use draft::{Draft, Drafts};
pub use html::{write_report, ReportOptions, REPORT_NAME};
pub use preview::{
    abs_percentile, pair, preview, Pair, PreviewOptions, Selection, DEFAULT_CLIP_PERCENTILE,
};
pub use source::SampleView;

/// The provenance records of `shard` of the output in `dir`, one per written
/// sample, in order: the one place the report reads provenance (from the
/// shard's JSON Lines file, see [`crate::io::manifest::read_provenance`]).
///
/// # Errors
/// A provenance file that is missing, unreadable or not one JSON object a
/// line, or one whose record count differs from the shard's samples.
pub fn provenance_of(dir: &Path, shard: &ShardRecord) -> Result<Vec<Provenance>> {
    crate::io::manifest::read_provenance(dir, shard)
}
