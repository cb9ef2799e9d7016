//! `.npy` writing: [`NpyWriter`] streams one file item by item through the
//! direct-I/O [`Sink`] under a temporary name, hashing the bytes (SHA-256) as
//! they go, and on `finish` fixes the header when fewer items came than
//! planned, fsyncs and renames it into place ([`Partial`]); [`write_array`]
//! writes a whole array at once; [`WrittenFile`] is what the manifest records
//! of each file.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::header::{descr, header_bytes, itemsize, DType};
use crate::error::{Error, Result};
use crate::io::atomic::Partial;
use crate::io::sink::Sink;

/// What a finished file is: its name, size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrittenFile {
    /// Path relative to the output directory, `/`-separated.
    pub path: String,
    /// Array shape.
    pub shape: Vec<usize>,
    /// numpy descr (`<f4`, `<f2`).
    pub dtype: String,
    /// File size.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the whole file.
    pub sha256: String,
}

/// Writes one `.npy` file sample by sample under a temporary name; `finish`
/// makes it durable and renames it. Dropping an unfinished writer deletes the
/// temporary file.
pub struct NpyWriter {
    /// Declared before `partial`, so an unfinished writer closes its file
    /// before the temporary file is removed.
    file: Option<Sink>,
    /// The temporary name, and the final one `finish` renames it to.
    partial: Partial,
    rel: String,
    /// `None` when the caller hashes the bytes itself ([`NpyWriter::create_unhashed`]).
    hasher: Option<Sha256>,
    dtype: DType,
    planned: Vec<usize>,
    per_item: usize,
    written_items: usize,
    bytes: u64,
    scratch: Vec<u8>,
}

impl NpyWriter {
    /// Whether the bytes go to the device directly (`O_DIRECT`) so far.
    #[must_use]
    pub fn is_direct(&self) -> bool {
        self.file.as_ref().is_some_and(Sink::is_direct)
    }

    /// Start `final_path` (`rel` is its name in the manifest) with room for
    /// `planned[0]` items of shape `planned[1..]`. Fewer may be written: the
    /// header is rewritten on `finish`.
    ///
    /// # Errors
    /// The temporary file cannot be created.
    /// Written through direct I/O where the filesystem takes it.
    pub fn create(final_path: &Path, rel: &str, dtype: DType, planned: &[usize]) -> Result<Self> {
        Self::open(final_path, rel, dtype, planned, true, true)
    }

    /// As [`NpyWriter::create`], for a caller that hashes the same bytes on
    /// another thread ([`header_bytes`] of `planned`, then every item as
    /// written) and hands the digest to [`NpyWriter::finish_with`]; through
    /// direct I/O only when `direct`.
    ///
    /// # Errors
    /// The temporary file cannot be created.
    pub fn create_unhashed(
        final_path: &Path,
        rel: &str,
        dtype: DType,
        planned: &[usize],
        direct: bool,
    ) -> Result<Self> {
        Self::open(final_path, rel, dtype, planned, false, direct)
    }

    fn open(
        final_path: &Path,
        rel: &str,
        dtype: DType,
        planned: &[usize],
        hash: bool,
        direct: bool,
    ) -> Result<Self> {
        let partial = Partial::new(final_path);
        let header = header_bytes(dtype, planned);
        let expected =
            header.len() as u64 + (planned.iter().product::<usize>() * itemsize(dtype)) as u64;
        let file = Sink::create_with(partial.tmp(), expected, direct)
            .map_err(|e| Error::io(partial.tmp(), "create", e))?;
        let mut w = NpyWriter {
            file: Some(file),
            partial,
            rel: rel.to_string(),
            hasher: hash.then(Sha256::new),
            dtype,
            planned: planned.to_vec(),
            per_item: planned[1..].iter().product(),
            written_items: 0,
            bytes: 0,
            scratch: Vec::new(),
        };
        w.put(&header)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let f = self.file.as_mut().expect("writer is open");
        f.write_all(bytes)
            .map_err(|e| Error::io(self.partial.tmp(), "write", e))?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(bytes);
        }
        self.bytes += bytes.len() as u64;
        Ok(())
    }

    /// Append one item already encoded in the file's dtype (little-endian
    /// bytes, `planned[1..]` elements), e.g. by [`encode_item`].
    ///
    /// # Errors
    /// Wrong byte count, too many items, or a write error.
    pub fn write_encoded_item(&mut self, bytes: &[u8]) -> Result<()> {
        self.check_item(
            bytes.len() / itemsize(self.dtype),
            bytes.len() % itemsize(self.dtype),
        )?;
        self.put(bytes)?;
        self.written_items += 1;
        Ok(())
    }

    fn check_item(&self, values: usize, rest: usize) -> Result<()> {
        if values != self.per_item || rest != 0 {
            return Err(Error::Npy {
                path: self.partial.dest().to_path_buf(),
                reason: format!(
                    "item of {values} values written where {:?} needs {}",
                    &self.planned[1..],
                    self.per_item
                ),
            });
        }
        if self.written_items == self.planned[0] {
            return Err(Error::Npy {
                path: self.partial.dest().to_path_buf(),
                reason: format!("more than the planned {} items written", self.planned[0]),
            });
        }
        Ok(())
    }

    /// Append one item (`planned[1..]` elements).
    ///
    /// # Errors
    /// Wrong element count, a value that does not fit the dtype, or a write error.
    pub fn write_item(&mut self, data: &[f32]) -> Result<()> {
        self.check_item(data.len(), 0)?;
        if self.dtype == DType::F32 && cfg!(target_endian = "little") {
            self.put(bytemuck::cast_slice(data))?;
        } else {
            let mut s = std::mem::take(&mut self.scratch);
            encode_item(data, self.dtype, &mut s);
            let r = self.put(&s);
            self.scratch = s;
            r?;
        }
        self.written_items += 1;
        Ok(())
    }

    /// Flush, fsync, fix the header if fewer items were written than planned,
    /// rename to the final name and fsync the directory.
    ///
    /// # Errors
    /// Any I/O failure (the temporary file is removed).
    pub fn finish(self) -> Result<WrittenFile> {
        self.finish_with(None)
    }

    /// As [`NpyWriter::finish`]; `digest` is the SHA-256 (lower-case hex)
    /// of the file as planned, from a writer made by
    /// [`NpyWriter::create_unhashed`]. When items were dropped, the header
    /// changes and the file is hashed again here.
    ///
    /// # Errors
    /// Any I/O failure (the temporary file is removed), or an unhashed
    /// writer finished without a digest.
    pub fn finish_with(mut self, digest: Option<String>) -> Result<WrittenFile> {
        let sink = self.file.take().expect("writer is open");
        let file = sink
            .finish()
            .map_err(|e| Error::io(self.partial.tmp(), "write", e))?;
        let mut shape = self.planned.clone();
        let complete = self.written_items == self.planned[0];
        let sha = if let (true, Some(h)) = (complete, self.hasher.take()) {
            hex(&h.finalize())
        } else if let (true, Some(d)) = (complete, digest) {
            d
        } else if complete {
            return Err(Error::Npy {
                path: self.partial.dest().to_path_buf(),
                reason: "internal: an unhashed writer was finished without its digest".into(),
            });
        } else {
            // Some items were dropped: rewrite the header in place (a smaller
            // count never needs more header bytes) and hash the file again.
            shape[0] = self.written_items;
            let old = header_bytes(self.dtype, &self.planned);
            let mut new = header_bytes(self.dtype, &shape);
            if new.len() < old.len() {
                let pad_to = old.len();
                new.pop();
                new.resize(pad_to - 1, b' ');
                new.push(b'\n');
                let hlen = u16::try_from(pad_to - 10).expect("npy header fits in u16");
                new[8..10].copy_from_slice(&hlen.to_le_bytes());
            }
            file.write_all_at(&new, 0)
                .map_err(|e| Error::io(self.partial.tmp(), "write", e))?;
            let data_bytes = (self.written_items * self.per_item * itemsize(self.dtype)) as u64;
            file.set_len(new.len() as u64 + data_bytes)
                .map_err(|e| Error::io(self.partial.tmp(), "truncate", e))?;
            self.bytes = new.len() as u64 + data_bytes;
            sha256_file(self.partial.tmp())?
        };
        self.partial.commit(file)?;
        Ok(WrittenFile {
            path: self.rel,
            shape,
            dtype: descr(self.dtype).to_string(),
            bytes: self.bytes,
            sha256: sha,
        })
    }
}

/// Encode f32 values as the little-endian bytes of `dtype` into `out`
/// (cleared first). f16 rounds to nearest even, as numpy's `astype`.
pub fn encode_item(data: &[f32], dtype: DType, out: &mut Vec<u8>) {
    out.clear();
    match dtype {
        DType::F32 => {
            out.reserve(data.len() * 4);
            for v in data {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        DType::F16 => {
            out.reserve(data.len() * 2);
            for v in data {
                out.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes());
            }
        }
    }
}

/// The bytes [`NpyWriter::write_item`] writes for `data`, borrowed when
/// they are the values' own memory (f32 on a little-endian machine).
#[must_use]
pub fn item_bytes<'a>(data: &'a [f32], dtype: DType, scratch: &'a mut Vec<u8>) -> &'a [u8] {
    if dtype == DType::F32 && cfg!(target_endian = "little") {
        bytemuck::cast_slice(data)
    } else {
        encode_item(data, dtype, scratch);
        scratch
    }
}

/// Lower-case hex of bytes.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// SHA-256 of a whole file, streamed.
///
/// # Errors
/// The file cannot be read.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| Error::io(path, "open", e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, "read", e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Write a whole array atomically (temporary name, fsync, rename).
///
/// # Errors
/// I/O failures, named with the path.
pub fn write_array(
    path: &Path,
    dtype: DType,
    shape: &[usize],
    data: &[f32],
) -> Result<WrittenFile> {
    let rel = path.display().to_string();
    let mut planned = shape.to_vec();
    let per: usize = shape.iter().skip(1).product();
    if shape.is_empty() || per == 0 {
        planned = vec![1, data.len()];
    }
    let mut w = NpyWriter::create(path, &rel, dtype, &planned)?;
    let per_item = planned[1..].iter().product::<usize>().max(1);
    for chunk in data.chunks(per_item) {
        w.write_item(chunk)?;
    }
    let mut out = w.finish()?;
    out.shape = shape.to_vec();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::{read_all, read_header};
    use super::*;

    /// Fewer items than planned: the header is rewritten for the count
    /// written, the file is cut to it, and the hash is the file's.
    #[test]
    fn a_short_file_gets_its_header_fixed_and_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.npy");
        for dtype in [DType::F32, DType::F16] {
            let mut w = NpyWriter::create(&path, "short.npy", dtype, &[10, 2, 3]).unwrap();
            for k in 0..4 {
                w.write_item(&[k as f32; 6]).unwrap();
            }
            let f = w.finish().unwrap();
            assert_eq!(f.shape, [4, 2, 3]);
            assert_eq!(f.dtype, descr(dtype));
            assert_eq!(f.bytes, std::fs::metadata(&path).unwrap().len());
            assert_eq!(f.sha256, sha256_file(&path).unwrap());
            let h = read_header(&path).unwrap();
            assert_eq!(h.data_offset, 128);
            let (shape, v) = read_all(&path).unwrap();
            assert_eq!(shape, [4, 2, 3]);
            assert_eq!(v[6..12], [1.0; 6]);
        }
    }

    /// The streamed hash is the hash of the file; f32 items are written as
    /// their own bytes.
    #[test]
    fn streamed_hash_matches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let data: Vec<f32> = (0..24).map(|i| i as f32 / 3.0).collect();
        let f = write_array(&path, DType::F16, &[4, 6], &data).unwrap();
        assert_eq!(f.sha256, sha256_file(&path).unwrap());
        let mut s = Vec::new();
        assert_eq!(
            item_bytes(&data, DType::F32, &mut s),
            bytemuck::cast_slice::<f32, u8>(&data)
        );
    }

    /// A writer dropped before `finish`, or refused an item, leaves no
    /// temporary file and no final file.
    #[test]
    fn an_unfinished_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.npy");
        let mut w = NpyWriter::create(&path, "b.npy", DType::F32, &[2, 3]).unwrap();
        w.write_item(&[1.0; 3]).unwrap();
        let e = w.write_item(&[1.0; 2]).unwrap_err().to_string();
        assert!(e.contains("item of 2 values") && e.contains("b.npy"), "{e}");
        assert!(dir.path().join(".b.npy.partial").exists());
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
