//! `Optimizer::step` allocates nothing: its state is allocated once in `new`. Checked with
//! a counting global allocator (this test binary only) that counts the allocations of the
//! calling thread, so the test harness's own threads do not disturb the count.

use backprop::linalg::Matrix;
use backprop::network::{Activation, Cost, Gradients, Layer, Network};
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

#[test]
fn step_allocates_nothing() {
    let mut net = Network {
        layers: vec![
            Layer {
                weights: Matrix::from_vec(30, 64, vec![0.01f32; 30 * 64]).unwrap(),
                biases: vec![0.0; 30],
                activation: Activation::Sigmoid,
            },
            Layer {
                weights: Matrix::from_vec(10, 30, vec![-0.02f32; 300]).unwrap(),
                biases: vec![0.1; 10],
                activation: Activation::Softmax,
            },
        ],
        cost: Cost::LogLikelihood,
    };
    let grads = Gradients {
        weights: vec![
            Matrix::from_vec(30, 64, vec![0.5f32; 30 * 64]).unwrap(),
            Matrix::from_vec(10, 30, vec![-0.25f32; 300]).unwrap(),
        ],
        biases: vec![vec![0.125; 30], vec![1.0; 10]],
    };
    for kind in OptimizerKind::ALL {
        let mut c = OptimizerConfig::new(kind);
        c.weight_decay = 1e-4;
        let mut opt = Optimizer::new(c, &net).unwrap();
        let before = allocations();
        for _ in 0..5 {
            opt.step(&mut net, &grads, 0.01).unwrap();
        }
        let after = allocations();
        assert_eq!(
            after - before,
            0,
            "{kind}: {} allocations in 5 steps",
            after - before
        );
        // The counter works: building an optimizer allocates.
        let _again = Optimizer::new(c, &net).unwrap();
        assert!(allocations() > after);
    }
}
