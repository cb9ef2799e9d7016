//! Shared helpers: temp dirs, running the binary, finding the Python the
//! Makefile set up, writing fixtures, and array comparison that prints the
//! differing elements.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use seispipe::io::npy;
use seispipe::pipeline::spec::DType;

/// Every file below `dir` (recursively), sorted.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A fresh temporary directory, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("seispipe-test-")
        .tempdir()
        .expect("tempdir")
}

/// The seispipe binary built for these tests, started through
/// `SEISPIPE_TEST_RUNNER` when set (e.g. `qemu-aarch64 -L …` for a
/// cross-built binary, see scripts/test-aarch64.sh).
pub fn bin() -> Command {
    let exe = env!("CARGO_BIN_EXE_seispipe");
    match std::env::var("SEISPIPE_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut words = runner.split_whitespace();
            let mut c = Command::new(words.next().expect("a runner"));
            c.args(words).arg(exe);
            c
        }
        _ => Command::new(exe),
    }
}

/// seispipe as `examples/fixed_free_space` runs it: every measure of free
/// space says `free` bytes (tests of the disk budget cannot fill a disk).
/// The example is built by `cargo test` with the other targets.
pub fn bin_with_free_space(free: &str) -> Command {
    let exe = Path::new(env!("CARGO_BIN_EXE_seispipe"))
        .parent()
        .expect("target dir")
        .join("examples/fixed_free_space");
    assert!(
        exe.is_file(),
        "{} is not built: run `cargo test --release` (which builds the examples) or `cargo build --release --examples`",
        exe.display()
    );
    let mut c = Command::new(exe);
    c.arg(free);
    c
}

/// Run seispipe with `args` in `cwd`; returns the output.
pub fn seispipe(cwd: &Path, args: &[&str]) -> Output {
    bin()
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run seispipe")
}

/// Run seispipe and assert it succeeded (printing its output if not).
pub fn run_ok(cwd: &Path, args: &[&str]) -> Output {
    let o = seispipe(cwd, args);
    assert!(o.status.success(), "{}", text(&o));
    o
}

/// stdout + stderr as one string, for messages in asserts.
pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The Python interpreter with numpy/scipy/torch/deepwave, from the Makefile's
/// venv (`SEISPIPE_PYTHON`, else `~/.cache/seispipe/venv/bin/python`).
/// Missing: panics under CI (`CI` set), otherwise prints why and returns None
/// so the caller returns early — a skip that is visible, never a silent pass.
pub fn python(test: &str) -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("SEISPIPE_PYTHON").map(PathBuf::from),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/seispipe/venv/bin/python")),
    ];
    for c in candidates.into_iter().flatten() {
        if c.is_file() {
            return Some(c);
        }
    }
    let msg = format!("{test}: SKIPPED — no Python venv (run `make venv`, or set SEISPIPE_PYTHON)");
    assert!(
        std::env::var_os("CI").is_none(),
        "{msg} (a skip is a failure under CI)"
    );
    skipped(&msg);
    None
}

/// Print a skip where it is seen: straight to stderr, past the test
/// harness's capture of `eprintln!` (which hides a passing test's output).
fn skipped(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Whether `seispipe-torch` (the libtorch half, built by the `torch/` crate)
/// is beside the `seispipe` under test. Missing (e.g. `cargo test -p
/// seispipe` without the workspace built): panics under CI (`CI` set),
/// otherwise prints why and returns false so the caller returns early.
pub fn torch_binary(test: &str) -> bool {
    let torch = Path::new(env!("CARGO_BIN_EXE_seispipe")).with_file_name("seispipe-torch");
    if torch.is_file() {
        return true;
    }
    if let Ok(why) = std::env::var("SEISPIPE_WITHOUT_TORCH") {
        skipped(&format!("{test}: SKIPPED — {why}"));
        return false;
    }
    let msg = format!(
        "{test}: SKIPPED — {} is not built (`make build`, or `cargo build --release --workspace` with LIBTORCH set: `. scripts/env.sh`)",
        torch.display()
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "{msg} (a skip is a failure under CI)"
    );
    skipped(&msg);
    false
}

/// Run a committed Python script from `tests/python/` with args; panics with
/// its output if it fails. Returns stdout.
pub fn run_python(py: &Path, script: &str, args: &[&str]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let o = Command::new(py)
        .arg(&path)
        .args(args)
        .output()
        .expect("run python");
    assert!(o.status.success(), "python {script} failed:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Write an f32/f16 array with seispipe's own writer.
pub fn write_npy(path: &Path, dtype: DType, shape: &[usize], data: &[f32]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    npy::write_array(path, dtype, shape, data).expect("write fixture");
}

/// Read a whole array as f32.
pub fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    npy::read_all(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Deterministic pseudo-random values (an LCG; fixtures only).
pub fn pseudo_random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = ((s >> 40) as f32) / ((1u64 << 24) as f32);
            (u * 2.0 - 1.0) * scale
        })
        .collect()
}

/// Assert two arrays are close: |a-b| ≤ atol + rtol·|b|; prints the first
/// differing elements with their indices.
pub fn assert_close(what: &str, a: &[f32], b: &[f32], rtol: f32, atol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    // NaN anywhere counts as a difference.
    let close = |x: f32, y: f32| (x - y).abs() <= atol + rtol * y.abs();
    let bad: Vec<(usize, f32, f32)> = a
        .iter()
        .zip(b)
        .enumerate()
        .filter(|(_, (x, y))| !close(**x, **y))
        .map(|(i, (x, y))| (i, *x, *y))
        .take(10)
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: {} elements differ beyond rtol {rtol} atol {atol}; first: {:?}",
        a.iter().zip(b).filter(|(x, y)| !close(**x, **y)).count(),
        bad
    );
}

/// Write a labelled OpenFWI-style shard pair `root/<family>/data/dataN.npy` +
/// `model/modelN.npy` with `n` samples of pseudo-random data; returns the data path.
pub fn write_train_pair(
    root: &Path,
    family: &str,
    n_file: usize,
    n: usize,
    dtype: DType,
    seed: u64,
) -> PathBuf {
    let d = root
        .join(family)
        .join("data")
        .join(format!("data{n_file}.npy"));
    let m = root
        .join(family)
        .join("model")
        .join(format!("model{n_file}.npy"));
    write_npy(
        &d,
        dtype,
        &[n, 5, 1000, 70],
        &pseudo_random(n * 350_000, seed, 10.0),
    );
    let vel: Vec<f32> = pseudo_random(n * 4900, seed + 1, 1.0)
        .iter()
        .map(|u| 3000.0 + 1500.0 * u)
        .collect();
    write_npy(&m, dtype, &[n, 1, 70, 70], &vel);
    d
}

/// Write `root/<family>/data/data1.npy` from `seismic` (n samples) with a
/// constant-velocity `model/model1.npy` partner.
pub fn write_labelled(root: &Path, family: &str, seismic: &[f32], velocity: f32) {
    let n = seismic.len() / 350_000;
    write_npy(
        &root.join(family).join("data/data1.npy"),
        DType::F32,
        &[n, 5, 1000, 70],
        seismic,
    );
    write_npy(
        &root.join(family).join("model/model1.npy"),
        DType::F32,
        &[n, 1, 70, 70],
        &vec![velocity; n * 4900],
    );
}

/// An output's `manifest.json` with each shard's provenance read from its
/// file and put inline (`shards[i].provenance` as an array of records), the
/// view tests assert on.
pub fn manifest_inline(out: &Path) -> serde_json::Value {
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    for sh in m["shards"].as_array_mut().unwrap() {
        let rel = sh["provenance"]["path"]
            .as_str()
            .expect("a provenance file")
            .to_string();
        let text = std::fs::read_to_string(out.join(&rel)).unwrap();
        let records: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            records.len() as u64,
            sh["samples"].as_u64().unwrap(),
            "{rel}"
        );
        sh["provenance"] = serde_json::Value::Array(records);
    }
    m
}

/// Relative L2 distance ‖a − b‖ / ‖b‖, summed in f64.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (num / den).sqrt()
}
