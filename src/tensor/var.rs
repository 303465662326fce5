//! [`Var`]: a `Copy` handle to a tensor on a [`Tape`], whose methods and operators add nodes.

use std::cell::Ref;
use std::ops::{Add, Div, Mul, Neg, Sub};

use smallvec::{smallvec, SmallVec};

use super::op::Op;
use super::reverse::Grads;
use super::shape::Shape;
use super::tape::{Tape, TensorId};
use super::tensor::Tensor;
use crate::network::Activation;
use crate::Float;

/// A tensor on a [`Tape`]: the tape and a node index. Its methods and operators add nodes.
///
/// The methods panic on shapes that do not fit, naming the op and the shapes (they are the
/// ergonomic shell; [`Tape::push`] returns the same errors as values). Mixing handles from
/// two tapes panics too.
///
/// ```
/// use backprop::tensor::{Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let x = tape.var(Tensor::scalar(0.5));
/// // y = x² + 5x + 4, dy/dx = 2x + 5 = 6
/// let y = x.powf(2.0) + x * 5.0 + 4.0;
/// assert_eq!(y.item(), 6.75);
/// assert_eq!(y.backward().wrt(x).item(), 6.0);
/// ```
#[derive(Clone, Copy)]
pub struct Var<'t, T: Float = f64> {
    tape: &'t Tape<T>,
    id: TensorId,
}

/// Shows the node and its shape, not the whole tape.
impl<T: Float> std::fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Var")
            .field("id", &self.id.index())
            .field("shape", &self.shape())
            .finish()
    }
}

impl<'t, T: Float> Var<'t, T> {
    pub(crate) fn new(tape: &'t Tape<T>, id: TensorId) -> Self {
        Var { tape, id }
    }

    /// The node's index on its tape.
    pub fn id(self) -> TensorId {
        self.id
    }

    /// The tape this tensor lives on.
    pub fn tape(self) -> &'t Tape<T> {
        self.tape
    }

    /// The value, borrowed from the tape: drop it before adding nodes.
    pub fn value(self) -> Ref<'t, Tensor<T>> {
        self.tape.value(self.id)
    }

    /// A copy of the value.
    pub fn to_tensor(self) -> Tensor<T> {
        self.value().clone()
    }

    /// The value's shape.
    pub fn shape(self) -> Shape {
        self.value().shape().clone()
    }

    /// The value's one element (see [`Tensor::item`]).
    pub fn item(self) -> T {
        self.value().item()
    }

    /// Reverse mode from this tensor: d(Σ self)/d(every node). See [`Tape::backward`].
    pub fn backward(self) -> Grads<'t, T> {
        self.tape.backward(self.id)
    }

    pub(crate) fn push(self, op: Op, others: &[Var<'t, T>]) -> Self {
        let mut ids: SmallVec<[TensorId; 4]> = smallvec![self.id];
        for o in others {
            assert!(
                std::ptr::eq(self.tape, o.tape),
                "cannot combine tensors from two different tapes"
            );
            ids.push(o.id);
        }
        match self.tape.push(op, &ids) {
            Ok(id) => Var::new(self.tape, id),
            Err(e) => panic!("{e}"),
        }
    }

    fn scalar(self, c: f64) -> Self {
        let c = [T::from_f64(c)];
        let scalar = self.tape.constant_from_slice(Shape::scalar(), &c);
        scalar.expect("one value for a scalar")
    }

    /// e^x, elementwise.
    pub fn exp(self) -> Self {
        self.push(Op::Exp, &[])
    }
    /// ln x, elementwise.
    pub fn ln(self) -> Self {
        self.push(Op::Ln, &[])
    }
    /// sqrt x, elementwise.
    pub fn sqrt(self) -> Self {
        self.push(Op::Sqrt, &[])
    }
    /// tanh x, elementwise.
    pub fn tanh(self) -> Self {
        self.push(Op::Tanh, &[])
    }
    /// 1 / (1 + e^-x), elementwise.
    pub fn sigmoid(self) -> Self {
        self.push(Op::Sigmoid, &[])
    }
    /// max(x, 0), elementwise.
    pub fn relu(self) -> Self {
        self.push(Op::Relu, &[])
    }
    /// x for x > 0, 0.01 x otherwise, elementwise (the network's leaky relu; another slope s
    /// is `x.relu() - (-x).relu() * s`).
    pub fn leaky_relu(self) -> Self {
        self.push(Op::LeakyRelu, &[])
    }
    /// self^e, elementwise, broadcasting.
    pub fn pow(self, e: Self) -> Self {
        self.push(Op::Pow, &[e])
    }
    /// self^c for a constant c.
    pub fn powf(self, c: f64) -> Self {
        self.pow(self.scalar(c))
    }

    /// The network's activation F applied to pre-activations (softmax along the last axis).
    pub fn activation(self, act: Activation) -> Self {
        match Op::from_activation(act) {
            Some(op) => self.push(op, &[]),
            None => self,
        }
    }

    /// The matrix product of the last two axes, batched over the others (which broadcast):
    /// `(.., m, k) x (.., k, n) -> (.., m, n)`. Both operands need at least 2 axes.
    ///
    /// ```
    /// use backprop::tensor::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let a = tape.var(Tensor::from_vec([2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap());
    /// let b = tape.var(Tensor::from_vec([2, 1], vec![5.0, 6.0]).unwrap());
    /// let c = a.matmul(b); // [17; 39]
    /// assert_eq!(c.value().as_slice(), [17.0, 39.0]);
    /// // d(Σ c)/da = 1 b^T: every row is b^T
    /// assert_eq!(c.backward().wrt(a).as_slice(), [5.0, 6.0, 5.0, 6.0]);
    /// ```
    pub fn matmul(self, b: Self) -> Self {
        self.push(Op::MatMul { rhs_t: false }, &[b])
    }

    /// `self b^T` with `b` stored `(.., n, k)` (a weight in `nn.Linear`'s and the network's
    /// layout): the transpose is a strided view, nothing is copied.
    pub fn matmul_t(self, b: Self) -> Self {
        self.push(Op::MatMul { rhs_t: true }, &[b])
    }

    /// The same elements with shape `dims`.
    pub fn reshape(self, dims: impl Into<Shape>) -> Self {
        self.push(Op::Reshape { shape: dims.into() }, &[])
    }

    /// The axes reordered: axis i of the result is axis `perm[i]` of `self`.
    pub fn permute(self, perm: &[usize]) -> Self {
        self.push(
            Op::Permute {
                perm: perm.to_vec(),
            },
            &[],
        )
    }

    /// Axes `a` and `b` swapped.
    ///
    /// # Panics
    /// If either is not an axis.
    pub fn transpose(self, a: usize, b: usize) -> Self {
        let mut perm: Vec<usize> = (0..self.shape().rank()).collect();
        assert!(
            a < perm.len() && b < perm.len(),
            "transpose: axes {a}, {b} of {}",
            self.shape()
        );
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// The sum over `axes`; `keepdim` keeps them as 1s.
    pub fn sum(self, axes: &[usize], keepdim: bool) -> Self {
        let axes = axes.to_vec();
        self.push(Op::Sum { axes, keepdim }, &[])
    }

    /// The sum of every element, a scalar.
    pub fn sum_all(self) -> Self {
        let r = self.shape().rank();
        if r == 0 {
            return self;
        }
        self.sum(&(0..r).collect::<Vec<_>>(), false)
    }

    /// The mean over `axes` (composed: the sum times 1/count).
    ///
    /// ```
    /// use backprop::tensor::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec([2, 2], vec![1.0, 2.0, 3.0, 6.0]).unwrap());
    /// let m = x.mean(&[1], true);
    /// assert_eq!((m.shape().dims(), m.value().as_slice()), ([2, 1].as_slice(), [1.5, 4.5].as_slice()));
    /// // d(Σ m)/dx = 1/2 everywhere
    /// assert_eq!(m.backward().wrt(x).as_slice(), [0.5; 4]);
    /// ```
    pub fn mean(self, axes: &[usize], keepdim: bool) -> Self {
        let sum = self.sum(axes, keepdim);
        let dims = self.shape();
        let count: usize = axes.iter().map(|&a| dims.dims()[a]).product();
        sum * (1.0 / count as f64)
    }

    /// The maximum over `axes`; the gradient goes to the first maximum, as PyTorch's
    /// `max(dim)` does.
    pub fn max(self, axes: &[usize], keepdim: bool) -> Self {
        let axes = axes.to_vec();
        self.push(Op::Max { axes, keepdim }, &[])
    }

    /// Elements `start..start + len` along `axis`.
    pub fn narrow(self, axis: usize, start: usize, len: usize) -> Self {
        self.push(Op::Narrow { axis, start, len }, &[])
    }

    /// The tensors joined along `axis`; all other axes must agree.
    ///
    /// # Panics
    /// If `xs` is empty, or the shapes do not fit.
    pub fn concat(xs: &[Self], axis: usize) -> Self {
        let (first, rest) = xs.split_first().expect("concat of no tensors");
        first.push(Op::Concat { axis }, rest)
    }

    /// The tensors, all of one shape, stacked along a new axis `axis` (composed: each
    /// reshaped with a 1 inserted, then concatenated).
    ///
    /// # Panics
    /// If `xs` is empty, `axis` is past the rank, or the shapes differ.
    pub fn stack(xs: &[Self], axis: usize) -> Self {
        let parts: Vec<Self> = xs
            .iter()
            .map(|x| {
                let mut d = x.shape().dims().to_vec();
                assert!(axis <= d.len(), "stack: axis {axis} of {}", x.shape());
                d.insert(axis, 1);
                x.reshape(d)
            })
            .collect();
        Var::concat(&parts, axis)
    }

    /// Rows of `self` picked along axis 0 (an embedding lookup): row r of the result is row
    /// `indices[r]`. A row picked twice gets both gradients.
    pub fn index_select(self, indices: &[usize]) -> Self {
        let indices = indices.to_vec();
        self.push(Op::IndexSelect { indices }, &[])
    }

    /// 2-D convolution of `self` `(N, C_in, H, W)` by `weight` `(C_out, C_in, kH, kW)`
    /// with a stride and zero padding (PyTorch's `F.conv2d` without bias: add one as a
    /// `(C_out, 1, 1)` tensor, which broadcasts).
    ///
    /// ```
    /// use backprop::tensor::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec([1, 1, 3, 3], (1..=9).map(f64::from).collect()).unwrap());
    /// let w = tape.var(Tensor::from_vec([1, 1, 2, 2], vec![1.0, 0.0, 0.0, -1.0]).unwrap());
    /// let y = x.conv2d(w, [1, 1], [0, 0]); // x[i][j] - x[i+1][j+1] = -4 everywhere
    /// assert_eq!(y.value().as_slice(), [-4.0; 4]);
    /// // d(Σ y)/dw[0][0] = the sum of the four top-left windows' corners: 1 + 2 + 4 + 5
    /// assert_eq!(y.sum_all().backward().wrt(w).as_slice()[0], 12.0);
    /// ```
    pub fn conv2d(self, weight: Self, stride: [usize; 2], padding: [usize; 2]) -> Self {
        self.push(Op::Conv2d { stride, padding }, &[weight])
    }

    /// Max-pooling over `kernel` windows, stride = kernel (PyTorch's `MaxPool2d(k)`).
    /// A tie sends the whole gradient to the first maximum in scan order.
    ///
    /// ```
    /// use backprop::tensor::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec([1, 1, 2, 2], vec![0.0, 3.0, 3.0, 1.0]).unwrap());
    /// let y = x.max_pool2d([2, 2]);
    /// assert_eq!(y.value().as_slice(), [3.0]);
    /// assert_eq!(y.sum_all().backward().wrt(x).as_slice(), [0.0, 1.0, 0.0, 0.0]);
    /// ```
    pub fn max_pool2d(self, kernel: [usize; 2]) -> Self {
        self.push(
            Op::MaxPool2d {
                kernel,
                stride: kernel,
            },
            &[],
        )
    }

    /// Average-pooling over `kernel` windows, stride = kernel (PyTorch's `AvgPool2d(k)`).
    pub fn avg_pool2d(self, kernel: [usize; 2]) -> Self {
        self.push(
            Op::AvgPool2d {
                kernel,
                stride: kernel,
            },
            &[],
        )
    }

    /// Softmax along the last axis (stable).
    pub fn softmax(self) -> Self {
        self.push(Op::Softmax, &[])
    }

    /// ln softmax along the last axis (stable).
    pub fn log_softmax(self) -> Self {
        self.push(Op::LogSoftmax, &[])
    }

    /// Inverted dropout: each element zeroed with probability `p`, the rest scaled by
    /// 1/(1 - p), the mask a function of `seed` and the element's index only (so give each
    /// layer and each step its own seed, e.g. from the step counter).
    ///
    /// # Panics
    /// If `p` is not in [0, 1].
    pub fn dropout(self, p: f64, seed: u64) -> Self {
        self.push(Op::Dropout { p, seed }, &[])
    }
}

impl<T: Float> Neg for Var<'_, T> {
    type Output = Self;
    fn neg(self) -> Self {
        self.push(Op::Neg, &[])
    }
}

macro_rules! var_binary {
    ($Trait:ident, $method:ident, $op:expr) => {
        /// Elementwise, broadcasting; panics on shapes that do not broadcast.
        impl<'t, T: Float> $Trait for Var<'t, T> {
            type Output = Self;
            fn $method(self, rhs: Self) -> Self {
                self.push($op, &[rhs])
            }
        }
        /// With a constant scalar.
        impl<'t, T: Float> $Trait<f64> for Var<'t, T> {
            type Output = Self;
            fn $method(self, rhs: f64) -> Self {
                self.push($op, &[self.scalar(rhs)])
            }
        }
        /// A constant scalar with a tensor.
        impl<'t, T: Float> $Trait<Var<'t, T>> for f64 {
            type Output = Var<'t, T>;
            fn $method(self, rhs: Var<'t, T>) -> Var<'t, T> {
                rhs.scalar(self).push($op, &[rhs])
            }
        }
    };
}

var_binary!(Add, add, Op::Add);
var_binary!(Sub, sub, Op::Sub);
var_binary!(Mul, mul, Op::Mul);
var_binary!(Div, div, Op::Div);
