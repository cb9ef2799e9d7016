//! Spec → plan: every value of a pipeline checked, every stage planned
//! (shapes and labels in and out, algorithm versions, expansions) before any
//! sample is read. Planning reads no file and touches no device, so the plan
//! — and the fingerprint, `check`, `merge`, `verify` and the manifest, which
//! read only plans — is the same on every machine. [`identify`] then hashes
//! the files a plan names (models); [`crate::pipeline::build::instantiate`]
//! makes the runtimes, in `seispipe run` only.

use crate::error::{Error, Result};
use crate::pipeline::spec::PipelineSpec;
use crate::sample::SEISMIC_SHAPE;
use crate::stage::{PlanEnv, StageAt, StagePlan};

/// A pipeline, planned.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The pipeline as written (after overrides).
    pub spec: PipelineSpec,
    /// The pipeline file, for messages and the manifest.
    pub file: String,
    /// The planned stages, in the order they run: the user's `stages`, each
    /// followed by the stages it expands into.
    pub stages: Vec<StagePlan>,
    /// Seismic shape of every output sample.
    pub out_shape: Vec<usize>,
    /// Whether outputs carry velocity maps.
    pub out_labels: bool,
}

impl Plan {
    /// Output samples emitted per input sample.
    #[must_use]
    pub fn outputs_per_input(&self) -> usize {
        usize::from(self.spec.keep_original) + self.spec.copies as usize
    }

    /// Whether running it needs libtorch (the `seispipe-torch` binary).
    #[must_use]
    pub fn needs_torch(&self) -> bool {
        self.stages.iter().any(|s| s.spec.needs_torch())
    }

    /// Stages that may run as batch stages (see [`crate::stage::Planned::batch`]).
    #[must_use]
    pub fn batch_stages(&self) -> usize {
        self.stages.iter().filter(|s| s.planned.batch).count()
    }
}

/// Check the values that need no input (shard size, copies…).
///
/// # Errors
/// A [`Error::Config`] naming the file, the key and the allowed values.
pub fn check_top_level(spec: &PipelineSpec, file: &str) -> Result<()> {
    if spec.output.samples_per_shard == 0 {
        return Err(Error::config(
            file,
            "output.samples_per_shard = 0 is out of range; expected at least 1 (OpenFWI uses 500)",
        ));
    }
    if spec.copies == 0 && !spec.keep_original {
        return Err(Error::config(
            file,
            "copies = 0 with keep_original = false emits nothing; set copies ≥ 1 or keep_original = true",
        ));
    }
    if spec.run.chunk_samples == 0 {
        return Err(Error::config(
            file,
            "run.chunk_samples = 0 is out of range; expected at least 1",
        ));
    }
    if spec.output.dir.trim().is_empty() {
        return Err(Error::config(file, "output.dir is empty"));
    }
    Ok(())
}

/// Plan every stage for inputs that are (or are not) `labelled`. Pure: no
/// file is read, no device or model is touched.
///
/// # Errors
/// A [`Error::Config`] naming the file, `stages[i]` with its type, and the problem.
pub fn plan(spec: PipelineSpec, file: &str, labelled: bool) -> Result<Plan> {
    check_top_level(&spec, file)?;
    let mut env = PlanEnv {
        shape: SEISMIC_SHAPE.to_vec(),
        labels: labelled,
    };
    let mut stages = Vec::with_capacity(spec.stages.len());
    for (index, written) in spec.stages.iter().enumerate() {
        let mut todo = vec![(None, written.clone())];
        todo.extend(
            written
                .expansions()
                .into_iter()
                .map(|(why, s)| (Some(why), s)),
        );
        for (expansion, s) in todo {
            let at = StageAt {
                index,
                written: written.kind(),
                expansion,
            };
            let planned = s
                .plan(&env)
                .map_err(|r| Error::config(file, format!("{at}: {r}")))?;
            let input = env.clone();
            env.shape.clone_from(&planned.out_shape);
            env.labels = planned.out_labels;
            stages.push(StagePlan {
                kind: s.kind(),
                at,
                params: serde_json::to_value(&s).expect("spec serialises"),
                spec: s,
                input,
                planned,
            });
        }
    }
    if !spec.output.data && !env.labels {
        return Err(Error::config(
            file,
            "output.data = false writes only the velocity maps (labels), but this pipeline's outputs have none: add a pseudo_label stage, use labelled inputs, or write the data",
        ));
    }
    if spec.keep_original && (env.shape != SEISMIC_SHAPE || env.labels != labelled) {
        return Err(Error::config(
            file,
            format!(
                "keep_original = true, but the stages change each sample's shape to {:?}; originals and copies must share one shape in a shard — set keep_original = false",
                env.shape
            ),
        ));
    }
    Ok(Plan {
        out_shape: env.shape,
        out_labels: env.labels,
        spec,
        file: file.to_string(),
        stages,
    })
}

/// Identify the files the plan's stages read (models) by their SHA-256 and
/// record them in the plan: they are part of what determines the bytes.
/// A model whose `sha256` the pipeline states must have it.
///
/// # Errors
/// A file that cannot be read, or one whose SHA-256 is not the stated one,
/// named with its `stages[i]`.
pub fn identify(plan: &mut Plan) -> Result<()> {
    for st in &mut plan.stages {
        if st.planned.files.is_empty() {
            continue;
        }
        let mut sha = Vec::with_capacity(st.planned.files.len());
        for (i, path) in st.planned.files.iter().enumerate() {
            if !path.is_file() {
                return Err(Error::config(
                    &plan.file,
                    format!(
                        "{}: models[{i}]: {} does not exist (or is not a file)",
                        st.at,
                        path.display()
                    ),
                ));
            }
            let h = crate::io::npy::sha256_file(path)
                .map_err(|e| Error::config(&plan.file, format!("{}: models[{i}]: {e}", st.at)))?;
            if let Some(want) = stated_sha(&st.params, i) {
                if !want.eq_ignore_ascii_case(&h) {
                    return Err(Error::config(
                        &plan.file,
                        format!(
                            "{}: models[{i}] ({}) has SHA-256 {h}, but the pipeline pins {want}: the file changed, or the pipeline names another one",
                            st.at,
                            path.display()
                        ),
                    ));
                }
            }
            sha.push(h);
        }
        st.spec.identified(&mut st.planned, &sha);
    }
    Ok(())
}

/// The `sha256` a pipeline states for model `i` of a stage, if any.
fn stated_sha(params: &serde_json::Value, i: usize) -> Option<String> {
    params["models"][i]["sha256"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::spec::parse;

    const HEAD: &str = "seed = 1\ncopies = 1\nkeep_original = false\n[input]\npath = \"in\"\n[output]\ndir = \"out\"\n";

    /// `resimulate = true` is planned as its own `simulate` stage, and both
    /// name the user's `stages[0]`; an error in a later stage names its own
    /// entry, not its position in the plan.
    #[test]
    fn expansions_are_planned_and_name_the_users_entry() {
        let text = format!(
            "{HEAD}[[stages]]\ntype = \"pseudo_label\"\nmodels = [{{ path = \"m.pt\" }}]\nresimulate = true\n[[stages]]\ntype = \"flip\"\np = 2.0\n"
        );
        let spec = parse(&text, "p.toml", &[]).unwrap();
        let e = plan(spec.clone(), "p.toml", false).unwrap_err().to_string();
        assert!(e.contains("stages[1] (flip): p = 2"), "{e}");
        let mut ok = spec;
        ok.stages.pop();
        let p = plan(ok, "p.toml", false).unwrap();
        let shown: Vec<String> = p
            .stages
            .iter()
            .map(|s| format!("{} {}", s.at, s.kind))
            .collect();
        assert_eq!(
            shown,
            [
                "stages[0] (pseudo_label) pseudo_label",
                "stages[0] (pseudo_label, resimulate = true) simulate"
            ]
        );
        assert!(p.needs_torch());
        assert_eq!(p.out_shape, SEISMIC_SHAPE);
    }

    /// A `device` changes neither the plan's versions nor its shapes: the
    /// simulator that runs is recorded per shard, not in the plan.
    #[test]
    fn the_plan_of_a_device_stage_holds_no_hardware() {
        let with = |device: &str| {
            let text =
                format!("{HEAD}[[stages]]\ntype = \"simulate\"\nsource_positions = [34]\n{device}");
            plan(parse(&text, "p.toml", &[]).unwrap(), "p.toml", true).unwrap()
        };
        let rust = with("");
        for d in [
            "device = \"auto\"",
            "device = \"cuda:0\"",
            "device = \"cpu\"",
        ] {
            let p = with(d);
            assert_eq!(
                p.stages[0].planned.algorithm,
                rust.stages[0].planned.algorithm
            );
            assert_eq!(p.out_shape, rust.out_shape);
            assert!(p.stages[0].planned.has_device && p.stages[0].planned.batch);
        }
        assert!(!rust.stages[0].planned.has_device);
    }
}
