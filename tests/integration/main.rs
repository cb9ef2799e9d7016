//! All integration tests, in one binary (one link, one temp-dir helper).
//! One module per area; each module owns its fixtures.

mod util;

mod core;
mod kaggle;
mod kaggle_input;
mod launch;
mod layers;
mod old_release;
mod partitions;
mod physics;
mod pseudo_label;
mod readers;
mod refused_start;
mod report;
mod simulate_device;
mod spectrogram;
mod versions;
