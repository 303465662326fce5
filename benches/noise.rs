//! The Gaussian noise of a private step alone, in numbers per second: the seeded noise of
//! an f32 model (Box-Muller on eight xoshiro256++ lanes, AVX-512 or AVX2 when the CPU has
//! them), of an f64 model (rand_distr's ziggurat, one number at a time) and the noise keyed
//! by the operating system (ChaCha20), on the nielsen network's 23,860 parameters.
//!
//! One thread: `RAYON_NUM_THREADS=1 cargo bench --bench noise`.

use backprop::privacy::Noise;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;

const N: usize = 23_860;

fn noise(c: &mut Criterion) {
    let mut g = c.benchmark_group("noise");
    g.throughput(Throughput::Elements(N as u64))
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300));
    let mut v32 = vec![0.0f32; N];
    let mut seeded = Noise::seeded(1);
    g.bench_function("seeded_f32", |b| {
        b.iter(|| seeded.add(1.0, |f| f(&mut v32)));
    });
    let mut v64 = vec![0.0f64; N];
    g.bench_function("seeded_f64", |b| {
        b.iter(|| seeded.add(1.0, |f| f(&mut v64)));
    });
    let mut os = Noise::os();
    g.bench_function("os_f32", |b| b.iter(|| os.add(1.0, |f| f(&mut v32))));
    g.finish();
}

criterion_group!(benches, noise);
criterion_main!(benches);
