//! `simulate` with `device = "cpu" | "cuda:N" | "auto"`: the libtorch path run
//! end to end through the `seispipe` binary (which hands the run to
//! `seispipe-torch`) equals the Rust kernel's records on the edge-stress maps,
//! each shard records the simulator it ran on (partitions on different
//! hardware merge, and the mix is reported), a bad map in a batch is named by its
//! own file and sample, and bad devices are refused before any data is read.

use std::path::Path;

use seispipe::physics::PER_SOURCE;
use seispipe::pipeline::spec::DType;

use crate::util::{self, read_npy, rel_l2, seispipe, text, write_npy};

/// The first three edge-stress maps (slow surface over fast layers, over a
/// fast faulted block, uniform 4500 m/s: the ones that need no random draw),
/// one after another.
fn stress_maps() -> Vec<f32> {
    seispipe::synth::edge_stress_maps()
        .into_iter()
        .take(3)
        .flat_map(|(_, v)| v)
        .collect()
}

/// An OpenFWI-layout labelled input holding `vel` (n maps) and zero data.
fn write_input(root: &Path, vel: &[f32]) {
    let n = vel.len() / 4900;
    write_npy(
        &root.join("FlatVel_A/model/model1.npy"),
        DType::F32,
        &[n, 1, 70, 70],
        vel,
    );
    write_npy(
        &root.join("FlatVel_A/data/data1.npy"),
        DType::F32,
        &[n, 5, 1000, 70],
        &vec![0.0; n * 5 * PER_SOURCE],
    );
}

fn write_pipeline(dir: &Path, name: &str, input: &Path, stage: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            "seed = 3\ncopies = 1\nkeep_original = false\n[run]\nchunk_samples = 2\n[input]\npath = \"{}\"\n[output]\ndir = \"{}\"\n[[stages]]\ntype = \"simulate\"\n{stage}\n",
            input.display(),
            dir.join(name).display()
        ),
    )
    .unwrap();
    p
}

fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

fn algorithm(out: &Path) -> serde_json::Value {
    manifest(out)["versions"]["stages"][0]["algorithm"].clone()
}

#[test]
fn tch_cpu_device_runs_end_to_end_and_equals_the_rust_kernel() {
    if !util::torch_binary(
        "simulate_device::tch_cpu_device_runs_end_to_end_and_equals_the_rust_kernel",
    ) {
        return;
    }
    let t = util::tempdir();
    let d = t.path();
    let input = d.join("in");
    let vel = stress_maps();
    write_input(&input, &vel);
    for (name, stage) in [("rust", ""), ("tch", "device = \"cpu\"")] {
        let p = write_pipeline(d, name, &input, stage);
        let o = seispipe(d, &["run", "--quiet", p.to_str().unwrap()]);
        assert!(o.status.success(), "{name}: {}", text(&o));
    }
    let (shape, rust) = read_npy(&d.join("rust/data/data1.npy"));
    let (shape_t, tch) = read_npy(&d.join("tch/data/data1.npy"));
    assert_eq!(shape, vec![3, 5, 1000, 70]);
    assert_eq!(shape_t, shape);
    // Every (sample, source) record, all 1000 time samples.
    for (k, (a, b)) in tch
        .chunks_exact(PER_SOURCE)
        .zip(rust.chunks_exact(PER_SOURCE))
        .enumerate()
    {
        assert!(rust[k * PER_SOURCE..]
            .iter()
            .take(PER_SOURCE)
            .any(|&v| v != 0.0));
        let e = rel_l2(a, b);
        assert!(
            e <= 1e-5,
            "sample {}, source {}: relative L2 {e:e}",
            k / 5,
            k % 5
        );
    }
    let (_, lab) = read_npy(&d.join("tch/model/model1.npy"));
    assert_eq!(lab, vel);
    // The simulator is recorded with each shard, never in the versions: the
    // run's identity is what the user asked for, on whatever hardware.
    let a = algorithm(&d.join("tch"));
    assert_eq!(a, algorithm(&d.join("rust")));
    assert_eq!(a["physics"], seispipe::physics::ALGORITHM);
    assert!(a.get("simulator").is_none(), "{a}");
    let m = manifest(&d.join("tch"));
    assert_eq!(m["shards"][0]["devices"]["stages[0]"], "tch-cpu", "{m}");
    let m = manifest(&d.join("rust"));
    assert!(m["shards"][0].get("devices").is_none(), "{m}");

    // A bad map in the second chunk is named by its own file and sample.
    let bad_in = d.join("bad_in");
    let mut bad = vel.clone();
    bad[2 * 4900 + 75] = -5.0;
    write_input(&bad_in, &bad);
    let p = write_pipeline(d, "bad", &bad_in, "device = \"cpu\"");
    let o = seispipe(d, &["run", "--quiet", p.to_str().unwrap()]);
    let msg = text(&o);
    assert_eq!(o.status.code(), Some(1), "{msg}");
    assert!(
        msg.contains("data1.npy")
            && msg.contains("sample 2")
            && msg.contains("non-positive")
            && msg.contains("(z=1, x=5)"),
        "{msg}"
    );
}

/// `device` values refused by `seispipe check` and `run` when the pipeline
/// is built (the input files' headers are read, no sample is; no output is
/// written), with the allowed values or the reason.
#[test]
fn bad_devices_are_refused_when_the_pipeline_is_built() {
    let t = util::tempdir();
    let d = t.path();
    let input = d.join("in");
    std::fs::create_dir_all(input.join("FlatVel_A/model")).unwrap();
    std::fs::create_dir_all(input.join("FlatVel_A/data")).unwrap();
    write_npy(
        &input.join("FlatVel_A/model/model1.npy"),
        DType::F32,
        &[1, 1, 70, 70],
        &vec![2000.0; 4900],
    );
    write_npy(
        &input.join("FlatVel_A/data/data1.npy"),
        DType::F32,
        &[1, 5, 1000, 70],
        &vec![0.0; 5 * PER_SOURCE],
    );
    let refused = |name: &str, stage: &str, needles: &[&str]| {
        let p = write_pipeline(d, name, &input, stage);
        for cmd in ["check", "run"] {
            let o = seispipe(d, &[cmd, p.to_str().unwrap()]);
            let msg = text(&o);
            assert_eq!(o.status.code(), Some(2), "{cmd} {name}: {msg}");
            for n in needles {
                assert!(msg.contains(n), "{cmd} {name}: expected {n:?} in\n{msg}");
            }
            assert!(msg.contains("simulate"), "{msg}");
            assert!(
                !d.join(name).join("data").exists(),
                "{cmd} {name} wrote data"
            );
        }
    };
    refused(
        "gpu",
        "device = \"gpu\"",
        &["\"gpu\" is not a device", "\"cpu\"", "cuda:N", "\"auto\""],
    );
    refused(
        "cuda",
        "device = \"cuda\"",
        &["\"cuda\" is not a device", "cuda:N"],
    );
    if !util::torch_binary("simulate_device::bad_devices_are_refused_when_the_pipeline_is_built") {
        return;
    }
    // More GPUs than any machine has; and cuda:3, refused unless this machine
    // has four GPUs or more.
    refused(
        "cuda9999",
        "device = \"cuda:9999\"",
        &["cuda:9999", "CUDA device"],
    );
    let p = write_pipeline(d, "cuda3", &input, "device = \"cuda:3\"");
    let o = seispipe(d, &["check", p.to_str().unwrap()]);
    if !o.status.success() {
        let msg = text(&o);
        assert_eq!(o.status.code(), Some(2), "{msg}");
        assert!(
            msg.contains("cuda:3") && msg.contains("CUDA device"),
            "{msg}"
        );
    }
}

/// A `seispipe` binary without `seispipe-torch` beside it refuses a tch
/// device by saying what is missing, and runs `device = "auto"` on the Rust
/// kernel.
#[test]
fn tch_devices_without_seispipe_torch_are_refused() {
    let t = util::tempdir();
    let d = t.path();
    let lone = d.join("seispipe");
    std::fs::copy(env!("CARGO_BIN_EXE_seispipe"), &lone).unwrap();
    let input = d.join("in");
    write_input(&input, &vec![2000.0; 4900]);
    let lone_run = |args: &[&str]| {
        std::process::Command::new(&lone)
            .current_dir(d)
            .args(args)
            .output()
            .unwrap()
    };
    for (dev, cmd) in [("cpu", "run"), ("cuda:0", "run"), ("cpu", "check")] {
        let p = write_pipeline(d, "lone", &input, &format!("device = \"{dev}\""));
        let o = lone_run(&[cmd, p.to_str().unwrap()]);
        let msg = text(&o);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {msg}");
        assert!(
            msg.contains(&format!("device = \"{dev}\""))
                && msg.contains("seispipe-torch")
                && msg.contains("leave device out"),
            "{msg}"
        );
        assert!(!d.join("lone/data").exists());
    }
    let p = write_pipeline(d, "auto", &input, "device = \"auto\"");
    let o = lone_run(&["run", "--quiet", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let p = write_pipeline(d, "rust", &input, "");
    let o = lone_run(&["run", "--quiet", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let (_, a) = read_npy(&d.join("auto/data/data1.npy"));
    let (_, b) = read_npy(&d.join("rust/data/data1.npy"));
    assert_eq!(a, b, "auto without libtorch is the Rust kernel");
    assert!(algorithm(&d.join("auto")).get("simulator").is_none());
}

/// A model backend that reports one CUDA device whose simulator is the
/// built-in Rust kernel: a stand-in for a GPU node.
struct StandInGpu;

struct KernelOnGpu(String);

impl seispipe::model::Simulator for KernelOnGpu {
    fn simulate(
        &self,
        maps: &[f32],
        sources: &[usize],
    ) -> Result<Vec<f32>, seispipe::model::ModelError> {
        let mut out = Vec::with_capacity(maps.len() / 4900 * sources.len() * PER_SOURCE);
        for m in maps.chunks_exact(4900) {
            let medium = seispipe::physics::Medium::new(m, false)
                .map_err(|e| seispipe::model::ModelError::Run(e.to_string()))?;
            for &sx in sources {
                let mut o = vec![0f32; PER_SOURCE];
                medium.simulate_source(sx, &mut o);
                out.extend(o);
            }
        }
        Ok(out)
    }

    fn device(&self) -> String {
        self.0.clone()
    }
}

impl seispipe::model::ModelBackend for StandInGpu {
    fn load_models(
        &self,
        _: &seispipe::model::LoadRequest,
    ) -> Result<Vec<Box<dyn seispipe::model::Model>>, seispipe::model::ModelError> {
        Err(seispipe::model::ModelError::Model(
            "the stand-in GPU backend loads no models".into(),
        ))
    }

    fn make_demo_model(
        &self,
        _: &seispipe::model::DemoModelRequest,
    ) -> seispipe::error::Result<String> {
        Err(seispipe::error::Error::config("stand-in", "no demo model"))
    }

    fn cuda_device_count(&self) -> usize {
        1
    }

    fn simulator(
        &self,
        device: &str,
    ) -> Result<Box<dyn seispipe::model::Simulator>, seispipe::model::ModelError> {
        Ok(Box::new(KernelOnGpu(device.to_string())))
    }
}

/// `device = "auto"` over partitions that see different hardware: partition
/// 0/2 runs on a (stand-in) GPU node, partition 1/2 on a CPU-only one, and a
/// CPU-only process merges them. The run's identity is what the user asked
/// for, so nothing is refused; each shard records where it was simulated,
/// and merge and verify report the mix.
#[test]
fn device_auto_partitions_on_different_hardware_merge_on_a_cpu_node() {
    let t = util::tempdir();
    let d = t.path();
    let input = d.join("in");
    let vel: Vec<f32> = seispipe::synth::edge_stress_maps()
        .into_iter()
        .take(4)
        .flat_map(|(_, v)| v)
        .collect();
    write_input(&input, &vel);
    let p = d.join("auto.toml");
    std::fs::write(
        &p,
        format!(
            "seed = 3\ncopies = 1\nkeep_original = false\n[run]\nchunk_samples = 1\n[input]\npath = \"{}\"\n[output]\ndir = \"out\"\nsamples_per_shard = 1\n[[stages]]\ntype = \"simulate\"\nsource_positions = [34]\ndevice = \"auto\"\n",
            input.display()
        ),
    )
    .unwrap();
    let ps = p.to_str().unwrap();

    let gpu = seispipe::model::Backend(std::sync::Arc::new(StandInGpu));
    let code = seispipe::app::main_from(
        ["seispipe", "run", ps, "-q", "--partition", "0/2"],
        Some(gpu),
        None,
    );
    assert_eq!(
        code,
        std::process::ExitCode::SUCCESS,
        "partition 0/2 on the GPU node"
    );
    util::run_ok(d, &["run", ps, "-q", "--partition", "1/2"]);
    let o = util::run_ok(d, &["merge", "out"]);
    let msg = util::text(&o);
    assert!(
        msg.contains("devices: stages[0]: tch-cuda:0 (shards 1–2), rust (shards 3–4) — a mix"),
        "{msg}"
    );
    let o = util::seispipe(d, &["verify", "out"]);
    let report = util::text(&o);
    assert_eq!(o.status.code(), Some(0), "{report}");
    assert!(
        report.contains("devices: stages[0]: tch-cuda:0 (shards 1–2), rust (shards 3–4)"),
        "{report}"
    );

    // The merged shards are those of one run on a CPU node (the stand-in
    // GPU computes with the same kernel), and so are the versions.
    util::run_ok(d, &["run", ps, "-q", "--set", "output.dir=single"]);
    for k in 1..=4 {
        for f in [format!("data/data{k}.npy"), format!("model/model{k}.npy")] {
            let a = std::fs::read(d.join("out").join(&f)).unwrap();
            let b = std::fs::read(d.join("single").join(&f)).unwrap();
            assert!(a == b, "{f}");
        }
    }
    assert_eq!(
        manifest(&d.join("out"))["versions"],
        manifest(&d.join("single"))["versions"]
    );
    assert_eq!(
        manifest(&d.join("out"))["fingerprint"],
        manifest(&d.join("single"))["fingerprint"]
    );
}
