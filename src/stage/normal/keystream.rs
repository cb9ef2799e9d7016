//! The noise's primary stream, read many ChaCha8 blocks at a time.
//!
//! The noise takes one u32 a value from a [`StageRng`] (`rand_chacha`'s
//! `ChaCha8Rng`), which computes 4 blocks (256 bytes) a call and copies them
//! out: ~40 % of the noise pass. [`Keystream`] computes the blocks itself
//! where the CPU allows, 16 at once with AVX-512 and 8 with AVX2: one block
//! per lane and one register per state word, so the rounds need no
//! shuffles between them (with AVX-512 each rotation is one instruction),
//! then a transpose puts each block's words in place. The words are those
//! `fill_bytes` gives (ChaCha with 8 rounds, a 64-bit block counter in words
//! 12–13 and the 64-bit stream in words 14–15, as `rand_chacha` documents),
//! and the generator is left where `fill_bytes` would leave it; tests check
//! both against `rand_chacha` at many positions, for every copy.

use std::any::Any;

use rand::RngCore;

use crate::cpu::Isa;
use crate::rng::StageRng;

/// Words of one ChaCha block.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // the wide copies are x86-64 only
const BLOCK_WORDS: u128 = 16;

/// A generator's stream of u32 words.
pub struct Keystream<'r, G: RngCore + 'static> {
    inner: Inner<'r, G>,
}

enum Inner<'r, G> {
    /// Any other generator: its `fill_bytes`.
    Other(&'r mut G),
    /// A ChaCha8 generator; `wide` holds the stream's key, number and word
    /// position while this type computes the words itself (the generator
    /// is set to the position when that ends).
    ChaCha {
        rng: &'r mut StageRng,
        wide: Option<Wide>,
    },
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // the wide copies are x86-64 only
#[derive(Clone, Copy)]
struct Wide {
    key: [u32; 8],
    stream: u64,
    /// The next word's position in the stream (the generator's word position).
    pos: u128,
}

impl<'r, G: RngCore + 'static> Keystream<'r, G> {
    /// The stream of `rng` from its current position.
    pub fn new(rng: &'r mut G) -> Self {
        let any: &'r mut dyn Any = rng;
        let inner = if any.is::<StageRng>() {
            Inner::ChaCha {
                rng: any.downcast_mut().expect("checked just above"),
                wide: None,
            }
        } else {
            Inner::Other(any.downcast_mut().expect("the type it came as"))
        };
        Keystream { inner }
    }

    /// The next `out.len()` words: those `fill_bytes` of `4 · out.len()`
    /// bytes gives, read as little-endian u32s, computed by the widest copy
    /// `isa` allows and the CPU has (16 blocks at a time with AVX-512, 8
    /// with AVX2, else the generator's own `fill_bytes`): the same words
    /// whichever runs.
    pub fn fill(&mut self, out: &mut [u32], isa: Isa) {
        match &mut self.inner {
            Inner::Other(rng) => fill_bytes(*rng, out),
            Inner::ChaCha { rng, wide: state } => {
                #[cfg(target_arch = "x86_64")]
                {
                    let avx512 =
                        isa == Isa::Avx512 && std::arch::is_x86_feature_detected!("avx512f");
                    let avx2 = matches!(isa, Isa::Avx512 | Isa::Avx2)
                        && std::arch::is_x86_feature_detected!("avx2");
                    if avx512 || avx2 {
                        let w = state.get_or_insert_with(|| Wide::of(rng));
                        if avx512 {
                            // SAFETY: the CPU supports AVX-512F (checked above).
                            w.fill_with::<256>(out, |k, s, b, o| unsafe {
                                avx512::blocks16(k, s, b, o);
                            });
                        } else {
                            // SAFETY: the CPU supports AVX2 (checked above).
                            w.fill_with::<128>(out, |k, s, b, o| unsafe {
                                avx2::blocks8(k, s, b, o);
                            });
                        }
                        return;
                    }
                }
                let _ = isa;
                if let Some(w) = state.take() {
                    rng.set_word_pos(w.pos);
                }
                fill_bytes(*rng, out);
            }
        }
    }
}

impl<G: RngCore + 'static> Drop for Keystream<'_, G> {
    fn drop(&mut self) {
        if let Inner::ChaCha { rng, wide: Some(w) } = &mut self.inner {
            rng.set_word_pos(w.pos);
        }
    }
}

/// `fill_bytes`, read as little-endian words.
fn fill_bytes<G: RngCore>(rng: &mut G, out: &mut [u32]) {
    rng.fill_bytes(bytemuck::cast_slice_mut(out));
    if cfg!(target_endian = "big") {
        for w in out.iter_mut() {
            *w = u32::from_le(*w);
        }
    }
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // the wide copies are x86-64 only
impl Wide {
    fn of(rng: &StageRng) -> Wide {
        let seed = rng.get_seed();
        let mut key = [0u32; 8];
        for (k, c) in key.iter_mut().zip(seed.chunks_exact(4)) {
            *k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        Wide {
            key,
            stream: rng.get_stream(),
            pos: rng.get_word_pos(),
        }
    }

    /// The next `out.len()` words, `GROUP` at a time (`GROUP / 16` blocks
    /// from `blocks(key, stream, first block, out)`).
    fn fill_with<const GROUP: usize>(
        &mut self,
        out: &mut [u32],
        blocks: impl Fn(&[u32; 8], u64, u64, &mut [u32]),
    ) {
        let mut done = 0usize;
        let mut tmp = [0u32; GROUP];
        while done < out.len() {
            let p = self.pos + done as u128;
            // The block counter is 64 bits and wraps, as in rand_chacha.
            let block = (p / BLOCK_WORDS) as u64;
            let skip = (p % BLOCK_WORDS) as usize;
            let left = out.len() - done;
            if skip == 0 && left >= GROUP {
                blocks(&self.key, self.stream, block, &mut out[done..done + GROUP]);
                done += GROUP;
            } else {
                blocks(&self.key, self.stream, block, &mut tmp);
                let take = (GROUP - skip).min(left);
                out[done..done + take].copy_from_slice(&tmp[skip..skip + take]);
                done += take;
            }
        }
        self.pos += out.len() as u128;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512i, _mm512_add_epi32, _mm512_cmplt_epu32_mask, _mm512_mask_add_epi32,
        _mm512_rol_epi32, _mm512_set1_epi32, _mm512_setr_epi32, _mm512_shuffle_i32x4,
        _mm512_storeu_si512, _mm512_unpackhi_epi32, _mm512_unpackhi_epi64, _mm512_unpacklo_epi32,
        _mm512_unpacklo_epi64, _mm512_xor_si512,
    };

    /// "expand 32-byte k".
    pub(super) const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn quarter(x: &mut [__m512i; 16], a: usize, b: usize, c: usize, d: usize) {
        x[a] = _mm512_add_epi32(x[a], x[b]);
        x[d] = _mm512_rol_epi32::<16>(_mm512_xor_si512(x[d], x[a]));
        x[c] = _mm512_add_epi32(x[c], x[d]);
        x[b] = _mm512_rol_epi32::<12>(_mm512_xor_si512(x[b], x[c]));
        x[a] = _mm512_add_epi32(x[a], x[b]);
        x[d] = _mm512_rol_epi32::<8>(_mm512_xor_si512(x[d], x[a]));
        x[c] = _mm512_add_epi32(x[c], x[d]);
        x[b] = _mm512_rol_epi32::<7>(_mm512_xor_si512(x[b], x[c]));
    }

    /// Blocks `block` … `block + 15` of the ChaCha8 stream (`key`,
    /// `stream`), in order, into `out` (256 words).
    #[target_feature(enable = "avx512f")]
    pub fn blocks16(key: &[u32; 8], stream: u64, block: u64, out: &mut [u32]) {
        assert_eq!(out.len(), 256);
        let splat = |w: u32| _mm512_set1_epi32(w as i32);
        let lo0 = splat(block as u32);
        let lo = _mm512_add_epi32(
            lo0,
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        );
        // Lanes whose low counter word wrapped carry into the high word.
        let hi0 = splat((block >> 32) as u32);
        let hi = _mm512_mask_add_epi32(hi0, _mm512_cmplt_epu32_mask(lo, lo0), hi0, splat(1));
        let init = [
            splat(SIGMA[0]),
            splat(SIGMA[1]),
            splat(SIGMA[2]),
            splat(SIGMA[3]),
            splat(key[0]),
            splat(key[1]),
            splat(key[2]),
            splat(key[3]),
            splat(key[4]),
            splat(key[5]),
            splat(key[6]),
            splat(key[7]),
            lo,
            hi,
            splat(stream as u32),
            splat((stream >> 32) as u32),
        ];
        let mut x = init;
        for _ in 0..4 {
            quarter(&mut x, 0, 4, 8, 12);
            quarter(&mut x, 1, 5, 9, 13);
            quarter(&mut x, 2, 6, 10, 14);
            quarter(&mut x, 3, 7, 11, 15);
            quarter(&mut x, 0, 5, 10, 15);
            quarter(&mut x, 1, 6, 11, 12);
            quarter(&mut x, 2, 7, 8, 13);
            quarter(&mut x, 3, 4, 9, 14);
        }
        for (v, i) in x.iter_mut().zip(&init) {
            *v = _mm512_add_epi32(*v, *i);
        }
        // x[w] holds word w of the 16 blocks (lane n: block n). Transpose:
        // a[2p], a[2p + 1]: words 2p, 2p + 1 of blocks 4L, 4L + 1 and of
        // blocks 4L + 2, 4L + 3 in 128-bit lane L.
        let mut a = x;
        for p in 0..8 {
            a[2 * p] = _mm512_unpacklo_epi32(x[2 * p], x[2 * p + 1]);
            a[2 * p + 1] = _mm512_unpackhi_epi32(x[2 * p], x[2 * p + 1]);
        }
        // b[4q + j], lane L: words 4q … 4q + 3 of block 4L + j.
        let mut b = a;
        for q in 0..4 {
            b[4 * q] = _mm512_unpacklo_epi64(a[4 * q], a[4 * q + 2]);
            b[4 * q + 1] = _mm512_unpackhi_epi64(a[4 * q], a[4 * q + 2]);
            b[4 * q + 2] = _mm512_unpacklo_epi64(a[4 * q + 1], a[4 * q + 3]);
            b[4 * q + 3] = _mm512_unpackhi_epi64(a[4 * q + 1], a[4 * q + 3]);
        }
        // Block 4L + j is lane L of b[j], b[4 + j], b[8 + j], b[12 + j].
        let ptr = out.as_mut_ptr();
        for j in 0..4 {
            let t0 = _mm512_shuffle_i32x4::<0x88>(b[j], b[4 + j]);
            let t1 = _mm512_shuffle_i32x4::<0x88>(b[8 + j], b[12 + j]);
            let t2 = _mm512_shuffle_i32x4::<0xDD>(b[j], b[4 + j]);
            let t3 = _mm512_shuffle_i32x4::<0xDD>(b[8 + j], b[12 + j]);
            let blocks = [
                (j, _mm512_shuffle_i32x4::<0x88>(t0, t1)),
                (4 + j, _mm512_shuffle_i32x4::<0x88>(t2, t3)),
                (8 + j, _mm512_shuffle_i32x4::<0xDD>(t0, t1)),
                (12 + j, _mm512_shuffle_i32x4::<0xDD>(t2, t3)),
            ];
            for (n, v) in blocks {
                // SAFETY: out has 256 words; block n < 16 takes 16 of them.
                unsafe { _mm512_storeu_si512(ptr.add(16 * n).cast(), v) };
            }
        }
    }
}

/// The AVX2 copy: 8 blocks, one per lane, as [`avx512`]; the rotations by
/// 16 and 8 are byte shuffles, those by 12 and 7 two shifts and an or.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_cmpgt_epi32, _mm256_or_si256, _mm256_permute2x128_si256,
        _mm256_set1_epi32, _mm256_setr_epi32, _mm256_setr_epi8, _mm256_shuffle_epi8,
        _mm256_slli_epi32, _mm256_srli_epi32, _mm256_storeu_si256, _mm256_sub_epi32,
        _mm256_unpackhi_epi32, _mm256_unpackhi_epi64, _mm256_unpacklo_epi32, _mm256_unpacklo_epi64,
        _mm256_xor_si256,
    };

    use super::avx512::SIGMA;

    #[inline]
    #[target_feature(enable = "avx2")]
    fn quarter(x: &mut [__m256i; 16], a: usize, b: usize, c: usize, d: usize) {
        // Byte shuffles that rotate every 32-bit word left by 16 and by 8.
        let r16 = _mm256_setr_epi8(
            2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11,
            8, 9, 14, 15, 12, 13,
        );
        let r8 = _mm256_setr_epi8(
            3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14, 3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9,
            10, 15, 12, 13, 14,
        );
        x[a] = _mm256_add_epi32(x[a], x[b]);
        x[d] = _mm256_shuffle_epi8(_mm256_xor_si256(x[d], x[a]), r16);
        x[c] = _mm256_add_epi32(x[c], x[d]);
        let t = _mm256_xor_si256(x[b], x[c]);
        x[b] = _mm256_or_si256(_mm256_slli_epi32::<12>(t), _mm256_srli_epi32::<20>(t));
        x[a] = _mm256_add_epi32(x[a], x[b]);
        x[d] = _mm256_shuffle_epi8(_mm256_xor_si256(x[d], x[a]), r8);
        x[c] = _mm256_add_epi32(x[c], x[d]);
        let t = _mm256_xor_si256(x[b], x[c]);
        x[b] = _mm256_or_si256(_mm256_slli_epi32::<7>(t), _mm256_srli_epi32::<25>(t));
    }

    /// Blocks `block` … `block + 7` of the ChaCha8 stream (`key`, `stream`),
    /// in order, into `out` (128 words).
    #[target_feature(enable = "avx2")]
    pub fn blocks8(key: &[u32; 8], stream: u64, block: u64, out: &mut [u32]) {
        assert_eq!(out.len(), 128);
        let splat = |w: u32| _mm256_set1_epi32(w as i32);
        let lo0 = splat(block as u32);
        let lo = _mm256_add_epi32(lo0, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        // Lanes whose low counter word wrapped (lo < lo0 unsigned: compared
        // signed with the sign bits flipped) carry into the high word.
        let sign = splat(0x8000_0000);
        let wrapped = _mm256_cmpgt_epi32(_mm256_xor_si256(lo0, sign), _mm256_xor_si256(lo, sign));
        let hi = _mm256_sub_epi32(splat((block >> 32) as u32), wrapped);
        let init = [
            splat(SIGMA[0]),
            splat(SIGMA[1]),
            splat(SIGMA[2]),
            splat(SIGMA[3]),
            splat(key[0]),
            splat(key[1]),
            splat(key[2]),
            splat(key[3]),
            splat(key[4]),
            splat(key[5]),
            splat(key[6]),
            splat(key[7]),
            lo,
            hi,
            splat(stream as u32),
            splat((stream >> 32) as u32),
        ];
        let mut x = init;
        for _ in 0..4 {
            quarter(&mut x, 0, 4, 8, 12);
            quarter(&mut x, 1, 5, 9, 13);
            quarter(&mut x, 2, 6, 10, 14);
            quarter(&mut x, 3, 7, 11, 15);
            quarter(&mut x, 0, 5, 10, 15);
            quarter(&mut x, 1, 6, 11, 12);
            quarter(&mut x, 2, 7, 8, 13);
            quarter(&mut x, 3, 4, 9, 14);
        }
        for (v, i) in x.iter_mut().zip(&init) {
            *v = _mm256_add_epi32(*v, *i);
        }
        // As in the AVX-512 copy: b[4q + j], 128-bit lane L, holds words
        // 4q … 4q + 3 of block 4L + j.
        let mut a = x;
        for p in 0..8 {
            a[2 * p] = _mm256_unpacklo_epi32(x[2 * p], x[2 * p + 1]);
            a[2 * p + 1] = _mm256_unpackhi_epi32(x[2 * p], x[2 * p + 1]);
        }
        let mut b = a;
        for q in 0..4 {
            b[4 * q] = _mm256_unpacklo_epi64(a[4 * q], a[4 * q + 2]);
            b[4 * q + 1] = _mm256_unpackhi_epi64(a[4 * q], a[4 * q + 2]);
            b[4 * q + 2] = _mm256_unpacklo_epi64(a[4 * q + 1], a[4 * q + 3]);
            b[4 * q + 3] = _mm256_unpackhi_epi64(a[4 * q + 1], a[4 * q + 3]);
        }
        let ptr = out.as_mut_ptr();
        for j in 0..4 {
            let halves = [
                (16 * j, _mm256_permute2x128_si256::<0x20>(b[j], b[4 + j])),
                (
                    16 * j + 8,
                    _mm256_permute2x128_si256::<0x20>(b[8 + j], b[12 + j]),
                ),
                (
                    16 * (4 + j),
                    _mm256_permute2x128_si256::<0x31>(b[j], b[4 + j]),
                ),
                (
                    16 * (4 + j) + 8,
                    _mm256_permute2x128_si256::<0x31>(b[8 + j], b[12 + j]),
                ),
            ];
            for (at, v) in halves {
                // SAFETY: out has 128 words; `at` + 8 ≤ 128.
                unsafe { _mm256_storeu_si256(ptr.add(at).cast(), v) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// The words and the generator's state afterwards equal rand_chacha's,
    /// from many positions (mid-block, across the 32-bit counter carry,
    /// near the end of the 64-bit counter), for many lengths, in both copies.
    #[test]
    fn equals_rand_chacha_words_and_state() {
        let positions: [u128; 9] = [
            0,
            8,
            15,
            16,
            1000,
            (u128::from(u32::MAX) - 3) * 16 + 5,
            (u128::from(u32::MAX) + 1) * 16,
            (u128::from(u64::MAX) - 20) * 16 + 3,
            123_456_789,
        ];
        let lengths = [0usize, 1, 17, 255, 256, 257, 1024, 5000];
        let mut cases = 0;
        for (s, stream) in [0u64, 1, 0xdead_beef_0123_4567, u64::MAX]
            .into_iter()
            .enumerate()
        {
            let mut seed = [0u8; 32];
            for (i, b) in seed.iter_mut().enumerate() {
                *b = (i * 7 + s * 31 + 1) as u8;
            }
            for &pos in &positions {
                for &n in &lengths {
                    for isa in [Isa::Avx512, Isa::Avx2, Isa::Baseline] {
                        let mut want_rng = StageRng::from_seed(seed);
                        want_rng.set_stream(stream);
                        want_rng.set_word_pos(pos);
                        let mut got_rng = want_rng.clone();
                        let mut want = vec![0u32; n];
                        fill_bytes(&mut want_rng, &mut want);
                        let mut got = vec![0u32; n];
                        {
                            let mut k = Keystream::new(&mut got_rng);
                            // Two fills, the second from where the first ended.
                            let (x, y) = got.split_at_mut(n / 3);
                            k.fill(x, isa);
                            k.fill(y, isa);
                        }
                        assert_eq!(got, want, "stream {stream} pos {pos} n {n} {isa:?}");
                        assert_eq!(got_rng.get_word_pos(), want_rng.get_word_pos());
                        assert_eq!(got_rng.next_u64(), want_rng.next_u64());
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 4 * 9 * 8 * 3);
    }

    /// Switching between the wide and the plain copy mid-stream keeps the
    /// words in order.
    #[test]
    fn wide_and_plain_fills_interleave() {
        let mut a = StageRng::from_seed([9; 32]);
        let mut b = a.clone();
        let mut want = vec![0u32; 3000];
        fill_bytes(&mut a, &mut want);
        let mut got = vec![0u32; 3000];
        let mut k = Keystream::new(&mut b);
        for (i, c) in got.chunks_mut(301).enumerate() {
            k.fill(c, [Isa::Avx512, Isa::Baseline, Isa::Avx2][i % 3]);
        }
        drop(k);
        assert_eq!(got, want);
        assert_eq!(a.next_u32(), b.next_u32());
    }

    /// Other generators are read through `fill_bytes`.
    #[test]
    fn other_generators_use_fill_bytes() {
        let mut a = rand::rngs::StdRng::seed_from_u64(3);
        let mut b = a.clone();
        let mut want = vec![0u32; 100];
        fill_bytes(&mut a, &mut want);
        let mut got = vec![0u32; 100];
        Keystream::new(&mut b).fill(&mut got, Isa::Avx512);
        assert_eq!(got, want);
    }
}
