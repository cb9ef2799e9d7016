//! The OpenFWI acoustic simulator (docs/domain.md, "The OpenFWI generator"), exact to the published
//! scheme: 70 × 70 model at 10 m, padded by edge replication to 310 × 310
//! with a 120-cell damping sponge ([`sponge`]), the 2-4 leapfrog at 1 ms
//! ([`fd`]), the 15 Hz Ricker of 147 samples peaking at index 73
//! ([`wavelet`]), injection of `(v_src·dt)²·w[t]` right after the update of
//! step `t`, and sample `t` recorded right after that injection at depth
//! index 1 on all 70 receivers. The Laplacian wraps periodically at the
//! outer edge of the padded grid, as the generator's `np.roll` does.
//!
//! State is f32. One simulation allocates its fields once (per-thread scratch
//! reused across simulations) and nothing per time step. [`simulate`] is
//! single-threaded (for stages, which the executor runs in parallel);
//! [`simulate_batch`] uses rayon over (sample, source) pairs, for `synth` and
//! benchmarks.

pub mod dense;
pub mod fd;
mod schedule;
pub mod sponge;
pub mod wavelet;

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

use crate::cpu::{Compute, Subnormals};
use fd::reference::{FIELD_LEN, NS};
use fd::{blocked, Isa, Kernel};
use schedule::{arc, hull, nonzero_span, reached_rows, ring_distance, widen, BANDS, N_BANDS};
use sponge::Coefficients;

/// Version of the simulator's output (see [`crate::stage::algorithm`]), recorded
/// by every stage that simulates. 1: a zero wall two cells beyond the padded
/// grid. 2: the Laplacian wraps periodically at the padded grid's outer edge,
/// as the OpenFWI generator's `np.roll` does (changes late samples on fast maps).
/// 3: the update coefficients and the source factor are computed in float32
/// arithmetic from the float32 map, as the generator computes them
/// ([`sponge::CellCoefficients`]), instead of in f64 and rounded (changes
/// the last bits of every record).
pub const ALGORITHM: u32 = 3;

/// Model width (x cells).
pub const NX: usize = 70;
/// Model depth (z cells).
pub const NZ: usize = 70;
/// Sponge width in cells on every side.
pub const NBC: usize = 120;
/// Padded grid size (both axes).
pub const NPAD: usize = NX + 2 * NBC;
/// Cells computed per row: the 310 padded columns plus 10 inert ones
/// (`α = 0`, `t1 = 1`, `t2 = 0`, so a step copies them unchanged), making
/// every row a whole number of 16-lane (and 8-lane) vectors with no scalar
/// remainder loop. Columns 310 and 311 double as the right ghost columns of
/// the periodic wrap ([`fd::reference::wrap_edges`]); the others stay 0.
pub const NW: usize = 320;
/// Laplacian centre coefficient (per axis).
pub const C1: f64 = -5.0 / 2.0;
/// Laplacian ±1 coefficient.
pub const C2: f64 = 4.0 / 3.0;
/// Laplacian ±2 coefficient.
pub const C3: f64 = -1.0 / 12.0;

/// Recorded time samples.
pub const NT: usize = 1000;
/// Grid spacing (m).
pub const DX: f64 = 10.0;
/// Time step (s).
pub const DT: f64 = 1e-3;
/// OpenFWI's source x indices.
pub const SOURCE_X: [usize; 5] = [0, 17, 34, 52, 69];
/// Source depth index.
pub const SOURCE_Z: usize = 1;
/// Receiver depth index (receivers at every x).
pub const RECEIVER_Z: usize = 1;
/// Velocities below this are refused as far outside OpenFWI's 1500–4500 m/s.
pub const VMIN_ACCEPTED: f32 = 1000.0;
/// Velocities above this are refused as far outside 1500–4500 m/s (the CFL
/// bound, ~6100 m/s, is checked separately).
pub const VMAX_ACCEPTED: f32 = 6000.0;
/// The range `clip_velocity = true` (stage `simulate`) clips velocities into.
pub const CLIP_RANGE: (f32, f32) = (1500.0, 4500.0);
/// Values per simulated source: (time, receiver).
pub const PER_SOURCE: usize = NT * NX;

/// What is wrong with a velocity map, a source list or a buffer handed to
/// the simulator. Cells are named by their (z, x) position in the model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PhysicsError {
    /// A map that is not 70 × 70.
    #[error("velocity map has {values} values; expected 70 × 70 = 4900 (shape (1, 70, 70))")]
    MapLength {
        /// Values found.
        values: usize,
    },
    /// Maps handed together whose values are not whole maps.
    #[error("velocity input has {values} values, not a multiple of 70 × 70")]
    MapsLength {
        /// Values found.
        values: usize,
    },
    /// NaN or ±Inf (never clipped).
    #[error("velocity map holds a non-finite value ({value}) at (z={z}, x={x})")]
    NonFinite { value: f32, z: usize, x: usize },
    /// Zero or a negative velocity.
    #[error("velocity map holds a non-positive velocity {value} m/s at (z={z}, x={x})")]
    NonPositive { value: f32, z: usize, x: usize },
    /// A velocity far outside OpenFWI's range.
    #[error(
        "velocity {value} m/s at (z={z}, x={x}) is far outside OpenFWI's 1500–4500 m/s (accepted {min}–{max}; set clip_velocity = true to clip into 1500–4500)",
        min = VMIN_ACCEPTED,
        max = VMAX_ACCEPTED
    )]
    OutOfRange { value: f32, z: usize, x: usize },
    /// A cell where the scheme would be unstable.
    #[error(
        "velocity {value} m/s at (z={z}, x={x}) breaks the stability (CFL) bound of the 2-4 scheme at dt = 1 ms, dx = 10 m: v·dt/dx must be ≤ sqrt(3·(4 − 2κ)/32), about {vmax:.0} m/s"
    )]
    Unstable {
        value: f64,
        z: usize,
        x: usize,
        /// The largest stable velocity at that cell.
        vmax: f64,
    },
    /// No source.
    #[error("source_positions is empty; expected x indices in 0..=69")]
    NoSources,
    /// A source outside the 70 receivers.
    #[error("source position {0} is out of range; expected x indices in 0..=69")]
    SourceOutOfRange(usize),
    /// An output buffer of another size than the records.
    #[error("output buffer has {len} values; expected {samples} × {sources} × 1000 × 70")]
    OutputLength {
        len: usize,
        samples: usize,
        sources: usize,
    },
}

/// Check a velocity map and return it (clipped into [`CLIP_RANGE`] when
/// `clip`). NaN/Inf and wrong lengths are always errors.
///
/// # Errors
/// The length, or the first non-finite or out-of-range cell (z, x) and its
/// value, with the accepted range.
pub fn validate(vel: &[f32], clip: bool) -> Result<Vec<f32>, PhysicsError> {
    if vel.len() != NZ * NX {
        return Err(PhysicsError::MapLength { values: vel.len() });
    }
    if let Some(i) = vel.iter().position(|v| !v.is_finite()) {
        let (z, x) = (i / NX, i % NX);
        return Err(PhysicsError::NonFinite {
            value: vel[i],
            z,
            x,
        });
    }
    if clip {
        return Ok(vel
            .iter()
            .map(|v| v.clamp(CLIP_RANGE.0, CLIP_RANGE.1))
            .collect());
    }
    if let Some(i) = vel.iter().position(|&v| v <= 0.0) {
        let (z, x) = (i / NX, i % NX);
        return Err(PhysicsError::NonPositive {
            value: vel[i],
            z,
            x,
        });
    }
    if let Some(i) = vel
        .iter()
        .position(|&v| !(VMIN_ACCEPTED..=VMAX_ACCEPTED).contains(&v))
    {
        let (z, x) = (i / NX, i % NX);
        return Err(PhysicsError::OutOfRange {
            value: vel[i],
            z,
            x,
        });
    }
    Ok(vel.to_vec())
}

/// Check source positions (x indices into the 70 receivers).
///
/// # Errors
/// An empty list or an index ≥ 70.
pub fn check_sources(sources: &[usize]) -> Result<(), PhysicsError> {
    if sources.is_empty() {
        return Err(PhysicsError::NoSources);
    }
    if let Some(&s) = sources.iter().find(|&&s| s >= NX) {
        return Err(PhysicsError::SourceOutOfRange(s));
    }
    Ok(())
}

/// A validated map ready to simulate any source: coefficients and wavelet.
pub struct Medium {
    vel: Vec<f32>,
    coef: Coefficients,
    blocked: blocked::Coefficients,
    wavelet: Vec<f32>,
    compute: Compute,
}

impl Medium {
    /// Validate `vel` (70 × 70, z then x) and precompute its coefficients.
    ///
    /// # Errors
    /// See [`validate`] and [`Coefficients::new`].
    pub fn new(vel: &[f32], clip: bool) -> Result<Medium, PhysicsError> {
        let vel = validate(vel, clip)?;
        let coef = Coefficients::new(&vel)?;
        Ok(Medium {
            vel,
            blocked: blocked::Coefficients::new(&coef),
            coef,
            wavelet: wavelet::openfwi_ricker(NT),
            compute: Compute::default(),
        })
    }

    /// The same medium, simulated by `compute`'s kernel and vector copy
    /// (same bits, another speed).
    ///
    /// # Panics
    /// `compute.isa` is not available on this CPU (`crate::settings` refuses
    /// such a setting at start).
    #[must_use]
    pub fn with_compute(mut self, compute: Compute) -> Medium {
        assert!(
            compute.isa.is_available(),
            "{} is not available",
            compute.isa.name()
        );
        self.compute = compute;
        self
    }

    /// The (validated, possibly clipped) velocities.
    #[must_use]
    pub fn velocity(&self) -> &[f32] {
        &self.vel
    }

    /// Simulate one source at x index `sx` into `out` (1000 × 70), using the
    /// calling thread's scratch fields, with this medium's kernel
    /// ([`Medium::with_compute`]; by default the blocked kernel on the
    /// widest vector unit present).
    ///
    /// # Panics
    /// `sx ≥ 70` or `out.len() != 70 000` (callers check both).
    pub fn simulate_source(&self, sx: usize, out: &mut [f32]) {
        self.simulate_source_with(sx, out, self.compute.kernel, self.compute.isa);
    }

    /// [`Self::simulate_source`] with a given kernel and instruction set
    /// (tests compare every pair; all give the same bits).
    ///
    /// # Panics
    /// As [`Self::simulate_source`], or `isa` is not available on this CPU.
    pub fn simulate_source_with(&self, sx: usize, out: &mut [f32], kernel: Kernel, isa: Isa) {
        match kernel {
            Kernel::Reference => SCRATCH.with(|s| {
                check_source_args(sx, out, isa);
                let mut s = s.borrow_mut();
                let (a, b) = &mut *s;
                if a.len() == FIELD_LEN {
                    a.fill(0.0);
                    b.fill(0.0);
                } else {
                    *a = vec![0.0; FIELD_LEN];
                    *b = vec![0.0; FIELD_LEN];
                }
                self.run(sx, a, b, out, isa, true);
            }),
            Kernel::Blocked => {
                self.simulate_source_counted(sx, out, isa, self.compute.subnormals);
            }
        }
    }

    /// [`Self::simulate_source_with`] with the blocked kernel; returns the
    /// lane updates it did (the cells it stepped, whole vectors of 16; what
    /// `fd_step_bench` divides its time by).
    ///
    /// # Panics
    /// As [`Self::simulate_source_with`].
    pub fn simulate_source_counted(
        &self,
        sx: usize,
        out: &mut [f32],
        isa: Isa,
        subnormals: Subnormals,
    ) -> u64 {
        check_source_args(sx, out, isa);
        BLOCKED_SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let (a, b) = &mut *s;
            a.clear();
            b.clear();
            self.run_blocked(sx, a, b, out, isa, true, subnormals.avoided(isa))
        })
    }

    /// The time loop of the reference kernel; `skip_unreached` steps only the
    /// rows the wave can have reached (off only in tests, which show that it
    /// changes no bit).
    fn run(
        &self,
        sx: usize,
        cur: &mut Vec<f32>,
        prev: &mut Vec<f32>,
        out: &mut [f32],
        isa: Isa,
        skip_unreached: bool,
    ) {
        let beta = self.source_term(sx);
        let src = (SOURCE_Z + NBC + 2) * NS + NBC + 2 + sx;
        let rec = (RECEIVER_Z + NBC + 2) * NS + NBC + 2;
        let zs = SOURCE_Z + NBC;
        for (t, trace) in out.chunks_exact_mut(NX).enumerate() {
            // Before update t the field is zero beyond 2t rows (counted
            // periodically, as the wrap does) from the source row: the stencil
            // reaches 2 cells a step. Skipping those rows leaves them zero,
            // exactly what computing them would give.
            let reach = if skip_unreached { 2 * t + 2 } else { NPAD };
            for rows in reached_rows(zs, reach) {
                fd::reference::wrap_edges(cur, rows);
            }
            for rows in reached_rows(zs, reach) {
                fd::reference::step_on(isa, cur, prev, &self.coef, rows);
            }
            std::mem::swap(cur, prev);
            // Inject after the update, record right after the injection.
            cur[src] += beta * self.wavelet[t];
            trace.copy_from_slice(&cur[rec..rec + NX]);
        }
    }

    /// The time loop of the blocked kernel: as [`Self::run`], stepping only
    /// the cells whose update can change a record, band of rows by band of
    /// rows ([`BANDS`]).
    ///
    /// The update of a cell reads the cells within 2 of it along each axis
    /// (counted periodically, as the wrap does) and its own value two
    /// updates before. Hence, with `skip_unreached`:
    ///
    /// * **Zeros stay zero.** Where all of those are +0 (all bits clear) the
    ///   update gives +0 (`t1`, `t2`, `α` are positive), which the field
    ///   being overwritten already holds there. Each band keeps the columns
    ///   of its nonzero bits ([`nonzero_span`] after each update) and steps
    ///   only the columns within 2 of those of itself and its neighbour
    ///   bands, or nonzero two updates before. Ahead of the wave the values
    ///   underflow to zero well before the stencil's reach of 2 cells a step.
    /// * **Backward:** a cell's value after update `t` reaches a receiver by
    ///   the last record (after update 999) only if it lies within L1
    ///   distance `2·(999 − t)` of the receiver row; beyond `2·(999 − t) + 2`
    ///   it is left stale, and nothing recorded ever reads it.
    ///
    /// Each band steps one column range (the whole row where it would wrap
    /// past an edge), so no cell is updated twice. Off, in tests, every cell
    /// is stepped; they show that the records are the same bits.
    ///
    /// With `scaled` ([`Subnormals::Avoid`]), the fields hold every value
    /// times [`blocked::SCALE`] and the scaled copy steps them
    /// ([`blocked::step_with`]): the source is injected scaled and the
    /// records are scaled back, both exactly, so the records are the same
    /// bits.
    #[allow(clippy::too_many_arguments)]
    fn run_blocked(
        &self,
        sx: usize,
        cur: &mut blocked::Field,
        prev: &mut blocked::Field,
        out: &mut [f32],
        isa: Isa,
        skip_unreached: bool,
        scaled: bool,
    ) -> u64 {
        let beta = self.source_term(sx);
        let src = blocked::Field::index(SOURCE_Z + NBC, NBC + sx);
        let rec = blocked::Field::index(RECEIVER_Z + NBC, NBC);
        let (zs, xs) = (SOURCE_Z + NBC, NBC + sx);
        let zr = RECEIVER_Z + NBC;
        let source_band = BANDS
            .iter()
            .position(|&(lo, hi)| (lo..hi).contains(&zs))
            .expect("the source row is in a band");
        // Nonzero columns of each band of `cur` and of `prev` (the fields
        // start at zero).
        let empty = || -> [Range<usize>; N_BANDS] { std::array::from_fn(|_| 0..0) };
        let (mut now, mut before) = (empty(), empty());
        let mut lanes = 0;
        for (t, trace) in out.chunks_exact_mut(NX).enumerate() {
            let behind = if skip_unreached {
                2 * (NT - 1 - t) + 2
            } else {
                2 * NPAD
            };
            let mut after = empty();
            // The ghost columns of `cur` were filled by the step that wrote
            // it (the fields start at zero, ghosts included).
            for (i, &(lo, hi)) in BANDS.iter().enumerate() {
                let band = lo..hi;
                let Some(b) = behind.checked_sub(ring_distance(zr, &band)) else {
                    continue;
                };
                let need = if skip_unreached {
                    [(i + N_BANDS - 1) % N_BANDS, i, (i + 1) % N_BANDS]
                        .into_iter()
                        .map(|j| widen(&now[j], 2))
                        .fold(before[i].clone(), |a, b| hull(&a, &b))
                } else {
                    0..NPAD
                };
                let to = arc(NBC, NBC + NX, b);
                let cols = need.start.max(to.start)..need.end.min(to.end);
                if cols.is_empty() {
                    continue;
                }
                blocked::step_with(
                    isa,
                    scaled,
                    cur,
                    prev,
                    &self.blocked,
                    band.clone(),
                    cols.clone(),
                );
                lanes += blocked::lane_updates(&band, &cols);
                after[i] = if skip_unreached {
                    nonzero_span(prev, band, cols)
                } else {
                    0..NPAD
                };
            }
            blocked::wrap_rows(prev);
            std::mem::swap(cur, prev);
            let field = cur.as_mut_slice();
            if scaled {
                // Exact in f64: the product is the reference's f32 product
                // (subnormal or not), times 2^64; the record, divided by it.
                let up = f64::from(blocked::SCALE);
                field[src] += (f64::from(beta * self.wavelet[t]) * up) as f32;
                for (r, &v) in trace.iter_mut().zip(&field[rec..rec + NX]) {
                    *r = (f64::from(v) / up) as f32;
                }
            } else {
                field[src] += beta * self.wavelet[t];
                trace.copy_from_slice(&field[rec..rec + NX]);
            }
            after[source_band] = hull(&after[source_band], &(xs..xs + 1));
            before = std::mem::replace(&mut now, after);
        }
        lanes
    }

    /// `(v_src·dt)²` in f32, the factor of the wavelet injected at source x `sx`.
    fn source_term(&self, sx: usize) -> f32 {
        sponge::source_factor(self.vel[SOURCE_Z * NX + sx])
    }
}

/// The panics of [`Medium::simulate_source_with`]: a source x index out
/// of the model, a record buffer of the wrong length, or a vector copy this
/// CPU does not run.
fn check_source_args(sx: usize, out: &[f32], isa: Isa) {
    assert!(sx < NX && out.len() == PER_SOURCE);
    assert!(
        isa.is_available(),
        "{} is not available on this CPU",
        isa.name()
    );
}

thread_local! {
    /// Per-thread pair of fields of the reference kernel, allocated on first
    /// use and reused.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// The same for the blocked kernel.
    static BLOCKED_SCRATCH: RefCell<(blocked::Field, blocked::Field)> = RefCell::new(Default::default());
}

/// Simulate one 70 × 70 velocity map for `sources` on the calling thread,
/// writing `(sources.len(), 1000, 70)` values to `out`.
///
/// # Errors
/// Bad velocities (see [`Medium::new`]), bad sources, or a wrong `out` length.
pub fn simulate(
    vel: &[f32],
    sources: &[usize],
    clip: bool,
    out: &mut [f32],
) -> Result<(), PhysicsError> {
    check_sources(sources)?;
    check_out(out.len(), 1, sources.len())?;
    let m = Medium::new(vel, clip)?;
    for (&sx, o) in sources.iter().zip(out.chunks_exact_mut(PER_SOURCE)) {
        m.simulate_source(sx, o);
    }
    Ok(())
}

fn check_out(len: usize, samples: usize, sources: usize) -> Result<(), PhysicsError> {
    if len == samples * sources * PER_SOURCE {
        Ok(())
    } else {
        Err(PhysicsError::OutputLength {
            len,
            samples,
            sources,
        })
    }
}

/// A failure of one sample of a batch.
#[derive(Debug, thiserror::Error)]
#[error("sample {sample}: {reason}")]
pub struct SimError {
    /// Index of the sample in the batch.
    pub sample: usize,
    /// What is wrong with it.
    pub reason: PhysicsError,
}

/// Simulate `vels.len() / 4900` maps for `sources`, in parallel with rayon
/// over (sample, source) pairs, into `out` of shape `(N, S, 1000, 70)`.
/// Every map is validated before any simulation starts.
///
/// # Errors
/// The first (lowest-index) bad sample, or bad sources / buffer sizes (sample 0).
pub fn simulate_batch(
    vels: &[f32],
    sources: &[usize],
    clip: bool,
    out: &mut [f32],
) -> Result<(), SimError> {
    simulate_batch_with(vels, sources, clip, Compute::default(), out)
}

/// [`simulate_batch`] with a given kernel and vector copy.
///
/// # Errors
/// See [`simulate_batch`].
pub fn simulate_batch_with(
    vels: &[f32],
    sources: &[usize],
    clip: bool,
    compute: Compute,
    out: &mut [f32],
) -> Result<(), SimError> {
    let whole = |reason: PhysicsError| SimError { sample: 0, reason };
    check_sources(sources).map_err(whole)?;
    if !vels.len().is_multiple_of(NX * NZ) {
        return Err(whole(PhysicsError::MapsLength { values: vels.len() }));
    }
    let n = vels.len() / (NX * NZ);
    check_out(out.len(), n, sources.len()).map_err(whole)?;
    let media: Vec<Medium> = vels
        .par_chunks(NX * NZ)
        .enumerate()
        .map(|(i, v)| {
            Medium::new(v, clip)
                .map(|m| m.with_compute(compute))
                .map_err(|reason| SimError { sample: i, reason })
        })
        .collect::<Result<_, _>>()?;
    let s = sources.len();
    out.par_chunks_mut(PER_SOURCE)
        .enumerate()
        .for_each(|(k, o)| media[k / s].simulate_source(sources[k % s], o));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uniform(v: f32) -> Vec<f32> {
        vec![v; NX * NZ]
    }

    #[test]
    fn kernel_copies_agree_bitwise() {
        let vel: Vec<f32> = (0..NX * NZ)
            .map(|i| 1500.0 + (i % 97) as f32 * 30.0)
            .collect();
        let coef = Coefficients::new(&vel).unwrap();
        let mut cur = vec![0f32; FIELD_LEN];
        for z in 2..NPAD + 2 {
            for x in 2..NPAD + 2 {
                cur[z * NS + x] = ((z * 31 + x * 17) % 13) as f32 - 6.0;
            }
        }
        let prev: Vec<f32> = cur.iter().map(|v| v * 0.5).collect();
        let (mut a, mut b) = (prev.clone(), prev);
        fd::reference::step(&cur, &mut a, &coef, 0..NPAD);
        fd::reference::step_baseline(&cur, &mut b, &coef, 0..NPAD);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        // Ghost frame stays zero.
        assert!(a[..2 * NS].iter().all(|&v| v == 0.0));
    }

    /// One step of the kernel equals a plain periodic (`np.roll`-style)
    /// step over the whole 310 × 310 grid, with its coefficients recomputed
    /// per cell from the padded velocity and the damping profile, bit for bit.
    #[test]
    fn one_step_wraps_like_np_roll() {
        let vel: Vec<f32> = (0..NX * NZ)
            .map(|i| 1500.0 + (i % 89) as f32 * 33.0)
            .collect();
        let coef = Coefficients::new(&vel).unwrap();
        let vmin = vel.iter().copied().fold(f32::INFINITY, f32::min);
        let damp1d = sponge::damp_profile(f64::from(vmin));
        let cell = |z: usize, x: usize| ((z * 31 + x * 17) % 13) as f32 - 6.0 + (z as f32) * 0.01;
        let prev_of = |z: usize, x: usize| cell(x, z) * 0.5;
        let mut cur = vec![0f32; FIELD_LEN];
        let mut next = vec![0f32; FIELD_LEN];
        for z in 0..NPAD {
            for x in 0..NPAD {
                cur[(z + 2) * NS + x + 2] = cell(z, x);
                next[(z + 2) * NS + x + 2] = prev_of(z, x);
            }
        }
        fd::reference::wrap_edges(&mut cur, 0..NPAD);
        fd::reference::step(&cur, &mut next, &coef, 0..NPAD);
        let (c2, c3) = (C2 as f32, C3 as f32);
        let p = |z: usize, x: usize| cell(z % NPAD, x % NPAD);
        let w = |i: usize, k: usize| (i + NPAD - k) % NPAD;
        for z in 0..NPAD {
            for x in 0..NPAD {
                let v = sponge::padded_velocity(&vel, z, x);
                let al = (v * 0.001 / 10.0) * (v * 0.001 / 10.0);
                let kappa = sponge::damp_at(&damp1d, z, x) as f32 * 0.001;
                let (t1, t2) = ((2.0 - 5.0 * al) - kappa, 1.0 - kappa);
                let s1 = p(z, w(x, 1)) + p(z, x + 1) + p(w(z, 1), x) + p(z + 1, x);
                let s2 = p(z, w(x, 2)) + p(z, x + 2) + p(w(z, 2), x) + p(z + 2, x);
                let want = t1 * cell(z, x) - t2 * prev_of(z, x) + al * (c2 * s1 + c3 * s2);
                let got = next[(z + 2) * NS + x + 2];
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "(z={z}, x={x}): {got} vs {want}"
                );
            }
        }
    }

    /// Skipping the rows (and, in the blocked kernel, the columns) the wave
    /// has not reached changes no bit, also when the wave wraps from one edge
    /// of the padded grid to the other (a uniform 4500 m/s map sends the most
    /// energy there), for a source at each edge.
    #[test]
    fn skipping_unreached_cells_is_exact_across_the_wrap() {
        let m = Medium::new(&uniform(4500.0), false).unwrap();
        let isa = Isa::detect();
        for sx in [0, 34, 69] {
            let mut fast = vec![0f32; PER_SOURCE];
            let mut full = vec![0f32; PER_SOURCE];
            let (mut a, mut b) = (vec![0f32; FIELD_LEN], vec![0f32; FIELD_LEN]);
            m.run(sx, &mut a, &mut b, &mut fast, isa, true);
            let (mut a, mut b) = (vec![0f32; FIELD_LEN], vec![0f32; FIELD_LEN]);
            m.run(sx, &mut a, &mut b, &mut full, isa, false);
            let late = fast[900 * NX..].iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(late > 0.0, "source {sx}: no late energy");
            let same =
                |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same(&fast, &full),
                "source {sx}: skipping rows changed the record"
            );
            let mut blocked_fast = vec![0f32; PER_SOURCE];
            let mut blocked_full = vec![0f32; PER_SOURCE];
            let (mut a, mut b) = (blocked::Field::default(), blocked::Field::default());
            m.run_blocked(sx, &mut a, &mut b, &mut blocked_fast, isa, true, false);
            let (mut a, mut b) = (blocked::Field::default(), blocked::Field::default());
            m.run_blocked(sx, &mut a, &mut b, &mut blocked_full, isa, false, false);
            assert!(
                same(&blocked_fast, &blocked_full),
                "source {sx}: blocked, skipping cells changed the record"
            );
            assert!(
                same(&blocked_fast, &full),
                "source {sx}: blocked ≠ reference"
            );
        }
    }

    /// The blocked kernel's skipping (zeros tracked, backward cone) on maps
    /// whose waves spread at different speeds, for every vector copy: the
    /// same bits as stepping every cell, and as the reference kernel.
    #[test]
    fn skipping_is_exact_on_slow_fast_and_layered_maps_for_every_copy() {
        let layered: Vec<f32> = (0..NX * NZ)
            .map(|i| match i / NX {
                0..=9 => 1500.0,
                10..=19 => 4500.0,
                20..=39 => 1800.0,
                _ => 3600.0 + (i % NX) as f32 * 10.0,
            })
            .collect();
        let same = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(x, y)| x.to_bits() == y.to_bits());
        for vel in [uniform(1500.0), uniform(4500.0), layered] {
            let m = Medium::new(&vel, false).unwrap();
            for sx in [0, 69] {
                let mut reference = vec![0f32; PER_SOURCE];
                m.simulate_source_with(sx, &mut reference, Kernel::Reference, Isa::detect());
                for isa in Isa::available() {
                    let mut fast = vec![0f32; PER_SOURCE];
                    let mut full = vec![0f32; PER_SOURCE];
                    let (mut a, mut b) = (blocked::Field::default(), blocked::Field::default());
                    m.run_blocked(sx, &mut a, &mut b, &mut fast, isa, true, false);
                    let (mut a, mut b) = (blocked::Field::default(), blocked::Field::default());
                    m.run_blocked(sx, &mut a, &mut b, &mut full, isa, false, false);
                    let name = isa.name();
                    // The scaled copy (where the copy has one) changes no bit
                    // either.
                    if blocked::has_scaled(isa) {
                        let mut scaled = vec![0f32; PER_SOURCE];
                        let (mut a, mut b) = (blocked::Field::default(), blocked::Field::default());
                        m.run_blocked(sx, &mut a, &mut b, &mut scaled, isa, true, true);
                        assert!(
                            same(&scaled, &reference),
                            "{} m/s, source {sx}, {name}: the scaled copy changed the record",
                            vel[0]
                        );
                    }
                    assert!(
                        same(&fast, &full),
                        "{} m/s, source {sx}, {name}: skipping changed the record",
                        vel[0]
                    );
                    assert!(
                        same(&fast, &reference),
                        "{} m/s, source {sx}, {name}: ≠ reference",
                        vel[0]
                    );
                }
            }
        }
    }

    #[test]
    fn first_samples_follow_the_stencil() {
        let vel = uniform(2000.0);
        let m = Medium::new(&vel, false).unwrap();
        let mut out = vec![0f32; PER_SOURCE];
        m.simulate_source(34, &mut out);
        let w0 = wavelet::openfwi_ricker(NT)[0];
        let beta = (2000.0f32 * 1e-3).powi(2);
        for (x, &v) in out[..NX].iter().enumerate() {
            if x == 34 {
                assert!((v - beta * w0).abs() <= 1e-6 * (beta * w0).abs(), "{v}");
            } else {
                assert_eq!(v, 0.0, "x={x}");
            }
        }
        let nz: Vec<usize> = (0..NX).filter(|&x| out[NX + x] != 0.0).collect();
        assert_eq!(nz, vec![32, 33, 34, 35, 36]);
    }

    /// The sponge-aware CFL bound is sharp: a uniform 5900 m/s map (allowed)
    /// stays bounded over 1000 steps, a uniform 6000 m/s map (refused, though
    /// below the interior bound of 6124 m/s) overflows when run anyway.
    #[test]
    fn cfl_bound_is_where_the_scheme_blows_up() {
        for (v, stable) in [(5900.0f32, true), (6000.0, false)] {
            let vel = uniform(v);
            assert_eq!(Coefficients::new(&vel).is_ok(), stable, "{v}");
            let coef = Coefficients::build(&vel, false).unwrap();
            let m = Medium {
                vel: vel.clone(),
                blocked: blocked::Coefficients::new(&coef),
                coef,
                wavelet: wavelet::openfwi_ricker(NT),
                compute: Compute::default(),
            };
            let mut out = vec![0f32; PER_SOURCE];
            m.simulate_source(34, &mut out);
            let finite_and_small = out.iter().all(|x| x.is_finite() && x.abs() < 1e3);
            assert_eq!(finite_and_small, stable, "{v} m/s");
        }
    }

    #[test]
    fn bad_inputs_are_named() {
        let mut v = uniform(2000.0);
        v[75] = f32::NAN;
        let e = validate(&v, false).unwrap_err().to_string();
        assert!(e.contains("non-finite") && e.contains("(z=1, x=5)"), "{e}");
        assert!(validate(&v, true).is_err(), "clip never hides NaN");
        v[75] = -3.0;
        assert!(validate(&v, false)
            .unwrap_err()
            .to_string()
            .contains("non-positive"));
        assert_eq!(validate(&v, true).unwrap()[75], 1500.0);
        v[75] = 9000.0;
        assert!(validate(&v, false)
            .unwrap_err()
            .to_string()
            .contains("far outside"));
        assert!(validate(&v[..100], false)
            .unwrap_err()
            .to_string()
            .contains("4900"));
        assert!(check_sources(&[70]).unwrap_err().to_string().contains("70"));
        assert!(check_sources(&[]).is_err());
        let mut out = vec![0f32; 10];
        assert!(simulate(&uniform(2000.0), &[0], false, &mut out)
            .unwrap_err()
            .to_string()
            .contains("output buffer"));
    }
}
