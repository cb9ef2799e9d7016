//! How much room a filesystem has: a [`DiskProbe`], which the run asks
//! before it starts and after every shard. The program uses [`Statvfs`]; a
//! program that embeds seispipe (or a test of the disk budget, which cannot
//! fill a real disk) hands its own to `crate::app::main_from`.

use std::path::Path;

use crate::error::{Error, Result};

/// Says how many bytes are free for unprivileged writes on the filesystem
/// holding a directory.
pub trait DiskProbe: Send + Sync {
    /// Bytes free on the filesystem of `dir`.
    ///
    /// # Errors
    /// The figure cannot be read.
    fn free_bytes(&self, dir: &Path) -> Result<u64>;
}

/// The kernel's figure (`statvfs`: available blocks × fragment size).
#[derive(Debug, Clone, Copy, Default)]
pub struct Statvfs;

impl DiskProbe for Statvfs {
    fn free_bytes(&self, dir: &Path) -> Result<u64> {
        let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::io(dir, "statvfs", std::io::Error::other("NUL in path")))?;
        // SAFETY: statvfs is a plain C struct of integers, for which all
        // zeros is a valid value.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated path that outlives the call, and
        // `st` is a valid, writable statvfs.
        let rc = unsafe { libc::statvfs(c.as_ptr(), &raw mut st) };
        if rc != 0 {
            return Err(Error::io(dir, "statvfs", std::io::Error::last_os_error()));
        }
        Ok(st.f_bavail * st.f_frsize)
    }
}
