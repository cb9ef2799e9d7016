//! Pipelines: the file format ([`spec`]), validation and construction
//! ([`build`]), and the one place with threads ([`executor`]), which plans
//! shards ([`plan`]), resumes earlier runs ([`resume`]) and runs the stages on
//! a chain of threads — for the whole output or one [`partition`] of it, whose
//! [`claim`] keeps two processes off the same shards; [`merge`] writes the
//! manifest once every partition is done.

pub mod build;
pub mod claim;
mod drafting;
pub mod executor;
mod finish;
pub mod merge;
pub mod partition;
pub mod plan;
mod records;
pub mod resume;
pub mod shards;
pub mod spec;
mod summary;
mod threads;
mod work;
