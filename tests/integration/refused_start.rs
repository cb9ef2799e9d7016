//! A refused start leaves nothing behind: every check that can refuse a run
//! (disk budget, locks, fingerprint and versions, a bad pipeline, a bad
//! partition, a foreign directory) runs before anything is created in the
//! output directory, and the disk message names the real shortfall.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use seispipe::io::npy::DType;

use crate::util::{bin, run_ok, tempdir, text, write_train_pair};

const PIPELINE: &str = "seed = 7\ncopies = 1\n[input]\npath = \"in\"\n[output]\ndir = \"out\"\n\
     samples_per_shard = 3\n[[stages]]\ntype = \"flip\"\np = 0.5\n";

/// 4 input samples × (original + 1 copy) = 8 outputs, 3 to a shard.
fn setup() -> tempfile::TempDir {
    let dir = tempdir();
    write_train_pair(&dir.path().join("in"), "FlatVel_A", 1, 4, DType::F32, 3);
    std::fs::write(dir.path().join("p.toml"), PIPELINE).unwrap();
    dir
}

/// Bytes as seispipe's messages print them (SI units, one decimal).
fn human_bytes(b: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let (mut v, mut u) = (b as f64, 0);
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Every path below `root` — directories included, so an empty directory
/// left behind shows — with the bytes of each file.
fn tree(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if p.is_dir() {
                out.insert(rel, None);
                stack.push(p);
            } else {
                out.insert(rel, Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn run_in(root: &Path, args: &[&str], free: Option<&str>) -> Output {
    let mut c = match free {
        Some(free) => crate::util::bin_with_free_space(free),
        None => bin(),
    };
    c.current_dir(root).args(["run", "--quiet"]).args(args);
    c.output().unwrap()
}

/// Run `args` on the output as it is, expect refusal (exit 2) with `says`
/// in the message, and the whole tree under `root` unchanged.
fn refused_leaves_tree(root: &Path, args: &[&str], free: Option<&str>, says: &str) {
    let before = tree(root);
    let o = run_in(root, args, free);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(says), "{args:?}: expected {says:?} in\n{err}");
    let after = tree(root);
    let added: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let removed: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "{args:?} changed the tree: added {added:?}, removed {removed:?}"
    );
    assert!(before == after, "{args:?} changed a file's bytes");
}

/// The refusals that can meet an absent or an empty output directory.
#[test]
fn refusals_on_an_absent_or_empty_output_leave_it_so() {
    let dir = setup();
    let root = dir.path();
    std::fs::write(
        root.join("bad_stage.toml"),
        PIPELINE.replace("p = 0.5", "p = 2.0"),
    )
    .unwrap();
    std::fs::write(
        root.join("bad_key.toml"),
        PIPELINE.replace("p = 0.5", "p = 0.5\nresimulate_channels = \"middle\""),
    )
    .unwrap();
    let cases: [(&[&str], Option<&str>, &str); 4] = [
        (&["p.toml"], Some("1000"), "does not have room"),
        (&["bad_stage.toml"], None, "stages[0]"),
        (&["bad_key.toml"], None, "exact"),
        (&["p.toml", "--partition", "2/2"], None, "does not exist"),
    ];
    for (args, free, says) in cases {
        // Absent.
        assert!(!root.join("out").exists());
        refused_leaves_tree(root, args, free, says);
        assert!(!root.join("out").exists(), "{args:?} created out/");
        // Empty.
        std::fs::create_dir(root.join("out")).unwrap();
        refused_leaves_tree(root, args, free, says);
        std::fs::remove_dir(root.join("out")).unwrap();
    }
    // A directory holding someone else's files.
    std::fs::create_dir(root.join("out")).unwrap();
    std::fs::write(root.join("out/notes.txt"), "mine").unwrap();
    refused_leaves_tree(root, &["p.toml"], None, "holds no seispipe run");
}

/// The user's story: refused for room, then the smaller run they choose
/// starts — the refused one bound the output to nothing.
#[test]
fn a_run_refused_for_room_binds_the_output_to_nothing() {
    let dir = setup();
    let root = dir.path();
    refused_leaves_tree(root, &["p.toml"], Some("1000"), "does not have room");
    run_ok(
        root,
        &[
            "run",
            "--quiet",
            "p.toml",
            "--set",
            "copies=2",
            "--disk-reserve",
            "0",
        ],
    );
    assert!(root.join("out/manifest.json").is_file());
}

/// The disk message states bytes to write + reserve − free, here with the
/// reserve larger than the free space.
#[test]
fn the_disk_message_gives_the_real_shortfall() {
    let dir = setup();
    let root = dir.path();
    // What the run writes: its data and label files (8 samples).
    run_ok(root, &["run", "--quiet", "p.toml", "--disk-reserve", "0"]);
    let need: u64 = ["data", "model"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join("out").join(d)).unwrap())
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    std::fs::remove_dir_all(root.join("out")).unwrap();
    let (free, reserve) = (1_000_000_000_u64, 2_000_000_000_u64);
    let o = run_in(
        root,
        &["p.toml", "--disk-reserve", &reserve.to_string()],
        Some(&free.to_string()),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let shortfall = human_bytes(need + reserve - free);
    assert!(
        err.contains(&format!("{} still to write", human_bytes(need)))
            && err.contains(&format!("free {shortfall} ("))
            && err.contains("lower --disk-reserve")
            && err.contains("--allow-overfill"),
        "expected a shortfall of {shortfall} ({need} B to write) in\n{err}"
    );
    assert!(!root.join("out").exists());
}

/// The refusals that need an existing output: another pipeline's run and a
/// live process holding overlapping shards. The output stays byte for byte.
#[test]
fn refusals_on_an_existing_output_change_nothing() {
    let dir = setup();
    let root = dir.path();
    run_ok(root, &["run", "--quiet", "p.toml", "--partition", "0/2"]);
    refused_leaves_tree(
        root,
        &["p.toml", "--partition", "1/2", "--set", "copies=2"],
        None,
        "different pipeline",
    );
    // Partition 1/2 (0-based) held by a live process (this one): the whole
    // run and 1/2 itself are refused, naming the holder.
    let locks = root.join("out/.seispipe/locks");
    let held = seispipe::io::lock::try_lock(&locks.join("1-of-2.lock"))
        .unwrap()
        .acquired()
        .expect("the lock is free");
    refused_leaves_tree(root, &["p.toml"], None, "is being written by");
    refused_leaves_tree(
        root,
        &["p.toml", "--partition", "1/2"],
        None,
        "already being written by",
    );
    drop(held);
    run_ok(root, &["run", "--quiet", "p.toml", "--partition", "1/2"]);
    run_ok(root, &["merge", "out"]);
}

/// A shard's provenance file is written before its data and label files and
/// the shard is journalled after all three: a failure in between leaves a
/// provenance file no journal lists. `verify` on the unfinished output names
/// it, the resume rewrites it, and the finished output verifies clean.
#[test]
fn verify_on_an_unfinished_output_names_leftovers() {
    let dir = setup();
    let root = dir.path();
    // Stopped for disk space after its first shard.
    let o = run_in(root, &["p.toml", "--allow-overfill"], Some("1000"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(root.join("out/provenance/prov1.jsonl").is_file());
    // What a failed data write of shard 2 leaves.
    std::fs::write(root.join("out/provenance/prov2.jsonl"), "{}\n").unwrap();
    let o = bin()
        .current_dir(root)
        .args(["verify", "out"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        out.contains("leftover: provenance/prov2.jsonl")
            && out.contains("unfinished (no manifest.json yet): 1 shards journalled, 3 files intact, 0 missing, 0 corrupt, 1 leftover"),
        "{out}"
    );
    // A damaged journalled shard is named too.
    let data1 = root.join("out/data/data1.npy");
    let mut bytes = std::fs::read(&data1).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&data1, &bytes).unwrap();
    let o = bin()
        .current_dir(root)
        .args(["verify", "out"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("corrupt: data/data1.npy (sha256 "), "{out}");
    bytes[last] ^= 1;
    std::fs::write(&data1, &bytes).unwrap();
    run_ok(root, &["run", "--quiet", "p.toml", "--disk-reserve", "0"]);
    run_ok(root, &["verify", "out"]);
}
