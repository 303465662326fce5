//! Runs a fixed number of training steps (forward, log-likelihood, backward, SGD 0.1) of an
//! arch preset on synthetic data, with nothing timed: a repeatable driver for
//! `valgrind --tool=callgrind` (instructions per step: run 1 and 1 + k steps and subtract).
//!
//! ```sh
//! cargo build --release --example arch_steps
//! valgrind --tool=callgrind target/release/examples/arch_steps lenet5 5
//! ```

use backprop::network::Cost;
use backprop::nn::{preset, Arch, Sequential};
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use rand::{Rng, SeedableRng};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().map_or("lenet5", String::as_str);
    let steps: usize = args.get(1).map_or(5, |s| s.parse().expect("steps"));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let (arch, shape, batch, per, classes): (Arch, Vec<usize>, usize, usize, usize) = match name {
        "char-lstm" => (
            preset(name, 65).unwrap().parse().unwrap(),
            vec![50],
            50,
            50,
            65,
        ),
        _ => (
            preset(name, 10).unwrap().parse().unwrap(),
            vec![1, 28, 28],
            64,
            1,
            10,
        ),
    };
    let mut net = Sequential::<f32>::new(&arch, &shape, 42).unwrap();
    let mut opt = Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd), &net).unwrap();
    let len: usize = batch * shape.iter().product::<usize>();
    let x: Vec<f32> = if name == "char-lstm" {
        (0..len).map(|_| rng.gen_range(0..65) as f32).collect()
    } else {
        (0..len).map(|_| rng.gen::<f32>()).collect()
    };
    let y: Vec<f32> = (0..batch * per)
        .map(|_| rng.gen_range(0..classes) as f32)
        .collect();
    let mut j = 0.0;
    for _ in 0..steps {
        j = net
            .loss_and_grad(&x, &y, batch, Cost::LogLikelihood)
            .unwrap();
        opt.step(&mut net, &(), 0.1).unwrap();
    }
    println!("{name}: {steps} steps, last J {j:.6}");
}
