//! The CPU a process computes on: which vector copy of the simulation kernel
//! and of the noise it runs ([`Isa`]), detected once at start or forced with
//! `SEISPIPE_ISA` so that one machine can measure the copies another machine
//! would run, and whether the simulation steers around subnormal values
//! ([`Subnormals`]). Every choice gives the same bits.

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
    /// How the blocked kernel meets subnormal values (`SEISPIPE_SUBNORMALS`;
    /// default: what a probe of this CPU finds faster).
    pub subnormals: Subnormals,
}

impl Default for Compute {
    fn default() -> Compute {
        Compute {
            kernel: Kernel::default(),
            isa: Isa::detect(),
            subnormals: Subnormals::detect(),
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

    /// `avx2 (blocked)`-style: what `synth` and the benches print.
    #[must_use]
    pub fn describe(self) -> String {
        format!("{} ({})", self.isa.name(), self.kernel.name())
    }

    /// Whether the blocked kernel runs its scaled copy ([`Subnormals`]).
    #[must_use]
    pub fn scaled(self) -> bool {
        self.kernel == Kernel::Blocked && self.subnormals.avoided(self.isa)
    }
}

/// How the blocked kernel meets the subnormal f32 values that the wave
/// leaves ahead of its front, where its amplitude underflows. Both ways give
/// the same bits.
///
/// Many Intel cores take a microcode assist of ~100 cycles on an f32
/// multiplication that reads or makes a subnormal value (Zen cores do not):
/// on an Intel Xeon (family 6, model 207) the kernel took 5 times as long as
/// with flush-to-zero on, which changes bits. [`Subnormals::Avoid`] runs the
/// kernel's scaled copy, on fields that hold every value times 2^64, where
/// no value is subnormal and each product below the normal range is rounded
/// as the reference rounds it (`crate::physics::fd::blocked::step_with`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subnormals {
    /// The CPU's own f32 arithmetic on the values as they are.
    Hardware,
    /// The scaled copy (on the AVX-512 and AVX2 copies, the ones that have
    /// one).
    Avoid,
}

impl Subnormals {
    /// The environment variable that forces the choice.
    pub const ENV: &'static str = "SEISPIPE_SUBNORMALS";

    /// The choice named `name`: `avoid`, `hardware`, or `auto` / empty (the
    /// probe's).
    ///
    /// # Errors
    /// Any other name, with the allowed ones.
    pub fn from_name(name: &str) -> Result<Subnormals, String> {
        match name {
            "" | "auto" => Ok(Subnormals::detect()),
            "avoid" => Ok(Subnormals::Avoid),
            "hardware" => Ok(Subnormals::Hardware),
            _ => Err(format!(
                "{}={name:?} is not a setting; expected \"auto\" (the default: a probe of this CPU chooses), \"avoid\" or \"hardware\"",
                Subnormals::ENV
            )),
        }
    }

    /// `avoid` or `hardware`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Subnormals::Hardware => "hardware",
            Subnormals::Avoid => "avoid",
        }
    }

    /// Whether the blocked kernel on `isa` steers around subnormal values.
    #[must_use]
    pub fn avoided(self, isa: Isa) -> bool {
        self == Subnormals::Avoid && matches!(isa, Isa::Avx512 | Isa::Avx2)
    }

    /// [`Subnormals::Avoid`] where a multiplication that makes a subnormal
    /// value takes more than four times as long as one that does not (a
    /// probe of ~0.5 ms, run once per process; [`Subnormals::slowdown`]).
    #[must_use]
    pub fn detect() -> Subnormals {
        static CHOICE: std::sync::OnceLock<Subnormals> = std::sync::OnceLock::new();
        *CHOICE.get_or_init(|| {
            if Subnormals::slowdown() > 4.0 {
                Subnormals::Avoid
            } else {
                Subnormals::Hardware
            }
        })
    }

    /// How many times as long a chain of f32 multiplications takes on a
    /// subnormal value as on a normal one, on the vector unit the kernel
    /// uses (1 where no copy has a scaled copy). Measured anew each call.
    #[must_use]
    pub fn slowdown() -> f64 {
        let (normal, subnormal) = probe_multiplications();
        subnormal / normal
    }
}

/// Seconds for a chain of dependent f32 multiplications by one, of a normal
/// and of a subnormal value (best of five runs each), on the vector unit the
/// kernel uses; `(1, 1)` where no copy has a scaled copy.
fn probe_multiplications() -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx2.is_available() {
        #[target_feature(enable = "avx2")]
        fn chain(x: f32) -> f32 {
            use std::arch::x86_64::{_mm256_cvtss_f32, _mm256_mul_ps, _mm256_set1_ps};
            let one = _mm256_set1_ps(std::hint::black_box(1.0));
            let mut v = _mm256_set1_ps(x);
            for _ in 0..2000 {
                v = _mm256_mul_ps(v, one);
            }
            _mm256_cvtss_f32(v)
        }
        let best = |x: f32| {
            (0..5)
                .map(|_| {
                    let t = std::time::Instant::now();
                    // SAFETY: AVX2 is present (checked above).
                    std::hint::black_box(unsafe { chain(std::hint::black_box(x)) });
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min)
        };
        return (best(1.5), best(f32::from_bits(0x0000_1234)));
    }
    (1.0, 1.0)
}

/// The value of `key` on the first line of `/proc/cpuinfo` that has it
/// (`vendor_id`, `cpu family`, `model name`, …), trimmed; `None` where the
/// file or the key is missing.
#[must_use]
pub fn cpuinfo_field(key: &str) -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    field_of(&info, key)
}

/// [`cpuinfo_field`] in the text `info`.
fn field_of(info: &str, key: &str) -> Option<String> {
    info.lines()
        .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The CPU's model as the kernel names it (`model name` in
/// `/proc/cpuinfo`, with family and model on x86-64; implementer and part
/// on aarch64), or `unknown`.
#[must_use]
pub fn model_name() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| field_of(&info, key);
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

    /// The first line with the key, its value trimmed; a key that is only
    /// the start of another, or missing, gives nothing.
    #[test]
    fn cpuinfo_fields_are_read_by_whole_key() {
        let info = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 207\nmodel name\t: Intel(R) Xeon(R) Processor\n\nprocessor\t: 1\nmodel\t\t: 1\n";
        assert_eq!(field_of(info, "model").as_deref(), Some("207"));
        assert_eq!(
            field_of(info, "model name").as_deref(),
            Some("Intel(R) Xeon(R) Processor")
        );
        assert_eq!(field_of(info, "cpu family").as_deref(), Some("6"));
        assert_eq!(field_of(info, "cpu"), None);
        assert_eq!(field_of(info, "flags"), None);
    }
}
