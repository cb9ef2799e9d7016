//! The blocked kernel: the [reference](super::reference) step's arithmetic,
//! cell for cell, arranged so a core spends its cycles on the 14
//! floating-point operations of each update rather than on loads.
//!
//! * **Layout.** A field is 314 rows (the 310 padded rows and a 2-row ghost
//!   frame above and below) of [`STRIDE`] = 320 floats: padded cell x sits at
//!   offset x + 2, the left ghost columns at 0 and 1, the right ones at 312
//!   and 313, and offsets 314..320 are inert. Fields and coefficient rows are
//!   64-byte aligned, so every 16-lane vector of a row is one cache line.
//!   The ghost and inert offsets are updated too, with `α = 0`, `t1 = 1`,
//!   `t2 = 0` (a copy of finite values); the step then rewrites each row's
//!   ghost columns with the wrap, while the row is still in cache.
//! * **Row blocks.** [`ROWS_PER_PASS`] rows are updated per pass over the
//!   columns: each vector of the two rows above and below and of the rows
//!   themselves is loaded once for the whole block, where the row loop loads
//!   every row five times. The block's Laplacians are computed before its
//!   updates, so the loads do not queue behind the stores.
//! * **Shared coefficients.** In the 240 top and bottom sponge rows, `α` is
//!   that of the first or last model row (edge replication), and `t1`, `t2`
//!   vary only in the 70 middle columns ([`sponge`]).
//!   Outside those columns a block loads each coefficient once for all its
//!   rows; in the 70 model rows `t2` is one row for all.
//! * **Neighbours.** The x ± 1 and x ± 2 values come from lane shifts of
//!   vectors already in registers or from unaligned loads, per instruction
//!   set (`Lanes::neighbours` in `simd`).
//! * **Reach.** The caller passes the columns the wave can have reached as
//!   well as the rows, so early steps update a square, not whole rows.

use std::ops::Range;

use super::simd::{Lanes, Portable};
use super::Isa;
use crate::physics::sponge::{self, cap_row};
use crate::physics::{C2, C3, NBC, NPAD, NW, NZ};

/// Row stride of a field (floats): the padded row at offsets 2..312, two
/// ghost columns either side, six inert cells; 20 vectors of 16 lanes.
pub const STRIDE: usize = NW;
/// Values in one field: 310 rows plus two ghost rows per side.
pub const FIELD_LEN: usize = (NPAD + 4) * STRIDE;
/// Rows updated per pass over the columns (every copy).
pub const ROWS_PER_PASS: usize = 4;
/// The offsets whose `t1` and `t2` vary from row to row in the top and
/// bottom sponge rows: the 70 middle columns (offsets 122..192) widened to
/// whole 16-lane vectors.
const MID_START: usize = 112;
const MID_END: usize = 192;
const MID_WIDTH: usize = MID_END - MID_START;

/// 16 floats on a 64-byte boundary: the unit of every buffer here.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
struct Line([f32; 16]);

fn lines(len: usize) -> Vec<Line> {
    debug_assert_eq!(len % 16, 0);
    vec![Line([0.0; 16]); len / 16]
}

/// One wavefield in the blocked layout (64-byte aligned).
pub struct Field(Vec<Line>);

impl Default for Field {
    fn default() -> Self {
        Field(lines(FIELD_LEN))
    }
}

impl Field {
    /// Offset of padded cell (z, x).
    #[must_use]
    pub fn index(z: usize, x: usize) -> usize {
        (z + 2) * STRIDE + x + 2
    }

    /// Set every value to 0.
    pub fn clear(&mut self) {
        self.0.fill(Line([0.0; 16]));
    }

    /// The values, row-major.
    #[must_use]
    pub fn as_slice(&self) -> &[f32] {
        bytemuck::cast_slice(&self.0)
    }

    /// The values, row-major, writable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        bytemuck::cast_slice_mut(&mut self.0)
    }
}

/// A map's update coefficients in the blocked layout: the same f32 values as
/// [`sponge::Coefficients`], stored by row kind (see the module notes).
pub struct Coefficients {
    /// `α` of the rows level with model row `mz`, 70 × [`STRIDE`].
    alpha: Vec<Line>,
    /// `t1` of those rows, 70 × [`STRIDE`]; rows 0 and 69 also serve the
    /// top and bottom sponge rows outside the middle offsets.
    t1: Vec<Line>,
    /// `t2` of every row outside the top and bottom middle offsets.
    t2: Vec<Line>,
    /// `t1` at the middle offsets of the 240 top then bottom sponge rows.
    t1_mid: Vec<Line>,
    /// `t2` at the middle offsets of those rows.
    t2_mid: Vec<Line>,
}

impl Coefficients {
    /// Lay out `c` for the blocked kernel.
    #[must_use]
    pub fn new(c: &sponge::Coefficients) -> Coefficients {
        // (α, t1, t2) at offset `o` of padded row `z`; inert outside the grid.
        let at = |z: usize, o: usize| {
            if (2..NPAD + 2).contains(&o) {
                c.at(z, o - 2)
            } else {
                (0.0, 1.0, 0.0)
            }
        };
        let mut b = Coefficients {
            alpha: lines(NZ * STRIDE),
            t1: lines(NZ * STRIDE),
            t2: lines(STRIDE),
            t1_mid: lines(2 * NBC * MID_WIDTH),
            t2_mid: lines(2 * NBC * MID_WIDTH),
        };
        let alpha: &mut [f32] = bytemuck::cast_slice_mut(&mut b.alpha);
        let t1: &mut [f32] = bytemuck::cast_slice_mut(&mut b.t1);
        for mz in 0..NZ {
            for o in 0..STRIDE {
                (alpha[mz * STRIDE + o], t1[mz * STRIDE + o], _) = at(mz + NBC, o);
            }
        }
        let t2: &mut [f32] = bytemuck::cast_slice_mut(&mut b.t2);
        for (o, v) in t2.iter_mut().enumerate() {
            *v = at(NBC, o).2;
        }
        let t1_mid: &mut [f32] = bytemuck::cast_slice_mut(&mut b.t1_mid);
        let t2_mid: &mut [f32] = bytemuck::cast_slice_mut(&mut b.t2_mid);
        for z in 0..NPAD {
            if let Some(k) = cap_row(z) {
                for o in MID_START..MID_END {
                    let i = k * MID_WIDTH + o - MID_START;
                    (_, t1_mid[i], t2_mid[i]) = at(z, o);
                }
            }
        }
        b
    }

    /// `(α, t1, t2)` at offset `o` of padded row `z`, from the tables the
    /// kernel reads there (tests compare them with the full grid's).
    #[must_use]
    pub fn at(&self, z: usize, o: usize) -> (f32, f32, f32) {
        let f = |v: &[Line], i: usize| bytemuck::cast_slice::<Line, f32>(v)[i];
        let mz = z.clamp(NBC, NBC + NZ - 1) - NBC;
        let (a, t1) = (
            f(&self.alpha, mz * STRIDE + o),
            f(&self.t1, mz * STRIDE + o),
        );
        match cap_row(z) {
            Some(k) if (MID_START..MID_END).contains(&o) => {
                let i = k * MID_WIDTH + o - MID_START;
                (a, f(&self.t1_mid, i), f(&self.t2_mid, i))
            }
            _ => (a, t1, f(&self.t2, o)),
        }
    }

    fn row(v: &[Line], r: usize, width: usize) -> *const f32 {
        bytemuck::cast_slice::<Line, f32>(&v[r * width / 16..(r + 1) * width / 16]).as_ptr()
    }
}

/// Fill the ghost frame of `field` with the periodic wrap of the padded grid
/// for the padded rows `rows` (their ghost columns) and the two ghost rows
/// above and below the grid, as [`super::reference::wrap_edges`] does.
pub fn wrap_edges(field: &mut Field, rows: Range<usize>) {
    assert!(rows.end <= NPAD);
    for z in rows {
        let row = &mut field.as_mut_slice()[(z + 2) * STRIDE..(z + 3) * STRIDE];
        row[0] = row[NPAD];
        row[1] = row[NPAD + 1];
        row[NPAD + 2] = row[2];
        row[NPAD + 3] = row[3];
    }
    wrap_rows(field);
}

/// Fill the two ghost rows above and below the grid: padded rows 308 and 309
/// above, 0 and 1 below ([`step`] fills the ghost columns itself).
pub fn wrap_rows(field: &mut Field) {
    let field = field.as_mut_slice();
    field.copy_within(NPAD * STRIDE..(NPAD + 2) * STRIDE, 0);
    field.copy_within(2 * STRIDE..4 * STRIDE, (NPAD + 2) * STRIDE);
}

/// The offsets [`step`] updates in each row for `cols`: whole 16-lane
/// vectors.
fn offsets(cols: &Range<usize>) -> Range<usize> {
    (cols.start + 2) / 16 * 16..(cols.end + 2).div_ceil(16) * 16
}

/// Lane updates [`step`] does for `rows` and `cols` (what a core's rate is
/// counted in: `docs/performance.md`, "Roofline").
#[must_use]
pub fn lane_updates(rows: &Range<usize>, cols: &Range<usize>) -> u64 {
    if rows.is_empty() || cols.is_empty() {
        return 0;
    }
    (rows.len() * offsets(cols).len()) as u64
}

/// One leapfrog step, `next = t1·p − t2·next + α·(c2·Σ±1 + c3·Σ±2)`, on the
/// padded rows `rows` and at least the padded columns `cols` (whole 16-lane
/// vectors around them), on the copy compiled for `isa`. Cells outside must
/// be zero in `cur` and `next` (then they stay zero); `next` holds `p⁻` on
/// entry. `cur`'s ghost frame must hold the wrap ([`wrap_edges`]); the step
/// fills the ghost columns of `rows` in `next` while their lines are in
/// cache, so only the ghost rows ([`wrap_rows`]) remain before the next step.
///
/// # Panics
/// `isa` is not available on this CPU, or a range is outside the grid.
pub fn step(
    isa: Isa,
    cur: &Field,
    next: &mut Field,
    coef: &Coefficients,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    step_with(isa, false, cur, next, coef, rows, cols);
}

/// The factor the scaled copies hold every value times: 2^64.
pub const SCALE: f32 = f32::from_bits((127 + 64) << 23);

/// Whether `isa` has a scaled copy ([`step_with`]): AVX-512 and AVX2.
#[must_use]
pub fn has_scaled(isa: Isa) -> bool {
    matches!(isa, Isa::Avx512 | Isa::Avx2)
}

/// [`step`], or with `scaled` the copy for fields that hold every value
/// times [`SCALE`]: its results are the reference's times `SCALE`, bit for
/// bit, and it never meets a subnormal value, on which some CPUs take a
/// microcode assist (`simd` explains why it is exact).
///
/// # Panics
/// As [`step`], or `scaled` where `isa` has no scaled copy ([`has_scaled`]).
#[allow(clippy::too_many_arguments)]
pub fn step_with(
    isa: Isa,
    scaled: bool,
    cur: &Field,
    next: &mut Field,
    coef: &Coefficients,
    rows: Range<usize>,
    cols: Range<usize>,
) {
    assert!(
        isa.is_available(),
        "{} is not available on this CPU",
        isa.name()
    );
    assert!(
        !scaled || has_scaled(isa),
        "{} has no scaled copy",
        isa.name()
    );
    assert!(rows.end <= NPAD && cols.end <= NPAD);
    if rows.is_empty() || cols.is_empty() {
        return;
    }
    let offsets = offsets(&cols);
    let (cur, next) = (cur.as_slice().as_ptr(), next.as_mut_slice().as_mut_ptr());
    // Every arm: the pointers span whole fields; `rows` and `offsets` are
    // inside the grid (asserted above), which keeps every access inside them
    // ([`sweep`]); the CPU has the instruction set (asserted above).
    match (isa, scaled) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above; AVX-512F is present.
        (Isa::Avx512, false) => unsafe { step_avx512(cur, next, coef, rows, offsets) },
        // The AVX-512 checked copy tracks products with AVX-512DQ's
        // `vrangeps`; a CPU with AVX-512F alone (Xeon Phi) runs the AVX2
        // scaled copy, which gives the same bits.
        #[cfg(target_arch = "x86_64")]
        (Isa::Avx512, true) if std::arch::is_x86_feature_detected!("avx512dq") => {
            // SAFETY: see above; AVX-512F and AVX-512DQ are present.
            unsafe { step_avx512_scaled(cur, next, coef, rows, offsets) }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above; every CPU with AVX-512F has AVX2 and FMA.
        (Isa::Avx512, true) => unsafe { step_avx2_scaled(cur, next, coef, rows, offsets) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above; AVX2 and FMA are present.
        (Isa::Avx2, false) => unsafe { step_avx2(cur, next, coef, rows, offsets) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above; AVX2 and FMA are present.
        (Isa::Avx2, true) => unsafe { step_avx2_scaled(cur, next, coef, rows, offsets) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: see above; NEON is part of aarch64.
        (Isa::Neon, _) => unsafe {
            step_lanes::<super::simd::Neon, ROWS_PER_PASS>(cur, next, coef, rows, offsets);
        },
        // SAFETY: see above; the portable lanes need no instruction set.
        _ => unsafe { step_lanes::<Portable, ROWS_PER_PASS>(cur, next, coef, rows, offsets) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn step_avx512(
    cur: *const f32,
    next: *mut f32,
    coef: &Coefficients,
    rows: Range<usize>,
    offsets: Range<usize>,
) {
    step_lanes::<super::simd::Avx512, ROWS_PER_PASS>(cur, next, coef, rows, offsets);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn step_avx512_scaled(
    cur: *const f32,
    next: *mut f32,
    coef: &Coefficients,
    rows: Range<usize>,
    offsets: Range<usize>,
) {
    step_lanes::<super::simd::Avx512Checked, ROWS_PER_PASS>(cur, next, coef, rows, offsets);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn step_avx2(
    cur: *const f32,
    next: *mut f32,
    coef: &Coefficients,
    rows: Range<usize>,
    offsets: Range<usize>,
) {
    step_lanes::<super::simd::Avx2, ROWS_PER_PASS>(cur, next, coef, rows, offsets);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn step_avx2_scaled(
    cur: *const f32,
    next: *mut f32,
    coef: &Coefficients,
    rows: Range<usize>,
    offsets: Range<usize>,
) {
    step_lanes::<super::simd::Avx2Checked, ROWS_PER_PASS>(cur, next, coef, rows, offsets);
}

/// Rows of one kind share their coefficient tables: the top sponge rows, the
/// model rows, the bottom sponge rows.
fn kind(z: usize) -> usize {
    usize::from(z >= NBC) + usize::from(z >= NBC + NZ)
}

// Always inlined into the `#[target_feature]` wrappers above.
#[allow(clippy::inline_always)]
#[inline(always)]
unsafe fn step_lanes<L: Lanes, const R: usize>(
    cur: *const f32,
    next: *mut f32,
    coef: &Coefficients,
    rows: Range<usize>,
    offsets: Range<usize>,
) {
    let mut z = rows.start;
    while z < rows.end {
        if z + R <= rows.end && kind(z) == kind(z + R - 1) {
            block::<L, R>(cur, next, coef, z, &offsets);
            z += R;
        } else {
            block::<L, 1>(cur, next, coef, z, &offsets);
            z += 1;
        }
    }
}

/// Update padded rows `z..z + R` (all of one [`kind`]) at `offsets`, then
/// wrap their ghost columns in `next`.
#[allow(clippy::inline_always)]
#[inline(always)]
unsafe fn block<L: Lanes, const R: usize>(
    cur: *const f32,
    next: *mut f32,
    coef: &Coefficients,
    z: usize,
    offsets: &Range<usize>,
) {
    sweeps::<L, R>(cur, next, coef, z, offsets);
    for j in 0..R {
        // Columns outside `offsets` are zero, ghosts included: copying keeps them so.
        let row = next.add((z + j + 2) * STRIDE);
        *row = *row.add(NPAD);
        *row.add(1) = *row.add(NPAD + 1);
        *row.add(NPAD + 2) = *row.add(2);
        *row.add(NPAD + 3) = *row.add(3);
    }
}

/// [`block`]'s updates: the sweeps over the offsets of each coefficient kind.
#[allow(clippy::inline_always)]
#[inline(always)]
unsafe fn sweeps<L: Lanes, const R: usize>(
    cur: *const f32,
    next: *mut f32,
    coef: &Coefficients,
    z: usize,
    offsets: &Range<usize>,
) {
    let row = |v: &[Line], r: usize, w: usize| Coefficients::row(v, r, w);
    let mut co = [[std::ptr::null::<f32>(); R]; 3];
    let part = |a: usize, b: usize| offsets.start.max(a)..offsets.end.min(b);
    if kind(z) == 1 {
        let [alpha, t1, t2] = &mut co;
        for (j, (a, t)) in alpha.iter_mut().zip(t1.iter_mut()).enumerate() {
            *a = row(&coef.alpha, z + j - NBC, STRIDE);
            *t = row(&coef.t1, z + j - NBC, STRIDE);
        }
        t2[0] = row(&coef.t2, 0, STRIDE);
        sweep::<L, R, false, false, true>(cur, next, z, &co, part(0, STRIDE));
        return;
    }
    let mz = if z < NBC { 0 } else { NZ - 1 };
    co[0][0] = row(&coef.alpha, mz, STRIDE);
    co[1][0] = row(&coef.t1, mz, STRIDE);
    co[2][0] = row(&coef.t2, 0, STRIDE);
    sweep::<L, R, true, true, true>(cur, next, z, &co, part(0, MID_START));
    sweep::<L, R, true, true, true>(cur, next, z, &co, part(MID_END, STRIDE));
    let [_, t1, t2] = &mut co;
    for (j, (a, b)) in t1.iter_mut().zip(t2.iter_mut()).enumerate() {
        let k = cap_row(z + j).expect("a sponge row");
        // Pointers to offset 0 of a virtual full row: only MID_START.. is read.
        *a = row(&coef.t1_mid, k, MID_WIDTH).wrapping_sub(MID_START);
        *b = row(&coef.t2_mid, k, MID_WIDTH).wrapping_sub(MID_START);
    }
    sweep::<L, R, true, false, false>(cur, next, z, &co, part(MID_START, MID_END));
}

/// Update padded rows `z..z + R` at `offsets` (whole vectors). `co` holds
/// the `α`, `t1`, `t2` rows (offset 0 of each): one for all rows where the
/// matching `SHARED_*` is set, else one per row.
///
/// Reads rows `z − 2 ..= z + R + 1` of `cur` (field rows `z ..= z + R + 3`)
/// at `offsets` widened by one vector either side, so with `z + R ≤ 310`
/// every access is inside the field.
#[allow(clippy::inline_always)]
#[inline(always)]
unsafe fn sweep<
    L: Lanes,
    const R: usize,
    const SHARED_A: bool,
    const SHARED_T1: bool,
    const SHARED_T2: bool,
>(
    cur: *const f32,
    next: *mut f32,
    z: usize,
    co: &[[*const f32; R]; 3],
    offsets: Range<usize>,
) {
    const { assert!(R <= 8) };
    if offsets.is_empty() {
        return;
    }
    let n = L::N;
    let (c2, c3) = (L::splat(C2 as f32), L::splat(C3 as f32));
    let p = cur.add((z + 2) * STRIDE);
    let q = next.add((z + 2) * STRIDE);
    // The vectors at x − N and x of each row, carried along the row.
    let mut prev = [L::splat(0.0); R];
    let mut here = [L::splat(0.0); R];
    for j in 0..R {
        prev[j] = L::load(p.add(j * STRIDE + offsets.start).sub(n));
        here[j] = L::load(p.add(j * STRIDE + offsets.start));
    }
    let coef = |k: usize, j: usize, x: usize| L::load(co[k][j].wrapping_add(x));
    let mut x = offsets.start;
    while x < offsets.end {
        // Rows z − 2 .. z + R + 2 at x: v[i] is row z − 2 + i.
        let mut v = [L::splat(0.0); 12];
        v[0] = L::load(p.add(x).sub(2 * STRIDE));
        v[1] = L::load(p.add(x).sub(STRIDE));
        v[2..R + 2].copy_from_slice(&here);
        v[R + 2] = L::load(p.add(R * STRIDE + x));
        v[R + 3] = L::load(p.add((R + 1) * STRIDE + x));
        let shared = [
            SHARED_A.then(|| coef(0, 0, x)),
            SHARED_T1.then(|| coef(1, 0, x)),
            SHARED_T2.then(|| coef(2, 0, x)),
        ];
        // All the Laplacians first, then all the updates: the loads of the
        // first phase need not wait behind the second's stores (~3 % faster).
        // The checked copies track the products' magnitudes in `small`, one
        // accumulator per row: with one for the block, the chain of 20
        // dependent 4-cycle `vrangeps` set the pace (34 ms a source against
        // 30.6, `fd_step_bench`, Xeon model 207).
        let mut small = [L::splat(f32::INFINITY); R];
        let mut lap = [L::splat(0.0); R];
        let mut ahead = [L::splat(0.0); R];
        for j in 0..R {
            let at = p.add(j * STRIDE + x);
            ahead[j] = L::load(at.add(n));
            let [l2, l1, r1, r2] = L::neighbours(at, prev[j], here[j], ahead[j]);
            // The reference's order: x−1, x+1, z−1, z+1 (and the same for ±2).
            let s1 = l1.add(r1).add2(v[j + 1]).add(v[j + 3]);
            let s2 = l2.add(r2).add2(v[j]).add(v[j + 4]);
            lap[j] = c2
                .mul_tracked(s1, &mut small[j])
                .add(c3.mul_tracked(s2, &mut small[j]));
        }
        let mut res = [L::splat(0.0); R];
        for j in 0..R {
            let alpha = shared[0].unwrap_or_else(|| coef(0, j, x));
            let t1 = shared[1].unwrap_or_else(|| coef(1, j, x));
            let t2 = shared[2].unwrap_or_else(|| coef(2, j, x));
            let out = q.add(j * STRIDE + x);
            res[j] = t1
                .mul_tracked(here[j], &mut small[j])
                .sub(t2.mul_tracked(L::load(out), &mut small[j]))
                .add(alpha.mul_tracked(lap[j], &mut small[j]));
            if !L::CHECKED {
                L::store(out, res[j]);
            }
        }
        if L::CHECKED {
            // A product below the normal range: these rows at x again, with
            // the copy that rounds it as the reference does (their `p⁻` is
            // not yet overwritten).
            if small.iter().any(|&s| L::any_small(s)) {
                sweep::<L::Fixed, R, SHARED_A, SHARED_T1, SHARED_T2>(cur, next, z, co, x..x + n);
            } else {
                for (j, r) in res.iter().enumerate() {
                    L::store(q.add(j * STRIDE + x), *r);
                }
            }
        }
        prev = here;
        here = ahead;
        x += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::physics::fd::reference;
    use crate::physics::NX;

    fn coefficients() -> sponge::Coefficients {
        let vel: Vec<f32> = (0..NX * NZ)
            .map(|i| 1500.0 + (i % 97) as f32 * 30.0)
            .collect();
        sponge::Coefficients::new(&vel).unwrap()
    }

    #[test]
    fn tables_hold_the_full_grid_coefficients() {
        let c = coefficients();
        let b = Coefficients::new(&c);
        for z in 0..NPAD {
            for o in 0..STRIDE {
                let want = if (2..NPAD + 2).contains(&o) {
                    c.at(z, o - 2)
                } else {
                    (0.0, 1.0, 0.0)
                };
                assert_eq!(b.at(z, o), want, "row {z}, offset {o}");
            }
        }
    }

    /// One step of every copy of the blocked kernel equals the reference
    /// step on every cell, edge wrap included, with row ranges that start
    /// and end inside row blocks and across the sponge/model boundaries, and
    /// on a column range narrower than the row.
    #[test]
    fn one_step_equals_the_reference_on_every_isa() {
        let c = coefficients();
        let b = Coefficients::new(&c);
        let p = |z: usize, x: usize| ((z * 31 + x * 17) % 13) as f32 - 6.0 + z as f32 * 0.01;
        let p_old = |z: usize, x: usize| p(x, z) * 0.5;
        let (mut rc, mut rn) = (
            vec![0f32; reference::FIELD_LEN],
            vec![0f32; reference::FIELD_LEN],
        );
        for z in 0..NPAD {
            for x in 0..NPAD {
                rc[(z + 2) * reference::NS + x + 2] = p(z, x);
                rn[(z + 2) * reference::NS + x + 2] = p_old(z, x);
            }
        }
        reference::wrap_edges(&mut rc, 0..NPAD);
        reference::step_baseline(&rc, &mut rn, &c, 0..NPAD);
        let want = |z: usize, x: usize| rn[(z + 2) * reference::NS + x + 2];
        let split = [
            0..3,
            3..117,
            117..122,
            122..188,
            188..193,
            193..309,
            309..NPAD,
        ];
        for isa in Isa::available() {
            for (cols, check) in [(0..NPAD, 0..NPAD), (131..150, 131..150)] {
                let (mut bc, mut bn) = (Field::default(), Field::default());
                for z in 0..NPAD {
                    for x in 0..NPAD {
                        bc.as_mut_slice()[Field::index(z, x)] = p(z, x);
                        bn.as_mut_slice()[Field::index(z, x)] = p_old(z, x);
                    }
                }
                wrap_edges(&mut bc, 0..NPAD);
                for rows in split.clone() {
                    step(isa, &bc, &mut bn, &b, rows, cols.clone());
                }
                let row = |z: usize| &bn.as_slice()[(z + 2) * STRIDE..(z + 3) * STRIDE];
                for z in 0..NPAD {
                    let ghosts = [row(z)[0], row(z)[1], row(z)[NPAD + 2], row(z)[NPAD + 3]];
                    let wrapped = [row(z)[NPAD], row(z)[NPAD + 1], row(z)[2], row(z)[3]];
                    assert_eq!(ghosts, wrapped, "{}: ghost columns of row {z}", isa.name());
                    for x in check.clone() {
                        let got = bn.as_slice()[Field::index(z, x)];
                        assert_eq!(
                            got.to_bits(),
                            want(z, x).to_bits(),
                            "{}, columns {cols:?}: (z={z}, x={x}): {got} vs {}",
                            isa.name(),
                            want(z, x)
                        );
                    }
                }
            }
        }
    }

    /// The scaled copies ([`step_with`]) give the reference's bits times
    /// [`SCALE`] where the values are subnormal, tiny or mixed with normal
    /// ones (so sums cancel into the subnormal range and products
    /// underflow, some to zero).
    #[test]
    fn scaled_copies_give_the_reference_bits_on_subnormal_values() {
        let c = coefficients();
        let b = Coefficients::new(&c);
        // Sign, exponent field and mantissa from a hash of the cell and a
        // seed. Dense: mostly 0 (subnormal) to 2, some up to 40 (2⁻⁸⁷), a
        // few that of 1.0 (every block of rows has small products). Sparse:
        // mostly 90 to 127, 1 in 400 subnormal (most blocks have none).
        let value = |z: usize, x: usize, seed: u64, dense: bool| {
            let mut h = (z as u64 * 0x9e37_79b9 + x as u64 * 0x85eb_ca6b + seed)
                .wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
            h ^= h >> 29;
            let e = match (dense, h % 400) {
                (true, r) => match r % 100 {
                    r @ 0..85 => r as u32 % 3,
                    r @ 85..97 => 3 + r as u32 % 38,
                    _ => 127,
                },
                (false, 0) => 0,
                (false, r) => 90 + r as u32 % 38,
            };
            let m = (h >> 8) as u32 & 0x7f_ffff;
            f32::from_bits(((h >> 40) as u32 & 1) << 31 | e << 23 | m)
        };
        for dense in [true, false] {
            let (mut rc, mut rn) = (
                vec![0f32; reference::FIELD_LEN],
                vec![0f32; reference::FIELD_LEN],
            );
            for z in 0..NPAD {
                for x in 0..NPAD {
                    rc[(z + 2) * reference::NS + x + 2] = value(z, x, 1, dense);
                    rn[(z + 2) * reference::NS + x + 2] = value(z, x, 2, dense);
                }
            }
            reference::wrap_edges(&mut rc, 0..NPAD);
            reference::step_baseline(&rc, &mut rn, &c, 0..NPAD);
            // Dense: many results subnormal. Sparse: some inputs, whose
            // products (t1·p, t2·p⁻) are.
            let count = |v: &[f32]| v.iter().filter(|v| v.is_subnormal()).count();
            let (results, inputs) = (count(&rn), count(&rc));
            assert!(
                if dense {
                    results > 3_000
                } else {
                    (100..2_000).contains(&inputs)
                },
                "dense {dense}: {results} subnormal results, {inputs} inputs"
            );
            // Times or divided by 2^64, exactly (in f64, where every f32
            // value and its scaled image are normal).
            let scale = |v: f32, by: f64| (f64::from(v) * by) as f32;
            let up = f64::from(SCALE);
            for isa in Isa::available().into_iter().filter(|&i| has_scaled(i)) {
                let (mut bc, mut bn) = (Field::default(), Field::default());
                for z in 0..NPAD {
                    for x in 0..NPAD {
                        bc.as_mut_slice()[Field::index(z, x)] = scale(value(z, x, 1, dense), up);
                        bn.as_mut_slice()[Field::index(z, x)] = scale(value(z, x, 2, dense), up);
                    }
                }
                wrap_edges(&mut bc, 0..NPAD);
                step_with(isa, true, &bc, &mut bn, &b, 0..NPAD, 0..NPAD);
                for z in 0..NPAD {
                    for x in 0..NPAD {
                        let (got, want) = (
                            scale(bn.as_slice()[Field::index(z, x)], 1.0 / up),
                            rn[(z + 2) * reference::NS + x + 2],
                        );
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "{}, dense {dense}: (z={z}, x={x}): {got:e} vs {want:e}",
                            isa.name()
                        );
                    }
                }
            }
        }
    }
}
