//! One SGD training step (feed-forward, cost, the four equations, the update) on the three
//! networks of issue #5, in samples per second; and `gemm` against `matrixmultiply` on the
//! products those steps make.

mod common;

use backprop::linalg::{matmul, MatRef};
use backprop::network::{Activation, Cost, Gradients, Init, Network, Workspace};
use common::data;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;

struct Config {
    name: &'static str,
    sizes: &'static [usize],
    hidden: Activation,
    output: Activation,
    cost: Cost,
    eta: f32,
    batch: usize,
}

const CONFIGS: [Config; 3] = [
    Config {
        name: "nielsen",
        sizes: &[784, 30, 10],
        hidden: Activation::Sigmoid,
        output: Activation::Sigmoid,
        cost: Cost::Quadratic,
        eta: 3.0,
        batch: 10,
    },
    Config {
        name: "small",
        sizes: &[784, 128, 64, 10],
        hidden: Activation::Relu,
        output: Activation::Softmax,
        cost: Cost::LogLikelihood,
        eta: 0.1,
        batch: 64,
    },
    Config {
        name: "wide",
        sizes: &[784, 1024, 1024, 10],
        hidden: Activation::Relu,
        output: Activation::Softmax,
        cost: Cost::LogLikelihood,
        eta: 0.1,
        batch: 256,
    },
];

fn train_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for cfg in &CONFIGS {
        let mut acts = vec![cfg.hidden; cfg.sizes.len() - 2];
        acts.push(cfg.output);
        let fresh = Network::<f32>::new(cfg.sizes, &acts, cfg.cost, Init::Uniform, 1).unwrap();
        let mut net = fresh.clone();
        let (inputs, classes) = (cfg.sizes[0], cfg.sizes[cfg.sizes.len() - 1]);
        let batches = 16;
        let (x, y) = data(cfg.batch * batches, inputs, classes);
        let mut ws = Workspace::new(&net, cfg.batch);
        let mut grads = Gradients::zeros_like(&net);
        let mut b = 0;
        group.throughput(Throughput::Elements(cfg.batch as u64));
        group.bench_function(BenchmarkId::new("backprop+sgd_step", cfg.name), |bench| {
            bench.iter(|| {
                let (xs, ys) = (cfg.batch * inputs, cfg.batch * classes);
                let j = net.backprop(
                    &x[b * xs..(b + 1) * xs],
                    &y[b * ys..(b + 1) * ys],
                    cfg.batch,
                    &mut ws,
                    &mut grads,
                );
                net.sgd_step(&grads, cfg.eta);
                b = (b + 1) % batches;
                j
            })
        });
        group.bench_function(BenchmarkId::new("feed_forward", cfg.name), |bench| {
            bench.iter(|| {
                let xs = cfg.batch * inputs;
                let out = net.feed_forward(&x[b * xs..(b + 1) * xs], cfg.batch, &mut ws);
                b = (b + 1) % batches;
                out[0]
            })
        });
        // Each path starts from the same untrained network: a network trained on random
        // labels drifts into saturation, where tiny deltas change the arithmetic's speed.
        net = fresh.clone();
        group.bench_function(BenchmarkId::new("sgd_train_step", cfg.name), |bench| {
            bench.iter(|| {
                let (xs, ys) = (cfg.batch * inputs, cfg.batch * classes);
                let j = net
                    .sgd_train_step(
                        &x[b * xs..(b + 1) * xs],
                        &y[b * ys..(b + 1) * ys],
                        cfg.batch,
                        &mut ws,
                        cfg.eta,
                    )
                    .unwrap();
                b = (b + 1) % batches;
                j
            })
        });
    }
    group.finish();
}

/// The products of a training step, as (name, m, k, n, lhs transposed, rhs transposed).
const SHAPES: [(&str, usize, usize, usize, bool, bool); 8] = [
    ("small fwd A W^T 64x784x128", 64, 784, 128, false, true),
    ("small eq1 D^T A 128x64x784", 128, 64, 784, true, false),
    ("wide fwd A W^T 256x784x1024", 256, 784, 1024, false, true),
    ("wide fwd A W^T 256x1024x1024", 256, 1024, 1024, false, true),
    ("wide eq3 D W 256x1024x1024", 256, 1024, 1024, false, false),
    ("wide eq1 D^T A 1024x256x1024", 1024, 256, 1024, true, false),
    // The same two products if activations were stored feature-major (one column per
    // example, the seed's column vectors): the layout trade-off, measured.
    (
        "wide fwd feature-major 256x1024x1024",
        256,
        1024,
        1024,
        true,
        true,
    ),
    (
        "wide eq1 feature-major 1024x256x1024",
        1024,
        256,
        1024,
        false,
        true,
    ),
];

fn gemm_vs_matrixmultiply(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm_vs_matrixmultiply");
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(10);
    for &(name, m, k, n, lt, rt) in &SHAPES {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut dst = vec![0.0f32; m * n];
        // Stored as the network stores them: a transposed operand is a row-major k x m.
        let lhs = if lt {
            MatRef::row_major(&a, k, m).unwrap().t()
        } else {
            MatRef::row_major(&a, m, k).unwrap()
        };
        let rhs = if rt {
            MatRef::row_major(&b, n, k).unwrap().t()
        } else {
            MatRef::row_major(&b, k, n).unwrap()
        };
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.bench_function(BenchmarkId::new("gemm", name), |bench| {
            bench.iter(|| matmul(&mut dst, lhs, rhs, 1.0, false))
        });
        let (lrs, lcs) = if lt { (1, m as isize) } else { (k as isize, 1) };
        let (rrs, rcs) = if rt { (1, k as isize) } else { (n as isize, 1) };
        group.bench_function(BenchmarkId::new("matrixmultiply", name), |bench| {
            bench.iter(|| {
                // SAFETY: the strides describe the m x k and k x n matrices stored in `a` and
                // `b` (transposed ones as k x m and n x k row-major), and `dst` is m x n.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        lrs,
                        lcs,
                        b.as_ptr(),
                        rrs,
                        rcs,
                        0.0,
                        dst.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                }
            })
        });
    }
    group.finish();
}

/// Every product of one training step of a network, back to back, through the same
/// `matmul` with the same shapes and layouts as the step: the GEMM rate the step's kernels
/// reach on the layer shapes alone (issue #5 asks the wide step for >= 80% of it).
/// Throughput is in flops, so criterion's `Gelem/s` reads as GFLOP/s.
fn step_products(c: &mut Criterion) {
    let mut group = c.benchmark_group("step_products");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for cfg in &CONFIGS {
        let (sizes, n) = (cfg.sizes, cfg.batch);
        let weights: Vec<Vec<f32>> = sizes
            .windows(2)
            .map(|w| (0..w[0] * w[1]).map(|i| (i % 7) as f32 * 0.01).collect())
            .collect();
        // A^l (A^1 = X), Z^l and Delta^l of the batch, n x N^l each.
        let acts: Vec<Vec<f32>> = sizes
            .iter()
            .map(|&s| (0..n * s).map(|i| (i % 5) as f32 * 0.1).collect())
            .collect();
        let mut z: Vec<Vec<f32>> = sizes.iter().map(|&s| vec![0.0; n * s]).collect();
        let mut delta = z.clone();
        let mut w_out = weights.clone();
        // Feed-forward and Equation 1 for every layer; Equation 3 for all but the first.
        let mut flops = 0;
        for l in 1..sizes.len() {
            let (width, fan_in) = (sizes[l], sizes[l - 1]);
            flops += 2 * 2 * n * width * fan_in;
            if l > 1 {
                flops += 2 * n * width * fan_in;
            }
        }
        group.throughput(Throughput::Elements(flops as u64));
        group.bench_function(BenchmarkId::new("all products", cfg.name), |bench| {
            bench.iter(|| {
                let layers = sizes.len() - 1;
                for l in 1..=layers {
                    let (width, fan_in) = (sizes[l], sizes[l - 1]);
                    let a = MatRef::row_major(&acts[l - 1], n, fan_in).unwrap();
                    let w = MatRef::row_major(&weights[l - 1], width, fan_in).unwrap();
                    matmul(&mut z[l], a, w.t(), 1.0, false);
                }
                for l in (2..=layers).rev() {
                    let (width, fan_in) = (sizes[l], sizes[l - 1]);
                    let d = MatRef::row_major(&acts[l], n, width).unwrap();
                    let w = MatRef::row_major(&weights[l - 1], width, fan_in).unwrap();
                    matmul(&mut delta[l - 1], d, w, 1.0, false);
                }
                for l in 1..=layers {
                    let (width, fan_in) = (sizes[l], sizes[l - 1]);
                    let d = MatRef::row_major(&delta[l], n, width).unwrap();
                    let a = MatRef::row_major(&acts[l - 1], n, fan_in).unwrap();
                    matmul(w_out[l - 1].as_mut_slice(), d.t(), a, -0.01, true);
                }
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // No plots: plotters here has no system fonts.
    config = Criterion::default().without_plots();
    targets = train_step, step_products, gemm_vs_matrixmultiply
}
criterion_main!(benches);
