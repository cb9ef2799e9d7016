//! Files: free space ([`disk`]), the output format's names ([`format`](mod@format)), `.npy` reading and writing ([`npy`]), input discovery and pairing
//! ([`layout`]), the output manifest ([`manifest`]), the direct-I/O file sink
//! behind the writer ([`sink`]) and the choice between direct and buffered
//! writes ([`mode`]), seispipe outputs and Kaggle parts read
//! back as inputs ([`source`]), atomic replacement of a file ([`atomic`]),
//! advisory locks that name their holder ([`lock`]) and the one sorted
//! directory walk ([`walk`]).

pub mod atomic;
pub mod disk;
pub mod format;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod mode;
pub mod npy;
pub mod sink;
pub mod source;
pub mod walk;
