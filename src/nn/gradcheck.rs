//! Gradient checking for a model of layers: [`Sequential`]'s backward pass against central
//! differences of J, in f64, as [`crate::network::gradcheck`] checks the post's network.

use super::{Layer, NnError, Sequential};
use crate::network::Cost;
use rand::SeedableRng;

/// The outcome of [`gradcheck`].
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheck {
    /// max over the parameters checked of |backprop - finite difference| /
    /// max(|backprop|, |fd|, 1e-4): relative above 1e-4, absolute (scaled by 1e4) below,
    /// as [`crate::network::GradCheck::max_rel_error`].
    pub max_rel_error: f64,
    /// max over the parameters checked of |backprop - finite difference|.
    pub max_abs_error: f64,
    /// The parameter with the largest relative error, by name and index:
    /// `0.weight[5,0,2,1]`, `1.bias_hh_l0[17]`.
    pub worst: String,
    /// How many parameters were checked.
    pub checked: usize,
    /// How many parameters the model has.
    pub parameters: usize,
}

/// Checks [`Sequential::loss_and_grad`] on the batch (`x`, `targets`, `n`, `cost`) against
/// central finite differences of J, parameter by parameter.
///
/// Every parameter is checked if the model has at most `max_checks`; otherwise about
/// `max_checks` of them, drawn with `seed`, each tensor in proportion to its size and at
/// least one from each. The differences use the five-point stencil of
/// [`crate::network::gradcheck`], h = 1e-4 (1 + |θ|), four passes over the batch per
/// parameter. Dropout draws the same masks in every pass (reseeded with `seed`).
///
/// A ReLU or max-pooling kink within 2h of a value makes a difference wrong, and a
/// convolution's bias moves thousands of values: where the error exceeds 1e-7 the
/// difference is taken again with h / 100, and the smaller error kept. A kink moves away
/// with the step; a wrong gradient does not.
///
/// ```
/// use backprop::network::Cost;
/// use backprop::nn::{gradcheck, Sequential};
/// let arch = "Conv2d(1, 2, 3), Tanh(), Flatten(), Linear(18, 3), Softmax(dim=-1)".parse().unwrap();
/// let mut net = Sequential::<f64>::new(&arch, &[1, 5, 5], 3).unwrap();
/// let x: Vec<f64> = (0..50).map(|i| (i as f64 * 0.37).sin()).collect();
/// let check = gradcheck(&mut net, &x, &[2.0, 0.0], 2, Cost::LogLikelihood, 1000, 1).unwrap();
/// assert_eq!((check.checked, check.parameters), (77, 77));
/// assert!(check.max_rel_error < 1e-7, "{check:?}");
/// ```
///
/// # Errors
/// Those of [`Sequential::loss_and_grad`] for a batch or targets that do not fit.
pub fn gradcheck(
    net: &mut Sequential<f64>,
    x: &[f64],
    targets: &[f64],
    n: usize,
    cost: Cost,
    max_checks: usize,
    seed: u64,
) -> Result<GradCheck, NnError> {
    let dropout = net
        .arch()
        .layers()
        .iter()
        .any(|l| matches!(l, Layer::Dropout { .. }));
    // J at the current parameters; with dropout, in training mode with the same masks.
    let cost_at = |net: &mut Sequential<f64>| -> Result<f64, NnError> {
        if dropout {
            net.reseed_dropout(seed);
            net.loss_and_grad(x, targets, n, cost)
        } else {
            net.loss(x, targets, n, cost)
        }
    };
    net.reseed_dropout(seed);
    net.loss_and_grad(x, targets, n, cost)?;
    let grads: Vec<(String, Vec<usize>, Vec<f64>)> = net
        .grads()
        .map(|(name, shape, g)| (name.to_string(), shape.to_vec(), g.to_vec()))
        .collect();
    let parameters = net.num_params();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = GradCheck {
        max_rel_error: 0.0,
        max_abs_error: 0.0,
        worst: String::new(),
        checked: 0,
        parameters,
    };
    for (t, (name, shape, bp)) in grads.iter().enumerate() {
        let indices: Vec<usize> = if parameters <= max_checks {
            (0..bp.len()).collect()
        } else {
            let k = (max_checks as u128 * bp.len() as u128 / parameters as u128) as usize;
            let k = k.clamp(1, bp.len());
            let mut v = rand::seq::index::sample(&mut rng, bp.len(), k).into_vec();
            v.sort_unstable();
            v
        };
        for p in indices {
            let theta = param(net, t)[p];
            let mut rel_abs = |h: f64| -> Result<(f64, f64), NnError> {
                let mut j_at = |d: f64| -> Result<f64, NnError> {
                    param(net, t)[p] = theta + d;
                    let j = cost_at(net);
                    param(net, t)[p] = theta;
                    j
                };
                let fd = (-j_at(2.0 * h)? + 8.0 * j_at(h)? - 8.0 * j_at(-h)? + j_at(-2.0 * h)?)
                    / (12.0 * h);
                let abs = (bp[p] - fd).abs();
                let rel = abs / bp[p].abs().max(fd.abs()).max(REL_FLOOR);
                // A NaN is the worst error there is.
                Ok((if rel.is_nan() { f64::INFINITY } else { rel }, abs))
            };
            let h = 1e-4 * (1.0 + theta.abs());
            let mut err = rel_abs(h)?;
            if err.0 > RETRY_ABOVE {
                // A kink within 2h moves away with a smaller step; a wrong gradient stays.
                let small = rel_abs(h / 100.0)?;
                if small.0 < err.0 {
                    err = small;
                }
            }
            let (rel, abs) = err;
            out.checked += 1;
            out.max_abs_error = out.max_abs_error.max(abs);
            if rel > out.max_rel_error || out.worst.is_empty() {
                out.max_rel_error = out.max_rel_error.max(rel);
                out.worst = format!("{name}[{}]", index_text(p, shape));
            }
        }
    }
    Ok(out)
}

/// Gradients smaller than this are compared absolutely (see [`GradCheck::max_rel_error`]).
const REL_FLOOR: f64 = 1e-4;

/// A relative error above this is measured again with a step 100 times smaller.
const RETRY_ABOVE: f64 = 1e-7;

/// The values of parameter tensor `t`, to change in place.
fn param(net: &mut Sequential<f64>, t: usize) -> &mut [f64] {
    net.params_mut()
        .nth(t)
        .map(|(_, _, v)| v)
        .expect("t indexes the model's own parameters")
}

/// Flat index `p` of a tensor of `shape` as `i,j,k` (row-major, from 0 as PyTorch counts).
fn index_text(mut p: usize, shape: &[usize]) -> String {
    let mut idx = vec![0; shape.len()];
    for (i, &d) in shape.iter().enumerate().rev() {
        idx[i] = p % d.max(1);
        p /= d.max(1);
    }
    let parts: Vec<String> = idx.iter().map(|i| i.to_string()).collect();
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::index_text;

    #[test]
    fn flat_indices_read_row_major() {
        // 6x1x5x5: element 1*25 + 0*25 + 2*5 + 3 = 38 is [1,0,2,3].
        assert_eq!(index_text(38, &[6, 1, 5, 5]), "1,0,2,3");
        assert_eq!(index_text(7, &[10]), "7");
        assert_eq!(index_text(0, &[]), "");
    }
}
