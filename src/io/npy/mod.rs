//! `.npy` files: reading any range of samples of an array in place (here),
//! the header and its dtypes (`header.rs`: parsing, checking, and the bytes
//! `numpy.save` writes), and writing (`write.rs`: streamed, hashed, atomic).
//!
//! Accepted: little-endian `<f4` and `<f2`, C order, format versions 1–3.
//! Written: version 1.0 headers padded to 64 bytes, exactly as `numpy.save`.
//!
//! Hand-written rather than built on `ndarray-npy` or `npyz`: the format is a
//! short header and raw little-endian bytes, and what seispipe needs is in how
//! those bytes move, which a whole-array or `Read`/`Write`-stream API would
//! hide or get in the way of:
//!
//! * Partial reads: a sample range is one positional read (`pread`) at its
//!   offset, straight into the caller's f32 buffer ([`read_f32_from`]; and
//!   [`read_f32_vec`] does not even zero the vector first), so reading a few
//!   samples of a 700 MB shard never loads the rest, and no file cursor is
//!   shared.
//! * f16: `<f2` is read (widened to f32) and written (rounded to nearest
//!   even, as numpy's `astype`) beside `<f4`.
//! * Streamed, durable writes: [`NpyWriter`] takes one sample at a time,
//!   hashes the bytes (SHA-256) as it writes them (or takes the digest from a
//!   hashing thread), writes them through the [`Sink`](crate::io::sink::Sink)
//!   (`O_DIRECT` where the file system has it, so a shard written once does
//!   not fill the page cache), rewrites the header when fewer samples came
//!   than planned, and is fsynced and renamed into place
//!   ([`crate::io::atomic`]), so a final name never holds a partial file.

mod header;
mod write;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub use header::{descr, header_bytes, itemsize, read_header, DType, NpyHeader};
pub use write::{encode_item, hex, item_bytes, sha256_file, write_array, NpyWriter, WrittenFile};

use crate::error::{Error, Result};

/// Read `out.len()` elements starting at element `first` of the array in
/// `path` (described by `header`), converting to f32.
///
/// # Errors
/// I/O errors, named with the path.
pub fn read_f32(path: &Path, header: &NpyHeader, first: usize, out: &mut [f32]) -> Result<()> {
    let f = File::open(path).map_err(|e| Error::io(path, "open", e))?;
    read_f32_from(&f, path, header, first, out)
}

/// As [`read_f32`], from an already open file.
///
/// # Errors
/// I/O errors, named with the path.
pub fn read_f32_from(
    f: &File,
    path: &Path,
    header: &NpyHeader,
    first: usize,
    out: &mut [f32],
) -> Result<()> {
    let isz = itemsize(header.dtype);
    let offset = header.data_offset + (first * isz) as u64;
    match header.dtype {
        DType::F32 => {
            f.read_exact_at(bytemuck::cast_slice_mut(out), offset)
                .map_err(|e| Error::io(path, "read", e))?;
            if cfg!(target_endian = "big") {
                for v in out.iter_mut() {
                    *v = f32::from_bits(v.to_bits().swap_bytes());
                }
            }
        }
        DType::F16 => {
            let mut buf = vec![0u8; out.len() * 2];
            f.read_exact_at(&mut buf, offset)
                .map_err(|e| Error::io(path, "read", e))?;
            decode_into(&buf, DType::F16, out);
        }
    }
    Ok(())
}

/// The values of `bytes` (little-endian `dtype` elements, as in a file)
/// into `out`, one per element: the inverse of [`encode_item`].
pub fn decode_into(bytes: &[u8], dtype: DType, out: &mut [f32]) {
    match dtype {
        DType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        DType::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
    }
}

/// Read `n` elements starting at element `first` into a new vector, without
/// first zeroing it (a 1.4 MB sample is read tens of thousands of times in a
/// run; the memset was 3 % of a flip + noise run).
///
/// # Errors
/// I/O errors (a short read included), named with the path.
pub fn read_f32_vec(path: &Path, header: &NpyHeader, first: usize, n: usize) -> Result<Vec<f32>> {
    let f = File::open(path).map_err(|e| Error::io(path, "open", e))?;
    let isz = itemsize(header.dtype);
    let offset = header.data_offset + (first * isz) as u64;
    match header.dtype {
        DType::F32 if cfg!(target_endian = "little") => {
            let mut v: Vec<f32> = Vec::with_capacity(n);
            let want = n * 4;
            let mut done = 0usize;
            while done < want {
                use std::os::fd::AsRawFd;
                // SAFETY: the destination is inside `v`'s allocation (capacity
                // n f32 = `want` bytes, `done` < `want`), written only by the
                // kernel; nothing reads it before `set_len` below, which
                // happens only once every byte has been written.
                let r = unsafe {
                    libc::pread(
                        f.as_raw_fd(),
                        v.as_mut_ptr().cast::<u8>().add(done).cast::<libc::c_void>(),
                        want - done,
                        libc::off_t::try_from(offset + done as u64).unwrap_or(libc::off_t::MAX),
                    )
                };
                if r < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() == std::io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(Error::io(path, "read", e));
                }
                if r == 0 {
                    return Err(Error::io(
                        path,
                        "read",
                        std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!(
                                "file ends {done} bytes into a {want}-byte read at byte {offset}"
                            ),
                        ),
                    ));
                }
                {
                    done += r as usize;
                }
            }
            // SAFETY: all n elements were written by the reads above, and
            // every bit pattern is a valid f32.
            unsafe { v.set_len(n) };
            Ok(v)
        }
        _ => {
            let mut v = vec![0f32; n];
            read_f32_from(&f, path, header, first, &mut v)?;
            Ok(v)
        }
    }
}

/// Read a whole `.npy` as f32 with its shape (tests, tools, small files).
///
/// # Errors
/// See [`read_header`] and [`read_f32`].
pub fn read_all(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let h = read_header(path)?;
    let mut v = vec![0f32; h.len()];
    read_f32(path, &h, 0, &mut v)?;
    Ok((h.shape, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The uninitialised-buffer read gives what the plain read gives, for
    /// both dtypes and any range, and a file cut short is an error that names
    /// it (never a vector with unread values in it).
    #[test]
    fn read_f32_vec_equals_read_f32_and_refuses_short_files() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<f32> = (0..3 * 4 * 5).map(|i| i as f32 * 0.25 - 7.0).collect();
        for dtype in [DType::F32, DType::F16] {
            let path = dir
                .path()
                .join(format!("a{}.npy", descr(dtype).replace('<', "")));
            write_array(&path, dtype, &[3, 4, 5], &data).unwrap();
            let h = read_header(&path).unwrap();
            for (first, n) in [(0usize, 60usize), (20, 20), (40, 20), (7, 1)] {
                let mut want = vec![0f32; n];
                read_f32(&path, &h, first, &mut want).unwrap();
                let got = read_f32_vec(&path, &h, first, n).unwrap();
                assert_eq!(got, want, "{dtype:?} {first}+{n}");
            }
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
            let e = read_f32_vec(&path, &h, 40, 20).unwrap_err().to_string();
            assert!(e.contains(&path.display().to_string()), "{e}");
        }
    }
}
