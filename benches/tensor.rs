//! The general engine's overhead: one training step of a fully connected network through
//! the tensor tape (forward, fused cost, reverse pass, SGD update; a warm tape that keeps the
//! parameters and reuses its buffers), beside the same step by
//! the post's four equations (`Network::backprop` + `sgd_step`), in samples per second.
//! The ratio of the two is the figure to report (at least 50% on nielsen, 85% on wide).

mod common;

use backprop::network::{Activation, Cost, Gradients, Init, Network, Workspace};
use backprop::tensor::Tape;
use common::{data, TapeNet};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

/// (name, sizes, hidden activation, output activation, cost, eta, batch): the MLPs that
/// `backprop bench` times.
type Config = (
    &'static str,
    &'static [usize],
    Activation,
    Activation,
    Cost,
    f32,
    usize,
);

const CONFIGS: [Config; 3] = [
    (
        "nielsen",
        &[784, 30, 10],
        Activation::Sigmoid,
        Activation::Sigmoid,
        Cost::Quadratic,
        3.0,
        10,
    ),
    (
        "small",
        &[784, 128, 64, 10],
        Activation::Relu,
        Activation::Softmax,
        Cost::LogLikelihood,
        0.1,
        64,
    ),
    (
        "wide",
        &[784, 1024, 1024, 10],
        Activation::Relu,
        Activation::Softmax,
        Cost::LogLikelihood,
        0.1,
        256,
    ),
];

fn engine_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("mlp_step");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    for &(name, sizes, hidden, output, cost, eta, batch) in &CONFIGS {
        let mut acts = vec![hidden; sizes.len() - 2];
        acts.push(output);
        let fresh = Network::<f32>::new(sizes, &acts, cost, Init::Uniform, 1).unwrap();
        let (inputs, classes) = (sizes[0], sizes[sizes.len() - 1]);
        let batches = 16;
        let (x, y) = data(batch * batches, inputs, classes);
        let (xs, ys) = (batch * inputs, batch * classes);
        group.throughput(Throughput::Elements(batch as u64));

        let mut net = fresh.clone();
        let mut ws = Workspace::new(&net, batch);
        let mut grads = Gradients::zeros_like(&net);
        let mut b = 0;
        group.bench_function(BenchmarkId::new("four_equations", name), |bench| {
            bench.iter(|| {
                let j = net.backprop(
                    &x[b * xs..(b + 1) * xs],
                    &y[b * ys..(b + 1) * ys],
                    batch,
                    &mut ws,
                    &mut grads,
                );
                net.sgd_step(&grads, eta);
                b = (b + 1) % batches;
                j
            })
        });
        // From the same untrained network, so both paths do the same arithmetic.
        let mut tape = Tape::new();
        let on_tape = TapeNet::new(&fresh, &tape);
        group.bench_function(BenchmarkId::new("tensor_tape", name), |bench| {
            bench.iter(|| {
                let j = on_tape.step(
                    &mut tape,
                    &x[b * xs..(b + 1) * xs],
                    &y[b * ys..(b + 1) * ys],
                    batch,
                    eta,
                );
                b = (b + 1) % batches;
                j
            })
        });
    }
    group.finish();
}

/// The tape step and the four equations take the same step: checked once before timing,
/// so the benchmark cannot time a wrong computation.
fn same_step() {
    let (sizes, acts) = (&[784, 30, 10], [Activation::Sigmoid, Activation::Sigmoid]);
    let net = Network::<f32>::new(sizes, &acts, Cost::Quadratic, Init::Uniform, 1).unwrap();
    let (x, y) = data(10, 784, 10);
    let mut a = net.clone();
    let mut ws = Workspace::new(&a, 10);
    let mut grads = Gradients::zeros_like(&a);
    let mut tape = Tape::new();
    let on_tape = TapeNet::new(&net, &tape);
    for _ in 0..2 {
        a.backprop(&x, &y, 10, &mut ws, &mut grads);
        a.sgd_step(&grads, 3.0);
        on_tape.step(&mut tape, &x, &y, 10, 3.0);
    }
    for (la, &(w, _)) in a.layers.iter().zip(&on_tape.params) {
        for (u, v) in la.weights.as_slice().iter().zip(tape.value(w).as_slice()) {
            assert!((u - v).abs() < 1e-5, "{u} vs {v}");
        }
    }
}

fn benches(c: &mut Criterion) {
    same_step();
    engine_overhead(c);
}

criterion_group! {
    name = tensor;
    // Criterion's plots panic on some of this machine's timings; the numbers are what count.
    config = Criterion::default().without_plots();
    targets = benches
}
criterion_main!(tensor);
