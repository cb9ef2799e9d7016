//! The one list of stage types. Each line names the enum variant, the spec
//! type (which implements [`StageType`]) and the `type` value of pipeline
//! files; everything that dispatches on a stage type — parsing, error keys,
//! planning, running, `seispipe stages`, the libtorch hand-over — is generated
//! from it. `tests` below prove the list and the stage files agree.

use serde::{Deserialize, Serialize};

use super::{Instance, ParamError, PlanEnv, Planned, RunEnv, StageDoc, StagePlan, StageType};
use crate::error::StageError;

macro_rules! registry {
    ($( $(#[$doc:meta])* $variant:ident($spec:ty) = $name:literal, )*) => {
        /// The closed set of stage types, as written in pipeline files
        /// (`type = "…"`).
        #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
        #[serde(tag = "type")]
        pub enum StageSpec {
            $( $(#[$doc])* #[serde(rename = $name)] $variant($spec), )*
        }

        $( impl From<$spec> for StageSpec {
            fn from(s: $spec) -> Self {
                StageSpec::$variant(s)
            }
        } )*

        impl StageSpec {
            /// The stage type as written in pipeline files.
            #[must_use]
            pub fn kind(&self) -> &'static str {
                match self { $( StageSpec::$variant(_) => $name, )* }
            }

            /// The stage type's documentation.
            #[must_use]
            pub fn doc(&self) -> &'static StageDoc {
                match self { $( StageSpec::$variant(_) => &<$spec as StageType>::DOC, )* }
            }

            /// See [`StageType::plan`].
            ///
            /// # Errors
            /// The stage's message.
            pub fn plan(&self, env: &PlanEnv) -> Result<Planned, ParamError> {
                match self { $( StageSpec::$variant(s) => s.plan(env), )* }
            }

            /// See [`StageType::instantiate`].
            ///
            /// # Errors
            /// The stage's message.
            pub fn instantiate(
                &self,
                plan: &StagePlan,
                env: &RunEnv<'_>,
            ) -> Result<Instance, ParamError> {
                match self { $( StageSpec::$variant(s) => s.instantiate(plan, env), )* }
            }

            /// See [`StageType::needs_torch`].
            #[must_use]
            pub fn needs_torch(&self) -> bool {
                match self { $( StageSpec::$variant(s) => s.needs_torch(), )* }
            }

            /// See [`StageType::expansions`].
            #[must_use]
            pub fn expansions(&self) -> Vec<(&'static str, StageSpec)> {
                match self { $( StageSpec::$variant(s) => s.expansions(), )* }
            }

            /// See [`StageType::identified`].
            pub fn identified(&self, planned: &mut Planned, sha256: &[String]) {
                match self { $( StageSpec::$variant(s) => s.identified(planned, sha256), )* }
            }

            /// See [`StageType::finish`].
            ///
            /// # Errors
            /// The stage's failure.
            pub fn finish(
                &self,
                out_dir: &std::path::Path,
                shards: &[crate::io::manifest::ShardRecord],
                skipped: &[crate::io::layout::SkippedFile],
            ) -> Result<Vec<crate::io::npy::WrittenFile>, StageError> {
                match self { $( StageSpec::$variant(s) => s.finish(out_dir, shards, skipped), )* }
            }

            /// Parse a stage table (without its `type`) of type `kind` as its
            /// own spec type, for an error that names the key inside it:
            /// (`at.key`, message). `None` when it parses or `kind` is unknown.
            pub(crate) fn key_error(kind: &str, entry: toml::Value, at: &str) -> Option<(String, String)> {
                match kind {
                    $( $name => named::<$spec>(entry, at), )*
                    _ => None,
                }
            }
        }

        /// Every stage type, in the order `seispipe stages` lists them.
        #[must_use]
        pub fn catalog() -> Vec<&'static StageDoc> {
            vec![ $( &<$spec as StageType>::DOC, )* ]
        }

        /// Every `type` value, in registry order.
        pub const NAMES: &[&str] = &[ $( $name, )* ];
    };
}

registry! {
    /// Mirror flip (receivers, sources, velocity x).
    Flip(super::flip::FlipSpec) = "flip",
    /// Additive Gaussian noise by std or SNR.
    GaussianNoise(super::noise::GaussianNoiseSpec) = "gaussian_noise",
    /// Re-simulate the seismic data from the velocity map.
    Simulate(super::simulate::SimulateSpec) = "simulate",
    /// Mix two velocity maps, then re-simulate.
    VelocityMixup(super::velocity_mixup::VelocityMixupSpec) = "velocity_mixup",
    /// Crop-and-resize / rotate the velocity map, then re-simulate.
    VelocityAffine(super::velocity_affine::VelocityAffineSpec) = "velocity_affine",
    /// STFT of every trace (torch.stft conventions).
    Spectrogram(super::spectrogram::SpectrogramSpec) = "spectrogram",
    /// Baseline input scalings (signed log1p, min-max).
    WaveformTransform(super::waveform_transform::WaveformTransformSpec) = "waveform_transform",
    /// Labels from trained TorchScript models (needs libtorch: the `seispipe-torch` binary).
    PseudoLabel(super::pseudo_label::PseudoLabelSpec) = "pseudo_label",
}

/// Deserialise one stage table as `T`; its error with the key named below `at`.
fn named<T: serde::de::DeserializeOwned>(v: toml::Value, at: &str) -> Option<(String, String)> {
    let e = serde_path_to_error::deserialize::<_, T>(v).err()?;
    let key = e.path().to_string();
    let msg = e.into_inner().message().to_string();
    Some(if key == "." || key.is_empty() {
        (at.to_string(), msg)
    } else {
        (format!("{at}.{key}"), msg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The registry is complete: every stage file under `src/stage/` is in
    /// it, each line's `type` is its stage's documented name, and a table of
    /// just its required keys parses to that variant.
    #[test]
    fn the_registry_lists_every_stage_file_once() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/stage");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let stem = name.strip_suffix(".rs").unwrap_or(&name).to_string();
                let is_dir = e.file_type().unwrap().is_dir();
                // Helpers that are no stage type: the module root, this file,
                // and the sampler of normal draws.
                (!["mod", "registry", "normal"].contains(&stem.as_str())
                    && (is_dir
                        || std::path::Path::new(&name)
                            .extension()
                            .is_some_and(|x| x == "rs")))
                .then_some(stem)
            })
            .collect();
        files.sort();
        // Files are named after the stage, but for `noise` (gaussian_noise).
        let mut names: Vec<String> = NAMES
            .iter()
            .map(|n| n.strip_prefix("gaussian_").unwrap_or(n).to_string())
            .collect();
        names.sort();
        assert_eq!(files, names, "src/stage files vs registry lines");
        let docs = catalog();
        assert_eq!(docs.len(), NAMES.len());
        for (doc, name) in docs.iter().zip(NAMES) {
            assert_eq!(doc.name, *name, "the DOC of registry line {name}");
            let text = format!("type = \"{name}\"\n{}", doc.required);
            let spec: StageSpec = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(spec.kind(), *name);
            assert_eq!(spec.doc().name, *name);
        }
    }
}
