//! The tensor ops and their rules: each op's value and its vector-Jacobian product (VJP)
//! side by side, the whole of the tensor engine's calculus in one table.
//!
//! [`Op::out_shape`] is the bookkeeping (every shape check, no arithmetic); `Op::rule` is the
//! calculus, one arm per op with its value and its VJP next to each other. A VJP may return
//! its gradient in the broadcast shape of the op: the reverse pass sums it back to the
//! argument's shape ([`sum_to`](super::sum_to)), the one place broadcasting is undone.
//!
//! To add an op, add a variant, its shape check in
//! [`Op::out_shape`], and one arm in `Op::rule`.

use super::kernels::{
    avg_pool2d_backward, avg_pool2d_forward, conv2d_backward, conv2d_forward, max_pool2d_backward,
    max_pool2d_forward, Conv2dShape, Pool2dShape,
};
use super::pool::Pool;
use super::shape::{walk, Dims, Shape};
use super::tensor::{bmm_acc, split_matrix, Tensor};
use super::TensorError;
use crate::network::{Activation, Cost, LEAKY_SLOPE};
use crate::Float;

/// A tensor operation. Elementwise binary ops broadcast (NumPy/PyTorch rules).
///
/// ```
/// use backprop::tensor::{Op, Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let a = tape.input(Tensor::from_vec([2], vec![1.0, 2.0]).unwrap());
/// let e = tape.push(Op::Exp, &[a]).unwrap();
/// assert_eq!(tape.value(e).as_slice(), [1f64.exp(), 2f64.exp()]);
/// assert!(tape.push(Op::MatMul { rhs_t: false }, &[a, a]).is_err()); // 1-D: not a matrix
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A leaf whose gradient is wanted (a parameter, or an input to differentiate by).
    Input,
    /// A leaf constant (data, targets): no gradient flows into it.
    Const,
    /// a + b.
    Add,
    /// a - b.
    Sub,
    /// a * b, elementwise.
    Mul,
    /// a / b.
    Div,
    /// a^b, elementwise.
    Pow,
    /// -x.
    Neg,
    /// e^x.
    Exp,
    /// ln x.
    Ln,
    /// sqrt x.
    Sqrt,
    /// tanh x.
    Tanh,
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// max(x, 0).
    Relu,
    /// x for x > 0, 0.01 x otherwise (the network's and PyTorch's default slope).
    LeakyRelu,
    /// The matrix product of the last two axes, batched over (and broadcasting) the others;
    /// with `rhs_t` the right operand is stored transposed (`a b^T`, `nn.Linear`'s layout).
    MatMul {
        /// Whether the right operand is used transposed (a strided view, nothing copied).
        rhs_t: bool,
    },
    /// The same elements with another shape.
    Reshape {
        /// The new shape.
        shape: Shape,
    },
    /// The axes reordered: axis i of the result is axis `perm[i]` of the argument.
    Permute {
        /// A permutation of `0..rank`.
        perm: Vec<usize>,
    },
    /// The sum over `axes`.
    Sum {
        /// The axes to sum over (distinct, at least one).
        axes: Vec<usize>,
        /// Whether the summed axes stay, as 1s.
        keepdim: bool,
    },
    /// The maximum over `axes`; its gradient goes to the first maximum (row-major order).
    Max {
        /// The axes to reduce (distinct, at least one, none of size 0).
        axes: Vec<usize>,
        /// Whether the reduced axes stay, as 1s.
        keepdim: bool,
    },
    /// Elements `start..start + len` along `axis`.
    Narrow {
        /// The axis.
        axis: usize,
        /// The first index kept.
        start: usize,
        /// How many are kept.
        len: usize,
    },
    /// The arguments joined along `axis` (any number of them, at least one).
    Concat {
        /// The axis.
        axis: usize,
    },
    /// Rows of the argument picked along axis 0 (an embedding lookup); a repeated index gets
    /// the sum of its rows' gradients.
    IndexSelect {
        /// Row indices, each below the argument's first dimension.
        indices: Vec<usize>,
    },
    /// 2-D convolution (PyTorch's `conv2d`, cross-correlation) of an input `(N, C_in, H, W)`
    /// by a weight `(C_out, C_in, kH, kW)`: arguments (x, weight). A bias is added after it
    /// as a broadcast `(C_out, 1, 1)`, so it is no part of the op.
    Conv2d {
        /// The step between windows, (rows, columns).
        stride: [usize; 2],
        /// Zeros added on each side, (rows, columns).
        padding: [usize; 2],
    },
    /// Max-pooling of `(N, C, H, W)` over `kernel` windows every `stride`. The gradient of a
    /// window goes whole to its first maximum in scan order (PyTorch's rule for ties).
    MaxPool2d {
        /// The window, (rows, columns).
        kernel: [usize; 2],
        /// The step between windows.
        stride: [usize; 2],
    },
    /// Average-pooling of `(N, C, H, W)` over `kernel` windows every `stride`.
    AvgPool2d {
        /// The window, (rows, columns).
        kernel: [usize; 2],
        /// The step between windows.
        stride: [usize; 2],
    },
    /// Softmax along the last axis, shifted by the maximum so it cannot overflow.
    Softmax,
    /// ln softmax along the last axis, as x - max - ln Σ e^(x - max).
    LogSoftmax,
    /// Inverted dropout: each element kept with probability 1 - p and scaled by 1/(1 - p),
    /// the mask drawn from `seed` and the element's index (so it needs no storage).
    Dropout {
        /// The probability of dropping an element, in [0, 1].
        p: f64,
        /// The random seed of the mask.
        seed: u64,
    },
    /// A cost J = mean over rows of C(a_row, y_row), the rows being the last axis of the
    /// output `a` and all other axes examples (and time steps); arguments (a, y).
    Cost(Cost),
    /// Softmax and log-likelihood fused, on logits z: J = mean over rows of
    /// Σ_j y_j (logsumexp(z) - z_j); dJ/dz = (a - y) / rows. Arguments (z, y).
    SoftmaxLogLikelihood,
    /// Sigmoid and cross-entropy fused, on logits z: J = mean over rows of
    /// Σ_j softplus(z_j) - y_j z_j; dJ/dz = (sigmoid(z) - y) / rows. Arguments (z, y).
    SigmoidCrossEntropy,
}

/// Which half of an op's rule to apply: its value, or its VJP with respect to argument `k`
/// given the op's value `out` and the gradient `g` of the output with respect to it.
pub(crate) enum Pass<'a, T> {
    Value {
        shape: &'a Shape,
    },
    Vjp {
        out: &'a Tensor<T>,
        g: &'a Tensor<T>,
        k: usize,
    },
}

/// The elementwise functions of one argument: (y = f(x), dy/dx from x and y), side by side.
type Unary<T> = (fn(T) -> T, fn(T, T) -> T);
fn unary<T: Float>(op: &Op) -> Unary<T> {
    match op {
        Op::Neg => (|x| -x, |_, _| -T::one()),
        Op::Exp => (|x| x.exp(), |_, y| y),
        Op::Ln => (|x| x.ln(), |x, _| T::one() / x),
        Op::Sqrt => (|x| x.sqrt(), |_, y| T::one() / (y + y)),
        Op::Tanh => (|x| x.tanh(), |_, y| T::one() - y * y),
        Op::Sigmoid => (
            |x| T::one() / (T::one() + (-x).exp()),
            |_, y| y * (T::one() - y),
        ),
        // The relus take F'(0) = 0 (and the slope), as the network and PyTorch do.
        Op::Relu => (
            |x| if x > T::zero() { x } else { T::zero() },
            |x, _| if x > T::zero() { T::one() } else { T::zero() },
        ),
        Op::LeakyRelu => (
            |x| {
                if x > T::zero() {
                    x
                } else {
                    T::from_f64(LEAKY_SLOPE) * x
                }
            },
            |x, _| {
                if x > T::zero() {
                    T::one()
                } else {
                    T::from_f64(LEAKY_SLOPE)
                }
            },
        ),
        _ => unreachable!("{op:?} is not elementwise unary"),
    }
}

/// The elementwise functions of two arguments: (z = f(a, b), dz/da, dz/db), the partials
/// from (a, b, z), side by side. The same rules as the scalar graph's `Op::rule`.
type Binary<T> = (fn(T, T) -> T, fn(T, T, T) -> T, fn(T, T, T) -> T);
fn binary<T: Float>(op: &Op) -> Binary<T> {
    match op {
        Op::Add => (|a, b| a + b, |_, _, _| T::one(), |_, _, _| T::one()),
        Op::Sub => (|a, b| a - b, |_, _, _| T::one(), |_, _, _| -T::one()),
        Op::Mul => (|a, b| a * b, |_, b, _| b, |a, _, _| a),
        Op::Div => (|a, b| a / b, |_, b, _| T::one() / b, |_, b, z| -z / b),
        Op::Pow => (
            |a, b| a.powf(b),
            // b a^(b-1), with 0 at a = b = 0 (0 · inf there, taken as 0).
            |a, b, _| {
                if a == T::zero() && b == T::zero() {
                    T::zero()
                } else {
                    b * a.powf(b - T::one())
                }
            },
            // a^b ln a, defined for a > 0 only; 0 elsewhere by convention.
            |a, _, z| if a > T::zero() { z * a.ln() } else { T::zero() },
        ),
        _ => unreachable!("{op:?} is not elementwise binary"),
    }
}

impl Op {
    /// The number of arguments: 0 for leaves, 2 for `+ - * / pow`, matmul and the costs,
    /// `None` for concat (any number, at least one), 1 otherwise.
    ///
    /// ```
    /// use backprop::tensor::Op;
    /// assert_eq!((Op::Input.arity(), Op::Exp.arity(), Op::Add.arity()), (Some(0), Some(1), Some(2)));
    /// assert_eq!(Op::Concat { axis: 0 }.arity(), None);
    /// ```
    pub fn arity(&self) -> Option<usize> {
        Some(match self {
            Op::Input | Op::Const => 0,
            Op::Concat { .. } => return None,
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow | Op::MatMul { .. } => 2,
            Op::Conv2d { .. } => 2,
            Op::Cost(_) | Op::SoftmaxLogLikelihood | Op::SigmoidCrossEntropy => 2,
            _ => 1,
        })
    }

    /// The op's name, as errors spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Const => "const",
            Op::Add => "+",
            Op::Sub => "-",
            Op::Mul => "*",
            Op::Div => "/",
            Op::Pow => "pow",
            Op::Neg => "neg",
            Op::Exp => "exp",
            Op::Ln => "ln",
            Op::Sqrt => "sqrt",
            Op::Tanh => "tanh",
            Op::Sigmoid => "sigmoid",
            Op::Relu => "relu",
            Op::LeakyRelu => "leaky-relu",
            Op::MatMul { .. } => "matmul",
            Op::Reshape { .. } => "reshape",
            Op::Permute { .. } => "permute",
            Op::Sum { .. } => "sum",
            Op::Max { .. } => "max",
            Op::Narrow { .. } => "narrow",
            Op::Concat { .. } => "concat",
            Op::IndexSelect { .. } => "index-select",
            Op::Conv2d { .. } => "conv2d",
            Op::MaxPool2d { .. } => "max-pool2d",
            Op::AvgPool2d { .. } => "avg-pool2d",
            Op::Softmax => "softmax",
            Op::LogSoftmax => "log-softmax",
            Op::Dropout { .. } => "dropout",
            Op::Cost(c) => c.name(),
            Op::SoftmaxLogLikelihood => "softmax-log-likelihood",
            Op::SigmoidCrossEntropy => "sigmoid-cross-entropy",
        }
    }

    /// The op from a network activation (`None` for identity, which is no op).
    pub fn from_activation(act: Activation) -> Option<Op> {
        match act {
            Activation::Identity => None,
            Activation::Sigmoid => Some(Op::Sigmoid),
            Activation::Tanh => Some(Op::Tanh),
            Activation::Relu => Some(Op::Relu),
            Activation::LeakyRelu => Some(Op::LeakyRelu),
            Activation::Softmax => Some(Op::Softmax),
        }
    }

    /// The shape of the op's value for arguments of shapes `x`, or what is wrong with them.
    /// All of the checking lives here; the rules trust it. The argument count is the tape's
    /// to check.
    ///
    /// ```
    /// use backprop::tensor::{Op, Shape};
    /// let (a, b) = (Shape::new(&[4, 2, 3]), Shape::new(&[3, 5]));
    /// assert_eq!(Op::MatMul { rhs_t: false }.out_shape(&[&a, &b]).unwrap(), Shape::new(&[4, 2, 5]));
    /// assert!(Op::Add.out_shape(&[&a, &b]).is_err());
    /// ```
    pub fn out_shape(&self, x: &[&Shape]) -> Result<Shape, TensorError> {
        let op = self.name();
        let axis_err = |axis: usize, rank: usize| TensorError::Axis { op, axis, rank };
        let check_axes = |axes: &[usize], s: &Shape| -> Result<(), TensorError> {
            if axes.is_empty() {
                return Err(TensorError::NoAxes { op });
            }
            for (i, &a) in axes.iter().enumerate() {
                if a >= s.rank() || axes[..i].contains(&a) {
                    return Err(axis_err(a, s.rank()));
                }
            }
            Ok(())
        };
        let need_rows = |s: &Shape| {
            if s.dims().last().is_some_and(|&k| k > 0) {
                Ok(())
            } else {
                Err(TensorError::Rank {
                    op,
                    need: "at least 1 axis, the last non-empty",
                    shape: s.clone(),
                })
            }
        };
        match self {
            Op::Input | Op::Const => Ok(x[0].clone()),
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow => {
                x[0].broadcast(x[1]).ok_or_else(|| TensorError::Broadcast {
                    op,
                    lhs: x[0].clone(),
                    rhs: x[1].clone(),
                })
            }
            Op::Neg
            | Op::Exp
            | Op::Ln
            | Op::Sqrt
            | Op::Tanh
            | Op::Sigmoid
            | Op::Relu
            | Op::LeakyRelu => Ok(x[0].clone()),
            Op::MatMul { rhs_t } => {
                let mismatch = || TensorError::ShapeMismatch {
                    op,
                    lhs: x[0].clone(),
                    rhs: x[1].clone(),
                };
                if x[0].rank() < 2 || x[1].rank() < 2 {
                    return Err(mismatch());
                }
                let (ab, m, k) = split_matrix(x[0]);
                let (bb, r, c) = split_matrix(x[1]);
                let (k2, n) = if *rhs_t { (c, r) } else { (r, c) };
                let mut shape = ab.broadcast(&bb).filter(|_| k == k2).ok_or_else(mismatch)?;
                shape.push(m);
                shape.push(n);
                Ok(shape)
            }
            Op::Reshape { shape } => {
                if shape.checked_numel() == Some(x[0].numel()) {
                    Ok(shape.clone())
                } else {
                    Err(TensorError::Reshape {
                        from: x[0].clone(),
                        to: shape.clone(),
                    })
                }
            }
            Op::Permute { perm } => {
                let r = x[0].rank();
                let mut seen = vec![false; r];
                let ok = perm.len() == r
                    && perm
                        .iter()
                        .all(|&p| p < r && !std::mem::replace(&mut seen[p], true));
                if !ok {
                    return Err(TensorError::Permutation {
                        perm: perm.clone(),
                        rank: r,
                    });
                }
                Ok(perm
                    .iter()
                    .map(|&p| x[0].dims()[p])
                    .collect::<Vec<_>>()
                    .into())
            }
            Op::Sum { axes, keepdim } | Op::Max { axes, keepdim } => {
                check_axes(axes, x[0])?;
                if matches!(self, Op::Max { .. }) && axes.iter().any(|&a| x[0].dims()[a] == 0) {
                    return Err(TensorError::Empty { op });
                }
                Ok(if *keepdim {
                    x[0].keepdim(axes)
                } else {
                    x[0].without(axes)
                })
            }
            Op::Narrow { axis, start, len } => {
                if *axis >= x[0].rank() {
                    return Err(axis_err(*axis, x[0].rank()));
                }
                let dim = x[0].dims()[*axis];
                if start.checked_add(*len).is_none_or(|end| end > dim) {
                    return Err(TensorError::Range {
                        op,
                        axis: *axis,
                        start: *start,
                        len: *len,
                        dim,
                    });
                }
                let mut d = x[0].dims().to_vec();
                d[*axis] = *len;
                Ok(d.into())
            }
            Op::Concat { axis } => {
                let first = x.first().ok_or(TensorError::Empty { op })?;
                if *axis >= first.rank() {
                    return Err(axis_err(*axis, first.rank()));
                }
                let mut total = 0usize;
                for s in x {
                    let same_rank = s.rank() == first.rank();
                    let others_agree = same_rank
                        && (0..s.rank()).all(|i| i == *axis || s.dims()[i] == first.dims()[i]);
                    if !others_agree {
                        return Err(TensorError::ShapeMismatch {
                            op,
                            lhs: (*first).clone(),
                            rhs: (*s).clone(),
                        });
                    }
                    total = total
                        .checked_add(s.dims()[*axis])
                        .ok_or(TensorError::TooLarge)?;
                }
                let mut d = first.dims().to_vec();
                d[*axis] = total;
                Shape::from(d.clone())
                    .checked_numel()
                    .ok_or(TensorError::TooLarge)?;
                Ok(d.into())
            }
            Op::IndexSelect { indices } => {
                let Some(&rows) = x[0].dims().first() else {
                    return Err(TensorError::Rank {
                        op,
                        need: "at least 1 axis",
                        shape: x[0].clone(),
                    });
                };
                if let Some(&index) = indices.iter().find(|&&i| i >= rows) {
                    return Err(TensorError::Index { index, len: rows });
                }
                let mut d = x[0].dims().to_vec();
                d[0] = indices.len();
                let s = Shape::from(d);
                s.checked_numel().ok_or(TensorError::TooLarge)?;
                Ok(s)
            }
            Op::Conv2d { .. } => Ok(Shape::new(&self.conv_shape(x[0], x[1])?.output_dims())),
            Op::MaxPool2d { .. } | Op::AvgPool2d { .. } => {
                Ok(Shape::new(&self.pool_shape(x[0])?.output_dims()))
            }
            Op::Softmax | Op::LogSoftmax => {
                need_rows(x[0])?;
                Ok(x[0].clone())
            }
            Op::Dropout { p, .. } => {
                if (0.0..=1.0).contains(p) {
                    Ok(x[0].clone())
                } else {
                    Err(TensorError::Probability { p: *p })
                }
            }
            Op::Cost(_) | Op::SoftmaxLogLikelihood | Op::SigmoidCrossEntropy => {
                if x[0] != x[1] {
                    return Err(TensorError::ShapeMismatch {
                        op,
                        lhs: x[0].clone(),
                        rhs: x[1].clone(),
                    });
                }
                need_rows(x[0])?;
                Ok(Shape::scalar())
            }
        }
    }

    /// A convolution's sizes from its arguments' shapes.
    fn conv_shape(&self, x: &Shape, w: &Shape) -> Result<Conv2dShape, TensorError> {
        let Op::Conv2d { stride, padding } = self else {
            unreachable!("not a convolution")
        };
        let (x4, w4) = (four(self.name(), x)?, four(self.name(), w)?);
        Ok(Conv2dShape::new(x4, w4, *stride, *padding)?)
    }

    /// A pooling's sizes from its argument's shape.
    fn pool_shape(&self, x: &Shape) -> Result<Pool2dShape, TensorError> {
        let (Op::MaxPool2d { kernel, stride } | Op::AvgPool2d { kernel, stride }) = self else {
            unreachable!("not a pooling")
        };
        Ok(Pool2dShape::new(
            four(self.name(), x)?,
            *kernel,
            *stride,
            [0, 0],
        )?)
    }

    /// The op's rule: its value (`Pass::Value`), or its VJP with respect to argument `k`
    /// (`Pass::Vjp`), side by side in one arm per op. Shapes were checked by `out_shape`.
    /// Each VJP is written as `d<arg> = ...` in terms of g = d(output)/d(op's value).
    /// Every result is written into a buffer from `pool` (the tape's, reused from step to
    /// step), so `pool.zeros(s)` stands where `Tensor::zeros(s)` would.
    pub(crate) fn rule<T: Float>(
        &self,
        x: &[&Tensor<T>],
        pass: Pass<'_, T>,
        pool: &mut Pool<T>,
    ) -> Tensor<T> {
        use Pass::{Value, Vjp};
        match self {
            Op::Input | Op::Const => unreachable!("a leaf has no rule"),
            Op::Neg
            | Op::Exp
            | Op::Ln
            | Op::Sqrt
            | Op::Tanh
            | Op::Sigmoid
            | Op::Relu
            | Op::LeakyRelu => {
                let (f, df) = unary::<T>(self);
                match pass {
                    Value { .. } => pool.map(x[0], f),
                    // dx = g f'(x), f' from the table beside f
                    Vjp { out, g, .. } => zip3(pool, x[0], out, g, |x, y, g| g * df(x, y)),
                }
            }
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow => {
                let (f, da, db) = binary::<T>(self);
                match pass {
                    Value { shape } => Tensor::zip_broadcast(x[0], x[1], shape, f, pool),
                    // da = g dz/da, db = g dz/db, in the broadcast shape (summed back later).
                    // For + and - the partials are ±1: the VJP is ±g, with no arithmetic.
                    Vjp { g, k, .. } if matches!(self, Op::Add | Op::Sub) => {
                        if k == 1 && *self == Op::Sub {
                            pool.map(g, |v| -v)
                        } else {
                            pool.copy(g)
                        }
                    }
                    Vjp { out, g, k } => {
                        let d = if k == 0 { da } else { db };
                        let (a, b) = (x[0], x[1]);
                        let (sa, sb) = (a.shape().strides_over(out.shape()), {
                            b.shape().strides_over(out.shape())
                        });
                        let (av, bv, zv, gv) =
                            (a.as_slice(), b.as_slice(), out.as_slice(), g.as_slice());
                        let mut n = 0;
                        let mut dx = pool.take(out.shape());
                        let data = dx.as_mut_slice();
                        walk(out.dims(), [&sa, &sb], |[i, j]| {
                            data[n] = gv[n] * d(av[i], bv[j], zv[n]);
                            n += 1;
                        });
                        dx
                    }
                }
            }
            Op::MatMul { rhs_t } => {
                let (a, b, t) = (x[0], x[1], *rhs_t);
                let batch = |z: &Shape| split_matrix(z).0;
                match pass {
                    // z = a b (a b^T), one product per batch index
                    Value { shape } => {
                        let mut z = pool.zeros(shape);
                        bmm_acc(&mut z, a, false, b, t, &batch(shape));
                        z
                    }
                    // da = g b^T (g b when b is stored transposed)
                    Vjp { out, g, k: 0 } => {
                        let mut da = pool.zeros(a.shape());
                        bmm_acc(&mut da, g, false, b, !t, &batch(out.shape()));
                        da
                    }
                    // db = a^T g (stored transposed: g^T a); a batch-broadcast b gets the sum
                    Vjp { out, g, .. } => {
                        let mut db = pool.zeros(b.shape());
                        if t {
                            bmm_acc(&mut db, g, true, a, false, &batch(out.shape()));
                        } else {
                            bmm_acc(&mut db, a, true, g, false, &batch(out.shape()));
                        }
                        db
                    }
                }
            }
            Op::Reshape { .. } => match pass {
                Value { shape } => pool.copy(x[0]).reshape(shape).expect("checked"),
                // dx = g in x's shape
                Vjp { g, .. } => pool.copy(g).reshape(x[0].shape()).expect("same size"),
            },
            Op::Permute { perm } => match pass {
                Value { .. } => x[0].permute_unchecked(perm, pool),
                // dx = g with the axes put back: the inverse permutation
                Vjp { g, .. } => {
                    let mut inv: Dims = smallvec::smallvec![0; perm.len()];
                    perm.iter().enumerate().for_each(|(i, &p)| inv[p] = i);
                    g.permute_unchecked(&inv, pool)
                }
            },
            Op::Sum { axes, .. } => {
                let keep = x[0].shape().keepdim(axes);
                match pass {
                    Value { shape } => x[0].sum_to(&keep, pool).reshape(shape).expect("same size"),
                    // dx = g copied along the summed axes
                    Vjp { g, .. } => {
                        let g = pool.copy(g).reshape(&keep).expect("same size");
                        let dx = g.broadcast_to(x[0].shape(), pool);
                        pool.give(g);
                        dx
                    }
                }
            }
            Op::Max { axes, .. } => {
                let keep = x[0].shape().keepdim(axes);
                match pass {
                    Value { shape } => x[0].max_to(&keep, pool).reshape(shape).expect("same size"),
                    // dx = g at the first maximum of each reduced group (row-major), 0 elsewhere
                    Vjp { out, g, .. } => {
                        let (xv, m, gv) = (x[0].as_slice(), out.as_slice(), g.as_slice());
                        let mut dx = pool.zeros(x[0].shape());
                        let mut taken = vec![false; m.len()];
                        let (src, dst) =
                            (x[0].shape().row_strides(), keep.strides_over(x[0].shape()));
                        let d = dx.as_mut_slice();
                        walk(x[0].dims(), [&src, &dst], |[i, o]| {
                            if !taken[o] && xv[i] == m[o] {
                                d[i] = gv[o];
                                taken[o] = true;
                            }
                        });
                        dx
                    }
                }
            }
            Op::Narrow { axis, start, len } => match pass {
                Value { .. } => x[0].narrow_unchecked(*axis, *start, *len, pool),
                // dx = g in the narrowed part, 0 elsewhere
                Vjp { g, .. } => {
                    let mut dx = pool.zeros(x[0].shape());
                    dx.add_narrow(*axis, *start, g);
                    dx
                }
            },
            Op::Concat { axis } => {
                let offset = |k: usize| x[..k].iter().map(|t| t.dims()[*axis]).sum::<usize>();
                match pass {
                    Value { shape } => {
                        let mut z = pool.zeros(shape);
                        for (k, t) in x.iter().enumerate() {
                            z.add_narrow(*axis, offset(k), t);
                        }
                        z
                    }
                    // dx_k = g's part that came from x_k
                    Vjp { g, k, .. } => {
                        g.narrow_unchecked(*axis, offset(k), x[k].dims()[*axis], pool)
                    }
                }
            }
            Op::IndexSelect { indices } => {
                let row = x[0].numel() / x[0].dims()[0].max(1);
                match pass {
                    Value { shape } => {
                        let xv = x[0].as_slice();
                        let mut z = pool.take(shape);
                        let rows = z.as_mut_slice().chunks_exact_mut(row.max(1));
                        for (dst, &i) in rows.zip(indices) {
                            dst.copy_from_slice(&xv[i * row..(i + 1) * row]);
                        }
                        z
                    }
                    // dx[indices[r]] += g[r]: a row picked twice gets both gradients
                    Vjp { g, .. } => {
                        let mut dx = pool.zeros(x[0].shape());
                        let (d, gv) = (dx.as_mut_slice(), g.as_slice());
                        for (r, &i) in indices.iter().enumerate() {
                            let src = &gv[r * row..(r + 1) * row];
                            for (d, &s) in d[i * row..(i + 1) * row].iter_mut().zip(src) {
                                *d += s;
                            }
                        }
                        dx
                    }
                }
            }
            // The kernels of `tensor::kernels`; the VJPs redo the forward's unfolding (or the
            // pooling's argmax) rather than keep it on the tape, in the pool's scratch.
            Op::Conv2d { .. } => {
                let (xs, w) = (x[0], x[1]);
                let s = self
                    .conv_shape(xs.shape(), w.shape())
                    .expect("checked by out_shape");
                let mut y = pool.zeros(&Shape::new(&s.output_dims()));
                let (xv, wv, ws) = (xs.as_slice(), w.as_slice(), &mut pool.conv);
                conv2d_forward(&s, xv, wv, None, y.as_mut_slice(), ws);
                match pass {
                    // y = W ⋆ x
                    Value { .. } => y,
                    // dx = Wᵀ ⋆ g (col2im of Wᵀ g), dW = g ⋆ x (g · colsᵀ): both by GEMM
                    Vjp { g, k, .. } => {
                        pool.give(y);
                        let mut dw = pool.zeros(w.shape());
                        let mut dx = pool.zeros(xs.shape());
                        let dx_slot = (k == 0).then_some(dx.as_mut_slice());
                        let (g, ws) = (g.as_slice(), &mut pool.conv);
                        conv2d_backward(&s, wv, g, ws, dx_slot, dw.as_mut_slice(), None);
                        let (keep, spare) = if k == 0 { (dx, dw) } else { (dw, dx) };
                        pool.give(spare);
                        keep
                    }
                }
            }
            Op::MaxPool2d { .. } => {
                let s = self.pool_shape(x[0].shape()).expect("checked by out_shape");
                let mut y = pool.zeros(&Shape::new(&s.output_dims()));
                let mut argmax = std::mem::take(&mut pool.argmax);
                argmax.resize(y.numel(), 0);
                max_pool2d_forward(&s, x[0].as_slice(), y.as_mut_slice(), &mut argmax);
                let result = match pass {
                    // y = the window's maximum
                    Value { .. } => y,
                    // dx = g at the window's first maximum, 0 elsewhere
                    Vjp { g, .. } => {
                        pool.give(y);
                        let mut dx = pool.zeros(x[0].shape());
                        max_pool2d_backward(&s, g.as_slice(), &argmax, dx.as_mut_slice());
                        dx
                    }
                };
                pool.argmax = argmax;
                result
            }
            Op::AvgPool2d { .. } => {
                let s = self.pool_shape(x[0].shape()).expect("checked by out_shape");
                match pass {
                    // y = the window's mean
                    Value { shape } => {
                        let mut y = pool.zeros(shape);
                        avg_pool2d_forward(&s, x[0].as_slice(), y.as_mut_slice());
                        y
                    }
                    // dx = g / (kH kW) over each window it was averaged in
                    Vjp { g, .. } => {
                        let mut dx = pool.zeros(x[0].shape());
                        avg_pool2d_backward(&s, g.as_slice(), dx.as_mut_slice());
                        dx
                    }
                }
            }
            Op::Softmax => match pass {
                Value { .. } => per_row(pool, x[0], |z, a| softmax(z, a)),
                // dx = y (g - Σ_j g_j y_j), per row
                Vjp { out, g, .. } => per_row2(pool, out, g, |y, g, d| {
                    let dot: T = y.iter().zip(g).map(|(&y, &g)| y * g).sum();
                    for ((d, &y), &g) in d.iter_mut().zip(y).zip(g) {
                        *d = y * (g - dot);
                    }
                }),
            },
            Op::LogSoftmax => match pass {
                Value { .. } => per_row(pool, x[0], |z, y| {
                    let lse = logsumexp(z);
                    y.iter_mut().zip(z).for_each(|(y, &z)| *y = z - lse);
                }),
                // dx = g - softmax(x) Σ_j g_j, per row (softmax = e^y)
                Vjp { out, g, .. } => per_row2(pool, out, g, |y, g, d| {
                    let sum: T = g.iter().copied().sum();
                    for ((d, &y), &g) in d.iter_mut().zip(y).zip(g) {
                        *d = g - y.exp() * sum;
                    }
                }),
            },
            Op::Dropout { p, seed } => {
                let scale = T::from_f64(if *p < 1.0 { 1.0 / (1.0 - p) } else { 0.0 });
                let mask = |i: usize| if keep(*seed, i, *p) { scale } else { T::zero() };
                let masked = |t: &Tensor<T>, pool: &mut Pool<T>| {
                    let mut out = pool.take(t.shape());
                    let data = out.as_mut_slice().iter_mut().zip(t.as_slice());
                    data.enumerate().for_each(|(i, (o, &v))| *o = v * mask(i));
                    out
                };
                match pass {
                    Value { .. } => masked(x[0], pool),
                    // dx = g * mask / (1 - p), the same mask
                    Vjp { g, .. } => masked(g, pool),
                }
            }
            Op::Cost(cost) => {
                let (a, y) = (x[0], x[1]);
                let (rows, _) = a.rows();
                match pass {
                    // J = (1/rows) Σ_rows C(a_row, y_row), C as the network defines it
                    Value { .. } => {
                        let sum = sum_rows(a, y, |a, y| cost.cost(a, y));
                        pool.scalar(sum / T::from_f64(rows as f64))
                    }
                    // da = g/rows dC/da (the network's dcost_da)
                    Vjp { g, k: 0, .. } => {
                        let s = g.item() / T::from_f64(rows as f64);
                        let mut d = pool.zeros(a.shape());
                        cost.dcost_da(a.as_slice(), y.as_slice(), d.as_mut_slice());
                        d.as_mut_slice().iter_mut().for_each(|v| *v *= s);
                        d
                    }
                    // dy = g/rows dC/dy: -(a - y); ln((1 - a)/a); -ln a
                    Vjp { g, .. } => {
                        let s = g.item() / T::from_f64(rows as f64);
                        let dy: fn(T, T) -> T = match cost {
                            Cost::Quadratic => |a, y| y - a,
                            Cost::CrossEntropy => |a, _| (T::one() - a).ln() - a.ln(),
                            Cost::LogLikelihood => |a, _| -a.ln(),
                        };
                        zip3(pool, a, y, y, |a, y, _| s * dy(a, y))
                    }
                }
            }
            Op::SoftmaxLogLikelihood => {
                let (z, y) = (x[0], x[1]);
                let (rows, _) = z.rows();
                let per = T::one() / T::from_f64(rows as f64);
                match pass {
                    // J = (1/rows) Σ_rows Σ_j y_j (logsumexp(z) - z_j)
                    Value { .. } => {
                        let mut a = pool.take(&Shape::new(&[z.rows().1]));
                        let sum = sum_rows(z, y, |z, y| {
                            softmax(z, a.as_mut_slice());
                            let a = a.as_slice();
                            Cost::LogLikelihood.cost_from_z(Activation::Softmax, z, a, y)
                        });
                        pool.give(a);
                        pool.scalar(sum * per)
                    }
                    // dz = g/rows (a Σ_j y_j - y) = g/rows (a - y) for a one-hot or
                    // probability y, a = softmax(z): the network's δ^L = a^L - y
                    Vjp { g, k: 0, .. } => {
                        let s = g.item() * per;
                        per_row2(pool, z, y, |z, y, d| {
                            softmax(z, d);
                            let total: T = y.iter().copied().sum();
                            d.iter_mut()
                                .zip(y)
                                .for_each(|(d, &y)| *d = s * (*d * total - y));
                        })
                    }
                    // dy_j = g/rows (logsumexp(z) - z_j)
                    Vjp { g, .. } => {
                        let s = g.item() * per;
                        per_row(pool, z, |z, d| {
                            let lse = logsumexp(z);
                            d.iter_mut().zip(z).for_each(|(d, &z)| *d = s * (lse - z));
                        })
                    }
                }
            }
            Op::SigmoidCrossEntropy => {
                let (z, y) = (x[0], x[1]);
                let per = T::one() / T::from_f64(z.rows().0 as f64);
                match pass {
                    // J = (1/rows) Σ softplus(z) - y z
                    Value { .. } => {
                        let sum = sum_rows(z, y, |z, y| {
                            Cost::CrossEntropy.cost_from_z(Activation::Sigmoid, z, z, y)
                        });
                        pool.scalar(sum * per)
                    }
                    // dz = g/rows (sigmoid(z) - y)
                    Vjp { g, k: 0, .. } => {
                        let (s, sigmoid) = (g.item() * per, unary::<T>(&Op::Sigmoid).0);
                        zip3(pool, z, y, y, |z, y, _| s * (sigmoid(z) - y))
                    }
                    // dy = -g/rows z
                    Vjp { g, .. } => {
                        let s = g.item() * per;
                        pool.map(z, |z| -s * z)
                    }
                }
            }
        }
    }
}

/// `f(a, b, c)` elementwise over three tensors of one shape.
fn zip3<T: Float>(
    pool: &mut Pool<T>,
    a: &Tensor<T>,
    b: &Tensor<T>,
    c: &Tensor<T>,
    f: impl Fn(T, T, T) -> T,
) -> Tensor<T> {
    let (av, bv, cv) = (a.as_slice(), b.as_slice(), c.as_slice());
    let mut out = pool.take(a.shape());
    let data = out.as_mut_slice().iter_mut().enumerate();
    data.for_each(|(i, o)| *o = f(av[i], bv[i], cv[i]));
    out
}

/// A tensor of `x`'s shape, each row along the last axis written by `f(x_row, out_row)`.
fn per_row<T: Float>(
    pool: &mut Pool<T>,
    x: &Tensor<T>,
    mut f: impl FnMut(&[T], &mut [T]),
) -> Tensor<T> {
    let (_, k) = x.rows();
    let mut out = pool.zeros(x.shape());
    for (xr, or) in x.as_slice().chunks(k).zip(out.as_mut_slice().chunks_mut(k)) {
        f(xr, or);
    }
    out
}

/// [`per_row`] over two tensors of one shape.
fn per_row2<T: Float>(
    pool: &mut Pool<T>,
    x: &Tensor<T>,
    y: &Tensor<T>,
    mut f: impl FnMut(&[T], &[T], &mut [T]),
) -> Tensor<T> {
    let (_, k) = x.rows();
    let mut out = pool.zeros(x.shape());
    let rows = x.as_slice().chunks(k).zip(y.as_slice().chunks(k));
    for ((xr, yr), or) in rows.zip(out.as_mut_slice().chunks_mut(k)) {
        f(xr, yr, or);
    }
    out
}

/// Σ over the rows (last axis) of `f(a_row, y_row)`.
fn sum_rows<T: Float>(a: &Tensor<T>, y: &Tensor<T>, mut f: impl FnMut(&[T], &[T]) -> T) -> T {
    let (_, k) = a.rows();
    let rows = a.as_slice().chunks(k).zip(y.as_slice().chunks(k));
    rows.map(|(a, y)| f(a, y)).fold(T::zero(), |s, c| s + c)
}

/// ln Σ e^z, shifted by the maximum so that nothing overflows.
fn logsumexp<T: Float>(z: &[T]) -> T {
    let max = z.iter().fold(T::neg_infinity(), |m, &z| m.max(z));
    max + z.iter().map(|&z| (z - max).exp()).sum::<T>().ln()
}

/// Softmax of one row, the network's own (shifted by the maximum).
fn softmax<T: Float>(z: &[T], a: &mut [T]) {
    Activation::Softmax.f(z, a);
}

/// Whether element `i` survives dropout with probability `p` under `seed`: a counter-based
/// uniform draw (the SplitMix64 finaliser of seed and index), so the reverse pass re-derives
/// the same mask instead of storing it.
pub(crate) fn keep(seed: u64, i: usize, p: f64) -> bool {
    let mut z = seed.wrapping_add(
        (i as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let u = (z >> 11) as f64 / (1u64 << 53) as f64;
    u >= p
}

/// The four dimensions of an image batch `(N, C, H, W)`.
fn four(op: &'static str, s: &Shape) -> Result<[usize; 4], TensorError> {
    s.dims().try_into().map_err(|_| TensorError::Rank {
        op,
        need: "4 axes (N, C, H, W)",
        shape: s.clone(),
    })
}
