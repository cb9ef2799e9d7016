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
//! z+1), never with FMA, so they and each of their vector copies ([`Isa`])
//! give identical results.

pub mod blocked;
pub mod reference;
mod simd;

/// The instruction set a kernel copy is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// x86-64 with AVX-512F (16 lanes).
    Avx512,
    /// x86-64 with AVX2 (8 lanes).
    Avx2,
    /// aarch64, whose base architecture includes NEON (4 lanes).
    Neon,
    /// Portable code for any other CPU (4-lane arrays LLVM maps to SSE2 on x86-64).
    Baseline,
}

impl Isa {
    /// The widest instruction set this CPU has.
    #[must_use]
    pub fn detect() -> Isa {
        Isa::available()[0]
    }

    /// Every instruction set this CPU runs, widest first (what tests check).
    #[must_use]
    pub fn available() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Baseline]
            .into_iter()
            .filter(|i| i.is_available())
            .collect()
    }

    /// Whether this CPU runs `self`.
    #[must_use]
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            Isa::Neon => cfg!(target_arch = "aarch64"),
            Isa::Baseline => true,
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx512 | Isa::Avx2 => false,
        }
    }

    /// The name `seispipe synth` reports (`kernel avx512f`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512f",
            Isa::Avx2 => "avx2",
            Isa::Neon => "neon",
            Isa::Baseline => "baseline",
        }
    }
}

/// Which copy of the kernel this CPU runs: [`Isa::detect`]'s name.
#[must_use]
pub fn kernel_name() -> &'static str {
    Isa::detect().name()
}

/// A kernel name that is neither `blocked` nor `reference`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={0:?} is not a kernel; expected \"blocked\" (the default) or \"reference\"", var = Kernel::ENV)]
pub struct UnknownKernel(pub String);

/// Which time-loop kernel simulates. Both give the same bits; the program
/// reads `SEISPIPE_FD_KERNEL` once at start (see `crate::settings`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernel {
    /// [`blocked`], the default.
    #[default]
    Blocked,
    /// [`reference`](mod@reference), selected by `SEISPIPE_FD_KERNEL=reference`.
    Reference,
}

impl Kernel {
    /// The environment variable that selects the kernel.
    pub const ENV: &'static str = "SEISPIPE_FD_KERNEL";

    /// The kernel named `name` (empty: the default, blocked).
    ///
    /// # Errors
    /// A name other than `blocked` or `reference`.
    pub fn from_name(name: &str) -> Result<Kernel, UnknownKernel> {
        match name {
            "" | "blocked" => Ok(Kernel::Blocked),
            "reference" => Ok(Kernel::Reference),
            _ => Err(UnknownKernel(name.to_string())),
        }
    }

    /// `blocked` or `reference`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Blocked => "blocked",
            Kernel::Reference => "reference",
        }
    }
}
