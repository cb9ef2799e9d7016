//! pseudo_label: TorchScript models saved by Python give Python's outputs;
//! the project's own traced model round-trips; TTA/ensemble means and the
//! disagreement match a numpy reference; the submission CSV parses with
//! Python's csv module into the shard values; bad models, CUDA where none
//! is, NaN predictions and bad input files give clear errors or counted skips,
//! never a submission that silently lacks ids.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{assert_close, python, read_npy, run_python, seispipe, tempdir, text};

const REF: &str = "pseudo_label_ref.py";

/// Models and test inputs made by torch.jit in `dir`.
fn fixtures(py: &Path, dir: &Path) {
    run_python(py, REF, &["make", dir.to_str().unwrap()]);
}

fn pipeline(dir: &Path, out: &str, stage: &str, extra_top: &str) -> PathBuf {
    let p = dir.join(format!("{out}.toml"));
    let text = format!(
        r#"seed = 0
copies = 1
keep_original = false
{extra_top}
[output]
dir = "{}"
samples_per_shard = 4
[run]
chunk_samples = 3
[[stages]]
type = "pseudo_label"
device = "cpu"
{stage}
"#,
        dir.join(out).display()
    );
    let text = if text.contains("[input]") {
        text
    } else {
        text.replace(
            "[output]",
            &format!(
                "[input]\npath = \"{}\"\n[output]",
                dir.join("test").display()
            ),
        )
    };
    std::fs::write(&p, text).unwrap();
    p
}

fn run_ok(dir: &Path, pipe: &Path) {
    let o = seispipe(dir, &["run", "--quiet", pipe.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

/// id → (predicted map, disagreement) from an output's shards and manifest.
fn outputs(out: &Path) -> BTreeMap<String, (Vec<f32>, f64)> {
    let m = crate::util::manifest_inline(out);
    let mut r = BTreeMap::new();
    for sh in m["shards"].as_array().unwrap() {
        let (shape, v) = read_npy(&out.join(sh["files"][1]["path"].as_str().unwrap()));
        assert_eq!(&shape[1..], &[1, 70, 70]);
        for (j, p) in sh["provenance"].as_array().unwrap().iter().enumerate() {
            let rec = &p["stages"][0];
            r.insert(
                p["id"].as_str().unwrap().to_string(),
                (
                    v[j * 4900..(j + 1) * 4900].to_vec(),
                    rec["disagreement"].as_f64().unwrap(),
                ),
            );
        }
    }
    r
}

/// The numpy reference, by id.
fn reference(py: &Path, dir: &Path, args: &[&str]) -> BTreeMap<String, (Vec<f32>, f32)> {
    let out = dir.join("ref");
    let mut a = vec!["predict", dir.to_str().unwrap(), out.to_str().unwrap()];
    a.extend_from_slice(args);
    run_python(py, REF, &a);
    let ids: Vec<String> = std::fs::read_to_string(out.join("ids.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let (_, pred) = read_npy(&out.join("expected_pred.npy"));
    let (_, dis) = read_npy(&out.join("expected_dis.npy"));
    ids.into_iter()
        .enumerate()
        .map(|(k, id)| (id, (pred[k * 4900..(k + 1) * 4900].to_vec(), dis[k])))
        .collect()
}

fn compare(
    got: &BTreeMap<String, (Vec<f32>, f64)>,
    want: &BTreeMap<String, (Vec<f32>, f32)>,
    rtol: f32,
    atol: f32,
) {
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (id, (g, gd)) in got {
        let (w, wd) = &want[id];
        assert_close(&format!("prediction of {id}"), g, w, rtol, atol);
        assert!(
            (gd - f64::from(*wd)).abs() <= 1e-5 * (1.0 + f64::from(*wd).abs()),
            "disagreement of {id}: {gd} vs {wd}"
        );
    }
}

#[test]
fn scripted_model_matches_python_and_csv_parses_to_the_shards() {
    if !crate::util::torch_binary(
        "pseudo_label::scripted_model_matches_python_and_csv_parses_to_the_shards",
    ) {
        return;
    }
    let Some(py) = python("pseudo_label scripted") else {
        return;
    };
    let t = tempdir();
    let d = t.path();
    fixtures(&py, d);
    let p = pipeline(
        d,
        "out",
        "models = [{ path = \"a.pt\" }]\nvelocity_range = [-10.0, 10.0]\nbatch_size = 2\nper_id_npy = true",
        "",
    );
    run_ok(d, &p);
    let want = reference(&py, d, &["a.pt:1", "none", "identity", "0"]);
    let got = outputs(&d.join("out"));
    compare(&got, &want, 0.0, 1e-5);
    for (id, (map, _)) in &got {
        let (shape, v) = read_npy(&d.join(format!("out/predictions/{id}.npy")));
        assert_eq!(shape, vec![70, 70]);
        assert_eq!(&v, map, "predictions/{id}.npy");
    }
    let said = run_python(&py, REF, &["csv", d.join("out").to_str().unwrap()]);
    assert!(said.contains("csv OK 6 ids 420 rows"), "{said}");
    let o = seispipe(d, &["verify", d.join("out").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    // A rerun finds every shard done and rewrites the same CSV.
    let before = std::fs::read(d.join("out/submission.csv")).unwrap();
    run_ok(d, &p);
    assert_eq!(std::fs::read(d.join("out/submission.csv")).unwrap(), before);
    let o = seispipe(d, &["verify", d.join("out").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn transforms_tta_and_weighted_ensemble_match_numpy_means() {
    if !crate::util::torch_binary(
        "pseudo_label::transforms_tta_and_weighted_ensemble_match_numpy_means",
    ) {
        return;
    }
    let Some(py) = python("pseudo_label tta/ensemble") else {
        return;
    };
    let t = tempdir();
    let d = t.path();
    fixtures(&py, d);
    // Identity output: the views differ by O(0.1), so the means are checked closely.
    let p = pipeline(
        d,
        "ens",
        "models = [{ path = \"a.pt\", weight = 1.0 }, { path = \"b.pt\", weight = 3.0 }]\ntta = true\nvelocity_range = [-10.0, 10.0]",
        "",
    );
    run_ok(d, &p);
    let want = reference(&py, d, &["a.pt:1,b.pt:3", "none", "identity", "1"]);
    let got = outputs(&d.join("ens"));
    compare(&got, &want, 0.0, 1e-5);
    assert!(
        got.values().all(|(_, dis)| *dis > 0.01),
        "views should disagree"
    );

    // Declared transforms: sign·log1p then min-max from [-3, 3]; output min-max to m/s.
    let p = pipeline(
        d,
        "tr",
        "models = [{ path = \"b.pt\" }]\ninput_transform = \"log1p_minmax\"\ninput_min = -20.0\ninput_max = 20.0\noutput_transform = \"minmax\"\nvelocity_range = [0.0, 10000.0]",
        "",
    );
    run_ok(d, &p);
    let want = reference(
        &py,
        d,
        &["b.pt:1", "log1p_minmax", "minmax", "0", "-20", "20"],
    );
    compare(&outputs(&d.join("tr")), &want, 1e-6, 1e-3);

    // The confidence filter drops the samples above the threshold; the CSV is
    // refused and the missing ids are listed.
    let mut dis: Vec<f32> = reference(&py, d, &["a.pt:1,b.pt:3", "none", "identity", "1"])
        .values()
        .map(|v| v.1)
        .collect();
    dis.sort_by(f32::total_cmp);
    let cut = f64::from(dis[2] + dis[3]) / 2.0;
    let above = dis.iter().filter(|&&x| f64::from(x) > cut).count();
    let p = pipeline(
        d,
        "cut",
        &format!("models = [{{ path = \"a.pt\" }}, {{ path = \"b.pt\", weight = 3.0 }}]\ntta = true\nvelocity_range = [-10.0, 10.0]\nmax_disagreement = {cut}"),
        "",
    );
    run_ok(d, &p);
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("cut/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(m["samples_dropped"].as_u64().unwrap() as usize, above);
    assert_eq!(m["samples_out"].as_u64().unwrap() as usize, 6 - above);
    assert!(!d.join("cut/submission.csv").exists());
    let missing = std::fs::read_to_string(d.join("cut/submission_missing.txt")).unwrap();
    assert_eq!(
        missing
            .lines()
            .filter(|l| l.contains("max_disagreement"))
            .count(),
        above,
        "{missing}"
    );
    let o = seispipe(d, &["verify", d.join("cut").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn project_traced_demo_model_round_trips_through_python() {
    if !crate::util::torch_binary(
        "pseudo_label::project_traced_demo_model_round_trips_through_python",
    ) {
        return;
    }
    let Some(py) = python("pseudo_label demo model") else {
        return;
    };
    let t = tempdir();
    let d = t.path();
    fixtures(&py, d);
    crate::util::write_train_pair(
        &d.join("train"),
        "FlatVel_A",
        1,
        4,
        seispipe::pipeline::spec::DType::F32,
        5,
    );
    let model = d.join("demo.pt");
    let o = seispipe(
        d,
        &[
            "make-demo-model",
            model.to_str().unwrap(),
            "--data",
            d.join("train").to_str().unwrap(),
            "--steps",
            "3",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let p = pipeline(
        d,
        "demo",
        "models = [{ path = \"demo.pt\" }]\ninput_transform = \"log1p\"\noutput_transform = \"minmax\"\nvelocity_range = [0.0, 10000.0]",
        "",
    );
    run_ok(d, &p);
    let want = reference(&py, d, &["demo.pt:1", "log1p", "minmax", "0"]);
    compare(&outputs(&d.join("demo")), &want, 1e-6, 1e-3);
}

#[test]
fn bad_models_and_devices_are_refused_at_check() {
    if !crate::util::torch_binary("pseudo_label::bad_models_and_devices_are_refused_at_check") {
        return;
    }
    let Some(py) = python("pseudo_label bad models") else {
        return;
    };
    let t = tempdir();
    let d = t.path();
    fixtures(&py, d);
    std::fs::write(d.join("corrupt.pt"), b"this is not a zip archive").unwrap();
    let cases: &[(&str, &[&str])] = &[
        (
            "models = [{ path = \"nowhere.pt\" }]",
            &["models[0]", "nowhere.pt", "does not exist"],
        ),
        (
            "models = [{ path = \"corrupt.pt\" }]",
            &["corrupt.pt", "not a TorchScript model"],
        ),
        (
            "models = [{ path = \"bad_shape.pt\" }]",
            &["bad_shape.pt", "[1, 70, 35]", "(1, 1, 70, 70) or (1, 70, 70)"],
        ),
        (
            "models = [{ path = \"a.pt\" }]\ninput_transform = \"minmax\"",
            &["input_transform = \"minmax\" needs input_min and input_max"],
        ),
        (
            "models = [{ path = \"a.pt\", sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\" }]",
            &["SHA-256", "pins"],
        ),
        (
            "models = []",
            &["models is empty"],
        ),
    ];
    for (i, (stage, needles)) in cases.iter().enumerate() {
        let p = pipeline(d, &format!("bad{i}"), stage, "");
        let o = seispipe(d, &["check", p.to_str().unwrap()]);
        let msg = text(&o);
        assert_eq!(o.status.code(), Some(2), "{msg}");
        for n in *needles {
            assert!(msg.contains(n), "case {i}: expected {n:?} in\n{msg}");
        }
        assert!(msg.contains("stages[0] (pseudo_label)"), "{msg}");
    }
    // CUDA where there is none (on a CUDA machine the check passes instead).
    let p = pipeline(d, "cuda", "models = [{ path = \"a.pt\" }]", "")
        .to_str()
        .unwrap()
        .to_string();
    let o = seispipe(d, &["check", &p, "--set", "stages.0.device=cuda:0"]);
    if !o.status.success() {
        assert!(text(&o).contains("no CUDA device"), "{}", text(&o));
    }
    let o = seispipe(d, &["check", &p, "--set", "stages.0.device=gpu"]);
    assert!(
        text(&o).contains("\"gpu\" is not a device") && text(&o).contains("cuda:N"),
        "{}",
        text(&o)
    );
    let o = seispipe(
        d,
        &[
            "check",
            &p,
            "--set",
            "stages.0.device=cpu",
            "--set",
            "stages.0.half=true",
        ],
    );
    assert!(
        text(&o).contains("half = true needs a CUDA device"),
        "{}",
        text(&o)
    );
    // An expansion is shown in the plan under the user's entry, and so is
    // where the stages with a device would run here.
    let o = seispipe(d, &["check", &p, "--set", "stages.0.resimulate=true"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("[1] simulate ")
            && t.contains("— added by stages[0] (pseudo_label, resimulate = true)"),
        "{t}"
    );
    assert!(t.contains("runs here: stages[0] on tch-cpu"), "{t}");
}

#[test]
fn nan_predictions_and_bad_files_never_give_a_silently_short_submission() {
    if !crate::util::torch_binary(
        "pseudo_label::nan_predictions_and_bad_files_never_give_a_silently_short_submission",
    ) {
        return;
    }
    let Some(py) = python("pseudo_label nan") else {
        return;
    };
    let t = tempdir();
    let d = t.path();
    fixtures(&py, d);
    // A wrong-shape input among the good ones.
    crate::util::write_npy(
        &d.join("test/0badbadbad.npy"),
        seispipe::pipeline::spec::DType::F32,
        &[5, 999, 70],
        &vec![0.0; 5 * 999 * 70],
    );
    let top = format!(
        "[input]\npath = \"{}\"\non_bad_file = \"skip\"",
        d.join("test").display()
    );
    let p = pipeline(d, "nan", "models = [{ path = \"nan_pt.pt\" }]", &top);
    run_ok(d, &p);
    let out = d.join("nan");
    let m = crate::util::manifest_inline(&out);
    // The fixtures alternate the sign of each input's mean: 3 of 6 give NaN.
    assert_eq!(m["samples_dropped"], 3, "{m:#}");
    assert_eq!(m["skipped_files"].as_array().unwrap().len(), 1);
    assert!(!out.join("submission.csv").exists());
    let missing = std::fs::read_to_string(out.join("submission_missing.txt")).unwrap();
    assert!(missing.contains("4 id(s) have no prediction"), "{missing}");
    assert!(
        missing.contains("0badbadbad\tinput file skipped"),
        "{missing}"
    );
    assert_eq!(missing.matches("predicted NaN").count(), 3, "{missing}");

    // With a fallback the CSV has every id; the filled ones are listed.
    let p = pipeline(
        d,
        "fill",
        "models = [{ path = \"nan_pt.pt\" }]\nfallback_velocity = 3000.0",
        &top,
    );
    run_ok(d, &p);
    let csv = std::fs::read_to_string(d.join("fill/submission.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 70 * 7);
    assert!(lines.iter().all(|l| l.split(',').count() == 36));
    let filled = std::fs::read_to_string(d.join("fill/submission_filled.txt")).unwrap();
    assert_eq!(filled.lines().filter(|l| !l.starts_with('#')).count(), 4);
    for l in &lines[1..] {
        let id = l.split("_y_").next().unwrap();
        let expect = if filled.contains(id) { "3000" } else { "1500" };
        assert!(
            l.split(',').skip(1).all(|v| v == expect),
            "{id}: {l} (expected {expect}: nan_pt predicts 0.25 → clipped to 1500)"
        );
    }
    let o = seispipe(d, &["verify", d.join("fill").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));

    // The default policy stops at the bad file and names it.
    let top = format!("[input]\npath = \"{}\"", d.join("test").display());
    let p = pipeline(d, "strict", "models = [{ path = \"a.pt\" }]", &top);
    let o = seispipe(d, &["run", "--quiet", p.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("0badbadbad.npy"), "{}", text(&o));
}

#[test]
fn iterative_pseudo_labels_resimulate_the_prediction() {
    if !crate::util::torch_binary("pseudo_label::iterative_pseudo_labels_resimulate_the_prediction")
    {
        return;
    }
    let Some(py) = python("pseudo_label + simulate") else {
        return;
    };
    let t = tempdir();
    let d = t.path();
    fixtures(&py, d);
    // Two inputs are enough: the simulation costs ~0.3 s each.
    for f in std::fs::read_dir(d.join("test")).unwrap().skip(2) {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }
    // `resimulate = true` is the same as an explicit `simulate` stage after the model.
    let p = pipeline(
        d,
        "resim-key",
        "models = [{ path = \"b.pt\" }]\noutput_transform = \"minmax\"\nresimulate = true",
        "",
    );
    run_ok(d, &p);
    let p = pipeline(
        d,
        "resim",
        "models = [{ path = \"b.pt\" }]\noutput_transform = \"minmax\"\n[[stages]]\ntype = \"simulate\"",
        "",
    );
    run_ok(d, &p);
    for f in ["data/data1.npy", "model/model1.npy"] {
        assert_eq!(
            std::fs::read(d.join("resim").join(f)).unwrap(),
            std::fs::read(d.join("resim-key").join(f)).unwrap(),
            "{f}: resimulate = true differs from an explicit simulate stage"
        );
    }
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("resim/manifest.json")).unwrap())
            .unwrap();
    let sh = &m["shards"][0];
    let (_, data) = read_npy(
        &d.join("resim")
            .join(sh["files"][0]["path"].as_str().unwrap()),
    );
    let (_, labels) = read_npy(
        &d.join("resim")
            .join(sh["files"][1]["path"].as_str().unwrap()),
    );
    let n = sh["samples"].as_u64().unwrap() as usize;
    assert_eq!(n, 2);
    for j in 0..n {
        let vel =
            ndarray::Array3::from_shape_vec((1, 70, 70), labels[j * 4900..(j + 1) * 4900].to_vec())
                .unwrap();
        let mut s = seispipe::sample::Sample {
            id: String::new(),
            origin: seispipe::sample::Origin {
                input: 0,
                index: 0,
                global: 0,
                copy: 1,
            },
            seismic: ndarray::ArrayD::zeros(ndarray::IxDyn(&[1])),
            velocity: None,
            dropped: None,
        };
        seispipe::stage::simulate::resimulate(
            &mut s,
            &vel,
            &seispipe::physics::SOURCE_X,
            false,
            seispipe::cpu::Compute::default(),
        )
        .unwrap();
        let want = s.seismic.as_standard_layout();
        assert_close(
            "re-simulated seismic",
            &data[j * 350_000..(j + 1) * 350_000],
            want.as_slice().unwrap(),
            0.0,
            0.0,
        );
    }
}

/// `seispipe` never links libtorch (it would cost every run 0.4 s of
/// loading); pseudo_label work goes to `seispipe-torch` beside it, and without
/// that binary the error says what is missing instead of failing to start.
#[test]
fn seispipe_binary_has_no_libtorch_and_hands_models_over() {
    let exe = Path::new(env!("CARGO_BIN_EXE_seispipe"));
    let o = std::process::Command::new("readelf")
        .arg("-d")
        .arg(exe)
        .output()
        .expect("run readelf (binutils)");
    assert!(o.status.success(), "{}", text(&o));
    let dynamic = String::from_utf8_lossy(&o.stdout);
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("NEEDED")).collect();
    assert!(
        !needed.is_empty(),
        "readelf shows no NEEDED entries:\n{dynamic}"
    );
    for l in &needed {
        assert!(
            !l.contains("torch") && !l.contains("c10"),
            "seispipe links libtorch: {l}"
        );
    }
    // A copy of `seispipe` alone in a directory has no seispipe-torch beside it.
    let t = tempdir();
    let d = t.path();
    let lone = d.join("seispipe");
    std::fs::copy(exe, &lone).unwrap();
    let o = std::process::Command::new(&lone)
        .current_dir(d)
        .args(["make-demo-model", "m.pt", "--data", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = text(&o);
    assert!(err.contains("seispipe-torch"), "{err}");
    assert!(!d.join("m.pt").exists());

    // Beside it, the same command reaches libtorch (and fails on the data).
    if !crate::util::torch_binary(
        "pseudo_label::seispipe_binary_has_no_libtorch_and_hands_models_over",
    ) {
        return;
    }
    let o = seispipe(d, &["make-demo-model", "m.pt", "--data", "nowhere"]);
    assert!(!o.status.success());
    let err = text(&o);
    assert!(!err.contains("seispipe-torch"), "{err}");
    assert!(err.contains("nowhere"), "{err}");
}

#[test]
fn a_partitioned_run_merges_to_the_single_run_submission() {
    if !crate::util::torch_binary(
        "pseudo_label::a_partitioned_run_merges_to_the_single_run_submission",
    ) {
        return;
    }
    let Some(py) = python("pseudo_label partitioned") else {
        return;
    };
    let t = tempdir();
    let d = t.path();
    fixtures(&py, d);
    let p = pipeline(
        d,
        "out",
        "models = [{ path = \"a.pt\" }]\nvelocity_range = [-10.0, 10.0]\nbatch_size = 2\nper_id_npy = true",
        "",
    );
    run_ok(d, &p);
    std::fs::rename(d.join("out"), d.join("single")).unwrap();
    let pipe = p.to_str().unwrap();
    for part in ["0/2", "1/2"] {
        let o = seispipe(d, &["run", "--quiet", pipe, "--partition", part]);
        assert!(o.status.success(), "{part}: {}", text(&o));
    }
    // The submission is assembled by merge, not by a partition.
    assert!(!d.join("out/submission.csv").exists());
    let o = seispipe(d, &["merge", d.join("out").to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let files = |root: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
        crate::util::files_below(root)
            .into_iter()
            .filter(|f| !f.starts_with(root.join(".seispipe")) && !f.ends_with("report.html"))
            .map(|f| {
                (
                    f.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&f).unwrap(),
                )
            })
            .collect()
    };
    let (single, merged) = (files(&d.join("single")), files(&d.join("out")));
    assert!(single.contains_key(Path::new("submission.csv")));
    assert_eq!(
        single.keys().collect::<Vec<_>>(),
        merged.keys().collect::<Vec<_>>()
    );
    for (k, v) in &single {
        assert!(
            merged[k] == *v,
            "{} differs from the single run",
            k.display()
        );
    }
}

#[test]
fn predictions_only_output_writes_no_copy_of_the_inputs() {
    if !crate::util::torch_binary(
        "pseudo_label::predictions_only_output_writes_no_copy_of_the_inputs",
    ) {
        return;
    }
    let Some(py) = python("pseudo_label predictions only") else {
        return;
    };
    let t = tempdir();
    let d = t.path();
    fixtures(&py, d);
    let stage = "models = [{ path = \"a.pt\" }]\nvelocity_range = [-10.0, 10.0]\nbatch_size = 2";
    run_ok(d, &pipeline(d, "full", stage, ""));
    let p = pipeline(d, "only", stage, "");
    let text_of = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        text_of.replace("[output]\n", "[output]\ndata = false\n"),
    )
    .unwrap();
    run_ok(d, &p);
    let (full, only) = (d.join("full"), d.join("only"));
    // No data files; the same predictions, submission and provenance.
    assert!(std::fs::read_dir(only.join("data")).map_or(true, |mut r| r.next().is_none()));
    for f in [
        "submission.csv",
        "model/model1.npy",
        "model/model2.npy",
        "provenance/prov1.jsonl",
    ] {
        assert_eq!(
            std::fs::read(full.join(f)).unwrap(),
            std::fs::read(only.join(f)).unwrap(),
            "{f}"
        );
    }
    let m = crate::util::manifest_inline(&only);
    for sh in m["shards"].as_array().unwrap() {
        let files = sh["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{sh}");
        assert!(files[0]["path"].as_str().unwrap().starts_with("model/"));
        // Provenance points at the input file each prediction is for.
        for r in sh["provenance"].as_array().unwrap() {
            assert!(
                d.join("test").join(r["input"].as_str().unwrap()).is_file(),
                "{r}"
            );
        }
    }
    let o = seispipe(d, &["verify", only.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let size = |dir: &Path| -> u64 {
        crate::util::files_below(dir)
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum()
    };
    assert!(
        size(&only) * 10 < size(&full),
        "{} vs {}",
        size(&only),
        size(&full)
    );
    // Nothing to write without labels: refused before any data is read.
    let flip = d.join("flip.toml");
    std::fs::write(
        &flip,
        format!(
            "seed = 0\n[input]\npath = \"{}\"\n[output]\ndir = \"{}\"\ndata = false\n[[stages]]\ntype = \"flip\"\n",
            d.join("test").display(),
            d.join("flipped").display()
        ),
    )
    .unwrap();
    let o = seispipe(d, &["check", flip.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("output.data = false writes only the velocity maps"),
        "{}",
        text(&o)
    );
}
