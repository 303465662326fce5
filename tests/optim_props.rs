//! Properties of the optimizers and schedules over random settings.

use backprop::linalg::Matrix;
use backprop::network::{Activation, Cost, Gradients, Layer, Network};
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind, Schedule};
use proptest::prelude::*;

fn one_layer(w: &[f64], b: &[f64]) -> Network<f64> {
    Network {
        layers: vec![Layer {
            weights: Matrix::from_vec(b.len(), w.len() / b.len(), w.to_vec()).unwrap(),
            biases: b.to_vec(),
            activation: Activation::Identity,
        }],
        cost: Cost::Quadratic,
    }
}

fn grads(w: &[f64], b: &[f64]) -> Gradients<f64> {
    Gradients {
        weights: vec![Matrix::from_vec(b.len(), w.len() / b.len(), w.to_vec()).unwrap()],
        biases: vec![b.to_vec()],
    }
}

fn run(
    c: OptimizerConfig,
    w: &[f64],
    b: &[f64],
    gs: &[(Vec<f64>, Vec<f64>)],
    lr: f64,
) -> Network<f64> {
    let mut n = one_layer(w, b);
    let mut o = Optimizer::new(c, &n).unwrap();
    for (gw, gb) in gs {
        o.step(&mut n, &grads(gw, gb), lr).unwrap();
    }
    n
}

/// Initial weights, biases, the gradients of each step, and a learning rate.
type Case = (Vec<f64>, Vec<f64>, Vec<(Vec<f64>, Vec<f64>)>, f64);

fn case() -> impl Strategy<Value = Case> {
    (1usize..4, 1usize..4, 1usize..6).prop_flat_map(|(rows, cols, steps)| {
        (
            proptest::collection::vec(-2.0f64..2.0, rows * cols),
            proptest::collection::vec(-2.0f64..2.0, rows),
            proptest::collection::vec(
                (
                    proptest::collection::vec(-3.0f64..3.0, rows * cols),
                    proptest::collection::vec(-3.0f64..3.0, rows),
                ),
                steps,
            ),
            0.001f64..1.0,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Momentum 0 is plain SGD, bit for bit; so is Nesterov with momentum 0.
    #[test]
    fn zero_momentum_is_sgd((w, b, gs, lr) in case(), wd in 0.0f64..0.1) {
        let mut sgd = OptimizerConfig::new(OptimizerKind::Sgd);
        sgd.weight_decay = wd;
        let expected = run(sgd, &w, &b, &gs, lr);
        for kind in [OptimizerKind::Momentum, OptimizerKind::Nesterov] {
            let mut c = OptimizerConfig::new(kind);
            c.momentum = 0.0;
            c.weight_decay = wd;
            prop_assert_eq!(run(c, &w, &b, &gs, lr), expected.clone());
        }
    }

    /// Without weight decay, AdamW is Adam, bit for bit.
    #[test]
    fn adamw_without_decay_is_adam((w, b, gs, lr) in case()) {
        let adam = run(OptimizerConfig::new(OptimizerKind::Adam), &w, &b, &gs, lr);
        let adamw = run(OptimizerConfig::new(OptimizerKind::AdamW), &w, &b, &gs, lr);
        prop_assert_eq!(adam, adamw);
    }

    /// Adam's first step moves every weight with a non-zero gradient by about lr,
    /// against the gradient's sign (m^ / sqrt(v^) = g / |g|).
    #[test]
    fn adam_first_step_is_lr_against_the_sign((w, b, gs, lr) in case()) {
        let n = run(OptimizerConfig::new(OptimizerKind::Adam), &w, &b, &gs[..1], lr);
        for ((after, before), g) in n.layers[0].weights.as_slice().iter().zip(&w).zip(&gs[0].0) {
            if g.abs() > 1e-3 {
                let moved = after - before;
                prop_assert!((moved + lr * g.signum()).abs() <= 1e-5 * lr, "moved {} for g {}", moved, g);
            }
        }
    }

    /// Stopping after k steps, saving and restoring the state, and continuing gives the
    /// uninterrupted result, bit for bit.
    #[test]
    fn resume_anywhere((w, b, gs, lr) in case(), k in 0usize..6, kind in 0usize..5) {
        let c = OptimizerConfig::new(OptimizerKind::ALL[kind]);
        let expected = run(c, &w, &b, &gs, lr);
        let k = k.min(gs.len());
        let mut n = one_layer(&w, &b);
        let mut first = Optimizer::new(c, &n).unwrap();
        for (gw, gb) in &gs[..k] {
            first.step(&mut n, &grads(gw, gb), lr).unwrap();
        }
        let saved: Vec<(String, Vec<f64>)> =
            first.state_tensors().into_iter().map(|(n, t)| (n, t.to_vec())).collect();
        let mut second = Optimizer::new(c, &n).unwrap();
        second
            .load_state(first.steps(), |name| saved.iter().find(|(n, _)| n == name).map(|(_, t)| t.as_slice()))
            .unwrap();
        for (gw, gb) in &gs[k..] {
            second.step(&mut n, &grads(gw, gb), lr).unwrap();
        }
        prop_assert_eq!(n, expected);
    }

    /// Schedules never increase the rate and stay within [0, lr].
    #[test]
    fn schedules_decay(lr in 1e-4f64..10.0, epochs in 1usize..60, every in 1usize..10, gamma in 0.01f64..1.0) {
        for s in [Schedule::Constant, Schedule::Step { every, gamma }, Schedule::Cosine { epochs }] {
            let mut prev = lr;
            for e in 0..epochs + 3 {
                let now = s.lr_at(lr, e);
                prop_assert!((0.0..=lr).contains(&now) && now <= prev, "{:?} epoch {}: {} after {}", s, e, now, prev);
                prev = now;
            }
            prop_assert_eq!(s.lr_at(lr, 0), lr);
        }
    }
}
