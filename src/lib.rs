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
