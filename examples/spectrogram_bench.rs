//! Times the spectrogram stage's compute on in-memory samples (no file I/O):
//! the driver is `benches/spectrogram.py`, which times torch.stft and scipy on
//! the same inputs in the same run.
//!
//! `spectrogram_bench INPUT.npy THREADS REPEATS PARAMS_JSON [OUT.npy]`
//!
//! INPUT.npy is (N, 5, T, 70). Each repeat computes the spectrogram of every
//! sample once, samples spread over a rayon pool of THREADS workers (as the
//! executor does), each sample's output freshly allocated (as the stage does).
//! Prints one JSON line: samples, threads, per-repeat seconds. OUT.npy, when
//! given, receives the last repeat's outputs (N, C, F, frames, R) for checking.

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use seispipe::io::npy;
use seispipe::pipeline::spec::DType;
use seispipe::stage::spectrogram::SpectrogramSpec;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: spectrogram_bench INPUT.npy THREADS REPEATS PARAMS_JSON [OUT.npy]");
        std::process::exit(2);
    }
    let (shape, data) = npy::read_all(Path::new(&args[1])).expect("read input");
    let threads: usize = args[2].parse().expect("THREADS");
    let repeats: usize = args[3].parse().expect("REPEATS");
    let spec: SpectrogramSpec = serde_json::from_str(&args[4]).expect("PARAMS_JSON");
    let n = shape[0];
    let per: usize = shape[1..].iter().product();
    let stage = spec.runtime(&shape[1..]).expect("valid parameters");
    let out_shape = stage.out_shape();
    let out_len: usize = out_shape.iter().product();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool");
    let mut times = Vec::new();
    let mut last: Vec<Vec<f32>> = Vec::new();
    for _ in 0..repeats {
        let t = Instant::now();
        last = pool.install(|| {
            (0..n)
                .into_par_iter()
                .map(|i| {
                    let mut out = vec![0f32; out_len];
                    stage.compute(&data[i * per..(i + 1) * per], &mut out);
                    out
                })
                .collect()
        });
        times.push(t.elapsed().as_secs_f64());
    }
    if let Some(out) = args.get(5) {
        let mut s = vec![n];
        s.extend_from_slice(&out_shape);
        let flat: Vec<f32> = last.concat();
        npy::write_array(Path::new(out), DType::F32, &s, &flat).expect("write output");
    }
    println!(
        "{}",
        serde_json::json!({ "samples": n, "threads": threads, "out_shape": out_shape, "seconds": times })
    );
}
