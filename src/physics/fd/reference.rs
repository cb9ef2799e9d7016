//! The reference kernel: one 2-4 leapfrog step over the padded grid, one row
//! at a time, written so LLVM vectorises it, plus runtime dispatch to AVX-512 /
//! AVX2 copies of the same code. The [`blocked`](super::blocked) kernel gives
//! the same bits faster; this one stays as the reference that the tests and
//! `benches/simulate.py` compare it with (`SEISPIPE_FD_KERNEL=reference`).
//!
//! Fields are stored with a 2-cell ghost frame (314 rows of [`NS`] cells, the
//! 310 × 310 padded grid inside). The Laplacian wraps periodically at the outer
//! edge of the padded grid, as the published NumPy ports of the OpenFWI
//! generator do with `np.roll` on both axes: before each step [`wrap_edges`]
//! copies the two rows and columns of the opposite edge into the ghost frame
//! (the 2-4 stencil has no diagonal terms, so the frame's corners are never
//! read). The wrap matters: the sponge is tuned to the map's slowest velocity,
//! so on fast maps much energy reaches the outer edge, and what comes back from
//! it is in every late sample of the record.
//!
//! The new field overwrites the previous one in place (each cell of `p⁻` is
//! read only by its own update), so one simulation holds two fields.
//! Rust never contracts `a·b + c` into an FMA, so the scalar, AVX2 and
//! AVX-512 copies give bit-identical results.

use std::ops::Range;

use super::Isa;
use crate::physics::sponge::{cap_row, Coefficients};
use crate::physics::{C2, C3, NBC, NPAD, NW, NX, NZ};

/// Row stride of a field: the computed row plus two ghost cells per side.
pub const NS: usize = NW + 4;
/// Values in one field: 310 rows plus two ghost rows per side.
pub const FIELD_LEN: usize = (NPAD + 4) * NS;

/// Fill the ghost frame of `field` with the periodic wrap of the padded grid
/// for the padded rows `rows` (their left and right ghost columns) and for the
/// two ghost rows above and below the grid (always: they are two row copies).
///
/// The right ghost columns are the inert columns 310 and 311 (see [`NW`]):
/// a step copies them unchanged (`α = 0`, `t1 = 1`, `t2 = 0`), and nothing but
/// column 309's stencil reads them.
pub fn wrap_edges(field: &mut [f32], rows: Range<usize>) {
    assert_eq!(field.len(), FIELD_LEN);
    assert!(rows.end <= NPAD);
    for z in rows {
        let row = &mut field[(z + 2) * NS..(z + 3) * NS];
        // Cell x of the padded grid is at offset x + 2 of its row.
        row[0] = row[NPAD];
        row[1] = row[NPAD + 1];
        row[NPAD + 2] = row[2];
        row[NPAD + 3] = row[3];
    }
    // Ghost rows −2, −1 hold padded rows 308, 309; ghost rows 310, 311 hold 0, 1.
    field.copy_within(NPAD * NS..(NPAD + 2) * NS, 0);
    field.copy_within(2 * NS..4 * NS, (NPAD + 2) * NS);
}

/// One step: `next = t1·p − t2·next + α·(c2·Σ±1 + c3·Σ±2)` for the padded
/// rows `rows` (rows outside it must be zero in `cur` and `next`, so they stay
/// zero); `next` holds `p⁻` on entry.
// Always inlined: the AVX-512 and AVX2 wrappers below get their own copy
// compiled with their target features only if this body is inlined into them.
#[allow(clippy::inline_always)]
#[inline(always)]
fn step_generic(cur: &[f32], next: &mut [f32], coef: &Coefficients, rows: Range<usize>) {
    let (c2, c3) = (C2 as f32, C3 as f32);
    let n = NW;
    // Row buffers for the coefficients that vary by row in the middle columns
    // (on the stack: nothing is allocated per step).
    // The top (bottom) sponge rows share their side columns with the first
    // (last) model row; only their 70 middle columns change from row to row.
    let mut t1top = [0f32; NW];
    let mut t1bot = [0f32; NW];
    t1top.copy_from_slice(&coef.t1_rows[..NW]);
    t1bot.copy_from_slice(&coef.t1_rows[(NZ - 1) * NW..]);
    let mut t2row = [0f32; NW];
    t2row.copy_from_slice(&coef.t2_sides);
    for z in rows {
        let mz = z.clamp(NBC, NBC + NZ - 1) - NBC;
        let t1: &[f32] = match cap_row(z) {
            Some(k) => {
                let buf = if z < NBC { &mut t1top } else { &mut t1bot };
                buf[NBC..NBC + NX].copy_from_slice(&coef.t1_caps[k * NX..(k + 1) * NX]);
                buf
            }
            None => &coef.t1_rows[mz * NW..(mz + 1) * NW],
        };
        t2row[NBC..NBC + NX].fill(coef.t2_rows[z]);
        let row = (z + 2) * NS;
        let r0 = &cur[row..row + NS];
        let um1 = &cur[row - NS..row];
        let um2 = &cur[row - 2 * NS..row - NS];
        let dp1 = &cur[row + NS..row + 2 * NS];
        let dp2 = &cur[row + 2 * NS..row + 3 * NS];
        let l2 = &r0[0..n];
        let l1 = &r0[1..=n];
        let c = &r0[2..n + 2];
        let r1 = &r0[3..n + 3];
        let r2 = &r0[4..n + 4];
        let u1 = &um1[2..n + 2];
        let u2 = &um2[2..n + 2];
        let d1 = &dp1[2..n + 2];
        let d2 = &dp2[2..n + 2];
        let al = &coef.alpha[mz * NW..mz * NW + n];
        let t1 = &t1[..n];
        let t2 = &t2row[..n];
        let out = &mut next[row + 2..row + 2 + n];
        for i in 0..n {
            // Summation order follows the reference (x−1, x+1, z−1, z+1).
            let s1 = l1[i] + r1[i] + u1[i] + d1[i];
            let s2 = l2[i] + r2[i] + u2[i] + d2[i];
            out[i] = t1[i] * c[i] - t2[i] * out[i] + al[i] * (c2 * s1 + c3 * s2);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn step_avx512(cur: &[f32], next: &mut [f32], coef: &Coefficients, rows: Range<usize>) {
    step_generic(cur, next, coef, rows);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn step_avx2(cur: &[f32], next: &mut [f32], coef: &Coefficients, rows: Range<usize>) {
    step_generic(cur, next, coef, rows);
}

/// One leapfrog step (`next = t1·p − t2·next + α·(c2·Σ±1 + c3·Σ±2)` over
/// `rows`), on the widest vector unit present.
pub fn step(cur: &[f32], next: &mut [f32], coef: &Coefficients, rows: Range<usize>) {
    step_on(Isa::detect(), cur, next, coef, rows);
}

/// [`step`] on the copy compiled for `isa` (the portable loop for
/// [`Isa::Neon`] and [`Isa::Baseline`]).
///
/// # Panics
/// `isa` is not available on this CPU, or a field has the wrong length.
pub fn step_on(isa: Isa, cur: &[f32], next: &mut [f32], coef: &Coefficients, rows: Range<usize>) {
    assert!(
        isa.is_available(),
        "{} is not available on this CPU",
        isa.name()
    );
    assert!(rows.end <= NPAD);
    assert_eq!(cur.len(), FIELD_LEN);
    assert_eq!(next.len(), FIELD_LEN);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX-512F (asserted above).
        Isa::Avx512 => unsafe { step_avx512(cur, next, coef, rows) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU supports AVX2 (asserted above).
        Isa::Avx2 => unsafe { step_avx2(cur, next, coef, rows) },
        _ => step_generic(cur, next, coef, rows),
    }
}

/// Run the scalar copy (tests compare it with the dispatched one).
pub fn step_baseline(cur: &[f32], next: &mut [f32], coef: &Coefficients, rows: Range<usize>) {
    assert!(rows.end <= NPAD);
    step_generic(cur, next, coef, rows);
}
