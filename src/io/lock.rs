//! Advisory file locks (the standard library's `File::try_lock`, which is
//! `flock` on Linux) that say who holds them.
//!
//! A [`FileLock`] is held while the value lives and released by the kernel
//! when the process ends in any way (a killed or requeued task leaves no stale
//! lock). The file holds the holder's host and pid, so a refused claim can
//! name them. `flock` works between processes of one machine and on the
//! shared filesystems Slurm clusters use for outputs (NFS v4 maps it to
//! byte-range locks, Lustre with `flock` mounts); on a filesystem without
//! locks the claim fails with the error, never silently.

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A held lock; dropping it releases the lock (the file stays).
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// The lock file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes the
        // release independent of other descriptors of the same file.
        let _ = self.file.unlock();
    }
}

/// What trying to take a lock found.
#[derive(Debug)]
pub enum Attempt {
    /// The lock is ours while this lives.
    Acquired(FileLock),
    /// Another process holds it: the holder as its lock file says
    /// (`host pid N`, or `another process`).
    HeldBy(String),
}

impl Attempt {
    /// The lock, if it was taken.
    #[must_use]
    pub fn acquired(self) -> Option<FileLock> {
        match self {
            Attempt::Acquired(l) => Some(l),
            Attempt::HeldBy(_) => None,
        }
    }
}

/// Who this process is, for lock files and run logs: `host pid N`.
#[must_use]
pub fn holder() -> String {
    format!("{} pid {}", host_name(), std::process::id())
}

/// This machine's host name (`unknown` if the kernel does not say).
#[must_use]
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Take the exclusive lock on `path` (created if missing) without waiting.
///
/// # Errors
/// The file cannot be created or the filesystem does not support locks.
pub fn try_lock(path: &Path) -> Result<Attempt> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(path, "open lock file", e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Ok(Attempt::HeldBy(named(&text)));
        }
        Err(TryLockError::Error(e)) => return Err(Error::io(path, "lock", e)),
    }
    // Ours: say who holds it.
    let me = holder();
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(me.as_bytes()))
        .and_then(|()| file.flush())
        .map_err(|e| Error::io(path, "write lock file", e))?;
    Ok(Attempt::Acquired(FileLock {
        file,
        path: path.to_path_buf(),
    }))
}

/// The holder a lock file names.
fn named(text: &str) -> String {
    let who = text.trim();
    if who.is_empty() {
        "another process".into()
    } else {
        who.to_string()
    }
}

/// Whether another process holds the lock on `path` now: its holder if so.
/// A missing file is not held.
///
/// # Errors
/// The file exists but cannot be opened or locked for a reason other than
/// being held.
pub fn held_by(path: &Path) -> Result<Option<String>> {
    let file = match std::fs::OpenOptions::new().read(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, "open lock file", e)),
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(None)
        }
        Err(TryLockError::WouldBlock) => Ok(Some(named(
            &std::fs::read_to_string(path).unwrap_or_default(),
        ))),
        Err(TryLockError::Error(e)) => Err(Error::io(path, "lock", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_exclusive_names_its_holder_and_is_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.lock");
        assert_eq!(held_by(&p).unwrap(), None);
        let Attempt::Acquired(lock) = try_lock(&p).unwrap() else {
            panic!("free")
        };
        assert_eq!(lock.path(), p);
        // flock locks belong to the open file description, so a second open
        // in this process conflicts exactly as another process would.
        let Attempt::HeldBy(who) = try_lock(&p).unwrap() else {
            panic!("held")
        };
        assert_eq!(who, holder());
        assert!(who.contains(&format!("pid {}", std::process::id())));
        assert_eq!(held_by(&p).unwrap(), Some(holder()));
        drop(lock);
        assert_eq!(held_by(&p).unwrap(), None);
        assert!(matches!(try_lock(&p).unwrap(), Attempt::Acquired(_)));
    }
}
