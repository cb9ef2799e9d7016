//! The CPU a process computes on: which vector copy of the simulation kernel
//! and of the noise it runs ([`Isa`]), detected once at start or forced with
//! `SEISPIPE_ISA` so that one machine can measure the copies another machine
//! would run. Every copy gives the same bits.

/// The instruction set a vector copy (of the simulation kernel, the noise)
/// is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// x86-64 with AVX-512F (16 lanes).
    Avx512,
    /// x86-64 with AVX2 and FMA (8 lanes).
    Avx2,
    /// aarch64, whose base architecture includes NEON (4 lanes).
    Neon,
    /// Portable code for any other CPU (4-lane arrays LLVM maps to SSE2 on x86-64).
    Baseline,
}

impl Isa {
    /// Every instruction set a copy exists for, widest first.
    pub const ALL: [Isa; 4] = [Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Baseline];

    /// The widest instruction set this CPU has.
    #[must_use]
    pub fn detect() -> Isa {
        Isa::ALL
            .into_iter()
            .find(|i| i.is_available())
            .unwrap_or(Isa::Baseline)
    }

    /// The instruction set named `name` (as [`Isa::name`] gives it).
    ///
    /// # Errors
    /// A name of no instruction set, or one this CPU does not run.
    pub fn from_name(name: &str) -> Result<Isa, UnknownIsa> {
        match Isa::ALL.into_iter().find(|i| i.name() == name) {
            Some(i) if i.is_available() => Ok(i),
            found => Err(UnknownIsa {
                name: name.to_string(),
                known: found.is_some(),
            }),
        }
    }

    /// Every instruction set this CPU runs, widest first (what tests check).
    #[must_use]
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_available()).collect()
    }

    /// Whether this CPU runs `self`.
    #[must_use]
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
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

/// A kernel name that is neither `blocked` nor `reference`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={0:?} is not a kernel; expected \"blocked\" (the default) or \"reference\"", var = Kernel::ENV)]
pub struct UnknownKernel(pub String);

/// Which time-loop kernel simulates (`crate::physics::fd`). Both give the
/// same bits; the program reads `SEISPIPE_FD_KERNEL` once at start (see
/// `crate::settings`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernel {
    /// [`crate::physics::fd::blocked`], the default.
    #[default]
    Blocked,
    /// [`crate::physics::fd::reference`], selected by `SEISPIPE_FD_KERNEL=reference`.
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

/// A `SEISPIPE_ISA` value that names no instruction set, or one this CPU
/// does not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={name:?} {what}; this CPU runs {runs}", var = Compute::ISA_ENV, what = if *known { "is not available on this CPU" } else { "is not an instruction set" }, runs = Isa::available().iter().map(|i| i.name()).collect::<Vec<_>>().join(", "))]
pub struct UnknownIsa {
    /// The value given.
    pub name: String,
    /// Whether it names an instruction set (that this CPU lacks).
    pub known: bool,
}

/// How this process computes: the simulator's time-loop kernel and the
/// instruction set of every vector copy. Read once at start
/// (`crate::settings::Host`) and passed down; both choices give the same
/// bits, only the speed differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compute {
    /// The time-loop kernel (`SEISPIPE_FD_KERNEL`).
    pub kernel: Kernel,
    /// The vector copy (`SEISPIPE_ISA`; default: the widest this CPU has).
    pub isa: Isa,
}

impl Default for Compute {
    fn default() -> Compute {
        Compute {
            kernel: Kernel::default(),
            isa: Isa::detect(),
        }
    }
}

impl Compute {
    /// The environment variable that forces the instruction set.
    pub const ISA_ENV: &'static str = "SEISPIPE_ISA";

    /// The same with the reference kernel (tests, benches).
    #[must_use]
    pub fn with_kernel(self, kernel: Kernel) -> Compute {
        Compute { kernel, ..self }
    }

    /// `blocked, avx2`-style: what `synth` and the benches print.
    #[must_use]
    pub fn describe(self) -> String {
        format!("{} ({})", self.isa.name(), self.kernel.name())
    }
}

/// The CPU's model as the kernel names it (`model name` in
/// `/proc/cpuinfo`, with family and model on x86-64; implementer and part
/// on aarch64), or `unknown`.
#[must_use]
pub fn model_name() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let mut parts = Vec::new();
    if let Some(m) = field("model name") {
        parts.push(m);
    }
    for (key, label) in [
        ("cpu family", "family"),
        ("model", "model"),
        ("CPU implementer", "implementer"),
        ("CPU part", "part"),
    ] {
        if let Some(v) = field(key) {
            parts.push(format!("{label} {v}"));
        }
    }
    if parts.is_empty() {
        "unknown".into()
    } else {
        parts.join(", ")
    }
}

/// The vector features seispipe's copies and hashing use that this CPU has.
#[must_use]
pub fn simd_flags() -> Vec<&'static str> {
    let mut f = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! have {
            ($($name:tt),*) => {
                $(if std::arch::is_x86_feature_detected!($name) {
                    f.push($name);
                })*
            };
        }
        have!("avx512f", "avx512bw", "avx512vl", "avx2", "fma", "sse4.2", "sha");
    }
    #[cfg(target_arch = "aarch64")]
    {
        f.push("neon");
        if std::arch::is_aarch64_feature_detected!("sha2") {
            f.push("sha2");
        }
        if std::arch::is_aarch64_feature_detected!("sve") {
            f.push("sve");
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for i in Isa::available() {
            assert_eq!(Isa::from_name(i.name()), Ok(i));
        }
        let e = Isa::from_name("sse9").unwrap_err();
        assert!(!e.known);
        assert!(e.to_string().contains("is not an instruction set"), "{e}");
        assert!(e.to_string().contains("baseline"), "{e}");
        let missing = [Isa::Avx512, Isa::Avx2, Isa::Neon]
            .into_iter()
            .find(|i| !i.is_available())
            .expect("no CPU has both NEON and AVX");
        let e = Isa::from_name(missing.name()).unwrap_err();
        assert!(
            e.known && e.to_string().contains("not available on this CPU"),
            "{e}"
        );
    }
}
