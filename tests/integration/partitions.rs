//! Partitioned runs: every partitioning merged equals the single run byte for
//! byte; partitions run at once; unfinished or damaged partitions are named
//! by `merge`; locks, fingerprints, engine variables and the disk budget.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use seispipe::io::npy::DType;

use crate::util::{bin, files_below, run_ok, seispipe, tempdir, text, write_train_pair};

/// 8 input samples × (original + 1 copy) = 16 outputs, 3 to a shard: 6 shards.
fn setup() -> tempfile::TempDir {
    let dir = tempdir();
    let root = dir.path();
    write_train_pair(&root.join("in"), "FlatVel_A", 1, 5, DType::F32, 11);
    write_train_pair(&root.join("in"), "CurveFault_A", 1, 3, DType::F32, 12);
    std::fs::write(
        root.join("p.toml"),
        "seed = 7\ncopies = 1\n[input]\npath = \"in\"\n[output]\ndir = \"out\"\nsamples_per_shard = 3\n\
         [[stages]]\ntype = \"flip\"\np = 0.5\n[[stages]]\ntype = \"gaussian_noise\"\nsnr_db = 12.0\n",
    )
    .unwrap();
    dir
}

/// Every file of an output (its state directory and report.html — which
/// shows run times — excluded) with its bytes.
fn snapshot(out: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_below(out)
        .into_iter()
        .filter(|p| !p.starts_with(out.join(".seispipe")) && !p.ends_with("report.html"))
        .map(|p| {
            (
                p.strip_prefix(out).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// The single-process run of the pipeline, moved to `single/`.
fn single_run(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    run_ok(root, &["run", "p.toml", "--quiet", "--threads", "2"]);
    std::fs::rename(root.join("out"), root.join("single")).unwrap();
    let s = snapshot(&root.join("single"));
    assert!(s.contains_key(Path::new("manifest.json")));
    assert_eq!(s.keys().filter(|p| p.starts_with("data")).count(), 6);
    s
}

fn part(root: &Path, p: &str) -> Output {
    seispipe(
        root,
        &[
            "run",
            "p.toml",
            "--quiet",
            "--threads",
            "1",
            "--partition",
            p,
        ],
    )
}

fn assert_same(single: &BTreeMap<PathBuf, Vec<u8>>, out: &Path, what: &str) {
    let merged = snapshot(out);
    assert_eq!(
        merged.keys().collect::<Vec<_>>(),
        single.keys().collect::<Vec<_>>(),
        "{what}: the same files"
    );
    for (k, v) in single {
        if k.extension().is_some_and(|x| x == "json") && merged[k] != *v {
            let (a, b) = (
                String::from_utf8_lossy(v),
                String::from_utf8_lossy(&merged[k]),
            );
            let first = a.lines().zip(b.lines()).find(|(x, y)| x != y);
            panic!(
                "{what}: {} differs from the single run: {first:?}",
                k.display()
            );
        }
        assert!(
            merged[k] == *v,
            "{what}: {} differs from the single run",
            k.display()
        );
    }
}

#[test]
fn every_partitioning_merged_equals_the_single_run() {
    let dir = setup();
    let root = dir.path();
    let single = single_run(root);
    for n in [1usize, 2, 3, 7, 9] {
        for i in 0..n {
            let o = part(root, &format!("{i}/{n}"));
            assert!(o.status.success(), "{i}/{n}: {}", text(&o));
            if n > 6 && i * 6 / n == (i + 1) * 6 / n {
                // More partitions than shards: nothing to do, and `check` says so.
                let c = run_ok(
                    root,
                    &["check", "p.toml", "--partition", &format!("{i}/{n}")],
                );
                assert!(
                    String::from_utf8_lossy(&c.stdout).contains("no shards"),
                    "{}",
                    text(&c)
                );
            }
        }
        if n > 1 {
            // Partitions leave the manifest to merge.
            assert!(!root.join("out/manifest.json").exists(), "{n} partitions");
        }
        let m = run_ok(root, &["merge", "out"]);
        assert!(
            String::from_utf8_lossy(&m.stderr).contains("16 samples out"),
            "{}",
            text(&m)
        );
        assert_same(&single, &root.join("out"), &format!("{n} partitions"));
        run_ok(root, &["verify", "out"]);
        std::fs::remove_dir_all(root.join("out")).unwrap();
    }
}

#[test]
fn partitions_run_at_the_same_time_into_one_output() {
    let dir = setup();
    let root = dir.path();
    let single = single_run(root);
    let children: Vec<_> = (0..3)
        .map(|i| {
            bin()
                .current_dir(root)
                .args(["run", "p.toml", "--quiet", "--threads", "1", "--partition"])
                .arg(format!("{i}/3"))
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", text(&o));
    }
    run_ok(root, &["merge", "out"]);
    assert_same(&single, &root.join("out"), "3 concurrent partitions");
    // The run log has one line per process, hosts and times outside the manifest.
    let log = std::fs::read_to_string(root.join("out/.seispipe/run-log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 3);
    let manifest = std::fs::read_to_string(root.join("out/manifest.json")).unwrap();
    assert!(!manifest.contains("\"host\""));
}

#[test]
fn merge_names_unfinished_and_damaged_partitions_and_writes_nothing() {
    let dir = setup();
    let root = dir.path();
    let single = single_run(root);
    assert!(part(root, "0/3").status.success());
    assert!(part(root, "2/3").status.success());
    let m = seispipe(root, &["merge", "out"]);
    assert_eq!(m.status.code(), Some(2), "{}", text(&m));
    let err = String::from_utf8_lossy(&m.stderr);
    assert!(err.contains("2 of 6 shards are missing"), "{err}");
    assert!(
        err.contains("partition 1/3 lacks 2 of its shards 3–4 (first: shard 3; never started)"),
        "{err}"
    );
    assert!(!root.join("out/manifest.json").exists());
    // A shard truncated after its partition finished: its partition is named.
    assert!(part(root, "1/3").status.success());
    let d1 = root.join("out/data/data1.npy");
    let len = std::fs::metadata(&d1).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&d1)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let m = seispipe(root, &["merge", "out"]);
    let err = String::from_utf8_lossy(&m.stderr);
    assert!(
        err.contains("partition 0/3 lacks 1 of its shards 1–2 (first: shard 1)"),
        "{err}"
    );
    assert!(!root.join("out/manifest.json").exists());
    // Rerunning that partition redoes the shard; the merge is then identical.
    assert!(part(root, "0/3").status.success());
    run_ok(root, &["merge", "out"]);
    assert_same(&single, &root.join("out"), "after redoing a damaged shard");
}

#[test]
fn a_partition_of_another_pipeline_or_a_held_partition_is_refused() {
    let dir = setup();
    let root = dir.path();
    assert!(part(root, "0/2").status.success());
    let o = seispipe(
        root,
        &[
            "run",
            "p.toml",
            "--quiet",
            "--partition",
            "1/2",
            "--set",
            "seed=8",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("seed: was 7, now 8"),
        "{}",
        text(&o)
    );
    // A live process holding partition 1/2 (this test, through the same lock).
    let lock = seispipe::io::lock::try_lock(&root.join("out/.seispipe/locks/1-of-2.lock"))
        .unwrap()
        .acquired()
        .expect("free");
    let o = part(root, "1/2");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "partition 1/2 is already being written by {}",
            seispipe::io::lock::holder()
        )),
        "{err}"
    );
    // Overlapping shards under another count are refused too, naming the holder.
    let o = part(root, "2/3");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("shares shards"),
        "{}",
        text(&o)
    );
    // Merging while it runs is refused.
    let m = seispipe(root, &["merge", "out"]);
    assert!(
        String::from_utf8_lossy(&m.stderr).contains("still running: partition 1/2"),
        "{}",
        text(&m)
    );
    drop(lock);
    assert!(part(root, "1/2").status.success());
    run_ok(root, &["merge", "out"]);
}

#[test]
fn partitions_come_from_flags_or_the_engine_and_bad_ones_are_refused() {
    let dir = setup();
    let root = dir.path();
    for (bad, says) in [
        ("4/4", "numbered 0 to 3"),
        ("0/0", "at least 1"),
        ("two/4", "is not a partition"),
    ] {
        let o = seispipe(root, &["check", "p.toml", "--partition", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(says),
            "{bad}: {}",
            text(&o)
        );
    }
    let o = run_ok(root, &["check", "p.toml", "--partition", "1/3"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("partition 1/3: shards 3–4 of 6, 6 samples"),
        "{}",
        text(&o)
    );
    let slurm = |cmd: &[&str]| {
        bin()
            .current_dir(root)
            .args(cmd)
            .env("SLURM_ARRAY_TASK_ID", "11")
            .env("SLURM_ARRAY_TASK_MIN", "10")
            .env("SLURM_ARRAY_TASK_COUNT", "3")
            .output()
            .unwrap()
    };
    let o = slurm(&["check", "p.toml"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("partition 1/3: shards 3–4"),
        "{}",
        text(&o)
    );
    let o = slurm(&["check", "p.toml", "--partitions", "4"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the Slurm array has 3 tasks"),
        "{}",
        text(&o)
    );
    let o = slurm(&["check", "p.toml", "--partition", "2/3"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("disagrees with the environment"),
        "{}",
        text(&o)
    );
    let o = bin()
        .current_dir(root)
        .args(["check", "p.toml", "--partitions", "5"])
        .env("JOB_COMPLETION_INDEX", "4")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("partition 4/5: shards 5–6"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_run_that_cannot_fit_is_refused_and_a_full_disk_stops_it_resumably() {
    let dir = setup();
    let root = dir.path();
    let single = single_run(root);
    let with_free = |free: &str, extra: &[&str]| {
        crate::util::bin_with_free_space(free)
            .current_dir(root)
            .args(["run", "p.toml", "--quiet", "--threads", "1"])
            .args(extra)
            .output()
            .unwrap()
    };
    // 1 MB free: refused before anything is written, naming both figures.
    let o = with_free("1000000", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("still to write for the whole output") && err.contains("1.0 MB free"),
        "{err}"
    );
    assert!(!root.join("out/data/data1.npy").exists());
    // Forced to start, it stops after the first shard: free space is below the reserve.
    let o = with_free("1000000", &["--allow-overfill"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("stopped after shard 1, which is kept")
            && err.contains("run the same command again"),
        "{err}"
    );
    assert!(root.join("out/data/data1.npy").exists());
    assert!(!root.join("out/data/data2.npy").exists());
    // With room again it resumes and the result is the single run's.
    run_ok(root, &["run", "p.toml", "--quiet"]);
    assert_same(&single, &root.join("out"), "after a stop for disk space");
}
