//! Gradient checking: backpropagation against central finite differences, in f64.

use super::{Gradients, Network, NetworkError, Workspace};
use crate::Float;

/// The outcome of [`gradcheck`].
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheck {
    /// max over parameters of |backprop - finite difference| / max(|backprop|, |fd|, 1e-4):
    /// relative for gradients above 1e-4, absolute (scaled by 1e4) below, where the
    /// difference's own rounding error (~1e-12) would otherwise dominate.
    pub max_rel_error: f64,
    /// max over parameters of |backprop - finite difference|.
    pub max_abs_error: f64,
    /// The parameter with the largest relative error, e.g. `"w^3_21"`, `"w^2_{14,293}"` or
    /// `"b^2_4"` (the post's numbering: layer l >= 2, neuron j and input k from 1).
    pub worst: String,
    /// How many parameters were checked.
    pub parameters: usize,
}

/// Checks [`Network::backprop`] on the batch (`x`, `y`, `n`) against central finite
/// differences of J, every parameter, in f64 whatever `T` is.
///
/// The differences use the five-point stencil
/// dJ/dθ ≈ [-J(θ+2h) + 8J(θ+h) - 8J(θ-h) + J(θ-2h)] / 12h with h = 1e-4 (1 + |θ|): its
/// truncation error is O(h^4) ≈ 1e-16 and its rounding error ≈ 1e-12 / |dJ/dθ|, so a
/// correct backprop shows relative errors of 1e-8 or less. (A relu kink within 2h of a z
/// can make one difference wrong; pick inputs away from kinks.)
///
/// # Errors
/// The errors of [`Network::backprop`] for a batch that does not fit.
///
/// ```
/// use backprop::network::{gradcheck, Activation, Cost, Init, Network};
/// let net = Network::<f64>::new(&[2, 4, 4, 3], &[Activation::Sigmoid; 3], Cost::Quadratic, Init::Large, 3).unwrap();
/// let check = gradcheck(&net, &[0.1, 0.9, -0.5, 0.3], &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], 2).unwrap();
/// assert!(check.max_rel_error < 1e-7, "{check:?}");
/// assert_eq!(check.parameters, 12 + 20 + 15);
/// ```
pub fn gradcheck<T: Float>(
    net: &Network<T>,
    x: &[T],
    y: &[T],
    n: usize,
) -> Result<GradCheck, NetworkError> {
    let mut net: Network<f64> = net.cast();
    let x: Vec<f64> = x.iter().map(|&v| Float::to_f64(v)).collect();
    let y: Vec<f64> = y.iter().map(|&v| Float::to_f64(v)).collect();
    let mut ws = Workspace::new(&net, n);
    let mut grads = Gradients::zeros_like(&net);
    net.try_backprop(&x, &y, n, &mut ws, &mut grads)?;

    let mut out = GradCheck {
        max_rel_error: 0.0,
        max_abs_error: 0.0,
        worst: String::new(),
        parameters: 0,
    };
    for li in 0..net.layers.len() {
        let cols = net.layers[li].weights.cols();
        for is_bias in [false, true] {
            let count = if is_bias {
                net.layers[li].biases.len()
            } else {
                net.layers[li].weights.as_slice().len()
            };
            for p in 0..count {
                let theta = get(&net, li, p, is_bias);
                let h = 1e-4 * (1.0 + theta.abs());
                let mut j_at = |d: f64, net: &mut Network<f64>| -> f64 {
                    set(net, li, p, is_bias, theta + d);
                    let j = net.cost(&x, &y, n, &mut ws); // shapes checked by backprop above
                    set(net, li, p, is_bias, theta);
                    j
                };
                let fd = (-j_at(2.0 * h, &mut net) + 8.0 * j_at(h, &mut net)
                    - 8.0 * j_at(-h, &mut net)
                    + j_at(-2.0 * h, &mut net))
                    / (12.0 * h);
                let bp = if is_bias {
                    grads.biases[li][p]
                } else {
                    grads.weights[li].as_slice()[p]
                };
                let abs = (bp - fd).abs();
                let rel = abs / bp.abs().max(fd.abs()).max(REL_FLOOR);
                out.parameters += 1;
                out.max_abs_error = out.max_abs_error.max(abs);
                if rel > out.max_rel_error || out.worst.is_empty() {
                    out.max_rel_error = out.max_rel_error.max(rel);
                    out.worst = if is_bias {
                        format!("b^{}_{}", li + 2, p + 1)
                    } else {
                        let (j, k) = (p / cols + 1, p % cols + 1);
                        if j < 10 && k < 10 {
                            format!("w^{}_{j}{k}", li + 2)
                        } else {
                            format!("w^{}_{{{j},{k}}}", li + 2) // w^2_{14,293}: unambiguous
                        }
                    };
                }
            }
        }
    }
    Ok(out)
}

/// Gradients smaller than this are compared absolutely (see [`GradCheck::max_rel_error`]).
const REL_FLOOR: f64 = 1e-4;

fn get(net: &Network<f64>, li: usize, p: usize, is_bias: bool) -> f64 {
    if is_bias {
        net.layers[li].biases[p]
    } else {
        net.layers[li].weights.as_slice()[p]
    }
}

fn set(net: &mut Network<f64>, li: usize, p: usize, is_bias: bool, v: f64) {
    if is_bias {
        net.layers[li].biases[p] = v;
    } else {
        net.layers[li].weights.as_mut_slice()[p] = v;
    }
}
