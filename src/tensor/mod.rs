//! N-dimensional tensors and reverse mode over them: the scalar graph's design, with a
//! tensor at every node.
//!
//! - [`Tensor`]: an owned row-major array of `f32` or `f64` (any [`Float`](crate::Float))
//!   with a [`Shape`].
//! - [`Tape`]: the graph, nodes in creation order (a topological order) in an arena,
//!   addressed by `Copy` ids ([`TensorId`], and the [`Var`] handle); each value computed as
//!   its node is added.
//! - [`Op`]: the ops, each with its value and its vector-Jacobian product side by side in one
//!   table of rules (`op.rs`), as [`graph::Op`](crate::graph::Op) does for scalars.
//! - [`kernels`]: the hand-written kernels where speed needs them: conv2d by unfold + GEMM,
//!   pooling with the saved argmax, the LSTM and RNN steps. Convolution and pooling are
//!   also ops of the table ([`Var::conv2d`], [`Var::max_pool2d`], [`Var::avg_pool2d`]), so a
//!   model that is not a plain sequence (a residual block, `relu(conv(x)) + x`) is written
//!   with them directly; [`crate::nn::Sequential`] runs the same kernels with its own VJPs.
//! - [`Tape::backward`]: one reverse loop, no recursion; gradients accumulate per tensor
//!   (a weight used at every time step gets the sum); broadcasting is undone in one place
//!   ([`sum_to`]).
//! - Costs with the network's meanings ([`Var::cost`], the fused
//!   [`Var::softmax_log_likelihood`]); [`gradcheck`] against central differences.
//!
//! Elementwise ops broadcast by NumPy's and PyTorch's rules; the matrix product is batched and
//! goes through [`crate::linalg::matmul`], with transposes as strided views.
//!
//! ## A tiny model: y = sigmoid(W x + b)
//!
//! With J = Σ_j y_j, dJ/dz_j = y_j (1 - y_j), so dJ/db = y (1 - y) and dJ/dW = (y (1 - y)) x^T.
//!
//! ```
//! use backprop::tensor::{Tape, Tensor};
//! let tape = Tape::<f64>::new();
//! let w = tape.var(Tensor::from_vec([2, 3], vec![0.1, -0.2, 0.3, 0.4, 0.5, -0.6]).unwrap());
//! let b = tape.var(Tensor::from_vec([2, 1], vec![0.05, -0.05]).unwrap());
//! let x = tape.constant_var(Tensor::from_vec([3, 1], vec![1.0, 2.0, 3.0]).unwrap());
//! let y = (w.matmul(x) + b).sigmoid(); // z = (0.65, -0.45)
//! let j = y.sum_all();
//! let g = j.backward();
//! let yv = y.to_tensor();
//! let dz: Vec<f64> = yv.as_slice().iter().map(|y| y * (1.0 - y)).collect();
//! assert_eq!(g.wrt(b).as_slice(), dz);
//! let dw: Vec<f64> = dz.iter().flat_map(|d| [1.0, 2.0, 3.0].map(|x| d * x)).collect();
//! assert_eq!(g.wrt(w).as_slice(), dw);
//! assert!((yv.as_slice()[0] - 1.0 / (1.0 + (-0.65f64).exp())).abs() < 1e-15);
//! ```
//!
//! ## Training: rebuild the graph each step
//!
//! The tape records one pass. A training loop puts the parameters on it once; each step
//! truncates it back to them ([`Tape::truncate`]), puts the batch on, and steps the
//! parameters in place with the gradients ([`Tape::value_mut`]). Values and gradients live in
//! buffers the tape reuses, so a warm step allocates nothing beyond what the GEMM crate does
//! per product. Here, plain gradient descent on a softmax classifier:
//!
//! ```
//! use backprop::tensor::{Tape, Tensor};
//! let x = [1.0, 0.0, 0.9, 0.2, 0.0, 1.0, 0.1, 0.8];
//! let y = Tensor::<f64>::one_hot(&[0, 0, 1, 1], 2).unwrap();
//! let mut tape = Tape::new();
//! let (w, b) = (tape.input(Tensor::zeros([2, 2])), tape.input(Tensor::zeros([2])));
//! let mut costs = Vec::new();
//! for _ in 0..50 {
//!     tape.truncate(2); // keeps w and b
//!     let x = tape.constant_from_slice([4, 2], &x).unwrap();
//!     let y = tape.constant_from_slice([4, 2], y.as_slice()).unwrap();
//!     let z = x.matmul_t(tape.handle(w)) + tape.handle(b);
//!     let j = z.softmax_log_likelihood(y);
//!     let g = j.backward();
//!     costs.push(j.item());
//!     for p in [w, b] {
//!         let mut value = tape.value_mut(p);
//!         let step = value.as_mut_slice().iter_mut().zip(g[p].as_slice());
//!         step.for_each(|(v, d)| *v -= 0.5 * d);
//!     }
//! }
//! assert_eq!(costs[0], 2f64.ln()); // uniform predictions at W = 0
//! assert!(costs[49] < 0.1 * costs[0]);
//! ```

mod cost;
mod gradcheck;
pub mod kernels;
mod op;
mod pool;
mod reverse;
mod shape;
mod tape;
#[allow(clippy::module_inception)]
mod tensor;
mod var;

pub use gradcheck::{gradcheck, GradCheck};
pub use op::Op;
pub use reverse::Grads;
pub use shape::{sum_to, Shape};
pub use tape::{Tape, TensorId};
pub use tensor::Tensor;
pub use var::Var;

/// What is wrong with a tensor operation's arguments.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TensorError {
    /// Data of the wrong length for a shape.
    #[error("shape {shape} holds {} values, got {len}", shape.checked_numel().map_or("too many".into(), |n| n.to_string()))]
    DataLength {
        /// The shape.
        shape: Shape,
        /// The number of values given.
        len: usize,
    },
    /// A shape with more than `usize::MAX` elements.
    #[error("tensor too large: its element count overflows")]
    TooLarge,
    /// Two shapes that do not broadcast.
    #[error("'{op}': shapes {lhs} and {rhs} do not broadcast")]
    Broadcast {
        /// The op.
        op: &'static str,
        /// The first argument's shape.
        lhs: Shape,
        /// The second argument's shape.
        rhs: Shape,
    },
    /// Shapes that must agree (matmul's inner dimensions, concat's other axes, a cost's
    /// output and target) do not.
    #[error("'{op}': shapes {lhs} and {rhs} do not fit")]
    ShapeMismatch {
        /// The op.
        op: &'static str,
        /// The first shape.
        lhs: Shape,
        /// The other shape.
        rhs: Shape,
    },
    /// An axis past the rank, or named twice.
    #[error("'{op}': axis {axis} is out of range or repeated for rank {rank}")]
    Axis {
        /// The op.
        op: &'static str,
        /// The axis.
        axis: usize,
        /// The rank of the argument.
        rank: usize,
    },
    /// A reduction given no axes.
    #[error("'{op}': no axes to reduce")]
    NoAxes {
        /// The op.
        op: &'static str,
    },
    /// A shape the op cannot take.
    #[error("'{op}' needs {need}, got shape {shape}")]
    Rank {
        /// The op.
        op: &'static str,
        /// What it needs.
        need: &'static str,
        /// What it got.
        shape: Shape,
    },
    /// A reshape that changes the number of elements.
    #[error("cannot reshape {from} to {to}: the element counts differ")]
    Reshape {
        /// The argument's shape.
        from: Shape,
        /// The shape asked for.
        to: Shape,
    },
    /// Not a permutation of the axes.
    #[error("{perm:?} is not a permutation of the {rank} axes")]
    Permutation {
        /// The permutation given.
        perm: Vec<usize>,
        /// The rank.
        rank: usize,
    },
    /// A range past the end of an axis.
    #[error("'{op}': {start}..{start}+{len} is past the end of axis {axis} (size {dim})")]
    Range {
        /// The op.
        op: &'static str,
        /// The axis.
        axis: usize,
        /// The first index.
        start: usize,
        /// The length.
        len: usize,
        /// The axis' size.
        dim: usize,
    },
    /// An index past the end of axis 0.
    #[error("index {index} is out of range: must be below {len}")]
    Index {
        /// The index.
        index: usize,
        /// The number of rows.
        len: usize,
    },
    /// A reduction or join over nothing.
    #[error("'{op}' of nothing")]
    Empty {
        /// The op.
        op: &'static str,
    },
    /// A dropout probability outside [0, 1].
    #[error("dropout probability {p} is not in [0, 1]")]
    Probability {
        /// The probability given.
        p: f64,
    },
    /// The wrong number of arguments.
    #[error("op '{op}' takes {expected} argument(s), got {got}")]
    Arity {
        /// The op.
        op: &'static str,
        /// How many it takes (at least, for concat).
        expected: usize,
        /// How many it got.
        got: usize,
    },
    /// An argument not (yet) on the tape.
    #[error("tensor {index} is not on the tape (it has {len} nodes)")]
    NodeOutOfRange {
        /// The index.
        index: usize,
        /// The tape's length.
        len: usize,
    },
    /// The tape is full.
    #[error("the tape is full (2^32 - 1 nodes)")]
    TooManyNodes,
    /// Sizes a kernel (convolution, pooling) cannot take.
    #[error(transparent)]
    Kernel(#[from] kernels::KernelError),
}
