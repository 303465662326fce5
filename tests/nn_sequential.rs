//! `Sequential`'s gradients against central finite differences (every layer kind alone and
//! composed), against the fully connected network's four equations, and against the mean
//! of its own per-example gradients.

use backprop::linalg::Matrix;
use backprop::network::{Activation, Cost, Gradients, Layer as NetLayer, Network, Workspace};
use backprop::nn::{Arch, NnError, Sequential};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn uniform(n: usize, r: &mut ChaCha8Rng) -> Vec<f64> {
    (0..n).map(|_| r.gen_range(-1.0..1.0)).collect()
}

/// Targets for `cost` on a model's output: class ids per position for log-likelihood,
/// values in (0, 1) otherwise.
fn targets(net: &Sequential<f64>, n: usize, cost: Cost, r: &mut ChaCha8Rng) -> Vec<f64> {
    let out = net.shapes().last().unwrap();
    let k = *out.last().unwrap();
    let per: usize = out.iter().product();
    match cost {
        Cost::LogLikelihood => (0..n * per / k).map(|_| r.gen_range(0..k) as f64).collect(),
        _ => (0..n * per).map(|_| r.gen_range(0.05..0.95)).collect(),
    }
}

/// Largest |analytic - numeric| / max(1, |numeric|) over every parameter, with
/// dJ/dθ ≈ (J(θ + h) - J(θ - h)) / 2h. Dropout masks are redrawn from the same seed for
/// every evaluation, so J is one function of θ.
fn param_check(net: &mut Sequential<f64>, x: &[f64], y: &[f64], n: usize, cost: Cost) -> f64 {
    net.reseed_dropout(5);
    net.loss_and_grad(x, y, n, cost).unwrap();
    let analytic: Vec<Vec<f64>> = net.grads().map(|(_, _, g)| g.to_vec()).collect();
    assert!(
        analytic.iter().flatten().any(|&g| g.abs() > 1e-8),
        "every gradient is zero"
    );
    let h = 1e-6;
    let mut worst: f64 = 0.0;
    for (p, grad) in analytic.iter().enumerate() {
        for (i, &g) in grad.iter().enumerate() {
            let j_at = |delta: f64, net: &mut Sequential<f64>| {
                let orig = {
                    let v = &mut net.params_mut().nth(p).unwrap().2[i];
                    let o = *v;
                    *v = o + delta;
                    o
                };
                net.reseed_dropout(5);
                let j = net.loss_and_grad(x, y, n, cost).unwrap();
                net.params_mut().nth(p).unwrap().2[i] = orig;
                j
            };
            let numeric = (j_at(h, net) - j_at(-h, net)) / (2.0 * h);
            worst = worst.max((g - numeric).abs() / numeric.abs().max(1.0));
        }
    }
    worst
}

/// The input gradient of J = Σ w ⊙ a^L (dJ/da^L = w) from `backward`, against central
/// differences in x.
fn input_check(net: &mut Sequential<f64>, x: &[f64], n: usize) -> f64 {
    let mut r = rng(99);
    net.reseed_dropout(5);
    let out_len = net.forward(x, n, true).unwrap().len();
    let w = uniform(out_len, &mut r);
    net.zero_grads();
    let dx = net.backward(&w).unwrap().to_vec();
    assert_eq!(dx.len(), x.len());
    let h = 1e-6;
    let mut worst: f64 = 0.0;
    let mut xp = x.to_vec();
    for i in 0..x.len() {
        let mut j = |v: f64, net: &mut Sequential<f64>| {
            xp[i] = v;
            net.reseed_dropout(5);
            let a = net.forward(&xp, n, true).unwrap();
            a.iter().zip(&w).map(|(a, w)| a * w).sum::<f64>()
        };
        let numeric = (j(x[i] + h, net) - j(x[i] - h, net)) / (2.0 * h);
        xp[i] = x[i];
        worst = worst.max((dx[i] - numeric).abs() / numeric.abs().max(1.0));
    }
    worst
}

struct Case {
    arch: &'static str,
    input: &'static [usize],
    cost: Cost,
    tokens: Option<usize>,
}

fn check_case(c: &Case, tol: f64) {
    let arch: Arch = c.arch.parse().unwrap();
    let mut net = Sequential::<f64>::new(&arch, c.input, 11).unwrap();
    let n = 3;
    let mut r = rng(3);
    let per: usize = c.input.iter().product();
    let x: Vec<f64> = match c.tokens {
        Some(v) => (0..n * per).map(|_| r.gen_range(0..v) as f64).collect(),
        None => uniform(n * per, &mut r),
    };
    let y = targets(&net, n, c.cost, &mut r);
    if net.num_params() > 0 {
        let pc = param_check(&mut net, &x, &y, n, c.cost);
        assert!(pc < tol, "{}: parameter gradients off by {pc:e}", c.arch);
    }
    if c.tokens.is_none() {
        let ic = input_check(&mut net, &x, n);
        assert!(ic < tol, "{}: input gradient off by {ic:e}", c.arch);
    }
}

#[test]
fn every_layer_alone_matches_finite_differences() {
    use Cost::*;
    let cases = [
        ("Linear(3, 4)", &[3][..], Quadratic),
        ("Linear(3, 4, bias=False)", &[2, 3][..], Quadratic), // on the last axis of (T, F)
        (
            "Conv2d(2, 3, 3, stride=2, padding=1)",
            &[2, 5, 5][..],
            Quadratic,
        ),
        (
            "Conv2d(1, 2, (2, 3), bias=False)",
            &[1, 4, 5][..],
            Quadratic,
        ),
        ("MaxPool2d(2)", &[2, 4, 4][..], Quadratic),
        ("MaxPool2d(3, stride=2)", &[1, 5, 5][..], Quadratic),
        ("AvgPool2d(2)", &[2, 4, 5][..], Quadratic),
        ("Flatten()", &[2, 2, 3][..], Quadratic),
        ("ReLU()", &[7][..], Quadratic),
        ("Sigmoid()", &[7][..], CrossEntropy),
        ("Tanh()", &[2, 3][..], Quadratic),
        ("LeakyReLU(0.2)", &[7][..], Quadratic),
        ("Softmax(dim=-1)", &[4][..], LogLikelihood),
        ("Softmax(dim=-1)", &[3, 4][..], Quadratic),
        ("RNN(3, 4)", &[5, 3][..], Quadratic),
        ("RNN(3, 4, num_layers=3)", &[4, 3][..], Quadratic),
        ("LSTM(3, 4)", &[5, 3][..], Quadratic),
        ("LSTM(2, 3, num_layers=2)", &[4, 2][..], Quadratic),
        ("Dropout(0.4)", &[9][..], Quadratic),
    ];
    for (arch, input, cost) in cases {
        let case = Case {
            arch,
            input,
            cost,
            tokens: None,
        };
        check_case(&case, 1e-7);
    }
    // Embedding: ids have no gradient, its table has.
    check_case(
        &Case {
            arch: "Embedding(5, 3)",
            input: &[4],
            cost: Cost::Quadratic,
            tokens: Some(5),
        },
        1e-7,
    );
}

const LENET: &str = "Conv2d(1, 2, 3, padding=1), ReLU(), MaxPool2d(2), Conv2d(2, 3, 3), Tanh(), \
    AvgPool2d(2), Flatten(), Linear(3, 5), Sigmoid(), Linear(5, 4), Softmax(dim=-1)";
const EMB_LSTM: &str = "Embedding(7, 3), LSTM(3, 4, num_layers=2), Linear(4, 5), Softmax(dim=-1)";
const RNN: &str = "RNN(3, 4, num_layers=2), Tanh(), Linear(4, 2)";
const LSTM_REAL: &str = "LSTM(3, 4), Dropout(0.3), Linear(4, 3), Sigmoid()";

#[test]
fn composed_models_match_finite_differences() {
    let cases = [
        Case {
            arch: LENET,
            input: &[1, 10, 10],
            cost: Cost::LogLikelihood,
            tokens: None,
        },
        Case {
            arch: EMB_LSTM,
            input: &[6],
            cost: Cost::LogLikelihood,
            tokens: Some(7),
        },
        Case {
            arch: RNN,
            input: &[5, 3],
            cost: Cost::Quadratic,
            tokens: None,
        },
        Case {
            arch: LSTM_REAL,
            input: &[5, 3],
            cost: Cost::CrossEntropy,
            tokens: None,
        },
        Case {
            arch: "Linear(4, 6), LeakyReLU(), Linear(6, 3), Softmax(dim=-1)",
            input: &[4],
            cost: Cost::Quadratic, // the general softmax Jacobian
            tokens: None,
        },
        Case {
            arch: "Linear(4, 3), Softmax(dim=-1)",
            input: &[2, 4],
            cost: Cost::LogLikelihood, // fused, over positions
            tokens: None,
        },
    ];
    for c in &cases {
        check_case(c, 1e-7);
    }
}

/// The same MLP as a `Network` (the post's four equations) and as a `Sequential`, with
/// the Sequential's weights copied across: J and every gradient agree to 1e-12.
#[test]
fn mlp_agrees_with_the_network_to_1e12() {
    use Activation::*;
    let cases: [(&[Activation], Cost); 6] = [
        (&[Sigmoid, Sigmoid, Sigmoid], Cost::Quadratic),
        (&[Sigmoid, Sigmoid, Sigmoid], Cost::CrossEntropy),
        (&[Sigmoid, Tanh, Softmax], Cost::LogLikelihood),
        (&[Tanh, Relu, Identity], Cost::Quadratic),
        (&[Tanh, Sigmoid, Softmax], Cost::Quadratic),
        (&[Relu, LeakyRelu, Softmax], Cost::LogLikelihood),
    ];
    let sizes = [3, 5, 4, 3];
    for (acts, cost) in cases {
        let arch: String = (0..3)
            .map(|i| {
                let act = match acts[i] {
                    Sigmoid => ", Sigmoid()",
                    Tanh => ", Tanh()",
                    Relu => ", ReLU()",
                    LeakyRelu => ", LeakyReLU()",
                    Softmax => ", Softmax(dim=-1)",
                    Identity => "",
                };
                format!("Linear({}, {}){act}", sizes[i], sizes[i + 1])
            })
            .collect::<Vec<_>>()
            .join(", ");
        let arch: Arch = arch.parse().unwrap();
        let mut seq = Sequential::<f64>::new(&arch, &[3], 4).unwrap();
        let params: Vec<Vec<f64>> = seq.params().map(|(_, _, v)| v.to_vec()).collect();
        let layers = (0..3)
            .map(|i| NetLayer {
                weights: Matrix::from_vec(sizes[i + 1], sizes[i], params[2 * i].clone()).unwrap(),
                biases: params[2 * i + 1].clone(),
                activation: acts[i],
            })
            .collect();
        let net = Network::from_layers(layers, cost).unwrap();
        let n = 4;
        let mut r = rng(8);
        let x = uniform(n * 3, &mut r);
        let y = targets(&seq, n, cost, &mut r);
        // The network takes one-hot rows for log-likelihood.
        let y_net: Vec<f64> = match cost {
            Cost::LogLikelihood => y
                .iter()
                .flat_map(|&c| (0..3).map(move |k| if k == c as usize { 1.0 } else { 0.0 }))
                .collect(),
            _ => y.clone(),
        };
        let (mut ws, mut g) = (Workspace::new(&net, n), Gradients::zeros_like(&net));
        let j_net = net.backprop(&x, &y_net, n, &mut ws, &mut g);
        let j_seq = seq.loss_and_grad(&x, &y, n, cost).unwrap();
        assert!(
            (j_net - j_seq).abs() < 1e-12,
            "{acts:?} {cost}: J {j_net} vs {j_seq}"
        );
        let grads: Vec<Vec<f64>> = seq.grads().map(|(_, _, v)| v.to_vec()).collect();
        for i in 0..3 {
            for (a, b) in g.weights[i].as_slice().iter().zip(&grads[2 * i]) {
                assert!((a - b).abs() < 1e-12, "{acts:?} {cost}: dW{i} {a} vs {b}");
            }
            for (a, b) in g.biases[i].iter().zip(&grads[2 * i + 1]) {
                assert!((a - b).abs() < 1e-12, "{acts:?} {cost}: db{i} {a} vs {b}");
            }
        }
    }
}

#[test]
fn batch_gradient_is_the_mean_of_per_example_gradients() {
    let cases = [
        (LENET, &[1, 10, 10][..], Cost::LogLikelihood, None),
        (EMB_LSTM, &[6][..], Cost::LogLikelihood, Some(7)),
        (
            "Embedding(7, 3), Linear(3, 4), Tanh(), Linear(4, 2)",
            &[5][..],
            Cost::Quadratic,
            Some(7),
        ),
        (RNN, &[5, 3][..], Cost::Quadratic, None),
        (
            "Linear(3, 4), Sigmoid()",
            &[2, 3][..],
            Cost::CrossEntropy,
            None,
        ),
    ];
    for (arch, input, cost, tokens) in cases {
        let arch: Arch = arch.parse().unwrap();
        let mut net = Sequential::<f64>::new(&arch, input, 2).unwrap();
        let n = 5;
        let mut r = rng(6);
        let per: usize = input.iter().product();
        let x: Vec<f64> = match tokens {
            Some(v) => (0..n * per).map(|_| r.gen_range(0..v) as f64).collect(),
            None => uniform(n * per, &mut r),
        };
        let y = targets(&net, n, cost, &mut r);
        let j = net.loss_and_grad(&x, &y, n, cost).unwrap();
        let batch: Vec<Vec<f64>> = net.grads().map(|(_, _, g)| g.to_vec()).collect();
        let (losses, per_ex) = net.per_example_gradients(&x, &y, n, cost).unwrap();
        assert_eq!((losses.len(), per_ex.len()), (n, n));
        let mean_loss = losses.iter().sum::<f64>() / n as f64;
        assert!((mean_loss - j).abs() < 1e-12, "{arch}: {mean_loss} vs {j}");
        // The examples differ, so their gradients do.
        assert_ne!(per_ex[0][0].1, per_ex[1][0].1);
        for (p, b) in batch.iter().enumerate() {
            let name = &per_ex[0][p].0;
            assert_eq!(name, net.params().nth(p).unwrap().0);
            for (i, &b) in b.iter().enumerate() {
                let mean = per_ex.iter().map(|g| g[p].1[i]).sum::<f64>() / n as f64;
                assert!(
                    (mean - b).abs() < 1e-12,
                    "{arch} {name}[{i}]: {mean} vs {b}"
                );
            }
        }
        // The per-example pass leaves no gradients behind.
        assert!(net.grads().all(|(_, _, g)| g.iter().all(|&v| v == 0.0)));
    }
}

#[test]
fn parameters_are_named_shaped_and_drawn_as_pytorch_does() {
    let arch: Arch = EMB_LSTM.parse().unwrap();
    let net = Sequential::<f64>::new(&arch, &[6], 1).unwrap();
    let names: Vec<&str> = net.params().map(|p| p.0).collect();
    assert_eq!(names[0], "0.weight");
    assert_eq!(
        names[1..5],
        [
            "1.weight_ih_l0",
            "1.weight_hh_l0",
            "1.bias_ih_l0",
            "1.bias_hh_l0"
        ]
    );
    assert_eq!(names[9..], ["2.weight", "2.bias"]);
    for (name, shape, v) in net.params() {
        assert_eq!(v.len(), shape.iter().product::<usize>(), "{name}");
        if name.starts_with("1.") {
            // U(-1/sqrt(4), 1/sqrt(4))
            assert!(v.iter().all(|v| v.abs() < 0.5), "{name}");
        }
    }
    // N(0, 1) embeddings: some beyond the uniform bound.
    assert!(net.params().next().unwrap().2.iter().any(|v| v.abs() > 0.5));
    // The same seed, the same model; another seed, another.
    let again = Sequential::<f64>::new(&arch, &[6], 1).unwrap();
    assert!(net.params().zip(again.params()).all(|(a, b)| a.2 == b.2));
    let other = Sequential::<f64>::new(&arch, &[6], 2).unwrap();
    assert!(net.params().zip(other.params()).any(|(a, b)| a.2 != b.2));
}

#[test]
fn dropout_is_the_identity_in_evaluation_and_scales_in_training() {
    let arch: Arch = "Dropout(0.25)".parse().unwrap();
    let mut net = Sequential::<f64>::new(&arch, &[1000], 1).unwrap();
    let x = vec![1.0; 1000];
    assert_eq!(net.predict(&x, 1).unwrap(), x);
    let y = net.forward(&x, 1, true).unwrap().to_vec();
    let dropped = y.iter().filter(|&&v| v == 0.0).count();
    assert!(y.iter().all(|&v| v == 0.0 || v == 1.0 / 0.75));
    assert!(
        (200..300).contains(&dropped),
        "{dropped} of 1000 dropped at p = 0.25"
    );
}

#[test]
fn bad_batches_are_errors_not_panics() {
    let arch: Arch = EMB_LSTM.parse().unwrap();
    let mut net = Sequential::<f64>::new(&arch, &[3], 1).unwrap();
    let ll = Cost::LogLikelihood;
    assert_eq!(net.backward(&[0.0]).unwrap_err(), NnError::NoForward);
    assert_eq!(
        net.loss_and_grad(&[], &[], 0, ll).unwrap_err(),
        NnError::EmptyBatch
    );
    let e = net
        .loss_and_grad(&[1.0, 2.0], &[0.0; 3], 1, ll)
        .unwrap_err();
    assert_eq!(e.to_string(), "inputs: expected 3 values, got 2");
    let e = net
        .loss_and_grad(&[1.0, 7.0, 2.0], &[0.0; 3], 1, ll)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "inputs: value 1 (7) is not a token id from 0 to 6"
    );
    let e = net
        .loss_and_grad(&[1.0, 0.5, 2.0], &[0.0; 3], 1, ll)
        .unwrap_err();
    assert!(matches!(e, NnError::TokenId { index: 1, .. }), "{e}");
    let e = net
        .loss_and_grad(&[1.0, 2.0, 3.0], &[0.0, 5.0, 1.0], 1, ll)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "targets: value 1 (5) is not a class from 0 to 4"
    );
    let e = net
        .loss_and_grad(&[1.0, 2.0, 3.0], &[0.0], 1, ll)
        .unwrap_err();
    assert_eq!(e.to_string(), "targets: expected 3 values, got 1");
    let e = net
        .per_example_gradients(&[1.0, 2.0, 3.0], &[0.0], 1, ll)
        .unwrap_err();
    assert_eq!(e.to_string(), "targets: expected 3 values, got 1");
    let e = net
        .per_example_gradients(&[1.0, 2.0], &[0.0; 3], 1, ll)
        .unwrap_err();
    assert_eq!(e.to_string(), "inputs: expected 3 values, got 2");
    // A shape that does not fit, and an input with a zero size.
    let arch: Arch = "Linear(4, 2)".parse().unwrap();
    assert!(Sequential::<f64>::new(&arch, &[3], 1).is_err());
    assert!(Sequential::<f64>::new(&arch, &[0, 4], 1).is_err());
}

/// A model with every kind of layer that takes real values (the workspace reused across
/// batch sizes) gives what a fresh model gives.
#[test]
fn a_reused_workspace_gives_what_a_fresh_one_gives() {
    let cases = [
        (LENET, &[1, 10, 10][..], Cost::LogLikelihood, None),
        (EMB_LSTM, &[6][..], Cost::LogLikelihood, Some(7)),
        (RNN, &[5, 3][..], Cost::Quadratic, None),
        (
            "LSTM(3, 4, num_layers=2), Dropout(0.2), Linear(4, 3), Sigmoid()",
            &[5, 3][..],
            Cost::CrossEntropy,
            None,
        ),
    ];
    for (arch, input, cost, tokens) in cases {
        let arch: Arch = arch.parse().unwrap();
        let mut used = Sequential::<f64>::new(&arch, input, 3).unwrap();
        let mut fresh = Sequential::<f64>::new(&arch, input, 3).unwrap();
        let per: usize = input.iter().product();
        let mut r = rng(12);
        let batch = |n: usize, r: &mut ChaCha8Rng| -> Vec<f64> {
            match tokens {
                Some(v) => (0..n * per).map(|_| r.gen_range(0..v) as f64).collect(),
                None => uniform(n * per, r),
            }
        };
        let (x4, x2) = (batch(4, &mut r), batch(2, &mut r));
        let (y4, y2) = (
            targets(&used, 4, cost, &mut r),
            targets(&used, 2, cost, &mut r),
        );
        used.loss_and_grad(&x4, &y4, 4, cost).unwrap();
        used.per_example_gradients(&x4, &y4, 4, cost).unwrap();
        used.reseed_dropout(1);
        fresh.reseed_dropout(1);
        let a = used.loss_and_grad(&x2, &y2, 2, cost).unwrap();
        let b = fresh.loss_and_grad(&x2, &y2, 2, cost).unwrap();
        assert_eq!(a, b, "{arch}");
        assert!(
            used.grads().zip(fresh.grads()).all(|(a, b)| a.2 == b.2),
            "{arch}"
        );
        assert_eq!(
            used.predict(&x2, 2).unwrap(),
            fresh.predict(&x2, 2).unwrap()
        );
    }
}

#[test]
fn an_embedding_first_layer_has_no_input_gradient() {
    let arch: Arch = "Embedding(4, 2), Linear(2, 1)".parse().unwrap();
    let mut net = Sequential::<f64>::new(&arch, &[3], 1).unwrap();
    net.forward(&[0.0, 3.0, 3.0], 1, false).unwrap();
    assert!(net.backward(&[1.0, 1.0, 1.0]).unwrap().is_empty());
    // d(Σ outputs)/d(table row 3) = 2 W (row 3 used twice); row 1 unused.
    let w = net.param("1.weight").unwrap().to_vec();
    assert_eq!(net.grad("0.weight").unwrap()[6..], [2.0 * w[0], 2.0 * w[1]]);
    assert_eq!(net.grad("0.weight").unwrap()[2..4], [0.0, 0.0]);
}

/// Plain gradient descent on θ with [`Sequential::params_and_grads_mut`].
fn sgd(
    net: &mut Sequential<f64>,
    x: &[f64],
    y: &[f64],
    n: usize,
    cost: Cost,
    eta: f64,
    steps: usize,
) -> f64 {
    let mut j = f64::NAN;
    for _ in 0..steps {
        j = net.loss_and_grad(x, y, n, cost).unwrap();
        for (_, p, g) in net.params_and_grads_mut() {
            p.iter_mut().zip(g).for_each(|(p, g)| *p -= eta * g);
        }
    }
    j
}

#[test]
fn models_train_xor_and_a_repeating_sequence() {
    // XOR with a small MLP: every example right after training.
    let arch: Arch = "Linear(2, 8), Tanh(), Linear(8, 2), Softmax(dim=-1)"
        .parse()
        .unwrap();
    let mut net = Sequential::<f64>::new(&arch, &[2], 1).unwrap();
    let x = [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
    let y = [0.0, 1.0, 1.0, 0.0];
    let j0 = net.loss(&x, &y, 4, Cost::LogLikelihood).unwrap();
    let j = sgd(&mut net, &x, &y, 4, Cost::LogLikelihood, 0.5, 2000);
    assert!(j < 0.05 && j < j0 / 10.0, "XOR: J from {j0} to {j}");
    let a = net.predict(&x, 4).unwrap();
    for (e, &c) in y.iter().enumerate() {
        assert!(
            a[2 * e + c as usize] > 0.9,
            "XOR example {e}: {:?}",
            &a[2 * e..2 * e + 2]
        );
    }
    // Next-token prediction on 0 1 2 3 0 1 2 3 ...: an Embedding + LSTM learns it.
    let arch: Arch = "Embedding(4, 4), LSTM(4, 8), Linear(8, 4), Softmax(dim=-1)"
        .parse()
        .unwrap();
    let mut net = Sequential::<f64>::new(&arch, &[6], 2).unwrap();
    let x: Vec<f64> = (0..4 * 6).map(|i| ((i / 6 + i % 6) % 4) as f64).collect();
    let y: Vec<f64> = x.iter().map(|&t| (t + 1.0) % 4.0).collect();
    let j0 = net.loss(&x, &y, 4, Cost::LogLikelihood).unwrap();
    let j = sgd(&mut net, &x, &y, 4, Cost::LogLikelihood, 1.0, 300);
    assert!(j < 0.1 && j0 > 1.0, "sequence: J from {j0} to {j}");
}

/// The same model in f32 and f64 (f64's parameters rounded to f32): J and the gradients
/// agree to f32's precision.
#[test]
fn f32_agrees_with_f64() {
    let arch: Arch = LENET.parse().unwrap();
    let mut wide = Sequential::<f64>::new(&arch, &[1, 10, 10], 5).unwrap();
    let mut narrow = Sequential::<f32>::new(&arch, &[1, 10, 10], 5).unwrap();
    for ((_, _, w), (_, _, n)) in wide.params_mut().zip(narrow.params_mut()) {
        for (w, n) in w.iter_mut().zip(n.iter_mut()) {
            *w = *n as f64; // the same draws, rounded alike
        }
    }
    let mut r = rng(4);
    let x = uniform(3 * 100, &mut r);
    let y = targets(&wide, 3, Cost::LogLikelihood, &mut r);
    let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let yf: Vec<f32> = y.iter().map(|&v| v as f32).collect();
    let j64 = wide.loss_and_grad(&x, &y, 3, Cost::LogLikelihood).unwrap();
    let j32 = narrow
        .loss_and_grad(&xf, &yf, 3, Cost::LogLikelihood)
        .unwrap();
    assert!((j64 - j32 as f64).abs() < 1e-5, "{j64} vs {j32}");
    for ((name, _, a), (_, _, b)) in wide.grads().zip(narrow.grads()) {
        for (a, &b) in a.iter().zip(b) {
            assert!((a - b as f64).abs() < 1e-4, "{name}: {a} vs {b}");
        }
    }
}

/// Softmax + log-likelihood is fused: with logits (1000, 0) and class 1, a softmax output
/// rounds to (1, 0) and -ln a_1 would be infinite, but C = ln Σ e^z - z_1 = 1000 exactly
/// and δ = a - y = (1, -1) at the logits.
#[test]
fn softmax_with_log_likelihood_is_stable_for_large_logits() {
    let arch: Arch = "Linear(1, 2), Softmax(dim=-1)".parse().unwrap();
    let mut net = Sequential::<f64>::new(&arch, &[1], 1).unwrap();
    net.param_mut("0.weight")
        .unwrap()
        .copy_from_slice(&[1000.0, 0.0]);
    net.param_mut("0.bias")
        .unwrap()
        .copy_from_slice(&[0.0, 0.0]);
    let j = net
        .loss_and_grad(&[1.0], &[1.0], 1, Cost::LogLikelihood)
        .unwrap();
    assert_eq!(j, 1000.0);
    // dJ/dW = δ xᵀ with x = 1, dJ/db = δ.
    assert_eq!(net.grad("0.weight").unwrap(), [1.0, -1.0]);
    assert_eq!(net.grad("0.bias").unwrap(), [1.0, -1.0]);
    // Sigmoid + cross-entropy likewise: z = -1000, y = 1 gives C = softplus(z) - y z = 1000.
    let arch: Arch = "Linear(1, 1), Sigmoid()".parse().unwrap();
    let mut net = Sequential::<f64>::new(&arch, &[1], 1).unwrap();
    net.param_mut("0.weight").unwrap()[0] = -1000.0;
    net.param_mut("0.bias").unwrap()[0] = 0.0;
    let j = net
        .loss_and_grad(&[1.0], &[1.0], 1, Cost::CrossEntropy)
        .unwrap();
    assert_eq!(j, 1000.0);
    assert_eq!(net.grad("0.bias").unwrap(), [-1.0]); // δ = a - y = 0 - 1
}

/// Through the model seam a `Sequential` is saved and loaded by its PyTorch names, and an
/// optimizer steps it exactly as it steps any model: plain SGD is w <- w - eta dJ/dw.
#[test]
fn the_model_seam_saves_loads_and_steps_a_sequential() {
    use backprop::model::Model;
    use backprop::optim::{Optimizer, OptimizerConfig, OptimizerKind};
    let arch: Arch = "Conv2d(1, 2, 3), ReLU(), Flatten(), Linear(8, 3), Softmax(dim=-1)"
        .parse()
        .unwrap();
    let mut a = Sequential::<f64>::new(&arch, &[1, 4, 4], 1).unwrap();
    let x: Vec<f64> = (0..32).map(|i| ((i * 7) % 11) as f64 / 11.0).collect();
    let y = [2.0, 0.0];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cnn.safetensors");
    let meta = [("arch".to_string(), arch.to_string())];
    backprop::model_file::save_named(&a, &path, &meta).unwrap();
    let mut b = Sequential::<f64>::new(&arch, &[1, 4, 4], 99).unwrap();
    assert_ne!(b.param("0.weight"), a.param("0.weight"));
    let stored = backprop::model_file::load_named(&mut b, &path).unwrap();
    assert_eq!(stored["arch"], arch.to_string());
    assert_eq!(b.predict(&x, 2).unwrap(), a.predict(&x, 2).unwrap());

    a.loss_and_grad(&x, &y, 2, Cost::LogLikelihood).unwrap();
    let before: Vec<Vec<f64>> = a.params().map(|(_, _, v)| v.to_vec()).collect();
    let grads: Vec<Vec<f64>> = a.grads().map(|(_, _, g)| g.to_vec()).collect();
    let mut sgd = Optimizer::new(OptimizerConfig::new(OptimizerKind::Sgd), &a).unwrap();
    let names: Vec<String> = a.param_infos().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["0.weight", "0.bias", "3.weight", "3.bias"]);
    sgd.step(&mut a, &(), 0.5).unwrap();
    for ((w0, g), (_, _, w1)) in before.iter().zip(&grads).zip(a.params()) {
        for ((w0, g), w1) in w0.iter().zip(g).zip(w1) {
            assert_eq!(*w1, w0 - 0.5 * g);
        }
    }
}

#[test]
fn elementwise_layers_and_pools_split_over_threads_give_every_example_its_own_result() {
    // 64 examples of 4x28x28: every elementwise layer and the pool are split into chunks
    // over the pool's threads; one example alone is not.
    let arch: Arch = "Sigmoid(), MaxPool2d(2), ReLU(), Tanh(), Flatten(), Linear(784, 10)"
        .parse()
        .unwrap();
    let (n, per) = (64, 4 * 28 * 28);
    let mut r = rng(11);
    let x: Vec<f32> = (0..n * per).map(|_| r.gen::<f32>() * 4.0 - 2.0).collect();
    let w: Vec<f32> = (0..n * 10).map(|_| r.gen::<f32>() - 0.5).collect();
    let pass = |threads: usize, x: &[f32], w: &[f32], n: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut net = Sequential::<f32>::new(&arch, &[4, 28, 28], 3).unwrap();
            let y = net.forward(x, n, true).unwrap().to_vec();
            net.zero_grads();
            let dx = net.backward(w).unwrap().to_vec();
            (y, dx)
        })
    };
    let one = pass(1, &x, &w, n);
    for threads in [2, 3] {
        assert!(
            pass(threads, &x, &w, n) == one,
            "{threads} threads differ from one"
        );
    }
    let mut nonzero = 0;
    for e in 0..n {
        let (y, dx) = pass(1, &x[e * per..(e + 1) * per], &w[e * 10..(e + 1) * 10], 1);
        for (a, b) in y.iter().zip(&one.0[e * 10..(e + 1) * 10]) {
            assert!((a - b).abs() <= 1e-5, "example {e}: output {a} vs {b}");
        }
        for (a, b) in dx.iter().zip(&one.1[e * per..(e + 1) * per]) {
            assert!(
                (a - b).abs() <= 1e-6,
                "example {e}: input gradient {a} vs {b}"
            );
            nonzero += usize::from(*a != 0.0);
        }
    }
    // A quarter of the inputs are their window's maximum; of those, ReLU passes about half.
    assert!(nonzero > n * per / 16, "{nonzero} nonzero input gradients");
}

/// A batch large enough that the cost runs its examples on the pool's threads gives each
/// example the cost, and the batch the gradient, that small batches (run in one pass) give.
#[test]
fn large_batches_cost_as_their_parts() {
    let arch: Arch = "Embedding(40, 4), LSTM(4, 8), Linear(8, 40), Softmax(dim=-1)"
        .parse()
        .unwrap();
    let (n, t) = (20, 50); // 20 x 50 x 40 outputs: over the split threshold
    let mut net = Sequential::<f64>::new(&arch, &[t], 9).unwrap();
    let mut r = rng(10);
    let x: Vec<f64> = (0..n * t).map(|_| r.gen_range(0..40) as f64).collect();
    let y: Vec<f64> = (0..n * t).map(|_| r.gen_range(0..40) as f64).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let j = pool.install(|| net.loss_and_grad(&x, &y, n, Cost::LogLikelihood).unwrap());
    let losses = net.workspace().losses().to_vec();
    let whole: Vec<Vec<f64>> = net.grads().map(|(_, _, g)| g.to_vec()).collect();
    let mut sum: Vec<Vec<f64>> = whole.iter().map(|g| vec![0.0; g.len()]).collect();
    for part in 0..n / 2 {
        let rows = part * 2 * t..(part + 1) * 2 * t;
        let jp = net
            .loss_and_grad(&x[rows.clone()], &y[rows], 2, Cost::LogLikelihood)
            .unwrap();
        let lp = net.workspace().losses();
        for (e, &l) in lp.iter().enumerate() {
            let want = losses[part * 2 + e];
            assert!(
                (l - want).abs() < 1e-12,
                "example {}: {l} vs {want}",
                part * 2 + e
            );
        }
        assert!((jp - (lp[0] + lp[1]) / 2.0).abs() < 1e-12);
        for (s, (_, _, g)) in sum.iter_mut().zip(net.grads()) {
            s.iter_mut()
                .zip(g)
                .for_each(|(s, &g)| *s += g * 2.0 / n as f64);
        }
    }
    assert!((j - losses.iter().sum::<f64>() / n as f64).abs() < 1e-12);
    for (w, s) in whole.iter().zip(&sum) {
        for (a, b) in w.iter().zip(s) {
            assert!((a - b).abs() < 1e-12, "gradient {a} vs {b}");
        }
    }
}
