//! N training steps of one of `backprop bench`'s MLPs, through the tensor tape or by the
//! post's four equations, for timing from outside (`perf stat -e task-clock`):
//!
//! ```text
//! RAYON_NUM_THREADS=1 perf stat -e task-clock \
//!     target/release/examples/tape_mlp_steps wide tape 200
//! ```

#[path = "../benches/common/mod.rs"]
mod common;

use backprop::network::{Activation, Cost, Gradients, Init, Network, Workspace};
use backprop::tensor::Tape;
use common::{data, TapeNet};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: tape_mlp_steps <nielsen|small|wide> <tape|equations> <steps>";
    let [_, name, path, steps] = &args[..] else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let (sizes, hidden, output, cost, eta, batch): (&[usize], _, _, _, f32, usize) =
        match name.as_str() {
            "nielsen" => (
                &[784, 30, 10],
                Activation::Sigmoid,
                Activation::Sigmoid,
                Cost::Quadratic,
                3.0,
                10,
            ),
            "small" => (
                &[784, 128, 64, 10],
                Activation::Relu,
                Activation::Softmax,
                Cost::LogLikelihood,
                0.1,
                64,
            ),
            "wide" => (
                &[784, 1024, 1024, 10],
                Activation::Relu,
                Activation::Softmax,
                Cost::LogLikelihood,
                0.1,
                256,
            ),
            _ => {
                eprintln!("tape_mlp_steps: unknown network '{name}'; {usage}");
                std::process::exit(2);
            }
        };
    let Ok(steps) = steps.parse::<usize>() else {
        eprintln!("tape_mlp_steps: steps '{steps}' is not a count; {usage}");
        std::process::exit(2);
    };
    let mut acts = vec![hidden; sizes.len() - 2];
    acts.push(output);
    let mut net = Network::<f32>::new(sizes, &acts, cost, Init::Uniform, 1).unwrap();
    let batches = 16;
    let (x, y) = data(batch * batches, sizes[0], sizes[sizes.len() - 1]);
    let (xs, ys) = (batch * sizes[0], batch * sizes[sizes.len() - 1]);
    let batch_of = |s: usize| {
        let b = s % batches;
        (&x[b * xs..(b + 1) * xs], &y[b * ys..(b + 1) * ys])
    };
    let start = Instant::now();
    let mut j = 0.0;
    match path.as_str() {
        "tape" => {
            let mut tape = Tape::new();
            let on_tape = TapeNet::new(&net, &tape);
            for s in 0..steps {
                let (x, y) = batch_of(s);
                j = on_tape.step(&mut tape, x, y, batch, eta);
            }
        }
        "equations" => {
            let mut ws = Workspace::new(&net, batch);
            let mut grads = Gradients::zeros_like(&net);
            for s in 0..steps {
                let (x, y) = batch_of(s);
                j = net.backprop(x, y, batch, &mut ws, &mut grads);
                net.sgd_step(&grads, eta);
            }
        }
        _ => {
            eprintln!("tape_mlp_steps: unknown path '{path}'; {usage}");
            std::process::exit(2);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name} {path}: {steps} steps, {:.0} samples/s (wall), last J {j:.4}",
        (steps * batch) as f64 / secs
    );
}
