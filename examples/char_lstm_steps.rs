//! Times training steps of the `char-lstm` preset (`Embedding(65, 64), LSTM(64, 128,
//! num_layers=2), Linear(128, 65), Softmax(dim=-1)`, log-likelihood, batch 50 sequences of
//! 50 ids, SGD 0.1): a driver for `perf stat` and `valgrind --tool=callgrind`.
//!
//! ```sh
//! cargo run --release --example char_lstm_steps -- [steps] [threads] [repeats]
//! ```
//!
//! Prints the sequences per second of each repeat and their median.

use backprop::network::Cost;
use backprop::nn::{preset, Arch, Sequential};
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use rand::{Rng, SeedableRng};
use std::time::Instant;

const VOCAB: usize = 65;
const BATCH: usize = 50;
const STEPS: usize = 50;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments: steps threads repeats"))
        .collect();
    let steps = args.first().copied().unwrap_or(20);
    let threads = args.get(1).copied().unwrap_or(1);
    let repeats = args.get(2).copied().unwrap_or(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    pool.install(|| run(steps, threads, repeats));
}

fn run(steps: usize, threads: usize, repeats: usize) {
    let arch: Arch = preset("char-lstm", VOCAB).unwrap().parse().unwrap();
    let mut net = Sequential::<f32>::new(&arch, &[STEPS], 42).unwrap();
    let mut opt = Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd), &net).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let batches: Vec<(Vec<f32>, Vec<f32>)> = (0..8)
        .map(|_| {
            let mut ids = || -> Vec<f32> {
                (0..BATCH * STEPS)
                    .map(|_| rng.gen_range(0..VOCAB) as f32)
                    .collect()
            };
            (ids(), ids())
        })
        .collect();
    let mut step = |k: usize| -> f32 {
        let (x, y) = &batches[k % batches.len()];
        let j = net.loss_and_grad(x, y, BATCH, Cost::LogLikelihood).unwrap();
        opt.step(&mut net, &(), 0.1).unwrap();
        j
    };
    step(0); // warm-up: buffers grow to their size
    let mut rates = Vec::new();
    let mut j = 0.0;
    for _ in 0..repeats {
        let start = Instant::now();
        for k in 0..steps {
            j = step(k);
        }
        rates.push((steps * BATCH) as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "threads {threads}, {steps} steps x {repeats}: sequences/s {:?}, median {:.0}, last J {j:.4}",
        rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
        rates[rates.len() / 2]
    );
}
