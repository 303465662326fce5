//! [`Var`]: a `Copy` handle to a node on a [`Tape`], with arithmetic that records new nodes.

use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use super::op::Op;
use super::real::{Real, Scalar};
use super::reverse::Adjoints;
use super::tape::{NodeId, Tape};

/// A variable on a [`Tape`]: the tape and a node index. Arithmetic on it adds nodes.
///
/// Mixing handles from two different tapes in one operation panics, as does an operation on
/// a full tape (2^32 - 1 nodes; [`Tape::push`] reports that as an error instead).
///
/// ```
/// use backprop::graph::{Real, Tape};
/// let tape = Tape::new();
/// let x = tape.var(0.5);
/// // y = x^2 + 5x + 4, dy/dx = 2x + 5 = 6
/// let y = x.powi(2) + x * 5.0 + 4.0;
/// assert_eq!(y.value(), 6.75);
/// assert_eq!(y.backward().wrt(x), 6.0);
/// ```
#[derive(Clone, Copy)]
pub struct Var<'t, T: Scalar = f64> {
    tape: &'t Tape<T>,
    id: NodeId,
}

/// Shows the node and its value, not the whole tape.
impl<T: Scalar> std::fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Var")
            .field("id", &self.id.index())
            .field("value", &self.val())
            .finish()
    }
}

impl<'t, T: Scalar> Var<'t, T> {
    pub(crate) fn new(tape: &'t Tape<T>, id: NodeId) -> Self {
        Var { tape, id }
    }

    /// The node's index on its tape.
    pub fn id(self) -> NodeId {
        self.id
    }

    /// The tape this variable lives on.
    pub fn tape(self) -> &'t Tape<T> {
        self.tape
    }

    /// The node's value.
    pub fn val(self) -> T {
        self.tape.value(self.id)
    }

    /// Reverse mode from this node: d(self)/d(every node). See [`Tape::backward`].
    pub fn backward(self) -> Adjoints<T> {
        self.tape.backward(self.id)
    }

    fn unary(self, op: Op) -> Self {
        Var::new(self.tape, self.tape.push_op(op, self.id, self.id))
    }

    fn binary(self, op: Op, rhs: Self) -> Self {
        assert!(
            std::ptr::eq(self.tape, rhs.tape),
            "cannot combine variables from two different tapes"
        );
        Var::new(self.tape, self.tape.push_op(op, self.id, rhs.id))
    }

    fn constant(self, c: f64) -> Self {
        Var::new(self.tape, self.tape.constant(T::from_f64(c)))
    }
}

impl<T: Scalar> Real for Var<'_, T> {
    fn value(&self) -> f64 {
        self.val().value()
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
        self.binary(Op::Pow, self.constant(c))
    }
    fn powi(self, n: i32) -> Self {
        self.binary(Op::Pow, self.constant(f64::from(n)))
    }
}

impl<T: Scalar> Neg for Var<'_, T> {
    type Output = Self;
    fn neg(self) -> Self {
        self.unary(Op::Neg)
    }
}

macro_rules! var_binary {
    ($Trait:ident, $method:ident, $Assign:ident, $assign:ident, $op:expr) => {
        impl<'t, T: Scalar> $Trait for Var<'t, T> {
            type Output = Self;
            fn $method(self, rhs: Self) -> Self {
                self.binary($op, rhs)
            }
        }
        impl<'t, T: Scalar> $Trait<f64> for Var<'t, T> {
            type Output = Self;
            fn $method(self, rhs: f64) -> Self {
                self.binary($op, self.constant(rhs))
            }
        }
        impl<'t, T: Scalar> $Trait<Var<'t, T>> for f64 {
            type Output = Var<'t, T>;
            fn $method(self, rhs: Var<'t, T>) -> Var<'t, T> {
                rhs.constant(self).binary($op, rhs)
            }
        }
        impl<'t, T: Scalar> $Assign for Var<'t, T> {
            fn $assign(&mut self, rhs: Self) {
                *self = self.binary($op, rhs);
            }
        }
        impl<'t, T: Scalar> $Assign<f64> for Var<'t, T> {
            fn $assign(&mut self, rhs: f64) {
                *self = self.binary($op, self.constant(rhs));
            }
        }
    };
}

var_binary!(Add, add, AddAssign, add_assign, Op::Add);
var_binary!(Sub, sub, SubAssign, sub_assign, Op::Sub);
var_binary!(Mul, mul, MulAssign, mul_assign, Op::Mul);
var_binary!(Div, div, DivAssign, div_assign, Op::Div);
