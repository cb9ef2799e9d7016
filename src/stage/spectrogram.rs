//! `spectrogram`: the STFT along time of every (source, receiver) trace, with
//! `torch.stft` parameter names and conventions (see [`crate::dsp::stft`]).
//!
//! **Layout.** Input samples are (source, time, receiver). The output is
//! (source, freq, frame, receiver) for `magnitude`, `power`, `log_magnitude`
//! and `db`; for `real_imag` it is (channel, freq, frame, receiver) with
//! `2·source` channels, channel `2s` the real and `2s + 1` the imaginary part
//! of source `s` — byte-identical to a (source, 2, freq, frame, receiver)
//! array, so either view is a free reshape. Receivers stay last as in the
//! input. The layout, the frequency of every kept bin and the time of every
//! frame are recorded in the manifest's `stage_info`.
//!
//! **Outputs** (S is the complex STFT, after `normalized` scaling):
//! `magnitude` |S|; `power` |S|²; `log_magnitude` ln(|S| + eps);
//! `db` 10·log10(max(|S|², amin)) — torchaudio's `AmplitudeToDB(stype="power",
//! top_db=None)` and librosa's `power_to_db(ref=1.0, top_db=None)`;
//! `real_imag` Re S and Im S as separate channels.
//!
//! **Crop.** `max_freq_hz` keeps one-sided bins with frequency ≤ the limit
//! (bins are `sample_rate_hz / n_fft` apart; the 15 Hz source puts almost
//! all energy below ~45 Hz); `bin_range = [start, end]` keeps bins
//! `start..end` (end exclusive) in output order.
//!
//! **Work.** One [`StftPlan`] per stage (window, FFT plan, twiddles) shared by
//! all workers; per-worker scratch comes from a small pool inside the stage
//! (one buffer set per concurrently running worker, reused for every trace),
//! so nothing is allocated per trace. Output values beyond ±65504 cannot be
//! written as f16 (the writer refuses them): prefer `db` or `log_magnitude`
//! for f16 output.

use std::sync::Mutex;

use ndarray::{ArrayD, IxDyn};
use rustfft::num_complex::Complex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Instance, ParamError, PlanEnv, Planned, Record, Stage, StageCtx};
use crate::dsp::stft::{PadMode, StftConfig, StftPlan, StftScratch, WindowKind};
use crate::error::StageError;
use crate::sample::Sample;

/// Version of the bytes this stage writes (see [`super::algorithm`]).
/// 1: torch.stft conventions (Hann, centre with reflect padding).
/// 2: the same, with rustfft's scalar FFTs on every CPU: its SIMD planners
///    pick AVX, SSE or NEON butterflies by CPU and round differently, so
///    version 1's bytes depended on the machine (found by the aarch64 run).
pub const ALGORITHM: u32 = 2;

/// `seispipe stages` entry.
pub const DOC: super::StageDoc = super::StageDoc {
    name: "spectrogram",
    parse: super::parse_as::<SpectrogramSpec>,
    summary: "STFT along time of every trace (torch.stft conventions) → (source, freq, frame, receiver); real_imag → (2·source, freq, frame, receiver)",
    required: "n_fft = 512",
    params: &[
        ("n_fft", "", "FFT length; bins are sample_rate_hz / n_fft apart"),
        ("hop_length", "n_fft / 4", "samples between frames, ≥ 1"),
        ("win_length", "n_fft", "window length ≤ n_fft, zero-padded centrally to n_fft"),
        ("window", "", "hann | hamming | rectangular (periodic, as torch)"),
        ("center", "", "pad n_fft / 2 on both sides: 1 + T // hop frames"),
        ("pad_mode", "", "reflect | constant (zeros), used when center = true"),
        ("normalized", "", "multiply the STFT by n_fft^-1/2 (torch's normalized)"),
        ("onesided", "", "n_fft / 2 + 1 bins; false: all n_fft bins in FFT order"),
        (
            "output",
            "",
            "magnitude | power | log_magnitude (ln(|S| + eps)) | db (10·log10(max(|S|², amin))) | real_imag (channels 2s, 2s+1)",
        ),
        ("eps", "1e-6", "log_magnitude only: added before the log, > 0"),
        ("amin", "1e-10", "db only: power floor before the log, > 0"),
        ("sample_rate_hz", "", "sampling rate of the traces (OpenFWI: 1 kHz)"),
        ("max_freq_hz", "", "keep one-sided bins with frequency ≤ this, 0 ≤ max ≤ sample_rate_hz / 2"),
        ("bin_range", "", "[start, end]: keep bins start..end (end exclusive)"),
    ],
};

/// `type = "spectrogram"`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpectrogramSpec {
    /// FFT length.
    pub n_fft: usize,
    /// Samples between frames (default `n_fft / 4`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop_length: Option<usize>,
    /// Window length (default `n_fft`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub win_length: Option<usize>,
    /// `hann`, `hamming` or `rectangular`.
    #[serde(default)]
    pub window: WindowKind,
    /// Centre frames on `t·hop` by padding `n_fft / 2` on both sides.
    #[serde(default = "default_true")]
    pub center: bool,
    /// `reflect` or `constant`.
    #[serde(default)]
    pub pad_mode: PadMode,
    /// Multiply by `n_fft^-1/2`.
    #[serde(default)]
    pub normalized: bool,
    /// `n_fft / 2 + 1` bins (else `n_fft`).
    #[serde(default = "default_true")]
    pub onesided: bool,
    /// `magnitude`, `power`, `log_magnitude`, `db` or `real_imag`.
    #[serde(default)]
    pub output: Output,
    /// `log_magnitude`: ln(|S| + eps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    /// `db`: 10·log10(max(|S|², amin)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amin: Option<f64>,
    /// Sampling rate of the traces in Hz.
    #[serde(default = "default_rate")]
    pub sample_rate_hz: f64,
    /// Keep one-sided bins up to this frequency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_freq_hz: Option<f64>,
    /// Keep bins `start..end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bin_range: Option<[usize; 2]>,
}

/// What the stage writes (`output = "…"` in pipeline files).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// |S|
    #[default]
    Magnitude,
    /// |S|²
    Power,
    /// ln(|S| + eps)
    LogMagnitude,
    /// 10·log10(max(|S|², amin))
    Db,
    /// Re S, Im S as channels 2s, 2s+1.
    RealImag,
}
fn default_true() -> bool {
    true
}
fn default_rate() -> f64 {
    1000.0
}

/// What is written per bin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutputKind {
    /// |S|
    Magnitude,
    /// |S|²
    Power,
    /// ln(|S| + eps)
    LogMagnitude(f32),
    /// 10·log10(max(|S|², amin))
    Db(f32),
    /// Re S, Im S as channels 2s, 2s+1.
    RealImag,
}

impl SpectrogramSpec {
    /// The validated runtime for samples of `shape` (source, time, receiver);
    /// see [`StageType::plan`](super::StageType::plan). Library users can call [`Spectrogram::compute`] on it.
    ///
    /// # Errors
    /// See [`StageType::plan`](super::StageType::plan).
    pub fn runtime(&self, shape: &[usize]) -> Result<Spectrogram, ParamError> {
        let (window, pad_mode) = (self.window, self.pad_mode);
        let kind = self.output_kind()?;
        if !(self.sample_rate_hz.is_finite() && self.sample_rate_hz > 0.0) {
            return Err(ParamError::Invalid(format!(
                "sample_rate_hz = {} is out of range; expected a finite rate > 0",
                self.sample_rate_hz
            )));
        }
        if shape.len() != 3 {
            return Err(ParamError::Invalid(format!(
                "spectrogram needs (source, time, receiver) samples; samples here have shape {shape:?}"
            )));
        }
        let (sources, len, receivers) = (shape[0], shape[1], shape[2]);
        let cfg = StftConfig {
            n_fft: self.n_fft,
            hop_length: self.hop_length.unwrap_or(self.n_fft / 4),
            win_length: self.win_length.unwrap_or(self.n_fft),
            window,
            center: self.center,
            pad_mode,
            normalized: self.normalized,
            onesided: self.onesided,
        };
        if self.hop_length.is_none() && cfg.hop_length == 0 {
            return Err(ParamError::Invalid(format!(
                "hop_length defaults to n_fft / 4 = 0 for n_fft = {}; set hop_length ≥ 1",
                self.n_fft
            )));
        }
        let plan = StftPlan::new(cfg)?;
        let frames = plan.n_frames(len)?;
        let all_bins = plan.n_bins();
        let bins = self.crop(&plan)?;
        let freqs = plan.bin_freqs_hz(self.sample_rate_hz)[bins.clone()].to_vec();
        let times = plan.frame_times_s(len, self.sample_rate_hz)?;
        let channels = if kind == OutputKind::RealImag {
            2 * sources
        } else {
            sources
        };
        let out_shape = vec![channels, bins.len(), frames, receivers];
        let c = plan.config();
        let (formula, first_axis) = match kind {
            OutputKind::Magnitude => ("|S|".to_string(), "source"),
            OutputKind::Power => ("|S|^2".to_string(), "source"),
            OutputKind::LogMagnitude(e) => (format!("ln(|S| + {e})"), "source"),
            OutputKind::Db(a) => (format!("10*log10(max(|S|^2, {a}))"), "source"),
            OutputKind::RealImag => (
                "channel 2s = Re S, channel 2s+1 = Im S of source s".to_string(),
                "channel",
            ),
        };
        let info = json!({
            "axes": [first_axis, "freq", "frame", "receiver"],
            "shape": out_shape,
            "output": self.output,
            "formula": formula,
            "stft": "S[t,k] = sum_n p[t*hop + n] * w[n] * exp(-2*pi*i*k*n/n_fft) (torch.stft)",
            "n_fft": c.n_fft,
            "hop_length": c.hop_length,
            "win_length": c.win_length,
            "window": self.window,
            "center": c.center,
            "pad_mode": self.pad_mode,
            "normalized": c.normalized,
            "onesided": c.onesided,
            "sample_rate_hz": self.sample_rate_hz,
            "bin_range": [bins.start, bins.end],
            "bins_total": all_bins,
            "freqs_hz": freqs,
            "frame_times_s": times,
        });
        Ok(Spectrogram {
            plan,
            kind,
            bins,
            in_shape: [sources, len, receivers],
            info,
            pool: Mutex::new(Vec::new()),
        })
    }

    fn output_kind(&self) -> Result<OutputKind, ParamError> {
        let positive = |key: &str, v: f64| -> Result<f32, ParamError> {
            if v.is_finite() && v > 0.0 {
                Ok(v as f32)
            } else {
                Err(ParamError::Invalid(format!(
                    "{key} = {v} is out of range; expected a finite {key} > 0"
                )))
            }
        };
        let kind = match self.output {
            Output::Magnitude => OutputKind::Magnitude,
            Output::Power => OutputKind::Power,
            Output::LogMagnitude => {
                OutputKind::LogMagnitude(positive("eps", self.eps.unwrap_or(1e-6))?)
            }
            Output::Db => OutputKind::Db(positive("amin", self.amin.unwrap_or(1e-10))?),
            Output::RealImag => OutputKind::RealImag,
        };
        if self.eps.is_some() && !matches!(kind, OutputKind::LogMagnitude(_)) {
            return Err(ParamError::Invalid(format!(
                "eps is only used by output = \"log_magnitude\" (output here is {}); remove it",
                serde_json::to_value(self.output).expect("serialises")
            )));
        }
        if self.amin.is_some() && !matches!(kind, OutputKind::Db(_)) {
            return Err(ParamError::Invalid(format!(
                "amin is only used by output = \"db\" (output here is {}); remove it",
                serde_json::to_value(self.output).expect("serialises")
            )));
        }
        Ok(kind)
    }

    fn crop(&self, plan: &StftPlan) -> Result<std::ops::Range<usize>, ParamError> {
        let all = plan.n_bins();
        match (self.max_freq_hz, self.bin_range) {
            (Some(_), Some(_)) => Err(ParamError::Invalid(
                "give either max_freq_hz or bin_range, not both".into(),
            )),
            (None, None) => Ok(0..all),
            (Some(f), None) => {
                let nyquist = self.sample_rate_hz / 2.0;
                if !self.onesided {
                    return Err(ParamError::Invalid(
                        "max_freq_hz needs onesided = true; use bin_range for two-sided spectra"
                            .into(),
                    ));
                }
                if !(f.is_finite() && (0.0..=nyquist).contains(&f)) {
                    return Err(ParamError::Invalid(format!(
                        "max_freq_hz = {f} is outside the spectrum; expected 0 ≤ max_freq_hz ≤ sample_rate_hz / 2 = {nyquist}"
                    )));
                }
                // Bin k is at k·fs/n_fft; keep k ≤ f·n_fft/fs (with a relative
                // slack so 45 Hz keeps the bin computed as 45.000000001).
                let last = ((f * plan.config().n_fft as f64 / self.sample_rate_hz) * (1.0 + 1e-12))
                    .floor() as usize;
                Ok(0..(last + 1).min(all))
            }
            (None, Some([a, b])) => {
                if a >= b || b > all {
                    return Err(ParamError::Invalid(format!(
                        "bin_range = [{a}, {b}] is outside the spectrum; expected [start, end] with start < end ≤ {all} bins"
                    )));
                }
                Ok(a..b)
            }
        }
    }
}

/// Runtime spectrogram stage.
pub struct Spectrogram {
    plan: StftPlan,
    kind: OutputKind,
    bins: std::ops::Range<usize>,
    in_shape: [usize; 3],
    info: Value,
    pool: Mutex<Vec<Scratch>>,
}

impl Spectrogram {
    /// Layout facts recorded in the manifest's `stage_info` (axes, shape,
    /// formula, every bin's frequency and every frame's time).
    #[must_use]
    pub fn info(&self) -> &Value {
        &self.info
    }

    /// Output shape of one sample.
    #[must_use]
    pub fn out_shape(&self) -> [usize; 4] {
        let [s, len, r] = self.in_shape;
        let c = if self.kind == OutputKind::RealImag {
            2 * s
        } else {
            s
        };
        let frames = self.plan.n_frames(len).expect("checked in build");
        [c, self.bins.len(), frames, r]
    }

    /// Spectrogram of one (source, time, receiver) sample in C order into
    /// `out` (C order, [`Self::out_shape`]). Scratch comes from the stage's
    /// pool, so this may be called from many threads at once.
    ///
    /// # Panics
    /// If `input` or `out` have the wrong length.
    pub fn compute(&self, input: &[f32], out: &mut [f32]) {
        let [sources, len, receivers] = self.in_shape;
        assert_eq!(input.len(), sources * len * receivers, "input length");
        let [_, n_bins, frames, _] = self.out_shape();
        assert_eq!(out.len(), self.out_shape().iter().product::<usize>());
        let mut scratch = self
            .pool
            .lock()
            .expect("scratch pool")
            .pop()
            .unwrap_or_else(|| Scratch {
                stft: self.plan.scratch(len),
                traces: vec![0.0; len * receivers],
            });
        let all_bins = self.plan.n_bins();
        let plane = n_bins * frames * receivers;
        for s in 0..sources {
            // One cache-blocked transpose of the (time, receiver) slab makes
            // every trace contiguous for the STFT's reads.
            transpose(
                &input[s * len * receivers..(s + 1) * len * receivers],
                len,
                receivers,
                &mut scratch.traces,
            );
            for r in 0..receivers {
                let spec =
                    self.plan
                        .process_strided(&scratch.traces, r * len, 1, &mut scratch.stft);
                let put = Scatter {
                    spec,
                    all_bins,
                    bins: self.bins.clone(),
                    frames,
                    receivers,
                    r,
                };
                match self.kind {
                    // sqrt(re² + im²) rather than hypot: 4× faster, and f32
                    // spectra of seismic traces are nowhere near overflow.
                    OutputKind::Magnitude => put.write(out, s * plane, |v| v.norm_sqr().sqrt()),
                    OutputKind::Power => put.write(out, s * plane, |v| v.norm_sqr()),
                    OutputKind::LogMagnitude(eps) => {
                        put.write(out, s * plane, |v| (v.norm_sqr().sqrt() + eps).ln());
                    }
                    OutputKind::Db(amin) => {
                        put.write(out, s * plane, |v| 10.0 * v.norm_sqr().max(amin).log10());
                    }
                    OutputKind::RealImag => {
                        put.write(out, 2 * s * plane, |v| v.re);
                        put.write(out, (2 * s + 1) * plane, |v| v.im);
                    }
                }
            }
        }
        self.pool.lock().expect("scratch pool").push(scratch);
    }
}

/// Writes one trace's kept bins into the (·, freq, frame, receiver) output.
struct Scatter<'a> {
    spec: &'a [Complex<f32>],
    all_bins: usize,
    bins: std::ops::Range<usize>,
    frames: usize,
    receivers: usize,
    r: usize,
}

impl Scatter<'_> {
    #[inline]
    fn write(&self, out: &mut [f32], base: usize, f: impl Fn(Complex<f32>) -> f32) {
        let plane = &mut out[base..base + self.bins.len() * self.frames * self.receivers];
        for t in 0..self.frames {
            let row =
                &self.spec[t * self.all_bins + self.bins.start..t * self.all_bins + self.bins.end];
            for (k, v) in row.iter().enumerate() {
                plane[(k * self.frames + t) * self.receivers + self.r] = f(*v);
            }
        }
    }
}

/// One worker's buffers: the STFT's, and the current source's traces.
struct Scratch {
    stft: StftScratch,
    traces: Vec<f32>,
}

/// `dst[c·rows + r] = src[r·cols + c]`, in cache-sized blocks.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const B: usize = 16;
    for r0 in (0..rows).step_by(B) {
        let r1 = (r0 + B).min(rows);
        for c0 in (0..cols).step_by(B) {
            let c1 = (c0 + B).min(cols);
            for c in c0..c1 {
                let d = &mut dst[c * rows + r0..c * rows + r1];
                for (i, v) in d.iter_mut().enumerate() {
                    *v = src[(r0 + i) * cols + c];
                }
            }
        }
    }
}

impl Stage for Spectrogram {
    fn apply(&self, sample: &mut Sample, _ctx: &mut StageCtx<'_>) -> Result<Record, StageError> {
        if sample.seismic.shape() != self.in_shape {
            return Err(StageError::new(format!(
                "spectrogram was built for samples of shape {:?}, got {:?}",
                self.in_shape,
                sample.seismic.shape()
            )));
        }
        let input = sample.seismic.as_standard_layout();
        let shape = self.out_shape();
        let mut out = ArrayD::<f32>::zeros(IxDyn(&shape));
        self.compute(
            input.as_slice().expect("standard layout"),
            out.as_slice_mut()
                .expect("owned arrays are standard layout"),
        );
        drop(input);
        sample.seismic = out;
        Ok(Value::Null)
    }
}

impl super::StageType for SpectrogramSpec {
    const DOC: super::StageDoc = DOC;

    /// Bad parameters (see [`SpectrogramSpec::runtime`]).
    fn plan(&self, env: &PlanEnv) -> Result<Planned, ParamError> {
        let stage = self.runtime(&env.shape)?;
        Ok(Planned {
            out_shape: stage.out_shape().to_vec(),
            info: Some(stage.info.clone()),
            ..Planned::same(env, super::algorithm("spectrogram", ALGORITHM, false))
        })
    }

    fn instantiate(
        &self,
        plan: &super::StagePlan,
        _env: &super::RunEnv<'_>,
    ) -> Result<Instance, ParamError> {
        Ok(Instance::sample(self.runtime(&plan.input.shape)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(shape: &[usize]) -> PlanEnv {
        PlanEnv {
            shape: shape.to_vec(),
            labels: false,
        }
    }

    fn spec(n_fft: usize) -> SpectrogramSpec {
        serde_json::from_value(json!({ "n_fft": n_fft })).unwrap()
    }

    #[test]
    fn shapes_follow_torch_formulas() {
        let b = crate::stage::StageType::plan(&spec(128), &env(&[5, 1000, 70])).unwrap();
        assert_eq!(b.out_shape, vec![5, 65, 1 + 1000 / 32, 70]);
        let mut s = spec(256);
        s.max_freq_hz = Some(45.0);
        // bins 1000/256 ≈ 3.906 Hz apart: 0..=11 (42.97 Hz) kept
        assert_eq!(
            crate::stage::StageType::plan(&s, &env(&[5, 1000, 70]))
                .unwrap()
                .out_shape[1],
            12
        );
        let mut s = spec(64);
        s.output = Output::RealImag;
        s.bin_range = Some([2, 10]);
        s.center = false;
        s.hop_length = Some(10);
        assert_eq!(
            crate::stage::StageType::plan(&s, &env(&[5, 1000, 70]))
                .unwrap()
                .out_shape,
            vec![10, 8, 1 + (1000 - 64) / 10, 70]
        );
    }

    #[test]
    fn rejects_bad_parameters_by_name() {
        let e = |f: &dyn Fn(&mut SpectrogramSpec)| {
            let mut s = spec(128);
            f(&mut s);
            crate::stage::StageType::plan(&s, &env(&[5, 1000, 70]))
                .expect_err("must fail")
                .to_string()
        };
        // Names are serde enums: a typo is refused by the parser, which lists
        // the allowed values.
        for (key, bad, allowed) in [
            ("window", "hanning", "`hann`, `hamming`, `rectangular`"),
            ("pad_mode", "edge", "`reflect` or `constant`"),
            (
                "output",
                "abs",
                "`magnitude`, `power`, `log_magnitude`, `db`, `real_imag`",
            ),
        ] {
            let m = toml::from_str::<SpectrogramSpec>(&format!("n_fft = 128\n{key} = \"{bad}\""))
                .unwrap_err()
                .to_string();
            assert!(
                m.contains(&format!("unknown variant `{bad}`")) && m.contains(allowed),
                "{m}"
            );
        }
        let m = e(&|s| s.hop_length = Some(0));
        assert!(m.contains("hop_length = 0"), "{m}");
        let m = e(&|s| s.win_length = Some(200));
        assert!(
            m.contains("win_length = 200") && m.contains("n_fft = 128"),
            "{m}"
        );
        let m = e(&|s| s.max_freq_hz = Some(600.0));
        assert!(m.contains("max_freq_hz = 600") && m.contains("500"), "{m}");
        let m = e(&|s| s.bin_range = Some([10, 70]));
        assert!(
            m.contains("bin_range = [10, 70]") && m.contains("65"),
            "{m}"
        );
        let m = e(&|s| s.eps = Some(1e-3));
        assert!(m.contains("eps") && m.contains("log_magnitude"), "{m}");
        let m = e(&|s| {
            s.n_fft = 2048;
        });
        assert!(m.contains("n_fft = 2048") && m.contains("1000"), "{m}");
        let m = e(&|s| {
            s.n_fft = 2048;
            s.pad_mode = PadMode::Constant;
            s.center = false;
        });
        assert!(m.contains("n_fft = 2048") && m.contains("1000"), "{m}");
    }
}
