//! Dual numbers a + a' ε (ε² = 0): forward mode by operator overloading.

use std::fmt;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use super::op::Op;
use super::real::{Real, Scalar};

/// A value `v` and its tangent `d` (the derivative with respect to one chosen direction).
///
/// Every operation takes its local derivatives from [`Op::rule`] and applies the chain rule
/// once: `d(out) = df/dx · dx + df/dy · dy`. Generic over its parts, so `Dual<Dual<f64>>`
/// and a tape of `Dual<f64>` (forward-over-reverse) work.
///
/// ```
/// use backprop::graph::{Dual, Real};
/// // y = x^2 + 5x + 4, dy/dx = 2x + 5 = 11 at x = 3
/// let x = Dual::variable(3.0);
/// let y = x.powi(2) + x * 5.0 + 4.0;
/// assert_eq!((y.v, y.d), (28.0, 11.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dual<T = f64> {
    /// The value.
    pub v: T,
    /// The tangent.
    pub d: T,
}

impl<T: Scalar> Dual<T> {
    /// The dual number `v + d ε`.
    pub fn new(v: T, d: T) -> Self {
        Dual { v, d }
    }
    /// A constant: tangent 0.
    pub fn constant(v: T) -> Self {
        Dual { v, d: T::zero() }
    }
    /// The variable being differentiated: tangent 1.
    pub fn variable(v: T) -> Self {
        Dual { v, d: T::one() }
    }

    fn unary(self, op: Op) -> Self {
        let (v, dx, _) = op.rule(self.v, self.v);
        Dual {
            v,
            d: chain(dx, self.d),
        }
    }

    fn binary(self, op: Op, rhs: Self) -> Self {
        let (v, dx, dy) = op.rule(self.v, rhs.v);
        Dual {
            v,
            d: chain(dx, self.d) + chain(dy, rhs.d),
        }
    }
}

/// `local × tangent`, where a zero tangent contributes 0 even when the local derivative is
/// not finite: the exponent 2 of `x.powi(2)` has tangent 0 and d/dy x^y is NaN for x < 0,
/// and sqrt(x) at 0 has an infinite derivative. Forward mode on the tape skips an argument
/// that does not depend on the seed in the same way.
#[inline]
fn chain<T: Scalar>(local: T, tangent: T) -> T {
    if tangent == T::zero() {
        T::zero()
    } else {
        local * tangent
    }
}

impl<T: Scalar + fmt::Display> fmt::Display for Dual<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} + {}ε", self.v, self.d)
    }
}

impl<T: Scalar> Real for Dual<T> {
    fn value(&self) -> f64 {
        self.v.value()
    }
    fn exp(self) -> Self {
        self.unary(Op::Exp)
    }
    fn ln(self) -> Self {
        self.unary(Op::Ln)
    }
    fn sqrt(self) -> Self {
        self.unary(Op::Sqrt)
    }
    fn sin(self) -> Self {
        self.unary(Op::Sin)
    }
    fn cos(self) -> Self {
        self.unary(Op::Cos)
    }
    fn tan(self) -> Self {
        self.unary(Op::Tan)
    }
    fn tanh(self) -> Self {
        self.unary(Op::Tanh)
    }
    fn sigmoid(self) -> Self {
        self.unary(Op::Sigmoid)
    }
    fn relu(self) -> Self {
        self.unary(Op::Relu)
    }
    fn abs(self) -> Self {
        self.unary(Op::Abs)
    }
    fn pow(self, y: Self) -> Self {
        self.binary(Op::Pow, y)
    }
    fn powf(self, c: f64) -> Self {
        self.binary(Op::Pow, Dual::constant(T::from_f64(c)))
    }
    fn powi(self, n: i32) -> Self {
        self.powf(f64::from(n))
    }
}

impl<T: Scalar> Scalar for Dual<T> {
    fn from_f64(c: f64) -> Self {
        Dual::constant(T::from_f64(c))
    }
}

impl<T: Scalar> Neg for Dual<T> {
    type Output = Self;
    fn neg(self) -> Self {
        self.unary(Op::Neg)
    }
}

macro_rules! dual_binary {
    ($Trait:ident, $method:ident, $Assign:ident, $assign:ident, $op:expr) => {
        impl<T: Scalar> $Trait for Dual<T> {
            type Output = Self;
            fn $method(self, rhs: Self) -> Self {
                self.binary($op, rhs)
            }
        }
        impl<T: Scalar> $Trait<f64> for Dual<T> {
            type Output = Self;
            fn $method(self, rhs: f64) -> Self {
                self.binary($op, Dual::from_f64(rhs))
            }
        }
        impl<T: Scalar> $Trait<Dual<T>> for f64 {
            type Output = Dual<T>;
            fn $method(self, rhs: Dual<T>) -> Dual<T> {
                Dual::<T>::from_f64(self).binary($op, rhs)
            }
        }
        impl<T: Scalar> $Assign for Dual<T> {
            fn $assign(&mut self, rhs: Self) {
                *self = self.binary($op, rhs);
            }
        }
        impl<T: Scalar> $Assign<f64> for Dual<T> {
            fn $assign(&mut self, rhs: f64) {
                *self = self.binary($op, Dual::from_f64(rhs));
            }
        }
    };
}

dual_binary!(Add, add, AddAssign, add_assign, Op::Add);
dual_binary!(Sub, sub, SubAssign, sub_assign, Op::Sub);
dual_binary!(Mul, mul, MulAssign, mul_assign, Op::Mul);
dual_binary!(Div, div, DivAssign, div_assign, Op::Div);
