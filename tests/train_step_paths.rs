//! `train_step` takes the network's fused SGD step (what `backprop bench` times) exactly when
//! the optimizer is plain SGD, and the gradients plus the optimizer's step otherwise.

use backprop::network::{Activation, Cost, Gradients, Init, Network, Workspace};
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use backprop::train::train_step;

fn case() -> (Network<f64>, Vec<f64>, Vec<f64>, usize) {
    let net = Network::new(
        &[3, 5, 4, 2],
        &[Activation::Tanh, Activation::Relu, Activation::Softmax],
        Cost::LogLikelihood,
        Init::Xavier,
        3,
    )
    .unwrap();
    let n = 6;
    let x: Vec<f64> = (0..n * 3)
        .map(|i| ((i * 37 % 11) as f64 - 5.0) / 4.0)
        .collect();
    let mut y = vec![0.0; n * 2];
    for e in 0..n {
        y[e * 2 + e % 2] = 1.0;
    }
    (net, x, y, n)
}

fn bits(net: &Network<f64>) -> Vec<u64> {
    net.layers
        .iter()
        .flat_map(|l| l.weights.as_slice().iter().chain(&l.biases))
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn plain_sgd_is_the_fused_step_to_the_bit() {
    let (net, x, y, n) = case();
    let (mut trained, mut fused) = (net.clone(), net);
    let mut opt = Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd), &trained).unwrap();
    let (mut ws, mut grads) = (Workspace::new(&trained, n), Gradients::zeros_like(&trained));
    let mut ws2 = Workspace::new(&fused, n);
    for _ in 0..5 {
        let j1 = train_step(&mut trained, &mut ws, &mut grads, &mut opt, &x, &y, n, 0.3).unwrap();
        let j2 = fused.sgd_train_step(&x, &y, n, &mut ws2, 0.3).unwrap();
        assert_eq!(j1.to_bits(), j2.to_bits());
    }
    assert_eq!(bits(&trained), bits(&fused));
    // The optimizer counted the steps it did not take itself.
    assert_eq!(opt.steps(), 5);
    // The gradients and the optimizer's step round differently: the test tells them apart.
    let (net, ..) = case();
    let mut unfused = net;
    let mut opt2 = Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd), &unfused).unwrap();
    for _ in 0..5 {
        unfused.backprop(&x, &y, n, &mut ws2, &mut grads);
        opt2.step(&mut unfused, &grads, 0.3).unwrap();
    }
    assert_ne!(bits(&trained), bits(&unfused));
}

#[test]
fn sgd_with_weight_decay_takes_the_gradients_and_the_optimizers_step() {
    let (net, x, y, n) = case();
    let (mut trained, mut by_hand) = (net.clone(), net);
    let config = OptimizerConfig {
        weight_decay: 0.01,
        ..OptimizerConfig::new(OptimizerKind::Sgd)
    };
    let mut opt = Optimizer::new(config, &trained).unwrap();
    let mut opt2 = Optimizer::new(config, &by_hand).unwrap();
    assert!(!opt.is_plain_sgd());
    let (mut ws, mut grads) = (Workspace::new(&trained, n), Gradients::zeros_like(&trained));
    let mut g2 = Gradients::zeros_like(&by_hand);
    for _ in 0..5 {
        train_step(&mut trained, &mut ws, &mut grads, &mut opt, &x, &y, n, 0.3).unwrap();
        by_hand.backprop(&x, &y, n, &mut ws, &mut g2);
        opt2.step(&mut by_hand, &g2, 0.3).unwrap();
    }
    assert_eq!(bits(&trained), bits(&by_hand));
    // And the fused step would have given other bits: the test tells the two paths apart.
    let (net, ..) = case();
    let mut fused = net;
    let mut ws3 = Workspace::new(&fused, n);
    for _ in 0..5 {
        fused.sgd_train_step(&x, &y, n, &mut ws3, 0.3).unwrap();
    }
    assert_ne!(bits(&trained), bits(&fused));
}
