//! The two halves of the seed must agree: a network's gradients by the four equations
//! (batched matrix products) equal those of the same network built node by node in the
//! scalar computational graph and differentiated by reverse mode, to 1e-12.

use backprop::graph::{Real, Tape};
use backprop::linalg::Matrix;
use backprop::network::{Activation, Cost, Gradients, Layer, Network, Workspace};

/// J(theta) written once over any `Real`: the seed's Step 1..5 for each example, then the
/// mean. `params` lists, layer by layer, W^l row-major then b^l.
fn cost_of<R: Real>(
    params: &[R],
    sizes: &[usize],
    acts: &[Activation],
    cost: Cost,
    x: &[f64],
    y: &[f64],
    n: usize,
) -> R {
    let mut total: Option<R> = None;
    for i in 0..n {
        let x_i = &x[i * sizes[0]..(i + 1) * sizes[0]];
        let mut a: Vec<R> = Vec::new();
        let mut offset = 0;
        for (l, act) in acts.iter().enumerate() {
            let (fan_in, width) = (sizes[l], sizes[l + 1]);
            let w = &params[offset..offset + width * fan_in];
            let b = &params[offset + width * fan_in..offset + width * fan_in + width];
            offset += width * fan_in + width;
            // z^l_j = sum_k w^l_jk a^(l-1)_k + b^l_j
            let z: Vec<R> = (0..width)
                .map(|j| {
                    let mut z = b[j];
                    for k in 0..fan_in {
                        z = if l == 0 {
                            z + w[j * fan_in + k] * x_i[k]
                        } else {
                            z + w[j * fan_in + k] * a[k]
                        };
                    }
                    z
                })
                .collect();
            a = match act {
                Activation::Sigmoid => z.iter().map(|z| z.sigmoid()).collect(),
                Activation::Tanh => z.iter().map(|z| z.tanh()).collect(),
                Activation::Relu => z.iter().map(|z| z.relu()).collect(),
                Activation::Identity => z,
                Activation::Softmax => {
                    let e: Vec<R> = z.iter().map(|z| z.exp()).collect();
                    let mut sum = e[0];
                    for &v in &e[1..] {
                        sum += v;
                    }
                    e.iter().map(|&v| v / sum).collect()
                }
                Activation::LeakyRelu => unreachable!("not used here"),
            };
        }
        let y_i = &y[i * a.len()..(i + 1) * a.len()];
        let c = match cost {
            // C = 1/2 ||a - y||^2
            Cost::Quadratic => {
                let mut c = (a[0] - y_i[0]) * (a[0] - y_i[0]) * 0.5;
                for j in 1..a.len() {
                    c += (a[j] - y_i[j]) * (a[j] - y_i[j]) * 0.5;
                }
                c
            }
            // C = -sum_j [y_j ln a_j + (1 - y_j) ln(1 - a_j)]
            Cost::CrossEntropy => {
                let term =
                    |j: usize| a[j].ln() * -y_i[j] + ((a[j] * -1.0) + 1.0).ln() * -(1.0 - y_i[j]);
                let mut c = term(0);
                for j in 1..a.len() {
                    c += term(j);
                }
                c
            }
            // C = -ln a_y
            Cost::LogLikelihood => {
                let label = y_i.iter().position(|&v| v == 1.0).unwrap();
                -a[label].ln()
            }
        };
        total = Some(match total {
            None => c,
            Some(t) => t + c,
        });
    }
    total.unwrap() / n as f64
}

/// The seed's Figure 2 (or any sizes) with fixed, varied weights.
fn network(sizes: &[usize], acts: &[Activation], cost: Cost) -> Network<f64> {
    let layers = acts
        .iter()
        .enumerate()
        .map(|(l, &activation)| {
            let (fan_in, width) = (sizes[l], sizes[l + 1]);
            let w = (0..width * fan_in)
                .map(|i| 0.8 * ((7 * l + 3 * i + 1) as f64).sin())
                .collect();
            Layer {
                weights: Matrix::from_vec(width, fan_in, w).unwrap(),
                biases: (0..width).map(|j| 0.5 * ((l + j) as f64).cos()).collect(),
                activation,
            }
        })
        .collect();
    Network::from_layers(layers, cost).unwrap()
}

fn check(sizes: &[usize], acts: &[Activation], cost: Cost) {
    let net = network(sizes, acts, cost);
    let n = 3;
    let x: Vec<f64> = (0..n * sizes[0])
        .map(|i| ((i as f64) * 1.3).cos())
        .collect();
    let out = *sizes.last().unwrap();
    let y: Vec<f64> = (0..n * out)
        .map(|i| match cost {
            Cost::Quadratic => ((i as f64) * 0.7).sin(),
            _ => f64::from(u8::from(i % out == (i / out) % out)),
        })
        .collect();

    // The four equations.
    let mut ws = Workspace::new(&net, n);
    let mut g = Gradients::zeros_like(&net);
    let j = net.backprop(&x, &y, n, &mut ws, &mut g);

    // The scalar graph: every weight and bias an input node, reverse mode from J.
    let tape = Tape::new();
    let params: Vec<_> = net
        .layers
        .iter()
        .flat_map(|l| l.weights.as_slice().iter().chain(&l.biases))
        .map(|&v| tape.var(v))
        .collect();
    let j_graph = cost_of(&params, sizes, acts, cost, &x, &y, n);
    let adjoints = j_graph.backward();
    let from_graph: Vec<f64> = params.iter().map(|&p| adjoints.wrt(p)).collect();
    let from_equations: Vec<f64> = g
        .weights
        .iter()
        .zip(&g.biases)
        .flat_map(|(w, b)| w.as_slice().iter().chain(b).copied())
        .collect();

    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-3);
    assert!(close(j, j_graph.val()), "J: {j} vs {}", j_graph.val());
    // f64 evaluated as plain numbers too: the generic function is the same J.
    let plain: Vec<f64> = params.iter().map(|p| p.val()).collect();
    assert!(close(j, cost_of(&plain, sizes, acts, cost, &x, &y, n)));
    assert_eq!(from_graph.len(), from_equations.len());
    for (i, (a, b)) in from_graph.iter().zip(&from_equations).enumerate() {
        assert!(
            close(*a, *b),
            "{acts:?} {cost:?}: parameter {i}: graph {a} vs equations {b}"
        );
    }
}

#[test]
fn figure_2_sigmoid_quadratic() {
    use Activation::Sigmoid;
    check(&[2, 4, 4, 3], &[Sigmoid, Sigmoid, Sigmoid], Cost::Quadratic);
}

#[test]
fn figure_2_softmax_log_likelihood() {
    use Activation::{Sigmoid, Softmax};
    check(
        &[2, 4, 4, 3],
        &[Sigmoid, Sigmoid, Softmax],
        Cost::LogLikelihood,
    );
}

#[test]
fn figure_2_tanh_relu_cross_entropy() {
    use Activation::{Relu, Sigmoid, Tanh};
    check(&[2, 4, 4, 3], &[Tanh, Relu, Sigmoid], Cost::CrossEntropy);
}

#[test]
fn deeper_identity_and_softmax_quadratic() {
    use Activation::{Identity, Softmax, Tanh};
    check(
        &[3, 5, 4, 2, 4],
        &[Tanh, Identity, Tanh, Softmax],
        Cost::Quadratic,
    );
}
