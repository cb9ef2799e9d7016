//! Pipelines: the file format ([`spec`]), validation and construction
//! ([`build`]), and the one place with threads ([`executor`]), which plans
//! shards ([`plan`]), resumes earlier runs ([`resume`]) and runs the stages on
//! a chain of threads.

pub mod build;
pub mod executor;
mod finish;
pub mod plan;
mod records;
pub mod resume;
pub mod spec;
mod threads;
mod work;
