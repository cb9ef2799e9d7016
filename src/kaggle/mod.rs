//! Getting a finished output onto Kaggle: the `[kaggle]` section of a pipeline
//! file and the `seispipe package` settings ([`KaggleSpec`] → [`Settings`]),
//! the packing of shards into upload-sized parts ([`plan`], [`parts`]),
//! Kaggle's metadata rules ([`metadata`]) and the folders, manifests and upload
//! plan written to disk ([`pack`], with `place` and `render`). This module takes
//! plain data (an output folder, its manifest, [`Settings`], a
//! [`PlannedOutput`]); the commands turn pipelines, plans and flags into it.
//! seispipe never handles Kaggle credentials and never uploads.

pub mod metadata;
pub mod pack;
mod part;
pub mod parts;
mod place;
pub mod plan;
mod render;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use pack::{package, PackOptions, PackOutcome};
pub use part::{PartSummary, MARKER_FORMAT, MARKER_NAME};
pub use parts::{predict, PlannedOutput, PlannedShard};

/// Default byte cap of one part: 100 GB (10¹¹ bytes). Kaggle's per-dataset cap
/// is commonly quoted as 200 GB (unverified) and the private-dataset quota as
/// "over 100 GB"; half the quoted cap leaves room for the cap being counted in
/// GiB or being lower than quoted, and lets a part be uploaded privately first.
pub const DEFAULT_MAX_DATASET_BYTES: u64 = 100_000_000_000;
/// Default file cap of one part, counting `dataset-metadata.json` and
/// `manifest.json` (Kaggle reports an error above 1000 files per version).
pub const DEFAULT_MAX_FILES: usize = 1000;
/// Default license.
pub const DEFAULT_LICENSE: &str = "CC0-1.0";

/// One license name or a list (Kaggle needs exactly one; a list is accepted so
/// that two licenses are rejected with a message rather than a parse error).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Licenses {
    /// `license = "CC0-1.0"`
    One(String),
    /// `license = ["CC0-1.0"]`
    Many(Vec<String>),
}

/// A byte count as an integer or text with a unit (`"150GB"`, `"1.5 TB"`, `"64GiB"`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ByteSize {
    /// Bytes.
    Bytes(u64),
    /// Text with a unit.
    Text(String),
}

/// How shard files get into part folders.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LinkMode {
    /// Hard links: no extra disk; needs the parts on the output's file system.
    #[default]
    Link,
    /// Copies: twice the disk.
    Copy,
    /// Hard links (or copies across file systems), then the output's shard
    /// files are removed once the parts are complete.
    Move,
}

/// `[kaggle]` in a pipeline file, and the flags of `seispipe package` (every
/// field optional here; [`Settings::resolve`] says which are required).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KaggleSpec {
    /// Folder that receives the part folders, `upload.sh` and `PLAN.md`
    /// (default `<output dir>-kaggle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub into: Option<String>,
    /// Kaggle user (or organisation) that will own the datasets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Slug prefix: parts are `SLUG-part-001`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    /// Title; each part's title gets ` (part i of n)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Subtitle (20–80 characters); a default names the samples and the part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
    /// Exactly one license name (default `CC0-1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<Licenses>,
    /// Byte cap of one part, metadata and manifest included (default 100 GB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_dataset_bytes: Option<ByteSize>,
    /// File cap of one part, metadata and manifest included (default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files: Option<usize>,
    /// `link` (default), `copy` or `move`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<LinkMode>,
    /// Whether `seispipe run` packages the output when the run succeeds
    /// (default true when the section is present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_run: Option<bool>,
    /// A `seispipe` wheel (`make wheels`) to upload beside the parts, as the
    /// dataset `SLUG-wheel`, so a notebook that reads the parts can
    /// `pip install` seispipe from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wheel: Option<String>,
}

impl KaggleSpec {
    /// `self` with every field that `over` sets replaced by `over`'s.
    #[must_use]
    pub fn overlaid(&self, over: &KaggleSpec) -> KaggleSpec {
        KaggleSpec {
            into: over.into.clone().or_else(|| self.into.clone()),
            owner: over.owner.clone().or_else(|| self.owner.clone()),
            slug: over.slug.clone().or_else(|| self.slug.clone()),
            title: over.title.clone().or_else(|| self.title.clone()),
            subtitle: over.subtitle.clone().or_else(|| self.subtitle.clone()),
            wheel: over.wheel.clone().or_else(|| self.wheel.clone()),
            license: over.license.clone().or_else(|| self.license.clone()),
            max_dataset_bytes: over
                .max_dataset_bytes
                .clone()
                .or_else(|| self.max_dataset_bytes.clone()),
            max_files: over.max_files.or(self.max_files),
            mode: over.mode.or(self.mode),
            after_run: over.after_run.or(self.after_run),
        }
    }
}

/// Resolved packaging settings that the rest of the module trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Target folder.
    pub into: PathBuf,
    /// Kaggle owner.
    pub owner: String,
    /// Slug prefix.
    pub slug: String,
    /// Title prefix.
    pub title: String,
    /// Subtitle, when given.
    pub subtitle: Option<String>,
    /// The license names as given (validated to be exactly one when packing).
    pub licenses: Vec<String>,
    /// Byte cap per part.
    pub max_dataset_bytes: u64,
    /// File cap per part.
    pub max_files: usize,
    /// Link, copy or move.
    pub mode: LinkMode,
    /// The wheel to upload beside the parts, if any.
    pub wheel: Option<PathBuf>,
}

impl Settings {
    /// Resolve `spec` (the pipeline's `[kaggle]` overlaid by flags). `origin`
    /// names where the settings came from in messages; `out_dir` gives the
    /// default target folder.
    ///
    /// # Errors
    /// A missing owner, slug or title, or an unreadable byte size, as
    /// [`Error::Config`].
    pub fn resolve(spec: &KaggleSpec, origin: &str, out_dir: &Path) -> Result<Settings> {
        let need = |v: &Option<String>, key: &str, flag: &str| {
            v.clone().ok_or_else(|| {
                Error::config(
                    origin,
                    format!("kaggle.{key} is required (`--{flag}` or `{key} = …` in [kaggle])"),
                )
            })
        };
        let owner = need(&spec.owner, "owner", "owner")?;
        let slug = need(&spec.slug, "slug", "slug")?;
        let title = need(&spec.title, "title", "title")?;
        let licenses = match &spec.license {
            None => vec![DEFAULT_LICENSE.to_string()],
            Some(Licenses::One(s)) => vec![s.clone()],
            Some(Licenses::Many(v)) => v.clone(),
        };
        let max_dataset_bytes = match &spec.max_dataset_bytes {
            None => DEFAULT_MAX_DATASET_BYTES,
            Some(ByteSize::Bytes(b)) => *b,
            Some(ByteSize::Text(t)) => parse_bytes(t).map_err(|r| {
                Error::config(origin, format!("kaggle.max_dataset_bytes `{t}`: {r}"))
            })?,
        };
        let into = if let Some(p) = &spec.into {
            PathBuf::from(p)
        } else {
            {
                let name = out_dir
                    .file_name()
                    .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
                out_dir.with_file_name(format!("{name}-kaggle"))
            }
        };
        Ok(Settings {
            into,
            owner,
            slug,
            title,
            subtitle: spec.subtitle.clone(),
            licenses,
            max_dataset_bytes,
            max_files: spec.max_files.unwrap_or(DEFAULT_MAX_FILES),
            mode: spec.mode.unwrap_or_default(),
            wheel: spec.wheel.as_ref().map(PathBuf::from),
        })
    }

    /// Resolve a pipeline's `[kaggle]` section for `seispipe check` and
    /// `seispipe run`: the settings, and whether the run packages its output
    /// when it succeeds. `origin` is the pipeline file; `out_dir` its output.
    ///
    /// # Errors
    /// See [`Settings::resolve`]; also `mode = "move"` with `after_run`.
    pub fn for_run(spec: &KaggleSpec, origin: &str, out_dir: &Path) -> Result<(Settings, bool)> {
        let s = Settings::resolve(spec, origin, out_dir)?;
        let after_run = spec.after_run.unwrap_or(true);
        if after_run && s.mode == LinkMode::Move {
            // A rerun of the pipeline would find the moved shards missing and
            // compute them again; links already cost no disk.
            return Err(Error::config(
                origin,
                "kaggle.mode = \"move\" cannot be used with after_run = true (a rerun would regenerate the moved shards); use \"link\" (no extra disk), or set after_run = false and run `seispipe package --move` yourself",
            ));
        }
        Ok((s, after_run))
    }

    /// Every problem Kaggle would have with these settings for `parts` parts
    /// (subtitles are checked per part when rendered).
    #[must_use]
    pub fn problems(&self, parts: usize) -> Vec<String> {
        let mut p = metadata::owner_problems(&self.owner);
        p.extend(metadata::slug_problems(&self.slug, parts));
        p.extend(metadata::title_problems(&self.title, parts));
        p.extend(metadata::license_problems(&self.licenses));
        if let Some(s) = &self.subtitle {
            p.extend(metadata::subtitle_problems(s));
        }
        p
    }
}

/// A size that [`parse_bytes`] cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ByteSizeError {
    /// A unit that is none of B, KB, …, TiB.
    #[error("unknown unit `{0}` (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")]
    UnknownUnit(String),
    /// More bytes than fit in 64 bits.
    #[error("too large")]
    TooLarge,
    /// No number.
    #[error("expected a number of bytes, e.g. 150GB")]
    NotANumber,
}

/// Parse `123`, `150GB`, `1.5 TB`, `64GiB` (decimal units are powers of 1000,
/// `…iB` of 1024).
///
/// # Errors
/// Text that is not a number with a known unit.
pub fn parse_bytes(text: &str) -> std::result::Result<u64, ByteSizeError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num = num.replace('_', "");
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "mb" | "m" => 1_000_000,
        "gb" | "g" => 1_000_000_000,
        "tb" | "t" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        u => return Err(ByteSizeError::UnknownUnit(u.to_string())),
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or(ByteSizeError::TooLarge);
    }
    let f: f64 = num.parse().map_err(|_| ByteSizeError::NotANumber)?;
    let b = (f * mult as f64).round() as u64;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_bytes("150GB"), Ok(150_000_000_000));
        assert_eq!(parse_bytes("1.5 TB"), Ok(1_500_000_000_000));
        assert_eq!(parse_bytes("64GiB"), Ok(64 << 30));
        assert_eq!(parse_bytes("12345"), Ok(12345));
        assert!(parse_bytes("12 parsecs")
            .unwrap_err()
            .to_string()
            .contains("unit"));
        assert!(parse_bytes("GB").is_err());
    }

    #[test]
    fn section_parses_and_overlays() {
        let s: KaggleSpec = toml::from_str(
            r#"owner = "alice"
slug = "fwi-aug"
title = "FWI augmented"
license = ["CC0-1.0", "CC-BY-4.0"]
max_dataset_bytes = "150GB"
mode = "copy""#,
        )
        .unwrap();
        let over = KaggleSpec {
            title: Some("Other title".into()),
            ..KaggleSpec::default()
        };
        let r = Settings::resolve(&s.overlaid(&over), "p.toml", Path::new("out/demo")).unwrap();
        assert_eq!(r.title, "Other title");
        assert_eq!(r.into, PathBuf::from("out/demo-kaggle"));
        assert_eq!(r.max_dataset_bytes, 150_000_000_000);
        assert_eq!(r.mode, LinkMode::Copy);
        assert!(r.problems(2).join("").contains("found 2"));
        let e = toml::from_str::<KaggleSpec>("owner = \"a\"\nslugg = \"x\"").unwrap_err();
        assert!(e.to_string().contains("slugg"), "{e}");
    }

    #[test]
    fn missing_owner_is_named() {
        let e = Settings::resolve(&KaggleSpec::default(), "p.toml", Path::new("out"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("kaggle.owner") && e.contains("--owner"), "{e}");
    }
}
