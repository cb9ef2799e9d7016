//! Kaggle parts (and seispipe outputs) as pipeline input: a pipeline over
//! the parts of a packaged output writes the bytes it writes over the output
//! itself, with provenance naming the original samples; both manifest forms
//! of provenance are read; parts given twice or from different outputs, and
//! manifests that disagree with their files, are refused with the file named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use seispipe::pipeline::spec::DType;
use serde_json::Value;

use crate::util::{self, read_npy, run_ok, seispipe, text, write_npy, write_train_pair};

/// Data file bytes of a 2-sample f32 shard (128-byte header) and its labels.
const PAIR_BYTES: u64 = 2 * 350_000 * 4 + 128 + 2 * 4900 * 4 + 128;
/// Values of one (5, 1000, 70) sample.
const PER: usize = 350_000;

fn json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// `dir/out/run` (6 inputs, original + 1 flipped copy, 2 samples a shard: 6
/// shards) packaged into 3 parts `dir/kg/fwi-test-part-00{1,2,3}`.
fn packaged(dir: &Path) {
    write_train_pair(&dir.join("in"), "FlatVel_A", 1, 3, DType::F32, 1);
    write_train_pair(&dir.join("in"), "CurveVel_A", 1, 3, DType::F32, 2);
    std::fs::write(
        dir.join("make.toml"),
        "seed = 5\ncopies = 1\n[input]\npath = \"in\"\n[output]\ndir = \"out/run\"\nsamples_per_shard = 2\n[[stages]]\ntype = \"flip\"\np = 0.5\n",
    )
    .unwrap();
    run_ok(dir, &["run", "-q", "make.toml"]);
    let cap = (2 * PAIR_BYTES + 60_000).to_string();
    run_ok(
        dir,
        &[
            "package",
            "out/run",
            "--into",
            "kg",
            "--owner",
            "alice",
            "--slug",
            "fwi-test",
            "--title",
            "FWI test data",
            "--max-dataset-bytes",
            &cap,
        ],
    );
    std::fs::write(
        dir.join("again.toml"),
        "seed = 9\ncopies = 1\n[input]\npath = \"out/run\"\n[output]\ndir = \"again\"\nsamples_per_shard = 5\n[[stages]]\ntype = \"flip\"\np = 0.5\n[[stages]]\ntype = \"gaussian_noise\"\np = 0.7\nsnr_db = 15.0\n",
    )
    .unwrap();
}

/// Run `again.toml` over `input` into `out`; returns the output folder.
fn again(dir: &Path, input: &str, out: &str) -> PathBuf {
    run_ok(
        dir,
        &[
            "run",
            "-q",
            "again.toml",
            "--set",
            &format!("input.path={input}"),
            "--set",
            &format!("output.dir={out}"),
        ],
    );
    dir.join(out)
}

/// Every `.npy` under an output folder, by relative path, with its bytes.
fn shard_bytes(out: &Path) -> BTreeMap<String, Vec<u8>> {
    util::files_below(out)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "npy"))
        .map(|p| {
            let rel = p.strip_prefix(out).unwrap().display().to_string();
            (rel, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// A shard's provenance records: inline (`seispipe-manifest/1`) or read from
/// its provenance file (`/2`) under `dir`.
fn records(dir: &Path, shard: &Value) -> Vec<Value> {
    if let Some(a) = shard["provenance"].as_array() {
        return a.clone();
    }
    let rel = shard["provenance"]["path"]
        .as_str()
        .expect("a provenance file");
    std::fs::read_to_string(dir.join(rel))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn provenance(out: &Path) -> Vec<Value> {
    json(&out.join("manifest.json"))["shards"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| records(out, s))
        .collect()
}

/// (input file, index in it) → the sample's id in the packaged output.
fn original_ids(out: &Path) -> BTreeMap<(String, u64), String> {
    let m = json(&out.join("manifest.json"));
    let mut ids = BTreeMap::new();
    for s in m["shards"].as_array().unwrap() {
        let data = s["files"][0]["path"].as_str().unwrap().to_string();
        for (i, r) in records(out, s).iter().enumerate() {
            ids.insert(
                (data.clone(), i as u64),
                r["id"].as_str().unwrap().to_string(),
            );
        }
    }
    ids
}

#[test]
fn a_pipeline_over_the_parts_writes_the_bytes_it_writes_over_the_output() {
    let t = util::tempdir();
    let d = t.path();
    packaged(d);
    let parts: Vec<PathBuf> = (1..=3)
        .map(|i| d.join(format!("kg/fwi-test-part-00{i}")))
        .collect();
    assert!(parts.iter().all(|p| p.join("manifest.json").is_file()));
    assert!(!d.join("kg/fwi-test-part-004").exists(), "three parts");

    let over_output = again(d, "out/run", "a");
    let over_parts = again(d, "kg/fwi-test-part-*", "b");
    let want = shard_bytes(&over_output);
    assert_eq!(want.len(), 10, "12 inputs × 2 = 24 samples: 5 shard pairs");
    let got = shard_bytes(&over_parts);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &want {
        assert!(
            got[name] == *bytes,
            "{name} differs between output and parts"
        );
    }
    let (ma, mb) = (
        json(&over_output.join("manifest.json")),
        json(&over_parts.join("manifest.json")),
    );
    assert_eq!(ma["fingerprint"], mb["fingerprint"]);
    let inputs: Vec<&str> = mb["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        inputs,
        (1..=6)
            .map(|i| format!("data/data{i}.npy"))
            .collect::<Vec<_>>(),
        "part files named as in the output"
    );

    // Provenance: the same records, with the ids of the original samples.
    let (pa, pb) = (provenance(&over_output), provenance(&over_parts));
    assert_eq!(pa, pb);
    let ids = original_ids(&d.join("out/run"));
    for r in &pb {
        let key = (
            r["input"].as_str().unwrap().to_string(),
            r["input_index"].as_u64().unwrap(),
        );
        assert_eq!(r["id"].as_str().unwrap(), ids[&key], "{r}");
        assert!(
            r["id"]
                .as_str()
                .unwrap()
                .starts_with("FlatVel_A/data/data1.npy#")
                || r["id"]
                    .as_str()
                    .unwrap()
                    .starts_with("CurveVel_A/data/data1.npy#"),
            "{r}"
        );
    }

    // One part alone: its samples are those of the whole run, value for value.
    let one = again(d, "kg/fwi-test-part-002", "c");
    let pc = provenance(&one);
    assert_eq!(
        pc.len(),
        8,
        "part 2 holds shards 3 and 4: 4 samples, 2 copies each"
    );
    let shards = |out: &Path, n: usize| -> Vec<Vec<f32>> {
        (1..=n)
            .map(|k| read_npy(&out.join(format!("data/data{k}.npy"))).1)
            .collect()
    };
    let (whole, part) = (shards(&over_output, 5), shards(&one, 2));
    let sample = |s: &[Vec<f32>], k: usize| s[k / 5][(k % 5) * PER..(k % 5 + 1) * PER].to_vec();
    for (k, r) in pc.iter().enumerate() {
        assert!(["data/data3.npy", "data/data4.npy"].contains(&r["input"].as_str().unwrap()));
        let j = pa
            .iter()
            .position(|q| {
                q["input"] == r["input"]
                    && q["input_index"] == r["input_index"]
                    && q["copy"] == r["copy"]
            })
            .unwrap_or_else(|| panic!("{r} is not in the whole run"));
        assert_eq!((&r["id"], &r["stages"]), (&pa[j]["id"], &pa[j]["stages"]));
        assert!(
            sample(&part, k) == sample(&whole, j),
            "sample {k} ({r}) differs from the whole run's"
        );
    }
}

/// Rewrite a `seispipe-manifest/2` folder (what seispipe writes) into the
/// `/1` form earlier builds wrote: provenance inline, no provenance files.
fn to_v1(dir: &Path) {
    let mut m = json(&dir.join("manifest.json"));
    m["format"] = "seispipe-manifest/1".into();
    for s in m["shards"].as_array_mut().unwrap() {
        let inline = records(dir, s);
        std::fs::remove_file(dir.join(s["provenance"]["path"].as_str().unwrap())).unwrap();
        s["provenance"] = Value::Array(inline);
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&m).unwrap(),
    )
    .unwrap();
}

#[test]
fn parts_with_provenance_files_read_like_inline_provenance() {
    let t = util::tempdir();
    let d = t.path();
    packaged(d);
    let files = again(d, "kg/fwi-test-part-*", "files");
    for i in 1..=3 {
        to_v1(&d.join(format!("kg/fwi-test-part-00{i}")));
    }
    let inline = again(d, "kg/fwi-test-part-*", "inline");
    assert_eq!(shard_bytes(&inline), shard_bytes(&files));
    assert_eq!(provenance(&inline), provenance(&files));
}

fn refused(dir: &Path, input: &str, needles: &[&str]) {
    let o = seispipe(
        dir,
        &[
            "check",
            "again.toml",
            "--set",
            &format!("input.path={input}"),
        ],
    );
    // Bad data: exit 1, as for any input that does not fit together.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    for n in needles {
        assert!(text(&o).contains(n), "missing {n:?} in\n{}", text(&o));
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn parts_given_twice_from_other_outputs_or_unlike_their_manifest_are_refused() {
    let t = util::tempdir();
    let d = t.path();
    packaged(d);
    // The same part twice.
    copy_dir(
        &d.join("kg/fwi-test-part-001"),
        &d.join("twice/fwi-test-part-001"),
    );
    copy_dir(
        &d.join("kg/fwi-test-part-001"),
        &d.join("twice/fwi-test-part-001-copy"),
    );
    refused(
        d,
        "twice/fwi-test-part-*",
        &[
            "stands for the same file `data/data1.npy` as",
            "give each part once",
        ],
    );
    // A part of another output beside them.
    copy_dir(
        &d.join("kg/fwi-test-part-001"),
        &d.join("mixed/fwi-test-part-001"),
    );
    copy_dir(
        &d.join("kg/fwi-test-part-001"),
        &d.join("mixed/other-part-001"),
    );
    let other = d.join("mixed/other-part-001/manifest.json");
    let mut m = json(&other);
    m["fingerprint"] = "0123456789abcdef".into();
    std::fs::write(&other, m.to_string()).unwrap();
    refused(
        d,
        "mixed/*-part-*",
        &["different outputs", "0123456789ab", "separate input"],
    );
    // A manifest that lists another sample count than its provenance.
    copy_dir(
        &d.join("kg/fwi-test-part-001"),
        &d.join("count/fwi-test-part-001"),
    );
    let bad = d.join("count/fwi-test-part-001/manifest.json");
    let mut m = json(&bad);
    m["shards"][0]["samples"] = 3.into();
    std::fs::write(&bad, m.to_string()).unwrap();
    refused(
        d,
        "count/fwi-test-part-001",
        &[
            "count/fwi-test-part-001/prov1.jsonl",
            "shard 1 lists 3 samples but 2 provenance records",
        ],
    );
    // A label file the manifest lists, missing.
    copy_dir(
        &d.join("kg/fwi-test-part-001"),
        &d.join("nolabel/fwi-test-part-001"),
    );
    std::fs::remove_file(d.join("nolabel/fwi-test-part-001/model2.npy")).unwrap();
    refused(
        d,
        "nolabel/fwi-test-part-001",
        &[
            "nolabel/fwi-test-part-001/data2.npy",
            "no label partner",
            "model2.npy",
        ],
    );
}

#[test]
fn an_unlabelled_output_reads_back_unlabelled_with_its_ids() {
    let t = util::tempdir();
    let d = t.path();
    for (k, id) in ["a1b2c3", "d4e5f6", "0a0b0c"].iter().enumerate() {
        write_npy(
            &d.join(format!("test/{id}.npy")),
            DType::F32,
            &[5, 1000, 70],
            &util::pseudo_random(350_000, k as u64, 5.0),
        );
    }
    std::fs::write(
        d.join("make.toml"),
        "seed = 1\ncopies = 1\n[input]\npath = \"test\"\n[output]\ndir = \"out\"\nsamples_per_shard = 2\n[[stages]]\ntype = \"flip\"\np = 1.0\n",
    )
    .unwrap();
    run_ok(d, &["run", "-q", "make.toml"]);
    assert!(!d.join("out/model").exists());
    // `data/dataN.npy` without `model/modelN.npy`: unlabelled, as its manifest says.
    run_ok(
        d,
        &[
            "run",
            "-q",
            "make.toml",
            "--set",
            "input.path=out",
            "--set",
            "output.dir=again",
        ],
    );
    let ids: Vec<String> = provenance(&d.join("again"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    // Sorted by stem: 0a0b0c, a1b2c3, d4e5f6; each twice (original, copy) in
    // the first run, and each of those twice again.
    let want: Vec<String> = ["0a0b0c", "a1b2c3", "d4e5f6"]
        .iter()
        .flat_map(|s| std::iter::repeat_n((*s).to_string(), 4))
        .collect();
    assert_eq!(ids, want);
}
