//! # backprop
//!
//! Derivatives by backpropagation, as the blog post *How Does the Backpropagation Work*
//! explains them, in its notation:
//!
//! - [`graph`]: a scalar computational graph (the post's Figure 1: `c = a + b`, `d = a b`,
//!   `o = c d / 2`), evaluated forward and differentiated in **forward mode** (one pass per
//!   input, repeating work) and **reverse mode** (backpropagation: one pass from the output,
//!   each derivative stored once).
//! - [`program`]: the small language of `backprop diff`, parsed into such a graph.
//! - [`network`]: a fully connected network (the post's Figure 2) trained by **the four
//!   equations**, with per-example gradients and mini-batch averages.
//! - [`optim`]: SGD and its relatives.
//! - [`data`]: IDX, CSV, the built-in digits, synthetic sets.
//! - [`model_file`]: networks in and out of safetensors files.
//! - [`train`]: the training loop.
//!
//! Data flows one way: text or files -> graph or network -> derivatives -> updates -> files.
//!
//! ## The seed's Figure 1: c = a + b, d = a b, o = c d / 2
//!
//! Move forward to get the values (c = 5, d = 6, o = 15 at a = 2, b = 3), then
//! backpropagate: do/do = 1; o is the parent of c and d, so do/dc = d/2 = 3 and
//! do/dd = c/2 = 2.5 are computed once and stored; c and d are parents of a and b, so
//! do/da = do/dc · 1 + do/dd · b = 10.5 and do/db = do/dc · 1 + do/dd · a = 8.
//!
//! ```
//! use backprop::graph::Tape;
//! let tape = Tape::new();
//! let (a, b) = (tape.var(2.0), tape.var(3.0));
//! let c = a + b;
//! let d = a * b;
//! let o = c * d * 0.5;
//! assert_eq!((c.val(), d.val(), o.val()), (5.0, 6.0, 15.0));
//! let g = o.backward(); // one reverse pass: every derivative, each computed once
//! assert_eq!([g.wrt(a), g.wrt(b), g.wrt(c), g.wrt(d)], [10.5, 8.0, 3.0, 2.5]);
//! // Forward mode needs one pass per variable, and repeats do/dc and do/dd in each.
//! let from_a = tape.forward_mode(a.id());
//! assert_eq!(from_a[o.id()], 10.5);
//! assert!(from_a.work() + tape.forward_mode(b.id()).work() > g.work());
//! ```
//!
//! The same graph as text: `backprop diff "c = a + b; d = a * b; o = 0.5 * c * d" --at a=2,b=3`
//! (see [`program`]).

#![warn(missing_docs)]

pub mod bench;
pub mod data;
pub mod error;
pub mod float;
pub mod graph;
pub mod linalg;
pub mod model_file;
pub mod network;
pub mod optim;
pub mod plot;
pub mod program;
pub mod train;

pub use error::{Error, Result};
pub use float::Float;
