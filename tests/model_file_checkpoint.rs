//! Checkpoints: a run interrupted, saved to a file, loaded and resumed ends exactly where
//! an uninterrupted run does.

use backprop::linalg::Matrix;
use backprop::model_file::{load, load_checkpoint, save_checkpoint, AnyNetwork, ModelFileError};
use backprop::network::{Activation, Cost, Gradients, Layer, Network};
use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
use backprop::Float;

fn net<T: Float>() -> Network<T> {
    let mk = |r: usize, c: usize, s: f64| {
        Matrix::from_vec(
            r,
            c,
            (0..r * c)
                .map(|k| T::from_f64(((k as f64 + s) * 0.7).sin()))
                .collect(),
        )
        .unwrap()
    };
    Network {
        layers: vec![
            Layer {
                weights: mk(3, 2, 0.0),
                biases: vec![T::from_f64(0.1); 3],
                activation: Activation::Tanh,
            },
            Layer {
                weights: mk(2, 3, 5.0),
                biases: vec![T::from_f64(-0.2); 2],
                activation: Activation::Sigmoid,
            },
        ],
        cost: Cost::CrossEntropy,
    }
}

/// A deterministic stand-in for dJ/dw at step k: depends on the weights, so any
/// difference in the state shows up in later steps.
fn grads<T: Float>(n: &Network<T>, k: usize) -> Gradients<T> {
    let mut g = Gradients::zeros_like(n);
    for (l, (gw, gb)) in n
        .layers
        .iter()
        .zip(g.weights.iter_mut().zip(g.biases.iter_mut()))
    {
        for (o, &w) in gw.as_mut_slice().iter_mut().zip(l.weights.as_slice()) {
            *o = w * w - T::from_f64(0.3 * ((k as f64) * 1.3).cos());
        }
        for (o, &b) in gb.iter_mut().zip(&l.biases) {
            *o = b + T::from_f64(0.1 * k as f64);
        }
    }
    g
}

fn resume_matches<T: Float>(kind: OptimizerKind, wrap: fn(Network<T>) -> AnyNetwork) {
    let mut c = OptimizerConfig::new(kind);
    c.weight_decay = 0.01;
    let total = 8;
    let mut a = net::<T>();
    let mut opt_a = Optimizer::new(c, &a).unwrap();
    for k in 0..total {
        let g = grads(&a, k);
        opt_a.step(&mut a, &g, T::from_f64(0.05)).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    let mut b = net::<T>();
    let mut opt_b = Optimizer::new(c, &b).unwrap();
    for k in 0..3 {
        let g = grads(&b, k);
        opt_b.step(&mut b, &g, T::from_f64(0.05)).unwrap();
    }
    save_checkpoint(&b, &opt_b, &path, &[("epoch".into(), "3".into())], &[]).unwrap();
    drop((b, opt_b));
    let ckpt = load_checkpoint(&path).unwrap();
    let mut b: Network<T> = match (ckpt.model.network.clone(), wrap(net::<T>())) {
        (AnyNetwork::F32(n), AnyNetwork::F32(_)) => n.cast(),
        (AnyNetwork::F64(n), AnyNetwork::F64(_)) => n.cast(),
        _ => panic!("checkpoint changed precision"),
    };
    let mut opt_b = Optimizer::new(c, &b).unwrap();
    ckpt.restore(&mut opt_b).unwrap();
    assert_eq!(opt_b.steps(), 3);
    for k in 3..total {
        let g = grads(&b, k);
        opt_b.step(&mut b, &g, T::from_f64(0.05)).unwrap();
    }
    assert_eq!(b, a, "{kind}");
    assert_eq!(opt_b, opt_a, "{kind}");
    // The checkpoint is also a model file.
    assert_eq!(load(&path).unwrap().network.sizes(), vec![2, 3, 2]);
}

#[test]
fn resume_from_file_equals_uninterrupted_every_optimizer_both_precisions() {
    for kind in OptimizerKind::ALL {
        resume_matches::<f64>(kind, AnyNetwork::F64);
        resume_matches::<f32>(kind, AnyNetwork::F32);
    }
}

#[test]
fn restore_refuses_another_optimizer_or_damaged_state() {
    let n = net::<f64>();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    let adam = Optimizer::new(OptimizerConfig::new(OptimizerKind::Adam), &n).unwrap();
    save_checkpoint(&n, &adam, &path, &[], &[]).unwrap();
    let ckpt = load_checkpoint(&path).unwrap();
    let mut sgd = Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd), &n).unwrap();
    let e = ckpt.restore(&mut sgd).unwrap_err();
    assert!(matches!(e, ModelFileError::Checkpoint { .. }), "{e:?}");
    assert!(
        e.to_string().contains("c.safetensors") && e.to_string().contains("adam"),
        "{e}"
    );
    let mut damaged = ckpt.clone();
    damaged
        .optimizer_state
        .remove("optim.layers.1.weight.exp_avg_sq");
    let mut adam2 = adam.clone();
    let e = damaged.restore(&mut adam2).unwrap_err();
    assert!(
        e.to_string().contains("optim.layers.1.weight.exp_avg_sq"),
        "{e}"
    );
    let mut no_steps = ckpt.clone();
    no_steps.model.metadata.remove("optimizer.steps");
    assert!(no_steps.restore(&mut adam2).is_err());
}
