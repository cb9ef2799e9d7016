//! The scaled and checked copies of the AVX-512 and AVX2 lanes, for CPUs
//! that take a microcode assist on subnormal values
//! (`crate::cpu::Subnormals`).
#![allow(clippy::inline_always)]

use std::arch::x86_64::{
    _mm256_and_ps, _mm256_and_si256, _mm256_andnot_ps, _mm256_castps_si256, _mm256_castsi256_ps,
    _mm256_cmp_ps, _mm256_cmpeq_epi32, _mm256_fmadd_ps, _mm256_min_epu32, _mm256_movemask_epi8,
    _mm256_mul_ps, _mm256_or_ps, _mm256_set1_epi32, _mm256_set1_ps, _mm256_sub_epi32,
    _mm256_sub_ps, _mm512_abs_ps, _mm512_castps_si512, _mm512_castsi512_ps, _mm512_cmp_ps_mask,
    _mm512_fixupimm_ps, _mm512_fmadd_ps, _mm512_maskz_ternarylogic_epi32, _mm512_mul_ps,
    _mm512_range_ps, _mm512_set1_epi32, _mm512_set1_ps, _mm512_sub_ps, _mm512_ternarylogic_epi32,
    _CMP_LT_OQ,
};

use super::{Avx2, Avx512, Lanes};

// The scaled copies. On many Intel cores an f32 multiplication that
// reads or makes a subnormal value, and an addition that makes one from
// normal values, take a microcode assist of ~100 cycles (unless
// flush-to-zero is on, which changes bits); the wave leaves subnormal
// values ahead of its front. In these copies the fields hold every
// value times 2^64 (`SCALE`), where the reference's subnormal values
// are normal ones, so no operation meets a subnormal value:
//
// * a sum or difference of scaled values is the scaled sum, exactly as
//   rounded (a sum in the subnormal range is exact, and so is its scaled
//   copy; above it both round to 24 bits);
// * a product of a scaled value and a coefficient is the scaled product
//   where the reference's product is normal (2^-126 or more). Below,
//   the reference rounds the exact product to a multiple of 2^-149, a
//   grid of fixed spacing, ties to even: `fma(a, b, ±H) ∓ H`, with
//   H = 2^64·2^-126 signed as the product, rounds the exact a·b once onto
//   the scaled grid (a·b ± H lies within [H, 2H) in magnitude, where the
//   spacing of f32 values is H·2^-23 = 2^64·2^-149 and even values are
//   even multiples of it), and the subtraction is exact. Where the
//   product is not small the FMA adds 0 instead: a single rounding of
//   a·b, the plain product.
//
// The scaled values stay far from overflow (2^64 times the largest
// field value of a stable map) and the smallest, 2^64·2^-149 times a
// coefficient, far above the subnormal range.

/// 2^-62: the scaled image of the smallest normal f32, 2^-126.
const SCALED_MIN_NORMAL: f32 = f32::from_bits((127 - 62) << 23);

/// What a plain copy brings to its scaled and checked copies: the
/// products that differ.
pub(in crate::physics::fd) trait ScaledMul: Lanes {
    /// `self · b` on scaled values, rounded as the reference rounds the
    /// unscaled product (see above).
    unsafe fn fixed_mul(self, b: Self) -> Self;
    /// The plain `self · b`, with its magnitude folded into `small`.
    unsafe fn tracked_mul(self, b: Self, small: &mut Self) -> Self;
    /// Whether a magnitude folded into `small` is below the scaled normal
    /// range.
    unsafe fn holds_small(small: Self) -> bool;
}

/// A plain copy on fields scaled by 2^64, with the reference's rounding of
/// subnormal products (see above).
#[derive(Clone, Copy)]
pub struct Scaled<L>(L);

/// A plain copy on scaled fields, checked: it gives the scaled copy's bits
/// wherever no product is below the scaled normal range, and folds each
/// product's magnitude into an accumulator, one per row (two operations
/// with AVX-512, three with AVX2, where the scaled copy spends six more on
/// each product); a block of rows with a small product is done again by
/// the scaled copy.
#[derive(Clone, Copy)]
pub struct Checked<L>(L);

/// The AVX-512 checked copy.
pub type Avx512Checked = Checked<Avx512>;
/// The AVX2 checked copy.
pub type Avx2Checked = Checked<Avx2>;

impl<L: ScaledMul> Lanes for Scaled<L> {
    type Fixed = Self;
    const N: usize = L::N;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Scaled(L::load(p))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        L::store(p, v.0);
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Scaled(L::splat(x))
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        Scaled(self.0.add(b.0))
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        Scaled(self.0.sub(b.0))
    }
    #[inline(always)]
    unsafe fn add2(self, b: Self) -> Self {
        Scaled(self.0.add2(b.0))
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        Scaled(self.0.fixed_mul(b.0))
    }
    #[inline(always)]
    unsafe fn neighbours(p: *const f32, prev: Self, cur: Self, next: Self) -> [Self; 4] {
        L::neighbours(p, prev.0, cur.0, next.0).map(Scaled)
    }
}

impl<L: ScaledMul> Lanes for Checked<L> {
    type Fixed = Scaled<L>;
    const N: usize = L::N;
    const CHECKED: bool = true;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Checked(L::load(p))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        L::store(p, v.0);
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Checked(L::splat(x))
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        Checked(self.0.add(b.0))
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        Checked(self.0.sub(b.0))
    }
    #[inline(always)]
    unsafe fn add2(self, b: Self) -> Self {
        Checked(self.0.add2(b.0))
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        Checked(self.0.mul(b.0))
    }
    #[inline(always)]
    unsafe fn mul_tracked(self, b: Self, small: &mut Self) -> Self {
        Checked(self.0.tracked_mul(b.0, &mut small.0))
    }
    #[inline(always)]
    unsafe fn any_small(small: Self) -> bool {
        L::holds_small(small.0)
    }
    #[inline(always)]
    unsafe fn neighbours(p: *const f32, prev: Self, cur: Self, next: Self) -> [Self; 4] {
        L::neighbours(p, prev.0, cur.0, next.0).map(Checked)
    }
}

impl ScaledMul for Avx512 {
    #[inline(always)]
    unsafe fn fixed_mul(self, b: Self) -> Self {
        let (a, b) = (self.0, b.0);
        let h = _mm512_set1_ps(SCALED_MIN_NORMAL);
        let sign = _mm512_set1_epi32(i32::MIN);
        let p = _mm512_mul_ps(a, b);
        let small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_abs_ps(p), h);
        // ±H with the product's sign where it is small, else 0, which
        // makes the FMA the plain product: (p & sign) | H, zero-masked.
        let sh = _mm512_maskz_ternarylogic_epi32::<0xea>(
            small,
            _mm512_castps_si512(p),
            sign,
            _mm512_castps_si512(h),
        );
        let sh = _mm512_castsi512_ps(sh);
        let q = _mm512_castps_si512(_mm512_sub_ps(_mm512_fmadd_ps(a, b, sh), sh));
        // A product rounded to zero keeps its sign (x − x is +0):
        // q | (p & sign).
        let q = _mm512_ternarylogic_epi32::<0xf8>(q, _mm512_castps_si512(p), sign);
        Avx512(_mm512_castsi512_ps(q))
    }
    // A zero product (exact, and rounded as the reference rounds it)
    // becomes +∞ (`vfixupimmps`: the nibble for the class "zero" says +∞,
    // every other class keeps the value), and `vrangeps` keeps the smaller
    // magnitude of that and the accumulator: two operations. Needs
    // AVX-512DQ (`vrangeps`); see `blocked::step_with`.
    #[inline(always)]
    unsafe fn tracked_mul(self, b: Self, small: &mut Self) -> Self {
        let p = _mm512_mul_ps(self.0, b.0);
        let zero_to_infinity = _mm512_set1_epi32(0x1111_1511);
        let q = _mm512_fixupimm_ps::<0>(p, p, zero_to_infinity);
        small.0 = _mm512_range_ps::<0b1010>(small.0, q);
        Avx512(p)
    }
    #[inline(always)]
    unsafe fn holds_small(small: Self) -> bool {
        _mm512_cmp_ps_mask::<_CMP_LT_OQ>(small.0, _mm512_set1_ps(SCALED_MIN_NORMAL)) != 0
    }
}

impl ScaledMul for Avx2 {
    #[inline(always)]
    unsafe fn fixed_mul(self, b: Self) -> Self {
        let (a, b) = (self.0, b.0);
        let h = _mm256_set1_ps(SCALED_MIN_NORMAL);
        let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX));
        let p = _mm256_mul_ps(a, b);
        let small = _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_and_ps(p, magnitude), h);
        // ±H with the product's sign where it is small, else 0, which
        // makes the FMA the plain product.
        let sign = _mm256_andnot_ps(magnitude, p);
        let sh = _mm256_and_ps(small, _mm256_or_ps(sign, h));
        let q = _mm256_sub_ps(_mm256_fmadd_ps(a, b, sh), sh);
        // A product rounded to zero keeps its sign (x − x is +0).
        Avx2(_mm256_or_ps(q, sign))
    }
    // As for AVX-512: the bits of |p| minus one, unsigned.
    #[inline(always)]
    unsafe fn tracked_mul(self, b: Self, small: &mut Self) -> Self {
        let p = _mm256_mul_ps(self.0, b.0);
        let m = _mm256_sub_epi32(
            _mm256_and_si256(_mm256_castps_si256(p), _mm256_set1_epi32(i32::MAX)),
            _mm256_set1_epi32(1),
        );
        small.0 = _mm256_castsi256_ps(_mm256_min_epu32(_mm256_castps_si256(small.0), m));
        Avx2(p)
    }
    #[inline(always)]
    unsafe fn holds_small(small: Self) -> bool {
        // min(m, h − 1) == m where m < h − 1, unsigned.
        let h = _mm256_set1_epi32(SCALED_MIN_NORMAL.to_bits() as i32 - 2);
        let m = _mm256_castps_si256(small.0);
        _mm256_movemask_epi8(_mm256_cmpeq_epi32(_mm256_min_epu32(m, h), m)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::{Avx2, Avx512, Lanes, Scaled, ScaledMul};
    use crate::cpu::Isa;

    #[repr(align(64))]
    struct Aligned([f32; 16]);

    /// `a · b` lane by lane on the AVX-512 scaled copy.
    #[target_feature(enable = "avx512f")]
    fn mul512(a: &Aligned, b: f32) -> [f32; 16] {
        let mut out = Aligned([0.0; 16]);
        // SAFETY: both arrays are 64-byte aligned and hold 16 values.
        unsafe {
            let p = Scaled::<Avx512>::load(a.0.as_ptr()).mul(Scaled::<Avx512>::splat(b));
            Scaled::<Avx512>::store(out.0.as_mut_ptr(), p);
        }
        out.0
    }

    /// `a · b` lane by lane on the AVX2 scaled copy.
    #[target_feature(enable = "avx2,fma")]
    fn mul256(a: &Aligned, b: f32) -> [f32; 16] {
        let mut out = Aligned([0.0; 16]);
        // SAFETY: both arrays are 64-byte aligned and hold 16 values.
        unsafe {
            for half in 0..2 {
                let v = Scaled::<Avx2>::load(a.0.as_ptr().add(8 * half));
                Scaled::<Avx2>::store(
                    out.0.as_mut_ptr().add(8 * half),
                    v.mul(Scaled::<Avx2>::splat(b)),
                );
            }
        }
        out.0
    }

    /// Each lane of the scaled copies' product is the reference's f32
    /// product times 2^64, bit for bit: normal, subnormal, rounded to ±0,
    /// ties on the subnormal grid, and at the edge of the normal range.
    #[test]
    fn scaled_products_round_as_the_reference() {
        let up = 2f64.powi(64);
        let scale = |v: f32, by: f64| (f64::from(v) * by) as f32;
        let sub = |m: u32| f32::from_bits(m);
        let mut values = vec![0.0, -0.0, 1.0, -3.5, 1e-30, -2e-38, f32::MIN_POSITIVE];
        values.extend([1, 2, 3, 5, 0x40_0000, 0x7f_ffff, 0x12_3457].map(sub));
        values.extend([1, 3, 0x7f_ffff, 0x80_0000, 0x80_0001].map(|m| -sub(m)));
        let mut h = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            h = h.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            values.push(f32::from_bits((h >> 32) as u32 & 0x83ff_ffff));
        }
        let coefficients = [
            crate::physics::C2 as f32,
            crate::physics::C3 as f32,
            0.5,
            0.25,
            0.75,
            1.5,
            0.0225,
            1.999_9,
            -0.5,
            1.0,
            f32::from_bits(0x3f80_0001),
        ];
        for &b in &coefficients {
            for a in values.chunks(16) {
                let mut lanes = [0f32; 16];
                for (l, &v) in lanes.iter_mut().zip(a) {
                    *l = scale(v, up);
                }
                let want: Vec<u32> = a.iter().map(|&v| (v * b).to_bits()).collect();
                let src = Aligned(lanes);
                let mut got = [[0f32; 16]; 2];
                // SAFETY: each copy runs only where the CPU has it.
                unsafe {
                    if Isa::Avx512.is_available() {
                        got[0] = mul512(&src, b);
                    }
                    if Isa::Avx2.is_available() {
                        got[1] = mul256(&src, b);
                    }
                }
                for (k, isa) in [Isa::Avx512, Isa::Avx2].into_iter().enumerate() {
                    if !isa.is_available() {
                        continue;
                    }
                    for (i, w) in want.iter().enumerate() {
                        let g = scale(got[k][i], 1.0 / up);
                        assert_eq!(
                            g.to_bits(),
                            *w,
                            "{}: {:e} · {b:e}: {g:e} vs {:e}",
                            isa.name(),
                            a[i],
                            f32::from_bits(*w)
                        );
                    }
                }
            }
        }
    }

    /// Whether the AVX-512 copy's accumulator holds a small product after
    /// folding `a · b` lane by lane (with `prior` folded first).
    #[target_feature(enable = "avx512f,avx512dq")]
    fn small512(prior: &Aligned, a: &Aligned, b: f32) -> bool {
        // SAFETY: both arrays are 64-byte aligned and hold 16 values.
        unsafe {
            let mut small = Avx512::splat(f32::INFINITY);
            let one = Avx512::splat(1.0);
            Avx512::load(prior.0.as_ptr()).tracked_mul(one, &mut small);
            Avx512::load(a.0.as_ptr()).tracked_mul(Avx512::splat(b), &mut small);
            Avx512::holds_small(small)
        }
    }

    /// The same with the AVX2 copy, over the two halves.
    #[target_feature(enable = "avx2,fma")]
    fn small256(prior: &Aligned, a: &Aligned, b: f32) -> bool {
        // SAFETY: both arrays are 64-byte aligned and hold 16 values.
        unsafe {
            (0..2).any(|half| {
                let mut small = Avx2::splat(f32::INFINITY);
                let one = Avx2::splat(1.0);
                Avx2::load(prior.0.as_ptr().add(8 * half)).tracked_mul(one, &mut small);
                Avx2::load(a.0.as_ptr().add(8 * half)).tracked_mul(Avx2::splat(b), &mut small);
                Avx2::holds_small(small)
            })
        }
    }

    /// The checked copies flag a vector exactly when one of its products
    /// is below the scaled normal range and not zero: ±0 products (exact)
    /// never, one small lane among normal and zero ones always, the edge of
    /// the range as the f32 comparison says.
    #[test]
    fn tracking_flags_exactly_the_small_nonzero_products() {
        let h = super::SCALED_MIN_NORMAL;
        let below = f32::from_bits(h.to_bits() - 1);
        let cases: Vec<[f32; 16]> = vec![
            [0.0; 16],
            [-0.0; 16],
            [1.0; 16],
            [h; 16],
            {
                let mut v = [0.0; 16];
                v[7] = below;
                v
            },
            {
                let mut v = [-0.0; 16];
                v[15] = -below;
                v
            },
            {
                let mut v = [3.0; 16];
                v[0] = 0.0;
                v[1] = -h;
                v
            },
            {
                let mut v = [-2.5; 16];
                v[9] = h * 0.5;
                v
            },
            {
                let mut v = [0.0; 16];
                v[3] = f32::INFINITY;
                v[4] = 1e30;
                v
            },
        ];
        for prior in &cases {
            for a in &cases {
                for b in [1.0f32, -1.0, 0.5] {
                    let small = |p: f32| p != 0.0 && p.abs() < h;
                    let want = prior.iter().any(|&p| small(p)) || a.iter().any(|&x| small(x * b));
                    let (pa, aa) = (Aligned(*prior), Aligned(*a));
                    if Isa::Avx512.is_available() && std::arch::is_x86_feature_detected!("avx512dq")
                    {
                        // SAFETY: the CPU has AVX-512F and AVX-512DQ.
                        let got = unsafe { small512(&pa, &aa, b) };
                        assert_eq!(got, want, "avx512: {prior:?} {a:?} · {b}");
                    }
                    if Isa::Avx2.is_available() {
                        // SAFETY: the CPU has AVX2 and FMA.
                        let got = unsafe { small256(&pa, &aa, b) };
                        assert_eq!(got, want, "avx2: {prior:?} {a:?} · {b}");
                    }
                }
            }
        }
    }
}
