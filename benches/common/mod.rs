//! What the benchmarks share: a synthetic data set, and the post's network on the tensor
//! tape (also used by `examples/tape_mlp_steps.rs`, which includes this file).

// Each bench uses a part of this module.
#![allow(dead_code)]

use backprop::network::{Activation, Cost, Network};
use backprop::tensor::{Tape, TensorId};
use rand::{Rng, SeedableRng};

/// `n` examples: `inputs` uniform values in [0, 1) each, and a one-hot row of `classes`.
pub fn data(n: usize, inputs: usize, classes: usize) -> (Vec<f32>, Vec<f32>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let x = (0..n * inputs).map(|_| rng.gen::<f32>()).collect();
    let mut y = vec![0.0; n * classes];
    for row in y.chunks_exact_mut(classes) {
        row[rng.gen_range(0..classes)] = 1.0;
    }
    (x, y)
}

/// The network's parameters on a tape, put on once (W^l as stored, (out, in), and b^l) and
/// kept there from step to step: each step truncates the tape back to them.
pub struct TapeNet {
    pub params: Vec<(TensorId, TensorId)>,
    acts: Vec<Activation>,
    cost: Cost,
}

impl TapeNet {
    pub fn new(net: &Network<f32>, tape: &Tape<f32>) -> Self {
        let params = net
            .layers
            .iter()
            .map(|l| {
                let (rows, cols) = (l.weights.rows(), l.weights.cols());
                let w = tape.var_from_slice([rows, cols], l.weights.as_slice());
                let b = tape.var_from_slice([rows], &l.biases);
                (w.unwrap().id(), b.unwrap().id())
            })
            .collect();
        let acts = net.layers.iter().map(|l| l.activation).collect();
        TapeNet {
            params,
            acts,
            cost: net.cost,
        }
    }

    /// One step through the tape: the batch is copied onto it, goes forward (z = A Wᵀ + b,
    /// then F), the cost is fused with the output activation, the reverse pass gives every
    /// gradient, and w ← w − η dJ/dw is applied to the parameters on the tape.
    pub fn step(&self, tape: &mut Tape<f32>, x: &[f32], y: &[f32], n: usize, eta: f32) -> f32 {
        tape.truncate(2 * self.params.len());
        let (inputs, outputs) = (x.len() / n, y.len() / n);
        let mut a = tape.constant_from_slice([n, inputs], x).unwrap();
        let y = tape.constant_from_slice([n, outputs], y).unwrap();
        let last = self.params.len() - 1;
        for (l, &(w, b)) in self.params.iter().enumerate() {
            let z = a.matmul_t(tape.handle(w)) + tape.handle(b);
            a = if l == last {
                z.cost_from_z(self.cost, self.acts[l], y)
            } else {
                z.activation(self.acts[l])
            };
        }
        let grads = a.backward();
        for &(w, b) in &self.params {
            for p in [w, b] {
                let mut value = tape.value_mut(p);
                let g = grads[p].as_slice();
                value
                    .as_mut_slice()
                    .iter_mut()
                    .zip(g)
                    .for_each(|(v, g)| *v -= eta * g);
            }
        }
        a.item()
    }
}
