//! The simulator's inputs in the plain form a tensor library needs: the
//! per-cell update coefficients as dense 310 × 310 tables, and each source's
//! injected amplitude per time step. The `seispipe-torch` crate runs the same
//! scheme as [`super::fd`] on these (many maps and sources at once, on CPU or
//! CUDA); the values are exactly the ones the Rust kernel uses
//! ([`Coefficients::at`], and `(v_src·dt)²·w[t]` rounded as the kernel does).

use super::sponge::Coefficients;
use super::{wavelet, NPAD, NT, NX, SOURCE_Z};

/// Values in one dense table (310 × 310).
pub const CELLS: usize = NPAD * NPAD;

/// Dense update coefficients of one validated map, each `NPAD × NPAD`, row
/// major (z then x) over the padded grid.
pub struct DenseCoefficients {
    /// `α = (v·dt/dx)²`.
    pub alpha: Vec<f32>,
    /// `t1 = 2 + 2·c1·α − κ`.
    pub t1: Vec<f32>,
    /// `t2 = 1 − κ`.
    pub t2: Vec<f32>,
}

impl DenseCoefficients {
    /// Expand `coef` to full tables.
    #[must_use]
    pub fn new(coef: &Coefficients) -> DenseCoefficients {
        let mut d = DenseCoefficients {
            alpha: vec![0.0; CELLS],
            t1: vec![0.0; CELLS],
            t2: vec![0.0; CELLS],
        };
        for z in 0..NPAD {
            for x in 0..NPAD {
                let (a, t1, t2) = coef.at(z, x);
                d.alpha[z * NPAD + x] = a;
                d.t1[z * NPAD + x] = t1;
                d.t2[z * NPAD + x] = t2;
            }
        }
        d
    }
}

/// The amplitude added at the source cell right after the update of step `t`,
/// for `t` in `0..1000`: `β·w[t]` with `β = (v_src·dt)²` in f32
/// ([`super::sponge::source_factor`]), the product in f32, as
/// [`super::Medium::simulate_source`] does.
#[must_use]
pub fn source_amplitudes(vel: &[f32], sx: usize) -> Vec<f32> {
    let beta = super::sponge::source_factor(vel[SOURCE_Z * NX + sx]);
    wavelet::openfwi_ricker(NT)
        .into_iter()
        .map(|w| beta * w)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::physics::{NBC, NZ};

    /// The dense tables hold the documented formulas: α from the edge-padded
    /// velocity, no damping (t2 = 1) in the model, t2 < 1 in the sponge.
    #[test]
    fn tables_follow_the_padding_and_the_sponge() {
        let vel: Vec<f32> = (0..NX * NZ)
            .map(|i| 1500.0 + (i % 71) as f32 * 40.0)
            .collect();
        let d = DenseCoefficients::new(&Coefficients::new(&vel).unwrap());
        let alpha = |v: f32| (v * 0.001 / 10.0) * (v * 0.001 / 10.0);
        assert_eq!(d.alpha[(NBC + 3) * NPAD + NBC + 5], alpha(vel[3 * NX + 5]));
        // Corner (0, 0) replicates model cell (0, 0); far right replicates x = 69.
        assert_eq!(d.alpha[0], alpha(vel[0]));
        assert_eq!(
            d.alpha[(NBC + 2) * NPAD + NPAD - 1],
            alpha(vel[2 * NX + NX - 1])
        );
        assert_eq!(d.t2[(NBC + 10) * NPAD + NBC + 10], 1.0);
        assert!(d.t2[NPAD / 2] < 1.0 && d.t2[(NBC + 10) * NPAD] < 1.0);
        let amp = source_amplitudes(&vel, 17);
        let beta = (vel[NX + 17] * 0.001) * (vel[NX + 17] * 0.001);
        assert_eq!(amp[73], beta * 1.0);
        assert_eq!(amp.len(), NT);
    }
}
