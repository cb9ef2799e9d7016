//! Directory listing: the one recursive walk that input discovery, `inspect`
//! and `verify` use, in a fixed order on every machine (depth first, each
//! directory's entries in [`natural_cmp`] order of their names, so `data2`
//! comes before `data10`), plus the `/`-separated relative paths that name
//! files in manifests and seeds.

use std::cmp::Ordering;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Every file under `dir`, recursively, in walk order. An entry (file or
/// directory) whose name `skip` accepts is left out with everything under
/// it. Symbolic links are followed: a link to a directory is walked, any
/// other link (a broken one included) is listed as a file.
///
/// # Errors
/// A directory that cannot be listed, named with its path.
pub fn files(dir: &Path, skip: impl Fn(&OsStr) -> bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(dir, &skip, &mut out)?;
    Ok(out)
}

fn walk(dir: &Path, skip: &dyn Fn(&OsStr) -> bool, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, "list directory", e))? {
        let entry = entry.map_err(|e| Error::io(dir, "list directory", e))?;
        if !skip(&entry.file_name()) {
            entries.push(entry.path());
        }
    }
    entries.sort_by(|a, b| natural_cmp(&name_of(a), &name_of(b)));
    for p in entries {
        if p.is_dir() {
            walk(&p, skip, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

fn name_of(p: &Path) -> std::borrow::Cow<'_, str> {
    p.file_name().unwrap_or_default().to_string_lossy()
}

/// Whether a name is hidden (starts with `.`): dot files, the writers'
/// `.NAME.partial` temporaries and the `.seispipe` state directory.
#[must_use]
pub fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

/// `p` relative to `root`, `/`-separated (`p` itself when it is not under
/// `root`).
#[must_use]
pub fn rel_path(root: &Path, p: &Path) -> String {
    let r = p.strip_prefix(root).unwrap_or(p);
    r.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Compare two paths naturally: digit runs compare as numbers.
#[must_use]
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (&a[..na], &b[..nb]);
                let ta = trim_zeros(da);
                let tb = trim_zeros(db);
                let ord = ta
                    .len()
                    .cmp(&tb.len())
                    .then_with(|| ta.cmp(tb))
                    .then(na.cmp(&nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|&&c| c == b'0').count();
    &d[z.min(d.len().saturating_sub(1))..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["data10.npy", "data2.npy", "data1.npy", "a/data3.npy"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["a/data3.npy", "data1.npy", "data2.npy", "data10.npy"]);
    }

    #[test]
    fn walks_depth_first_in_natural_order_skipping_what_it_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "data/data10.npy",
            "data/data2.npy",
            "data/.data3.npy.partial",
            "model/model2.npy",
            ".seispipe/journal.jsonl",
            "manifest.json",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
        let rel = |skip: &dyn Fn(&OsStr) -> bool| -> Vec<String> {
            files(root, skip)
                .unwrap()
                .iter()
                .map(|p| rel_path(root, p))
                .collect()
        };
        assert_eq!(
            rel(&is_hidden),
            [
                "data/data2.npy",
                "data/data10.npy",
                "manifest.json",
                "model/model2.npy"
            ]
        );
        assert_eq!(
            rel(&|n: &OsStr| n == ".seispipe"),
            [
                "data/.data3.npy.partial",
                "data/data2.npy",
                "data/data10.npy",
                "manifest.json",
                "model/model2.npy"
            ]
        );
        assert_eq!(rel(&|_: &OsStr| false).len(), 6);
        let e = files(&root.join("nope"), is_hidden)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope") && e.contains("list directory"), "{e}");
    }
}
