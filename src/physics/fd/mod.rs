//! The finite-difference time loop: one 2-4 leapfrog step of the padded grid
//! with its periodic outer edge, in two kernels that give the same bits.
//!
//! * [`blocked`] (the default) aligns every row to 64 bytes, updates four
//!   rows per pass over the columns so the rows above and below are loaded
//!   once for all four, shares the coefficient loads between rows where the
//!   sponge makes them equal, takes the x±2 (AVX-512) neighbours from lane
//!   shifts of registers already loaded, and skips the columns the wave
//!   cannot have reached yet as well as the rows.
//! * [`reference`](mod@reference) is the straightforward row loop the blocked kernel was
//!   derived from. It stays as the reference that tests compare the blocked
//!   kernel with, bit for bit, and as the baseline of `benches/simulate.py`;
//!   `SEISPIPE_FD_KERNEL=reference` selects it.
//!
//! Both compute every cell with the same operations in the same order
//! (`t1·p − t2·p⁻ + α·(c2·Σ±1 + c3·Σ±2)`, sums in the order x−1, x+1, z−1,
//! z+1), never with an FMA that rounds differently (the blocked AVX2 copy
//! does two additions as `x·1 + y`, which rounds exactly as `x + y`), so they
//! and each of their vector copies ([`Isa`]) give identical results. Where
//! subnormal arithmetic is slow, the blocked kernel's AVX-512 and AVX2 copies
//! run on fields scaled by 2^64 and round the products below the normal range
//! as the reference does ([`blocked::step_with`], `crate::cpu::Subnormals`).

pub mod blocked;
pub mod reference;
mod simd;

pub use crate::cpu::{Isa, Kernel, UnknownKernel};
