//! A Kubernetes Indexed Job for a partitioned run (`job.yaml`:
//! `completionMode: Indexed`, one completion per partition, retries per index
//! with `backoffLimitPerIndex`, the shared volume mounted as the working
//! directory), the merge Job (`merge-job.yaml`) and `apply.sh`, which applies
//! the first, waits for it to complete and applies the second (Kubernetes has
//! no job dependencies of its own).
//!
//! Strings are written as JSON strings, which YAML reads unchanged, so no
//! value can break the document.

use std::fmt::Write as _;

use super::{shell_quote, Job};

/// Container, volume and resources of the tasks.
#[derive(Debug, Clone, Default)]
pub struct Spec {
    /// Container image holding `seispipe` (and `seispipe-torch`) on `PATH`.
    pub image: String,
    /// PersistentVolumeClaim holding the pipeline, the inputs and the output.
    pub volume_claim: String,
    /// Where the volume is mounted; also the working directory.
    pub mount: String,
    /// Kubernetes namespace (none: the current context's).
    pub namespace: Option<String>,
    /// Tasks running at once (default: all).
    pub parallelism: Option<usize>,
    /// CPU request and limit per task (also the run's `--threads`).
    pub cpus: usize,
    /// Memory request and limit per task (`16Gi`).
    pub memory: Option<String>,
    /// GPUs per task (`nvidia.com/gpu`).
    pub gpus: Option<usize>,
    /// Retries of one index before it counts as failed.
    pub retries_per_index: usize,
}

/// The three files, as (name, contents, executable).
#[must_use]
pub fn render(job: &Job, spec: &Spec) -> Vec<(&'static str, String, bool)> {
    let q = |s: &str| serde_json::to_string(s).expect("strings serialise");
    let n = job.partitions;
    let name = format!("seispipe-{}", job.name);
    let mut run_args = vec!["seispipe".to_string(), "run".into(), job.pipeline.clone()];
    for s in &job.overrides {
        run_args.push("--set".into());
        run_args.push(s.clone());
    }
    run_args.extend([
        "--partitions".into(),
        n.to_string(),
        "--threads".into(),
        spec.cpus.to_string(),
        "--quiet".into(),
    ]);
    let mut doc = String::new();
    let _ = writeln!(
        doc,
        "# Partition $JOB_COMPLETION_INDEX of {n} of {} ({} shards) per pod.",
        q(&job.output),
        job.shards
    );
    let _ = writeln!(
        doc,
        "# A pod restarted for the same index resumes its shards."
    );
    let _ = writeln!(doc, "apiVersion: batch/v1");
    let _ = writeln!(doc, "kind: Job");
    metadata(&mut doc, &name, spec);
    let _ = writeln!(doc, "spec:");
    let _ = writeln!(doc, "  completionMode: Indexed");
    let _ = writeln!(doc, "  completions: {n}");
    let _ = writeln!(
        doc,
        "  parallelism: {}",
        spec.parallelism.unwrap_or(n).min(n)
    );
    let _ = writeln!(doc, "  backoffLimitPerIndex: {}", spec.retries_per_index);
    let _ = writeln!(doc, "  maxFailedIndexes: {n}");
    pod(&mut doc, spec, &run_args, Some(n), &q);
    let mut merge = String::new();
    let _ = writeln!(
        merge,
        "# Writes the manifest once every index of {name} completed (apply.sh waits)."
    );
    let _ = writeln!(merge, "apiVersion: batch/v1");
    let _ = writeln!(merge, "kind: Job");
    metadata(&mut merge, &format!("{name}-merge"), spec);
    let _ = writeln!(merge, "spec:");
    let _ = writeln!(merge, "  backoffLimit: 2");
    let merge_spec = Spec {
        gpus: None,
        cpus: 1,
        ..spec.clone()
    };
    pod(
        &mut merge,
        &merge_spec,
        &["seispipe".into(), "merge".into(), job.output.clone()],
        None,
        &q,
    );
    let ns = spec
        .namespace
        .as_ref()
        .map(|n| format!(" -n {}", shell_quote(n)))
        .unwrap_or_default();
    let apply = format!(
        "#!/bin/bash\n\
         # Run the partitions, wait for every index to complete, then merge.\n\
         set -euo pipefail\n\
         cd \"$(dirname \"$0\")\"\n\
         kubectl{ns} apply -f job.yaml\n\
         kubectl{ns} wait --for=condition=complete --timeout=-1s job/{name}\n\
         kubectl{ns} apply -f merge-job.yaml\n\
         kubectl{ns} wait --for=condition=complete --timeout=-1s job/{name}-merge\n"
    );
    vec![
        ("job.yaml", doc, false),
        ("merge-job.yaml", merge, false),
        ("apply.sh", apply, true),
    ]
}

fn metadata(doc: &mut String, name: &str, spec: &Spec) {
    let _ = writeln!(doc, "metadata:");
    let _ = writeln!(doc, "  name: {name}");
    if let Some(ns) = &spec.namespace {
        let _ = writeln!(
            doc,
            "  namespace: {}",
            serde_json::to_string(ns).expect("json")
        );
    }
    let _ = writeln!(doc, "  labels:");
    let _ = writeln!(doc, "    app.kubernetes.io/name: seispipe");
}

/// The pod template: one container running `args` in the mounted volume.
fn pod(
    doc: &mut String,
    spec: &Spec,
    args: &[String],
    partitions: Option<usize>,
    q: &dyn Fn(&str) -> String,
) {
    let _ = writeln!(doc, "  template:");
    let _ = writeln!(doc, "    metadata:");
    let _ = writeln!(doc, "      labels:");
    let _ = writeln!(doc, "        app.kubernetes.io/name: seispipe");
    let _ = writeln!(doc, "    spec:");
    // backoffLimitPerIndex needs restartPolicy Never.
    let _ = writeln!(doc, "      restartPolicy: Never");
    let _ = writeln!(doc, "      containers:");
    let _ = writeln!(doc, "        - name: seispipe");
    let _ = writeln!(doc, "          image: {}", q(&spec.image));
    let _ = writeln!(doc, "          workingDir: {}", q(&spec.mount));
    let _ = writeln!(
        doc,
        "          command: [{}]",
        // Kubernetes expands `$(VAR)` in a command and reduces `$$` to `$`:
        // every `$` doubled, so an argument reaches seispipe as written.
        args.iter()
            .map(|a| q(&a.replace('$', "$$")))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(n) = partitions {
        // Kubernetes sets JOB_COMPLETION_INDEX; the count is ours to give.
        let _ = writeln!(doc, "          env:");
        let _ = writeln!(doc, "            - name: SEISPIPE_PARTITIONS");
        let _ = writeln!(doc, "              value: {}", q(&n.to_string()));
    }
    let _ = writeln!(doc, "          resources:");
    for kind in ["requests", "limits"] {
        let _ = writeln!(doc, "            {kind}:");
        let _ = writeln!(doc, "              cpu: {}", q(&spec.cpus.to_string()));
        if let Some(m) = &spec.memory {
            let _ = writeln!(doc, "              memory: {}", q(m));
        }
        if let Some(g) = spec.gpus {
            let _ = writeln!(doc, "              nvidia.com/gpu: {}", q(&g.to_string()));
        }
    }
    let _ = writeln!(doc, "          volumeMounts:");
    let _ = writeln!(doc, "            - name: work");
    let _ = writeln!(doc, "              mountPath: {}", q(&spec.mount));
    let _ = writeln!(doc, "      volumes:");
    let _ = writeln!(doc, "        - name: work");
    let _ = writeln!(doc, "          persistentVolumeClaim:");
    let _ = writeln!(doc, "            claimName: {}", q(&spec.volume_claim));
}
