//! seispipe builds training data for seismic velocity-inversion models.
//!
//! Data flows one way:
//!
//! ```text
//! discover ─▶ read ─▶ stages ─▶ write ─▶ manifest ─▶ package
//! io::layout  io::npy  stage::*  io::npy   io::manifest  kaggle
//!             └──── pipeline::executor (threads, resume, progress) ────┘
//! ```
//!
//! * [`pipeline::spec`] — the pipeline file format (serde); [`pipeline::build`]
//!   validates it and builds runtime stages before any data is read.
//! * [`io::layout`] — finds OpenFWI / Kaggle inputs and pairs data with labels;
//!   [`io::npy`] reads samples in place and writes files atomically.
//! * [`stage`] — the [`stage::Stage`] contract and one module per stage.
//! * [`rng`] — the documented per-sample seed derivation.
//! * [`pipeline::executor`] — the only place with threads: bounded channels,
//!   resumable shard writing, the journal.
//! * [`io::manifest`] — the manifest, provenance and `verify`.
//! * [`pipeline::partition`], [`pipeline::merge`] — one output written by many
//!   processes (job arrays, machines) and merged byte-identical to a single
//!   run; [`launch`] writes the Slurm and Kubernetes jobs that do it.
//! * [`kaggle`] — splits a finished output into Kaggle dataset parts with
//!   metadata, per-part manifests and an upload plan (`seispipe package`).
//! * [`report`] — pictures: PNG previews of samples beside what they were
//!   made from (`seispipe preview`), and each output's `report.html`.
//! * [`app`] is the program both binaries run; `settings` resolves the command line; `commands` implements each
//!   subcommand; `progress` prints for people on stderr.

pub mod app;
pub(crate) mod cli;
pub(crate) mod commands;
pub mod cpu;
pub mod dsp;
pub mod error;
pub mod io;
pub mod kaggle;
pub mod launch;
pub mod model;
pub mod physics;
pub mod pipeline;
pub(crate) mod progress;
pub mod report;
pub mod rng;
pub mod sample;
pub(crate) mod settings;
pub mod stage;
pub mod synth;

pub use error::{Error, Result};
