//! f32 vectors for the [blocked](super::blocked) kernel: one trait, one
//! implementation per instruction set (AVX-512F, AVX2, NEON, SSE2 for other
//! x86-64 CPUs, 4-lane arrays elsewhere). Only exactly rounded IEEE operations
//! (add, subtract, multiply) and data movement (loads, stores, lane shifts),
//! so every implementation gives the same bits. FMA appears only as `x·1 + y`,
//! which rounds once, exactly as the addition `x + y` does ([`Lanes::add2`]),
//! and, in the scaled copies for CPUs that are slow on subnormal values, as
//! `a·b ± H`, which rounds a small product once onto the grid the reference
//! rounds it to (see `scaled`).
//!
//! The methods are `unsafe`: loads and stores take raw pointers (the caller
//! keeps them inside its fields), and the x86-64 ones use instructions the
//! caller must have checked the CPU for. They are always inlined, so they
//! compile into the `#[target_feature]` function that calls them.
#![allow(clippy::inline_always)]

/// A vector of [`Lanes::N`] f32 lanes.
pub(super) trait Lanes: Copy {
    /// Lanes per vector.
    const N: usize;
    /// Load `N` values from `p`, aligned to `N` lanes.
    unsafe fn load(p: *const f32) -> Self;
    /// Store `N` values at `p`, aligned to `N` lanes.
    unsafe fn store(p: *mut f32, v: Self);
    /// Every lane `x`.
    unsafe fn splat(x: f32) -> Self;
    /// Lane-wise `self + b`.
    unsafe fn add(self, b: Self) -> Self;
    /// Lane-wise `self − b`.
    unsafe fn sub(self, b: Self) -> Self;
    /// Lane-wise `self · b`.
    unsafe fn mul(self, b: Self) -> Self;
    /// Lane-wise `self + b`, the same bits as [`Lanes::add`], on the
    /// multiply pipes where that balances them: `self · 1 + b` with FMA
    /// (`self · 1` is exact, and the sum is rounded once). On Zen 4 the AVX2
    /// copy's additions outnumber its multiplications 9 to 5 on two pipes of
    /// each kind; two of them there took 6 % off a step (`fd_step_bench`),
    /// three or four no more.
    #[inline(always)]
    unsafe fn add2(self, b: Self) -> Self {
        self.add(b)
    }
    /// The copy that computes a block of rows again where a checked copy
    /// found a product below the normal range (`Self` for the others).
    type Fixed: Lanes;
    /// Whether this is a checked copy: its [`Lanes::mul_tracked`] folds
    /// each product's magnitude into an accumulator, and a block of rows
    /// with a product below the normal range is computed again by
    /// [`Lanes::Fixed`].
    const CHECKED: bool = false;
    /// `self · b`; a checked copy also folds `|self · b|` into `small`.
    #[inline(always)]
    unsafe fn mul_tracked(self, b: Self, small: &mut Self) -> Self {
        let _ = small;
        self.mul(b)
    }
    /// Whether a magnitude folded into `small` is below the scaled normal
    /// range (checked copies).
    #[inline(always)]
    unsafe fn any_small(small: Self) -> bool {
        let _ = small;
        false
    }
    /// The values at x − 2, x − 1, x + 1, x + 2 of the `N` cells at `p`
    /// (aligned), given the vectors already loaded at `p − N` (`prev`), `p`
    /// (`cur`) and `p + N` (`next`): from unaligned loads or from lane shifts
    /// of those vectors, whichever this instruction set does faster.
    unsafe fn neighbours(p: *const f32, prev: Self, cur: Self, next: Self) -> [Self; 4];
}

#[cfg(target_arch = "x86_64")]
pub(super) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod scaled;
#[cfg(target_arch = "x86_64")]
pub(super) use scaled::{Avx2Checked, Avx512Checked};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m256, __m512, _mm256_add_ps, _mm256_fmadd_ps, _mm256_load_ps, _mm256_loadu_ps,
        _mm256_mul_ps, _mm256_set1_ps, _mm256_store_ps, _mm256_sub_ps, _mm512_add_ps,
        _mm512_alignr_epi32, _mm512_castps_si512, _mm512_castsi512_ps, _mm512_load_ps,
        _mm512_loadu_ps, _mm512_mul_ps, _mm512_set1_ps, _mm512_store_ps, _mm512_sub_ps,
    };

    use super::Lanes;

    /// 16 lanes of AVX-512F.
    #[derive(Clone, Copy)]
    pub struct Avx512(pub(super) __m512);

    impl Lanes for Avx512 {
        type Fixed = Self;
        const N: usize = 16;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx512(_mm512_load_ps(p))
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self) {
            _mm512_store_ps(p, v.0);
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Avx512(_mm512_set1_ps(x))
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            Avx512(_mm512_add_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            Avx512(_mm512_sub_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            Avx512(_mm512_mul_ps(self.0, b.0))
        }
        // x ± 2 from lane shifts (valignd), x ± 1 from unaligned loads: both
        // kinds of work then share the load ports and the shuffle pipes (on
        // Zen 4 every 64-byte unaligned load crosses a cache line; four
        // shifts a vector compete with the additions).
        #[inline(always)]
        unsafe fn neighbours(p: *const f32, prev: Self, cur: Self, next: Self) -> [Self; 4] {
            let (a, b, c) = (
                _mm512_castps_si512(prev.0),
                _mm512_castps_si512(cur.0),
                _mm512_castps_si512(next.0),
            );
            [
                Avx512(_mm512_castsi512_ps(_mm512_alignr_epi32::<14>(b, a))),
                Avx512(_mm512_loadu_ps(p.sub(1))),
                Avx512(_mm512_loadu_ps(p.add(1))),
                Avx512(_mm512_castsi512_ps(_mm512_alignr_epi32::<2>(c, b))),
            ]
        }
    }

    /// 8 lanes of AVX2.
    #[derive(Clone, Copy)]
    pub struct Avx2(pub(super) __m256);

    impl Lanes for Avx2 {
        type Fixed = Self;
        const N: usize = 8;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Avx2(_mm256_load_ps(p))
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self) {
            _mm256_store_ps(p, v.0);
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Avx2(_mm256_set1_ps(x))
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            Avx2(_mm256_add_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            Avx2(_mm256_sub_ps(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            Avx2(_mm256_mul_ps(self.0, b.0))
        }
        /// Needs FMA, which [`crate::cpu::Isa::Avx2`] requires.
        #[inline(always)]
        unsafe fn add2(self, b: Self) -> Self {
            Avx2(_mm256_fmadd_ps(self.0, _mm256_set1_ps(1.0), b.0))
        }
        // Unaligned loads: a shift across AVX2's two 128-bit halves takes two
        // shuffles, dearer than a load.
        #[inline(always)]
        unsafe fn neighbours(p: *const f32, _: Self, _: Self, _: Self) -> [Self; 4] {
            [
                Avx2(_mm256_loadu_ps(p.sub(2))),
                Avx2(_mm256_loadu_ps(p.sub(1))),
                Avx2(_mm256_loadu_ps(p.add(1))),
                Avx2(_mm256_loadu_ps(p.add(2))),
            ]
        }
    }
}

#[cfg(target_arch = "aarch64")]
pub(super) use arm::Neon;

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::{
        float32x4_t, vaddq_f32, vdupq_n_f32, vld1q_f32, vmulq_f32, vst1q_f32, vsubq_f32,
    };

    use super::Lanes;

    /// 4 lanes of NEON (ASIMD, part of the aarch64 base architecture).
    #[derive(Clone, Copy)]
    pub struct Neon(float32x4_t);

    impl Lanes for Neon {
        type Fixed = Self;
        const N: usize = 4;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Neon(vld1q_f32(p))
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: Self) {
            vst1q_f32(p, v.0);
        }
        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Neon(vdupq_n_f32(x))
        }
        #[inline(always)]
        unsafe fn add(self, b: Self) -> Self {
            Neon(vaddq_f32(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn sub(self, b: Self) -> Self {
            Neon(vsubq_f32(self.0, b.0))
        }
        #[inline(always)]
        unsafe fn mul(self, b: Self) -> Self {
            Neon(vmulq_f32(self.0, b.0))
        }
        // Unaligned loads (cheap on Neoverse cores, which have three load
        // pipes for four vector pipes): the vector pipes are the bound.
        #[inline(always)]
        unsafe fn neighbours(p: *const f32, _: Self, _: Self, _: Self) -> [Self; 4] {
            [
                Neon(vld1q_f32(p.sub(2))),
                Neon(vld1q_f32(p.sub(1))),
                Neon(vld1q_f32(p.add(1))),
                Neon(vld1q_f32(p.add(2))),
            ]
        }
    }
}

/// 4 lanes of SSE on x86-64, where SSE2 is part of the base architecture.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(super) struct Portable(std::arch::x86_64::__m128);

#[cfg(target_arch = "x86_64")]
impl Lanes for Portable {
    type Fixed = Self;
    const N: usize = 4;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Portable(std::arch::x86_64::_mm_load_ps(p))
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        std::arch::x86_64::_mm_store_ps(p, v.0);
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Portable(std::arch::x86_64::_mm_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        Portable(std::arch::x86_64::_mm_add_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        Portable(std::arch::x86_64::_mm_sub_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        Portable(std::arch::x86_64::_mm_mul_ps(self.0, b.0))
    }
    #[inline(always)]
    unsafe fn neighbours(p: *const f32, _: Self, _: Self, _: Self) -> [Self; 4] {
        use std::arch::x86_64::_mm_loadu_ps;
        [
            Portable(_mm_loadu_ps(p.sub(2))),
            Portable(_mm_loadu_ps(p.sub(1))),
            Portable(_mm_loadu_ps(p.add(1))),
            Portable(_mm_loadu_ps(p.add(2))),
        ]
    }
}

/// Four lanes in an array, for CPUs other than x86-64 (on aarch64 only the
/// tests run it; [`Neon`] is the kernel there).
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy)]
pub(super) struct Portable([f32; 4]);

#[cfg(not(target_arch = "x86_64"))]
impl Portable {
    #[inline(always)]
    fn zip(self, b: Self, f: impl Fn(f32, f32) -> f32) -> Self {
        Portable(std::array::from_fn(|i| f(self.0[i], b.0[i])))
    }
}

#[cfg(not(target_arch = "x86_64"))]
impl Lanes for Portable {
    type Fixed = Self;
    const N: usize = 4;
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Portable(p.cast::<[f32; 4]>().read_unaligned())
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        p.cast::<[f32; 4]>().write_unaligned(v.0);
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Portable([x; 4])
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        self.zip(b, |x, y| x + y)
    }
    #[inline(always)]
    unsafe fn sub(self, b: Self) -> Self {
        self.zip(b, |x, y| x - y)
    }
    #[inline(always)]
    unsafe fn mul(self, b: Self) -> Self {
        self.zip(b, |x, y| x * y)
    }
    #[inline(always)]
    unsafe fn neighbours(p: *const f32, _: Self, _: Self, _: Self) -> [Self; 4] {
        [
            Self::load(p.sub(2)),
            Self::load(p.sub(1)),
            Self::load(p.add(1)),
            Self::load(p.add(2)),
        ]
    }
}
