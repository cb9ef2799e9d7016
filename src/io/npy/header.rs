//! The `.npy` header: the element types seispipe reads and writes
//! ([`DType`]), reading and checking a file's header ([`read_header`]: magic,
//! version, the Python-literal dict, and that the file size matches), and the
//! exact header bytes `numpy.save` writes ([`header_bytes`]).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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

#[cfg(test)]
mod tests {
    use super::*;

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
