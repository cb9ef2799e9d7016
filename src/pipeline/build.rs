//! Plan → runtimes, in the process that runs the pipeline: each planned stage
//! makes its runtime ([`crate::stage::StageType::instantiate`]) — loads its
//! models, chooses its device. Nothing that identifies the run is decided
//! here; what this process chose (the simulator or device of a stage with a
//! `device`) is recorded with every shard it writes.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::pipeline::plan::Plan;
use crate::stage::Runtime;

/// A pipeline ready to run in this process.
pub struct Pipeline {
    /// What it does.
    pub plan: Plan,
    /// One runtime per planned stage, in order.
    pub runtimes: Vec<Runtime>,
    /// Where this process runs each stage that chooses (`device`):
    /// `stages[i]` (with the expansion, if any) → `rust`, `tch-cpu`,
    /// `tch-cuda:N`. Recorded in every shard's journal record.
    pub devices: BTreeMap<String, String>,
}

/// Make the runtimes of `plan` with what this process has (`env`: its
/// libtorch backend, if any, and kernel).
///
/// # Errors
/// A [`Error::Config`] naming the file and `stages[i]`: a device or model this
/// process cannot provide.
pub fn instantiate(plan: Plan, env: &crate::stage::RunEnv<'_>) -> Result<Pipeline> {
    let mut runtimes = Vec::with_capacity(plan.stages.len());
    let mut devices = BTreeMap::new();
    for st in &plan.stages {
        let inst = st
            .spec
            .instantiate(st, env)
            .map_err(|r| Error::config(&plan.file, format!("{}: {r}", st.at)))?;
        if st.planned.has_device {
            if let Some(d) = inst.device {
                devices.insert(device_key(st), d);
            }
        }
        runtimes.push(inst.runtime);
    }
    Ok(Pipeline {
        plan,
        runtimes,
        devices,
    })
}

/// The key a shard's `devices` record uses for a planned stage:
/// `stages[i]`, or `stages[i].resimulate` for an expansion.
#[must_use]
pub fn device_key(st: &crate::stage::StagePlan) -> String {
    match st.at.expansion {
        None => format!("stages[{}]", st.at.index),
        Some(e) => format!(
            "stages[{}].{}",
            st.at.index,
            e.split_whitespace().next().unwrap_or(e)
        ),
    }
}
