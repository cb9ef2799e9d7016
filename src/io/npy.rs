//! `.npy` reading (headers, and any sample range read in place with `pread`,
//! so a few samples of a 700 MB shard never load the rest) and atomic writing
//! (temporary name, flush, fsync, rename: a final name never holds a partial file).
//!
//! Accepted: little-endian `<f4` and `<f2`, C order, format versions 1–3.
//! Written: version 1.0 headers padded to 64 bytes, exactly as `numpy.save`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::io::sink::Sink;

/// Output element type.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    /// `<f4`
    #[default]
    F32,
    /// `<f2` (IEEE half; values beyond ±65504 become ±inf, so they are refused)
    F16,
}

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// Element type.
    pub dtype: DType,
    /// Array shape.
    pub shape: Vec<usize>,
    /// Byte offset of the first element.
    pub data_offset: u64,
}

impl NpyHeader {
    /// Number of elements.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Whether the array has no elements.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Total file size this header implies.
    #[must_use]
    pub fn file_bytes(&self) -> u64 {
        self.data_offset + (self.len() * itemsize(self.dtype)) as u64
    }
}

/// Bytes per element.
#[must_use]
pub fn itemsize(d: DType) -> usize {
    match d {
        DType::F32 => 4,
        DType::F16 => 2,
    }
}

/// The numpy `descr` string of a dtype.
#[must_use]
pub fn descr(d: DType) -> &'static str {
    match d {
        DType::F32 => "<f4",
        DType::F16 => "<f2",
    }
}

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Npy {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Read and check the header of `path`, including that the file size matches.
///
/// # Errors
/// Unreadable file, not a `.npy`, unsupported dtype (f64, integers, big-endian),
/// Fortran order, malformed header, or a file shorter/longer than the header says.
pub fn read_header(path: &Path) -> Result<NpyHeader> {
    let mut f = File::open(path).map_err(|e| Error::io(path, "open", e))?;
    let size = f.metadata().map_err(|e| Error::io(path, "stat", e))?.len();
    let mut pre = [0u8; 12];
    let got = read_up_to(&mut f, &mut pre).map_err(|e| Error::io(path, "read header", e))?;
    if got < 10 || &pre[..6] != MAGIC {
        return Err(bad(path, "not a .npy file (missing the \\x93NUMPY magic)"));
    }
    let (major, minor) = (pre[6], pre[7]);
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([pre[8], pre[9]]) as usize, 10u64),
        2 | 3 if got >= 12 => (
            u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as usize,
            12u64,
        ),
        _ => {
            return Err(bad(
                path,
                format!("unsupported .npy format version {major}.{minor}"),
            ))
        }
    };
    if start + hlen as u64 > size {
        return Err(bad(
            path,
            format!("truncated header: it claims {hlen} bytes but the file has {size} bytes"),
        ));
    }
    let mut h = vec![0u8; hlen];
    f.seek(SeekFrom::Start(start))
        .and_then(|_| f.read_exact(&mut h))
        .map_err(|e| Error::io(path, "read header", e))?;
    let text = String::from_utf8_lossy(&h);
    let header = parse_header_dict(&text, start + hlen as u64).map_err(|r| bad(path, r))?;
    let expect = header.file_bytes();
    if size < expect {
        return Err(bad(
            path,
            format!(
                "truncated: shape {:?} {} needs {expect} bytes but the file has {size}",
                header.shape,
                descr(header.dtype)
            ),
        ));
    }
    if size > expect {
        return Err(bad(
            path,
            format!(
                "{} unexpected trailing bytes after the {:?} array (file {size} bytes, expected {expect})",
                size - expect,
                header.shape
            ),
        ));
    }
    Ok(header)
}

fn read_up_to(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Parse the Python-literal header dict.
fn parse_header_dict(text: &str, data_offset: u64) -> std::result::Result<NpyHeader, String> {
    let t = text.trim();
    if !t.starts_with('{') || !t.ends_with('}') {
        return Err(format!(
            "corrupt header: expected a {{...}} dict, found {t:?}"
        ));
    }
    let descr = dict_value(t, "descr").ok_or("corrupt header: no 'descr' key")?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    let dtype = match descr {
        "<f4" => DType::F32,
        "<f2" => DType::F16,
        ">f4" | ">f2" | ">f8" => {
            return Err(format!(
                "big-endian dtype {descr} is not supported; convert with arr.astype('<f4')"
            ))
        }
        "<f8" | "f8" => {
            return Err(
                "dtype float64 (<f8) is not supported: expected float32 (<f4) or float16 (<f2); convert with arr.astype(np.float32)"
                    .into(),
            )
        }
        other => {
            return Err(format!(
                "unsupported dtype {other}: expected float32 (<f4) or float16 (<f2)"
            ))
        }
    };
    let fortran = dict_value(t, "fortran_order").ok_or("corrupt header: no 'fortran_order' key")?;
    match fortran.trim() {
        "False" => {}
        "True" => {
            return Err(
                "Fortran-order arrays are not supported: save with np.ascontiguousarray(arr)"
                    .into(),
            )
        }
        other => return Err(format!("corrupt header: fortran_order = {other}")),
    }
    let shape_txt = dict_value(t, "shape").ok_or("corrupt header: no 'shape' key")?;
    let inner = shape_txt
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("corrupt header: shape {shape_txt:?} is not a tuple"))?;
    let mut shape = Vec::new();
    for part in inner.split(',') {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        shape.push(
            p.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("corrupt header: shape entry {p:?} is not a number"))?,
        );
    }
    Ok(NpyHeader {
        dtype,
        shape,
        data_offset,
    })
}

/// The raw text of the value of `key` in a header dict.
fn dict_value<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    let pat1 = format!("'{key}'");
    let pat2 = format!("\"{key}\"");
    let at = dict.find(&pat1).or_else(|| dict.find(&pat2))? + pat1.len();
    let rest = dict[at..].trim_start().strip_prefix(':')?;
    let rest = rest.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else if rest.starts_with('\'') || rest.starts_with('"') {
        let q = &rest[..1];
        rest[1..].find(q)? + 2
    } else {
        rest.find([',', '}'])?
    };
    Some(&rest[..end])
}

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
            // SAFETY-free: read bytes into the f32 buffer viewed as bytes.
            let bytes = f32_as_bytes_mut(out);
            f.read_exact_at(bytes, offset)
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
            for (o, c) in out.iter_mut().zip(buf.chunks_exact(2)) {
                *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
    }
    Ok(())
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
                                "file ends {} bytes into a {want}-byte read at byte {offset}",
                                done
                            ),
                        ),
                    ));
                }
                #[allow(clippy::cast_sign_loss)]
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

fn f32_as_bytes_mut(v: &mut [f32]) -> &mut [u8] {
    let len = std::mem::size_of_val(v);
    // SAFETY: f32 has no invalid bit patterns and u8 has alignment 1; the
    // byte view covers exactly the same memory and lives as long as `v`.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), len) }
}

fn f32_as_bytes(v: &[f32]) -> &[u8] {
    // SAFETY: as above, read-only.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
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

/// The header bytes `numpy.save` writes for this dtype and shape.
#[must_use]
pub fn header_bytes(dtype: DType, shape: &[usize]) -> Vec<u8> {
    let shape_txt = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        descr(dtype),
        shape_txt
    );
    let unpadded = MAGIC.len() + 2 + 2 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    let hlen = u16::try_from(total - 10).expect("npy header fits in u16");
    out.extend_from_slice(&hlen.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

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
    final_path: PathBuf,
    tmp_path: PathBuf,
    rel: String,
    file: Option<Sink>,
    /// Set once the file has its final name (then `Drop` leaves it alone).
    renamed: bool,
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
    /// Start `final_path` (`rel` is its name in the manifest) with room for
    /// `planned[0]` items of shape `planned[1..]`. Fewer may be written: the
    /// header is rewritten on `finish`.
    ///
    /// # Errors
    /// The temporary file cannot be created.
    pub fn create(final_path: &Path, rel: &str, dtype: DType, planned: &[usize]) -> Result<Self> {
        Self::open(final_path, rel, dtype, planned, true)
    }

    /// As [`NpyWriter::create`], for a caller that hashes the same bytes on
    /// another thread ([`header_bytes`] of `planned`, then every item as
    /// written) and hands the digest to [`NpyWriter::finish_with`].
    ///
    /// # Errors
    /// The temporary file cannot be created.
    pub fn create_unhashed(
        final_path: &Path,
        rel: &str,
        dtype: DType,
        planned: &[usize],
    ) -> Result<Self> {
        Self::open(final_path, rel, dtype, planned, false)
    }

    fn open(
        final_path: &Path,
        rel: &str,
        dtype: DType,
        planned: &[usize],
        hash: bool,
    ) -> Result<Self> {
        let name = final_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp_path = final_path.with_file_name(format!(".{name}.partial"));
        let header = header_bytes(dtype, planned);
        let expected =
            header.len() as u64 + (planned.iter().product::<usize>() * itemsize(dtype)) as u64;
        let file =
            Sink::create(&tmp_path, expected).map_err(|e| Error::io(&tmp_path, "create", e))?;
        let mut w = NpyWriter {
            final_path: final_path.to_path_buf(),
            tmp_path,
            rel: rel.to_string(),
            file: Some(file),
            renamed: false,
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
            .map_err(|e| Error::io(&self.tmp_path, "write", e))?;
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
        self.after_item()
    }

    fn check_item(&self, values: usize, rest: usize) -> Result<()> {
        if values != self.per_item || rest != 0 {
            return Err(Error::Npy {
                path: self.final_path.clone(),
                reason: format!(
                    "item of {values} values written where {:?} needs {}",
                    &self.planned[1..],
                    self.per_item
                ),
            });
        }
        if self.written_items == self.planned[0] {
            return Err(Error::Npy {
                path: self.final_path.clone(),
                reason: format!("more than the planned {} items written", self.planned[0]),
            });
        }
        Ok(())
    }

    fn after_item(&mut self) -> Result<()> {
        self.written_items += 1;
        Ok(())
    }

    /// Append one item (`planned[1..]` elements).
    ///
    /// # Errors
    /// Wrong element count, a value that does not fit the dtype, or a write error.
    pub fn write_item(&mut self, data: &[f32]) -> Result<()> {
        self.check_item(data.len(), 0)?;
        if self.dtype == DType::F32 && cfg!(target_endian = "little") {
            self.put(f32_as_bytes(data))?;
        } else {
            let mut s = std::mem::take(&mut self.scratch);
            encode_item(data, self.dtype, &mut s);
            let r = self.put(&s);
            self.scratch = s;
            r?;
        }
        self.after_item()
    }

    /// Items written so far.
    #[must_use]
    pub fn items(&self) -> usize {
        self.written_items
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
            .map_err(|e| Error::io(&self.tmp_path, "write", e))?;
        let mut shape = self.planned.clone();
        let complete = self.written_items == self.planned[0];
        let sha = if let (true, Some(h)) = (complete, self.hasher.take()) {
            hex(&h.finalize())
        } else if let (true, Some(d)) = (complete, digest) {
            d
        } else if complete {
            return Err(Error::Npy {
                path: self.final_path.clone(),
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
                .map_err(|e| Error::io(&self.tmp_path, "write", e))?;
            let data_bytes = (self.written_items * self.per_item * itemsize(self.dtype)) as u64;
            file.set_len(new.len() as u64 + data_bytes)
                .map_err(|e| Error::io(&self.tmp_path, "truncate", e))?;
            self.bytes = new.len() as u64 + data_bytes;
            sha256_file(&self.tmp_path)?
        };
        file.sync_all()
            .map_err(|e| Error::io(&self.tmp_path, "fsync", e))?;
        drop(file);
        std::fs::rename(&self.tmp_path, &self.final_path)
            .map_err(|e| Error::io(&self.final_path, "rename into place", e))?;
        self.renamed = true;
        if let Some(dir) = self.final_path.parent() {
            sync_dir(dir)?;
        }
        Ok(WrittenFile {
            path: self.rel.clone(),
            shape,
            dtype: descr(self.dtype).to_string(),
            bytes: self.bytes,
            sha256: sha,
        })
    }
}

impl Drop for NpyWriter {
    /// An unfinished writer, or one whose `finish` failed before the rename,
    /// removes its temporary file.
    fn drop(&mut self) {
        if !self.renamed {
            self.file = None;
            let _ = std::fs::remove_file(&self.tmp_path);
        }
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
        f32_as_bytes(data)
    } else {
        encode_item(data, dtype, scratch);
        scratch
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

    #[test]
    fn header_matches_numpy_layout() {
        let h = header_bytes(DType::F32, &[500, 5, 1000, 70]);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(h.len(), 128);
        let text = std::str::from_utf8(&h[10..]).unwrap();
        assert!(text.starts_with(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (500, 5, 1000, 70), }"
        ));
        assert!(text.ends_with('\n'));
        let one = header_bytes(DType::F16, &[7]);
        assert!(std::str::from_utf8(&one[10..]).unwrap().contains("(7,)"));
    }

    #[test]
    fn parses_dicts_in_any_key_order() {
        let h = parse_header_dict(
            "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f2'}",
            64,
        )
        .unwrap();
        assert_eq!(h.shape, vec![2, 3]);
        assert_eq!(h.dtype, DType::F16);
        let s = parse_header_dict(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
            64,
        )
        .unwrap();
        assert!(s.shape.is_empty());
    }
}
