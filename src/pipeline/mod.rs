//! Pipelines: the file format ([`spec`]), validation and construction
//! ([`build`]), and the one place with threads ([`executor`]).

pub mod build;
pub mod executor;
pub mod spec;
