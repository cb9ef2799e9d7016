//! Per-core rate of the noise pass (ChaCha8 + ziggurat + add) with each
//! vector copy this CPU runs, alternated over rounds: ns per value.
//!
//! `cargo run --release --example noise_bench [ROUNDS]` (default 9)
use std::time::Instant;

use seispipe::cpu::Isa;
use seispipe::rng::stage_rng;
use seispipe::stage::normal::keystream::Keystream;
use seispipe::stage::normal::Normals;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(9, |s| s.parse().expect("ROUNDS: a number"));
    let mut x = vec![0f32; 350_000 * 20];
    let isas = Isa::available();
    let mut best = vec![f64::INFINITY; isas.len()];
    for r in 0..rounds {
        for (k, &isa) in isas.iter().enumerate() {
            let mut rng = stage_rng(1, "bench", r as u64, 1, 0);
            let t = Instant::now();
            for s in x.chunks_mut(350_000) {
                Normals::new(&mut rng).add_scaled_on(isa, s, 0.5);
            }
            best[k] = best[k].min(t.elapsed().as_secs_f64());
        }
    }
    let mut fill = f64::INFINITY;
    let mut bytes = vec![0u8; x.len() * 4];
    for r in 0..rounds {
        use rand::RngCore;
        let mut rng = stage_rng(1, "bench", r as u64, 1, 0);
        let t = Instant::now();
        rng.fill_bytes(&mut bytes);
        fill = fill.min(t.elapsed().as_secs_f64());
    }
    // The words the noise takes, one block of them at a time (as the noise
    // does), by each copy of the keystream.
    let mut words = vec![0u32; 1024];
    let mut wide = vec![f64::INFINITY; isas.len()];
    for r in 0..rounds {
        for (k, &isa) in isas.iter().enumerate() {
            let mut rng = stage_rng(1, "bench", r as u64, 1, 0);
            let mut ks = Keystream::new(&mut rng);
            let t = Instant::now();
            for _ in 0..x.len() / 1024 {
                ks.fill(&mut words, isa);
            }
            wide[k] = wide[k].min(t.elapsed().as_secs_f64());
        }
    }
    println!("{rounds} rounds, one thread, 20 samples of 350,000 values:");
    println!(
        "the ChaCha8 stream alone (4 bytes a value): {:.2} ns per value",
        fill * 1e9 / x.len() as f64
    );
    for (k, isa) in isas.iter().enumerate() {
        println!(
            "the same words, 1024 at a time, {:9} copy of the keystream: {:.2} ns per value",
            isa.name(),
            wide[k] * 1e9 / x.len() as f64
        );
    }
    for (k, isa) in isas.iter().enumerate() {
        println!(
            "{:9} best {:6.1} ms  {:.2} ns per value",
            isa.name(),
            best[k] * 1e3,
            best[k] * 1e9 / x.len() as f64
        );
    }
}
