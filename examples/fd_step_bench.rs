//! Per-core rate of the simulation kernels, without process start, map
//! drawing or file writing: single-threaded 1000-step simulations of one
//! source, the blocked kernel on every instruction set this CPU has (with
//! the CPU's own subnormal arithmetic, `hardware`, and, on AVX-512 and AVX2,
//! the scaled copy, `avoid`: `seispipe::cpu::Subnormals`) and the
//! reference kernel, alternated so each round's runs see the same machine
//! load. Prints cell updates per second (310 × 310 per step, the convention
//! of `benches/simulate.py`), the best time of each, the median per-round
//! speed-up over the reference, and samples/h per core (5 sources a sample);
//! for the blocked kernel also the lane updates it did (it skips cells that
//! stay zero and cells no record depends on) per second and, on x86-64, per
//! cycle of a clock measured with a chain of dependent integer additions,
//! against the roofline of `docs/performance.md` for the core it runs on
//! (Zen 3/4: 1.78 a cycle; Intel Golden Cove server cores: 2.29 with
//! AVX-512, 1.71 with AVX2), where the document has one.
//!
//! `cargo run --release --example fd_step_bench [ROUNDS]` (default 15)

use std::time::Instant;

use seispipe::cpu::{cpuinfo_field, Subnormals};
use seispipe::physics::fd::{Isa, Kernel};
use seispipe::physics::{Medium, NX, NZ, PER_SOURCE};

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(15, |s| s.parse().expect("ROUNDS: a number"));
    // A slow surface over faster layers, as the edge-stress tests use.
    let vel: Vec<f32> = (0..NX * NZ)
        .map(|i| match i / NX {
            0..=7 => 1500.0,
            8..=29 => 3000.0,
            _ => 4200.0,
        })
        .collect();
    let medium = Medium::new(&vel, false).expect("a valid map");
    // The blocked kernel on every copy with the CPU's own subnormal
    // arithmetic, and the scaled copies where a copy has one.
    let mut runs = vec![(Kernel::Reference, Isa::detect(), Subnormals::Hardware)];
    for isa in Isa::available() {
        runs.push((Kernel::Blocked, isa, Subnormals::Hardware));
        if Subnormals::Avoid.avoided(isa) {
            runs.push((Kernel::Blocked, isa, Subnormals::Avoid));
        }
    }
    println!(
        "subnormals: a multiplication on them takes {:.1}x as long here; the probe chooses {:?}",
        Subnormals::slowdown(),
        Subnormals::detect().name()
    );
    let mut out = vec![0f32; PER_SOURCE];
    let mut secs = vec![Vec::new(); runs.len()];
    let mut lanes = 0;
    for _ in 0..rounds {
        for (k, &(kernel, isa, sub)) in runs.iter().enumerate() {
            let t = Instant::now();
            match kernel {
                Kernel::Blocked => lanes = medium.simulate_source_counted(34, &mut out, isa, sub),
                Kernel::Reference => medium.simulate_source_with(34, &mut out, kernel, isa),
            }
            secs[k].push(t.elapsed().as_secs_f64());
        }
    }
    let clock = clock_hz();
    let cells = 310.0 * 310.0 * 1000.0;
    println!("{rounds} rounds, one thread; per 1000-step simulation of one source:");
    for (k, &(kernel, isa, sub)) in runs.iter().enumerate() {
        let best = secs[k].iter().copied().fold(f64::INFINITY, f64::min);
        let mut speedup: Vec<f64> = secs[0].iter().zip(&secs[k]).map(|(r, s)| r / s).collect();
        speedup.sort_by(f64::total_cmp);
        println!(
            "{:9} {:8} {:8} best {:6.1} ms  {:5.2} G cell-updates/s  {:6.0} samples/h per core  vs reference: {:.2}x (median of rounds)",
            kernel.name(),
            isa.name(),
            if kernel == Kernel::Blocked { sub.name() } else { "" },
            best * 1e3,
            cells / best / 1e9,
            3600.0 / (5.0 * best),
            speedup[speedup.len() / 2]
        );
        if kernel == Kernel::Blocked {
            let rate = lanes as f64 / best;
            print!("          {lanes} lane updates: {:.2} G/s", rate / 1e9);
            match (clock, roofline(isa)) {
                (Some(hz), Some((cap, why))) => println!(
                    ", {:.2} a cycle at {:.2} GHz = {:.0} % of the {cap:.2} roofline ({why})",
                    rate / hz,
                    hz / 1e9,
                    rate / hz / cap * 100.0
                ),
                (Some(hz), None) => println!(
                    ", {:.2} a cycle at {:.2} GHz (docs/performance.md has no roofline for this core and copy)",
                    rate / hz,
                    hz / 1e9
                ),
                (None, _) => println!(),
            }
        }
    }
}

/// The floating-point roofline of `docs/performance.md` ("Roofline") for
/// this core and `isa`, in cell updates a cycle, with what bounds it: 14
/// operations a cell (9 additions or subtractions, 5 multiplications, none
/// fused) on the pipes the core has. `None` for cores the document does
/// not describe.
fn roofline(isa: Isa) -> Option<(f64, &'static str)> {
    let number = |key: &str| cpuinfo_field(key).and_then(|v| v.parse::<u32>().ok());
    let vendor = cpuinfo_field("vendor_id").unwrap_or_default();
    match (vendor.as_str(), number("cpu family"), number("model"), isa) {
        // Zen 3 and Zen 4: two 256-bit addition pipes (AVX-512 in two
        // halves): 9 additions of 8 lanes take 4.5 cycles.
        ("AuthenticAMD", Some(25), _, Isa::Avx512 | Isa::Avx2) => {
            Some((16.0 / 9.0, "Zen 3/4: two 256-bit addition pipes"))
        }
        // Golden Cove server cores (Sapphire and Emerald Rapids): two
        // 512-bit FMA ports that each add or multiply: 14 operations of 16
        // lanes take 7 cycles.
        ("GenuineIntel", Some(6), Some(143 | 207), Isa::Avx512) => {
            Some((16.0 / 7.0, "Golden Cove: two 512-bit FMA ports"))
        }
        // Three 256-bit ports that add (two of them also multiply): 14
        // operations of 8 lanes take 14/3 cycles.
        ("GenuineIntel", Some(6), Some(143 | 207), Isa::Avx2) => Some((
            8.0 * 3.0 / 14.0,
            "Golden Cove: three 256-bit addition ports",
        )),
        _ => None,
    }
}

/// The core's clock: 8 dependent integer additions a loop iteration, one a
/// cycle, best of 5 runs of 10^8 iterations. The additions take a register,
/// not an immediate: Intel's Golden Cove cores fold chains of additions of
/// an immediate at rename, which read as 7–12 GHz.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::unnecessary_wraps)] // None elsewhere
fn clock_hz() -> Option<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let (mut x, mut n) = (0u64, 100_000_000u64);
        let t = Instant::now();
        // SAFETY: integer additions and a loop on two registers the asm
        // block owns; no memory, no stack.
        unsafe {
            std::arch::asm!(
                "2:",
                "add {x}, {one}", "add {x}, {one}", "add {x}, {one}", "add {x}, {one}",
                "add {x}, {one}", "add {x}, {one}", "add {x}, {one}", "add {x}, {one}",
                "dec {n}",
                "jnz 2b",
                x = inout(reg) x,
                n = inout(reg) n,
                one = in(reg) 1u64,
                options(nomem, nostack),
            );
        }
        std::hint::black_box((x, n));
        best = best.min(t.elapsed().as_secs_f64());
    }
    Some(8e8 / best)
}

#[cfg(not(target_arch = "x86_64"))]
fn clock_hz() -> Option<f64> {
    None
}
