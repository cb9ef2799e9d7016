//! The serde types of a pipeline file (`pipelines/*.toml`): plain data, no
//! behaviour. Unknown keys and unknown stage types are rejected by serde;
//! value ranges are checked by [`crate::pipeline::build`].

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
pub use crate::io::layout::{InputSpec, LabelMode, Policy};
pub use crate::io::npy::DType;
pub use crate::stage::StageSpec;

/// One pipeline: where to read, what to do, where to write.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Seed of every random draw (see [`crate::rng`]).
    pub seed: u64,
    /// How many augmented copies of each input sample to emit.
    #[serde(default = "default_copies")]
    pub copies: u32,
    /// Whether to also emit each input sample untouched, before its copies.
    #[serde(default = "default_true")]
    pub keep_original: bool,
    /// Where the input samples come from.
    pub input: InputSpec,
    /// Where and how outputs are written.
    pub output: OutputSpec,
    /// The stages applied, in order, to each augmented copy.
    #[serde(default)]
    pub stages: Vec<StageSpec>,
    /// Execution settings that never change the output bytes.
    #[serde(default)]
    pub run: RunSpec,
    /// Kaggle packaging (`[kaggle]`, see [`crate::kaggle`]); not part of the
    /// run fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kaggle: Option<crate::kaggle::KaggleSpec>,
}

fn default_copies() -> u32 {
    1
}
fn default_true() -> bool {
    true
}

/// `[output]`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Output directory; created if missing.
    pub dir: String,
    /// Samples per output shard (OpenFWI uses 500).
    #[serde(default = "default_samples_per_shard")]
    pub samples_per_shard: usize,
    /// Element type of the written arrays.
    #[serde(default)]
    pub dtype: DType,
    /// Whether to write the seismic data. `false` writes only the labels
    /// (predictions), the provenance and the manifest — no copy of the
    /// inputs — for predicting a test set. Written to a pipeline's JSON only
    /// when `false`, so the fingerprint of pipelines without it is unchanged.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub data: bool,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if signature
fn is_true(b: &bool) -> bool {
    *b
}

fn default_samples_per_shard() -> usize {
    500
}

/// `[run]`: settings that change speed and memory, never the output bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// Samples transformed together before being handed to the writer. Peak
    /// memory is about `(2·segments + 3) × chunk_samples × (input + output sample bytes)`, segments = 1 + batch stages.
    #[serde(default = "default_chunk")]
    pub chunk_samples: usize,
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            chunk_samples: default_chunk(),
        }
    }
}

fn default_chunk() -> usize {
    32
}

/// Read a pipeline file, apply `--set key=value` overrides, and parse it.
///
/// # Errors
/// The file cannot be read, is not TOML, has unknown or misspelt keys, or an
/// override names no valid key.
pub fn load(path: &Path, overrides: &[String]) -> Result<PipelineSpec> {
    let file = path.display().to_string();
    let text = fs_err::read_to_string(path).map_err(|e| Error::config(&file, e.to_string()))?;
    parse(&text, &file, overrides)
}

/// Parse pipeline text (see [`load`]); `file` names it in errors.
///
/// # Errors
/// See [`load`].
pub fn parse(text: &str, file: &str, overrides: &[String]) -> Result<PipelineSpec> {
    let mut value: toml::Table =
        toml::from_str(text).map_err(|e| Error::config(file, format!("not valid TOML: {e}")))?;
    // Paths written in the file are relative to the file's directory; paths
    // given with --set are relative to the current directory, like any other
    // command-line path, so they are applied after this.
    let base = Path::new(file).parent().unwrap_or(Path::new(""));
    resolve_file_paths(&mut value, base);
    for o in overrides {
        apply_override(&mut value, o)
            .map_err(|r| Error::config(file, format!("--set {o}: {r}")))?;
    }
    // serde_path_to_error names the key an error is about (`stages[1].p`),
    // which plain toml errors lose once overrides have rewritten the table.
    let whole = toml::Value::Table(value);
    serde_path_to_error::deserialize::<_, PipelineSpec>(whole.clone()).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().message().to_string();
        if path == "." || path.is_empty() {
            return Error::config(file, inner);
        }
        // A stage is an internally tagged enum, so the path stops at
        // `stages[i]`; deserialising that entry as its own type names the key.
        let (path, inner) = stage_key_error(&whole, &path).unwrap_or((path, inner));
        Error::config(file, format!("in {path}: {inner}"))
    })
}

/// For an error at `stages[i]`, the same error with the key inside the stage
/// named (`stages[0].window`), found by deserialising the entry as its type.
fn stage_key_error(whole: &toml::Value, path: &str) -> Option<(String, String)> {
    let i: usize = path
        .strip_prefix("stages[")?
        .strip_suffix(']')?
        .parse()
        .ok()?;
    let mut entry = whole.get("stages")?.get(i)?.as_table()?.clone();
    let kind = entry.remove("type")?;
    StageSpec::key_error(kind.as_str()?, toml::Value::Table(entry), path)
}

/// Every key of a pipeline file that holds a path: `input.path` (a glob
/// too), `output.dir`, `kaggle.into`, `kaggle.wheel`, and
/// `stages[*].models[*].path`.
pub const PATH_KEYS: &[&str] = &[
    "input.path",
    "output.dir",
    "kaggle.into",
    "kaggle.wheel",
    "stages[*].models[*].path",
];

/// Make the relative paths of [`PATH_KEYS`] relative to `base` (the pipeline
/// file's directory) instead; absolute paths and non-strings are left alone
/// (the parser reports a wrong type).
fn resolve_file_paths(root: &mut toml::Table, base: &Path) {
    let fix = |v: &mut toml::Value| {
        if let toml::Value::String(s) = v {
            if !Path::new(s.as_str()).is_absolute() {
                *s = normalize(&base.join(s.as_str())).display().to_string();
            }
        }
    };
    for (table, key) in [
        ("input", "path"),
        ("output", "dir"),
        ("kaggle", "into"),
        ("kaggle", "wheel"),
    ] {
        if let Some(v) = root.get_mut(table).and_then(|t| t.get_mut(key)) {
            fix(v);
        }
    }
    if let Some(toml::Value::Array(stages)) = root.get_mut("stages") {
        for stage in stages {
            if let Some(toml::Value::Array(models)) = stage.get_mut("models") {
                for m in models {
                    if let Some(v) = m.get_mut("path") {
                        fix(v);
                    }
                }
            }
        }
    }
}

/// `a/./b/../c` → `a/c`, lexically (no file system access, so globs and
/// paths that do not exist yet keep their meaning); leading `..` stay.
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// Apply one `key=value` override. Keys are dotted paths; array elements are
/// numbered from 0 (`stages.1.p=0.3`). The value is read as a TOML value
/// (`7`, `0.5`, `true`, `"text"`, `[1, 2]`), or as a plain string if it is not one.
fn apply_override(root: &mut toml::Table, item: &str) -> std::result::Result<(), String> {
    let (key, raw) = item
        .split_once('=')
        .ok_or_else(|| "expected key=value".to_string())?;
    let key = key.trim();
    let raw = raw.trim();
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("`{key}` is not a dotted key"));
    }
    let mut whole = toml::Value::Table(std::mem::take(root));
    let result = set_path(&mut whole, &parts, value);
    if let toml::Value::Table(t) = whole {
        *root = t;
    }
    result
}

fn set_path(
    cur: &mut toml::Value,
    parts: &[&str],
    value: toml::Value,
) -> std::result::Result<(), String> {
    let (head, rest) = (parts[0], &parts[1..]);
    match cur {
        toml::Value::Table(t) => {
            if rest.is_empty() {
                t.insert(head.to_string(), value);
                return Ok(());
            }
            let next = t
                .entry(head.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            set_path(next, rest, value)
        }
        toml::Value::Array(a) => {
            let i: usize = head
                .parse()
                .map_err(|_| format!("`{head}` must be an index into a list of {}", a.len()))?;
            let len = a.len();
            let slot = a
                .get_mut(i)
                .ok_or_else(|| format!("index {i} is out of range: the list has {len} entries"))?;
            if rest.is_empty() {
                *slot = value;
                Ok(())
            } else {
                set_path(slot, rest, value)
            }
        }
        _ => Err(format!(
            "`{head}` is inside a value that is not a table or list"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
seed = 1
[input]
path = "data/train"
[output]
dir = "out"
[[stages]]
type = "flip"
p = 0.5
"#;

    #[test]
    fn parses_defaults() {
        let s = parse(BASE, "p.toml", &[]).unwrap();
        assert_eq!(s.copies, 1);
        assert!(s.keep_original);
        assert_eq!(s.output.samples_per_shard, 500);
        assert_eq!(s.stages.len(), 1);
    }

    #[test]
    fn override_sets_nested_and_array_keys() {
        let s = parse(
            BASE,
            "p.toml",
            &[
                "seed=9".into(),
                "stages.0.p=0.25".into(),
                "output.dtype=f16".into(),
            ],
        )
        .unwrap();
        assert_eq!(s.seed, 9);
        assert_eq!(s.output.dtype, DType::F16);
        match &s.stages[0] {
            StageSpec::Flip(f) => assert!((f.p - 0.25).abs() < 1e-12),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn override_out_of_range_index_is_named() {
        let e = parse(BASE, "p.toml", &["stages.3.p=1".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("p.toml") && e.contains("stages.3.p") && e.contains("out of range"),
            "{e}"
        );
    }

    #[test]
    fn unknown_stage_type_lists_allowed() {
        let text = BASE.replace("\"flip\"", "\"flipp\"");
        let e = parse(&text, "p.toml", &[]).unwrap_err().to_string();
        assert!(
            e.contains("p.toml") && e.contains("flipp") && e.contains("gaussian_noise"),
            "{e}"
        );
    }

    #[test]
    fn misspelt_field_is_named_with_allowed_keys() {
        let text = BASE.replace("p = 0.5", "pp = 0.5");
        let e = parse(&text, "p.toml", &[]).unwrap_err().to_string();
        assert!(
            e.contains("p.toml") && e.contains("pp") && e.contains("stages[0]"),
            "{e}"
        );
        let text = BASE.replace("dir = \"out\"", "dir = \"out\"\nsamples_per_shrd = 3");
        let e = parse(&text, "p.toml", &[]).unwrap_err().to_string();
        assert!(
            e.contains("samples_per_shrd") && e.contains("samples_per_shard"),
            "{e}"
        );
    }

    /// One rule for every path key: relative to the pipeline file's
    /// directory when written in the file, to the current directory when
    /// given with --set; absolute paths as they are.
    #[test]
    fn paths_in_the_file_are_relative_to_it_and_set_paths_to_the_cwd() {
        let text = r#"
seed = 1
[input]
path = "../data/**/*.npy"
[output]
dir = "./out/../runs/a"
[kaggle]
into = "/abs/kaggle"
[[stages]]
type = "pseudo_label"
models = [{ path = "m.pt" }, { path = "../models/n.pt" }]
"#;
        let s = parse(text, "pipelines/p.toml", &[]).unwrap();
        assert_eq!(s.input.path, "data/**/*.npy");
        assert_eq!(s.output.dir, "pipelines/runs/a");
        assert_eq!(
            s.kaggle.as_ref().unwrap().into.as_deref(),
            Some("/abs/kaggle")
        );
        let StageSpec::PseudoLabel(pl) = &s.stages[0] else {
            panic!("pseudo_label")
        };
        assert_eq!(pl.models[0].path, "pipelines/m.pt");
        assert_eq!(pl.models[1].path, "models/n.pt");

        let s = parse(
            text,
            "/etc/seispipe/p.toml",
            &[
                "output.dir=here".into(),
                "stages.0.models.0.path=x.pt".into(),
            ],
        )
        .unwrap();
        assert_eq!(s.input.path, "/etc/data/**/*.npy");
        assert_eq!(s.output.dir, "here");
        let StageSpec::PseudoLabel(pl) = &s.stages[0] else {
            panic!("pseudo_label")
        };
        assert_eq!(pl.models[0].path, "x.pt");
        assert_eq!(pl.models[1].path, "/etc/models/n.pt");

        // A file in the current directory: paths stay as written.
        let s = parse(BASE, "p.toml", &[]).unwrap();
        assert_eq!(
            (s.input.path.as_str(), s.output.dir.as_str()),
            ("data/train", "out")
        );
    }
}
