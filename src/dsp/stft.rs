//! The short-time Fourier transform of real signals, with the conventions of
//! `torch.stft` (and librosa): `n_fft`, `hop_length` (default `n_fft / 4`),
//! `win_length` (default `n_fft`; a shorter window is zero-padded centrally to
//! `n_fft`, left pad `(n_fft − win_length) / 2`), periodic Hann / Hamming /
//! rectangular windows, `center` (pad `n_fft / 2` on both sides with `reflect`
//! — numpy's reflect, edge not repeated — or `constant` zeros), `normalized`
//! (multiply by `n_fft^-1/2`, torch's "ortho" frame normalisation) and
//! `onesided` (`n_fft / 2 + 1` bins, else all `n_fft` in FFT order).
//!
//! Frame `t` is `X[t, k] = Σ_n p[t·hop + n] · w[n] · e^{−2πi·k·n/n_fft}` where
//! `p` is the (padded) signal: `1 + (len(p) − n_fft) / hop` frames, which is
//! `1 + T / hop` for `center = true` and even `n_fft`.
//!
//! Speed: an even `n_fft` is computed as one complex FFT of length `n_fft / 2`
//! (even samples in the real part, odd in the imaginary part, then one
//! butterfly with precomputed twiddles — the usual real-FFT split), and all
//! frames of a trace go through rustfft in one call. The FFTs are rustfft's
//! scalar ones on purpose: its SIMD planners choose AVX, SSE or NEON
//! butterflies by CPU, which round differently, so the same input gave
//! different bytes on different machines; the scalar FFTs give the same bytes
//! on x86-64 and aarch64 (tested under qemu by scripts/test-aarch64.sh) at
//! about 25 % more end-to-end time for a log-magnitude spectrogram. This is
//! also why the split is written here rather than taken from the `realfft`
//! crate: `realfft` builds its inner FFT only through rustfft's SIMD
//! `FftPlanner` (no scalar planner can be passed in), and it transforms one
//! frame per call where rustfft takes all frames of a trace at once. An [`StftPlan`] is
//! immutable and `Sync`; each worker holds its own [`StftScratch`].

use std::f64::consts::PI;
use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlannerScalar};
use serde::{Deserialize, Serialize};

/// Window functions (all periodic, as `torch.*_window(periodic=True)`).
/// Pipeline files name them in snake case (`"hann"`); serde rejects any
/// other name with the allowed ones listed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// `0.5 − 0.5·cos(2πn/N)`
    #[default]
    Hann,
    /// `0.54 − 0.46·cos(2πn/N)`
    Hamming,
    /// all ones
    Rectangular,
}

/// How `center = true` pads the signal (`"reflect"` or `"constant"` in
/// pipeline files).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PadMode {
    /// Mirror without repeating the edge sample (numpy / torch `reflect`).
    #[default]
    Reflect,
    /// Zeros.
    Constant,
}

/// STFT parameters (already defaulted).
#[derive(Debug, Clone, PartialEq)]
pub struct StftConfig {
    /// FFT length (frame length).
    pub n_fft: usize,
    /// Samples between frame starts.
    pub hop_length: usize,
    /// Window length, ≤ `n_fft`.
    pub win_length: usize,
    /// Window function.
    pub window: WindowKind,
    /// Pad `n_fft / 2` on both sides so frame `t` is centred on sample `t·hop`.
    pub center: bool,
    /// Padding used when `center`.
    pub pad_mode: PadMode,
    /// Multiply by `n_fft^-1/2`.
    pub normalized: bool,
    /// Keep `n_fft / 2 + 1` bins (else all `n_fft`).
    pub onesided: bool,
}

/// The window of `kind`, `win_length` long, periodic, zero-padded centrally
/// to `n_fft` exactly as `torch.stft` does (left pad `(n_fft − win_length) / 2`).
/// Computed in f64, rounded once to f32.
#[must_use]
pub fn window(kind: WindowKind, win_length: usize, n_fft: usize) -> Vec<f32> {
    let mut w = vec![0f32; n_fft];
    let left = (n_fft - win_length) / 2;
    let n = win_length as f64;
    for (i, v) in w[left..left + win_length].iter_mut().enumerate() {
        let c = (2.0 * PI * i as f64 / n).cos();
        *v = match kind {
            WindowKind::Hann => 0.5 - 0.5 * c,
            WindowKind::Hamming => 0.54 - 0.46 * c,
            WindowKind::Rectangular => 1.0,
        } as f32;
    }
    w
}

/// A built STFT: window, FFT plan and twiddles, shared read-only by all threads.
pub struct StftPlan {
    cfg: StftConfig,
    window: Arc<[f32]>,
    fft: Arc<dyn Fft<f32>>,
    /// `e^{−2πik/n_fft}` for `k = 0..=n_fft/2` (even `n_fft` only).
    twiddles: Arc<[Complex<f32>]>,
    scale: f32,
}

/// Per-worker buffers for one signal length; reused for every trace.
pub struct StftScratch {
    len: usize,
    padded: Vec<f32>,
    frames: Vec<Complex<f32>>,
    fft_scratch: Vec<Complex<f32>>,
    spectrum: Vec<Complex<f32>>,
}

/// A short-time Fourier transform that cannot be computed as configured,
/// each naming the key, the value and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StftError {
    /// A window parameter outside its range.
    #[error("{key} = {value} is out of range; expected {expected}")]
    OutOfRange {
        key: &'static str,
        value: usize,
        expected: String,
    },
    /// Reflect padding needs more samples than the signal has.
    #[error("n_fft = {n_fft} is too large for signals of {len} samples: reflect padding by n_fft / 2 = {pad} needs n_fft / 2 < {len}; use a smaller n_fft or pad_mode = \"constant\"")]
    ReflectTooShort {
        n_fft: usize,
        len: usize,
        pad: usize,
    },
    /// The (padded) signal is shorter than one frame.
    #[error("n_fft = {n_fft} is larger than the {signal} signal of {padded} samples; expected n_fft ≤ {padded}")]
    SignalTooShort {
        n_fft: usize,
        /// `padded` or `unpadded (center = false)`.
        signal: &'static str,
        padded: usize,
    },
}

impl StftPlan {
    /// Check `cfg` and build the plan.
    ///
    /// # Errors
    /// `n_fft = 0`, `hop_length = 0`, `win_length = 0` or `win_length > n_fft`,
    /// each message naming the key, the value and what is allowed.
    pub fn new(cfg: StftConfig) -> Result<Self, StftError> {
        if cfg.n_fft < 2 {
            return Err(StftError::OutOfRange {
                key: "n_fft",
                value: cfg.n_fft,
                expected: "n_fft ≥ 2".into(),
            });
        }
        if cfg.hop_length == 0 {
            return Err(StftError::OutOfRange {
                key: "hop_length",
                value: 0,
                expected: "hop_length ≥ 1".into(),
            });
        }
        if cfg.win_length == 0 || cfg.win_length > cfg.n_fft {
            return Err(StftError::OutOfRange {
                key: "win_length",
                value: cfg.win_length,
                expected: format!("1 ≤ win_length ≤ n_fft = {}", cfg.n_fft),
            });
        }
        let n = cfg.n_fft;
        let even = n.is_multiple_of(2);
        let fft = FftPlannerScalar::<f32>::new().plan_fft_forward(if even { n / 2 } else { n });
        let twiddles: Arc<[Complex<f32>]> = if even {
            (0..=n / 2)
                .map(|k| {
                    let a = -2.0 * PI * k as f64 / n as f64;
                    Complex::new(a.cos() as f32, a.sin() as f32)
                })
                .collect()
        } else {
            Arc::from(Vec::new())
        };
        let scale = if cfg.normalized {
            (1.0 / (n as f64).sqrt()) as f32
        } else {
            1.0
        };
        Ok(StftPlan {
            window: window(cfg.window, cfg.win_length, cfg.n_fft).into(),
            cfg,
            fft,
            twiddles,
            scale,
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &StftConfig {
        &self.cfg
    }

    /// The window, zero-padded to `n_fft`.
    #[must_use]
    pub fn window(&self) -> &[f32] {
        &self.window
    }

    /// Bins per frame: `n_fft / 2 + 1` one-sided, else `n_fft`.
    #[must_use]
    pub fn n_bins(&self) -> usize {
        if self.cfg.onesided {
            self.cfg.n_fft / 2 + 1
        } else {
            self.cfg.n_fft
        }
    }

    fn pad(&self) -> usize {
        if self.cfg.center {
            self.cfg.n_fft / 2
        } else {
            0
        }
    }

    /// Frames of a signal of `len` samples.
    ///
    /// # Errors
    /// The (padded) signal is shorter than `n_fft`, or reflect padding needs
    /// more samples than the signal has (torch's rule `n_fft / 2 < len`).
    pub fn n_frames(&self, len: usize) -> Result<usize, StftError> {
        let c = &self.cfg;
        let pad = self.pad();
        if c.center && c.pad_mode == PadMode::Reflect && pad >= len {
            return Err(StftError::ReflectTooShort {
                n_fft: c.n_fft,
                len,
                pad,
            });
        }
        let padded = len + 2 * pad;
        if padded < c.n_fft {
            return Err(StftError::SignalTooShort {
                n_fft: c.n_fft,
                signal: if c.center {
                    "padded"
                } else {
                    "unpadded (center = false)"
                },
                padded,
            });
        }
        Ok(1 + (padded - c.n_fft) / c.hop_length)
    }

    /// Scratch for signals of `len` samples (`len` must pass [`Self::n_frames`]).
    ///
    /// # Panics
    /// If `len` does not pass [`Self::n_frames`] (a programming error: check first).
    #[must_use]
    pub fn scratch(&self, len: usize) -> StftScratch {
        let frames = self.n_frames(len).expect("signal length checked");
        let n = self.cfg.n_fft;
        let per = if n.is_multiple_of(2) { n / 2 } else { n };
        StftScratch {
            len,
            padded: vec![0.0; len + 2 * self.pad()],
            frames: vec![Complex::default(); frames * per],
            fft_scratch: vec![Complex::default(); self.fft.get_inplace_scratch_len()],
            spectrum: vec![Complex::default(); frames * self.n_bins()],
        }
    }

    /// STFT of the signal `data[offset + i·stride]`, `i < scratch.len`;
    /// returns the spectrum frame-major: `[frame][bin]`.
    ///
    /// # Panics
    /// If `data` is too short for `offset`, `stride` and the scratch's length.
    pub fn process_strided<'s>(
        &self,
        data: &[f32],
        offset: usize,
        stride: usize,
        scratch: &'s mut StftScratch,
    ) -> &'s [Complex<f32>] {
        let len = scratch.len;
        let pad = self.pad();
        {
            let p = &mut scratch.padded;
            for (i, v) in p[pad..pad + len].iter_mut().enumerate() {
                *v = data[offset + i * stride];
            }
            match self.cfg.pad_mode {
                // p[pad − j] = x[j] and p[pad + len − 1 + j] = x[len − 1 − j], j = 1..=pad
                PadMode::Reflect if pad > 0 => {
                    for j in 1..=pad {
                        p[pad - j] = p[pad + j];
                        p[pad + len - 1 + j] = p[pad + len - 1 - j];
                    }
                }
                _ => {
                    p[..pad].fill(0.0);
                    p[pad + len..].fill(0.0);
                }
            }
        }
        self.transform_padded(scratch);
        &scratch.spectrum
    }

    /// STFT of a contiguous signal (see [`Self::process_strided`]).
    pub fn process<'s>(&self, signal: &[f32], scratch: &'s mut StftScratch) -> &'s [Complex<f32>] {
        assert_eq!(signal.len(), scratch.len, "scratch made for another length");
        self.process_strided(signal, 0, 1, scratch)
    }

    fn transform_padded(&self, s: &mut StftScratch) {
        let n = self.cfg.n_fft;
        let hop = self.cfg.hop_length;
        let bins = self.n_bins();
        let w = &*self.window;
        let frames = s.spectrum.len() / bins;
        if n.is_multiple_of(2) {
            let m = n / 2;
            for (t, z) in s.frames.chunks_exact_mut(m).enumerate() {
                let x = &s.padded[t * hop..t * hop + n];
                for ((zi, xp), wp) in z.iter_mut().zip(x.chunks_exact(2)).zip(w.chunks_exact(2)) {
                    *zi = Complex::new(xp[0] * wp[0], xp[1] * wp[1]);
                }
            }
            self.fft
                .process_with_scratch(&mut s.frames, &mut s.fft_scratch);
            let half = 0.5 * self.scale;
            for t in 0..frames {
                let z = &s.frames[t * m..(t + 1) * m];
                let out = &mut s.spectrum[t * bins..(t + 1) * bins];
                // Bins 0 and m both come from z[0] (z[m] ≡ z[0]):
                // X[0] = Re z0 + Im z0, X[m] = Re z0 − Im z0.
                let z0 = z[0];
                out[0] = Complex::new((z0.re + z0.im) * self.scale, 0.0);
                out[m] = Complex::new((z0.re - z0.im) * self.scale, 0.0);
                for k in 1..m {
                    let a = z[k];
                    let b = z[m - k].conj();
                    let even = a + b;
                    // (a − b)·(−i) = (im, −re)
                    let d = a - b;
                    let odd = Complex::new(d.im, -d.re);
                    out[k] = (even + self.twiddles[k] * odd) * half;
                }
                if !self.cfg.onesided {
                    for k in m + 1..n {
                        out[k] = out[n - k].conj();
                    }
                }
            }
        } else {
            for (t, z) in s.frames.chunks_exact_mut(n).enumerate() {
                let x = &s.padded[t * hop..t * hop + n];
                for ((zi, xv), wv) in z.iter_mut().zip(x).zip(w) {
                    *zi = Complex::new(xv * wv, 0.0);
                }
            }
            self.fft
                .process_with_scratch(&mut s.frames, &mut s.fft_scratch);
            for t in 0..frames {
                let z = &s.frames[t * n..t * n + bins];
                for (o, v) in s.spectrum[t * bins..(t + 1) * bins].iter_mut().zip(z) {
                    *o = *v * self.scale;
                }
            }
        }
    }

    /// Frequency of each output bin in Hz at `sample_rate_hz` (numpy's
    /// `rfftfreq` one-sided, `fftfreq` two-sided).
    #[must_use]
    pub fn bin_freqs_hz(&self, sample_rate_hz: f64) -> Vec<f64> {
        let n = self.cfg.n_fft;
        (0..self.n_bins())
            .map(|k| {
                let k = if k < n.div_ceil(2) || self.cfg.onesided {
                    k as f64
                } else {
                    k as f64 - n as f64
                };
                k * sample_rate_hz / n as f64
            })
            .collect()
    }

    /// Time in seconds of each frame's centre sample (index `n_fft / 2` of
    /// the frame): `t·hop / fs` with `center`, `(t·hop + n_fft / 2) / fs` without.
    ///
    /// # Errors
    /// See [`Self::n_frames`].
    pub fn frame_times_s(&self, len: usize, sample_rate_hz: f64) -> Result<Vec<f64>, StftError> {
        let off = if self.cfg.center {
            0
        } else {
            self.cfg.n_fft / 2
        };
        Ok((0..self.n_frames(len)?)
            .map(|t| (t * self.cfg.hop_length + off) as f64 / sample_rate_hz)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(n_fft: usize, hop: usize, win: usize, center: bool, onesided: bool) -> StftConfig {
        StftConfig {
            n_fft,
            hop_length: hop,
            win_length: win,
            window: WindowKind::Hann,
            center,
            pad_mode: PadMode::Reflect,
            normalized: false,
            onesided,
        }
    }

    /// Direct O(N²) DFT in f64 of the same framing, as the definition.
    fn naive(plan: &StftPlan, x: &[f32]) -> Vec<Complex<f64>> {
        let c = plan.config();
        let pad = if c.center { c.n_fft / 2 } else { 0 };
        let len = x.len();
        let get = |i: isize| -> f64 {
            let i = i - pad as isize;
            let j = if i < 0 {
                -i
            } else if i >= len as isize {
                2 * (len as isize - 1) - i
            } else {
                i
            };
            f64::from(x[j as usize])
        };
        let frames = plan.n_frames(len).unwrap();
        let mut out = Vec::new();
        for t in 0..frames {
            for k in 0..plan.n_bins() {
                let mut acc = Complex::new(0.0, 0.0);
                for n in 0..c.n_fft {
                    let v = get((t * c.hop_length + n) as isize) * f64::from(plan.window()[n]);
                    let a = -2.0 * PI * (k * n) as f64 / c.n_fft as f64;
                    acc += Complex::new(a.cos(), a.sin()) * v;
                }
                out.push(acc);
            }
        }
        out
    }

    fn check(c: StftConfig, len: usize) {
        let plan = StftPlan::new(c).unwrap();
        let x: Vec<f32> = (0..len)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) + (i as f32 * 0.05).sin())
            .collect();
        let mut s = plan.scratch(len);
        let got = plan.process(&x, &mut s).to_vec();
        let want = naive(&plan, &x);
        assert_eq!(got.len(), want.len());
        let peak = want.iter().map(|v| v.norm()).fold(0.0, f64::max);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let err = (Complex::new(f64::from(g.re), f64::from(g.im)) - w).norm();
            assert!(err <= 1e-5 * peak, "bin {i}: {g} vs {w} (peak {peak})");
        }
    }

    #[test]
    fn matches_definition_even_odd_onesided_twosided() {
        check(cfg(16, 4, 16, true, true), 50);
        check(cfg(16, 5, 12, true, false), 50);
        check(cfg(15, 4, 15, true, true), 50);
        check(cfg(15, 3, 10, false, false), 50);
        check(cfg(64, 16, 64, false, true), 200);
    }

    #[test]
    fn frame_and_bin_counts() {
        let p = StftPlan::new(cfg(128, 32, 128, true, true)).unwrap();
        assert_eq!(p.n_frames(1000).unwrap(), 1 + 1000 / 32);
        assert_eq!(p.n_bins(), 65);
        let p = StftPlan::new(cfg(128, 32, 128, false, true)).unwrap();
        assert_eq!(p.n_frames(1000).unwrap(), 1 + (1000 - 128) / 32);
        assert!(p
            .n_frames(100)
            .unwrap_err()
            .to_string()
            .contains("n_fft = 128"));
    }

    #[test]
    fn windows_are_periodic_and_centred() {
        let w = window(WindowKind::Hann, 4, 8);
        assert_eq!(w, vec![0.0, 0.0, 0.0, 0.5, 1.0, 0.5, 0.0, 0.0]);
        let h = window(WindowKind::Hamming, 4, 4);
        assert!((h[0] - 0.08).abs() < 1e-7 && (h[2] - 1.0).abs() < 1e-7);
    }

    #[test]
    fn rejects_bad_config() {
        let e = StftPlan::new(cfg(64, 0, 64, true, true))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("hop_length = 0"), "{e}");
        let e = StftPlan::new(cfg(64, 16, 65, true, true))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("win_length = 65") && e.contains("n_fft = 64"),
            "{e}"
        );
    }
}
