//! Derivatives of functions written once against [`Real`](super::Real): gradients by reverse
//! mode, directional derivatives by forward mode, Hessian-vector products by
//! forward-over-reverse, and central differences to check them all.

use super::dual::Dual;
use super::tape::Tape;
use super::var::Var;
use super::GraphError;

/// f(x) and its gradient by reverse mode (one backward pass).
///
/// ```
/// use backprop::graph::{value_and_grad, Real};
/// fn o<T: Real>(a: T, b: T) -> T { (a + b) * (a * b) * 0.5 }
/// let (value, g) = value_and_grad(|x| o(x[0], x[1]), &[2.0, 3.0]);
/// assert_eq!((value, g), (15.0, vec![10.5, 8.0]));
/// ```
pub fn value_and_grad<F>(f: F, x: &[f64]) -> (f64, Vec<f64>)
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    let tape = Tape::new();
    let vars: Vec<Var<'_, f64>> = x.iter().map(|&xi| tape.var(xi)).collect();
    let y = f(&vars);
    let adjoints = y.backward();
    (y.val(), vars.iter().map(|&v| adjoints.wrt(v)).collect())
}

/// The gradient of f at x by reverse mode.
///
/// ```
/// use backprop::graph::{grad, Real};
/// // f = x0 sin(x1): df/dx0 = sin(x1), df/dx1 = x0 cos(x1)
/// let g = grad(|x| x[0] * x[1].sin(), &[2.0, 0.0]);
/// assert_eq!(g, vec![0.0, 2.0]);
/// ```
pub fn grad<F>(f: F, x: &[f64]) -> Vec<f64>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    value_and_grad(f, x).1
}

/// The derivative of a one-variable function by forward mode (one dual-number evaluation).
///
/// ```
/// use backprop::graph::{derivative, Real};
/// // d/dx tanh(x) = 1 - tanh(x)^2 = 1 at 0
/// assert_eq!(derivative(|x| x.tanh(), 0.0), 1.0);
/// ```
pub fn derivative<F>(f: F, x: f64) -> f64
where
    F: Fn(Dual<f64>) -> Dual<f64>,
{
    f(Dual::variable(x)).d
}

/// f(x) and the directional derivative ∇f(x) · v by forward mode (one pass).
///
/// ```
/// use backprop::graph::jvp;
/// let (value, dv) = jvp(|x| x[0] * x[1], &[2.0, 3.0], &[1.0, 1.0]).unwrap();
/// assert_eq!((value, dv), (6.0, 5.0));
/// ```
pub fn jvp<F>(f: F, x: &[f64], v: &[f64]) -> Result<(f64, f64), GraphError>
where
    F: Fn(&[Dual<f64>]) -> Dual<f64>,
{
    same_len(x, v)?;
    let duals: Vec<Dual<f64>> = x
        .iter()
        .zip(v)
        .map(|(&xi, &vi)| Dual::new(xi, vi))
        .collect();
    let y = f(&duals);
    Ok((y.v, y.d))
}

/// The gradient by forward mode: one dual-number pass per input (compare [`grad`]: one
/// pass in all).
///
/// ```
/// use backprop::graph::grad_forward;
/// assert_eq!(grad_forward(|x| (x[0] + x[1]) * (x[0] * x[1]) * 0.5, &[2.0, 3.0]), vec![10.5, 8.0]);
/// ```
pub fn grad_forward<F>(f: F, x: &[f64]) -> Vec<f64>
where
    F: Fn(&[Dual<f64>]) -> Dual<f64>,
{
    (0..x.len())
        .map(|i| {
            let duals: Vec<Dual<f64>> = x
                .iter()
                .enumerate()
                .map(|(j, &xj)| Dual::new(xj, if i == j { 1.0 } else { 0.0 }))
                .collect();
            f(&duals).d
        })
        .collect()
}

/// The Hessian-vector product H(x) v by forward-over-reverse: reverse mode on a tape of dual
/// numbers whose tangents are v. The adjoints' tangents are d/dε ∇f(x + εv) = H v.
///
/// ```
/// use backprop::graph::{hvp, Real};
/// // f = x0^2 x1: H = [[2 x1, 2 x0], [2 x0, 0]] = [[6, 4], [4, 0]] at (2, 3)
/// let hv = hvp(|x| x[0].powi(2) * x[1], &[2.0, 3.0], &[1.0, 0.0]).unwrap();
/// assert_eq!(hv, vec![6.0, 4.0]);
/// ```
pub fn hvp<F>(f: F, x: &[f64], v: &[f64]) -> Result<Vec<f64>, GraphError>
where
    F: for<'t> Fn(&[Var<'t, Dual<f64>>]) -> Var<'t, Dual<f64>>,
{
    same_len(x, v)?;
    let tape = Tape::new();
    let vars: Vec<Var<'_, Dual<f64>>> = x
        .iter()
        .zip(v)
        .map(|(&xi, &vi)| tape.var(Dual::new(xi, vi)))
        .collect();
    let adjoints = f(&vars).backward();
    Ok(vars.iter().map(|&var| adjoints.wrt(var).d).collect())
}

/// The gradient by central differences, (f(x + h e_i) - f(x - h e_i)) / 2h: slow and
/// approximate (error O(h²)), but independent of everything else here, so it checks it.
///
/// ```
/// use backprop::graph::central_difference;
/// let g = central_difference(|x| x[0] * x[0], &[3.0], 1e-5);
/// assert!((g[0] - 6.0).abs() < 1e-8);
/// ```
pub fn central_difference<F>(f: F, x: &[f64], h: f64) -> Vec<f64>
where
    F: Fn(&[f64]) -> f64,
{
    let mut xs = x.to_vec();
    (0..x.len())
        .map(|i| {
            xs[i] = x[i] + h;
            let up = f(&xs);
            xs[i] = x[i] - h;
            let down = f(&xs);
            xs[i] = x[i];
            (up - down) / (2.0 * h)
        })
        .collect()
}

fn same_len(x: &[f64], v: &[f64]) -> Result<(), GraphError> {
    if x.len() == v.len() {
        Ok(())
    } else {
        Err(GraphError::LengthMismatch {
            x: x.len(),
            v: v.len(),
        })
    }
}
