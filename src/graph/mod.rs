//! The scalar computational graph: the post's Figure 1, and any expression like it.
//!
//! - [`Tape`]: the graph, a `Vec` of nodes in insertion order (a topological order),
//!   addressed by [`NodeId`]; values computed as nodes are added (feed-forward).
//! - [`Op`]: the primitives, each with its value and local partial derivatives in one rule
//!   ([`Op::rule`]); nothing else in the crate knows a derivative.
//! - Reverse mode ([`Tape::backward`]): one pass from the output, each derivative computed once.
//! - Forward mode ([`Tape::forward_mode`], and the [`Dual`] numbers): one pass per input.
//! - The sum over paths ([`Tape::paths`]), node labels ([`Tape::labels`]) and Graphviz
//!   export ([`Tape::to_dot`]); [`format_number`], how every report prints a number.
//! - [`Real`]: write a function once; run it on `f64`, [`Dual`] or [`Var`]; and the
//!   conveniences [`grad`], [`jvp`], [`grad_forward`], [`hvp`], [`central_difference`].
//!
//! Nothing here recurses over the graph: a chain of a million nodes is a loop of a million
//! steps.
//!
//! ```
//! use backprop::graph::{grad, grad_forward, hvp, Real};
//! // The post's Figure 1, written once.
//! fn o<T: Real>(a: T, b: T) -> T {
//!     let c = a + b;
//!     let d = a * b;
//!     c * d * 0.5
//! }
//! assert_eq!(o(2.0, 3.0), 15.0);
//! assert_eq!(grad(|x| o(x[0], x[1]), &[2.0, 3.0]), vec![10.5, 8.0]);
//! assert_eq!(grad_forward(|x| o(x[0], x[1]), &[2.0, 3.0]), vec![10.5, 8.0]);
//! // o = (a²b + ab²)/2: H = [[b, a + b], [a + b, a]] = [[3, 5], [5, 2]]
//! assert_eq!(hvp(|x| o(x[0], x[1]), &[2.0, 3.0], &[1.0, 0.0]).unwrap(), vec![3.0, 5.0]);
//! ```

mod derivatives;
mod dot;
mod dual;
mod format;
mod forward;
mod labels;
mod op;
mod paths;
mod real;
mod reverse;
mod tape;
mod var;

pub use derivatives::{
    central_difference, derivative, grad, grad_forward, hvp, jvp, value_and_grad,
};
pub use dual::Dual;
pub use format::format_number;
pub use forward::Tangents;
pub use op::Op;
pub use paths::{Path, PathTotals};
pub use real::{Real, Scalar};
pub use reverse::Adjoints;
pub use tape::{Node, NodeId, Tape};
pub use var::Var;

/// What can go wrong when building or querying a graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// A node refers to an index that is not (yet) on the tape.
    #[error("node {index} is not on the tape (it has {len} nodes)")]
    NodeOutOfRange {
        /// The index asked for.
        index: usize,
        /// The tape's length.
        len: usize,
    },
    /// An op was given the wrong number of arguments.
    #[error("op '{op}' takes {expected} argument(s), got {got}")]
    Arity {
        /// The op's symbol.
        op: &'static str,
        /// Its arity.
        expected: usize,
        /// The number given.
        got: usize,
    },
    /// Only leaves (inputs and constants) can be given a value.
    #[error("node {index} is computed from others; only inputs and constants can be set")]
    NotALeaf {
        /// The node.
        index: usize,
    },
    /// The tape is full: node indices are 32-bit.
    #[error("the tape is full (2^32 - 1 nodes)")]
    TooManyNodes,
    /// Enumerating the paths was refused: there are too many.
    #[error("{count} paths exceed the limit of {limit} (the number of paths grows exponentially with depth)")]
    TooManyPaths {
        /// The number of paths (saturated at 2^64 - 1).
        count: u64,
        /// The limit.
        limit: u64,
    },
    /// A point and a direction of different lengths.
    #[error("the point has {x} coordinates but the direction has {v}")]
    LengthMismatch {
        /// The point's length.
        x: usize,
        /// The direction's length.
        v: usize,
    },
}
