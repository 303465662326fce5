//! Gradient checking for tensor functions: reverse mode against central differences, in f64.

use super::tape::Tape;
use super::tensor::Tensor;
use super::var::Var;

/// How far reverse mode is from central differences.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheck {
    /// The largest |analytic - numeric| / max(1, |analytic|, |numeric|) over every element of
    /// every input.
    pub max_error: f64,
    /// dL/d(input) by reverse mode, one per input (L as [`gradcheck`] defines it).
    pub analytic: Vec<Tensor<f64>>,
    /// dL/d(input) by central differences, one per input.
    pub numeric: Vec<Tensor<f64>>,
}

/// Checks the gradients of `f` at `inputs` against central differences with step `h`.
///
/// A non-scalar output is reduced to L = Σ_i r_i out_i with fixed weights r_i in [0.5, 1.5],
/// not all equal, so that every entry of the op's vector-Jacobian product is exercised (a
/// plain sum would miss a rule that mixes up elements).
///
/// ```
/// use backprop::tensor::{gradcheck, Tensor};
/// let x = Tensor::from_vec([2, 3], vec![0.1, -0.4, 0.3, 0.9, -0.2, 0.5]).unwrap();
/// let check = gradcheck(&[x], 1e-5, |v| v[0].tanh().softmax());
/// assert!(check.max_error < 1e-8);
/// ```
pub fn gradcheck(
    inputs: &[Tensor<f64>],
    h: f64,
    f: impl for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
) -> GradCheck {
    let loss = |xs: &[Tensor<f64>]| -> (f64, Option<Vec<Tensor<f64>>>) {
        let tape = Tape::new();
        let vars: Vec<_> = xs.iter().map(|x| tape.var(x.clone())).collect();
        let out = f(&vars);
        let r = Tensor::from_fn(out.shape(), weight);
        let l = (out * tape.constant_var(r)).sum_all();
        let grads = l.backward();
        let g = vars.iter().map(|&v| grads.wrt(v).clone()).collect();
        (l.item(), Some(g))
    };
    let analytic = loss(inputs).1.expect("gradients");
    let mut numeric = Vec::new();
    let mut max_error = 0.0f64;
    let mut xs = inputs.to_vec();
    for (n, x) in inputs.iter().enumerate() {
        let mut d = Tensor::zeros(x.shape());
        for i in 0..x.numel() {
            xs[n].as_mut_slice()[i] = x.as_slice()[i] + h;
            let up = loss(&xs).0;
            xs[n].as_mut_slice()[i] = x.as_slice()[i] - h;
            let down = loss(&xs).0;
            xs[n].as_mut_slice()[i] = x.as_slice()[i];
            let num = (up - down) / (2.0 * h);
            let ana = analytic[n].as_slice()[i];
            d.as_mut_slice()[i] = num;
            let err = (ana - num).abs() / 1f64.max(ana.abs()).max(num.abs());
            max_error = max_error.max(if err.is_nan() { f64::INFINITY } else { err });
        }
        numeric.push(d);
    }
    GradCheck {
        max_error,
        analytic,
        numeric,
    }
}

/// The weight of output element i: a fixed, irregular value in [0.5, 1.5].
fn weight(i: usize) -> f64 {
    0.5 + ((i as f64 + 1.0) * 0.618_033_988_749_895).fract()
}
