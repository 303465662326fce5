//! A private training step (per-example norms, clipping, one weighted pass of Equations 1
//! and 2, Gaussian noise on every parameter, the optimizer's update) against the ordinary
//! step on the same batch, in samples per second, on the three networks of `backprop
//! bench` (f32, their batch sizes: nielsen 10, small 64, wide 256).
//!
//! - `ordinary`: backprop, then the SGD optimizer through the model seam (the update the
//!   private step also makes);
//! - `fused`: `sgd_train_step`, Equation 1 accumulated straight into W (what `backprop
//!   bench` times);
//! - `private`: `DpSgd::step`, sigma 1, C 1, seeded noise (with the SGD optimizer the
//!   clipped sum and the noise go straight into the weights, as in `fused`);
//! - `private_os_noise`: the same, keyed by the operating system and drawn by ChaCha20.

use backprop::network::{Activation, Cost, Gradients, Init, Network, Workspace};
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use backprop::privacy::{DpConfig, DpSgd, Noise};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use std::time::Duration;

fn data(n: usize, inputs: usize, classes: usize) -> (Vec<f32>, Vec<f32>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let x = (0..n * inputs).map(|_| rng.gen::<f32>()).collect();
    let mut y = vec![0.0; n * classes];
    for row in y.chunks_exact_mut(classes) {
        row[rng.gen_range(0..classes)] = 1.0;
    }
    (x, y)
}

/// The networks of `backprop bench` (its harness lives in the binary).
struct BenchConfig {
    name: &'static str,
    sizes: &'static [usize],
    hidden: Activation,
    output: Activation,
    cost: Cost,
    batch: usize,
    learning_rate: f32,
}

impl BenchConfig {
    const ALL: [BenchConfig; 3] = [
        BenchConfig {
            name: "nielsen",
            sizes: &[784, 30, 10],
            hidden: Activation::Sigmoid,
            output: Activation::Sigmoid,
            cost: Cost::Quadratic,
            batch: 10,
            learning_rate: 3.0,
        },
        BenchConfig {
            name: "small",
            sizes: &[784, 128, 64, 10],
            hidden: Activation::Relu,
            output: Activation::Softmax,
            cost: Cost::LogLikelihood,
            batch: 64,
            learning_rate: 0.1,
        },
        BenchConfig {
            name: "wide",
            sizes: &[784, 1024, 1024, 10],
            hidden: Activation::Relu,
            output: Activation::Softmax,
            cost: Cost::LogLikelihood,
            batch: 256,
            learning_rate: 0.1,
        },
    ];

    fn parameters(&self) -> usize {
        self.sizes.windows(2).map(|w| w[1] * (w[0] + 1)).sum()
    }

    fn activations(&self) -> Vec<Activation> {
        let mut f = vec![self.hidden; self.sizes.len() - 2];
        f.push(self.output);
        f
    }
}

fn private_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("privacy");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    for cfg in &BenchConfig::ALL {
        let fresh =
            Network::<f32>::new(cfg.sizes, &cfg.activations(), cfg.cost, Init::Uniform, 1).unwrap();
        let (inputs, classes) = (cfg.sizes[0], cfg.sizes[cfg.sizes.len() - 1]);
        let (n, batches) = (cfg.batch, 16);
        let (x, y) = data(n * batches, inputs, classes);
        let (xs, ys) = (n * inputs, n * classes);
        let lr = cfg.learning_rate;
        let sgd = OptimizerConfig::new(OptimizerKind::Sgd);
        group.throughput(Throughput::Elements(n as u64));

        let mut net = fresh.clone();
        let mut opt = Optimizer::new(sgd, &net).unwrap();
        let (mut ws, mut grads) = (Workspace::new(&net, n), Gradients::zeros_like(&net));
        let mut b = 0;
        group.bench_function(BenchmarkId::new("ordinary", cfg.name), |bench| {
            bench.iter(|| {
                let (x, y) = (&x[b * xs..(b + 1) * xs], &y[b * ys..(b + 1) * ys]);
                let j = net.backprop(x, y, n, &mut ws, &mut grads);
                opt.step(&mut net, &grads, lr).unwrap();
                b = (b + 1) % batches;
                j
            })
        });

        // Each path starts from the same untrained network (see benches/network.rs).
        net = fresh.clone();
        group.bench_function(BenchmarkId::new("fused", cfg.name), |bench| {
            bench.iter(|| {
                let (x, y) = (&x[b * xs..(b + 1) * xs], &y[b * ys..(b + 1) * ys]);
                let j = net.sgd_train_step(x, y, n, &mut ws, lr).unwrap();
                b = (b + 1) % batches;
                j
            })
        });

        for (name, noise) in [
            ("private", Noise::seeded(1)),
            ("private_os_noise", Noise::os()),
        ] {
            net = fresh.clone();
            let mut opt = Optimizer::new(sgd, &net).unwrap();
            let config = DpConfig::new(1.0, 1.0, n, 60_000).unwrap();
            let mut dp = DpSgd::new(config, &net, noise);
            group.bench_function(BenchmarkId::new(name, cfg.name), |bench| {
                bench.iter(|| {
                    let (x, y) = (&x[b * xs..(b + 1) * xs], &y[b * ys..(b + 1) * ys]);
                    let stats = dp.step(&mut net, &mut opt, x, y, n, lr).unwrap();
                    b = (b + 1) % batches;
                    stats.loss
                })
            });
        }
        // The noise alone: one Gaussian draw per weight and bias, every step.
        let mut buffer = vec![0.0f32; cfg.parameters()];
        let mut noise = Noise::seeded(1);
        group.bench_function(BenchmarkId::new("noise_only", cfg.name), |bench| {
            bench.iter(|| {
                noise.add(0.01, |f| f(&mut buffer));
                buffer[0]
            })
        });
    }
    group.finish();
}

criterion_group!(benches, private_step);
criterion_main!(benches);
