//! Times training steps of the `char-lstm` preset (`Embedding(65, 64), LSTM(64, 128,
//! num_layers=2), Linear(128, 65), Softmax(dim=-1)`, log-likelihood, batch 50 sequences of
//! 50 ids, SGD 0.1): a driver for `perf stat` and `valgrind --tool=callgrind`.
//!
//! ```sh
//! cargo run --release --example char_lstm_steps -- [steps] [threads] [repeats] [infer]
//! ```
//!
//! With a fourth argument (any), times the inference pass (`Sequential::forward`) instead.
//!
//! Prints the sequences per second of each repeat and their median, by the wall clock and
//! by the CPU time of the process's threads (Linux: `/proc/self/task/*/schedstat`), which
//! a machine shared with other work disturbs less.

use backprop::network::Cost;
use backprop::nn::{preset, Arch, Sequential};
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use rand::{Rng, SeedableRng};
use std::time::Instant;

const VOCAB: usize = 65;
const BATCH: usize = 50;
const STEPS: usize = 50;

fn main() {
    let infer = std::env::args().nth(4).is_some();
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .take(3)
        .map(|a| a.parse().expect("arguments: steps threads repeats [infer]"))
        .collect();
    let steps = args.first().copied().unwrap_or(20);
    let threads = args.get(1).copied().unwrap_or(1);
    let repeats = args.get(2).copied().unwrap_or(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    pool.install(|| run(steps, threads, repeats, infer));
}

fn run(steps: usize, threads: usize, repeats: usize, infer: bool) {
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
        if infer {
            return net.forward(x, BATCH, false).unwrap()[0];
        }
        let j = net.loss_and_grad(x, y, BATCH, Cost::LogLikelihood).unwrap();
        opt.step(&mut net, &(), 0.1).unwrap();
        j
    };
    step(0); // warm-up: buffers grow to their size
    let (mut rates, mut cpu_rates) = (Vec::new(), Vec::new());
    let mut j = 0.0;
    for _ in 0..repeats {
        let (start, cpu) = (Instant::now(), cpu_seconds());
        for k in 0..steps {
            j = step(k);
        }
        let seqs = (steps * BATCH) as f64;
        rates.push(seqs / start.elapsed().as_secs_f64());
        cpu_rates.push(seqs / (cpu_seconds() - cpu));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "threads {threads}, {steps} steps x {repeats}: sequences/s {:?}, median {:.0}; \
         per CPU-second {:?}, median {:.0}; last J {j:.4}",
        rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
        median(&mut rates),
        cpu_rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
        median(&mut cpu_rates),
    );
}

/// CPU seconds run so far by all of this process's threads (the first field of each
/// thread's schedstat is its time on a CPU in nanoseconds); 0 where /proc is missing.
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let ns: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 * 1e-9
}
