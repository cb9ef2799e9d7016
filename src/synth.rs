//! `seispipe synth`: OpenFWI-like velocity families and their simulated
//! seismic data, written as standard shards.
//!
//! Families (all velocities in 1500–4500 m/s, 70 × 70 at 10 m):
//!
//! * `FlatVel_A|B` — horizontal layers. A: 2–4 layers, velocity increasing
//!   with depth, steps of 150–700 m/s. B: 4–8 layers in any order, steps up to
//!   1500 m/s.
//! * `CurveVel_A|B` — the same layer stacks folded by one shared sinusoid
//!   (amplitude 2–10 cells, wavelength 40–140 cells) plus a gentle tilt.
//! * `FlatFault_A|B`, `CurveFault_A|B` — flat or curved stacks cut by one
//!   straight fault (dip 50–80° either way, crossing mid-depth at x = 20–50);
//!   the side right of it is shifted down by 4–15 cells.
//!
//! Each map is drawn from its own generator
//! `rng::stage_rng(seed, "synth/<family>", file, sample, 0)` (see
//! [`crate::rng`]), so any file can be regenerated alone. Labelled output uses
//! the competition layout: `<out>/<family>/data/data<k>.npy` +
//! `model/model<k>.npy` (k = 1, 2, …) for `*Vel_*`, and flat
//! `seis<g>_1_<k>.npy` + `vel<g>_1_<k>.npy` (g = 2 for A, 6 for B, k = 0, 1, …)
//! for `*Fault_*`. Unlabelled output writes one `(5, 1000, 70)` file per sample
//! named by 10 hex digits of SHA-256(seed, family, sample), like Kaggle's
//! `test/` files. Every file is written atomically through [`npy::NpyWriter`].

use std::path::{Path, PathBuf};

use rand::Rng;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::io::npy::{self, NpyWriter, WrittenFile};
use crate::physics::{self, NX, NZ, PER_SOURCE, SOURCE_X};
use crate::pipeline::spec::DType;
use crate::rng::{stage_rng, StageRng};

/// The velocity families `synth` can draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// Curved (folded) layers instead of flat ones.
    pub curved: bool,
    /// Cut by a fault.
    pub fault: bool,
    /// B: more layers, more contrast.
    pub b: bool,
}

/// Every family name, as written on the command line.
pub const FAMILIES: [&str; 8] = [
    "FlatVel_A",
    "FlatVel_B",
    "CurveVel_A",
    "CurveVel_B",
    "FlatFault_A",
    "FlatFault_B",
    "CurveFault_A",
    "CurveFault_B",
];

impl Family {
    /// Parse a family name (`FlatVel_A` … `CurveFault_B`).
    ///
    /// # Errors
    /// An unknown name, with the list of known ones.
    pub fn parse(name: &str) -> std::result::Result<Family, UnknownFamily> {
        let (kind, grade) = name.split_once('_').unwrap_or((name, ""));
        let b = match grade {
            "A" => false,
            "B" => true,
            _ => return Err(unknown(name)),
        };
        let (curved, fault) = match kind {
            "FlatVel" => (false, false),
            "CurveVel" => (true, false),
            "FlatFault" => (false, true),
            "CurveFault" => (true, true),
            _ => return Err(unknown(name)),
        };
        Ok(Family { curved, fault, b })
    }

    /// The family's name.
    #[must_use]
    pub fn name(self) -> String {
        let kind = match (self.curved, self.fault) {
            (false, false) => "FlatVel",
            (true, false) => "CurveVel",
            (false, true) => "FlatFault",
            (true, true) => "CurveFault",
        };
        format!("{kind}_{}", if self.b { "B" } else { "A" })
    }

    /// Draw one 70 × 70 map (z then x).
    pub fn draw(self, rng: &mut StageRng) -> Vec<f32> {
        let (layers, vels) = layer_stack(self.b, rng);
        // Interface depths (cells) of the layer boundaries at x = 0, sorted.
        let mut tops: Vec<f64> = (1..layers).map(|_| rng.random_range(4.0..66.0)).collect();
        tops.sort_by(f64::total_cmp);
        let (amp, wavelength, phase, tilt) = if self.curved {
            (
                rng.random_range(2.0..10.0),
                rng.random_range(40.0..140.0),
                rng.random_range(0.0..std::f64::consts::TAU),
                rng.random_range(-0.08..0.08),
            )
        } else {
            (0.0, 1.0, 0.0, 0.0)
        };
        // Layer index at (z, x) before faulting.
        let layer_at = |z: f64, x: f64| -> usize {
            let shift = amp * (std::f64::consts::TAU * x / wavelength + phase).sin() + tilt * x;
            tops.iter().filter(|&&t| z >= t + shift).count()
        };
        let fault = if self.fault {
            let dip: f64 = rng.random_range(50f64..80.0).to_radians();
            let side = if rng.random::<bool>() { 1.0 } else { -1.0 };
            Some((
                rng.random_range(20.0..50.0),
                side / dip.tan(),
                rng.random_range(4.0..15.0),
            ))
        } else {
            None
        };
        let mut v = vec![0f32; NX * NZ];
        for z in 0..NZ {
            for x in 0..NX {
                let (zf, xf) = (z as f64, x as f64);
                let mut zs = zf;
                if let Some((x0, slope, throw)) = fault {
                    // Cells right of the fault line x = x0 + slope·(z − 35)
                    // (it crosses mid-depth at x0) show the stack shifted down.
                    if xf > x0 + slope * (zf - 35.0) {
                        zs = zf - throw;
                    }
                }
                v[z * NX + x] = vels[layer_at(zs, xf).min(vels.len() - 1)];
            }
        }
        v
    }
}

fn unknown(name: &str) -> UnknownFamily {
    UnknownFamily {
        name: name.to_string(),
    }
}

/// A family name that is none of OpenFWI's ten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown family `{name}`; expected one of {known}", known = FAMILIES.join(", "))]
pub struct UnknownFamily {
    /// The name given.
    pub name: String,
}

/// Number of layers and their velocities (top to bottom).
fn layer_stack(b: bool, rng: &mut StageRng) -> (usize, Vec<f32>) {
    let (lo, hi) = (1500.0f64, 4500.0f64);
    if b {
        let n = rng.random_range(4..=8);
        let mut v = vec![rng.random_range(lo..3000.0)];
        for _ in 1..n {
            let prev = *v.last().expect("non-empty");
            let step = rng.random_range(300.0..1500.0)
                * if rng.random::<f64>() < 0.75 {
                    1.0
                } else {
                    -1.0
                };
            v.push((prev + step).clamp(lo, hi));
        }
        (n, v.into_iter().map(|x| x.round() as f32).collect())
    } else {
        let n = rng.random_range(2..=4);
        let mut v = vec![rng.random_range(lo..2500.0)];
        for _ in 1..n {
            let prev = *v.last().expect("non-empty");
            v.push((prev + rng.random_range(150.0..700.0)).min(hi));
        }
        (n, v.into_iter().map(|x| x.round() as f32).collect())
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Output directory.
    pub out: PathBuf,
    /// Family name.
    pub family: Family,
    /// Samples per file (labelled) or files (unlabelled).
    pub samples: usize,
    /// Number of shard files (labelled only).
    pub files: usize,
    /// Seed of every map.
    pub seed: u64,
    /// Element type of the written arrays.
    pub dtype: DType,
    /// Write one-sample unlabelled test files instead of labelled shards.
    pub unlabelled: bool,
    /// The time-loop kernel and vector copy (same bits either way).
    pub compute: crate::cpu::Compute,
}

/// Samples simulated together (bounds memory: ~1.2 MB of coefficients each).
const BATCH: usize = 16;

/// Generate the files (see the module docs) and return them in order.
///
/// # Errors
/// Invalid options, a simulation failure, or I/O errors, with their paths.
pub fn synth(o: &SynthOptions) -> Result<Vec<WrittenFile>> {
    if o.samples == 0 || (!o.unlabelled && o.files == 0) {
        return Err(Error::config(
            "synth",
            "--samples and --files must be at least 1",
        ));
    }
    let name = o.family.name();
    let id = format!("synth/{name}");
    let mut written = Vec::new();
    if o.unlabelled {
        std::fs::create_dir_all(&o.out).map_err(|e| Error::io(&o.out, "create directory", e))?;
        let maps: Vec<Vec<f32>> = (0..o.samples)
            .map(|i| o.family.draw(&mut stage_rng(o.seed, &id, 0, i as u64, 0)))
            .collect();
        for (i, chunk) in maps.chunks(BATCH).enumerate() {
            let seis = simulate(chunk, &o.out, i * BATCH, o.compute)?;
            for (j, s) in seis.chunks_exact(5 * PER_SOURCE).enumerate() {
                let k = i * BATCH + j;
                let path = o.out.join(format!("{}.npy", test_id(o.seed, &name, k)));
                written.push(npy::write_array(&path, o.dtype, &[5, 1000, 70], s)?);
            }
        }
        return Ok(written);
    }
    let dir = o.out.join(&name);
    for f in 0..o.files {
        let (data, model) = if o.family.fault {
            let g = if o.family.b { 6 } else { 2 };
            (
                dir.join(format!("seis{g}_1_{f}.npy")),
                dir.join(format!("vel{g}_1_{f}.npy")),
            )
        } else {
            (
                dir.join("data").join(format!("data{}.npy", f + 1)),
                dir.join("model").join(format!("model{}.npy", f + 1)),
            )
        };
        for p in [&data, &model] {
            let parent = p.parent().expect("joined path has a parent");
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(parent, "create directory", e))?;
        }
        let maps: Vec<Vec<f32>> = (0..o.samples)
            .map(|i| {
                o.family
                    .draw(&mut stage_rng(o.seed, &id, f as u64, i as u64, 0))
            })
            .collect();
        let mut dw = NpyWriter::create(
            &data,
            &rel(&o.out, &data),
            o.dtype,
            &[o.samples, 5, 1000, 70],
        )?;
        for (i, chunk) in maps.chunks(BATCH).enumerate() {
            let seis = simulate(chunk, &data, i * BATCH, o.compute)?;
            for s in seis.chunks_exact(5 * PER_SOURCE) {
                dw.write_item(s)?;
            }
        }
        written.push(dw.finish()?);
        let mut mw = NpyWriter::create(
            &model,
            &rel(&o.out, &model),
            o.dtype,
            &[o.samples, 1, 70, 70],
        )?;
        for m in &maps {
            mw.write_item(m)?;
        }
        written.push(mw.finish()?);
    }
    Ok(written)
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

fn simulate(
    maps: &[Vec<f32>],
    path: &Path,
    first: usize,
    compute: crate::cpu::Compute,
) -> Result<Vec<f32>> {
    let flat: Vec<f32> = maps.concat();
    let mut out = vec![0f32; maps.len() * SOURCE_X.len() * PER_SOURCE];
    physics::simulate_batch_with(&flat, &SOURCE_X, false, compute, &mut out).map_err(|e| {
        Error::Sample {
            path: path.to_path_buf(),
            index: first + e.sample,
            reason: e.reason.to_string(),
        }
    })?;
    Ok(out)
}

/// Velocity maps (70 × 70, m/s, row-major) that send the most energy to the
/// padded grid's outer edge — the sponge is tuned to a map's slowest
/// velocity —, for the tests and benchmarks that check the simulator there:
/// a slow surface over fast layers, a slow surface over a fast faulted block
/// (dipping interfaces offset by 9 rows across a fault at x = 40), a uniform
/// 4500 m/s map, and a CurveFault_B draw with its top 5 rows at 1550 m/s.
#[must_use]
pub fn edge_stress_maps() -> Vec<(&'static str, Vec<f32>)> {
    let layered: Vec<f32> = (0..NZ * NX)
        .map(|i| match i / NX {
            0..=7 => 1500.0,
            8..=19 => 1800.0,
            20..=39 => 4000.0,
            40..=54 => 4300.0,
            _ => 4500.0,
        })
        .collect();
    let faulted: Vec<f32> = (0..NZ * NX)
        .map(|i| {
            let (z, x) = (i / NX, i % NX);
            let depth = z as f32 - x as f32 * 0.15 + if x >= 40 { 9.0 } else { 0.0 };
            if z < 6 {
                1650.0
            } else if depth < 22.0 {
                4000.0
            } else if depth < 40.0 {
                4250.0
            } else {
                4500.0
            }
        })
        .collect();
    let mut curve_fault = Family::parse("CurveFault_B")
        .expect("a known family")
        .draw(&mut stage_rng(11, "edge", 0, 0, 0));
    for v in &mut curve_fault[..5 * NX] {
        *v = 1550.0;
    }
    vec![
        ("slow surface over fast layers", layered),
        ("slow surface over a fast faulted block", faulted),
        ("uniform 4500 m/s", vec![4500.0; NZ * NX]),
        ("CurveFault_B with a 1550 m/s surface", curve_fault),
    ]
}

/// The 10-hex-digit id of unlabelled sample `k`.
#[must_use]
pub fn test_id(seed: u64, family: &str, k: usize) -> String {
    let mut h = Sha256::new();
    h.update(b"seispipe-synth-test\0");
    h.update(seed.to_le_bytes());
    h.update(family.as_bytes());
    h.update((k as u64).to_le_bytes());
    npy::hex(&h.finalize())[..10].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_parse_and_draw_in_range() {
        for name in FAMILIES {
            let f = Family::parse(name).unwrap();
            assert_eq!(f.name(), name);
            for s in 0..20 {
                let v = f.draw(&mut stage_rng(1, name, 0, s, 0));
                assert!(v.iter().all(|x| (1500.0..=4500.0).contains(x)), "{name}");
                let distinct = {
                    let mut d: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
                    d.sort_unstable();
                    d.dedup();
                    d.len()
                };
                assert!(distinct >= 1);
            }
        }
        assert!(Family::parse("FlatVel_C")
            .unwrap_err()
            .to_string()
            .contains("CurveFault_B"));
    }

    #[test]
    fn test_ids_are_hex() {
        let id = test_id(0, "CurveVel_A", 3);
        assert_eq!(id.len(), 10);
        assert!(id
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }
}
