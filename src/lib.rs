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
//! - [`nn`]: layers with PyTorch's names and semantics, and models written as `arch` strings.
//! - [`tensor`]: n-dimensional tensors on a tape (reverse mode for any tensor program), and
//!   the hand-written kernels (conv2d, pooling, LSTM and RNN steps).
//! - [`model`]: the seam: a model as its named parameters, which optimizers, files and
//!   the training loop work on.
//! - [`optim`]: SGD and its relatives.
//! - [`privacy`]: private training (DP-SGD: per-example clipping, Gaussian noise) and its
//!   Rényi-DP accountant.
//! - [`data`]: IDX, CSV, the built-in digits, synthetic sets.
//! - [`dist`]: data-parallel training (several processes, on MPI with feature `mpi`), the
//!   same model bit for bit whatever their number.
//! - [`safetensors_io`]: named tensors and string metadata in and out of safetensors files.
//! - [`model_file`]: networks (and any model's named parameters) in and out of them.
//! - [`train`]: the training loop.
//! - [`classifier`]: a trained network with its input scaling: save, load, predict.
//! - `plot` (feature `plot`, on by default): training curves and confusion matrices.
//!
//! Data flows one way: text or files -> graph or network -> derivatives -> updates -> files.
//!
//! ## The post's Figure 1: c = a + b, d = a b, o = c d / 2
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
//!
//! ## The post's Figure 2: a 2-4-4-3 network and the four equations
//!
//! Feed-forward keeps z^l and a^l = F(z^l) of every layer; then Equation 4 gives the output
//! error delta^L = dC/da^L . F'(z^L), Equation 3 carries it back,
//! delta^l = (W^(l+1)^T delta^(l+1)) . F'(z^l), and Equations 1 and 2 turn each error into
//! gradients: dC/dw^l_jk = delta^l_j a^(l-1)_k and dC/db^l_j = delta^l_j. For a mini-batch,
//! J = (1/n) sum C_i and its gradient is the mean of the per-example gradients W_i, B_i.
//!
//! ```
//! use backprop::network::{Activation::Sigmoid, Cost, Gradients, Init, Network, Workspace};
//! let net = Network::<f64>::new(&[2, 4, 4, 3], &[Sigmoid; 3], Cost::Quadratic, Init::Scaled, 7)
//!     .unwrap();
//! let (x, y) = ([0.3, -0.7, 0.9, 0.1], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]); // n = 2 examples
//! let (mut ws, mut g) = (Workspace::new(&net, 2), Gradients::zeros_like(&net));
//! let j = net.backprop(&x, &y, 2, &mut ws, &mut g);
//! // The batch gradient is the mean of the per-example gradients (the post's W_i, B_i).
//! let (c, per) = net.per_example_gradients(&x, &y, 2, &mut ws).unwrap();
//! assert!((j - (c[0] + c[1]) / 2.0).abs() < 1e-15);
//! let mean = (per[0].biases[0][3] + per[1].biases[0][3]) / 2.0;
//! assert!((g.biases[0][3] - mean).abs() < 1e-15);
//! // And it is what central finite differences say.
//! assert!(backprop::network::gradcheck(&net, &x, &y, 2).unwrap().max_rel_error < 1e-7);
//! ```

#![warn(missing_docs)]

pub mod classifier;
pub mod data;
pub mod dist;
pub mod error;
pub mod float;
pub mod graph;
pub mod io;
pub mod linalg;
pub mod model;
pub mod model_file;
pub mod network;
pub mod nn;
pub mod optim;
#[cfg(feature = "plot")]
pub mod plot;
pub mod privacy;
pub mod program;
pub mod safetensors_io;
pub mod tensor;
pub mod train;

pub use classifier::Classifier;
pub use error::{Error, Result, UnknownName};

/// The README's Rust examples, compiled and run by `cargo test` as doctests, so the README
/// cannot drift from the code.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use float::Float;
