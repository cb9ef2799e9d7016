//! Spectrogram and waveform_transform stages: goldens from torch.stft and
//! scipy.signal (tests/python/stft_golden.py), shape formulas, an end-to-end
//! `seispipe run` checked against torch, and the bad-input messages.

use std::path::Path;

use seispipe::pipeline::spec::DType;
use seispipe::stage::spectrogram::SpectrogramSpec;
use serde_json::Value;

use crate::util::{self, read_npy, seispipe, text, write_npy};

/// Relative tolerance of the issue for f32 output.
const RTOL: f64 = 1e-5;
/// Absolute floor, as a fraction of each trace's spectral peak. Why a floor:
/// FFT rounding in f32 is absolute — about 6e-8·log2(n_fft) of the frame's
/// energy, spread over every bin whatever its own size — so a bin 1e-7 below
/// the trace's peak (the far side of a 15 Hz Ricker's spectrum, the quiet
/// edges of a tapered frame) cannot be reproduced to 1e-5 of *itself* by any
/// f32 FFT, torch's included. 1e-5 of the peak is the issue's relative error
/// measured against the trace's scale, and still ~10× above f32 rounding, so
/// a wrong window, frame offset or twiddle (errors of order the peak) fails.
const FLOOR: f64 = 1e-5;

/// Tolerance of one element of output kind `kind`, given the reference value
/// `b`, the reference magnitude `mag` of that bin and the linear floor `a`:
/// the floor is carried through each output formula by its derivative.
fn tolerance(kind: &str, spec: &Value, b: f64, mag: f64, a: f64) -> f64 {
    let rel = RTOL * b.abs();
    match kind {
        "magnitude" | "real_imag" => rel + a,
        // d|S|² = 2|S|·d|S|
        "power" => rel + 2.0 * mag * a + a * a,
        // d ln(|S| + eps) = d|S| / (|S| + eps)
        "log_magnitude" => {
            let eps = spec["eps"].as_f64().unwrap_or(1e-6);
            rel + a / (mag + eps)
        }
        // d 10·log10(max(|S|², amin)) = 10/ln10 · d|S|² / max(|S|², amin)
        "db" => {
            let amin = spec["amin"].as_f64().unwrap_or(1e-10);
            rel + 10.0 / std::f64::consts::LN_10 * (2.0 * mag * a + a * a) / (mag * mag).max(amin)
        }
        other => panic!("unknown kind {other}"),
    }
}

fn compare(
    what: &str,
    kind: &str,
    spec: &Value,
    got: &[f32],
    want: &[f32],
    mag: &[f32],
    floor: &[f64],
) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let n = floor.len();
    let mut bad = Vec::new();
    let mut count = 0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let m = f64::from(mag[i % mag.len()]);
        let tol = tolerance(kind, spec, f64::from(w), m, floor[i % n]);
        let err = (f64::from(g) - f64::from(w)).abs();
        if err > tol || err.is_nan() {
            count += 1;
            if bad.len() < 8 {
                bad.push((i, g, w, tol));
            }
        }
    }
    assert!(
        count == 0,
        "{what}: {count} of {} elements differ; first (index, got, want, tolerance): {bad:?}",
        want.len()
    );
}

#[test]
fn stft_matches_torch_and_scipy_goldens() {
    let Some(py) = util::python("stft_matches_torch_and_scipy_goldens") else {
        return;
    };
    let t = util::tempdir();
    let dir = t.path();
    let out = util::run_python(
        &py,
        "stft_golden.py",
        &[dir.to_str().unwrap(), env!("CARGO_MANIFEST_DIR")],
    );
    eprintln!("{}", out.trim());
    let (tshape, traces) = read_npy(&dir.join("traces.npy"));
    let (len, n) = (tshape[0], tshape[1]);
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("cases.json")).unwrap()).unwrap();
    assert!(cases.len() >= 27, "expected the full grid of cases");
    let mut compared = 0;
    for (ci, case) in cases.iter().enumerate() {
        let (_, mag) = read_npy(&dir.join(case["mag"].as_str().unwrap()));
        let (_, peak) = read_npy(&dir.join(case["peak"].as_str().unwrap()));
        let floor: Vec<f64> = peak.iter().map(|&p| FLOOR * f64::from(p)).collect();
        let p = &case["params"];
        for (kind, spec) in case["specs"].as_object().unwrap() {
            let s: SpectrogramSpec = serde_json::from_value(spec.clone())
                .unwrap_or_else(|e| panic!("case {ci} {kind}: {e}"));
            let stage = s
                .runtime(&[1, len, n])
                .unwrap_or_else(|e| panic!("case {ci} {kind}: {e}"));
            let shape = stage.out_shape();
            // Shape formulas: torch's frame count, n_fft/2 + 1 one-sided bins.
            let n_fft = p["n_fft"].as_u64().unwrap() as usize;
            let hop = p["hop_length"].as_u64().unwrap() as usize;
            let frames = if p["center"].as_bool().unwrap() {
                1 + (len + 2 * (n_fft / 2) - n_fft) / hop
            } else {
                1 + (len - n_fft) / hop
            };
            if p["center"].as_bool().unwrap() && n_fft.is_multiple_of(2) {
                assert_eq!(frames, 1 + len / hop);
            }
            assert_eq!(shape[2], frames, "case {ci}: frames");
            let bins = if p["onesided"].as_bool().unwrap() {
                n_fft / 2 + 1
            } else {
                n_fft
            };
            let kept = match (p.get("max_freq_hz"), p.get("bin_range")) {
                (Some(f), _) => (f.as_f64().unwrap() * n_fft as f64 / 1000.0).floor() as usize + 1,
                (_, Some(r)) => (r[1].as_u64().unwrap() - r[0].as_u64().unwrap()) as usize,
                _ => bins,
            };
            assert_eq!(shape[1], kept, "case {ci}: bins");
            assert_eq!(shape[3], n);
            let mut got = vec![0f32; shape.iter().product()];
            stage.compute(&traces, &mut got);
            for reference in ["torch", "scipy"] {
                let file = case[reference][kind].as_str().unwrap();
                let (wshape, want) = read_npy(&dir.join(file));
                assert_eq!(
                    wshape,
                    shape.to_vec(),
                    "case {ci} {kind} {reference}: shape"
                );
                compare(
                    &format!("case {ci} {kind} vs {reference} ({p})"),
                    kind,
                    spec,
                    &got,
                    &want,
                    &mag,
                    &floor,
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, cases.len() * 5 * 2);
}

/// Write a pipeline file running `stages` with `keep_original = false`.
fn pipeline(
    dir: &Path,
    input: &Path,
    out: &Path,
    stages: &str,
    output_extra: &str,
) -> std::path::PathBuf {
    let p = dir.join("pipe.toml");
    std::fs::write(
        &p,
        format!(
            "seed = 3\nkeep_original = false\ncopies = 1\n[input]\npath = \"{}\"\n\n[output]\ndir = \"{}\"\n{output_extra}\n{stages}\n",
            input.display(),
            out.display()
        ),
    )
    .unwrap();
    p
}

/// Real-looking fixture: per trace a 15 Hz Ricker whose arrival moves with
/// offset, plus pseudo-random noise.
fn fixture(root: &Path, n: usize) -> std::path::PathBuf {
    let noise = util::pseudo_random(n * 350_000, 5, 0.05);
    let mut x = vec![0f32; n * 350_000];
    for i in 0..n {
        for s in 0..5 {
            for t in 0..1000 {
                for r in 0..70 {
                    let t0 = 0.05 + 0.004 * (r as f64 - 17.0 * s as f64).abs() + 0.1 * i as f64;
                    let a = (std::f64::consts::PI * 15.0 * (t as f64 / 1000.0 - t0)).powi(2);
                    let k = ((i * 5 + s) * 1000 + t) * 70 + r;
                    x[k] = (20.0 * (1.0 - 2.0 * a) * (-a).exp()) as f32 + noise[k];
                }
            }
        }
    }
    let d = root.join("A/data/data1.npy");
    write_npy(&d, DType::F32, &[n, 5, 1000, 70], &x);
    write_npy(
        &root.join("A/model/model1.npy"),
        DType::F32,
        &[n, 1, 70, 70],
        &vec![2500.0; n * 4900],
    );
    d
}

#[test]
fn seispipe_run_writes_torch_spectrograms_and_records_the_layout() {
    let t = util::tempdir();
    let input = t.path().join("train");
    let data = fixture(&input, 2);
    for (name, params, stage_toml) in [
        (
            "log_crop",
            r#"{"n_fft": 128, "hop_length": 32, "output": "log_magnitude", "max_freq_hz": 45.0}"#,
            "n_fft = 128\nhop_length = 32\noutput = \"log_magnitude\"\nmax_freq_hz = 45.0\n",
        ),
        (
            "real_imag",
            r#"{"n_fft": 64, "output": "real_imag", "window": "hamming", "pad_mode": "constant"}"#,
            "n_fft = 64\noutput = \"real_imag\"\nwindow = \"hamming\"\npad_mode = \"constant\"\n",
        ),
    ] {
        let out = t.path().join(name);
        let p = pipeline(
            t.path(),
            &input,
            &out,
            &format!("[[stages]]\ntype = \"spectrogram\"\n{stage_toml}"),
            "",
        );
        let o = seispipe(
            t.path(),
            &["run", "-q", "--threads", "2", p.to_str().unwrap()],
        );
        assert!(o.status.success(), "{}", text(&o));
        let (shape, got) = read_npy(&out.join("data/data1.npy"));
        let m: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap())
                .unwrap();
        let info = &m["stage_info"]["0"];
        assert_eq!(m["sample_shape"], serde_json::json!(shape[1..]), "{name}");
        assert_eq!(info["shape"], serde_json::json!(shape[1..]), "{name}");
        assert_eq!(info["freqs_hz"].as_array().unwrap().len(), shape[2]);
        assert_eq!(info["frame_times_s"].as_array().unwrap().len(), shape[3]);
        let n_fft = info["n_fft"].as_f64().unwrap();
        let hop = info["hop_length"].as_f64().unwrap();
        assert!((info["freqs_hz"][1].as_f64().unwrap() - 1000.0 / n_fft).abs() < 1e-9);
        assert!((info["frame_times_s"][1].as_f64().unwrap() - hop / 1000.0).abs() < 1e-12);
        assert_eq!(shape[3], 1 + 1000 / hop as usize, "1 + T // hop frames");
        // The velocity maps travel unchanged.
        assert!(out.join("model/model1.npy").is_file());
        let Some(py) = util::python("seispipe_run_writes_torch_spectrograms") else {
            return;
        };
        let want_path = t.path().join(format!("{name}_torch.npy"));
        util::run_python(
            &py,
            "stft_golden.py",
            &[
                "--e2e",
                data.to_str().unwrap(),
                params,
                want_path.to_str().unwrap(),
            ],
        );
        let (wshape, want) = read_npy(&want_path);
        assert_eq!(wshape, shape, "{name}");
        if name == "log_crop" {
            assert_eq!(
                info["axes"],
                serde_json::json!(["source", "freq", "frame", "receiver"])
            );
            // 128-point bins are 7.8125 Hz apart: 0..=5 (39.06 Hz) ≤ 45 Hz.
            assert_eq!(shape[2], 6);
            // log values: compare exp(values), i.e. |S| + eps, with a floor of
            // 1e-5 of the largest magnitude (see FLOOR above).
            let lin = |v: &[f32]| v.iter().map(|x| x.exp()).collect::<Vec<f32>>();
            let (g, w) = (lin(&got), lin(&want));
            let peak = w.iter().fold(0f32, |a, b| a.max(*b));
            util::assert_close(name, &g, &w, RTOL as f32, FLOOR as f32 * peak);
        } else {
            assert_eq!(
                info["axes"],
                serde_json::json!(["channel", "freq", "frame", "receiver"])
            );
            assert_eq!(shape[1], 10);
            let peak = want.iter().fold(0f32, |a, b| a.max(b.abs()));
            util::assert_close(name, &got, &want, RTOL as f32, FLOOR as f32 * peak);
        }
    }
}

#[test]
fn waveform_transform_matches_openfwi_formulas() {
    let t = util::tempdir();
    let input = t.path().join("train");
    let data = fixture(&input, 1);
    let (_, x) = read_npy(&data);
    let out = t.path().join("out");
    let p = pipeline(
        t.path(),
        &input,
        &out,
        "[[stages]]\ntype = \"waveform_transform\"\ntransform = \"log1p_minmax\"\nmin = -20.0\nmax = 20.0\n",
        "",
    );
    let o = seispipe(t.path(), &["run", "-q", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let (shape, got) = read_npy(&out.join("data/data1.npy"));
    assert_eq!(shape, vec![1, 5, 1000, 70]);
    // OpenFWI: minmax(log_transform(x), log_transform(min), log_transform(max))
    let lt = |v: f64| v.abs().ln_1p().copysign(v);
    let (lo, hi) = (lt(-20.0), lt(20.0));
    let want: Vec<f32> = x
        .iter()
        .map(|&v| ((lt(f64::from(v)) - lo) / (hi - lo) * 2.0 - 1.0) as f32)
        .collect();
    util::assert_close("log1p_minmax", &got, &want, 1e-6, 1e-7);
}

#[test]
fn nan_input_is_reported_with_file_and_sample() {
    let t = util::tempdir();
    let input = t.path().join("train");
    let mut x = util::pseudo_random(2 * 350_000, 8, 1.0);
    x[350_000 + 4321] = f32::NAN;
    write_npy(
        &input.join("A/data/data1.npy"),
        DType::F32,
        &[2, 5, 1000, 70],
        &x,
    );
    write_npy(
        &input.join("A/model/model1.npy"),
        DType::F32,
        &[2, 1, 70, 70],
        &vec![2500.0; 2 * 4900],
    );
    let out = t.path().join("out");
    let p = pipeline(
        t.path(),
        &input,
        &out,
        "[[stages]]\ntype = \"spectrogram\"\nn_fft = 64\n",
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
}

/// `seispipe check` fails with exit 2 naming the file, the key and what is allowed.
fn assert_check_fails(stage: &str, top: &str, needles: &[&str]) {
    let t = util::tempdir();
    let input = t.path().join("train");
    util::write_train_pair(&input, "A", 1, 1, DType::F16, 4);
    let p = t.path().join("pipe.toml");
    std::fs::write(
        &p,
        format!(
            "seed = 1\n{top}\n[input]\npath = \"{}\"\n[output]\ndir = \"{}\"\n[[stages]]\n{stage}\n",
            input.display(),
            t.path().join("out").display()
        ),
    )
    .unwrap();
    let o = seispipe(t.path(), &["check", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("pipe.toml"), "{e}");
    if !needles.contains(&"keep_original") {
        assert!(e.contains("stages[0]"), "{e}");
    }
    for n in needles {
        assert!(e.contains(n), "message lacks {n:?}: {e}");
    }
}

#[test]
fn bad_spectrogram_parameters_are_named() {
    let top = "keep_original = false";
    let sp = |rest: &str| format!("type = \"spectrogram\"\n{rest}");
    assert_check_fails(
        &sp("n_fft = 128\nwin_length = 256"),
        top,
        &["win_length = 256", "n_fft = 128"],
    );
    assert_check_fails(
        &sp("n_fft = 128\nhop_length = 0"),
        top,
        &["hop_length = 0", "≥ 1"],
    );
    assert_check_fails(
        &sp("n_fft = 2048"),
        top,
        &["n_fft = 2048", "1000", "pad_mode"],
    );
    assert_check_fails(
        &sp("n_fft = 2048\ncenter = false"),
        top,
        &["n_fft = 2048", "n_fft ≤ 1000"],
    );
    assert_check_fails(
        &sp("n_fft = 128\nmax_freq_hz = 700.0"),
        top,
        &["max_freq_hz = 700", "outside the spectrum", "500"],
    );
    assert_check_fails(
        &sp("n_fft = 128\nbin_range = [60, 80]"),
        top,
        &["bin_range = [60, 80]", "outside the spectrum", "65"],
    );
    assert_check_fails(
        &sp("n_fft = 128\nwindow = \"blackman\""),
        top,
        &[
            "stages[0].window",
            "unknown variant `blackman`",
            "`hann`, `hamming`, `rectangular`",
        ],
    );
    assert_check_fails(
        &sp("n_fft = 128\npad_mode = \"edge\""),
        top,
        &[
            "stages[0].pad_mode",
            "unknown variant `edge`",
            "`reflect` or `constant`",
        ],
    );
    assert_check_fails(
        &sp("n_fft = 128\noutput = \"mag\""),
        top,
        &[
            "stages[0].output",
            "unknown variant `mag`",
            "`magnitude`, `power`, `log_magnitude`, `db`, `real_imag`",
        ],
    );
    assert_check_fails(
        &sp("n_fft = 128\nnfft = 3"),
        top,
        &["stages[0].nfft", "unknown field"],
    );
    // Originals keep (5, 1000, 70); spectrogram copies do not.
    assert_check_fails(&sp("n_fft = 128"), "", &["keep_original"]);
    assert_check_fails(
        "type = \"waveform_transform\"\ntransform = \"minmax\"\nmin = 3.0",
        "",
        &["min and max"],
    );
}
