//! Fast standard-normal draws for noise: the Marsaglia–Tsang ziggurat (128
//! layers, "RNOR", 2000) fed from bulk-filled ChaCha8 output.
//!
//! Why not `rand_distr::StandardNormal`: it draws one u64 per call through the
//! generator's per-call path and works in f64; noise for one sample needs
//! 350,000 draws, and this version is several times faster, which decides
//! whether flip + noise runs near disk speed. Correctness is checked against
//! scipy (χ² over equiprobable bins, KS, the tails) in the integration tests.
//!
//! Each draw takes one u32 from the stream: bits 0–6 pick the layer and bits
//! 7–31 (a signed 25-bit value, as fine as an f32 mantissa) the position, so
//! layer and value never share bits (the flaw Doornik (2005) found in the
//! original RNOR, which used the same 32 bits for both). Rejections (≈1.2 %
//! of draws) are finished from a second stream (see [`Normals`]); uniforms
//! there are `((u >> 11) + 0.5) · 2⁻⁵³`, never 0 or 1. The common path is
//! exact f32 arithmetic (an i32→f32 conversion and one multiply), so the
//! vectorised (AVX-512 with the tables in registers, AVX2 with gathers) and scalar
//! versions give the same bits (tested); the draws are a
//! pure function of the generator state: deterministic and thread-independent.
//!
//! The words come through [`keystream::Keystream`], which computes the
//! ChaCha8 blocks itself in the AVX-512 and AVX2 copies (16 and 8 at a time):
//! the same words as the generator's `fill_bytes`, which the portable copy
//! calls.

use std::sync::LazyLock;

use rand::RngCore;

use crate::cpu::Isa;
use keystream::Keystream;

pub mod keystream;

/// Draws handled per block.
pub const BLOCK: usize = 1024;

struct Tables {
    /// Fast-accept bounds on |value| per layer.
    kn: [u32; 128],
    /// Value → x scale per layer (f32 for the fast path).
    wn32: [f32; 128],
    /// The same in f64 for the slow path.
    wn: [f64; 128],
    /// Density at each layer's edge.
    fn_: [f64; 128],
}

const R: f64 = 3.442_619_855_899;
/// Values are signed 25-bit: |hz| < 2²⁴.
const M1: f64 = 16_777_216.0;

static TABLES: LazyLock<Tables> = LazyLock::new(|| {
    // Marsaglia & Tsang (2000), zigset() for the normal distribution, with
    // m1 = 2^24 for 25-bit signed values.
    let mut dn = R;
    let mut tn = dn;
    let vn = 9.912_563_035_262_17e-3;
    let q = vn / (-0.5 * dn * dn).exp();
    let mut t = Tables {
        kn: [0; 128],
        wn32: [0.0; 128],
        wn: [0.0; 128],
        fn_: [0.0; 128],
    };
    {
        t.kn[0] = ((dn / q) * M1) as u32;
        t.kn[1] = 0;
        t.wn[0] = q / M1;
        t.wn[127] = dn / M1;
        t.fn_[0] = 1.0;
        t.fn_[127] = (-0.5 * dn * dn).exp();
        for i in (1..=126).rev() {
            dn = (-2.0 * (vn / dn + (-0.5 * dn * dn).exp()).ln()).sqrt();
            t.kn[i + 1] = ((dn / tn) * M1) as u32;
            tn = dn;
            t.fn_[i] = (-0.5 * dn * dn).exp();
            t.wn[i] = dn / M1;
        }
        for i in 0..128 {
            t.wn32[i] = t.wn[i] as f32;
        }
    }
    t
});

/// A source of standard-normal f32 draws over a generator.
///
/// Element `i` of the output uses the `i`-th u32 of the primary stream `rng`
/// (read little-endian from `fill_bytes`). The ≈1.2 % of draws that fall
/// outside their layer's rectangle are finished (wedge test, redraws, tail)
/// with u64s from a secondary ChaCha8 stream, keyed by the first 32 bytes
/// the primary stream yields when the source is made, in element order. So
/// the common path is a branch-free pass over a block, and the draws are
/// still a pure function of the generator state.
pub struct Normals<'r, G: RngCore + 'static> {
    stream: Keystream<'r, G>,
    fixups: rand_chacha::ChaCha8Rng,
    buf: [u32; BLOCK],
    t: &'static Tables,
}

/// The fast pass over one block: `vals[j]` = the rectangle draw of `us[j]`;
/// returns how many were rejected, their positions in `rejected`. The
/// portable copy (x86-64 CPUs without AVX2, aarch64, others), and the
/// reference the vector copies are tested against.
fn fast_pass(t: &Tables, us: &[u32], vals: &mut [f32], rejected: &mut [u16; BLOCK]) -> usize {
    let mut n_rej = 0usize;
    for (j, (v, u)) in vals.iter_mut().zip(us).enumerate() {
        let u = *u;
        let iz = (u & 127) as usize;
        let hz = (u as i32) >> 7;
        {
            *v = hz as f32 * t.wn32[iz];
        }
        {
            rejected[n_rej] = j as u16;
        }
        n_rej += usize::from(hz.unsigned_abs() >= t.kn[iz]);
    }
    n_rej
}

/// The fast pass fused with the add, in AVX-512 (16 lanes): the 128-entry
/// tables live in registers and are looked up with two-source permutes
/// instead of gathers. For every accepted draw `x[j] += scale · v_j` (a
/// multiply, then an add: never fused, so the bits equal the scalar path's);
/// rejected lanes keep `x[j]` and set bit `j % 16` of `masks[j / 16]`, to be
/// finished in order by [`Normals::fix`].
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512, __m512i, __mmask16, _mm512_abs_epi32, _mm512_add_ps, _mm512_and_si512,
        _mm512_cmpge_epu32_mask, _mm512_cvtepi32_ps, _mm512_loadu_ps, _mm512_loadu_si512,
        _mm512_mask_blend_epi32, _mm512_mask_blend_ps, _mm512_mask_mov_ps, _mm512_mask_storeu_ps,
        _mm512_maskz_loadu_epi32, _mm512_maskz_loadu_ps, _mm512_mul_ps, _mm512_permutex2var_epi32,
        _mm512_permutex2var_ps, _mm512_set1_epi32, _mm512_set1_ps, _mm512_srai_epi32,
        _mm512_test_epi32_mask,
    };

    use super::Tables;

    /// Look `idx` (0..128) up in the 128 entries held as 8 registers.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn lookup_ps(t: &[__m512; 8], idx: __m512i, m32: __mmask16, m64: __mmask16) -> __m512 {
        let a = _mm512_permutex2var_ps(t[0], idx, t[1]);
        let b = _mm512_permutex2var_ps(t[2], idx, t[3]);
        let c = _mm512_permutex2var_ps(t[4], idx, t[5]);
        let d = _mm512_permutex2var_ps(t[6], idx, t[7]);
        let lo = _mm512_mask_blend_ps(m32, a, b);
        let hi = _mm512_mask_blend_ps(m32, c, d);
        _mm512_mask_blend_ps(m64, lo, hi)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn lookup_epi32(t: &[__m512i; 8], idx: __m512i, m32: __mmask16, m64: __mmask16) -> __m512i {
        let a = _mm512_permutex2var_epi32(t[0], idx, t[1]);
        let b = _mm512_permutex2var_epi32(t[2], idx, t[3]);
        let c = _mm512_permutex2var_epi32(t[4], idx, t[5]);
        let d = _mm512_permutex2var_epi32(t[6], idx, t[7]);
        let lo = _mm512_mask_blend_epi32(m32, a, b);
        let hi = _mm512_mask_blend_epi32(m32, c, d);
        _mm512_mask_blend_epi32(m64, lo, hi)
    }

    /// See the module documentation. `us` and `x` have the same length;
    /// `masks` has at least `len.div_ceil(16)` entries.
    #[target_feature(enable = "avx512f")]
    pub fn fused(t: &Tables, us: &[u32], x: &mut [f32], scale: f32, masks: &mut [u16]) {
        assert!(us.len() == x.len() && masks.len() >= x.len().div_ceil(16));
        let mut wn = [_mm512_set1_ps(0.0); 8];
        let mut kn = [_mm512_set1_epi32(0); 8];
        for r in 0..8 {
            // SAFETY: each table has 128 entries; r·16 + 16 ≤ 128.
            unsafe {
                wn[r] = _mm512_loadu_ps(t.wn32.as_ptr().add(r * 16));
                kn[r] = _mm512_loadu_si512(t.kn.as_ptr().add(r * 16).cast());
            }
        }
        let s = _mm512_set1_ps(scale);
        let (c127, c32, c64) = (
            _mm512_set1_epi32(127),
            _mm512_set1_epi32(32),
            _mm512_set1_epi32(64),
        );
        for (g, mask) in masks.iter_mut().enumerate().take(x.len().div_ceil(16)) {
            let start = g * 16;
            let lanes = (x.len() - start).min(16);
            let live: __mmask16 = if lanes == 16 {
                0xffff
            } else {
                (1u16 << lanes) - 1
            };
            // SAFETY: the masked loads and the store touch only the `lanes`
            // elements from `start`, all inside `us` and `x`.
            let (u, xv) = unsafe {
                (
                    _mm512_maskz_loadu_epi32(live, us.as_ptr().add(start).cast()),
                    _mm512_maskz_loadu_ps(live, x.as_ptr().add(start)),
                )
            };
            let iz = _mm512_and_si512(u, c127);
            let hz = _mm512_srai_epi32::<7>(u);
            let m32 = _mm512_test_epi32_mask(iz, c32);
            let m64 = _mm512_test_epi32_mask(iz, c64);
            let w = lookup_ps(&wn, iz, m32, m64);
            let k = lookup_epi32(&kn, iz, m32, m64);
            let v = _mm512_mul_ps(_mm512_cvtepi32_ps(hz), w);
            let rejected = _mm512_cmpge_epu32_mask(_mm512_abs_epi32(hz), k) & live;
            let added = _mm512_add_ps(xv, _mm512_mul_ps(s, v));
            let out = _mm512_mask_mov_ps(xv, !rejected, added);
            // SAFETY: as for the loads.
            unsafe { _mm512_mask_storeu_ps(x.as_mut_ptr().add(start), live, out) };
            *mask = rejected;
        }
    }
}

/// The fast pass fused with the add in AVX2 (8 lanes), as [`avx512::fused`]
/// with the tables looked up by gathers: accepted lanes get
/// `x[j] += scale · v_j` (multiply, then add); rejected lanes keep `x[j]` and
/// set bit `j % 8` of `masks[j / 8]`.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_abs_epi32, _mm256_add_ps, _mm256_and_si256, _mm256_blendv_ps,
        _mm256_castsi256_ps, _mm256_cmpgt_epi32, _mm256_cvtepi32_ps, _mm256_i32gather_epi32,
        _mm256_i32gather_ps, _mm256_loadu_ps, _mm256_loadu_si256, _mm256_movemask_ps,
        _mm256_mul_ps, _mm256_set1_epi32, _mm256_set1_ps, _mm256_srai_epi32, _mm256_storeu_ps,
    };

    use super::Tables;

    /// See the module documentation. `us` and `x` have the same length;
    /// `masks` has at least `len.div_ceil(8)` entries.
    #[target_feature(enable = "avx2")]
    pub fn fused(t: &Tables, us: &[u32], x: &mut [f32], scale: f32, masks: &mut [u8]) {
        assert!(us.len() == x.len() && masks.len() >= x.len().div_ceil(8));
        let whole = x.len() / 8;
        let s = _mm256_set1_ps(scale);
        let c127 = _mm256_set1_epi32(127);
        for (g, mask) in masks.iter_mut().enumerate().take(whole) {
            let start = g * 8;
            // SAFETY: start + 8 ≤ len for whole vectors; the gathers read
            // entries 0..128 of 128-entry tables (iz = u & 127).
            unsafe {
                // `loadu` needs no alignment.
                #[allow(clippy::cast_ptr_alignment)]
                let u = _mm256_loadu_si256(us.as_ptr().add(start).cast::<__m256i>());
                let xv = _mm256_loadu_ps(x.as_ptr().add(start));
                let iz = _mm256_and_si256(u, c127);
                let hz = _mm256_srai_epi32::<7>(u);
                let w = _mm256_i32gather_ps::<4>(t.wn32.as_ptr(), iz);
                let k = _mm256_i32gather_epi32::<4>(t.kn.as_ptr().cast(), iz);
                // |hz| ≤ 2²⁴ and every bound is below 2²⁴: a signed compare.
                let accepted = _mm256_castsi256_ps(_mm256_cmpgt_epi32(k, _mm256_abs_epi32(hz)));
                let v = _mm256_mul_ps(_mm256_cvtepi32_ps(hz), w);
                let added = _mm256_add_ps(xv, _mm256_mul_ps(s, v));
                _mm256_storeu_ps(
                    x.as_mut_ptr().add(start),
                    _mm256_blendv_ps(xv, added, accepted),
                );
                *mask = !(_mm256_movemask_ps(accepted) as u8);
            }
        }
        // The last < 8 draws, one by one.
        if whole < masks.len() && whole * 8 < x.len() {
            let mut m = 0u8;
            for j in whole * 8..x.len() {
                let u = us[j];
                let (iz, hz) = ((u & 127) as usize, (u as i32) >> 7);
                if hz.unsigned_abs() >= t.kn[iz] {
                    m |= 1 << (j % 8);
                } else {
                    x[j] += scale * (hz as f32 * t.wn32[iz]);
                }
            }
            masks[whole] = m;
        }
    }
}

impl<'r, G: RngCore + 'static> Normals<'r, G> {
    /// Draws from `rng`.
    pub fn new(rng: &'r mut G) -> Self {
        use rand::SeedableRng;
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        Normals {
            stream: Keystream::new(rng),
            fixups: rand_chacha::ChaCha8Rng::from_seed(key),
            buf: [0; BLOCK],
            t: &TABLES,
        }
    }

    /// Add `scale · n_i` to every `x[i]`, n_i ~ N(0, 1), in order, with the
    /// widest vector copy this CPU runs.
    pub fn add_scaled(&mut self, x: &mut [f32], scale: f32) {
        self.add_scaled_on(Isa::detect(), x, scale);
    }

    /// [`Normals::add_scaled`] with the vector copy of `isa` (or a narrower
    /// one when the CPU lacks it): the same bits whichever runs.
    pub fn add_scaled_on(&mut self, isa: Isa, x: &mut [f32], scale: f32) {
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            unsafe { self.add_scaled_avx512(x, scale) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if matches!(isa, Isa::Avx512 | Isa::Avx2) && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { self.add_scaled_avx2(x, scale) };
            return;
        }
        // Elsewhere there is one copy, whatever `isa` says.
        #[cfg(not(target_arch = "x86_64"))]
        let _ = isa;
        self.add_scaled_blocks(x, scale);
    }

    /// [`Normals::add_scaled`] on AVX-512 machines: same draws, same bits.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn add_scaled_avx512(&mut self, x: &mut [f32], scale: f32) {
        let mut masks = [0u16; BLOCK / 16];
        for xs in x.chunks_mut(BLOCK) {
            let n = xs.len();
            self.stream.fill(&mut self.buf[..n], Isa::Avx512);
            avx512::fused(self.t, &self.buf[..n], xs, scale, &mut masks);
            for (g, &m) in masks[..n.div_ceil(16)].iter().enumerate() {
                let mut m = m;
                while m != 0 {
                    let j = g * 16 + m.trailing_zeros() as usize;
                    m &= m - 1;
                    let u = self.buf[j];
                    let hz = (u as i32) >> 7;
                    let v = self.fix(hz, (u & 127) as usize);
                    xs[j] += scale * v;
                }
            }
        }
    }

    /// [`Normals::add_scaled`] on AVX2 machines: same draws, same bits.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn add_scaled_avx2(&mut self, x: &mut [f32], scale: f32) {
        let mut masks = [0u8; BLOCK / 8];
        for xs in x.chunks_mut(BLOCK) {
            let n = xs.len();
            self.stream.fill(&mut self.buf[..n], Isa::Avx2);
            avx2::fused(self.t, &self.buf[..n], xs, scale, &mut masks);
            for (g, &m) in masks[..n.div_ceil(8)].iter().enumerate() {
                let mut m = m;
                while m != 0 {
                    let j = g * 8 + m.trailing_zeros() as usize;
                    m &= m - 1;
                    let u = self.buf[j];
                    let hz = (u as i32) >> 7;
                    let v = self.fix(hz, (u & 127) as usize);
                    xs[j] += scale * v;
                }
            }
        }
    }

    /// [`Normals::add_scaled`] without AVX2: the rectangle draws of a block,
    /// the rejected ones finished in order, then the add.
    fn add_scaled_blocks(&mut self, x: &mut [f32], scale: f32) {
        let mut vals = [0f32; BLOCK];
        let mut rejected = [0u16; BLOCK];
        for xs in x.chunks_mut(BLOCK) {
            let n = xs.len();
            self.stream.fill(&mut self.buf[..n], Isa::Baseline);
            let n_rej = fast_pass(self.t, &self.buf[..n], &mut vals[..n], &mut rejected);
            for &j in &rejected[..n_rej] {
                let u = self.buf[j as usize];
                let hz = (u as i32) >> 7;
                vals[j as usize] = self.fix(hz, (u & 127) as usize);
            }
            for (xv, v) in xs.iter_mut().zip(&vals[..n]) {
                *xv += scale * v;
            }
        }
    }

    /// One N(0, 1) draw (the same as `add_scaled` on a one-element slice).
    pub fn draw(&mut self) -> f32 {
        let mut x = [0f32];
        self.add_scaled(&mut x, 1.0);
        x[0]
    }

    #[inline]
    fn uniform(&mut self) -> f64 {
        ((self.fixups.next_u64() >> 11) as f64 + 0.5) * (1.0 / 9_007_199_254_740_992.0)
    }

    #[cold]
    fn fix(&mut self, mut hz: i32, mut iz: usize) -> f32 {
        loop {
            let x = f64::from(hz) * self.t.wn[iz];
            if iz == 0 {
                // The tail beyond R, by Marsaglia's exponential method.
                loop {
                    let xt = -self.uniform().ln() / R;
                    let y = -self.uniform().ln();
                    if y + y >= xt * xt {
                        return if hz > 0 {
                            (R + xt) as f32
                        } else {
                            (-R - xt) as f32
                        };
                    }
                }
            }
            if self.t.fn_[iz] + self.uniform() * (self.t.fn_[iz - 1] - self.t.fn_[iz])
                < (-0.5 * x * x).exp()
            {
                return x as f32;
            }
            let u = self.fixups.next_u64() as u32;
            iz = (u & 127) as usize;
            {
                hz = (u as i32) >> 7;
            }
            if hz.unsigned_abs() < self.t.kn[iz] {
                return hz as f32 * self.t.wn32[iz];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_of_two_million_draws() {
        let mut rng = crate::rng::stage_rng(3, "moments", 0, 1, 0);
        let mut z = Normals::new(&mut rng);
        let n = 2_000_000;
        let (mut s1, mut s2, mut s3, mut s4) = (0f64, 0f64, 0f64, 0f64);
        let mut beyond3 = 0usize;
        for _ in 0..n {
            let x = f64::from(z.draw());
            s1 += x;
            s2 += x * x;
            s3 += x * x * x;
            s4 += x * x * x * x;
            if x.abs() > R {
                beyond3 += 1;
            }
        }
        let n = f64::from(n);
        let (m, v) = (s1 / n, s2 / n);
        assert!(m.abs() < 0.003, "mean {m}");
        assert!((v - 1.0).abs() < 0.004, "var {v}");
        assert!((s3 / n).abs() < 0.01, "skew {}", s3 / n);
        assert!((s4 / n - 3.0).abs() < 0.03, "kurtosis {}", s4 / n);
        // The tail branch is exercised (P(|x| > 3.44) ≈ 5.8e-4).
        assert!(beyond3 > 500, "{beyond3}");
    }

    #[test]
    fn whole_slice_equals_one_draw_at_a_time() {
        for len in [1usize, 511, 512, 513, 5000, 350_000] {
            let mut a = crate::rng::stage_rng(9, "blocks", len as u64, 1, 0);
            let mut b = crate::rng::stage_rng(9, "blocks", len as u64, 1, 0);
            let mut x: Vec<f32> = (0..len).map(|i| i as f32 * 0.001).collect();
            let mut y = x.clone();
            Normals::new(&mut a).add_scaled(&mut x, 0.7);
            let mut z = Normals::new(&mut b);
            for v in &mut y {
                *v += 0.7 * z.draw();
            }
            assert!(
                x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
                "len {len}"
            );
        }
    }

    /// Every vector copy this CPU runs (`add_scaled_on`: AVX-512, AVX2,
    /// baseline here) gives the bits of the portable block path: many
    /// blocks, partial blocks, scale 0 and negative zeros.
    #[test]
    fn add_scaled_equals_the_block_path() {
        for (len, scale) in [
            (1usize, 0.5f32),
            (15, 1.0),
            (17, -2.0),
            (1000, 2.0),
            (1024, 0.0),
            (3001, -1.5),
            (350_000, 0.7),
        ] {
            let mut x: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            if len > 2 {
                x[1] = -0.0;
            }
            let mut want = x.clone();
            let mut b = crate::rng::stage_rng(5, "avx512", len as u64, 1, 0);
            Normals::new(&mut b).add_scaled_blocks(&mut want, scale);
            for isa in Isa::available() {
                let mut a = crate::rng::stage_rng(5, "avx512", len as u64, 1, 0);
                let mut got = x.clone();
                Normals::new(&mut a).add_scaled_on(isa, &mut got, scale);
                assert!(
                    got.iter()
                        .zip(&want)
                        .all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{}: len {len}, scale {scale}",
                    isa.name()
                );
            }
        }
    }

    #[test]
    fn same_generator_state_same_draws() {
        let mut a = crate::rng::stage_rng(1, "x", 0, 1, 0);
        let mut b = crate::rng::stage_rng(1, "x", 0, 1, 0);
        let mut za = Normals::new(&mut a);
        let mut zb = Normals::new(&mut b);
        for _ in 0..10_000 {
            assert_eq!(za.draw().to_bits(), zb.draw().to_bits());
        }
    }
}
