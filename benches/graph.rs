//! Nodes per second for building a scalar graph plus its backward pass (micrograd's job).
//!
//! `cargo bench --bench graph`. micrograd (Python) does ~0.42 million nodes/s with its
//! garbage collector paused; the target is 40 million.

use backprop::graph::{Adjoints, Real, Tape};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// y <- relu(y·a + b), `steps` times: 3 nodes a step, all of them on the output's path.
fn build_and_backward(steps: usize) -> (usize, f64) {
    let tape = Tape::with_capacity(3 * steps + 3);
    let (a, b) = (tape.var(0.999), tape.var(0.001));
    let mut y = tape.var(1.0);
    for _ in 0..steps {
        y = (y * a + b).relu();
    }
    let g = y.backward();
    (tape.len(), g.wrt(a))
}

/// The same with tanh and a constant each step: 4 nodes, one transcendental.
fn build_and_backward_tanh(steps: usize) -> (usize, f64) {
    let tape = Tape::with_capacity(4 * steps + 3);
    let (a, b) = (tape.var(0.9), tape.var(0.1));
    let mut y = tape.var(1.0);
    for _ in 0..steps {
        y = (y * a + b * 0.5).tanh();
    }
    let g = y.backward();
    (tape.len(), g.wrt(a))
}

/// `build_and_backward` reusing one tape and one set of adjoint buffers, as a loop that
/// rebuilds its graph every step would: no allocation, no page faults.
fn reused(tape: &mut Tape, g: &mut Adjoints, steps: usize) -> f64 {
    tape.clear();
    let (a, b) = (tape.var(0.999), tape.var(0.001));
    let mut y = tape.var(1.0);
    for _ in 0..steps {
        y = (y * a + b).relu();
    }
    tape.backward_into(y.id(), g);
    g.wrt(a)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("graph build+backward");
    group.sample_size(20);
    group.measurement_time(std::time::Duration::from_secs(3));
    for steps in [10_000usize, 1_000_000 / 3] {
        let nodes = build_and_backward(steps).0;
        group.throughput(Throughput::Elements(nodes as u64));
        group.bench_with_input(BenchmarkId::new("relu(y*a+b)", nodes), &steps, |bch, &s| {
            bch.iter(|| build_and_backward(black_box(s)))
        });
        let (mut tape, mut g) = (Tape::with_capacity(nodes), Adjoints::new());
        group.bench_with_input(
            BenchmarkId::new("relu(y*a+b), reused tape", nodes),
            &steps,
            |bch, &s| bch.iter(|| reused(&mut tape, &mut g, black_box(s))),
        );
        let nodes = build_and_backward_tanh(steps).0;
        group.throughput(Throughput::Elements(nodes as u64));
        group.bench_with_input(
            BenchmarkId::new("tanh(y*a+b*0.5)", nodes),
            &steps,
            |bch, &s| bch.iter(|| build_and_backward_tanh(black_box(s))),
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // No plots: this machine has no system fonts for criterion's plotters backend.
    config = Criterion::default().without_plots();
    targets = bench
}
criterion_main!(benches);
