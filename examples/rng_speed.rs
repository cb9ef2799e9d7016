//! Scratch timing of the noise kernel (not a benchmark of record).
fn main() {
    let mut rng = seispipe::rng::stage_rng(1, "x", 0, 1, 0);
    let mut x = vec![0f32; 350_000];
    let t = std::time::Instant::now();
    for _ in 0..100 {
        seispipe::stage::noise::add_noise(&mut x, 0.5, &mut rng);
    }
    let dt = t.elapsed().as_secs_f64();
    println!("add_noise: {:.2} ms/sample, {:.1} M normals/s", dt * 10.0, 35.0 / dt);
    use rand::Rng;
    let t = std::time::Instant::now();
    for _ in 0..100 {
        for v in x.iter_mut() {
            let n: f32 = rng.sample(rand_distr::StandardNormal);
            *v += 0.5 * n;
        }
    }
    let dt = t.elapsed().as_secs_f64();
    println!("rand_distr: {:.2} ms/sample", dt * 10.0);
    let t = std::time::Instant::now();
    let mut z = seispipe::stage::normal::Normals::new(&mut rng);
    let mut acc = 0f32;
    for _ in 0..35_000_000 {
        acc += z.next();
    }
    let dt = t.elapsed().as_secs_f64();
    println!("Normals::next: {:.2} ns each ({acc})", dt / 35e6 * 1e9);
    let t = std::time::Instant::now();
    let mut h = sha2::Sha256::new();
    use sha2::Digest;
    let bytes = vec![1u8; 1_400_000];
    for _ in 0..100 {
        h.update(&bytes);
    }
    let _ = h.finalize();
    let dt = t.elapsed().as_secs_f64();
    println!("sha256: {:.0} MB/s", 140.0 / dt);
    use rand::RngCore;
    let mut buf = vec![0u8; 2_800_000];
    let t = std::time::Instant::now();
    for _ in 0..100 {
        rng.fill_bytes(&mut buf);
    }
    let dt = t.elapsed().as_secs_f64();
    println!("chacha8 fill: {:.0} MB/s", 280.0 / dt);
    let t = std::time::Instant::now();
    let mut acc = 0u64;
    for _ in 0..35_000_000 {
        acc = acc.wrapping_add(rng.next_u64());
    }
    let dt = t.elapsed().as_secs_f64();
    println!("chacha8 next_u64: {:.2} ns each ({acc})", dt / 35e6 * 1e9);
}

#[allow(dead_code)]
fn unused() {}
