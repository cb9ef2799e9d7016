//! Files: `.npy` reading and atomic writing ([`npy`]), input discovery and
//! pairing ([`layout`]), the output manifest ([`manifest`]), and the
//! direct-I/O file sink behind the writer ([`sink`]).

pub mod layout;
pub mod manifest;
pub mod npy;
pub mod sink;
