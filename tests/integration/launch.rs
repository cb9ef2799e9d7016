//! `seispipe slurm` and `seispipe k8s`: the files they write, checked line by
//! line and (Kubernetes) against the API schema offline with
//! kubernetes-validate from the test venv. The Slurm array runs on a real
//! single-node cluster in tests/slurm/run.sh.

use std::path::Path;

use seispipe::io::npy::DType;

use crate::util::{run_ok, seispipe, tempdir, text, write_train_pair};

fn setup(root: &Path) {
    write_train_pair(&root.join("in"), "FlatVel_A", 1, 4, DType::F32, 3);
    std::fs::write(
        root.join("p.toml"),
        "seed = 1\ncopies = 0\n[input]\npath = \"in\"\n[output]\ndir = \"out/big run\"\nsamples_per_shard = 1\n",
    )
    .unwrap();
}

#[test]
fn slurm_writes_an_array_a_dependent_merge_and_a_submit_script() {
    let dir = tempdir();
    let root = dir.path();
    setup(root);
    let o = run_ok(
        root,
        &[
            "slurm",
            "p.toml",
            "--partitions",
            "6",
            "--cpus-per-task",
            "3",
            "--gpus-per-task",
            "1",
            "--time",
            "1:00:00",
            "--set",
            "seed=2",
        ],
    );
    let msg = String::from_utf8_lossy(&o.stdout);
    assert!(
        msg.contains("6 array tasks over 4 shards")
            && msg.contains("2 tasks will have nothing to do"),
        "{msg}"
    );
    let d = root.join("out/big run-slurm");
    let array = std::fs::read_to_string(d.join("array.sbatch")).unwrap();
    let exe = Path::new(env!("CARGO_BIN_EXE_seispipe"));
    for line in [
        "#SBATCH --array=0-5".to_string(),
        "#SBATCH --cpus-per-task=3".into(),
        "#SBATCH --gpus-per-task=1".into(),
        "#SBATCH --time=1:00:00".into(),
        "#SBATCH --requeue".into(),
        format!("#SBATCH --chdir={}", std::path::absolute(root).unwrap().display()),
        format!(
            "exec {} run p.toml --set seed=2 --partitions 6 --threads \"${{SLURM_CPUS_PER_TASK:-3}}\" --quiet",
            exe.display()
        ),
    ] {
        assert!(array.lines().any(|l| l == line), "{line} missing:\n{array}");
    }
    let merge = std::fs::read_to_string(d.join("merge.sbatch")).unwrap();
    assert!(merge.contains("merge 'out/big run'"), "{merge}");
    let submit = d.join("submit.sh");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&submit).unwrap().permissions());
    assert_eq!(mode & 0o111, 0o111);
    // The scripts are valid bash.
    for f in ["array.sbatch", "merge.sbatch", "submit.sh"] {
        let o = std::process::Command::new("bash")
            .arg("-n")
            .arg(d.join(f))
            .output()
            .unwrap();
        assert!(o.status.success(), "{f}: {}", text(&o));
    }
    let o = seispipe(root, &["slurm", "p.toml", "--partitions", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at least 1"));
}

#[test]
fn k8s_writes_an_indexed_job_that_validates_against_the_api_schema() {
    let dir = tempdir();
    let root = dir.path();
    setup(root);
    let o = run_ok(
        root,
        &[
            "k8s",
            "p.toml",
            "--partitions",
            "3",
            "--image",
            "registry.example/seispipe:0.1",
            "--volume-claim",
            "fwi-data",
            "--memory",
            "32Gi",
            "--gpus",
            "1",
            "--cpus",
            "16",
            "--namespace",
            "research",
        ],
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Indexed Job of 3 completions"),
        "{}",
        text(&o)
    );
    let d = root.join("out/big run-k8s");
    let job = std::fs::read_to_string(d.join("job.yaml")).unwrap();
    for line in [
        "  completionMode: Indexed",
        "  completions: 3",
        "  parallelism: 3",
        "  backoffLimitPerIndex: 3",
        "      restartPolicy: Never",
        "          image: \"registry.example/seispipe:0.1\"",
        "          workingDir: \"/work\"",
        "          command: [\"seispipe\", \"run\", \"p.toml\", \"--partitions\", \"3\", \"--threads\", \"16\", \"--quiet\"]",
        "              nvidia.com/gpu: \"1\"",
        "            claimName: \"fwi-data\"",
        "  namespace: \"research\"",
    ] {
        assert!(job.lines().any(|l| l == line), "{line} missing:\n{job}");
    }
    let merge = std::fs::read_to_string(d.join("merge-job.yaml")).unwrap();
    assert!(
        merge.contains("command: [\"seispipe\", \"merge\", \"out/big run\"]"),
        "{merge}"
    );
    assert!(!merge.contains("nvidia.com/gpu"), "the merge needs no GPU");
    let apply = std::fs::read_to_string(d.join("apply.sh")).unwrap();
    assert!(apply.contains("kubectl -n research wait --for=condition=complete --timeout=-1s job/seispipe-big-run\n"), "{apply}");
    let Some(py) = crate::util::python("k8s_schema") else {
        return;
    };
    let validate = py.with_file_name("kubernetes-validate");
    for version in ["1.29.0", "1.33.0"] {
        let o = std::process::Command::new(&validate)
            .args(["--strict", "-k", version])
            .arg(d.join("job.yaml"))
            .arg(d.join("merge-job.yaml"))
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (is kubernetes-validate in the venv? `make venv`)",
                    validate.display()
                )
            });
        assert!(o.status.success(), "Kubernetes {version}: {}", text(&o));
    }
    // The validator does reject a broken Job (so passing means something).
    let broken = d.join("broken.yaml");
    std::fs::write(&broken, job.replace("completions:", "completionz:")).unwrap();
    let o = std::process::Command::new(&validate)
        .args(["--strict", "-k", "1.33.0"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    // An absolute pipeline path cannot be found inside the pods.
    let abs = root.join("p.toml");
    let o = seispipe(
        root,
        &[
            "k8s",
            abs.to_str().unwrap(),
            "--partitions",
            "2",
            "--image",
            "x",
            "--volume-claim",
            "y",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("relative to the volume"));
}
