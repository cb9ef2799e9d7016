//! Kaggle packaging: caps (bytes and files, metadata included), pairs kept
//! together, metadata rules, verify of parts, idempotence, hard links, the
//! `[kaggle]` section in `check` and `run`, and every bad input of the issue.
//! Outputs are made by running the real pipeline on small fixture shards.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use seispipe::pipeline::spec::DType;
use serde_json::Value;

use crate::util::{self, seispipe, text, write_train_pair};

/// Data file bytes of a 2-sample f32 shard (128-byte header).
const DATA_SHARD: u64 = 2 * 350_000 * 4 + 128;
/// Label file bytes of a 2-sample shard.
const LABEL_SHARD: u64 = 2 * 4900 * 4 + 128;
/// 12 output samples (6 inputs, original + 1 copy), 2 per shard: 6 shards.
const SHARDS: usize = 6;

/// A pipeline file under `dir` writing `dir/out/run` from `dir/in`, with an
/// optional `[kaggle]` section.
fn pipeline(dir: &Path, kaggle: &str) -> PathBuf {
    let p = dir.join("pipe.toml");
    std::fs::write(
        &p,
        format!(
            "seed = 5\ncopies = 1\n[input]\npath = \"in\"\n[output]\ndir = \"out/run\"\nsamples_per_shard = 2\n[[stages]]\ntype = \"flip\"\np = 0.5\n{kaggle}"
        ),
    )
    .unwrap();
    p
}

/// A finished output at `dir/out/run` (6 shard pairs).
fn output(dir: &Path) -> PathBuf {
    write_train_pair(&dir.join("in"), "FlatVel_A", 1, 3, DType::F32, 1);
    write_train_pair(&dir.join("in"), "FlatVel_A", 2, 3, DType::F32, 2);
    pipeline(dir, "");
    let o = seispipe(dir, &["run", "-q", "pipe.toml"]);
    assert!(o.status.success(), "{}", text(&o));
    dir.join("out/run")
}

/// `seispipe package out/run --into kg --owner alice …` with `extra` flags
/// (a flag given in `extra` replaces the default one).
fn package(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut defaults = vec![
        ("--into", "kg"),
        ("--owner", "alice"),
        ("--slug", "fwi-test"),
        ("--title", "FWI test data"),
    ];
    defaults.retain(|(k, _)| !extra.contains(k));
    let mut args = vec!["package", "out/run"];
    for (k, v) in defaults {
        args.push(k);
        args.push(v);
    }
    args.extend_from_slice(extra);
    seispipe(dir, &args)
}

/// Part folders of a packaging, sorted.
fn parts(kg: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(kg)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// name → (bytes, inode) of every file in a folder.
fn listing(dir: &Path) -> BTreeMap<String, (u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                (m.len(), m.ino()),
            )
        })
        .collect()
}

/// Every file under a folder with its bytes (for idempotence).
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for p in crate::util::files_below(dir) {
        let rel = p.strip_prefix(dir).unwrap().display().to_string();
        out.insert(rel, std::fs::read(&p).unwrap());
    }
    out
}

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Check one packaging: limits, pairs, metadata, verify; returns shards per part.
fn check_packaging(kg: &Path, max_bytes: u64, max_files: usize) -> Vec<Vec<usize>> {
    let dirs = parts(kg);
    let n = dirs.len();
    let mut all = Vec::new();
    for (k, d) in dirs.iter().enumerate() {
        let files = listing(d);
        let bytes: u64 = files.values().map(|v| v.0).sum();
        assert!(
            bytes <= max_bytes,
            "{}: {bytes} bytes > {max_bytes}",
            d.display()
        );
        assert!(
            files.len() <= max_files,
            "{}: {} files",
            d.display(),
            files.len()
        );
        assert!(files.contains_key("dataset-metadata.json") && files.contains_key("manifest.json"));
        // Flat, and every data shard with its label shard.
        let mut shards = Vec::new();
        for name in files.keys() {
            if let Some(num) = name
                .strip_prefix("data")
                .and_then(|r| r.strip_suffix(".npy"))
            {
                assert!(
                    files.contains_key(&format!("model{num}.npy")),
                    "{name} without its labels"
                );
                shards.push(num.parse::<usize>().unwrap());
            } else if let Some(num) = name
                .strip_prefix("model")
                .and_then(|r| r.strip_suffix(".npy"))
            {
                assert!(
                    files.contains_key(&format!("data{num}.npy")),
                    "{name} without its data"
                );
            }
        }
        shards.sort_unstable();
        // Metadata follows Kaggle's rules.
        let meta = json(&d.join("dataset-metadata.json"));
        let slug = d.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(meta["id"], format!("alice/{slug}"));
        assert_eq!(slug, format!("fwi-test-part-{:03}", k + 1));
        let title = meta["title"].as_str().unwrap();
        assert_eq!(title, format!("FWI test data (part {} of {n})", k + 1));
        assert!((6..=50).contains(&title.chars().count()));
        let sub = meta["subtitle"].as_str().unwrap().chars().count();
        assert!((20..=80).contains(&sub), "subtitle of {sub} chars");
        assert_eq!(meta["licenses"].as_array().unwrap().len(), 1);
        let desc = meta["description"].as_str().unwrap();
        assert!(
            desc.contains(&format!("Part {} of {n}", k + 1))
                && desc.contains("seed 5")
                && desc.contains("flip")
                && desc.contains("samples"),
            "{desc}"
        );
        // The part manifest lists exactly this part's shards, and verify passes.
        let m = json(&d.join("manifest.json"));
        let listed: Vec<usize> = m["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["index"].as_u64().unwrap() as usize)
            .collect();
        assert_eq!(listed, shards);
        let o = seispipe(d, &["verify", "."]);
        assert!(o.status.success(), "{}", text(&o));
        all.push(shards);
    }
    let mut flat: Vec<usize> = all.iter().flatten().copied().collect();
    flat.sort_unstable();
    assert_eq!(
        flat,
        (1..=SHARDS).collect::<Vec<_>>(),
        "every shard exactly once"
    );
    // One create command per part in the upload plan, and the summary table.
    let script = std::fs::read_to_string(kg.join("upload.sh")).unwrap();
    assert_eq!(
        script.matches("\nupload fwi-test-part-").count(),
        n,
        "{script}"
    );
    assert_eq!(script.matches("# kaggle datasets create -p ").count(), n);
    assert!(script.contains("kaggle datasets version -p \"$1\" -m"));
    let plan = std::fs::read_to_string(kg.join("PLAN.md")).unwrap();
    assert!(
        plan.contains(&format!("| all | {n} parts | {SHARDS} | 12 |")),
        "{plan}"
    );
    all
}

#[test]
fn byte_cap_includes_metadata_and_keeps_pairs_together() {
    let t = util::tempdir();
    output(t.path());
    // Room for two shard pairs plus metadata, not three.
    let limit = 2 * (DATA_SHARD + LABEL_SHARD) + 60_000;
    let o = package(t.path(), &["--max-dataset-bytes", &limit.to_string()]);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("3 parts") && stdout.contains("upload.sh"),
        "{stdout}"
    );
    let per_part = check_packaging(&t.path().join("kg"), limit, 1000);
    assert_eq!(
        per_part,
        vec![vec![1, 2], vec![3, 4], vec![5, 6]],
        "shard order kept"
    );
    // ⌈total/limit⌉ + 1 with total the bytes of all part folders.
    let total: u64 = parts(&t.path().join("kg"))
        .iter()
        .flat_map(|d| listing(d).into_values())
        .map(|v| v.0)
        .sum();
    assert!(per_part.len() as u64 <= total.div_ceil(limit) + 1);
}

#[test]
fn file_cap_counts_metadata_and_manifest() {
    let t = util::tempdir();
    output(t.path());
    // 5 files: metadata + manifest + one pair (a second pair would make 6).
    let o = package(t.path(), &["--max-files", "5"]);
    assert!(o.status.success(), "{}", text(&o));
    let per_part = check_packaging(&t.path().join("kg"), u64::MAX, 5);
    assert_eq!(per_part.len(), SHARDS);
    // A cap that leaves no room for a pair is refused, naming the limit.
    let o = package(t.path(), &["--into", "kg3", "--max-files", "3"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("max_files 3"), "{}", text(&o));
    assert!(!t.path().join("kg3").exists());
}

#[test]
fn hard_links_by_default_copies_and_moves_on_request() {
    let t = util::tempdir();
    let out = output(t.path());
    let src = listing(&out.join("data"));
    let o = package(t.path(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let part = &parts(&t.path().join("kg"))[0];
    assert_eq!(
        parts(&t.path().join("kg")).len(),
        1,
        "default 100 GB cap: one part"
    );
    let linked = listing(part);
    for (name, (bytes, ino)) in &src {
        assert_eq!(
            linked[name],
            (*bytes, *ino),
            "{name} is a hard link (same inode)"
        );
    }
    // --copy: same bytes, other inodes.
    let o = package(t.path(), &["--into", "kg-copy", "--copy"]);
    assert!(o.status.success(), "{}", text(&o));
    let copied = listing(&parts(&t.path().join("kg-copy"))[0]);
    for (name, (bytes, ino)) in &src {
        assert_eq!(copied[name].0, *bytes);
        assert_ne!(copied[name].1, *ino, "{name} is a copy");
    }
    // --move: the output's shard files are gone, the parts hold them.
    let o = package(t.path(), &["--into", "kg-move", "--move"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!out.join("data/data1.npy").exists() && !out.join("model/model6.npy").exists());
    let o = seispipe(&parts(&t.path().join("kg-move"))[0], &["verify", "."]);
    assert!(o.status.success(), "{}", text(&o));
    // Packaging again after the move is still a no-op.
    let o = package(t.path(), &["--into", "kg-move", "--move"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("already packaged"));
}

#[test]
fn packaging_twice_is_idempotent_and_a_different_packaging_is_refused() {
    let t = util::tempdir();
    output(t.path());
    let limit = (3 * (DATA_SHARD + LABEL_SHARD) + 60_000).to_string();
    let o = package(t.path(), &["--max-dataset-bytes", &limit]);
    assert!(o.status.success(), "{}", text(&o));
    let kg = t.path().join("kg");
    let before = tree(&kg);
    let o = package(t.path(), &["--max-dataset-bytes", &limit]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("already packaged"),
        "{}",
        text(&o)
    );
    assert_eq!(tree(&kg), before);
    // Other settings into the same folder: refused, nothing changed.
    let o = package(
        t.path(),
        &["--max-dataset-bytes", &limit, "--title", "Other title"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("already holds a different packaging"),
        "{}",
        text(&o)
    );
    assert_eq!(tree(&kg), before);
    // A folder holding unrelated files is refused too.
    std::fs::create_dir(t.path().join("busy")).unwrap();
    std::fs::write(t.path().join("busy/notes.txt"), "mine").unwrap();
    let o = package(t.path(), &["--into", "busy"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("not a seispipe packaging"),
        "{}",
        text(&o)
    );
    // No staging folder is left behind by any of this.
    let hidden: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn verify_of_a_part_detects_flipped_byte_missing_and_extra_files() {
    let t = util::tempdir();
    output(t.path());
    let limit = (3 * (DATA_SHARD + LABEL_SHARD) + 60_000).to_string();
    let o = package(t.path(), &["--max-dataset-bytes", &limit]);
    assert!(o.status.success(), "{}", text(&o));
    let part = parts(&t.path().join("kg"))[1].clone();
    // Work on copies: the parts are hard links to the output.
    let dl = t.path().join("download");
    copy_dir(&part, &dl);
    // Kaggle does not serve dataset-metadata.json back: still clean without it.
    std::fs::remove_file(dl.join("dataset-metadata.json")).unwrap();
    let o = seispipe(t.path(), &["verify", "download"]);
    assert!(o.status.success(), "{}", text(&o));

    let mut bytes = std::fs::read(dl.join("data5.npy")).unwrap();
    bytes[1000] ^= 0x01;
    std::fs::write(dl.join("data5.npy"), bytes).unwrap();
    let o = seispipe(t.path(), &["verify", "download"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("corrupt: data5.npy"),
        "{}",
        text(&o)
    );

    copy_dir(&part, &dl);
    std::fs::remove_file(dl.join("model4.npy")).unwrap();
    let o = seispipe(t.path(), &["verify", "download"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("missing: model4.npy"),
        "{}",
        text(&o)
    );

    copy_dir(&part, &dl);
    std::fs::write(dl.join("notes.txt"), "x").unwrap();
    let o = seispipe(t.path(), &["verify", "download"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("extra: notes.txt"),
        "{}",
        text(&o)
    );
}

/// Run `package` with bad settings: the message names the problem and nothing is written.
fn refused(dir: &Path, args: &[&str], code: i32, needles: &[&str]) {
    let mut all = vec!["package", "out/run", "--into", "bad"];
    all.extend_from_slice(args);
    let o = seispipe(dir, &all);
    assert_eq!(o.status.code(), Some(code), "{}", text(&o));
    let msg = String::from_utf8_lossy(&o.stderr);
    for n in needles {
        assert!(msg.contains(n), "expected `{n}` in: {msg}");
    }
    assert!(!dir.join("bad").exists() && !dir.join(".bad.partial").exists());
}

#[test]
fn bad_metadata_and_limits_are_refused_before_anything_is_written() {
    let t = util::tempdir();
    let d = t.path();
    output(d);
    let ok = [
        "--owner",
        "alice",
        "--slug",
        "fwi-test",
        "--title",
        "FWI test data",
    ];
    let with = |over: &[(&str, &str)]| -> Vec<String> {
        let mut v: Vec<String> = ok.iter().map(|s| (*s).to_string()).collect();
        for (k, val) in over {
            let i = v.iter().position(|x| x == k).unwrap();
            v[i + 1] = (*val).to_string();
        }
        v
    };
    let run = |over: &[(&str, &str)], extra: &[&str], code: i32, needles: &[&str]| {
        let v = with(over);
        let mut args: Vec<&str> = v.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        refused(d, &args, code, needles);
    };
    let long = "T".repeat(40);
    run(
        &[("--title", &long)],
        &[],
        2,
        &["title", "54 characters", "6–50"],
    );
    run(&[("--title", "")], &[], 2, &["title", "empty"]);
    let long_slug = "a".repeat(45);
    run(
        &[("--slug", &long_slug)],
        &[],
        2,
        &["slug", "54 characters", "6–50"],
    );
    run(&[("--slug", "")], &[], 2, &["slug must not be empty"]);
    run(
        &[("--slug", "FWI-Test")],
        &[],
        2,
        &["uppercase `F`", "lowercase letters, digits and hyphens"],
    );
    run(&[("--slug", "fwi test")], &[], 2, &["space"]);
    run(
        &[],
        &["--license", "CC0-1.0", "--license", "CC-BY-4.0"],
        2,
        &["exactly one license", "found 2"],
    );
    run(&[], &["--subtitle", "too short"], 2, &["subtitle", "20–80"]);
    run(
        &[],
        &["--max-dataset-bytes", "1MB"],
        2,
        &[
            "shard 1",
            "does not fit in one part",
            "max_dataset_bytes 1000000",
        ],
    );
    run(
        &[],
        &["--max-dataset-bytes", "12 parsecs"],
        2,
        &["max_dataset_bytes", "unit"],
    );
    run(&[("--owner", "a/b")], &[], 2, &["owner"]);
    // Zero licenses can only come from a pipeline file's [kaggle] section.
    pipeline(d, "[kaggle]\nowner = \"alice\"\nslug = \"fwi-test\"\ntitle = \"FWI test data\"\nlicense = []\n");
    let o = seispipe(d, &["check", "pipe.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("found none"), "{}", text(&o));
    // The target inside the output is refused.
    let v = with(&[]);
    let mut args: Vec<&str> = vec!["package", "out/run", "--into", "out/run/kg"];
    args.extend(v.iter().map(String::as_str));
    let o = seispipe(d, &args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("outside the output"), "{}", text(&o));
}

#[test]
fn outputs_without_manifest_or_with_damaged_files_are_refused() {
    let t = util::tempdir();
    let d = t.path();
    let out = output(d);
    let args = [
        "--owner",
        "alice",
        "--slug",
        "fwi-test",
        "--title",
        "FWI test data",
    ];
    // A flipped byte: found by the default re-hash, nothing packaged.
    let p = out.join("data/data3.npy");
    let good = std::fs::read(&p).unwrap();
    let mut bad = good.clone();
    bad[5000] ^= 0x40;
    std::fs::write(&p, &bad).unwrap();
    refused(
        d,
        &args,
        3,
        &["does not match its manifest", "data3.npy", "sha256"],
    );
    std::fs::write(&p, &good).unwrap();
    // A missing label file.
    std::fs::rename(out.join("model/model2.npy"), d.join("aside.npy")).unwrap();
    refused(d, &args, 3, &["model2.npy is missing"]);
    std::fs::rename(d.join("aside.npy"), out.join("model/model2.npy")).unwrap();
    // No manifest (an unfinished run).
    std::fs::rename(out.join("manifest.json"), d.join("manifest.aside")).unwrap();
    refused(
        d,
        &args,
        3,
        &[
            "no readable manifest.json",
            "not a finished seispipe output",
        ],
    );
    std::fs::rename(d.join("manifest.aside"), out.join("manifest.json")).unwrap();
    // And with everything restored it packages.
    let mut all = vec!["package", "out/run", "--into", "good"];
    all.extend_from_slice(&args);
    let o = seispipe(d, &all);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn pipeline_section_is_predicted_by_check_and_packages_the_run() {
    let t = util::tempdir();
    let d = t.path();
    write_train_pair(&d.join("in"), "FlatVel_A", 1, 3, DType::F32, 1);
    write_train_pair(&d.join("in"), "FlatVel_A", 2, 3, DType::F32, 2);
    let limit = 2 * (DATA_SHARD + LABEL_SHARD) + 60_000;
    let section = format!(
        "[kaggle]\ninto = \"kg\"\nowner = \"alice\"\nslug = \"fwi-test\"\ntitle = \"FWI test data\"\nlicense = \"CC0-1.0\"\nmax_dataset_bytes = {limit}\n"
    );
    // A slug Kaggle would refuse stops `run` before any output exists.
    pipeline(d, &section.replace("fwi-test", "FWI Test"));
    let o = seispipe(d, &["run", "-q", "pipe.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("uppercase `F`"), "{}", text(&o));
    assert!(!d.join("out/run").exists() && !d.join("kg").exists());

    pipeline(d, &format!("{section}mode = \"move\"\n"));
    let o = seispipe(d, &["check", "pipe.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("after_run"), "{}", text(&o));

    pipeline(d, &section);
    let o = seispipe(d, &["check", "pipe.toml"]);
    assert!(o.status.success(), "{}", text(&o));
    let check = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(check.contains("kaggle: about 3 parts"), "{check}");
    assert!(
        check.contains("part 2: shards 3–4, 4 samples, 8 files"),
        "{check}"
    );
    let o = seispipe(d, &["run", "-q", "pipe.toml"]);
    assert!(o.status.success(), "{}", text(&o));
    let per_part = check_packaging(&d.join("kg"), limit, 1000);
    assert_eq!(per_part, vec![vec![1, 2], vec![3, 4], vec![5, 6]]);
    // Rerunning the finished pipeline finds the same packaging: no error.
    let o = seispipe(d, &["run", "pipe.toml"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("already packaged"), "{}", text(&o));
    // `seispipe package OUT` alone takes its settings from the output's manifest.
    let o = seispipe(d, &["package", "out/run", "--into", "kg", "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    // Another title in [kaggle]: the output is reused, the packaging is refused
    // with a message saying the data are complete.
    pipeline(d, &section.replace("FWI test data", "FWI other data"));
    let o = seispipe(d, &["run", "-q", "pipe.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let msg = text(&o);
    assert!(
        msg.contains("the run finished") && msg.contains("already holds a different packaging"),
        "{msg}"
    );
}

/// `--wheel`: the seispipe wheel goes beside the parts as a dataset of its
/// own (`SLUG-wheel`, with its metadata, in upload.sh and PLAN.md), is part
/// of the packaging's identity, and a file not named like a seispipe wheel
/// is refused before anything is written.
#[test]
fn a_wheel_is_packaged_as_a_dataset_of_its_own() {
    let t = util::tempdir();
    let d = t.path();
    output(d);
    let name = "seispipe-0.1.0-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl";
    let wheel = d.join(name);
    std::fs::write(&wheel, b"PK\x03\x04 a wheel's bytes").unwrap();
    let other = d.join("numpy-2.0.0-cp311-cp311-linux_x86_64.whl");
    std::fs::write(&other, b"PK").unwrap();
    let o = package(d, &["--wheel", other.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is not a seispipe wheel"), "{}", text(&o));
    assert!(!d.join("kg").exists());

    let o = package(d, &["--wheel", wheel.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("wheel: {name} as the dataset fwi-test-wheel")),
        "{}",
        text(&o)
    );
    let kg = d.join("kg");
    let wdir = kg.join("fwi-test-wheel");
    assert_eq!(
        std::fs::read(wdir.join(name)).unwrap(),
        std::fs::read(&wheel).unwrap()
    );
    let meta = json(&wdir.join("dataset-metadata.json"));
    assert_eq!(meta["id"], "alice/fwi-test-wheel");
    assert_eq!(meta["title"], "FWI test data (seispipe)");
    assert_eq!(meta["licenses"][0]["name"], "CC0-1.0");
    let sub = meta["subtitle"].as_str().unwrap().chars().count();
    assert!((20..=80).contains(&sub), "{meta}");
    let upload = std::fs::read_to_string(kg.join("upload.sh")).unwrap();
    assert!(upload.contains("upload fwi-test-wheel"), "{upload}");
    let plan = std::fs::read_to_string(kg.join("PLAN.md")).unwrap();
    assert!(
        plan.contains(&format!("pip install /kaggle/input/fwi-test-wheel/{name}")),
        "{plan}"
    );
    // The parts are those of a packaging without the wheel, and verify.
    for part in parts(&kg).iter().filter(|p| !p.ends_with("fwi-test-wheel")) {
        let o = seispipe(d, &["verify", part.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
    }
    // Again: a no-op. Another wheel into the same folder: another packaging.
    let before = tree(&kg);
    let o = package(d, &["--wheel", wheel.to_str().unwrap()]);
    assert!(text(&o).contains("already packaged"), "{}", text(&o));
    assert_eq!(tree(&kg), before);
    std::fs::write(&wheel, b"PK\x03\x04 another build").unwrap();
    let o = package(d, &["--wheel", wheel.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("already holds a different packaging"),
        "{}",
        text(&o)
    );
    assert_eq!(tree(&kg), before);
}
