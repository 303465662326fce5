//! The network's gradients against central finite differences, against the mean of the
//! per-example gradients, and across precisions; the matched-pair shortcut of Equation 4
//! against the general path.

use backprop::linalg::Matrix;
use backprop::network::{
    general_output_delta, gradcheck, Activation, Cost, Gradients, Init, Layer, Network, Workspace,
};
use proptest::prelude::*;
use Activation::*;

/// The seed's Figure 2 (sizes 2, 4, 4, 3) with fixed weights w^l_jk = 0.8 sin(7l + 3j + k)
/// and biases b^l_j = 0.5 cos(l + j): deterministic, varied, no symmetry.
fn figure2(acts: [Activation; 3], cost: Cost) -> Network<f64> {
    let sizes = [2, 4, 4, 3];
    let layers = (0..3)
        .map(|i| {
            let (rows, cols, l) = (sizes[i + 1], sizes[i], (i + 2) as f64);
            let w = (0..rows * cols)
                .map(|p| {
                    0.8 * (7.0 * l + 3.0 * (p / cols + 1) as f64 + (p % cols + 1) as f64).sin()
                })
                .collect();
            Layer {
                weights: Matrix::from_vec(rows, cols, w).unwrap(),
                biases: (0..rows)
                    .map(|j| 0.5 * (l + (j + 1) as f64).cos())
                    .collect(),
                activation: acts[i],
            }
        })
        .collect();
    Network::from_layers(layers, cost).unwrap()
}

/// Three examples x^(i) in R^2 and targets y^(i) in R^3 (one-hot, as log-likelihood needs).
const X: [f64; 6] = [0.3, -0.7, 1.2, 0.4, -0.5, -0.9];
const Y: [f64; 9] = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0];

#[test]
fn figure2_gradients_match_finite_differences_to_1e7() {
    let cases = [
        ([Sigmoid, Sigmoid, Sigmoid], Cost::Quadratic),
        ([Sigmoid, Sigmoid, Sigmoid], Cost::CrossEntropy),
        ([Sigmoid, Sigmoid, Softmax], Cost::LogLikelihood),
        ([Tanh, Tanh, Identity], Cost::Quadratic),
        ([Tanh, Sigmoid, Softmax], Cost::Quadratic), // the general softmax Jacobian path
        ([Relu, LeakyRelu, Softmax], Cost::LogLikelihood),
    ];
    for (acts, cost) in cases {
        let net = figure2(acts, cost);
        let check = gradcheck(&net, &X, &Y, 3).unwrap();
        assert_eq!(check.parameters, 4 * 2 + 4 + 4 * 4 + 4 + 3 * 4 + 3);
        assert!(check.max_rel_error < 1e-7, "{acts:?} {cost}: {check:?}");
    }
}

#[test]
fn figure2_known_values() {
    // One example through a network whose every weight is 0 and bias is 0: z^l = 0 for every
    // layer, sigmoid gives a = 1/2 everywhere, softmax gives a^4 = 1/3 each.
    let zero = |rows, cols, act| Layer {
        weights: Matrix::<f64>::zeros(rows, cols),
        biases: vec![0.0; rows],
        activation: act,
    };
    let net = Network::from_layers(
        vec![
            zero(4, 2, Sigmoid),
            zero(4, 4, Sigmoid),
            zero(3, 4, Softmax),
        ],
        Cost::LogLikelihood,
    )
    .unwrap();
    let mut ws = Workspace::new(&net, 1);
    let mut g = Gradients::zeros_like(&net);
    let j = net.backprop(&[1.0, 2.0], &[0.0, 1.0, 0.0], 1, &mut ws, &mut g);
    // C = -ln(1/3)
    assert!((j - 3f64.ln()).abs() < 1e-15);
    // delta^4 = a^4 - y = (1/3, -2/3, 1/3); dC/dw^4_jk = delta^4_j a^3_k = delta^4_j / 2
    let d4 = [1.0 / 3.0, -2.0 / 3.0, 1.0 / 3.0];
    for (j, d) in d4.iter().enumerate() {
        assert!((g.biases[2][j] - d).abs() < 1e-15);
        for k in 0..4 {
            assert!((g.weights[2][(j, k)] - d / 2.0).abs() < 1e-15);
        }
    }
    // Equation 3 with W^4 = 0: delta^3 = delta^2 = 0, so dC/dW^3 = dC/dW^2 = 0.
    assert!(g.weights[1]
        .as_slice()
        .iter()
        .chain(g.weights[0].as_slice())
        .all(|&v| v == 0.0));
}

fn activation_for(i: u8, hidden: bool) -> Activation {
    let all = if hidden {
        &[Identity, Sigmoid, Tanh, Relu, LeakyRelu][..]
    } else {
        &Activation::ALL[..]
    };
    all[i as usize % all.len()]
}

/// A random, valid network, batch and targets: sizes 1..6 per layer, 2..4 layers.
fn random_case() -> impl Strategy<Value = (Network<f64>, Vec<f64>, Vec<f64>, usize)> {
    (
        prop::collection::vec(1usize..6, 2..5),
        prop::collection::vec(any::<u8>(), 4),
        0u8..3,
        1usize..5,
        any::<u64>(),
    )
        .prop_flat_map(|(sizes, acts, cost_i, n, seed)| {
            let cost = Cost::ALL[cost_i as usize];
            let layers = sizes.len() - 1;
            let mut acts: Vec<Activation> = (0..layers)
                .map(|i| activation_for(acts[i], i + 1 < layers))
                .collect();
            if let Some(a) = cost.matched_activation() {
                acts[layers - 1] = a;
            }
            let net = Network::<f64>::new(&sizes, &acts, cost, Init::Scaled, seed).unwrap();
            let (n_in, n_out) = (sizes[0], sizes[layers]);
            let x = prop::collection::vec(-2.0f64..2.0, n * n_in);
            let y = if cost == Cost::LogLikelihood {
                prop::collection::vec(0..n_out, n)
                    .prop_map(move |cls| {
                        let mut y = vec![0.0; cls.len() * n_out];
                        cls.iter()
                            .enumerate()
                            .for_each(|(i, &c)| y[i * n_out + c] = 1.0);
                        y
                    })
                    .boxed()
            } else {
                prop::collection::vec(0.0f64..1.0, n * n_out).boxed()
            };
            (Just(net), x, y, Just(n))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn backprop_matches_finite_differences((net, x, y, n) in random_case()) {
        // A central difference across a kink of relu or leaky relu measures the mean of the
        // two slopes, not the derivative: such points are not differentiable, so skip them
        // (proptest's shrinking walks straight to them, e.g. an all-zero input row).
        prop_assume!(kink_distance(&net, &x, n) > 1e-3);
        let check = gradcheck(&net, &x, &y, n).unwrap();
        prop_assert!(check.max_rel_error < 1e-5, "{:?}", check);
    }

    #[test]
    fn batch_gradient_is_mean_of_per_example((net, x, y, n) in random_case()) {
        let mut ws = Workspace::new(&net, n);
        let mut g = Gradients::zeros_like(&net);
        let j = net.backprop(&x, &y, n, &mut ws, &mut g);
        let (losses, per) = net.per_example_gradients(&x, &y, n, &mut ws).unwrap();
        prop_assert_eq!(per.len(), n);
        let mean_loss = losses.iter().sum::<f64>() / n as f64;
        prop_assert!((mean_loss - j).abs() <= 1e-12 * (1.0 + j.abs()));
        for li in 0..net.layers.len() {
            for (p, &gw) in g.weights[li].as_slice().iter().enumerate() {
                let mean = per.iter().map(|e| e.weights[li].as_slice()[p]).sum::<f64>() / n as f64;
                prop_assert!((mean - gw).abs() <= 1e-12 * (1.0 + gw.abs()), "w layer {} #{}: {} vs {}", li, p, mean, gw);
            }
            for (p, &gb) in g.biases[li].iter().enumerate() {
                let mean = per.iter().map(|e| e.biases[li][p]).sum::<f64>() / n as f64;
                prop_assert!((mean - gb).abs() <= 1e-12 * (1.0 + gb.abs()));
            }
        }
        // Each example's gradient is the batch gradient of that example alone.
        for i in 0..n {
            let (n_in, n_out) = (x.len() / n, y.len() / n);
            let mut gi = Gradients::zeros_like(&net);
            let ci = net.backprop(&x[i * n_in..(i + 1) * n_in], &y[i * n_out..(i + 1) * n_out], 1, &mut ws, &mut gi);
            prop_assert!((ci - losses[i]).abs() <= 1e-12 * (1.0 + ci.abs()));
            for li in 0..net.layers.len() {
                for (a, b) in gi.weights[li].as_slice().iter().zip(per[i].weights[li].as_slice()) {
                    prop_assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()));
                }
            }
        }
    }

    #[test]
    fn f32_and_f64_agree_to_f32_precision((net, x, y, n) in random_case()) {
        let net32: Network<f32> = net.cast();
        let net64: Network<f64> = net32.cast(); // the same (f32-representable) weights
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let y32: Vec<f32> = y.iter().map(|&v| v as f32).collect();
        let x64: Vec<f64> = x32.iter().map(|&v| v as f64).collect();
        let y64: Vec<f64> = y32.iter().map(|&v| v as f64).collect();
        let (mut ws32, mut g32) = (Workspace::new(&net32, n), Gradients::zeros_like(&net32));
        let (mut ws64, mut g64) = (Workspace::new(&net64, n), Gradients::zeros_like(&net64));
        let j32 = net32.backprop(&x32, &y32, n, &mut ws32, &mut g32);
        let j64 = net64.backprop(&x64, &y64, n, &mut ws64, &mut g64);
        // Rounding grows with depth and width; 1e-4 relative to the scale is ~1000 f32 ulps.
        let scale = |v: &[f64]| v.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        prop_assert!((j32 as f64 - j64).abs() <= 1e-4 * (1.0 + j64.abs()), "{} vs {}", j32, j64);
        for li in 0..net.layers.len() {
            let s = scale(g64.weights[li].as_slice());
            for (a, b) in g32.weights[li].as_slice().iter().zip(g64.weights[li].as_slice()) {
                prop_assert!((*a as f64 - b).abs() <= 1e-4 * s, "{} vs {}", a, b);
            }
            let s = scale(&g64.biases[li]);
            for (a, b) in g32.biases[li].iter().zip(&g64.biases[li]) {
                prop_assert!((*a as f64 - b).abs() <= 1e-4 * s);
            }
        }
    }

    #[test]
    fn fused_sgd_step_equals_backprop_then_sgd_step((net, x, y, n) in random_case(), eta in 0.01f64..2.0) {
        let (mut fused, mut plain) = (net.clone(), net);
        let mut ws = Workspace::new(&fused, n);
        let j1 = fused.sgd_train_step(&x, &y, n, &mut ws, eta).unwrap();
        let mut g = Gradients::zeros_like(&plain);
        let j2 = plain.backprop(&x, &y, n, &mut ws, &mut g);
        plain.sgd_step(&g, eta);
        prop_assert_eq!(j1, j2);
        for (a, b) in fused.layers.iter().zip(&plain.layers) {
            for (p, q) in a.weights.as_slice().iter().zip(b.weights.as_slice()).chain(a.biases.iter().zip(&b.biases)) {
                prop_assert!((p - q).abs() <= 1e-13 * (1.0 + q.abs()), "{} vs {}", p, q);
            }
        }
    }

    #[test]
    fn matched_pairs_equal_general_equation_4(
        z in prop::collection::vec(-8.0f64..8.0, 1..8),
        cls in any::<prop::sample::Index>(),
        soft in prop::collection::vec(0.0f64..1.0, 8),
    ) {
        let width = z.len();
        let mut a = vec![0.0; width];
        let mut general = vec![0.0; width];
        // Softmax + log-likelihood: y one-hot.
        Softmax.f(&z, &mut a);
        let mut y = vec![0.0; width];
        y[cls.index(width)] = 1.0;
        general_output_delta(Cost::LogLikelihood, Softmax, &a, &y, &mut general);
        for j in 0..width {
            prop_assert!((general[j] - (a[j] - y[j])).abs() < 1e-12, "{:?} vs a - y", general);
        }
        // Sigmoid + cross-entropy: any targets in [0, 1].
        Sigmoid.f(&z, &mut a);
        let y = &soft[..width];
        general_output_delta(Cost::CrossEntropy, Sigmoid, &a, y, &mut general);
        for j in 0..width {
            prop_assert!((general[j] - (a[j] - y[j])).abs() < 1e-9, "{:?}", general);
        }
    }

    #[test]
    fn activation_backward_matches_finite_differences(
        z in prop::collection::vec(-3.0f64..3.0, 1..6),
        g in prop::collection::vec(-1.0f64..1.0, 6),
        act in 0usize..6,
    ) {
        // delta = (dF/dz)^T g, so delta_k = d/dz_k (g . F(z)).
        let act = Activation::ALL[act];
        let w = z.len();
        let g = &g[..w];
        let phi = |z: &[f64]| { let mut a = vec![0.0; w]; act.f(z, &mut a); a.iter().zip(g).map(|(a, g)| a * g).sum::<f64>() };
        let mut a = vec![0.0; w];
        act.f(&z, &mut a);
        let mut delta = vec![0.0; w];
        act.backward(&a, g, &mut delta);
        for k in 0..w {
            if matches!(act, Relu | LeakyRelu) && z[k].abs() < 1e-3 { continue; } // the kink
            let h = 1e-5;
            let (mut zp, mut zm) = (z.clone(), z.clone());
            zp[k] += h;
            zm[k] -= h;
            let fd = (phi(&zp) - phi(&zm)) / (2.0 * h);
            prop_assert!((fd - delta[k]).abs() < 1e-8, "{} k={}: {} vs {}", act, k, delta[k], fd);
        }
    }

    #[test]
    fn dcost_da_matches_finite_differences(
        a in prop::collection::vec(0.05f64..0.95, 1..6),
        y in prop::collection::vec(0.0f64..1.0, 6),
        c in 0usize..3,
    ) {
        let cost = Cost::ALL[c];
        let y = &y[..a.len()];
        let mut g = vec![0.0; a.len()];
        cost.dcost_da(&a, y, &mut g);
        for k in 0..a.len() {
            let h = 1e-6;
            let (mut ap, mut am) = (a.clone(), a.clone());
            ap[k] += h;
            am[k] -= h;
            let fd = (cost.cost(&ap, y) - cost.cost(&am, y)) / (2.0 * h);
            prop_assert!((fd - g[k]).abs() < 1e-6 * (1.0 + fd.abs()), "{} k={}: {} vs {}", cost, k, g[k], fd);
        }
    }

    #[test]
    fn stable_cost_from_z_equals_cost_of_a(z in prop::collection::vec(-10.0f64..10.0, 1..6), y in prop::collection::vec(0.0f64..1.0, 6)) {
        let w = z.len();
        let mut a = vec![0.0; w];
        Sigmoid.f(&z, &mut a);
        let y = &y[..w];
        let (c1, c2) = (Cost::CrossEntropy.cost_from_z(Sigmoid, &z, &a, y), Cost::CrossEntropy.cost(&a, y));
        prop_assert!((c1 - c2).abs() < 1e-9 * (1.0 + c1.abs()));
        Softmax.f(&z, &mut a);
        let mut onehot = vec![0.0; w];
        onehot[w - 1] = 1.0;
        let (c1, c2) = (Cost::LogLikelihood.cost_from_z(Softmax, &z, &a, &onehot), Cost::LogLikelihood.cost(&a, &onehot));
        prop_assert!((c1 - c2).abs() < 1e-9 * (1.0 + c1.abs()));
    }
}

#[test]
fn workspace_reused_across_batch_sizes_gives_the_same_gradients() {
    let net = figure2([Tanh, Relu, Softmax], Cost::LogLikelihood);
    let mut shared = Workspace::new(&net, 1);
    let mut g = Gradients::zeros_like(&net);
    // Grow to 3 examples, shrink to 1, grow again: each must match a fresh workspace.
    for n in [3, 1, 2, 3] {
        let j = net.backprop(&X[..2 * n], &Y[..3 * n], n, &mut shared, &mut g);
        let mut fresh_g = Gradients::zeros_like(&net);
        let fresh_j = net.backprop(
            &X[..2 * n],
            &Y[..3 * n],
            n,
            &mut Workspace::new(&net, n),
            &mut fresh_g,
        );
        assert_eq!(j, fresh_j);
        assert_eq!(g, fresh_g);
    }
}

#[test]
fn f32_network_stays_finite_at_saturation() {
    // z^L = 200 saturates sigmoid and softmax in f32; the stable costs stay finite.
    for (act, cost, y) in [
        (Sigmoid, Cost::CrossEntropy, 0.0f32),
        (Softmax, Cost::LogLikelihood, 0.0),
    ] {
        let net = Network::from_layers(
            vec![Layer {
                weights: Matrix::from_vec(2, 1, vec![200.0f32, -200.0]).unwrap(),
                biases: vec![0.0; 2],
                activation: act,
            }],
            cost,
        )
        .unwrap();
        let mut ws = Workspace::new(&net, 1);
        let mut g = Gradients::zeros_like(&net);
        let j = net.backprop(&[1.0], &[y, 1.0 - y], 1, &mut ws, &mut g);
        assert!(j.is_finite() && j > 100.0, "{act}: {j}");
        assert!(g.weights[0].as_slice().iter().all(|v| v.is_finite()));
    }
}

/// The smallest |z^l_j| over the neurons whose F has a kink at 0 (relu, leaky relu), over
/// every example of the batch: z computed as the post writes it, z^l = W^l a^(l-1) + b^l.
fn kink_distance(net: &Network<f64>, x: &[f64], n: usize) -> f64 {
    let mut nearest = f64::INFINITY;
    let n_in = x.len() / n;
    for i in 0..n {
        let mut a: Vec<f64> = x[i * n_in..(i + 1) * n_in].to_vec();
        for layer in &net.layers {
            let w = &layer.weights;
            let z: Vec<f64> = (0..w.rows())
                .map(|j| w.row(j).iter().zip(&a).map(|(w, a)| w * a).sum::<f64>() + layer.biases[j])
                .collect();
            if matches!(layer.activation, Activation::Relu | Activation::LeakyRelu) {
                nearest = z.iter().fold(nearest, |m, z| m.min(z.abs()));
            }
            let mut next = vec![0.0; z.len()];
            layer.activation.f(&z, &mut next);
            a = next;
        }
    }
    nearest
}
