//! Core engine: reading, pairing, writing, flip + noise, determinism, resume,
//! configuration errors and bad input.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use seispipe::pipeline::spec::DType;

use crate::util::{self, read_npy, seispipe, text, write_npy, write_train_pair};

/// Write a pipeline file into `dir` and return its path.
fn pipeline(
    dir: &Path,
    input: &Path,
    out: &Path,
    extra_top: &str,
    stages: &str,
    output_extra: &str,
) -> PathBuf {
    let p = dir.join("pipe.toml");
    let body = format!(
        "seed = 11\n{extra_top}\n[input]\npath = \"{}\"\n\n[output]\ndir = \"{}\"\n{output_extra}\n{stages}\n",
        input.display(),
        out.display()
    );
    std::fs::write(&p, body).unwrap();
    p
}

const FLIP_NOISE: &str = "[[stages]]\ntype = \"flip\"\np = 0.5\n\n[[stages]]\ntype = \"gaussian_noise\"\np = 0.7\nstd = 0.25\n";

fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["data", "model"] {
        let d = dir.join(sub);
        if !d.is_dir() {
            continue;
        }
        let mut names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for n in names {
            out.push((
                n.strip_prefix(dir).unwrap().display().to_string(),
                std::fs::read(&n).unwrap(),
            ));
        }
    }
    out
}

fn provenance(dir: &Path) -> serde_json::Value {
    crate::util::manifest_inline(dir)["shards"].clone()
}

fn assert_same_outputs(a: &Path, b: &Path) {
    let fa = files_under(a);
    let fb = files_under(b);
    assert_eq!(
        fa.iter().map(|f| &f.0).collect::<Vec<_>>(),
        fb.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for ((n, x), (_, y)) in fa.iter().zip(&fb) {
        assert!(
            x == y,
            "{n} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
    assert_eq!(provenance(a), provenance(b));
}

#[test]
fn flip_matches_numpy_and_outputs_load_in_numpy() {
    let t = util::tempdir();
    let input = t.path().join("train");
    write_train_pair(&input, "FlatVel_A", 1, 3, DType::F32, 1);
    write_train_pair(&input, "CurveFault_A", 2, 2, DType::F16, 2);
    let out = t.path().join("out");
    let p = pipeline(
        t.path(),
        &input,
        &out,
        "copies = 2",
        "[[stages]]\ntype = \"flip\"\np = 0.5\n",
        "samples_per_shard = 4",
    );
    util::run_ok(t.path(), &["run", "-q", p.to_str().unwrap()]);
    // 5 inputs × (original + 2 copies) = 15 samples in shards of 4.
    let (shape, _) = read_npy(&out.join("data/data4.npy"));
    assert_eq!(shape, vec![3, 5, 1000, 70]);
    assert!(out.join("model/model4.npy").is_file());
    let Some(py) = util::python("flip_matches_numpy") else {
        return;
    };
    let s = util::run_python(&py, "check_outputs.py", &[out.to_str().unwrap(), "--flip"]);
    let v: serde_json::Value = serde_json::from_str(s.trim()).unwrap();
    assert_eq!(v["checked"], 15);
    // 4 shards × (data, labels, provenance)
    assert_eq!(v["files"], 12);
    // p = 0.5 over 10 copies: some flipped, some not (fixed seed).
    let f = v["flipped"].as_u64().unwrap();
    assert!(f > 0 && f < 10, "flipped {f}");
}

#[test]
fn noise_std_and_snr_statistics() {
    let t = util::tempdir();
    let input = t.path().join("test");
    // Three one-sample test files of a known signal.
    let signal: Vec<f32> = (0..350_000)
        .map(|i| ((i % 1000) as f32 * 0.01).sin() * 3.0)
        .collect();
    for id in ["000039dca2", "0000aa11bb", "ffee001122"] {
        write_npy(
            &input.join(format!("{id}.npy")),
            DType::F32,
            &[5, 1000, 70],
            &signal,
        );
    }
    let power = signal.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / signal.len() as f64;
    for (stage, want) in [
        ("std = 0.5", 0.5f64),
        ("snr_db = 10.0", (power / 10.0).sqrt()),
    ] {
        let out = t.path().join(format!("out-{}", stage.len()));
        let p = pipeline(
            t.path(),
            &input,
            &out,
            "keep_original = false",
            &format!("[[stages]]\ntype = \"gaussian_noise\"\n{stage}\n"),
            "",
        );
        util::run_ok(t.path(), &["run", "-q", p.to_str().unwrap()]);
        let (shape, v) = read_npy(&out.join("data/data1.npy"));
        assert_eq!(shape, vec![3, 5, 1000, 70]);
        assert!(
            !out.join("model").exists(),
            "unlabelled input must not get label shards"
        );
        let noise: Vec<f64> = v
            .iter()
            .zip(signal.iter().cycle())
            .map(|(a, b)| f64::from(*a - *b))
            .collect();
        let n = noise.len() as f64;
        let mean = noise.iter().sum::<f64>() / n;
        let std = (noise.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        // ~1e6 draws: the standard error of the std is ~want/1400.
        assert!(mean.abs() < 0.01 * want, "{stage}: mean {mean}");
        assert!(
            (std - want).abs() < 0.01 * want,
            "{stage}: std {std}, want {want}"
        );
        // ids of one-sample files are their stems
        let prov = provenance(&out);
        let mut ids: Vec<&str> = prov[0]["provenance"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, ["000039dca2", "0000aa11bb", "ffee001122"]);
    }
}

#[test]
fn noise_is_normal_by_scipy() {
    let Some(py) = util::python("noise_is_normal_by_scipy") else {
        return;
    };
    let t = util::tempdir();
    let input = t.path().join("test");
    for k in 0..6 {
        write_npy(
            &input.join(format!("00000000{k:02}.npy")),
            DType::F32,
            &[5, 1000, 70],
            &vec![0.0; 350_000],
        );
    }
    let out = t.path().join("out");
    let p = pipeline(
        t.path(),
        &input,
        &out,
        "keep_original = false",
        "[[stages]]\ntype = \"gaussian_noise\"\nstd = 2.0\n",
        "",
    );
    util::run_ok(t.path(), &["run", "-q", p.to_str().unwrap()]);
    let s = util::run_python(
        &py,
        "normality.py",
        &[out.join("data/data1.npy").to_str().unwrap(), "2.0"],
    );
    assert!(s.contains("p_chi2"), "{s}");
}

/// Output bytes depend neither on the threads nor on the chunk size: chunks
/// of 1 sample, and of 9, which the hash thread hands the writer in pieces
/// (shards of 11 samples: pieces end inside and at the ends of shards).
#[test]
fn output_bytes_do_not_depend_on_threads() {
    let t = util::tempdir();
    let input = t.path().join("train");
    write_train_pair(&input, "FlatVel_A", 1, 4, DType::F32, 3);
    write_train_pair(&input, "FlatVel_A", 2, 3, DType::F32, 4);
    let mut dirs = Vec::new();
    for (threads, chunk) in [("1", "1"), ("2", "9")] {
        let out = t.path().join(format!("out{threads}"));
        let p = pipeline(
            t.path(),
            &input,
            &out,
            "copies = 2",
            FLIP_NOISE,
            "samples_per_shard = 11",
        );
        util::run_ok(
            t.path(),
            &[
                "run",
                "-q",
                "--threads",
                threads,
                p.to_str().unwrap(),
                "--set",
                &format!("run.chunk_samples={chunk}"),
            ],
        );
        dirs.push(out);
    }
    assert_same_outputs(&dirs[0], &dirs[1]);
    // and a different seed really changes them
    let out = t.path().join("other-seed");
    let p = pipeline(
        t.path(),
        &input,
        &out,
        "copies = 2",
        FLIP_NOISE,
        "samples_per_shard = 11",
    );
    util::run_ok(
        t.path(),
        &["run", "-q", p.to_str().unwrap(), "--set", "seed=12"],
    );
    assert_ne!(files_under(&out)[0].1, files_under(&dirs[0])[0].1);
}

/// `--io direct`, `--io buffered` and `--io auto` (which tries both on
/// shards 2 and 3, then keeps one) write the same bytes, fsync every file, and
/// say in the summary how they wrote; `SEISPIPE_IO` sets the default and a
/// value that names no mode is refused before anything is written.
#[test]
fn every_io_mode_writes_the_same_bytes_and_says_which_it_used() {
    let t = util::tempdir();
    let input = t.path().join("train");
    // 20 shards: enough for auto to try both modes.
    write_train_pair(&input, "FlatVel_A", 1, 20, DType::F32, 3);
    let mut dirs = Vec::new();
    for (mode, says) in [
        ("direct", "io: direct (--io direct)"),
        ("buffered", "io: buffered (--io buffered)"),
        ("auto", "(auto: shards 2–3 alternately buffered at"),
    ] {
        let out = t.path().join(mode);
        let p = pipeline(
            t.path(),
            &input,
            &out,
            "copies = 1",
            FLIP_NOISE,
            "samples_per_shard = 1",
        );
        let o = util::run_ok(t.path(), &["run", "--io", mode, p.to_str().unwrap()]);
        let msg = text(&o);
        // A filesystem without O_DIRECT (tmpfs) writes buffered and says so.
        assert!(
            msg.contains(says) || msg.contains("does not take O_DIRECT"),
            "{mode}: {msg}"
        );
        dirs.push(out);
    }
    assert_same_outputs(&dirs[0], &dirs[1]);
    assert_same_outputs(&dirs[0], &dirs[2]);
    let out = t.path().join("env");
    let p = pipeline(t.path(), &input, &out, "", FLIP_NOISE, "");
    let o = util::bin()
        .current_dir(t.path())
        .env("SEISPIPE_IO", "buffered")
        .args(["run", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        text(&o).contains("io: buffered (--io buffered)"),
        "{}",
        text(&o)
    );
    let out = t.path().join("bad");
    let p = pipeline(t.path(), &input, &out, "", FLIP_NOISE, "");
    let o = util::bin()
        .current_dir(t.path())
        .env("SEISPIPE_IO", "fast")
        .args(["run", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("SEISPIPE_IO=\"fast\" is not a setting"),
        "{}",
        text(&o)
    );
    assert!(!out.exists());
}

fn journal_lines(out: &Path) -> usize {
    std::fs::read_to_string(out.join(".seispipe/journal.jsonl")).map_or(0, |s| s.lines().count())
}

#[test]
fn sigkill_then_resume_is_byte_identical() {
    let t = util::tempdir();
    let input = t.path().join("train");
    for k in 1..=4 {
        write_train_pair(&input, "CurveVel_A", k, 6, DType::F16, 10 + k as u64);
    }
    // Reference: uninterrupted.
    let reference = t.path().join("ref");
    let p = pipeline(
        t.path(),
        &input,
        &reference,
        "copies = 3",
        FLIP_NOISE,
        "samples_per_shard = 4",
    );
    util::run_ok(t.path(), &["run", "-q", p.to_str().unwrap()]);
    let total_shards = 24 * 4 / 4;

    let out = t.path().join("killed");
    let p = pipeline(
        t.path(),
        &input,
        &out,
        "copies = 3",
        FLIP_NOISE,
        "samples_per_shard = 4",
    );
    let mut kills = 0;
    let mut killed_mid_run = false;
    // Kill it repeatedly part-way through, then let it finish.
    while kills < 3 {
        let before = journal_lines(&out);
        let mut child = util::bin()
            .current_dir(t.path())
            .args([
                "run",
                "-q",
                "--threads",
                "2",
                p.to_str().unwrap(),
                "--set",
                "run.chunk_samples=2",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while journal_lines(&out) < before + 2 && start.elapsed() < Duration::from_secs(60) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let finished = child.try_wait().unwrap().is_some();
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        if finished {
            break;
        }
        kills += 1;
        killed_mid_run |= journal_lines(&out) < total_shards;
    }
    assert!(
        killed_mid_run,
        "no kill landed before the run finished; make the fixture bigger"
    );
    let o = util::run_ok(t.path(), &["run", p.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("resuming"), "{err}");
    assert_same_outputs(&reference, &out);
    // No temporary file survives.
    for (name, _) in files_under(&out) {
        assert!(!name.contains(".partial"), "{name}");
    }
    let v = seispipe(t.path(), &["verify", out.to_str().unwrap()]);
    assert!(v.status.success(), "{}", text(&v));
    // A rerun of a finished run writes nothing and succeeds.
    let o = util::run_ok(t.path(), &["run", p.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("0 written now"),
        "{}",
        text(&o)
    );
}

/// Ctrl-C (SIGINT) mid-run: exit 130, finished shards kept, no partial
/// file, no manifest; the rerun resumes and ends equal to an uninterrupted
/// run. The run simulates (seconds of work), so the signal, sent as soon as
/// the first shard is journalled, always lands before the end: exit 0 fails.
#[test]
fn sigint_stops_cleanly_and_resume_completes() {
    let t = util::tempdir();
    let input = t.path().join("train");
    write_train_pair(&input, "Style_A", 1, 12, DType::F32, 21);
    let stages =
        "[[stages]]\ntype = \"simulate\"\nsource_positions = [17, 52]\n\n[[stages]]\ntype = \"gaussian_noise\"\nstd = 0.25\n";
    let reference = t.path().join("reference");
    let p = pipeline(
        t.path(),
        &input,
        &reference,
        "copies = 2\nkeep_original = false",
        stages,
        "samples_per_shard = 2",
    );
    util::run_ok(t.path(), &["run", "-q", p.to_str().unwrap()]);
    let out = t.path().join("out");
    let p = pipeline(
        t.path(),
        &input,
        &out,
        "copies = 2\nkeep_original = false",
        stages,
        "samples_per_shard = 2",
    );
    let child = util::bin()
        .current_dir(t.path())
        .args([
            "run",
            "-q",
            p.to_str().unwrap(),
            "--set",
            "run.chunk_samples=2",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while journal_lines(&out) < 1 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let pid = child.id();
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(130),
        "the signal must interrupt the run: {}",
        text(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("interrupted"), "{err}");
    assert!(!out.join("manifest.json").exists());
    let kept = journal_lines(&out);
    assert!((1..12).contains(&kept), "{kept} shards journalled of 12");
    let partials: Vec<_> = ["data", "model"]
        .iter()
        .flat_map(|d| std::fs::read_dir(out.join(d)).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(partials.is_empty(), "{partials:?}");
    let o = util::run_ok(t.path(), &["run", p.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("resuming"),
        "{}",
        text(&o)
    );
    assert_same_outputs(&reference, &out);
    let r = seispipe(t.path(), &["verify", out.to_str().unwrap()]);
    assert!(r.status.success(), "{}", text(&r));
}

#[test]
fn changed_pipeline_refuses_to_resume() {
    let t = util::tempdir();
    let input = t.path().join("train");
    write_train_pair(&input, "FlatVel_A", 1, 2, DType::F32, 5);
    let out = t.path().join("out");
    let p = pipeline(
        t.path(),
        &input,
        &out,
        "",
        FLIP_NOISE,
        "samples_per_shard = 2",
    );
    assert!(seispipe(t.path(), &["run", "-q", p.to_str().unwrap()])
        .status
        .success());
    let o = seispipe(
        t.path(),
        &[
            "run",
            "-q",
            p.to_str().unwrap(),
            "--set",
            "stages.1.std=0.3",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("different pipeline")
            && e.contains("std")
            && e.contains("0.25")
            && e.contains("0.3"),
        "{e}"
    );
    // Threads and chunk size do not change outputs, so they resume fine.
    util::run_ok(
        t.path(),
        &[
            "run",
            "-q",
            "--threads",
            "1",
            p.to_str().unwrap(),
            "--set",
            "run.chunk_samples=1",
        ],
    );
    // A non-empty directory that is not a seispipe run is never written into.
    let other = t.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let o = seispipe(
        t.path(),
        &[
            "run",
            "-q",
            p.to_str().unwrap(),
            "--set",
            &format!("output.dir=\"{}\"", other.display()),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not empty"),
        "{}",
        text(&o)
    );
}

#[test]
fn verify_detects_corruption_missing_and_extra_files() {
    let t = util::tempdir();
    let input = t.path().join("train");
    write_train_pair(&input, "FlatVel_B", 1, 3, DType::F32, 6);
    let out = t.path().join("out");
    let p = pipeline(
        t.path(),
        &input,
        &out,
        "",
        FLIP_NOISE,
        "samples_per_shard = 2",
    );
    assert!(seispipe(t.path(), &["run", "-q", p.to_str().unwrap()])
        .status
        .success());
    let clean = seispipe(t.path(), &["verify", out.to_str().unwrap()]);
    assert!(clean.status.success(), "{}", text(&clean));
    let f = out.join("data/data2.npy");
    let mut bytes = std::fs::read(&f).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&f, bytes).unwrap();
    std::fs::remove_file(out.join("model/model1.npy")).unwrap();
    std::fs::write(out.join("data/stray.npy"), b"x").unwrap();
    let o = seispipe(t.path(), &["verify", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("corrupt: data/data2.npy"), "{s}");
    assert!(s.contains("missing: model/model1.npy"), "{s}");
    assert!(s.contains("extra: data/stray.npy"), "{s}");
}

#[test]
fn f16_inputs_and_outputs() {
    let t = util::tempdir();
    let input = t.path().join("train");
    write_train_pair(&input, "FlatVel_A", 1, 2, DType::F16, 7);
    let out = t.path().join("out");
    let p = pipeline(t.path(), &input, &out, "copies = 0", "", "dtype = \"f16\"");
    util::run_ok(t.path(), &["run", "-q", p.to_str().unwrap()]);
    // Originals of f16 inputs written as f16 are bit-identical to the inputs' data.
    let a = std::fs::read(input.join("FlatVel_A/data/data1.npy")).unwrap();
    let b = std::fs::read(out.join("data/data1.npy")).unwrap();
    assert_eq!(a, b);
    let Some(py) = util::python("f16_outputs") else {
        return;
    };
    util::run_python(&py, "check_outputs.py", &[out.to_str().unwrap(), "--flip"]);
}

#[test]
fn set_override_and_check_plan() {
    let t = util::tempdir();
    let input = t.path().join("train");
    write_train_pair(&input, "FlatVel_A", 1, 5, DType::F32, 8);
    let out = t.path().join("out");
    let p = pipeline(
        t.path(),
        &input,
        &out,
        "copies = 3",
        FLIP_NOISE,
        "samples_per_shard = 500",
    );
    let o = util::run_ok(
        t.path(),
        &[
            "check",
            p.to_str().unwrap(),
            "--set",
            "output.samples_per_shard=6",
        ],
    );
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("5 samples") && s.contains("20 samples") && s.contains("4 shards"),
        "{s}"
    );
    assert!(!out.exists(), "check must not touch the output");
    let st = seispipe(t.path(), &["stages"]);
    let s = String::from_utf8_lossy(&st.stdout);
    assert!(
        s.contains("flip") && s.contains("gaussian_noise") && s.contains("snr_db"),
        "{s}"
    );
}

/// `seispipe check` must fail with exit 2 and a message containing every needle.
fn assert_config_error(stages: &str, top: &str, output_extra: &str, needles: &[&str]) {
    let t = util::tempdir();
    let input = t.path().join("train");
    write_train_pair(&input, "FlatVel_A", 1, 1, DType::F16, 9);
    let p = pipeline(
        t.path(),
        &input,
        &t.path().join("out"),
        top,
        stages,
        output_extra,
    );
    let o = seispipe(t.path(), &["check", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("pipe.toml"), "message must name the file: {e}");
    for n in needles {
        assert!(e.contains(n), "message lacks {n:?}: {e}");
    }
}

#[test]
fn config_errors_name_file_key_and_allowed_values() {
    assert_config_error(
        "[[stages]]\ntype = \"flop\"\n",
        "",
        "",
        &["flop", "flip", "gaussian_noise"],
    );
    assert_config_error(
        "[[stages]]\ntype = \"flip\"\nprob = 0.5\n",
        "",
        "",
        &["stages[0]", "prob", "`p`"],
    );
    assert_config_error(
        "[[stages]]\ntype = \"flip\"\np = 1.5\n",
        "",
        "",
        &["stages[0]", "p = 1.5", "0 ≤ p ≤ 1"],
    );
    assert_config_error(
        "[[stages]]\ntype = \"gaussian_noise\"\nstd = -1.0\n",
        "",
        "",
        &["stages[0]", "std = -1", "≥ 0"],
    );
    assert_config_error(
        "[[stages]]\ntype = \"gaussian_noise\"\n",
        "",
        "",
        &["std", "snr_db"],
    );
    assert_config_error(
        "",
        "",
        "samples_per_shard = 0",
        &["samples_per_shard = 0", "at least 1"],
    );
    assert_config_error("", "", "dtype = \"f64\"", &["f64", "f32", "f16"]);
    assert_config_error("", "colour = 1", "", &["colour"]);
}

// ---- bad input -------------------------------------------------------------

/// Write a raw .npy with an arbitrary header dict and payload.
fn raw_npy(path: &Path, dict: &str, payload: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut h = dict.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&u16::try_from(h.len()).unwrap().to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(payload);
    std::fs::write(path, b).unwrap();
}

/// Run a flip pipeline over `input` and assert it fails (exit `code`) with
/// `needles` in stderr and no final output file.
fn assert_run_fails(t: &Path, input: &Path, needles: &[&str]) {
    let out = t.join("out");
    let p = pipeline(t, input, &out, "", "[[stages]]\ntype = \"flip\"\n", "");
    let o = seispipe(t, &["run", "-q", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    for n in needles {
        assert!(e.contains(n), "message lacks {n:?}: {e}");
    }
    assert!(!out.join("data/data1.npy").exists());
}

#[test]
fn bad_layouts_are_named() {
    // data with no label partner
    let t = util::tempdir();
    let input = t.path().join("in");
    write_npy(
        &input.join("FlatVel_A/data/data1.npy"),
        DType::F32,
        &[1, 5, 1000, 70],
        &vec![0.0; 350_000],
    );
    assert_run_fails(
        t.path(),
        &input,
        &["data1.npy", "no label partner", "model/model1.npy"],
    );
    // label with no data partner
    let t = util::tempdir();
    let input = t.path().join("in");
    write_npy(
        &input.join("FlatFault_A/vel2_1_0.npy"),
        DType::F32,
        &[1, 1, 70, 70],
        &vec![2000.0; 4900],
    );
    write_npy(
        &input.join("test/0123456789.npy"),
        DType::F32,
        &[5, 1000, 70],
        &vec![0.0; 350_000],
    );
    assert_run_fails(t.path(), &input, &["vel2_1_0.npy", "no seismic partner"]);
    // different sample counts in a pair
    let t = util::tempdir();
    let input = t.path().join("in");
    write_npy(
        &input.join("seis2_1_0.npy"),
        DType::F32,
        &[2, 5, 1000, 70],
        &vec![0.0; 700_000],
    );
    write_npy(
        &input.join("vel2_1_0.npy"),
        DType::F32,
        &[3, 1, 70, 70],
        &vec![2000.0; 3 * 4900],
    );
    assert_run_fails(
        t.path(),
        &input,
        &["seis2_1_0.npy", "holds 2 samples", "holds 3"],
    );
    // wrong rank / shape
    let t = util::tempdir();
    let input = t.path().join("in");
    write_npy(
        &input.join("abc.npy"),
        DType::F32,
        &[5, 999, 70],
        &vec![0.0; 5 * 999 * 70],
    );
    assert_run_fails(
        t.path(),
        &input,
        &["abc.npy", "[5, 999, 70]", "(5, 1000, 70)"],
    );
    // empty input set
    let t = util::tempdir();
    let input = t.path().join("empty");
    std::fs::create_dir_all(&input).unwrap();
    assert_run_fails(t.path(), &input, &["no input files", "empty"]);
}

#[test]
fn bad_npy_files_are_named() {
    let cases: Vec<(&str, String, Vec<u8>, &[&str])> = vec![
        (
            "f64",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (5, 1000, 70), }".into(),
            vec![0; 8 * 350_000],
            &["float64", "<f4"],
        ),
        (
            "int",
            "{'descr': '<i4', 'fortran_order': False, 'shape': (5, 1000, 70), }".into(),
            vec![0; 4 * 350_000],
            &["unsupported dtype <i4"],
        ),
        (
            "bigend",
            "{'descr': '>f4', 'fortran_order': False, 'shape': (5, 1000, 70), }".into(),
            vec![0; 4 * 350_000],
            &["big-endian"],
        ),
        (
            "fortran",
            "{'descr': '<f4', 'fortran_order': True, 'shape': (5, 1000, 70), }".into(),
            vec![0; 4 * 350_000],
            &["Fortran"],
        ),
        (
            "truncated",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 1000, 70), }".into(),
            vec![0; 4 * 350_000 - 100],
            &["truncated", "needs 1400128 bytes"],
        ),
        (
            "corrupt",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 1000, seventy), }".into(),
            vec![0; 4 * 350_000],
            &["corrupt header"],
        ),
    ];
    for (name, dict, payload, needles) in cases {
        let t = util::tempdir();
        let input = t.path().join("in");
        let f = input.join(format!("{name}0000.npy"));
        raw_npy(&f, &dict, &payload);
        let mut n: Vec<&str> = needles.to_vec();
        let fname = format!("{name}0000.npy");
        n.push(&fname);
        assert_run_fails(t.path(), &input, &n);
    }
    // not a .npy at all
    let t = util::tempdir();
    let input = t.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("junk.npy"), b"hello").unwrap();
    assert_run_fails(t.path(), &input, &["junk.npy", "not a .npy"]);
}

#[test]
fn bad_files_can_be_skipped_and_are_recorded() {
    let t = util::tempdir();
    let input = t.path().join("in");
    write_npy(
        &input.join("0000000001.npy"),
        DType::F32,
        &[5, 1000, 70],
        &vec![1.0; 350_000],
    );
    write_npy(
        &input.join("0000000002.npy"),
        DType::F32,
        &[5, 999, 70],
        &vec![1.0; 349_650],
    );
    let out = t.path().join("out");
    let p = pipeline(t.path(), &input, &out, "", "", "");
    std::fs::write(
        &p,
        std::fs::read_to_string(&p)
            .unwrap()
            .replace("[input]\n", "[input]\non_bad_file = \"skip\"\n"),
    )
    .unwrap();
    let o = util::run_ok(t.path(), &["run", p.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("skipped"),
        "{}",
        text(&o)
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["skipped_files"].as_array().unwrap().len(), 1);
    assert!(m["skipped_files"][0]["path"]
        .as_str()
        .unwrap()
        .contains("0000000002.npy"));
    assert_eq!(m["samples_out"], 2);
}

#[test]
fn nan_samples_are_reported_or_skipped_by_policy() {
    let t = util::tempdir();
    let input = t.path().join("train");
    let mut x = util::pseudo_random(3 * 350_000, 3, 1.0);
    x[350_000 + 1234] = f32::NAN; // sample 1
    util::write_labelled(&input, "A", &x, 2500.0);
    let out = t.path().join("out");
    let p = pipeline(
        t.path(),
        &input,
        &out,
        "",
        "[[stages]]\ntype = \"flip\"\n",
        "",
    );
    let o = seispipe(t.path(), &["run", "-q", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("data1.npy, sample 1") && e.contains("1 NaN"),
        "{e}"
    );
    assert!(!out.join("data/data1.npy").exists());
    let out2 = t.path().join("out2");
    util::run_ok(
        t.path(),
        &[
            "run",
            "-q",
            p.to_str().unwrap(),
            "--set",
            "input.on_nonfinite=skip",
            "--set",
            &format!("output.dir=\"{}\"", out2.display()),
        ],
    );
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out2.join("manifest.json")).unwrap())
            .unwrap();
    // 3 inputs × (original + copy) = 6, minus both outputs of sample 1.
    assert_eq!(m["samples_out"], 4);
    assert_eq!(m["samples_dropped"], 2);
    let (shape, _) = read_npy(&out2.join("data/data1.npy"));
    assert_eq!(shape[0], 4);
    let Some(py) = util::python("nan_skip") else {
        return;
    };
    util::run_python(&py, "check_outputs.py", &[out2.to_str().unwrap(), "--flip"]);
}

/// The output check (finite values, the float16 range) and the f16 encoding
/// run on the stage threads, in parallel; the first bad sample in output
/// order is still the one named, and by policy the bad ones are dropped
/// while the rest are written, encoded and hashed as the files hold them.
#[test]
fn samples_a_stage_pushes_out_of_float16_are_named_in_order_or_dropped() {
    let t = util::tempdir();
    let input = t.path().join("train");
    // Samples of amplitude ~1: their originals fit f16; noise of std 1e5
    // pushes every copy far beyond 65504.
    let x = util::pseudo_random(7 * 350_000, 5, 1.0);
    util::write_labelled(&input, "A", &x, 2500.0);
    let out = t.path().join("out");
    let noise = "[[stages]]\ntype = \"gaussian_noise\"\nstd = 1e5\n";
    // Copies only, 7 to a chunk: every sample is bad, and the two workers
    // check samples 0 and 3 (or so) at the same time; the one named must
    // be sample 0 every time.
    let copies_only = pipeline(
        t.path(),
        &input,
        &out,
        "copies = 1\nkeep_original = false\n[run]\nchunk_samples = 7",
        noise,
        "dtype = \"f16\"",
    );
    for _ in 0..6 {
        let o = seispipe(
            t.path(),
            &["run", "-q", "--threads", "2", copies_only.to_str().unwrap()],
        );
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(
            e.contains("data1.npy, sample 0") && e.contains("does not fit float16"),
            "{e}"
        );
        assert!(!out.join("data/data1.npy").exists());
    }
    // With the originals, chunks of 3 (copies spread over chunks and
    // threads) and the skip policy: the copies are dropped, the rest written.
    let p = pipeline(
        t.path(),
        &input,
        &out,
        "copies = 1\n[run]\nchunk_samples = 3",
        noise,
        "dtype = \"f16\"",
    );
    let out2 = t.path().join("out2");
    util::run_ok(
        t.path(),
        &[
            "run",
            "-q",
            p.to_str().unwrap(),
            "--set",
            "input.on_nonfinite=skip",
            "--set",
            &format!("output.dir=\"{}\"", out2.display()),
        ],
    );
    let out = out2;
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["samples_out"], 7, "the originals");
    assert_eq!(m["samples_dropped"], 7, "every copy");
    // The originals, as f16: what the file holds, and what its checksum says.
    let bytes = std::fs::read(out.join("data/data1.npy")).unwrap();
    let body = &bytes[bytes.len() - 7 * 350_000 * 2..];
    for (k, pair) in body.chunks_exact(2).enumerate().step_by(9973) {
        let h = half::f16::from_le_bytes([pair[0], pair[1]]);
        assert_eq!(h, half::f16::from_f32(x[k]), "value {k}");
    }
    let v = seispipe(t.path(), &["verify", out.to_str().unwrap()]);
    assert!(v.status.success(), "{}", text(&v));
}

#[test]
fn unwritable_output_is_named() {
    let t = util::tempdir();
    let input = t.path().join("train");
    write_train_pair(&input, "FlatVel_A", 1, 1, DType::F16, 9);
    let blocker = t.path().join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let out = blocker.join("out");
    let p = pipeline(t.path(), &input, &out, "", "", "");
    let o = seispipe(t.path(), &["run", "-q", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("a-file/out") && e.contains("create"), "{e}");
}

#[test]
fn disk_full_mid_run_keeps_finished_shards_and_no_partial_files() {
    // A file-size limit makes a write fail exactly as a full disk does (EFBIG
    // instead of ENOSPC). Samples 0 and 1 hold NaN and are skipped by policy,
    // so shard 1 is tiny and fits; shard 2 (2.8 MB) hits the 2000 KiB limit.
    let t = util::tempdir();
    let input = t.path().join("train");
    let mut x = util::pseudo_random(6 * 350_000, 9, 1.0);
    x[5] = f32::NAN;
    x[350_000 + 5] = f32::NAN;
    util::write_labelled(&input, "A", &x, 2500.0);
    let out = t.path().join("out");
    let p = pipeline(
        t.path(),
        &input,
        &out,
        "copies = 0",
        "",
        "samples_per_shard = 2",
    );
    let p_str = p.to_str().unwrap();
    let bin = env!("CARGO_BIN_EXE_seispipe");
    let runner = std::env::var("SEISPIPE_TEST_RUNNER").unwrap_or_default();
    let script = format!(
        "trap '' XFSZ; ulimit -f 2000; exec {runner} {bin} run -q {p_str} --set input.on_nonfinite=skip"
    );
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(t.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("data2.npy") && e.contains("write"), "{e}");
    assert!(
        out.join("data/data1.npy").is_file(),
        "the finished shard must be kept"
    );
    assert!(
        !out.join("data/data2.npy").exists(),
        "a partial file under a final name"
    );
    let mut left: Vec<String> = std::fs::read_dir(out.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["data1.npy"], "temporary files left behind");
    // With room again, the same command keeps shard 1 and finishes.
    let o = util::run_ok(
        t.path(),
        &["run", p_str, "--set", "input.on_nonfinite=skip"],
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("1 kept from an earlier run"),
        "{}",
        text(&o)
    );
    assert_eq!(
        read_npy(&out.join("data/data1.npy")).0,
        vec![0, 5, 1000, 70]
    );
    assert_eq!(
        read_npy(&out.join("data/data3.npy")).0,
        vec![2, 5, 1000, 70]
    );
}

#[test]
fn inspect_reports_stats_and_nonfinite_counts() {
    let t = util::tempdir();
    let mut x = vec![1.0f32; 350_000];
    x[0] = -2.0;
    x[1] = f32::NAN;
    x[2] = f32::INFINITY;
    write_npy(&t.path().join("a.npy"), DType::F32, &[5, 1000, 70], &x);
    let o = util::run_ok(t.path(), &["inspect", t.path().to_str().unwrap()]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(
        s.contains("[5, 1000, 70]")
            && s.contains("<f4")
            && s.contains("min -2")
            && s.contains("NaN 1 Inf 1"),
        "{s}"
    );
}

#[test]
fn glob_and_single_file_inputs() {
    let t = util::tempdir();
    let input = t.path().join("train");
    write_train_pair(&input, "FlatVel_A", 1, 2, DType::F16, 30);
    write_train_pair(&input, "FlatVel_B", 1, 3, DType::F16, 31);
    write_train_pair(&input, "CurveVel_A", 10, 1, DType::F16, 32);
    write_train_pair(&input, "CurveVel_A", 2, 1, DType::F16, 33);
    // A glob picks only the matching families; files are in natural order.
    let glob = format!("{}/*Vel_A/data/*.npy", input.display());
    let out = t.path().join("out-glob");
    let p = pipeline(t.path(), Path::new(&glob), &out, "copies = 0", "", "");
    util::run_ok(t.path(), &["run", "-q", p.to_str().unwrap()]);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let inputs: Vec<&str> = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        inputs,
        [
            "CurveVel_A/data/data2.npy",
            "CurveVel_A/data/data10.npy",
            "FlatVel_A/data/data1.npy"
        ]
    );
    assert_eq!(m["samples_out"], 4);
    // A single shard file is an input set of one.
    let one = input.join("FlatVel_B/data/data1.npy");
    let out = t.path().join("out-one");
    let p = pipeline(t.path(), &one, &out, "copies = 0", "", "");
    util::run_ok(t.path(), &["run", "-q", p.to_str().unwrap()]);
    assert_eq!(
        read_npy(&out.join("model/model1.npy")).0,
        vec![3, 1, 70, 70]
    );
}

#[test]
fn flat_data_model_pairs_are_read() {
    // The flat layout of a Kaggle part: data7.npy beside model7.npy.
    let t = util::tempdir();
    let input = t.path().join("part");
    write_npy(
        &input.join("data7.npy"),
        DType::F32,
        &[2, 5, 1000, 70],
        &util::pseudo_random(700_000, 40, 1.0),
    );
    write_npy(
        &input.join("model7.npy"),
        DType::F32,
        &[2, 1, 70, 70],
        &vec![2000.0; 9800],
    );
    let out = t.path().join("out");
    let p = pipeline(t.path(), &input, &out, "copies = 0", "", "");
    util::run_ok(t.path(), &["run", "-q", p.to_str().unwrap()]);
    assert_eq!(
        read_npy(&out.join("model/model1.npy")).0,
        vec![2, 1, 70, 70]
    );
}
