//! Algorithm versions in the run fingerprint. One golden per stage (and one
//! for the output encoding): the SHA-256 of what `seispipe run` writes for a
//! fixed tiny input, committed in `tests/goldens/stages.json` with the
//! versions it belongs to; when a stage's bytes change, its version must
//! change too (see `tests/goldens/check.rs`). And the refusals: a resume by a
//! build with other versions, or of an output that recorded none.

use std::path::Path;

use seispipe::io::npy;
use seispipe::pipeline::spec::DType;
use sha2::{Digest, Sha256};

use crate::util::{self, run_ok, write_npy};

include!("../goldens/check.rs");

/// Two labelled samples: fixed pseudo-random seismic data and two smooth
/// velocity maps (1800–3800 m/s, layered with a lateral gradient).
fn write_fixture(root: &Path) {
    write_npy(
        &root.join("Fam/data/data1.npy"),
        DType::F32,
        &[2, 5, 1000, 70],
        &util::pseudo_random(2 * 350_000, 5, 10.0),
    );
    let vel: Vec<f32> = (0..2 * 4900)
        .map(|i| {
            let (k, z, x) = (i / 4900, (i % 4900) / 70, i % 70);
            1800.0 + 25.0 * z as f32 + if k == 0 { 3.0 } else { -2.0 } * x as f32 + 200.0 * k as f32
        })
        .collect();
    write_npy(
        &root.join("Fam/model/model1.npy"),
        DType::F32,
        &[2, 1, 70, 70],
        &vel,
    );
}

/// Write `dir/NAME.toml`: seed 7, the fixture under `dir/in` as input,
/// output into `out`; `top` goes before `[input]`, `rest` after `dir =`.
fn write_pipeline(dir: &Path, name: &str, out: &Path, top: &str, rest: &str) -> std::path::PathBuf {
    let pipe = dir.join(format!("{name}.toml"));
    std::fs::write(
        &pipe,
        format!(
            "seed = 7\n{top}\n[input]\npath = \"{}\"\n[output]\ndir = \"{}\"\n{rest}\n",
            dir.join("in").display(),
            out.display()
        ),
    )
    .unwrap();
    pipe
}

/// The cases: name, `[output]` dtype, and the stage table.
const CASES: &[(&str, &str, &str)] = &[
    ("flip", "f32", "type = \"flip\"\np = 1.0"),
    (
        "flip_exact",
        "f32",
        "type = \"flip\"\np = 1.0\nexact = true\nresimulate_channels = \"middle\"",
    ),
    (
        "gaussian_noise_std",
        "f32",
        "type = \"gaussian_noise\"\nstd = 0.5",
    ),
    (
        "gaussian_noise_snr",
        "f32",
        "type = \"gaussian_noise\"\nsnr_db = 10.0",
    ),
    (
        "simulate",
        "f32",
        "type = \"simulate\"\nsource_positions = [0, 34, 69]",
    ),
    (
        "velocity_mixup",
        "f32",
        "type = \"velocity_mixup\"\ngroup = \"any\"",
    ),
    ("velocity_affine", "f32", "type = \"velocity_affine\""),
    (
        "spectrogram",
        "f32",
        "type = \"spectrogram\"\nn_fft = 64\noutput = \"log_magnitude\"",
    ),
    (
        "waveform_transform",
        "f32",
        "type = \"waveform_transform\"\ntransform = \"log1p_minmax\"\nmin = -20.0\nmax = 40.0",
    ),
    // The output encoding: f16 rounding and the npy header of every file.
    ("output_f16", "f16", "type = \"gaussian_noise\"\nstd = 0.25"),
];

/// SHA-256 over every data and label file of an output, in order.
fn output_hash(out: &Path) -> String {
    let mut h = Sha256::new();
    for sub in ["data", "model"] {
        let dir = out.join(sub);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = rd.map(|e| e.unwrap().path()).collect();
        files.sort();
        for f in files {
            h.update(f.strip_prefix(out).unwrap().to_string_lossy().as_bytes());
            h.update(std::fs::read(&f).unwrap());
        }
    }
    npy::hex(&h.finalize())
}

#[test]
fn every_stage_matches_its_golden_for_its_version() {
    let dir = util::tempdir();
    write_fixture(&dir.path().join("in"));
    let mut failures = Vec::new();
    for (name, dtype, stage) in CASES {
        let out = dir.path().join(format!("out-{name}"));
        let pipe = write_pipeline(
            dir.path(),
            name,
            &out,
            "copies = 1\nkeep_original = false",
            &format!("dtype = \"{dtype}\"\n[[stages]]\n{stage}"),
        );
        run_ok(
            dir.path(),
            &["run", pipe.to_str().unwrap(), "-q", "--threads", "2"],
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
        let versions = &manifest["versions"];
        assert!(
            versions.is_object(),
            "{name}: the manifest records no versions"
        );
        if let Err(e) = check_golden(name, versions, &output_hash(&out)) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same output hash whatever the thread count: a golden is a property of
/// the code, not of the machine that recorded it.
#[test]
fn golden_hashes_do_not_depend_on_threads() {
    let dir = util::tempdir();
    write_fixture(&dir.path().join("in"));
    let mut hashes = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.path().join(format!("out-{threads}"));
        let pipe = write_pipeline(
            dir.path(),
            &format!("p{threads}"),
            &out,
            "copies = 2",
            "[run]\nchunk_samples = 1\n[[stages]]\ntype = \"gaussian_noise\"\nstd = 0.5\n[[stages]]\ntype = \"flip\"",
        );
        run_ok(
            dir.path(),
            &["run", pipe.to_str().unwrap(), "-q", "--threads", threads],
        );
        hashes.push(output_hash(&out));
    }
    assert_eq!(hashes[0], hashes[1]);
}

/// A finished one-shard simulate run in `dir/out`; returns the pipeline path.
fn simulate_run(dir: &Path) -> std::path::PathBuf {
    write_fixture(&dir.join("in"));
    let pipe = write_pipeline(
        dir,
        "sim",
        &dir.join("out"),
        "copies = 1\nkeep_original = false",
        "samples_per_shard = 1\n[[stages]]\ntype = \"simulate\"\nsource_positions = [34]",
    );
    run_ok(dir, &["run", pipe.to_str().unwrap(), "-q"]);
    pipe
}

/// Every file under `dir` with its size and modification time.
fn snapshot(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    util::files_below(dir)
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).unwrap();
            (p.display().to_string(), m.len(), m.modified().unwrap())
        })
        .collect()
}

/// Rewrite the output's run state as another build (or an older seispipe)
/// would have written it: `edit` changes the fingerprint's JSON, and the hash
/// is recomputed the way seispipe computes it.
fn rewrite_run_state(out: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let run_json = out.join(".seispipe/run.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&run_json).unwrap()).unwrap();
    let mut value = state["determines_output"].take();
    edit(&mut value);
    let hash = npy::hex(&Sha256::digest(serde_json::to_vec(&value).unwrap()));
    state = serde_json::json!({ "fingerprint": hash, "determines_output": value });
    std::fs::write(&run_json, serde_json::to_string_pretty(&state).unwrap()).unwrap();
}

/// Make the run look interrupted: drop the last shard's files and the manifest
/// (the journal still lists the first shard, which a resume keeps).
fn interrupt(out: &Path) {
    std::fs::remove_file(out.join("data/data2.npy")).unwrap();
    std::fs::remove_file(out.join("model/model2.npy")).unwrap();
    std::fs::remove_file(out.join("manifest.json")).unwrap();
}

#[test]
fn a_build_with_other_versions_is_refused_and_writes_nothing() {
    let dir = util::tempdir();
    let pipe = simulate_run(dir.path());
    let out = dir.path().join("out");
    interrupt(&out);
    rewrite_run_state(&out, |v| {
        v["versions"]["stages"][0]["algorithm"]["physics"] = 1.into();
    });
    let before = snapshot(&out);
    let o = util::seispipe(dir.path(), &["run", pipe.to_str().unwrap(), "-q"]);
    let msg = util::text(&o);
    assert_eq!(o.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains(&format!("simulate (built stage 0): physics algorithm 1 in the output, {} in this build — finish with the old build or start a new output", seispipe::physics::ALGORITHM)),
        "{msg}"
    );
    assert_eq!(
        snapshot(&out),
        before,
        "a refused resume changed the output"
    );

    // The output format is named the same way.
    rewrite_run_state(&out, |v| {
        v["versions"]["stages"][0]["algorithm"]["physics"] = 2.into();
        v["versions"]["output_format"] = 0.into();
    });
    let o = util::seispipe(dir.path(), &["run", pipe.to_str().unwrap(), "-q"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        util::text(&o).contains("output format: version 0 in the output, 2 in this build"),
        "{}",
        util::text(&o)
    );
}

#[test]
fn an_unversioned_output_resumes_only_when_accepted() {
    let dir = util::tempdir();
    let pipe = simulate_run(dir.path());
    let out = dir.path().join("out");
    interrupt(&out);
    // What seispipe wrote before it recorded versions: no "versions" key.
    rewrite_run_state(&out, |v| {
        v.as_object_mut().unwrap().remove("versions");
    });
    let before = snapshot(&out);
    let p = pipe.to_str().unwrap();
    let o = util::seispipe(dir.path(), &["run", p, "-q"]);
    let msg = util::text(&o);
    assert_eq!(o.status.code(), Some(2), "{msg}");
    assert!(
        msg.contains("recorded no algorithm versions") && msg.contains("--accept-unversioned"),
        "{msg}"
    );
    assert_eq!(
        snapshot(&out),
        before,
        "a refused resume changed the output"
    );

    // Accepted: the run finishes and the manifest says what was risked.
    run_ok(dir.path(), &["run", p, "-q", "--accept-unversioned"]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert!(
        manifest["unversioned_resume"]
            .as_str()
            .is_some_and(|s| s.contains("--accept-unversioned")),
        "{manifest}"
    );
    let o = run_ok(dir.path(), &["verify", out.to_str().unwrap()]);
    let report = util::text(&o);
    assert!(report.contains("versions: seispipe"), "{report}");
    assert!(
        report.contains(&format!(
            "simulate (simulate 1, physics {})",
            seispipe::physics::ALGORITHM
        )),
        "{report}"
    );
    assert!(
        report.contains("warning: resumed with --accept-unversioned"),
        "{report}"
    );
}

#[test]
fn verify_reports_the_versions() {
    let dir = util::tempdir();
    simulate_run(dir.path());
    let o = run_ok(
        dir.path(),
        &["verify", dir.path().join("out").to_str().unwrap()],
    );
    let report = util::text(&o);
    assert!(
        report.contains(&format!(
            "output format 2, stages: simulate (simulate 1, physics {})",
            seispipe::physics::ALGORITHM
        )),
        "{report}"
    );
    assert!(!report.contains("warning"), "{report}");
}
