//! The OpenFWI absorbing sponge and the per-cell update coefficients.
//!
//! The 70 × 70 model is padded by edge replication to 310 × 310 (120 cells on
//! every side). The damping profile is OpenFWI's `AbcCoef2D`:
//! `damp1d[i] = κ0·(i·dx/a)²` for `i = 0..119` counted outward from the
//! model's edge, `a = 119·dx`, `κ0 = 3·vmin·ln(10⁷)/(2a)` with `vmin` the
//! padded model's minimum (= the model's minimum). The left and right zones
//! span the full height, corners included; the top and bottom zones cover only
//! the 70 interior columns, so a corner cell is damped by its horizontal
//! distance alone (a top/bottom write never overwrites a corner).
//!
//! The update is `p⁺ = t1·p − t2·p⁻ + α·(c2·Σ±1 + c3·Σ±2)` with
//! `α = (v·dt/dx)²`, `κ = damp·dt`, `t1 = 2 + 2·c1·α − κ`, `t2 = 1 − κ`.
//! [`Coefficients`] holds `α`, `t1` and `t2` per cell in a compact form,
//! computed as the OpenFWI generator computes them ([`CellCoefficients`]):
//! in float32 arithmetic from the float32 map, one rounding per operation,
//! as NumPy evaluates these expressions on float32 arrays.

use super::{C1, DT, DX, NBC, NPAD, NW, NX, NZ};

/// `dt` as the float32 NumPy casts the Python scalar `1e-3` to next to a
/// float32 array.
pub const DT32: f32 = 1e-3;
/// `dx` as float32.
pub const DX32: f32 = 10.0;

/// One cell's update coefficients in the generator's float32 arithmetic:
/// each operation of `α = (v·dt/dx)²`, `κ = damp·dt`, `t1 = 2 + 2·c1·α − κ`
/// and `t2 = 1 − κ` rounds to f32, evaluated left to right as Python does
/// (`2·c1` is the exact scalar −5). The damping profile is computed in f64
/// (from Python scalars and an index range) and rounded to f32 once, where
/// the generator stores it in its float32 grid.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CellCoefficients {
    /// `α`.
    pub alpha: f32,
    /// `t1`.
    pub t1: f32,
    /// `t2`.
    pub t2: f32,
}

impl CellCoefficients {
    /// The coefficients of a cell of velocity `v` and damping `damp` (1/s).
    #[must_use]
    pub fn new(v: f32, damp: f64) -> CellCoefficients {
        let alpha = alpha32(v);
        let kappa = kappa32(damp);
        let two_c1 = (2.0 * C1) as f32;
        CellCoefficients {
            alpha,
            t1: (2.0 + two_c1 * alpha) - kappa,
            t2: 1.0 - kappa,
        }
    }
}

/// `α = (v·dt/dx)²` in f32: `v·dt`, then `/dx`, then the square, each rounded.
#[must_use]
pub fn alpha32(v: f32) -> f32 {
    let r = v * DT32 / DX32;
    r * r
}

/// `κ = damp·dt` in f32, from the f64 damping rounded to f32.
#[must_use]
pub fn kappa32(damp: f64) -> f32 {
    damp as f32 * DT32
}

/// `β = (v·dt)²` in f32, the factor of the wavelet injected at a source of
/// velocity `v`.
#[must_use]
pub fn source_factor(v: f32) -> f32 {
    let r = v * DT32;
    r * r
}

/// The 1-D damping profile `damp1d[i]`, `i` counted outward from the model edge.
#[must_use]
pub fn damp_profile(vmin: f64) -> Vec<f64> {
    let a = (NBC - 1) as f64 * DX;
    let kappa0 = 3.0 * vmin * 1e7f64.ln() / (2.0 * a);
    (0..NBC)
        .map(|i| {
            let r = i as f64 * DX / a;
            kappa0 * r * r
        })
        .collect()
}

/// The damping of padded cell `(z, x)` (both in `0..310`), from `damp1d`.
#[must_use]
pub fn damp_at(damp1d: &[f64], z: usize, x: usize) -> f64 {
    if x < NBC {
        damp1d[NBC - 1 - x]
    } else if x >= NBC + NX {
        damp1d[x - NBC - NX]
    } else if z < NBC {
        damp1d[NBC - 1 - z]
    } else if z >= NBC + NZ {
        damp1d[z - NBC - NZ]
    } else {
        0.0
    }
}

/// The velocity of padded cell `(z, x)`: the nearest model cell (edge replication).
#[must_use]
pub fn padded_velocity(vel: &[f32], z: usize, x: usize) -> f32 {
    let mz = z.clamp(NBC, NBC + NZ - 1) - NBC;
    let mx = x.clamp(NBC, NBC + NX - 1) - NBC;
    vel[mz * NX + mx]
}

/// The update coefficients of one velocity map, each computed per cell as
/// [`CellCoefficients`] does (exactly what a full 310 × 310 table would
/// hold), stored compactly so a simulation's working set stays in a core's
/// L2 cache.
///
/// Edge replication makes every padded row equal to one of the 70 model rows
/// extended by its end values, and `κ` depends on the column alone outside the
/// 70 interior columns (corners included) and on the row alone inside them. So
/// `α` and `t1` are 70 rows of [`NW`] for the rows level with the model
/// ([`Self::alpha`], [`Self::t1_rows`]: side `κ`, no `κ` in the middle); the
/// 70 middle columns of the 240 top/bottom sponge rows have their own `t1`
/// ([`Self::t1_caps`]); `t2 = 1 − κ` is a column profile ([`Self::t2_sides`])
/// with one value per row in the middle columns ([`Self::t2_rows`]).
/// Columns 310..320 are inert: `α = 0`, `t1 = 1`, `t2 = 0` keep them at 0.
pub struct Coefficients {
    /// `α = (v·dt/dx)²`, 70 rows × [`NW`].
    pub alpha: Vec<f32>,
    /// `t1 = 2 + 2·c1·α − κ` of the rows level with model row `mz`, 70 × [`NW`].
    pub t1_rows: Vec<f32>,
    /// `t1` of the middle 70 columns of the top (rows 0..120) then bottom
    /// (rows 190..310) sponge rows, 240 × 70.
    pub t1_caps: Vec<f32>,
    /// `t2 = 1 − κ` of the side zones, [`NW`] values (1 in the middle, 0 inert).
    pub t2_sides: Vec<f32>,
    /// `t2` of the middle 70 columns, one value per padded row.
    pub t2_rows: Vec<f32>,
}

/// Row of [`Coefficients::t1_caps`] for padded row `z`, if it is a top/bottom sponge row.
#[must_use]
pub fn cap_row(z: usize) -> Option<usize> {
    if z < NBC {
        Some(z)
    } else if z >= NBC + NZ {
        Some(z - NZ)
    } else {
        None
    }
}

/// The frozen-coefficient von Neumann bound of the 2-4 leapfrog with damping.
///
/// The Laplacian's symbol along one axis at the Nyquist wavenumber is
/// `c1 + 2·c2·cos π + 2·c3·cos 2π = −5/2 − 8/3 − 1/6 = −16/3`, so −32/3 over
/// both axes. The damped recurrence `r² − (2 − κ − 32α/3)·r + (1 − κ) = 0` has
/// both roots inside the unit circle iff `32α/3 ≤ 4 − 2κ`, i.e.
/// `v·dt/dx ≤ sqrt(3·(4 − 2κ)/32)`: 6123.7 m/s at dt = 1 ms, dx = 10 m in the
/// undamped interior, a little less in the sponge.
#[must_use]
pub fn cfl_ok(alpha: f64, kappa: f64) -> bool {
    alpha * 32.0 / 3.0 <= 4.0 - 2.0 * kappa
}

/// The largest stable velocity in the undamped interior (m/s).
#[must_use]
pub fn cfl_vmax_interior() -> f64 {
    (3.0 * 4.0 / 32.0f64).sqrt() * DX / DT
}

impl Coefficients {
    /// Build the coefficients of a validated 70 × 70 map (row-major, z then x).
    ///
    /// # Errors
    /// A cell that breaks the stability bound of [`cfl_ok`], named by its
    /// (z, x) model position and velocity.
    pub fn new(vel: &[f32]) -> Result<Coefficients, super::PhysicsError> {
        Self::build(vel, true)
    }

    /// [`Self::new`], optionally without the stability check (tests use it to
    /// show that the bound is where the scheme really blows up).
    pub(crate) fn build(vel: &[f32], check_cfl: bool) -> Result<Coefficients, super::PhysicsError> {
        let vmin = vel.iter().copied().fold(f32::INFINITY, f32::min);
        let damp1d = damp_profile(f64::from(vmin));
        for z in (0..NPAD).filter(|_| check_cfl) {
            for x in 0..NPAD {
                let v = f64::from(padded_velocity(vel, z, x));
                let r = v * DT / DX;
                let kappa = damp_at(&damp1d, z, x) * DT;
                if !cfl_ok(r * r, kappa) {
                    let mz = z.clamp(NBC, NBC + NZ - 1) - NBC;
                    let mx = x.clamp(NBC, NBC + NX - 1) - NBC;
                    return Err(super::PhysicsError::Unstable {
                        value: v,
                        z: mz,
                        x: mx,
                        vmax: cfl_vmax_interior() * ((4.0 - 2.0 * kappa) / 4.0).sqrt(),
                    });
                }
            }
        }
        let cell = |z: usize, x: usize| {
            CellCoefficients::new(padded_velocity(vel, z, x), damp_at(&damp1d, z, x))
        };
        let t1 = |z: usize, x: usize| cell(z, x).t1;
        let mut c = Coefficients {
            alpha: vec![0.0; NZ * NW],
            t1_rows: vec![1.0; NZ * NW],
            t1_caps: vec![0.0; 2 * NBC * NX],
            t2_sides: vec![0.0; NW],
            t2_rows: vec![0.0; NPAD],
        };
        for mz in 0..NZ {
            for x in 0..NPAD {
                let k = cell(mz + NBC, x);
                c.alpha[mz * NW + x] = k.alpha;
                c.t1_rows[mz * NW + x] = k.t1;
            }
        }
        for z in 0..NPAD {
            if let Some(k) = cap_row(z) {
                for x in 0..NX {
                    c.t1_caps[k * NX + x] = t1(z, x + NBC);
                }
            }
        }
        for x in 0..NPAD {
            c.t2_sides[x] = 1.0 - kappa32(damp_at(&damp1d, NBC, x));
        }
        for z in 0..NPAD {
            c.t2_rows[z] = 1.0 - kappa32(damp_at(&damp1d, z, NBC));
        }
        Ok(c)
    }

    /// `(α, t1, t2)` of padded cell (z, x), as the kernel uses them.
    #[must_use]
    pub fn at(&self, z: usize, x: usize) -> (f32, f32, f32) {
        let mz = z.clamp(NBC, NBC + NZ - 1) - NBC;
        let middle = (NBC..NBC + NX).contains(&x);
        let t1 = match cap_row(z) {
            Some(k) if middle => self.t1_caps[k * NX + x - NBC],
            _ => self.t1_rows[mz * NW + x],
        };
        let t2 = if middle {
            self.t2_rows[z]
        } else {
            self.t2_sides[x]
        };
        (self.alpha[mz * NW + x], t1, t2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_matches_formula() {
        let d = damp_profile(1500.0);
        assert_eq!(d.len(), 120);
        assert_eq!(d[0], 0.0);
        let a = 119.0 * 10.0;
        let k0 = 3.0 * 1500.0 * (1e7f64).ln() / (2.0 * a);
        assert!((d[119] - k0).abs() < 1e-12);
    }

    #[test]
    fn corner_rule_uses_horizontal_distance() {
        let d = damp_profile(2000.0);
        // Corner cell (z=0, x=100): horizontal distance 19 from the left edge.
        assert_eq!(damp_at(&d, 0, 100), d[19]);
        // Top zone, interior column: vertical distance.
        assert_eq!(damp_at(&d, 10, 150), d[109]);
        // Bottom zone.
        assert_eq!(damp_at(&d, 190, 150), d[0]);
        assert_eq!(damp_at(&d, 309, 150), d[119]);
        // Right zone, bottom-right corner.
        assert_eq!(damp_at(&d, 309, 195), d[5]);
        // Interior.
        assert_eq!(damp_at(&d, 150, 150), 0.0);
    }

    #[test]
    fn edge_replication() {
        let vel: Vec<f32> = (0..4900).map(|i| i as f32).collect();
        assert_eq!(padded_velocity(&vel, 0, 0), 0.0);
        assert_eq!(padded_velocity(&vel, 309, 309), 4899.0);
        assert_eq!(padded_velocity(&vel, 125, 0), 5.0 * 70.0);
        assert_eq!(padded_velocity(&vel, 125, 130), 5.0 * 70.0 + 10.0);
    }

    /// The compact tables hold, for every padded cell, the generator's
    /// float32 expressions written out here operation by operation.
    #[test]
    fn compact_coefficients_match_the_full_grid_in_f32() {
        let vel: Vec<f32> = (0..4900)
            .map(|i| 1500.0 + (i % 131) as f32 * 20.0)
            .collect();
        let c = Coefficients::new(&vel).unwrap();
        let d = damp_profile(1500.0);
        let (dt, dx) = (0.001f32, 10.0f32);
        for z in 0..NPAD {
            for x in 0..NPAD {
                let v = padded_velocity(&vel, z, x);
                let k = (damp_at(&d, z, x) as f32) * dt;
                let r = (v * dt) / dx;
                let a = r * r;
                let t1 = (2.0f32 + (-5.0f32) * a) - k;
                assert_eq!(c.at(z, x), (a, t1, 1.0f32 - k), "cell {z},{x}");
            }
        }
        for x in NPAD..NW {
            assert_eq!(c.at(150, x), (0.0, 1.0, 0.0), "inert column {x}");
            assert_eq!(c.at(5, x), (0.0, 1.0, 0.0), "inert column {x}");
        }
    }

    /// The f32 coefficients differ from f64-computed-then-rounded ones on
    /// some cells (else the version bump would change nothing), by at most a
    /// few units in the last place.
    #[test]
    fn f32_arithmetic_differs_from_rounded_f64_by_ulps() {
        let d = damp_profile(1500.0);
        let (mut differ, mut worst) = (0, 0u32);
        for v in (1500..4500).step_by(7) {
            for i in [0usize, 30, 119] {
                let v = v as f32;
                let k64 = d[i] * DT;
                let r = f64::from(v) * DT / DX;
                let t1_64 = (2.0 + 2.0 * C1 * r * r - k64) as f32;
                let c = CellCoefficients::new(v, d[i]);
                let ulps = c.t1.to_bits().abs_diff(t1_64.to_bits())
                    + c.alpha.to_bits().abs_diff(((r * r) as f32).to_bits());
                differ += usize::from(ulps > 0);
                worst = worst.max(ulps);
            }
        }
        assert!(differ > 0, "f32 and f64 coefficients never differ");
        assert!(worst <= 8, "{worst} ulps apart");
    }

    #[test]
    fn cfl_bound() {
        assert!((cfl_vmax_interior() - 6123.72).abs() < 0.01);
        assert!(Coefficients::new(&vec![4500.0; 4900]).is_ok());
        let e = Coefficients::new(&vec![6200.0; 4900])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("CFL"), "{e}");
        // A uniform 6000 m/s model passes the interior bound but not the sponge's.
        assert!(Coefficients::new(&vec![6000.0; 4900]).is_err());
    }
}
