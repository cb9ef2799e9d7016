//! Files: `.npy` reading and writing ([`npy`]), input discovery and pairing
//! ([`layout`]), the output manifest ([`manifest`]), the direct-I/O file sink
//! behind the writer ([`sink`]), and atomic replacement of a file
//! ([`atomic`]).

pub mod atomic;
pub mod layout;
pub mod manifest;
pub mod npy;
pub mod sink;
