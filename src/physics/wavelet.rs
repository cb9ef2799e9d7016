//! The OpenFWI source wavelet: a 15 Hz Ricker of 147 samples whose peak sits
//! at 0-based index 73, zero after that (docs/domain.md, "The OpenFWI generator").

/// Samples in the OpenFWI wavelet.
pub const RICKER_LEN: usize = 147;
/// 0-based index of the wavelet's peak.
pub const RICKER_PEAK: usize = 73;

/// `w[k] = (1 − 2b)·e^(−b)`, `b = ((peak − k)·f·dt·π)²`, for `k < len`, and 0
/// for `k ≥ len`, evaluated in f64 and rounded once to f32.
#[must_use]
pub fn ricker(freq_hz: f64, dt: f64, len: usize, peak: usize, nt: usize) -> Vec<f32> {
    (0..nt)
        .map(|k| {
            if k >= len {
                return 0.0;
            }
            let shift = (peak as f64 - k as f64) * freq_hz * dt * std::f64::consts::PI;
            let b = shift * shift;
            ((1.0 - 2.0 * b) * (-b).exp()) as f32
        })
        .collect()
}

/// The OpenFWI wavelet over `nt` time samples.
#[must_use]
pub fn openfwi_ricker(nt: usize) -> Vec<f32> {
    ricker(15.0, 1e-3, RICKER_LEN, RICKER_PEAK, nt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_and_known_values() {
        let w = openfwi_ricker(1000);
        assert_eq!(w.len(), 1000);
        assert!((w[RICKER_PEAK] - 1.0).abs() < 1e-7);
        // docs/domain.md: w[0] ≈ −1.6444e−4
        assert!((w[0] + 1.6444e-4).abs() < 1e-8, "{}", w[0]);
        assert!(w[RICKER_LEN..].iter().all(|&x| x == 0.0));
        for k in 0..RICKER_LEN {
            assert!(
                (w[k] - w[2 * RICKER_PEAK - k]).abs() < 1e-7,
                "symmetric at {k}"
            );
        }
    }
}
