//! The numeric traits the graph is generic over: [`Real`] (what a differentiable function may
//! use) and [`Scalar`] (what a tape stores: `f64`, or [`Dual`](super::Dual) for second
//! derivatives).

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

/// A number a differentiable function can be written against, once.
///
/// Implemented by `f64` (plain evaluation), [`Dual`](super::Dual) (forward mode) and
/// [`Var`](super::Var) (reverse mode, recorded on a [`Tape`](super::Tape)). Mix with `f64`
/// constants on the right (`x * 0.5`); on concrete types `0.5 * x` works too.
///
/// ```
/// use backprop::graph::{Dual, Real, Tape};
/// // o = c d / 2 with c = a + b, d = a b (the post's Figure 1).
/// fn o<T: Real>(a: T, b: T) -> T {
///     let c = a + b;
///     let d = a * b;
///     c * d * 0.5
/// }
/// assert_eq!(o(2.0, 3.0), 15.0);
/// // Forward mode: seed a with tangent 1.
/// assert_eq!(o(Dual::new(2.0, 1.0), Dual::constant(3.0)).d, 10.5);
/// // Reverse mode: one backward pass gives both.
/// let tape = Tape::new();
/// let (a, b) = (tape.var(2.0), tape.var(3.0));
/// let g = o(a, b).backward();
/// assert_eq!((g.wrt(a), g.wrt(b)), (10.5, 8.0));
/// ```
pub trait Real:
    Copy
    + Debug
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + Add<f64, Output = Self>
    + Sub<f64, Output = Self>
    + Mul<f64, Output = Self>
    + Div<f64, Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + AddAssign<f64>
    + SubAssign<f64>
    + MulAssign<f64>
    + DivAssign<f64>
{
    /// The plain `f64` value (for a dual number, its primal part; for a tape variable, its
    /// value's).
    fn value(&self) -> f64;
    /// e^x.
    fn exp(self) -> Self;
    /// The natural logarithm.
    fn ln(self) -> Self;
    /// The square root.
    fn sqrt(self) -> Self;
    /// The sine.
    fn sin(self) -> Self;
    /// The cosine.
    fn cos(self) -> Self;
    /// The tangent.
    fn tan(self) -> Self;
    /// The hyperbolic tangent.
    fn tanh(self) -> Self;
    /// 1 / (1 + e^-x).
    fn sigmoid(self) -> Self;
    /// max(x, 0).
    fn relu(self) -> Self;
    /// |x|.
    fn abs(self) -> Self;
    /// x^y, both differentiable. For x <= 0 the derivative with respect to y is taken as 0.
    fn pow(self, y: Self) -> Self;
    /// x^c for a constant real c.
    fn powf(self, c: f64) -> Self;
    /// x^n for a constant integer n.
    fn powi(self, n: i32) -> Self;
}

/// A number a [`Tape`](super::Tape) can store: a [`Real`] that can be made from a constant.
///
/// ```
/// use backprop::graph::Scalar;
/// assert_eq!(<f64 as Scalar>::from_f64(2.5), 2.5);
/// ```
pub trait Scalar: Real + PartialEq {
    /// The constant c.
    fn from_f64(c: f64) -> Self;
    /// 0.
    fn zero() -> Self {
        Self::from_f64(0.0)
    }
    /// 1.
    fn one() -> Self {
        Self::from_f64(1.0)
    }
}

/// The numerically stable logistic function on `f64` (no overflow of e^-x for large |x|).
pub(crate) fn sigmoid_f64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

impl Real for f64 {
    fn value(&self) -> f64 {
        *self
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    fn sin(self) -> Self {
        f64::sin(self)
    }
    fn cos(self) -> Self {
        f64::cos(self)
    }
    fn tan(self) -> Self {
        f64::tan(self)
    }
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    fn sigmoid(self) -> Self {
        sigmoid_f64(self)
    }
    fn relu(self) -> Self {
        if self > 0.0 {
            self
        } else {
            0.0
        }
    }
    fn abs(self) -> Self {
        f64::abs(self)
    }
    fn pow(self, y: Self) -> Self {
        f64::powf(self, y)
    }
    fn powf(self, c: f64) -> Self {
        f64::powf(self, c)
    }
    fn powi(self, n: i32) -> Self {
        // The tape and Dual compute x^n as the real power x^(n as f64); so does f64, so that
        // one function gives the same bits on all three.
        f64::powf(self, f64::from(n))
    }
}

impl Scalar for f64 {
    fn from_f64(c: f64) -> Self {
        c
    }
}
