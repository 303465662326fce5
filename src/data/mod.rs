//! Data sets: what the network learns from.
//!
//! A [`Dataset`] is n examples, each `features` inputs (row-major `f32`) and a class label.
//! The loaders fill it from every source the command line accepts ([`DataSource`]):
//!
//! - [`idx`]: the IDX files of MNIST, Fashion-MNIST and friends, plain or gzipped;
//! - [`digits`]: the built-in 8x8 handwritten digits (embedded in the binary);
//! - [`csv`]: label-first CSV files, and plain numeric matrices;
//! - [`synthetic`]: the seeded toy sets `xor`, `spirals` and `moons`;
//! - [`text`]: UTF-8 text for character-level models, and the built-in Shakespeare.
//!
//! Inputs are then rescaled by a [`Scaling`] fitted on the training part only, and that
//! scaling travels in the model file so that `eval` and `predict` apply the same one.
//!
//! Every loader checks sizes claimed by a file against the file before it allocates, and
//! reports a [`DataError`] that names the file (and the line and column for CSV).

pub mod csv;
mod dataset;
pub mod digits;
mod error;
pub mod idx;
mod scaling;
mod source;
pub mod synthetic;
pub mod text;

pub use dataset::{Dataset, Split, MAX_CLASSES};
pub use error::DataError;
pub use scaling::{Scaling, ScalingKind};
pub use source::DataSource;
