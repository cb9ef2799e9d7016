//! The OpenFWI-exact simulation (`seispipe::physics`) as tensor operations,
//! for many (map, source) pairs at once on a libtorch device: the `simulate`
//! stage's `device = "cpu" | "cuda:N"` (see `seispipe::model::Simulator`).
//!
//! The fields are `(maps, sources, 310, 310)` f32 tensors; the coefficients
//! `(maps, 1, 310, 310)`, broadcast over sources, are the Rust kernel's own
//! values ([`seispipe::physics::dense`]). One time step:
//!
//! 1. the field gets a 2-cell periodic frame (two `cat`s: the last two rows
//!    above, the first two below, then the same for columns), which is
//!    `np.roll` / `torch.roll` on both axes with the shifted fields read as
//!    views of the framed one instead of copied;
//! 2. `s1 = p[x−1] + p[x+1] + p[z−1] + p[z+1]`, `s2` likewise at distance 2,
//!    in the Rust kernel's summation order;
//! 3. `p⁺ = (t1·p − t2·p⁻) + α·(c2·s1 + c3·s2)`, written into `p⁻`'s tensor;
//! 4. `p⁺[source] += (v_src·dt)²·w[t]` (one gather and one scatter), and the
//!    receivers' row is copied into the record.
//!
//! Every operation is a separate IEEE f32 multiply or add in the same order as
//! the Rust kernel (`c2` and `c3` are passed as their f32 values), so no
//! contraction into FMA can occur between them: on CPU the records equal the
//! Rust kernel's (the test checks relative L2 ≤ 1e-5, and reports the bits).
//!
//! Cost: unfused, a step is about 20 tensor operations, some 40 passes over
//! the `(maps, sources, 310, 310)` f32 field (~170 bytes per cell update for
//! 14 flops), so on a GPU it is bound by memory bandwidth, not arithmetic:
//! see docs/physics.md ("CUDA: unmeasured") for the estimate.

use tch::{Device, Kind, Tensor};

use seispipe::model::{ModelError, Simulator};
use seispipe::physics::dense::{self, DenseCoefficients, CELLS};
use seispipe::physics::sponge::Coefficients;
use seispipe::physics::{C2, C3, NBC, NPAD, NT, NX, NZ, RECEIVER_Z, SOURCE_Z};

use crate::torchscript::resolve_device;

/// Maps per tensor batch on CUDA (about 20 MB of device memory per map with
/// five sources) and on CPU (small, so a batch's fields stay in cache).
const CUDA_MAPS: usize = 64;
const CPU_MAPS: usize = 2;

/// The tch simulator on one device.
pub struct TchSimulator {
    device: Device,
    name: String,
}

impl TchSimulator {
    /// A simulator on `name` (`"cpu"` or `"cuda:N"`).
    ///
    /// # Errors
    /// An unknown device, or a CUDA device libtorch does not see.
    pub fn new(name: &str) -> Result<TchSimulator, ModelError> {
        if name == "auto" {
            return Err(ModelError::Device(
                "device = \"auto\" is resolved by the stage; the simulator needs \"cpu\" or \"cuda:N\""
                    .into(),
            ));
        }
        let device = resolve_device(name)?;
        Ok(TchSimulator {
            device,
            name: name.to_string(),
        })
    }

    fn batch_maps(&self) -> usize {
        if self.device == Device::Cpu {
            CPU_MAPS
        } else {
            CUDA_MAPS
        }
    }
}

fn err(what: &str) -> impl Fn(tch::TchError) -> String + '_ {
    move |e| format!("tch simulation ({what}): {e}")
}

fn i64_of(n: usize) -> i64 {
    i64::try_from(n).expect("sizes fit i64")
}

impl TchSimulator {
    fn simulate_maps(&self, maps: &[f32], sources: &[usize]) -> Result<Vec<f32>, String> {
        let per_map = NZ * NX;
        if !maps.len().is_multiple_of(per_map) {
            return Err(format!(
                "{} velocity values, not a multiple of 70 × 70",
                maps.len()
            ));
        }
        if let Some(s) = sources.iter().find(|&&s| s >= NX) {
            return Err(format!("source position {s} is out of range 0..=69"));
        }
        let _guard = tch::no_grad_guard();
        let per_out = sources.len() * NT * NX;
        let mut out = Vec::with_capacity(maps.len() / per_map * per_out);
        for group in maps.chunks(self.batch_maps() * per_map) {
            out.extend(self.simulate_group(group, sources)?);
        }
        Ok(out)
    }
}

impl Simulator for TchSimulator {
    fn simulate(&self, maps: &[f32], sources: &[usize]) -> Result<Vec<f32>, ModelError> {
        self.simulate_maps(maps, sources).map_err(ModelError::Run)
    }

    fn device(&self) -> String {
        self.name.clone()
    }
}

impl TchSimulator {
    /// One tensor batch: all of `maps` × all of `sources`.
    #[allow(clippy::similar_names, clippy::too_many_lines)]
    fn simulate_group(&self, maps: &[f32], sources: &[usize]) -> Result<Vec<f32>, String> {
        let per_map = NZ * NX;
        let m = maps.len() / per_map;
        let s = sources.len();
        let (mi, si, np, nx) = (i64_of(m), i64_of(s), i64_of(NPAD), i64_of(NX));
        let dev = self.device;
        // Coefficients and amplitudes, built on the host.
        let (mut alpha, mut t1, mut t2) = (
            Vec::with_capacity(m * CELLS),
            Vec::with_capacity(m * CELLS),
            Vec::with_capacity(m * CELLS),
        );
        let mut amp = Vec::with_capacity(m * s * NT);
        for vel in maps.chunks_exact(per_map) {
            let coef = Coefficients::new(vel)
                .map_err(|e| format!("a map that passed validation fails here: {e}"))?;
            let d = DenseCoefficients::new(&coef);
            alpha.extend_from_slice(&d.alpha);
            t1.extend_from_slice(&d.t1);
            t2.extend_from_slice(&d.t2);
            for &sx in sources {
                amp.extend(dense::source_amplitudes(vel, sx));
            }
        }
        let table = |v: &[f32]| -> Result<Tensor, String> {
            Tensor::f_from_slice(v)
                .and_then(|t| t.f_view([mi, 1, np, np]))
                .and_then(|t| t.f_to_device(dev))
                .map_err(err("coefficients"))
        };
        let (alpha, t1, t2) = (table(&alpha)?, table(&t1)?, table(&t2)?);
        // amp[:, t] as a (m·s, 1) column: time-major so each step's column is contiguous.
        let amp = Tensor::f_from_slice(&amp)
            .and_then(|t| t.f_view([mi * si, i64_of(NT)]))
            .and_then(|t| t.f_transpose(0, 1))
            .and_then(|t| t.f_contiguous())
            .and_then(|t| t.f_to_device(dev))
            .map_err(err("amplitudes"))?;
        let src_cells: Vec<i64> = (0..m)
            .flat_map(|_| sources.iter())
            .map(|&sx| i64_of((SOURCE_Z + NBC) * NPAD + NBC + sx))
            .collect();
        let src_idx = Tensor::f_from_slice(&src_cells)
            .and_then(|t| t.f_view([mi * si, 1]))
            .and_then(|t| t.f_to_device(dev))
            .map_err(err("source cells"))?;
        let opts = (Kind::Float, dev);
        let mut cur = Tensor::f_zeros([mi, si, np, np], opts).map_err(err("fields"))?;
        let mut prev = Tensor::f_zeros([mi, si, np, np], opts).map_err(err("fields"))?;
        let record = Tensor::f_zeros([i64_of(NT), mi, si, nx], opts).map_err(err("record"))?;
        let (c2, c3) = (f64::from(C2 as f32), f64::from(C3 as f32));
        let rz = i64_of(RECEIVER_Z + NBC);
        let nbc = i64_of(NBC);
        for t in 0..NT {
            let ti = i64_of(t);
            step(&cur, &mut prev, &alpha, &t1, &t2, c2, c3).map_err(err("step"))?;
            std::mem::swap(&mut cur, &mut prev);
            // Inject after the update, record right after the injection.
            let flat = cur
                .f_view([mi * si, i64_of(CELLS)])
                .map_err(err("inject"))?;
            let a = amp
                .f_narrow(0, ti, 1)
                .and_then(|a| a.f_view([mi * si, 1]))
                .map_err(err("inject"))?;
            let v = flat
                .f_gather(1, &src_idx, false)
                .and_then(|v| v.f_add(&a))
                .map_err(err("inject"))?;
            let mut flat = flat;
            let _ = flat.f_scatter_(1, &src_idx, &v).map_err(err("inject"))?;
            let rec = cur
                .f_narrow(2, rz, 1)
                .and_then(|r| r.f_narrow(3, nbc, nx))
                .and_then(|r| r.f_view([mi, si, nx]))
                .map_err(err("record"))?;
            let mut slot = record.f_select(0, ti).map_err(err("record"))?;
            slot.f_copy_(&rec).map_err(err("record"))?;
        }
        let host = record
            .f_permute([1, 2, 0, 3])
            .and_then(|r| r.f_contiguous())
            .and_then(|r| r.f_to_device(Device::Cpu))
            .map_err(err("copy back"))?;
        let n = m * s * NT * NX;
        let mut out = vec![0f32; n];
        host.f_copy_data(&mut out, n).map_err(err("copy back"))?;
        Ok(out)
    }
}

/// One leapfrog step: `next ← (t1·p − t2·next) + α·(c2·s1 + c3·s2)` with the
/// Laplacian wrapping periodically at the padded grid's edge.
fn step(
    p: &Tensor,
    next: &mut Tensor,
    alpha: &Tensor,
    t1: &Tensor,
    t2: &Tensor,
    c2: f64,
    c3: f64,
) -> Result<(), tch::TchError> {
    let np = i64_of(NPAD);
    // A 2-cell periodic frame: row z + 2 of `q` is padded row z (mod 310).
    let rows = Tensor::f_cat(
        &[
            p.f_narrow(2, np - 2, 2)?,
            p.shallow_clone(),
            p.f_narrow(2, 0, 2)?,
        ],
        2,
    )?;
    let q = Tensor::f_cat(
        &[
            rows.f_narrow(3, np - 2, 2)?,
            rows.shallow_clone(),
            rows.f_narrow(3, 0, 2)?,
        ],
        3,
    )?;
    let at = |dz: i64, dx: i64| -> Result<Tensor, tch::TchError> {
        q.f_narrow(2, 2 + dz, np)?.f_narrow(3, 2 + dx, np)
    };
    // Summation order of the Rust kernel: x−1, x+1, z−1, z+1.
    let mut s1 = at(0, -1)?.f_add(&at(0, 1)?)?;
    let _ = s1.f_add_(&at(-1, 0)?)?;
    let _ = s1.f_add_(&at(1, 0)?)?;
    let mut s2 = at(0, -2)?.f_add(&at(0, 2)?)?;
    let _ = s2.f_add_(&at(-2, 0)?)?;
    let _ = s2.f_add_(&at(2, 0)?)?;
    let _ = s1.f_mul_scalar_(c2)?;
    let _ = s2.f_mul_scalar_(c3)?;
    let _ = s1.f_add_(&s2)?;
    let _ = s1.f_mul_(alpha)?;
    // next = (t1·p − t2·next) + α·lap
    let _ = next.f_mul_(t2)?;
    let mut a = p.f_mul(t1)?;
    let _ = a.f_sub_(next)?;
    let _ = a.f_add_(&s1)?;
    *next = a;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use seispipe::physics::{self, PER_SOURCE, SOURCE_X};

    fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
        let num: f64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
            .sum();
        let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
        (num / den).sqrt()
    }

    /// The device the equality test runs on: `SEISPIPE_SIM_DEVICE`
    /// (scripts/gpu-check.sh sets `cuda:0`), else `cpu`.
    fn test_device() -> String {
        std::env::var("SEISPIPE_SIM_DEVICE").unwrap_or_else(|_| "cpu".into())
    }

    /// All 1000 samples of all five sources on every edge-stress map, against
    /// the Rust kernel: relative L2 ≤ 1e-5 per (map, source), the late record
    /// (t ≥ 700, where the wrapped edge's energy is) included on its own.
    #[test]
    fn tch_matches_the_rust_kernel_on_edge_stress_maps() {
        let device = test_device();
        let sim = TchSimulator::new(&device).unwrap();
        let maps = seispipe::synth::edge_stress_maps();
        let vels: Vec<f32> = maps.iter().flat_map(|(_, v)| v.iter().copied()).collect();
        let got = sim.simulate(&vels, &SOURCE_X).unwrap();
        let mut want = vec![0f32; maps.len() * SOURCE_X.len() * PER_SOURCE];
        physics::simulate_batch(&vels, &SOURCE_X, false, &mut want).unwrap();
        assert_eq!(got.len(), want.len());
        let (mut worst, mut worst_late, mut same_bits) = (0f64, 0f64, 0usize);
        for (k, (g, w)) in got
            .chunks_exact(PER_SOURCE)
            .zip(want.chunks_exact(PER_SOURCE))
            .enumerate()
        {
            let (name, sx) = (maps[k / 5].0, SOURCE_X[k % 5]);
            assert!(
                g.iter().all(|v| v.is_finite()),
                "{name}, source {sx}: non-finite"
            );
            let e = rel_l2(g, w);
            let late = rel_l2(&g[700 * NX..], &w[700 * NX..]);
            assert!(
                e <= 1e-5 && late <= 1e-5,
                "{name}, source {sx} on {device}: relative L2 {e:e} (t ≥ 700: {late:e}), bound 1e-5"
            );
            worst = worst.max(e);
            worst_late = worst_late.max(late);
            same_bits += g
                .iter()
                .zip(w)
                .filter(|(a, b)| a.to_bits() == b.to_bits())
                .count();
        }
        eprintln!(
            "tch {device} vs Rust kernel: worst relative L2 {worst:.2e} (t ≥ 700: {worst_late:.2e}); {same_bits} of {} values bit-identical",
            want.len()
        );
    }

    /// A map with a single source and a subset of sources: the layout of the
    /// output is (maps, sources, time, receiver) for any source list.
    #[test]
    fn source_lists_and_groups_keep_the_layout() {
        let sim = TchSimulator::new("cpu").unwrap();
        // 3 maps: more than one CPU group.
        let vels: Vec<f32> = (0..3 * 4900)
            .map(|i| 1500.0 + ((i / 4900) * 700) as f32 + (i % 70) as f32 * 5.0)
            .collect();
        let sources = [69, 3];
        let got = sim.simulate(&vels, &sources).unwrap();
        let mut want = vec![0f32; 3 * 2 * PER_SOURCE];
        physics::simulate_batch(&vels, &sources, false, &mut want).unwrap();
        let e = rel_l2(&got, &want);
        assert!(e <= 1e-5, "relative L2 {e:e}");
    }

    #[test]
    fn missing_cuda_devices_are_refused() {
        let count = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
        let name = format!("cuda:{}", count + 2);
        let e = TchSimulator::new(&name)
            .err()
            .expect("no such device")
            .to_string();
        assert!(e.contains(&name) && e.contains("CUDA device"), "{e}");
        let e = TchSimulator::new("auto").err().unwrap().to_string();
        assert!(e.contains("auto"), "{e}");
    }
}
