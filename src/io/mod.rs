//! Files: `.npy` reading and atomic writing ([`npy`]), input discovery and
//! pairing ([`layout`]), and the output manifest ([`manifest`]).

pub mod layout;
pub mod manifest;
pub mod npy;
