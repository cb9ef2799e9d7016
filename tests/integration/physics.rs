//! The OpenFWI-exact simulator and the stages that use it: first samples and
//! direct-wave arrival times, agreement with `deepwave.scalar`, the exact flip,
//! stability at 4500 m/s, bad velocity maps, and the simulating stages run
//! through `seispipe run`.

use std::path::Path;

use ndarray::{Array3, ArrayD, IxDyn};
use seispipe::io::layout::InputSet;
use seispipe::physics::{self, wavelet, NX, PER_SOURCE, SOURCE_X};
use seispipe::pipeline::spec::DType;
use seispipe::rng::stage_rng;
use seispipe::sample::{Origin, Sample};
use seispipe::stage::flip::{mirror_sample, FlipSpec, Resimulate};
use seispipe::stage::{PlanEnv, Runtime, StageCtx};
use seispipe::synth::Family;

use crate::util::{self, read_npy, rel_l2, seispipe, text, write_npy};

fn sim(vel: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; SOURCE_X.len() * PER_SOURCE];
    physics::simulate_batch(vel, &SOURCE_X, false, &mut out).expect("simulate");
    out
}

#[test]
fn first_samples_and_direct_wave_arrival() {
    let w0 = wavelet::openfwi_ricker(1000)[0];
    for (v, want_peak) in [(1500.0f32, 78usize), (2500.0, 77), (4000.0, 76)] {
        let d = sim(&vec![v; 4900]);
        let beta = (f64::from(v) * 1e-3).powi(2);
        for (s, &sx) in SOURCE_X.iter().enumerate() {
            let ch = &d[s * PER_SOURCE..(s + 1) * PER_SOURCE];
            // Sample 0: only the receiver on the source, (v·dt)²·w[0].
            for (x, &got) in ch[..NX].iter().enumerate() {
                if x == sx {
                    let want = beta * f64::from(w0);
                    assert!(
                        (f64::from(got) - want).abs() <= 1e-6 * want.abs(),
                        "v={v} src {sx}: {got} vs {want}"
                    );
                } else {
                    assert_eq!(got, 0.0, "v={v} src {sx}: sample 0 at x={x}");
                }
            }
            // Sample 1: exactly ±2 receivers (4th-order stencil).
            let nz: Vec<usize> = (0..NX).filter(|&x| ch[NX + x] != 0.0).collect();
            let want: Vec<usize> = (sx.saturating_sub(2)..=(sx + 2).min(NX - 1)).collect();
            assert_eq!(nz, want, "v={v} src {sx}: sample 1 support");
            // Direct-wave peak at the source's own receiver.
            let trace: Vec<f32> = (0..1000).map(|t| ch[t * NX + sx]).collect();
            let peak = (0..1000)
                .max_by(|&a, &b| trace[a].total_cmp(&trace[b]))
                .unwrap();
            assert_eq!(peak, want_peak, "v={v} src {sx}: direct-wave peak");
        }
    }
}

/// Layered and faulted maps from the synth families, capped at 4242 m/s.
fn comparison_models() -> Vec<f32> {
    let mut v = Vec::new();
    for (k, name) in [
        "FlatVel_A",
        "CurveVel_B",
        "FlatFault_B",
        "CurveFault_A",
        "CurveFault_B",
        "FlatVel_B",
    ]
    .iter()
    .enumerate()
    {
        let f = Family::parse(name).unwrap();
        let m = f.draw(&mut stage_rng(42, name, 0, k as u64, 0));
        v.extend(m.into_iter().map(|x| x.min(4242.0)));
    }
    v
}

#[test]
fn agrees_with_deepwave() {
    let Some(py) = util::python("physics::agrees_with_deepwave") else {
        return;
    };
    let dir = util::tempdir();
    let vel = comparison_models();
    let n = vel.len() / 4900;
    let vpath = dir.path().join("vel.npy");
    let rpath = dir.path().join("ref.npy");
    write_npy(&vpath, DType::F32, &[n, 70, 70], &vel);
    util::run_python(
        &py,
        "deepwave_ref.py",
        &[vpath.to_str().unwrap(), rpath.to_str().unwrap()],
    );
    let (shape, reference) = read_npy(&rpath);
    assert_eq!(shape, vec![n, 5, 1000, 70]);
    let mut ours = vec![0f32; n * 5 * PER_SOURCE];
    physics::simulate_batch(&vel, &SOURCE_X, false, &mut ours).unwrap();
    let per = 5 * PER_SOURCE;
    // OpenFWI's sponge is tuned to the slowest velocity; at its outer edge
    // (120 cells out) a faster wave is reflected back a little, which deepwave's
    // C-PML does not do. That echo cannot reach a receiver before it has
    // travelled 2 × 1200 m at no more than the map's top speed, so the
    // asserted comparison stops there (the whole trace when it cannot arrive
    // within 1 s); the whole-trace error is printed too.
    let mut worst = 0f64;
    for i in 0..n {
        let (a, b) = (
            &ours[i * per..(i + 1) * per],
            &reference[i * per..(i + 1) * per],
        );
        let vmax = vel[i * 4900..(i + 1) * 4900]
            .iter()
            .fold(0f32, |m, &x| m.max(x));
        let window = ((2400.0 / f64::from(vmax) / 1e-3).floor() as usize).min(1000);
        let (mut wa, mut wb) = (Vec::new(), Vec::new());
        for s in 0..5 {
            let r = s * PER_SOURCE..s * PER_SOURCE + window * NX;
            wa.extend_from_slice(&a[r.clone()]);
            wb.extend_from_slice(&b[r]);
        }
        let e = rel_l2(&wa, &wb);
        eprintln!(
            "deepwave comparison, model {i} (vmax {vmax}): relative L2 error {e:.2e} over t < {window}, {:.2e} over the whole trace",
            rel_l2(a, b)
        );
        worst = worst.max(e);
    }
    eprintln!("deepwave comparison: worst relative L2 error {worst:.2e} (bound 1e-2)");
    assert!(worst < 1e-2, "relative L2 error {worst} vs deepwave");
}

/// Every sample of every source against an independent f32 NumPy port of the
/// OpenFWI generator (float32 state and coefficient arithmetic), bit for bit,
/// whose Laplacian wraps at the padded grid's outer edge
/// (`np.roll`). The same port with a zero wall instead shows that these maps
/// tell the two edges apart, so the comparison really checks the wrap.
#[test]
fn matches_the_np_roll_port_on_edge_stress_maps() {
    let Some(py) = util::python("physics::matches_the_np_roll_port_on_edge_stress_maps") else {
        return;
    };
    let dir = util::tempdir();
    let models = seispipe::synth::edge_stress_maps();
    let n = models.len();
    let vel: Vec<f32> = models.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let vpath = dir.path().join("vel.npy");
    let (rpath, zpath) = (dir.path().join("roll.npy"), dir.path().join("zero.npy"));
    write_npy(&vpath, DType::F32, &[n, 70, 70], &vel);
    let v = vpath.to_str().unwrap();
    util::run_python(&py, "openfwi_roll_ref.py", &[v, rpath.to_str().unwrap()]);
    util::run_python(
        &py,
        "openfwi_roll_ref.py",
        &[v, zpath.to_str().unwrap(), "0,17,34,52,69", "--zero-edge"],
    );
    let (shape, roll) = read_npy(&rpath);
    assert_eq!(shape, vec![n, 5, 1000, 70]);
    let (_, zero) = read_npy(&zpath);
    let ours = sim_all(&vel);
    let per = 5 * PER_SOURCE;
    // Samples t ≥ 700 of every source: where the edge shows most.
    let late = |d: &[f32]| -> Vec<f32> {
        d.chunks_exact(PER_SOURCE)
            .flat_map(|c| c[700 * NX..].iter().copied())
            .collect()
    };
    for (i, (name, _)) in models.iter().enumerate() {
        let r = i * per..(i + 1) * per;
        let (a, b, z) = (&ours[r.clone()], &roll[r.clone()], &zero[r]);
        let whole = rel_l2(a, b);
        let tail = rel_l2(&late(a), &late(b));
        let max_abs = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        let bitwise = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        let wall = rel_l2(z, b);
        let wall_tail = rel_l2(&late(z), &late(b));
        eprintln!(
            "np.roll port, {name}: relative L2 {whole:.2e} over t = 0..999, {tail:.2e} over t ≥ 700, max |diff| {max_abs:.2e}, bit-identical: {bitwise}; a zero wall would give {wall:.2e} and {wall_tail:.2e}"
        );
        // The port computes the same float32 coefficients and sums in the
        // same order, so every value must be identical, not just close.
        assert!(
            bitwise,
            "{name}: not bit-identical to the np.roll port: relative L2 {whole:e} over the whole record, {tail:e} over t ≥ 700"
        );
        assert!(
            wall_tail > 1e-3,
            "{name}: a zero wall differs from the wrap by only {wall_tail:e} over t ≥ 700; the map does not stress the edge"
        );
    }
}

fn empty_inputs() -> InputSet {
    InputSet {
        root: ".".into(),
        files: Vec::new(),
        offsets: vec![0],
        skipped: Vec::new(),
        labelled: true,
    }
}

fn sample_of(vel: &[f32], data: Vec<f32>) -> Sample {
    Sample {
        id: "t".into(),
        origin: Origin {
            input: 0,
            index: 0,
            global: 0,
            copy: 1,
        },
        seismic: ArrayD::from_shape_vec(IxDyn(&[5, 1000, 70]), data).unwrap(),
        velocity: Some(Array3::from_shape_vec((1, 70, 70), vel.to_vec()).unwrap()),
        dropped: None,
    }
}

fn flip_with(exact: bool, mode: Option<Resimulate>, s: &mut Sample) -> serde_json::Value {
    let spec = FlipSpec {
        p: 1.0,
        exact,
        resimulate_channels: mode,
    };
    let env = PlanEnv {
        shape: vec![5, 1000, 70],
        labels: true,
    };
    let built =
        seispipe::stage::build_one(&spec, &env, &seispipe::stage::RunEnv::default()).unwrap();
    let inputs = empty_inputs();
    let mut ctx = StageCtx {
        rng: stage_rng(1, "t", 0, 1, 0),
        inputs: &inputs,
        seed: 1,
        stage_index: 0,
    };
    match built.runtime {
        Runtime::Sample(st) => st.apply(s, &mut ctx).unwrap(),
        Runtime::Batch(_) => unreachable!(),
    }
}

#[test]
fn exact_flip_equals_simulating_the_mirrored_map() {
    let vel = Family::parse("CurveFault_B")
        .unwrap()
        .draw(&mut stage_rng(5, "flip", 0, 0, 0));
    let data = sim(&vel);
    let mut mirrored_vel = vel.clone();
    for row in mirrored_vel.chunks_exact_mut(70) {
        row.reverse();
    }
    let truth = sim(&mirrored_vel);

    let mut all = sample_of(&vel, data.clone());
    let rec = flip_with(true, None, &mut all);
    assert_eq!(
        rec["middle_source"],
        "exact (re-simulated at x=34 on the mirrored map)"
    );
    assert_eq!(
        all.seismic.as_slice().unwrap(),
        &truth[..],
        "exact flip (all)"
    );
    assert_eq!(
        all.velocity.as_ref().unwrap().as_slice().unwrap(),
        &mirrored_vel[..]
    );

    // The cheap variant (simulate only x=34, mirror the rest) is bit-identical.
    let mut mid = sample_of(&vel, data.clone());
    flip_with(true, Some(Resimulate::Middle), &mut mid);
    assert_eq!(
        mid.seismic.as_slice().unwrap(),
        &truth[..],
        "exact flip (middle)"
    );

    // The plain mirror agrees in channels 0, 1, 3, 4 (to the bit: the scheme is
    // mirror-symmetric) and differs in the middle channel (source at 35, not 34).
    let mut plain = sample_of(&vel, data);
    mirror_sample(&mut plain);
    let p = plain.seismic.as_slice().unwrap();
    for ch in [0, 1, 3, 4] {
        let r = ch * PER_SOURCE..(ch + 1) * PER_SOURCE;
        assert_eq!(&p[r.clone()], &truth[r], "plain mirror, channel {ch}");
    }
    let r = 2 * PER_SOURCE..3 * PER_SOURCE;
    let e = rel_l2(&p[r.clone()], &truth[r.clone()]);
    let peak_diff = p[r.clone()]
        .iter()
        .zip(&truth[r])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!(
        "plain mirror vs exact flip, middle channel: relative L2 {e:.3}, max |diff| {peak_diff:.3}"
    );
    assert!(
        e > 0.05,
        "middle channel should differ clearly; relative L2 {e}"
    );
}

#[test]
fn stable_at_4500() {
    let mut layered = Family::parse("FlatVel_B")
        .unwrap()
        .draw(&mut stage_rng(9, "stab", 0, 0, 0));
    layered[4899] = 4500.0;
    for (name, vel) in [("uniform", vec![4500.0f32; 4900]), ("layered", layered)] {
        let d = sim(&vel);
        assert!(d.iter().all(|x| x.is_finite()), "{name}: non-finite values");
        let peak = d.iter().fold(0f32, |m, x| m.max(x.abs()));
        // The injected wavelet peaks at (4500·1e-3)² ≈ 20; a blow-up would be
        // orders of magnitude larger.
        assert!(peak < 200.0, "{name}: peak {peak}");
        let late = d
            .chunks_exact(PER_SOURCE)
            .map(|c| c[900 * 70..].iter().fold(0f32, |m, x| m.max(x.abs())))
            .fold(0f32, f32::max);
        assert!(late < peak, "{name}: late amplitude {late} vs peak {peak}");
    }
}

#[test]
fn bad_velocity_maps_are_refused() {
    let mut out = vec![0f32; PER_SOURCE];
    let mut v = vec![2000.0f32; 4900];
    v[3 * 70 + 4] = f32::NAN;
    let e = physics::simulate(&v, &[0], false, &mut out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("non-finite") && e.contains("(z=3, x=4)"), "{e}");
    v[3 * 70 + 4] = 0.0;
    let e = physics::simulate(&v, &[0], false, &mut out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("non-positive"), "{e}");
    v[3 * 70 + 4] = 7000.0;
    let e = physics::simulate(&v, &[0], false, &mut out)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("far outside") && e.contains("clip_velocity"),
        "{e}"
    );
    // clip_velocity = true turns it into 4500 m/s and simulates.
    physics::simulate(&v, &[0], true, &mut out).unwrap();
    // 6000 m/s is in the accepted range but unstable in the sponge.
    let e = physics::simulate(&vec![6000.0; 4900], &[0], false, &mut out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("CFL"), "{e}");
    let e = physics::simulate(&vec![2000.0; 4899], &[0], false, &mut out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("4900"), "{e}");
    // A batch names the sample.
    let mut two = vec![2000.0f32; 2 * 4900];
    two[4900 + 7] = -1.0;
    let mut out2 = vec![0f32; 2 * PER_SOURCE];
    let e = physics::simulate_batch(&two, &[0], false, &mut out2).unwrap_err();
    assert_eq!(e.sample, 1);
    assert!(e.to_string().starts_with("sample 1:"), "{e}");
}

fn write_pipeline(dir: &Path, input: &Path, out: &Path, stages: &str) -> std::path::PathBuf {
    let p = dir.join("pipe.toml");
    std::fs::write(
        &p,
        format!(
            "seed = 3\ncopies = 1\nkeep_original = false\n[input]\npath = \"{}\"\n[output]\ndir = \"{}\"\n{stages}\n",
            input.display(),
            out.display()
        ),
    )
    .unwrap();
    p
}

#[test]
fn simulating_stages_run_in_pipelines() {
    let dir = util::tempdir();
    let input = dir.path().join("in");
    let o = seispipe(
        dir.path(),
        &[
            "synth",
            input.to_str().unwrap(),
            "--family",
            "FlatFault_A",
            "--samples",
            "2",
            "--seed",
            "4",
            "--threads",
            "2",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let (_, in_data) = read_npy(&input.join("FlatFault_A/seis2_1_0.npy"));
    let (_, in_vel) = read_npy(&input.join("FlatFault_A/vel2_1_0.npy"));

    // `simulate` reproduces what synth wrote (same simulator, stage vs batch API).
    let out = dir.path().join("sim");
    let p = write_pipeline(
        dir.path(),
        &input,
        &out,
        "[[stages]]\ntype = \"simulate\"\n",
    );
    let o = seispipe(dir.path(), &["run", "--quiet", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let (_, d) = read_npy(&out.join("data/data1.npy"));
    assert_eq!(d, in_data);

    // mixup + affine: labels stay in range, data is the simulation of the new
    // label, provenance names the partner and the drawn parameters.
    let out = dir.path().join("aug");
    let p = write_pipeline(
        dir.path(),
        &input,
        &out,
        "[[stages]]\ntype = \"velocity_mixup\"\ngroup = \"file\"\n[[stages]]\ntype = \"velocity_affine\"\n",
    );
    let o = seispipe(
        dir.path(),
        &["run", "--quiet", "--threads", "2", p.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let (_, d) = read_npy(&out.join("data/data1.npy"));
    let (_, v) = read_npy(&out.join("model/model1.npy"));
    assert!(v.iter().all(|x| (1500.0..=4500.0).contains(x)));
    assert_ne!(v, in_vel);
    assert_eq!(d, sim_all(&v), "data = simulation of the written label");
    let m = crate::util::manifest_inline(&out);
    let prov = &m["shards"][0]["provenance"][0]["stages"];
    assert_eq!(prov[0]["type"], "velocity_mixup");
    assert_eq!(prov[0]["partner"], "FlatFault_A/seis2_1_0.npy#1");
    let a = prov[0]["alpha"].as_f64().unwrap();
    assert!((0.3..0.7).contains(&a), "{a}");
    assert!(prov[1]["warp"]["theta_deg"].as_f64().unwrap().abs() <= 5.0);

    // mixup alone: the label is α·v1 + (1 − α)·v2 with the recorded α and partner.
    let out = dir.path().join("mix");
    let p = write_pipeline(
        dir.path(),
        &input,
        &out,
        "[[stages]]\ntype = \"velocity_mixup\"\ngroup = \"file\"\nalpha_min = 0.2\nalpha_max = 0.4\n",
    );
    let o = seispipe(dir.path(), &["run", "--quiet", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let (_, v) = read_npy(&out.join("model/model1.npy"));
    let m = crate::util::manifest_inline(&out);
    for i in 0..2 {
        let st = &m["shards"][0]["provenance"][i]["stages"][0];
        let alpha = st["alpha"].as_f64().unwrap();
        assert!((0.2..0.4).contains(&alpha), "{alpha}");
        assert_eq!(
            st["partner"],
            format!("FlatFault_A/seis2_1_0.npy#{}", 1 - i)
        );
        let (a, b) = (alpha as f32, (1.0 - alpha) as f32);
        let own = &in_vel[i * 4900..(i + 1) * 4900];
        let partner = &in_vel[(1 - i) * 4900..(2 - i) * 4900];
        let want: Vec<f32> = own
            .iter()
            .zip(partner)
            .map(|(x, y)| a * x + b * y)
            .collect();
        assert_eq!(&v[i * 4900..(i + 1) * 4900], &want[..], "mixed label {i}");
    }
}

#[test]
fn affine_warp_matches_scipy() {
    use seispipe::stage::velocity_affine::{warp_map, Warp};
    let Some(py) = util::python("physics::affine_warp_matches_scipy") else {
        return;
    };
    let dir = util::tempdir();
    let mut vels = Vec::new();
    let mut params = Vec::new();
    for (k, name) in ["CurveVel_B", "FlatFault_A", "CurveFault_B"]
        .iter()
        .enumerate()
    {
        vels.extend(
            Family::parse(name)
                .unwrap()
                .draw(&mut stage_rng(8, name, 0, 0, 0)),
        );
        let w = Warp {
            fx: 0.8 + 0.05 * k as f64,
            fz: 0.95 - 0.07 * k as f64,
            x0: 0.03 * k as f64,
            z0: 0.1 - 0.02 * k as f64,
            theta_deg: [-4.5, 0.0, 3.2][k],
        };
        params.extend([w.fx, w.fz, w.x0, w.z0, w.theta_deg].map(|x| x as f32));
    }
    // Parameters travel as f32 here, so use the f32-rounded values on both sides.
    let warps: Vec<Warp> = params
        .chunks_exact(5)
        .map(|p| Warp {
            fx: f64::from(p[0]),
            fz: f64::from(p[1]),
            x0: f64::from(p[2]),
            z0: f64::from(p[3]),
            theta_deg: f64::from(p[4]),
        })
        .collect();
    let (vp, pp, op) = (
        dir.path().join("v.npy"),
        dir.path().join("p.npy"),
        dir.path().join("o.npy"),
    );
    write_npy(&vp, DType::F32, &[3, 70, 70], &vels);
    write_npy(&pp, DType::F32, &[3, 5], &params);
    util::run_python(
        &py,
        "affine_ref.py",
        &[
            vp.to_str().unwrap(),
            pp.to_str().unwrap(),
            op.to_str().unwrap(),
        ],
    );
    let (_, golden) = read_npy(&op);
    for (i, w) in warps.iter().enumerate() {
        let ours = warp_map(&vels[i * 4900..(i + 1) * 4900], w);
        util::assert_close(
            &format!("warp {i}"),
            &ours,
            &golden[i * 4900..(i + 1) * 4900],
            0.0,
            0.01,
        );
    }
}

fn sim_all(vels: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; vels.len() / 4900 * 5 * PER_SOURCE];
    physics::simulate_batch(vels, &SOURCE_X, false, &mut out).unwrap();
    out
}

#[test]
fn simulate_needs_labels_and_names_bad_samples() {
    let dir = util::tempdir();
    // Unlabelled input: refused when the pipeline is built.
    let test_dir = dir.path().join("test");
    write_npy(
        &test_dir.join("0123456789.npy"),
        DType::F32,
        &[5, 1000, 70],
        &vec![0.0; 5 * PER_SOURCE],
    );
    let p = write_pipeline(
        dir.path(),
        &test_dir,
        &dir.path().join("o1"),
        "[[stages]]\ntype = \"simulate\"\n",
    );
    let o = seispipe(dir.path(), &["run", "--quiet", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no labels"), "{}", text(&o));

    // A label with a negative velocity in sample 1: the error names file and sample.
    let root = dir.path().join("train");
    let mut vel = vec![2500.0f32; 2 * 4900];
    vel[4900 + 100] = -5.0;
    write_npy(
        &root.join("FlatVel_A/model/model1.npy"),
        DType::F32,
        &[2, 1, 70, 70],
        &vel,
    );
    write_npy(
        &root.join("FlatVel_A/data/data1.npy"),
        DType::F32,
        &[2, 5, 1000, 70],
        &vec![0.0; 2 * 5 * PER_SOURCE],
    );
    let p = write_pipeline(
        dir.path(),
        &root,
        &dir.path().join("o2"),
        "[[stages]]\ntype = \"simulate\"\n",
    );
    let o = seispipe(dir.path(), &["run", "--quiet", p.to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains("data1.npy") && t.contains("sample 1") && t.contains("non-positive"),
        "{t}"
    );
}

#[test]
fn synth_rejects_bad_arguments() {
    let dir = util::tempdir();
    let out = dir.path().join("o");
    let o = seispipe(
        dir.path(),
        &[
            "synth",
            out.to_str().unwrap(),
            "--family",
            "FlatVel_C",
            "--samples",
            "1",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("FlatVel_C") && text(&o).contains("CurveFault_B"),
        "{}",
        text(&o)
    );
    let o = seispipe(
        dir.path(),
        &[
            "synth",
            out.to_str().unwrap(),
            "--family",
            "FlatVel_A",
            "--samples",
            "1",
            "--dtype",
            "f64",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("f64") && text(&o).contains("f16"),
        "{}",
        text(&o)
    );
    let o = seispipe(
        dir.path(),
        &[
            "synth",
            out.to_str().unwrap(),
            "--family",
            "FlatVel_A",
            "--samples",
            "0",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(!out.join("FlatVel_A").exists());
}

/// The blocked kernel on every instruction set this CPU has (AVX-512, AVX2,
/// the portable copy) writes the reference kernel's records bit for bit: all
/// five sources, all 1000 samples, on the maps that send the most energy
/// through the sponge and across the wrapped outer edge. (The reference's own
/// copies agree step by step: `physics::tests::kernel_copies_agree_bitwise`.)
#[test]
fn blocked_kernel_equals_the_reference_on_stress_maps() {
    use rayon::prelude::*;
    use seispipe::physics::fd::{Isa, Kernel};
    let isas = Isa::available();
    let maps = seispipe::synth::edge_stress_maps();
    let media: Vec<physics::Medium> = maps
        .iter()
        .map(|(_, v)| physics::Medium::new(v, false).unwrap())
        .collect();
    let jobs: Vec<(usize, usize)> = (0..maps.len())
        .flat_map(|m| SOURCE_X.iter().map(move |&sx| (m, sx)))
        .collect();
    let compared: usize = jobs
        .par_iter()
        .map(|&(m, sx)| {
            let mut want = vec![0f32; PER_SOURCE];
            media[m].simulate_source_with(sx, &mut want, Kernel::Reference, Isa::detect());
            assert!(want.iter().any(|&v| v != 0.0));
            let mut n = 0;
            for &isa in &isas {
                let mut got = vec![0f32; PER_SOURCE];
                media[m].simulate_source_with(sx, &mut got, Kernel::Blocked, isa);
                let first = want.iter().zip(&got).position(|(a, b)| a.to_bits() != b.to_bits());
                assert!(
                    first.is_none(),
                    "{}, source {sx}: the blocked kernel on {} differs from the reference at t = {}, receiver {}",
                    maps[m].0,
                    isa.name(),
                    first.unwrap() / NX,
                    first.unwrap() % NX
                );
                n += 1;
            }
            n
        })
        .sum();
    let names: Vec<&str> = isas.iter().map(|i| i.name()).collect();
    eprintln!(
        "{compared} records of the blocked kernel (4 maps × 5 sources × {names:?}) equal the reference bit for bit"
    );
}

/// `SEISPIPE_FD_KERNEL` picks the kernel (same bytes either way); a name
/// that is not a kernel is refused before any work, with the allowed names.
#[test]
fn fd_kernel_is_chosen_by_the_environment() {
    let dir = util::tempdir();
    let mut outputs = Vec::new();
    for kernel in ["", "reference", "blocked"] {
        let out = dir.path().join(format!("o{kernel}"));
        let o = util::bin()
            .current_dir(dir.path())
            .env("SEISPIPE_FD_KERNEL", kernel)
            .args([
                "synth",
                out.to_str().unwrap(),
                "--family",
                "FlatFault_A",
                "--samples",
                "1",
            ])
            .output()
            .expect("run seispipe");
        assert!(o.status.success(), "{}", text(&o));
        let want = if kernel == "reference" {
            "(reference)"
        } else {
            "(blocked)"
        };
        assert!(text(&o).contains(want), "{}", text(&o));
        outputs.push(std::fs::read(out.join("FlatFault_A/seis2_1_0.npy")).unwrap());
    }
    assert!(
        outputs.iter().all(|o| *o == outputs[0]),
        "kernels wrote different bytes"
    );
    let o = util::bin()
        .current_dir(dir.path())
        .env("SEISPIPE_FD_KERNEL", "fast")
        .args(["synth", "x", "--family", "FlatFault_A", "--samples", "1"])
        .output()
        .expect("run seispipe");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("SEISPIPE_FD_KERNEL") && t.contains("\"fast\"") && t.contains("reference"),
        "{t}"
    );
    assert!(!dir.path().join("x").exists());
}

/// `SEISPIPE_SUBNORMALS` chooses between the kernel's scaled copy (`avoid`)
/// and the CPU's own subnormal arithmetic (`hardware`); the default is a
/// probe's choice. Every choice, on every copy, writes the same bytes; a
/// value that is not a choice is refused before any work.
#[test]
fn subnormal_choice_writes_the_same_bytes() {
    use seispipe::cpu::Isa;
    let dir = util::tempdir();
    let mut outputs = Vec::new();
    let isas: Vec<Isa> = Isa::available()
        .into_iter()
        .filter(|i| matches!(i, Isa::Avx512 | Isa::Avx2))
        .collect();
    let mut runs = vec![(String::new(), Isa::detect())];
    for isa in &isas {
        runs.push(("avoid".into(), *isa));
        runs.push(("hardware".into(), *isa));
    }
    for (k, (choice, isa)) in runs.iter().enumerate() {
        let out = dir.path().join(format!("o{k}"));
        let o = util::bin()
            .current_dir(dir.path())
            .env("SEISPIPE_SUBNORMALS", choice)
            .env("SEISPIPE_ISA", isa.name())
            .args([
                "synth",
                out.to_str().unwrap(),
                "--family",
                "CurveVel_A",
                "--samples",
                "1",
            ])
            .output()
            .expect("run seispipe");
        assert!(o.status.success(), "{}", text(&o));
        let says = text(&o).contains("(blocked), scaled");
        match choice.as_str() {
            "avoid" => assert!(says, "{choice} on {}: {}", isa.name(), text(&o)),
            "hardware" => assert!(!says, "{choice} on {}: {}", isa.name(), text(&o)),
            _ => {}
        }
        outputs.push(std::fs::read(out.join("CurveVel_A/data/data1.npy")).unwrap());
    }
    assert!(
        outputs.iter().all(|o| *o == outputs[0]),
        "the choices wrote different bytes"
    );
    let o = util::bin()
        .current_dir(dir.path())
        .env("SEISPIPE_SUBNORMALS", "flush")
        .args(["synth", "x", "--family", "FlatFault_A", "--samples", "1"])
        .output()
        .expect("run seispipe");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("SEISPIPE_SUBNORMALS") && t.contains("\"flush\"") && t.contains("avoid"),
        "{t}"
    );
    assert!(!dir.path().join("x").exists());
}

/// `SEISPIPE_ISA` forces the vector copy of the simulation kernel and of the
/// noise: every copy this CPU runs writes the same bytes through a pipeline
/// that simulates (velocity_mixup, exact flip) and adds noise; a name that is
/// not an instruction set, or one this CPU lacks, is refused before any work.
#[test]
fn every_forced_instruction_set_writes_the_same_bytes() {
    use seispipe::cpu::Isa;
    let dir = util::tempdir();
    let o = util::seispipe(
        dir.path(),
        &[
            "synth",
            "in",
            "--family",
            "CurveVel_A",
            "--samples",
            "2",
            "--files",
            "1",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let pipe = dir.path().join("p.toml");
    std::fs::write(
        &pipe,
        r#"seed = 3
[input]
path = "in/CurveVel_A"
[output]
dir = "out"
samples_per_shard = 4
[[stages]]
type = "velocity_mixup"
[[stages]]
type = "flip"
p = 1.0
exact = true
[[stages]]
type = "gaussian_noise"
snr_db = 20.0
"#,
    )
    .unwrap();
    let mut outputs = Vec::new();
    for isa in Isa::available() {
        let out = dir.path().join(isa.name());
        let o = util::bin()
            .current_dir(dir.path())
            .env("SEISPIPE_ISA", isa.name())
            .args([
                "run",
                pipe.to_str().unwrap(),
                "-q",
                "--set",
                &format!("output.dir={}", out.display()),
            ])
            .output()
            .expect("run seispipe");
        assert!(o.status.success(), "{}: {}", isa.name(), text(&o));
        let mut files: Vec<_> = walkdir(&out.join("data"));
        files.sort();
        assert!(!files.is_empty());
        outputs.push((
            isa.name(),
            files
                .iter()
                .map(|f| std::fs::read(f).unwrap())
                .collect::<Vec<_>>(),
        ));
    }
    assert!(outputs.len() >= 2, "only one instruction set to compare");
    for (name, o) in &outputs[1..] {
        assert!(
            *o == outputs[0].1,
            "{name} wrote other bytes than {}",
            outputs[0].0
        );
    }
    for (value, says) in [
        ("sse9", "is not an instruction set"),
        ("neon", "not available on this CPU"),
    ] {
        if value == "neon" && Isa::Neon.is_available() {
            continue;
        }
        let o = util::bin()
            .current_dir(dir.path())
            .env("SEISPIPE_ISA", value)
            .args(["synth", "x", "--family", "FlatFault_A", "--samples", "1"])
            .output()
            .expect("run seispipe");
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let t = text(&o);
        assert!(
            t.contains("SEISPIPE_ISA") && t.contains(says) && t.contains("baseline"),
            "{t}"
        );
        assert!(!dir.path().join("x").exists());
    }
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// `seispipe host` names the CPU, its SIMD flags, the kernel copy — and says
/// when `SEISPIPE_ISA` forced a narrower one than the CPU's widest.
#[test]
fn host_names_the_cpu_and_the_forced_copy() {
    use seispipe::cpu::Isa;
    let dir = util::tempdir();
    let o = util::seispipe(dir.path(), &["host"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    let widest = Isa::detect().name();
    assert!(t.starts_with("cpu: "), "{t}");
    assert!(t.contains(&format!("kernel: {widest} (blocked)\n")), "{t}");
    assert!(t.contains("\nsubnormals: "), "{t}");
    assert!(t.contains("io: auto"), "{t}");
    assert!(!t.contains("forced"), "{t}");
    let o = util::bin()
        .current_dir(dir.path())
        .env("SEISPIPE_ISA", "baseline")
        .env("SEISPIPE_FD_KERNEL", "reference")
        .env("SEISPIPE_IO", "buffered")
        .arg("host")
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        t.contains(&format!(
            "kernel: baseline (reference) (forced by SEISPIPE_ISA; widest here: {widest})"
        )),
        "{t}"
    );
    assert!(t.contains("io: buffered"), "{t}");
}
