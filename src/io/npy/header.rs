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

/// Parse the header dict, a Python literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (500, 5, 1000, 70), }`:
/// exactly the keys `descr` (a string), `fortran_order` (`True`/`False`) and
/// `shape` (a tuple of integers: `()`, `(5,)`, `(2, 3)`, a trailing comma
/// allowed), in any order, quoted with `'` or `"`, with any whitespace and an
/// optional trailing comma. Anything else is refused with what was expected.
fn parse_header_dict(text: &str, data_offset: u64) -> std::result::Result<NpyHeader, String> {
    let t = text.trim();
    if !t.starts_with('{') || !t.ends_with('}') {
        return Err(format!(
            "corrupt header: expected a {{...}} dict, found {t:?}"
        ));
    }
    let mut c = Cursor { text: t, at: 1 };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        c.ws();
        if c.eat('}') {
            break;
        }
        let key = c.string().ok_or_else(|| {
            format!(
                "corrupt header: expected a quoted key ('descr', 'fortran_order' or 'shape') or '}}', found {}",
                c.found()
            )
        })??;
        c.ws();
        if !c.eat(':') {
            return Err(format!(
                "corrupt header: expected ':' after the key '{key}', found {}",
                c.found()
            ));
        }
        c.ws();
        let fresh = match key {
            "descr" => descr
                .replace(c.string().ok_or_else(|| {
                    format!(
                        "corrupt header: expected a quoted dtype string for 'descr', found {}",
                        c.found()
                    )
                })??)
                .is_none(),
            "fortran_order" => fortran.replace(c.boolean()?).is_none(),
            "shape" => shape.replace(c.tuple()?).is_none(),
            other => {
                return Err(format!(
                    "corrupt header: unexpected key '{other}' (expected exactly 'descr', 'fortran_order' and 'shape')"
                ))
            }
        };
        if !fresh {
            return Err(format!("corrupt header: the key '{key}' appears twice"));
        }
        c.ws();
        if c.eat('}') {
            break;
        }
        if !c.eat(',') {
            return Err(format!(
                "corrupt header: expected ',' or '}}' after the value of '{key}', found {}",
                c.found()
            ));
        }
    }
    c.ws();
    if c.at < t.len() {
        return Err(format!(
            "corrupt header: unexpected text after the dict: {}",
            c.found()
        ));
    }
    let descr = descr.ok_or("corrupt header: no 'descr' key")?;
    let fortran = fortran.ok_or("corrupt header: no 'fortran_order' key")?;
    let shape = shape.ok_or("corrupt header: no 'shape' key")?;
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
    if fortran {
        return Err(
            "Fortran-order arrays are not supported: save with np.ascontiguousarray(arr)".into(),
        );
    }
    Ok(NpyHeader {
        dtype,
        shape,
        data_offset,
    })
}

/// A position in the header dict's text.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn ws(&mut self) {
        let r = self.rest();
        self.at += r.len() - r.trim_start().len();
    }

    fn eat(&mut self, ch: char) -> bool {
        let hit = self.rest().starts_with(ch);
        if hit {
            self.at += ch.len_utf8();
        }
        hit
    }

    /// What the text holds here, for an error message.
    fn found(&self) -> String {
        let r = self.rest();
        if r.is_empty() {
            return "the end of the header".into();
        }
        let snip: String = r.chars().take(24).collect();
        if snip.len() < r.len() {
            format!("{snip:?}…")
        } else {
            format!("{snip:?}")
        }
    }

    /// A string quoted with `'` or `"`; `None` when none starts here.
    fn string(&mut self) -> Option<std::result::Result<&'a str, String>> {
        let r = self.rest();
        let q = r.chars().next().filter(|&q| q == '\'' || q == '"')?;
        Some(match r[1..].find(q) {
            Some(end) => {
                self.at += end + 2;
                Ok(&r[1..=end])
            }
            None => Err(format!(
                "corrupt header: unterminated string {}",
                self.found()
            )),
        })
    }

    /// `True` or `False`.
    fn boolean(&mut self) -> std::result::Result<bool, String> {
        for (word, v) in [("True", true), ("False", false)] {
            let r = self.rest();
            let whole_word = |after: &str| {
                after
                    .chars()
                    .next()
                    .is_none_or(|ch| !(ch.is_alphanumeric() || ch == '_'))
            };
            if r.strip_prefix(word).is_some_and(whole_word) {
                self.at += word.len();
                return Ok(v);
            }
        }
        Err(format!(
            "corrupt header: expected True or False for 'fortran_order', found {}",
            self.found()
        ))
    }

    /// A tuple of non-negative integers: `()`, `(5,)`, `(2, 3)`, `(2, 3,)`
    /// (Python 2's `5L` longs too). `(5)` is the integer 5, not a tuple.
    fn tuple(&mut self) -> std::result::Result<Vec<usize>, String> {
        let start = self.at;
        let expected =
            "expected a tuple of integers for 'shape' such as (5,) or (500, 5, 1000, 70)";
        if !self.eat('(') {
            return Err(format!(
                "corrupt header: {expected}, found {}",
                self.found()
            ));
        }
        let mut dims = Vec::new();
        let mut comma = false;
        loop {
            self.ws();
            if self.eat(')') {
                break;
            }
            let r = self.rest();
            let len = r
                .find(|ch: char| matches!(ch, ',' | '(' | ')' | '}') || ch.is_whitespace())
                .unwrap_or(r.len());
            let entry = &r[..len];
            let digits = entry.strip_suffix(['L', 'l']).unwrap_or(entry);
            let dim = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                digits.parse::<usize>().ok()
            } else {
                None
            };
            let Some(dim) = dim else {
                return Err(if entry.is_empty() {
                    format!("corrupt header: {expected}, found {}", self.found())
                } else {
                    format!("corrupt header: shape entry {entry:?} is not a number ({expected})")
                });
            };
            dims.push(dim);
            self.at += len;
            self.ws();
            comma = self.eat(',');
            if !comma && !self.rest().starts_with(')') {
                return Err(format!(
                    "corrupt header: {expected}, found {} inside the shape",
                    self.found()
                ));
            }
        }
        if dims.len() == 1 && !comma {
            return Err(format!(
                "corrupt header: shape {} is not a tuple ({expected})",
                &self.text[start..self.at]
            ));
        }
        Ok(dims)
    }
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

    fn parse(dict: &str) -> std::result::Result<NpyHeader, String> {
        parse_header_dict(dict, 64)
    }

    fn refused(dict: &str) -> String {
        match parse(dict) {
            Ok(h) => panic!("{dict} was accepted as {h:?}"),
            Err(e) => e,
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

    /// What [`header_bytes`] writes parses back to the same dtype and shape.
    #[test]
    fn written_headers_parse_back() {
        for shape in [vec![], vec![7], vec![2, 3], vec![500, 5, 1000, 70]] {
            for dtype in [DType::F32, DType::F16] {
                let b = header_bytes(dtype, &shape);
                let h = parse_header_dict(std::str::from_utf8(&b[10..]).unwrap(), 64).unwrap();
                assert_eq!((h.dtype, h.shape), (dtype, shape.clone()));
            }
        }
    }

    #[test]
    fn parses_dicts_in_any_key_order() {
        let h = parse("{'shape': (2, 3), 'fortran_order': False, 'descr': '<f2'}").unwrap();
        assert_eq!(h.shape, vec![2, 3]);
        assert_eq!(h.dtype, DType::F16);
        assert_eq!(h.data_offset, 64);
        let s = parse("{'descr': '<f4', 'fortran_order': False, 'shape': (), }").unwrap();
        assert!(s.shape.is_empty());
        let h = parse("{'fortran_order': False, 'descr': '<f4', 'shape': (4,)}").unwrap();
        assert_eq!((h.dtype, h.shape), (DType::F32, vec![4]));
    }

    #[test]
    fn accepts_either_quote_any_whitespace_and_trailing_commas() {
        for dict in [
            r#"{"descr": "<f4", "fortran_order": False, "shape": (2, 3)}"#,
            r#"{'descr': "<f4", "fortran_order": False, 'shape': (2, 3),}"#,
            "{'descr':'<f4','fortran_order':False,'shape':(2,3)}",
            "  {\n\t'descr' :  '<f4' ,\n  'fortran_order' :False,  'shape' : ( 2 , 3 , ) ,\n }  \n",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",
        ] {
            let h = parse(dict).unwrap_or_else(|e| panic!("{dict}: {e}"));
            assert_eq!((h.dtype, h.shape), (DType::F32, vec![2, 3]), "{dict}");
        }
    }

    #[test]
    fn accepts_every_shape_tuple_form() {
        for (shape, want) in [
            ("()", vec![]),
            ("( )", vec![]),
            ("(5,)", vec![5]),
            ("(5 , )", vec![5]),
            ("(0,)", vec![0]),
            ("(500, 5, 1000, 70)", vec![500, 5, 1000, 70]),
            ("(500, 5, 1000, 70,)", vec![500, 5, 1000, 70]),
        ] {
            let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
            assert_eq!(parse(&dict).unwrap().shape, want, "{shape}");
        }
    }

    #[test]
    fn refuses_missing_duplicate_and_unknown_keys() {
        for (dict, needle) in [
            ("{'fortran_order': False, 'shape': (1,)}", "no 'descr' key"),
            ("{'descr': '<f4', 'shape': (1,)}", "no 'fortran_order' key"),
            ("{'descr': '<f4', 'fortran_order': False}", "no 'shape' key"),
            ("{}", "no 'descr' key"),
            (
                "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
                "'descr' appears twice",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
                "unexpected key 'extra'",
            ),
        ] {
            let e = refused(dict);
            assert!(
                e.contains("corrupt header") && e.contains(needle),
                "{dict}: {e}"
            );
        }
    }

    #[test]
    fn refuses_unsupported_dtypes_and_fortran_order() {
        let with = |descr: &str, fortran: &str| {
            format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': (1,), }}")
        };
        for (dict, needles) in [
            (with(">f4", "False"), &["big-endian", ">f4"][..]),
            (with(">f8", "False"), &["big-endian", "<f4"]),
            (with("<f8", "False"), &["float64", "<f4"]),
            (with("<i4", "False"), &["unsupported dtype <i4", "<f2"]),
            (with("|u1", "False"), &["unsupported dtype |u1"]),
            (with("<f4", "True"), &["Fortran", "ascontiguousarray"]),
        ] {
            let e = refused(&dict);
            for n in needles {
                assert!(e.contains(n), "{dict}: {e} (wanted {n})");
            }
        }
    }

    #[test]
    fn refuses_garbage_saying_what_was_expected() {
        let shape = |s: &str| format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {s}}}");
        for (dict, needle) in [
            ("not a dict".to_string(), "expected a {...} dict"),
            ("{descr: '<f4'}".into(), "expected a quoted key"),
            (
                "{'descr' '<f4'}".into(),
                "expected ':' after the key 'descr'",
            ),
            ("{'descr': <f4}".into(), "expected a quoted dtype string"),
            ("{'descr': '<f4}".into(), "unterminated string"),
            (
                "{'descr': '<f4' 'fortran_order': False}".into(),
                "expected ',' or '}' after the value of 'descr'",
            ),
            (
                "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}".into(),
                "expected True or False",
            ),
            (
                "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (1,)}".into(),
                "expected True or False",
            ),
            (shape("(5)"), "shape (5) is not a tuple"),
            (shape("[5, 6]"), "expected a tuple of integers"),
            (
                shape("(5, 1000, seventy)"),
                "shape entry \"seventy\" is not a number",
            ),
            (shape("(-5,)"), "shape entry \"-5\" is not a number"),
            (shape("(5.0,)"), "shape entry \"5.0\" is not a number"),
            (shape("(,)"), "expected a tuple of integers"),
            (shape("(5 6)"), "inside the shape"),
            (shape("(5,"), "expected a tuple of integers"),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} }".into(),
                "unexpected text after the dict",
            ),
        ] {
            let e = refused(&dict);
            assert!(
                e.contains("corrupt header") && e.contains(needle),
                "{dict}: {e}"
            );
        }
    }

    /// A refused header is an error that names the file.
    #[test]
    fn read_header_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("odd.npy");
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2)}";
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&u16::try_from(dict.len()).unwrap().to_le_bytes());
        b.extend_from_slice(dict.as_bytes());
        b.extend_from_slice(&[0; 8]);
        std::fs::write(&p, b).unwrap();
        let e = read_header(&p).unwrap_err().to_string();
        assert!(e.contains("odd.npy") && e.contains("is not a tuple"), "{e}");
    }
}
