//! The general engine's overhead: one training step of a fully connected network through
//! the tensor tape (forward, fused cost, reverse pass, SGD update), beside the same step by
//! the post's four equations (`Network::backprop` + `sgd_step`), in samples per second.
//! The ratio of the two is the figure to report (at least 50% on nielsen, 85% on wide).

use backprop::network::{Activation, Cost, Gradients, Init, Network, Workspace};
use backprop::tensor::{Tape, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
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

fn data(n: usize, inputs: usize, classes: usize) -> (Vec<f32>, Vec<f32>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let x = (0..n * inputs).map(|_| rng.gen::<f32>()).collect();
    let mut y = vec![0.0; n * classes];
    for row in y.chunks_exact_mut(classes) {
        row[rng.gen_range(0..classes)] = 1.0;
    }
    (x, y)
}

/// One step through the tape: the parameters are put on a fresh tape, the batch goes
/// forward (z = A Wᵀ + b, then F), the cost is fused with the output activation, the reverse
/// pass gives every gradient, and w ← w − η dJ/dw is applied to the network.
fn tape_step(net: &mut Network<f32>, x: &[f32], y: &[f32], n: usize, eta: f32) -> f32 {
    let tape = Tape::<f32>::new();
    let params: Vec<_> = net
        .layers
        .iter()
        .map(|l| {
            let (rows, cols) = (l.weights.rows(), l.weights.cols());
            let w = Tensor::from_vec([rows, cols], l.weights.as_slice().to_vec()).unwrap();
            let b = Tensor::from_vec([rows], l.biases.clone()).unwrap();
            (tape.var(w), tape.var(b))
        })
        .collect();
    let (inputs, outputs) = (x.len() / n, y.len() / n);
    let mut a = tape.constant_var(Tensor::from_vec([n, inputs], x.to_vec()).unwrap());
    let y = tape.constant_var(Tensor::from_vec([n, outputs], y.to_vec()).unwrap());
    let last = net.layers.len() - 1;
    for (l, &(w, b)) in params.iter().enumerate() {
        let z = a.matmul_t(w) + b;
        let act = net.layers[l].activation;
        a = if l == last {
            z.cost_from_z(net.cost, act, y)
        } else {
            z.activation(act)
        };
    }
    let grads = a.backward();
    for (layer, &(w, b)) in net.layers.iter_mut().zip(&params) {
        let gw = grads.wrt(w);
        for (v, g) in layer.weights.as_mut_slice().iter_mut().zip(gw.as_slice()) {
            *v -= eta * g;
        }
        for (v, g) in layer.biases.iter_mut().zip(grads.wrt(b).as_slice()) {
            *v -= eta * g;
        }
    }
    a.item()
}

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
        let mut net = fresh.clone();
        group.bench_function(BenchmarkId::new("tensor_tape", name), |bench| {
            bench.iter(|| {
                let j = tape_step(
                    &mut net,
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
    let (mut a, mut b) = (net.clone(), net);
    let mut ws = Workspace::new(&a, 10);
    let mut grads = Gradients::zeros_like(&a);
    a.backprop(&x, &y, 10, &mut ws, &mut grads);
    a.sgd_step(&grads, 3.0);
    tape_step(&mut b, &x, &y, 10, 3.0);
    for (la, lb) in a.layers.iter().zip(&b.layers) {
        for (u, v) in la.weights.as_slice().iter().zip(lb.weights.as_slice()) {
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
