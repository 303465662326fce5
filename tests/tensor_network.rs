//! The tensor engine and the network must agree: an MLP built from tensor ops (matmul with
//! the weights as stored, a broadcast bias, the activation, the cost on the output) gives the
//! same J and the same gradients as `Network::backprop`'s four equations, to 1e-12, for every
//! activation and cost pairing the network accepts.

use backprop::linalg::Matrix;
use backprop::network::{Activation, Cost, Gradients, Layer, Network, Workspace};
use backprop::tensor::{Tape, Tensor};
use backprop::Float;

/// A network with fixed, varied weights (as tests/network_vs_graph.rs builds it).
fn network<T: Float>(sizes: &[usize], acts: &[Activation], cost: Cost) -> Network<T> {
    let layers = acts
        .iter()
        .enumerate()
        .map(|(l, &activation)| {
            let (fan_in, width) = (sizes[l], sizes[l + 1]);
            let w = (0..width * fan_in)
                .map(|i| T::from_f64(0.8 * ((7 * l + 3 * i + 1) as f64).sin()))
                .collect();
            Layer {
                weights: Matrix::from_vec(width, fan_in, w).unwrap(),
                biases: (0..width)
                    .map(|j| T::from_f64(0.5 * ((l + j) as f64).cos()))
                    .collect(),
                activation,
            }
        })
        .collect();
    Network::from_layers(layers, cost).unwrap()
}

/// (J, every gradient in the network's order) by the four equations and by the tensor tape.
fn both<T: Float>(sizes: &[usize], acts: &[Activation], cost: Cost, n: usize) -> [(T, Vec<T>); 2] {
    let net = network::<T>(sizes, acts, cost);
    let x: Vec<T> = (0..n * sizes[0])
        .map(|i| T::from_f64(((i as f64) * 1.3).cos()))
        .collect();
    let out = *sizes.last().unwrap();
    let y: Vec<T> = (0..n * out)
        .map(|i| match cost {
            Cost::Quadratic => T::from_f64(((i as f64) * 0.7).sin()),
            Cost::CrossEntropy => T::from_f64(0.5 + 0.4 * ((i as f64) * 0.9).sin()),
            Cost::LogLikelihood => T::from_f64(f64::from(u8::from(i % out == (i / out) % out))),
        })
        .collect();

    let mut ws = Workspace::new(&net, n);
    let mut g = Gradients::zeros_like(&net);
    let j = net.backprop(&x, &y, n, &mut ws, &mut g);
    let equations: Vec<T> = g
        .weights
        .iter()
        .zip(&g.biases)
        .flat_map(|(w, b)| w.as_slice().iter().chain(b).copied())
        .collect();

    // The same network on the tape: z^l = A^(l-1) (W^l)^T + b^l for the whole batch.
    let tape = Tape::<T>::new();
    let params: Vec<_> = net
        .layers
        .iter()
        .map(|l| {
            let (rows, cols) = (l.weights.rows(), l.weights.cols());
            let w = Tensor::from_vec([rows, cols], l.weights.as_slice().to_vec()).unwrap();
            let b = Tensor::from_vec([rows], l.biases.clone()).unwrap();
            (tape.var(w), tape.var(b))
        })
        .collect();
    let mut a = tape.constant_var(Tensor::from_vec([n, sizes[0]], x).unwrap());
    let y = tape.constant_var(Tensor::from_vec([n, out], y).unwrap());
    let last = acts.len() - 1;
    for (l, &(w, b)) in params.iter().enumerate() {
        let z = a.matmul_t(w) + b;
        a = if l == last {
            z.cost_from_z(cost, acts[l], y)
        } else {
            z.activation(acts[l])
        };
    }
    let grads = a.backward();
    let tensor: Vec<T> = params
        .iter()
        .flat_map(|&(w, b)| {
            let mut v = grads.wrt(w).as_slice().to_vec();
            v.extend_from_slice(grads.wrt(b).as_slice());
            v
        })
        .collect();
    [(j, equations), (a.item(), tensor)]
}

fn check(sizes: &[usize], acts: &[Activation], cost: Cost) {
    for n in [1, 3] {
        let [(j, eq), (j_t, te)] = both::<f64>(sizes, acts, cost, n);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-3);
        assert!(close(j, j_t), "{acts:?} {cost:?}: J {j} vs tensor {j_t}");
        assert_eq!(eq.len(), te.len());
        for (i, (a, b)) in eq.iter().zip(&te).enumerate() {
            assert!(
                close(*a, *b),
                "{acts:?} {cost:?} n={n}: parameter {i}: equations {a} vs tensor {b}"
            );
        }
        // f32 through the same code: agreement to f32's precision.
        let [(j, eq), (j_t, te)] = both::<f32>(sizes, acts, cost, n);
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * a.abs().max(b.abs()).max(1e-2);
        assert!(
            close(j, j_t),
            "f32 {acts:?} {cost:?}: J {j} vs tensor {j_t}"
        );
        for (a, b) in eq.iter().zip(&te) {
            assert!(close(*a, *b), "f32 {acts:?} {cost:?}: {a} vs {b}");
        }
    }
}

const HIDDEN: [Activation; 5] = [
    Activation::Identity,
    Activation::Sigmoid,
    Activation::Tanh,
    Activation::Relu,
    Activation::LeakyRelu,
];

#[test]
fn quadratic_cost_with_every_output_activation() {
    for (i, &hidden) in HIDDEN.iter().enumerate() {
        for output in Activation::ALL {
            let second = HIDDEN[(i + 2) % HIDDEN.len()];
            check(&[3, 5, 4, 3], &[hidden, second, output], Cost::Quadratic);
        }
    }
}

#[test]
fn cross_entropy_with_sigmoid_output_every_hidden_activation() {
    for hidden in HIDDEN {
        check(
            &[2, 4, 4, 3],
            &[hidden, hidden, Activation::Sigmoid],
            Cost::CrossEntropy,
        );
    }
}

#[test]
fn log_likelihood_with_softmax_output_every_hidden_activation() {
    for hidden in HIDDEN {
        check(
            &[2, 4, 4, 3],
            &[hidden, hidden, Activation::Softmax],
            Cost::LogLikelihood,
        );
    }
    // The post's Figure 2 and a single layer.
    check(
        &[2, 4, 4, 3],
        &[Activation::Sigmoid; 2]
            .iter()
            .copied()
            .chain([Activation::Softmax])
            .collect::<Vec<_>>(),
        Cost::LogLikelihood,
    );
    check(&[4, 3], &[Activation::Softmax], Cost::LogLikelihood);
}
