//! Atomic, durable file replacement: a file is written under the hidden
//! temporary name `.NAME.partial` beside its final name, fsynced, renamed into
//! place, and its directory fsynced, so a final name never holds a partial
//! file, even after a crash or power loss. [`Partial`] is that protocol for
//! writers that stream (it removes the temporary file when dropped before
//! [`Partial::commit`]); [`write_atomic`] is it for bytes already in memory.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The temporary name a file is written under before it is renamed to
/// `final_path`: `.NAME.partial` in the same directory (hidden, so input
/// discovery skips it; same file system, so the rename is atomic).
#[must_use]
pub fn temp_path_for(final_path: &Path) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!(".{name}.partial"))
}

/// A file being written under [`temp_path_for`] its final name. Dropping it
/// before [`Partial::commit`] removes the temporary file.
#[derive(Debug)]
pub struct Partial {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl Partial {
    /// Plan a file at `dest` (nothing is created yet: write to [`Partial::tmp`]).
    #[must_use]
    pub fn new(dest: &Path) -> Partial {
        Partial {
            tmp: temp_path_for(dest),
            dest: dest.to_path_buf(),
            committed: false,
        }
    }

    /// Where to write.
    #[must_use]
    pub fn tmp(&self) -> &Path {
        &self.tmp
    }

    /// The final name.
    #[must_use]
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// fsync `file` (the finished temporary file), close it, rename it to
    /// its final name and fsync the directory.
    ///
    /// # Errors
    /// Any I/O failure, named with the path (the temporary file is then
    /// removed, unless the rename already happened).
    pub fn commit(mut self, file: File) -> Result<()> {
        file.sync_all()
            .map_err(|e| Error::io(&self.tmp, "fsync", e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest)
            .map_err(|e| Error::io(&self.dest, "rename into place", e))?;
        self.committed = true;
        sync_parent(&self.dest)
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Write `bytes` to `path` atomically (temporary name, fsync, rename, fsync
/// directory).
///
/// # Errors
/// I/O failures, named with the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let p = Partial::new(path);
    let mut f = File::create(p.tmp()).map_err(|e| Error::io(p.tmp(), "create", e))?;
    f.write_all(bytes)
        .map_err(|e| Error::io(p.tmp(), "write", e))?;
    p.commit(f)
}

/// Create `path` with `bytes` unless it exists, atomically: other processes
/// see no file or the whole file, and of several processes creating it at
/// once exactly one succeeds. Returns whether this call created it.
///
/// # Errors
/// I/O failures, named with the path.
pub fn write_new(path: &Path, bytes: &[u8]) -> Result<bool> {
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.{}.new", std::process::id()));
    let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, "create", e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(&tmp, "write", e))?;
    drop(f);
    // link(2) fails if the name exists: the create-if-absent that rename lacks.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_parent(path)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io(path, "create", e)),
    }
}

/// fsync a directory so a rename inside it survives power loss.
///
/// # Errors
/// The directory cannot be opened or synced.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| Error::io(dir, "open directory", e))?;
    d.sync_all()
        .map_err(|e| Error::io(dir, "fsync directory", e))
}

/// fsync the directory holding `path` (the current directory for a bare
/// file name, whose `parent` is the empty path).
///
/// # Errors
/// The directory cannot be opened or synced.
pub fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(d) if d.as_os_str().is_empty() => sync_dir(Path::new(".")),
        Some(d) => sync_dir(d),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn write_new_creates_once_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run.json");
        assert!(super::write_new(&p, b"first").unwrap());
        assert!(!super::write_new(&p, b"second").unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"first");
        // No temporary file is left behind either way.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    use super::*;

    #[test]
    fn temporary_name_is_hidden_and_beside_the_final_name() {
        assert_eq!(
            temp_path_for(Path::new("out/data/data1.npy")),
            PathBuf::from("out/data/.data1.npy.partial")
        );
        assert_eq!(
            temp_path_for(Path::new("manifest.json")),
            PathBuf::from(".manifest.json.partial")
        );
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.json"]);
    }

    #[test]
    fn a_dropped_partial_removes_its_temporary_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.npy");
        std::fs::write(&p, b"old").unwrap();
        let part = Partial::new(&p);
        std::fs::write(part.tmp(), b"half").unwrap();
        assert!(part.tmp().exists());
        let tmp = part.tmp().to_path_buf();
        drop(part);
        assert!(!tmp.exists());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
    }

    #[test]
    fn a_failed_write_names_the_file_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-dir").join("c.json");
        let e = write_atomic(&p, b"x").unwrap_err().to_string();
        assert!(e.contains(".c.json.partial") && e.contains("create"), "{e}");
    }
}
