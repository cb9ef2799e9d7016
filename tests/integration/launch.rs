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
        format!(
            "cd {}",
            seispipe::launch::shell_quote(
                &std::path::absolute(root).unwrap().display().to_string()
            )
        ),
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

/// A working directory named with a space, a quote and `$(…)`: submit.sh
/// hands sbatch exactly that directory and the log paths (a stand-in
/// `sbatch` records its arguments), the array script runs partition 0 there,
/// and nothing in the name is executed.
#[test]
fn slurm_scripts_work_from_any_directory_name() {
    let dir = tempdir();
    let root = dir.path().join("sp ace 'q' $(touch PWNED)");
    std::fs::create_dir(&root).unwrap();
    setup(&root);
    run_ok(&root, &["slurm", "p.toml", "--partitions", "2"]);
    let d = root.join("out/big run-slurm");
    let fake = dir.path().join("bin");
    std::fs::create_dir(&fake).unwrap();
    let sbatch = fake.join("sbatch");
    std::fs::write(
        &sbatch,
        "#!/bin/bash
printf '%s\n' \"$@\" >> \"$SBATCH_ARGS\"\necho 41\n",
    )
    .unwrap();
    std::fs::set_permissions(&sbatch, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let args_file = dir.path().join("sbatch-args");
    let path = format!("{}:{}", fake.display(), std::env::var("PATH").unwrap());
    let o = std::process::Command::new(d.join("submit.sh"))
        .current_dir(dir.path())
        .env("PATH", &path)
        .env("SBATCH_ARGS", &args_file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let abs = std::path::absolute(&root).unwrap();
    let logs = d.join("logs");
    let got = std::fs::read_to_string(&args_file).unwrap();
    let want = [
        "--parsable".to_string(),
        format!("--chdir={}", abs.display()),
        format!("--output={}/task-%a.log", logs.display()),
        "array.sbatch".into(),
        "--parsable".into(),
        format!("--chdir={}", abs.display()),
        format!("--output={}/merge.log", logs.display()),
        "--dependency=afterok:41".into(),
        "--kill-on-invalid-dep=yes".into(),
        "merge.sbatch".into(),
    ];
    assert_eq!(got.lines().collect::<Vec<_>>(), want, "{got}");
    assert!(logs.is_dir());
    // The array task runs where the pipeline is, from anywhere.
    let o = std::process::Command::new("bash")
        .arg(d.join("array.sbatch"))
        .current_dir(dir.path())
        .env("SLURM_ARRAY_TASK_ID", "0")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .env("SLURM_CPUS_PER_TASK", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(root
        .join("out/big run/.seispipe/journal-0-of-2.jsonl")
        .is_file());
    for place in [dir.path(), &root, &d] {
        assert!(
            !place.join("PWNED").exists(),
            "{} holds PWNED",
            place.display()
        );
    }
}

/// The same awkward names through `seispipe k8s`: every argument reaches
/// the container as written (JSON-quoted for YAML, `$` doubled against
/// Kubernetes' `$(VAR)` expansion).
#[test]
fn k8s_commands_carry_any_path_as_written() {
    let dir = tempdir();
    let root = dir.path();
    setup(root);
    let pipeline = "p 'q' $(touch PWNED).toml";
    let text_ = std::fs::read_to_string(root.join("p.toml"))
        .unwrap()
        .replace("out/big run", "out/it's $(x)\\n\\\"y");
    std::fs::write(root.join(pipeline), text_).unwrap();
    let out = "out/it's $(x)\n\"y";
    run_ok(
        root,
        &[
            "k8s",
            pipeline,
            "--partitions",
            "2",
            "--image",
            "i",
            "--volume-claim",
            "c",
        ],
    );
    let d = root.join(format!("{out}-k8s"));
    let command = |file: &str| -> Vec<String> {
        let yaml = std::fs::read_to_string(d.join(file)).unwrap();
        let line = yaml
            .lines()
            .find_map(|l| l.trim().strip_prefix("command: "))
            .unwrap_or_else(|| panic!("no command in {file}:\n{yaml}"));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{file}: {e}: {line}"))
    };
    let dollar = |s: &str| s.replace('$', "$$");
    assert_eq!(
        command("job.yaml")[..3],
        ["seispipe", "run", &dollar(pipeline)]
    );
    assert_eq!(
        command("merge-job.yaml"),
        ["seispipe", "merge", &dollar(out)]
    );
    let job = std::fs::read_to_string(d.join("job.yaml")).unwrap();
    assert!(
        job.lines()
            .all(|l| l.is_empty() || l.starts_with(['#', ' ']) || l.contains(':')),
        "a path broke a line of the YAML:\n{job}"
    );
    assert!(!root.join("PWNED").exists());
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
